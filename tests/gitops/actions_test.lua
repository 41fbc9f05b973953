-- Runs the Argo CD resource actions of a PerformanceProfile (charts/perf-operator/argocd/actions) on sample
-- objects: discovery.lua must enable exactly the canary commands the run in status.canary can take, and each
-- action (command.lua with its verb) must write the perf.operator.dev/canary-command annotation as
-- `kubectl perf canary VERB` does, keeping every other field. Each case runs in Argo CD's sandbox for actions
-- (package, base, table and a "safe" os with time and date; no string library, no string methods), in the same
-- without os, and with the open libraries. `--export FILE` writes the cases as JSON for tests/gitops/engines,
-- which runs them again in gopher-lua.
-- Usage: lua5.4 tests/gitops/actions_test.lua [REPO_ROOT [--export FILE]]

local root = arg[1] or "."
local function read(path)
  local file = assert(io.open(root .. "/charts/perf-operator/argocd/actions/" .. path, "r"))
  local text = file:read("a")
  file:close()
  return text
end
local DISCOVERY, COMMAND = read("discovery.lua"), read("command.lua")
local VERBS = { "pause", "resume", "promote", "promote-full", "abort", "retry" }
local ANNOTATION = "perf.operator.dev/canary-command"

local function deep_copy(v)
  if type(v) ~= "table" then
    return v
  end
  local out = {}
  for k, item in pairs(v) do
    out[k] = deep_copy(item)
  end
  return out
end

-- The environments an action may meet: Argo CD's (with its safe os behind require), one without os, open libs.
local ENVIRONMENTS = { "sandbox", "sandbox without os", "open libs" }

local function environment(kind, obj)
  if kind == "open libs" then
    return setmetatable({ obj = obj }, { __index = _G })
  end
  local safe_os = { time = os.time, date = os.date }
  local env = {
    obj = obj, assert = assert, error = error, getmetatable = getmetatable, ipairs = ipairs, next = next,
    pairs = pairs, pcall = pcall, rawequal = rawequal, rawget = rawget, rawset = rawset, select = select,
    setmetatable = setmetatable, tonumber = tonumber, tostring = tostring, type = type, unpack = table.unpack,
    _VERSION = _VERSION, table = table,
  }
  env.require = function(name)
    if name == "os" and kind == "sandbox" then
      return safe_os
    end
    error("module '" .. tostring(name) .. "' not found")
  end
  return env
end

-- Runs `source` on a copy of `obj`; returns its one result or nil and why it is not acceptable.
local function run(source, obj, kind)
  local chunk, err = load(source, "=action", "t", environment(kind, obj))
  if not chunk then
    return nil, "does not load: " .. err
  end
  local string_methods = getmetatable("")
  if kind ~= "open libs" then
    debug.setmetatable("", nil)
  end
  local ok, result, extra = pcall(chunk)
  debug.setmetatable("", string_methods)
  if not ok then
    return nil, "raised: " .. tostring(result)
  end
  if extra ~= nil or type(result) ~= "table" then
    return nil, "returned " .. type(result) .. " instead of one table"
  end
  return result
end

local function profile(canary_status, extra)
  local obj = {
    apiVersion = "perf.operator.dev/v1alpha1", kind = "PerformanceProfile",
    metadata = { name = "checkout", namespace = "shop", annotations = { ["team.example/owner"] = "payments" } },
    spec = { targetRef = { name = "checkout" }, canary = { stages = { 10, 25, 50, 100 } } },
    status = { canary = canary_status },
  }
  for k, v in pairs(extra or {}) do
    obj[k] = v
  end
  return obj
end

-- Each case: name, object, the actions that must be enabled (every other one disabled).
local cases = {
  { "no status yet", profile(nil), {} },
  { "initializing", profile({ phase = "Initializing" }), {} },
  { "idle", profile({ phase = "Idle" }), {} },
  { "waiting for pods", profile({ phase = "WaitingForPods" }), { "pause", "promote", "promote-full", "abort" } },
  { "progressing", profile({ phase = "Progressing", stage = "2/4" }), { "pause", "promote", "promote-full", "abort" } },
  { "progressing, paused", profile({ phase = "Progressing", paused = true }), { "resume", "promote", "promote-full", "abort" } },
  { "promoting", profile({ phase = "Promoting" }), { "pause", "abort" } },
  { "waiting for confirm-rollout", profile({ phase = "Waiting", gate = "confirm-rollout" }), { "promote", "promote-full", "abort" } },
  { "held by a confirm-promotion gate", profile({ phase = "Progressing", gate = "confirm-promotion" }),
    { "pause", "promote", "promote-full", "abort" } },
  { "promoting, paused", profile({ phase = "Promoting", paused = true }), { "resume", "abort" } },
  { "succeeded", profile({ phase = "Succeeded" }), {} },
  { "rolled back", profile({ phase = "RolledBack" }), { "retry" } },
  { "failed", profile({ phase = "Failed", lastCommand = "abort@1" }), { "retry" } },
  { "idle, paused", profile({ phase = "Idle", paused = true }), { "resume" } },
  { "a phase of a newer operator", profile({ phase = "Verifying" }), {} },
  -- Hostile or absent shapes: nothing enabled that could not apply, and nothing raises.
  { "no canary section", profile({ phase = "Progressing" }, { spec = { targetRef = { name = "x" } } }), {} },
  { "status a string", profile(nil, { status = "Progressing" }), {} },
  { "canary a number", profile(nil, { status = { canary = 3 } }), {} },
  { "phase a number", profile({ phase = 7 }), {} },
  { "paused a string", profile({ phase = "Progressing", paused = "true" }), { "pause", "promote", "promote-full", "abort" } },
  { "no metadata", profile({ phase = "RolledBack" }, { metadata = nil }), { "retry" } },
  { "annotations a string", profile({ phase = "RolledBack" }, { metadata = { name = "x", annotations = "bad" } }), { "retry" } },
  { "spec a list", profile({ phase = "Progressing" }, { spec = { 1, 2 } }), {} },
}

