-- Argo CD health of a PerformanceProfile (perf.operator.dev), read from the status the operator writes:
-- observedGeneration, the Ready / Progressing / Degraded conditions and status.canary.
-- Argo CD runs custom scripts in gopher-lua (Lua 5.1) without the string and math libraries, so this uses base
-- functions only. It never raises: an error in a health script hides the health of the whole application.

local ACTIVE = { WaitingForPods = true, Progressing = true, Promoting = true } -- a run is moving traffic
local FAILED = { RolledBack = true, Failed = true } -- final for this template: someone should look
local MAX_MESSAGE = 1024 -- bytes; the operator caps each condition's message at 1024 characters

local function field(t, key)
  if type(t) == "table" then
    return t[key]
  end
  return nil
end

-- Strings, numbers and booleans as text; anything else (tables, nil) as nil.
local function text(v)
  local kind = type(v)
  if kind == "string" then
    return v
  elseif kind == "number" or kind == "boolean" then
    return tostring(v)
  end
  return nil
end

-- Cut at a UTF-8 boundary when the string library is there (scripts with open libraries, the tests); without it
-- the message goes out whole.
local function clip(s)
  if #s <= MAX_MESSAGE or type(string) ~= "table" or type(string.byte) ~= "function" then
    return s
  end
  local n = MAX_MESSAGE
  local b = string.byte(s, n + 1)
  while n > 0 and b ~= nil and b >= 128 and b < 192 do
    b = string.byte(s, n)
    n = n - 1
  end
  return string.sub(s, 1, n) .. "..."
end

local function result(status, message)
  return { status = status, message = clip(message) }
end

-- The first condition of each type; entries that are not objects or have no type are skipped.
local function conditions_by_type(status)
  local found = {}
  local list = field(status, "conditions")
  if type(list) ~= "table" then
    return found
  end
  for _, c in ipairs(list) do
    local t = text(field(c, "type"))
    if t ~= nil and found[t] == nil then
      found[t] = c
    end
  end
  return found
end

local function is(c, value)
  return text(field(c, "status")) == value
end

local function message_of(c)
  return text(field(c, "message")) or ""
end

local function reason_of(c)
  return text(field(c, "reason")) or ""
end

local function joined(a, sep, b)
  if a == "" then
    return b
  elseif b == "" then
    return a
  end
  return a .. sep .. b
end

-- "canary Progressing, stage 2/4 at 25% (achieved 20%)"
local function canary_where(canary, phase)
  local out = "canary " .. phase
  local stage = text(field(canary, "stage"))
  local weight = text(field(canary, "weight"))
  local achieved = text(field(canary, "achievedWeight"))
  if stage ~= nil then
    out = out .. ", stage " .. stage
  end
  if weight ~= nil and weight ~= "0" then
    out = out .. " at " .. weight .. "%"
    if achieved ~= nil and achieved ~= weight then
      out = out .. " (achieved " .. achieved .. "%)"
    end
  end
  return out
end

-- "perf-operator canary VERB NAME -n NAMESPACE" for the profile.
local function cli(obj, verb)
  local meta = field(obj, "metadata")
  local command = "perf-operator canary " .. verb .. " " .. (text(field(meta, "name")) or "NAME")
  if text(field(meta, "namespace")) ~= nil then
    command = command .. " -n " .. text(field(meta, "namespace"))
  end
  return command
end

