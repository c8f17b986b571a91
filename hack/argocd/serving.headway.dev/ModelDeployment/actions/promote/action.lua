-- headway.dev/promote: skip the remaining steps and promote now.
-- The same annotation as `kubectl annotate md/NAME headway.dev/promote="$(date +%s)" --overwrite`:
-- a fresh value each time, since the operator acts once per value (status.controls).
-- Argo CD's sandbox offers os.time and os.date through require("os") only.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["headway.dev/promote"] = tostring(os.time())
return obj
