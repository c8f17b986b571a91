-- Argo CD health of a Headway ModelDeployment (serving.headway.dev/ModelDeployment).
--
-- Reads only what the operator writes (operator/headway/api/status.py, planning/derive.py):
-- status.observedGeneration, status.phase, the Ready / Progressing / Degraded conditions,
-- status.stable, status.rolledBack; and spec.model.bento (what git asks for).
-- Every phase maps to a health, so a ModelDeployment with a status is never Unknown:
--
--   no status yet, or observedGeneration behind generation   Progressing ("waiting for the operator")
--   Pending, Progressing, Promoting                           Progressing (the step and time left)
--   Paused (manual gate, spec.paused, headway.dev/paused)     Suspended
--   AwaitingApproval (spec.governance: approvals by role)    Suspended
--   Succeeded                                                 Healthy (with data drift, budget, scaler notes)
--   RolledBack                                                Degraded ("serving X; git wants Y")
--   Degraded, Failed                                          Degraded (the Degraded condition's reason and message)
--   a phase this script does not know                         from the conditions, else Progressing
--
-- Runs in Argo CD's sandbox (gopher-lua, Lua 5.1, no string or math library for scripts
-- from argocd-cm): only base functions, tables and string concatenation are used.

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

-- The message of a condition (or "" when it is absent or empty).
local function said(kind)
  local c = condition(kind)
  if c ~= nil and c.message ~= nil then
    return c.message
  end
  return ""
end

-- The first argument that is a non-empty string ("" if none); nil arguments are skipped.
local function first(...)
  for i = 1, select("#", ...) do
    local text = select(i, ...)
    if text ~= nil and text ~= "" then
      return text
    end
  end
  return ""
end

local function health(status, message)
  return {status = status, message = message}
end

-- What the Degraded condition says, as "Reason: message".
local function degraded_message(fallback)
  local c = condition("Degraded")
  if c ~= nil and c.status == "True" then
    if c.message == nil or c.message == "" then
      return first(c.reason, fallback)
    end
    if c.reason == nil or c.reason == "" or c.reason == "Degraded" then
      return c.message  -- reason Degraded (a held rollout) would only repeat the health
    end
    return c.reason .. ": " .. c.message
  end
  return fallback
end

-- Notes on a healthy model: what still needs a person's eye without making it unhealthy.
local function notes()
  local out = ""
  local checks = {
    {"DataDrift", "True", "data drift: "},
    {"WithinBudget", "False", "over budget: "},
    {"ScalerAvailable", "False", ""},
    {"SpecSupported", "False", ""},
  }
  for _, check in ipairs(checks) do
    local c = condition(check[1])
    if c ~= nil and c.status == check[2] then
      out = out .. "; " .. check[3] .. first(c.message, c.reason)
    end
  end
  return out
end

local function bento(variant)
  if variant ~= nil and variant.bento ~= nil then
    return variant.bento
  end
  return "unknown"
end

if obj.status == nil then
  return health("Progressing", "waiting for the operator: no status yet")
end

local status = obj.status
local generation = obj.metadata.generation
if status.observedGeneration == nil or (generation ~= nil and status.observedGeneration < generation) then
  local seen = "no generation yet"
  if status.observedGeneration ~= nil then
    seen = "status is of generation " .. tostring(status.observedGeneration)
  end
  return health("Progressing", "waiting for the operator to act on generation " .. tostring(generation) .. " (" .. seen .. ")")
end

local phase = status.phase

if phase == "Pending" or phase == "Progressing" or phase == "Promoting" then
  return health("Progressing", first(said("Progressing"), said("Ready"), phase))
end

if phase == "Paused" then
  return health("Suspended", first(said("Progressing"), "paused"))
end

-- spec.governance: a rollout waiting for ModelApprovals. Waiting for a person is Suspended, like
-- a manual gate; the Progressing condition names who is missing.
if phase == "AwaitingApproval" then
  return health("Suspended", first(said("Progressing"), "awaiting approval"))
end

if phase == "Succeeded" then
  return health("Healthy", first(said("Ready"), "serving") .. notes())
end

if phase == "RolledBack" then
  local wants = "unknown"
  if obj.spec ~= nil and obj.spec.model ~= nil and obj.spec.model.bento ~= nil then
    wants = obj.spec.model.bento
  end
  local serving = bento(status.stable)
  if status.stable == nil and status.stableModel ~= nil then
    serving = bento(status.stableModel)
  end
  local message = "serving " .. serving .. "; git wants " .. wants
  local rolled = status.rolledBack
  if rolled ~= nil then
    message = message .. " (rolled back, " .. first(rolled.reason, "no reason")
    if rolled.message ~= nil and rolled.message ~= "" then
      message = message .. ": " .. rolled.message
    end
    message = message .. ")"
  end
  return health("Degraded", message)
end

if phase == "Degraded" or phase == "Failed" then
  return health("Degraded", degraded_message(first(said("Ready"), phase)))
end

-- A phase this script does not know (a newer operator): judge by the conditions.
local label = "no phase"
if phase ~= nil then
  label = "phase " .. phase
end
local degraded, progressing, ready = condition("Degraded"), condition("Progressing"), condition("Ready")
if degraded ~= nil and degraded.status == "True" then
  return health("Degraded", degraded_message(label))
end
if progressing ~= nil and progressing.status == "True" then
  return health("Progressing", first(progressing.message, label))
end
if ready ~= nil and ready.status == "True" then
  return health("Healthy", first(ready.message, label))
end
return health("Progressing", label .. ": waiting for the operator")
