-- headway.dev/abort: abort: all traffic to stable, the candidate to 0 replicas.
-- The same annotation as `kubectl annotate md/NAME headway.dev/abort="$(date +%s)" --overwrite`:
-- a fresh value each time, since the operator acts once per value (status.controls).
-- Argo CD's sandbox offers os.time and os.date through require("os") only.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["headway.dev/abort"] = tostring(os.time())
return obj