local function health(obj)
  local status = field(obj, "status")
  if type(status) ~= "table" then
    return result("Progressing", "waiting for the operator to report status")
  end

  -- A status written for an older spec says nothing about this one.
  local generation = field(field(obj, "metadata"), "generation")
  if type(generation) == "number" then
    local observed = field(status, "observedGeneration")
    if type(observed) ~= "number" then
      return result("Progressing", "waiting for the operator to observe generation " .. text(generation))
    elseif observed ~= generation then
      return result("Progressing", "waiting for the operator: status is for generation " .. text(observed)
        .. ", the spec is generation " .. text(generation))
    end
  end

  local c = conditions_by_type(status)
  local ready, progressing, degraded = c["Ready"], c["Progressing"], c["Degraded"]
  local canary = field(status, "canary")
  local phase = text(field(canary, "phase")) or ""
  local paused = field(canary, "paused") == true
  local canary_message = text(field(canary, "message")) or ""

  if type(generation) == "number" and type(field(ready, "observedGeneration")) == "number"
      and field(ready, "observedGeneration") ~= generation then
    return result("Progressing", "waiting for the operator: Ready is for generation "
      .. text(field(ready, "observedGeneration")) .. ", the spec is generation " .. text(generation))
  end

  -- Suspended by `spec.suspend`: nothing is applied, whatever the other conditions said last.
  local suspended = c["Suspended"]
  if is(suspended, "True") then
    local message = "profile suspended (spec.suspend: true): nothing is applied"
    if ACTIVE[phase] or phase == "Waiting" then
      message = message .. "; " .. canary_where(canary, phase) .. " frozen"
    end
    return result("Suspended", message .. "; set spec.suspend to false to resume")
  end

  -- Degraded: the operator's Degraded condition, a Ready=False that is not work in progress, a failed canary run,
  -- or (no Ready condition at all) a phase that says so.
  local ready_failed = ready ~= nil and is(ready, "False") and reason_of(ready) ~= "Progressing"
    and not is(progressing, "True")
  local phase_degraded = ready == nil and field(status, "phase") == "Degraded"
  if is(degraded, "True") or ready_failed or FAILED[phase] or phase_degraded then
    local message = ""
    if ready ~= nil and is(ready, "False") then
      message = message_of(ready)
      local reason = reason_of(ready)
      if reason ~= "" and reason ~= "ComponentsDegraded" then
        message = joined(reason, ": ", message)
      end
    end
    if message == "" and degraded ~= nil then
      message = joined(reason_of(degraded), ": ", message_of(degraded))
    end
    if FAILED[phase] and message == "" then
      message = joined(canary_where(canary, phase), ": ", canary_message)
    end
    if message == "" then
      message = "degraded; no condition says why"
    end
    return result("Degraded", message)
  end

  -- A run held by `pause` (CanaryReady reason Paused): suspended until someone resumes it.
  local canary_ready = c["CanaryReady"]
  if (paused and ACTIVE[phase]) or (is(canary_ready, "False") and reason_of(canary_ready) == "Paused") then
    local message = "canary paused"
    local stage, weight = text(field(canary, "stage")), text(field(canary, "weight"))
    if stage ~= nil then
      message = message .. " at stage " .. stage
    end
    if weight ~= nil then
      message = message .. ", weight " .. weight .. "%"
    end
    return result("Suspended", message .. "; resume with `" .. cli(obj, "resume") .. "`")
  end

  -- A run held by a gate (a confirm-* webhook not answering 2xx yet): waiting for someone, as Argo's `pause: {}`.
  local gate = text(field(canary, "gate"))
  if gate ~= nil and (phase == "Waiting" or ACTIVE[phase]) then
    local message = "canary held by its " .. gate .. " webhooks"
    local stage = text(field(canary, "stage"))
    if stage ~= nil and phase ~= "Waiting" then
      message = message .. " at stage " .. stage
    end
    return result("Suspended", message .. "; open the gate, or pass it with `" .. cli(obj, "promote") .. "`")
  end

  if ready == nil then
    return result("Progressing", "waiting for the operator: no Ready condition yet")
  end

  if not is(ready, "True") then
    -- Work in progress (Ready=False reason Progressing), or Ready Unknown.
    local message = message_of(ready)
    if ACTIVE[phase] or phase == "Initializing" then
      message = joined(canary_where(canary, phase), "; ", message ~= "" and message or canary_message)
    end
    if message == "" then
      message = "Ready is " .. (text(field(ready, "status")) or "not set")
    end
    return result("Progressing", message)
  end

  local message = message_of(ready)
  if message == "" then
    message = "ready"
  end
  if paused then
    -- `pause` with no run in progress holds the next run.
    message = message .. "; canary paused: the next run will hold at its first stage"
  end
  return result("Healthy", message)
end

local ok, hs = pcall(health, obj)
if ok and type(hs) == "table" then
  return hs
end
-- Only a bug here gets this far: say so rather than fail the whole application's health.
return { status = "Unknown", message = "perf-operator health check failed: " .. (text(hs) or "unknown error") }
