-- Which Headway controls make sense now (serving.headway.dev/ModelDeployment).
-- Every action is listed; those that would do nothing in the current phase are disabled, as
-- the operator would ignore them (a ControlIgnored Event: README, "Steering from kubectl").
--
--   promote, promote-step   a rollout is going through its steps (Progressing or Paused, not promoting yet)
--   abort                   a rollout is in progress (status.rollout), promotion included
--   retry                   a version is rolled back (status.rolledBack)
--   pause                   a rollout is going through its steps and is not paused already
--   resume                  the headway.dev/paused annotation is set (spec.paused is git's to change)
--
-- Lua 5.1 as Argo CD runs it (gopher-lua): no string library, so values are compared as written.
local actions = {}
actions["promote"] = {["disabled"] = true, ["displayName"] = "Promote now (skip the remaining steps)"}
actions["promote-step"] = {["disabled"] = true, ["displayName"] = "Pass the current step or manual gate"}
actions["abort"] = {["disabled"] = true, ["displayName"] = "Abort (all traffic to stable)"}
actions["retry"] = {["disabled"] = true, ["displayName"] = "Retry the rolled-back version"}
actions["pause"] = {["disabled"] = true, ["displayName"] = "Pause the rollout"}
actions["resume"] = {["disabled"] = true, ["displayName"] = "Resume (remove headway.dev/paused)"}

local status = obj.status
if status == nil then
  status = {}
end
local annotations = obj.metadata.annotations
if annotations == nil then
  annotations = {}
end

-- What the operator reads as paused (it also accepts other capitalisations, which Lua here cannot fold).
local truthy = {["true"] = true, ["True"] = true, ["TRUE"] = true, ["1"] = true, ["yes"] = true, ["Yes"] = true, ["YES"] = true}
local annotated_pause = annotations["headway.dev/paused"]
local paused = (annotated_pause ~= nil and truthy[annotated_pause] == true) or (obj.spec ~= nil and obj.spec.paused == true)

local rollout = status.rollout
local in_progress = rollout ~= nil and status.phase ~= "RolledBack"
local stepping = in_progress and rollout.promoting ~= true

if stepping and (status.phase == "Progressing" or status.phase == "Paused") then
  actions["promote"]["disabled"] = false
  actions["promote-step"]["disabled"] = false
end
if in_progress then
  actions["abort"]["disabled"] = false
end
if status.rolledBack ~= nil then
  actions["retry"]["disabled"] = false
end
if stepping and not paused then
  actions["pause"]["disabled"] = false
end
if annotated_pause ~= nil then
  actions["resume"]["disabled"] = false
end
return actions
