-- headway.dev/promote-step: pass the current step (or the manual gate).
-- The same annotation as `kubectl annotate md/NAME headway.dev/promote-step="$(date +%s)" --overwrite`:
-- a fresh value each time, since the operator acts once per value (status.controls).
-- Argo CD's sandbox offers os.time and os.date through require("os") only.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["headway.dev/promote-step"] = tostring(os.time())
return obj
