-- Argo CD resource actions of a PerformanceProfile (perf.operator.dev): which canary commands the run in
-- status.canary can take now. Each action writes the perf.operator.dev/canary-command annotation, as
-- `kubectl perf canary VERB` does (see command.lua); the operator acts on it once and reports in status and Events.
-- gopher-lua without the string library: base functions only, and it never raises (a raising discovery script
-- hides every action of the resource).

local ACTIVE = { WaitingForPods = true, Progressing = true } -- a run judged stage by stage
local OVER = { RolledBack = true, Failed = true } -- this template's run ended without a promotion

local function field(t, key)
  if type(t) ~= "table" then
    return nil
  end
  return t[key]
end

local canary = field(field(obj, "status"), "canary")
local phase = field(canary, "phase")
if type(phase) ~= "string" then
  phase = ""
end
local paused = field(canary, "paused") == true
local configured = type(field(field(obj, "spec"), "canary")) == "table"
local active = configured and ACTIVE[phase] == true
local promoting = configured and phase == "Promoting"
-- A new template held by its confirm-rollout webhooks: promote starts its run, abort ends it before it starts.
local waiting = configured and phase == "Waiting"

local actions = {}
actions["pause"] = { ["disabled"] = not ((active or promoting) and not paused) }
actions["resume"] = { ["disabled"] = not (configured and paused) }
actions["promote"] = { ["disabled"] = not (active or waiting) }
actions["promote-full"] = { ["disabled"] = not (active or waiting) }
actions["abort"] = { ["disabled"] = not (active or promoting or waiting) }
actions["retry"] = { ["disabled"] = not (configured and OVER[phase] == true) }
return actions
