-- headway.dev/paused=true: pause the rollout (the step's clock stops).
-- The same annotation as `kubectl annotate md/NAME headway.dev/paused=true --overwrite`.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["headway.dev/paused"] = "true"
return obj