local passed, failures = 0, 0
local function check(name, where, problem)
  if problem then
    failures = failures + 1
    io.write(string.format("FAIL %s (%s): %s\n", name, where, problem))
  else
    passed = passed + 1
  end
end

local function discovery_problem(actions, enabled)
  local want = {}
  for _, verb in ipairs(enabled) do
    want[verb] = true
  end
  for key in pairs(actions) do
    local known = false
    for _, verb in ipairs(VERBS) do
      known = known or key == verb
    end
    if not known then
      return "unknown action " .. tostring(key)
    end
  end
  for _, verb in ipairs(VERBS) do
    local a = actions[verb]
    if type(a) ~= "table" or type(a.disabled) ~= "boolean" then
      return verb .. ": expected {disabled = boolean}"
    end
    if a.disabled == (want[verb] == true) then
      return verb .. (a.disabled and " disabled, want enabled" or " enabled, want disabled")
    end
  end
  return nil
end

-- What an action must leave: the annotation VERB@STAMP, a value not acted on last nor already pending, every other
-- field as it was.
local function action_problem(verb, before, after)
  local annotations = type(after.metadata) == "table" and after.metadata.annotations
  local value = type(annotations) == "table" and annotations[ANNOTATION]
  if type(value) ~= "string" or value:sub(1, #verb + 1) ~= verb .. "@" then
    return "annotation " .. tostring(value) .. ", want " .. verb .. "@..."
  end
  local canary = type(before.status) == "table" and type(before.status.canary) == "table" and before.status.canary
  local pending = type(before.metadata) == "table" and type(before.metadata.annotations) == "table"
    and before.metadata.annotations[ANNOTATION]
  if canary and value == canary.lastCommand or value == pending then
    return "repeats " .. value .. ", which the operator would ignore"
  end
  if type(before.metadata) == "table" and type(before.metadata.annotations) == "table" then
    for k, v in pairs(before.metadata.annotations) do
      if k ~= ANNOTATION and annotations[k] ~= v then
        return "lost annotation " .. k
      end
    end
  end
  for _, key in ipairs({ "spec", "status", "kind", "apiVersion" }) do
    if type(before[key]) ~= type(after[key]) then
      return key .. " changed"
    end
  end
  return nil
end

for _, case in ipairs(cases) do
  local name, obj, enabled = case[1], case[2], case[3]
  for _, kind in ipairs(ENVIRONMENTS) do
    local actions, problem = run(DISCOVERY, deep_copy(obj), kind)
    check(name, kind .. ", discovery", problem or discovery_problem(actions, enabled))
    for _, verb in ipairs(VERBS) do
      local source = COMMAND:gsub("__VERB__", verb)
      local after, why = run(source, deep_copy(obj), kind)
      check(name, kind .. ", " .. verb, why or action_problem(verb, obj, after))
    end
  end
end

-- The same verb twice: the second value differs from the first once the operator has acted on it.
do
  local first = run((COMMAND:gsub("__VERB__", "promote")), profile({ phase = "Progressing" }), "sandbox without os")
  local value = first.metadata.annotations[ANNOTATION]
  local acted = profile({ phase = "Progressing", lastCommand = value }, { metadata = first.metadata })
  local second = run((COMMAND:gsub("__VERB__", "promote")), acted, "sandbox without os")
  local again = second.metadata.annotations[ANNOTATION]
  check("promote twice", "sandbox without os", again == value and ("repeated " .. value) or nil)
end

-- Every verb is one the operator knows (perf_canary::command::Command::verb): read from its source.
do
  local file = assert(io.open(root .. "/operator/canary/src/command.rs", "r"))
  local source = file:read("a")
  file:close()
  for _, verb in ipairs(VERBS) do
    check("verb " .. verb, "operator", source:find('=> "' .. verb .. '"', 1, true) == nil and "not a verb of the operator" or nil)
  end
end

if arg[2] == "--export" and arg[3] then
  local exported = {}
  for _, case in ipairs(cases) do
    exported[#exported + 1] = { name = case[1], object = case[2], enabled = case[3] }
  end
  dofile(root .. "/tests/gitops/json.lua").export(arg[3], exported)
end

io.write(string.format("actions: %d passed, %d failed\n", passed, failures))
os.exit(failures == 0 and 0 or 1)
