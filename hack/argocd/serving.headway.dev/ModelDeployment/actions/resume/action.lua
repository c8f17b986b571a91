-- Remove headway.dev/paused: resume the rollout, as `kubectl annotate md/NAME headway.dev/paused-`.
-- spec.paused (from git) is left alone.
local annotations = obj.metadata.annotations
if annotations ~= nil then
  annotations["headway.dev/paused"] = nil
  -- Argo CD encodes an empty Lua table as [] and then keeps the live annotations map instead
  -- (util/lua cleanReturnedObj): drop the map, so the patch removes it.
  if next(annotations) == nil then
    obj.metadata.annotations = nil
  end
end
return obj
