-- Runs the Argo CD health check (charts/perf-operator/argocd/health.lua) on sample PerformanceProfiles: every
-- condition reason and canary phase the operator writes, and hostile or absent shapes. Each case runs twice: in
-- Argo CD's sandbox for custom checks (base functions, table and os only; no string library, no string methods)
-- and with the open libraries. `--export FILE` also writes the cases as JSON, for tests/gitops/engines (the same
-- cases in gopher-lua, Argo CD's interpreter, and against the Flux CEL health expressions).
-- Usage: lua5.4 tests/gitops/health_test.lua [REPO_ROOT [--export FILE]]

local root = arg[1] or "."
local path = root .. "/charts/perf-operator/argocd/health.lua"
local file = assert(io.open(path, "r"))
local source = file:read("a")
file:close()

local VALID = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }

local function sandbox(obj)
  return {
    obj = obj, assert = assert, error = error, getmetatable = getmetatable, ipairs = ipairs, next = next,
    pairs = pairs, pcall = pcall, rawequal = rawequal, rawget = rawget, rawset = rawset, select = select,
    setmetatable = setmetatable, tonumber = tonumber, tostring = tostring, type = type, unpack = table.unpack,
    _VERSION = _VERSION, table = table, os = { time = os.time, date = os.date, clock = os.clock },
  }
end

-- Returns the script's result, or nil and why it is not one Argo CD accepts.
local function run(obj, sandboxed)
  local env = sandboxed and sandbox(obj) or setmetatable({ obj = obj }, { __index = _G })
  local chunk, err = load(source, "=health.lua", "t", env)
  if not chunk then
    return nil, "does not load: " .. err
  end
  local string_methods = getmetatable("")
  if sandboxed then
    debug.setmetatable("", nil) -- gopher-lua without its string library: ("x"):sub(...) raises
  end
  local ok, hs, extra = pcall(chunk)
  if sandboxed then
    debug.setmetatable("", string_methods)
  end
  if not ok then
    return nil, "raised: " .. tostring(hs)
  end
  if extra ~= nil or type(hs) ~= "table" then
    return nil, "returned " .. type(hs) .. " instead of one table"
  end
  for k, v in pairs(hs) do
    if (k ~= "status" and k ~= "message") or type(v) ~= "string" then
      return nil, "unexpected field " .. tostring(k) .. " = " .. tostring(v)
    end
  end
  if not VALID[hs.status] then
    return nil, "invalid status " .. tostring(hs.status)
  end
  if type(hs.message) ~= "string" then
    return nil, "no message"
  end
  return hs
end

-- The emulation holds: no string library, no string methods.
do
  local probe = load("return type(string), pcall(function() return (\"x\"):upper() end)", "=probe", "t", sandbox(nil))
  local string_methods = getmetatable("")
  debug.setmetatable("", nil)
  local kind, method_ok = probe()
  debug.setmetatable("", string_methods)
  assert(kind == "nil" and method_ok == false, "the sandbox still has the string library")
end

-- Sample builders: the operator's own shapes (operator/src/conditions.rs, operator/canary/src/machine.rs).

local T0 = "2026-01-01T00:00:00Z"

local function cond(type_, status, reason, message, generation)
  return { type = type_, status = status, reason = reason, message = message or "", lastTransitionTime = T0,
    observedGeneration = generation or 3 }
end

local function ok(type_, reason, message)
  return { type = type_, ok = true, reason = reason, message = message }
end
local function failed(type_, reason, message)
  return { type = type_, ok = false, reason = reason, message = message }
end
local function working(type_, reason, message)
  return { type = type_, ok = false, progressing = true, reason = reason, message = message }
end
local function not_configured(type_) return ok(type_, "NotConfigured", "section not set in the profile") end

local function merge(into, from)
  for k, v in pairs(from or {}) do
    into[k] = v
  end
  return into
end

-- The status conditions::conditions() and phase() build from component reports.
local function status_from(reports, extra)
  local degraded, progressing = {}, {}
  for _, r in ipairs(reports) do
    if r.progressing then
      progressing[#progressing + 1] = r
    elseif not r.ok then
      degraded[#degraded + 1] = r
    end
  end
  local function summary(rs)
    local parts = {}
    for i, r in ipairs(rs) do
      parts[i] = r.type .. ": " .. r.message
    end
    return table.concat(parts, "; ")
  end
  local ready, prog, degr
  if #degraded > 0 then
    ready = cond("Ready", "False", "ComponentsDegraded", summary(degraded))
  elseif #progressing > 0 then
    ready = cond("Ready", "False", "Progressing", summary(progressing))
  else
    ready = cond("Ready", "True", "AllComponentsReady", "all components are ready")
  end
  if #progressing > 0 then
    prog = cond("Progressing", "True", "Working", summary(progressing))
  else
    prog = cond("Progressing", "False", "Idle", "no work in progress")
  end
  if #degraded > 0 then
    degr = cond("Degraded", "True", degraded[1].reason, summary(degraded))
  else
    degr = cond("Degraded", "False", "Healthy", "no component failed")
  end
  local conditions = { ready, prog, degr }
  for _, r in ipairs(reports) do
    conditions[#conditions + 1] = cond(r.type, r.ok and "True" or "False", r.reason, r.message)
  end
  local phase = "Ready"
  if degr.status == "True" then
    phase = "Degraded"
  elseif prog.status == "True" then
    phase = "Progressing"
  end
  return merge({ observedGeneration = 3, phase = phase, conditions = conditions }, extra)
end

local function profile(status, metadata)
  return {
    apiVersion = "perf.operator.dev/v1alpha1",
    kind = "PerformanceProfile",
    metadata = metadata or { name = "shop", namespace = "shop", generation = 3 },
    spec = { targetRef = { name = "shop" }, canary = { stages = { 10, 25, 50, 100 } } },
    status = status,
  }
end

local function others()
  return {
    ok("CacheReady", "RedisAvailable", "Redis serving at shop-redis.shop.svc:6379"),
    ok("PoolsReady", "Published", "sized for 4 app pod(s), shares for up to 8"),
    not_configured("ClickHouseReady"),
    not_configured("PoliciesReady"),
  }
end

-- A profile whose canary is in `phase`; the CanaryReady report follows machine::condition().
local function with_canary(phase, fields, extra_reports)
  local canary = merge({ phase = phase, runId = "b2", stableId = "a1", weight = 0, primaryReplicas = 4,
    canaryReplicas = 0, paused = false, failedChecks = 0 }, fields)
  local active = phase == "WaitingForPods" or phase == "Progressing" or phase == "Promoting"
  local message = canary.message or ""
  local report
  if canary.paused and active then
    report = working("CanaryReady", "Paused", message)
  elseif phase == "Idle" then
    report = ok("CanaryReady", "Stable", message)
  elseif phase == "Succeeded" then
    report = ok("CanaryReady", "Promoted", message)
  elseif phase == "Initializing" then
    report = working("CanaryReady", "Initializing", message)
  elseif phase == "Waiting" then
    report = working("CanaryReady", "WaitingForConfirmation", message)
  elseif active then
    report = working("CanaryReady", phase == "Promoting" and "Promoting" or "Progressing", message)
  elseif phase == "RolledBack" then
    report = failed("CanaryReady", "RolledBack", message)
  else
    report = failed("CanaryReady", "DeadlineExceeded", message)
  end
  local reports = others()
  for _, r in ipairs(extra_reports or {}) do
    reports[#reports + 1] = r
  end
  reports[#reports + 1] = report
  return profile(status_from(reports, { canary = canary }))
end

-- The status conditions::invalid() writes for a refused spec.
local function invalid(message)
  return profile({
    observedGeneration = 3,
    phase = "Degraded",
    conditions = {
      cond("Ready", "False", "InvalidSpec", message),
      cond("Progressing", "False", "InvalidSpec", "nothing is applied until the spec is fixed"),
      cond("Degraded", "True", "InvalidSpec", message),
    },
  })
end

-- The status conditions::held(Hold::Suspended) writes: the last round's conditions kept, Progressing False and
-- Suspended True; Ready Unknown when there was none.
local function suspended(obj)
  local status = obj.status or { observedGeneration = 3, conditions = {} }
  local conditions, had_ready = {}, false
  for _, c in ipairs(status.conditions) do
    if c.type ~= "Progressing" and c.type ~= "Suspended" then
      conditions[#conditions + 1] = c
      had_ready = had_ready or c.type == "Ready"
    end
  end
  local message = "spec.suspend is true: nothing is applied and a canary run is frozen where it is"
  if not had_ready then
    table.insert(conditions, 1, cond("Ready", "Unknown", "Suspended", message))
  end
  conditions[#conditions + 1] = cond("Progressing", "False", "Suspended", message)
  conditions[#conditions + 1] = cond("Suspended", "True", "Suspended", message)
  status.conditions, status.phase = conditions, "Suspended"
  obj.status = status
  return obj
end

local function component(report)
  local reports = others()
  for i, r in ipairs(reports) do
    if r.type == report.type then
      reports[i] = report
      return profile(status_from(reports))
    end
  end
  reports[#reports + 1] = report
  return profile(status_from(reports))
end

local long = string.rep("é", 60000) -- 120 kB of two-byte characters: a cut must not split one

local cases = {
  -- Absent, early and stale status.
  { "no status", profile(nil), "Progressing", "waiting for the operator to report status" },
  { "no object at all", nil, "Progressing", "waiting for the operator to report status" },
  { "status is not an object", profile("Ready"), "Progressing", "waiting for the operator to report status" },
  { "empty status", profile({}), "Progressing", "waiting for the operator to observe generation 3" },
  { "generation mismatch",
    profile(merge(status_from(others()), { observedGeneration = 2 }), { name = "shop", generation = 4 }),
    "Progressing", "status is for generation 2, the spec is generation 4" },
  { "Ready written for an older generation",
    profile({ observedGeneration = 3, conditions = { cond("Ready", "True", "AllComponentsReady", "ok", 2) } }),
    "Progressing", "Ready is for generation 2", flux = "Current" }, -- Flux compares status.observedGeneration only
  { "observedGeneration is a string", profile({ observedGeneration = "3", conditions = {} }),
    "Progressing", "observe generation 3" },
  { "status without conditions", profile({ observedGeneration = 3 }), "Progressing", "no Ready condition yet" },
  { "conditions empty", profile({ observedGeneration = 3, conditions = {} }), "Progressing", "no Ready condition" },
  { "conditions not a list",
    profile({ observedGeneration = 3, conditions = { Ready = cond("Ready", "True", "AllComponentsReady", "x") } }),
    "Progressing", "no Ready condition" },
  { "conditions a string", profile({ observedGeneration = 3, conditions = "Ready=True" }),
    "Progressing", "no Ready condition" },
  { "junk entries before Ready",
    profile({ observedGeneration = 3, conditions = { "Ready", 42, {}, { type = 7, status = "False" },
      { type = { "Ready" } }, cond("Ready", "True", "AllComponentsReady", "all components are ready") } }),
    "Healthy", "all components are ready", flux = "Unknown" },
  { "no generation in metadata (a dry run, a test)",
    profile({ conditions = { cond("Ready", "True", "AllComponentsReady", "all components are ready") } },
      { name = "shop" }),
    "Healthy", "all components are ready" },
  { "no metadata", { status = { conditions = { cond("Ready", "True", "AllComponentsReady", "fine") } } },
    "Healthy", "fine" },
  { "generation is a string: not compared", profile({ observedGeneration = 1, conditions = {
      cond("Ready", "True", "AllComponentsReady", "fine") } }, { name = "shop", generation = "3" }),
    "Healthy", "fine", flux = "Unknown" },

  -- Ready.
  { "every section not configured",
    profile(status_from({ not_configured("CacheReady"), not_configured("PoolsReady"),
      not_configured("ClickHouseReady"), not_configured("CanaryReady"), not_configured("PoliciesReady") })),
    "Healthy", "all components are ready" },
  { "every component ready",
    profile(status_from({ ok("CacheReady", "Provisioned", "redis up"), ok("PoolsReady", "Published", "sized"),
      ok("ClickHouseReady", "InSync", "2 table(s) in sync"), ok("PoliciesReady", "Evaluated", "cache policy ok"),
      ok("CanaryReady", "Stable", "the primary serves the target's template") })),
    "Healthy", "all components are ready" },
  { "external Redis reachable", component(ok("CacheReady", "ExternalReachable", "using redis://r:6379/0")),
    "Healthy", "all components are ready" },
  { "declared pool limit above the live one (a warning, still ready)",
    component(ok("PoolsReady", "DeclaredAboveLive", "declared serverMaxConnections 200 is above ... 34")),
    "Healthy", "all components are ready" },
  { "canary idle", with_canary("Idle", { message = "primary ready; it serves the current template" }),
    "Healthy", "all components are ready" },
  { "canary promoted", with_canary("Succeeded", { message = "promoted: the primary serves the new template" }),
    "Healthy", "all components are ready" },
  { "canary paused with no run: the next run holds", with_canary("Idle", { paused = true,
      message = "paused by command" }),
    "Healthy", "canary paused: the next run will hold" },
  { "SLO alerts applied", component(ok("AlertsReady", "Applied", "PrometheusRule shop-slo holds 4 alerts")),
    "Healthy", "all components are ready" },
  { "SLO alerts without the PrometheusRule CRD (a warning, still ready)",
    component(ok("AlertsReady", "PrometheusRuleCrdMissing", "monitoring.coreos.com/v1 PrometheusRule is not served")),
    "Healthy", "all components are ready" },
  { "unknown condition types are ignored",
    profile(merge(status_from(others()), { conditions = { cond("SloReady", "False", "NoPrometheusRule", "x"),
      cond("Ready", "True", "AllComponentsReady", "all components are ready"),
      cond("FromTheFuture", "Unknown", "Whatever", "y") } })),
    "Healthy", "all components are ready" },
  { "unknown canary phase with Ready=True", profile(merge(status_from(others()),
      { canary = { phase = "FromTheFuture", weight = 5 } })),
    "Healthy", "all components are ready" },

  -- Work in progress.
  { "Redis not available yet",
    component(working("CacheReady", "WaitingForRedis", "Redis Deployment has no available replica yet")),
    "Progressing", "CacheReady: Redis Deployment has no available replica yet" },
  { "ClickHouse applying", component(working("ClickHouseReady", "Applying", "2 change(s) pending on 1 table(s)")),
    "Progressing", "ClickHouseReady: 2 change(s) pending on 1 table(s)" },
  { "ClickHouse materializing",
    component(working("ClickHouseReady", "Materializing", "1 mutation(s) running, 12 part(s) to do")),
    "Progressing", "1 mutation(s) running, 12 part(s) to do" },
  { "canary initializing", with_canary("Initializing", { message = "waiting for the primary's pods" }),
    "Progressing", "canary Initializing; CanaryReady: waiting for the primary's pods" },
  { "canary paused while initializing (not a run yet)",
    with_canary("Initializing", { paused = true, message = "waiting for the primary's pods" }),
    "Progressing", "canary Initializing" },
  { "canary waiting for pods", with_canary("WaitingForPods", { stage = "1/4", stageIndex = 0, weight = 10,
      message = "scaling the canary to 10% (stage 1)" }),
    "Progressing", "canary WaitingForPods, stage 1/4 at 10%; CanaryReady: scaling the canary to 10% (stage 1)" },
  { "canary holding a stage", with_canary("Progressing", { stage = "2/4", stageIndex = 1, weight = 25,
      achievedWeight = 20, message = "holding 25% for 60s, then analysing" }),
    "Progressing", "canary Progressing, stage 2/4 at 25% (achieved 20%); CanaryReady: holding 25% for 60s" },
  { "canary with a failed check under the limit", with_canary("Progressing", { stage = "3/4", weight = 50,
      failedChecks = 1, message = "failed check 1/3: p99-latency 180 ms (< 150 ms)" }),
    "Progressing", "failed check 1/3" },
  { "canary holding on no data", with_canary("Progressing", { stage = "2/4", weight = 25,
      message = "holding: requests no data" }),
    "Progressing", "holding: requests no data" },
  { "canary promoting", with_canary("Promoting", { stage = "4/4", weight = 100,
      message = "every stage passed: promoting" }),
    "Progressing", "canary Promoting, stage 4/4 at 100%; CanaryReady: every stage passed: promoting" },
  { "canary progressing and ClickHouse materializing",
    with_canary("Progressing", { stage = "2/4", weight = 25, message = "holding 25% for 60s, then analysing" },
      { working("ClickHouseReady", "Materializing", "1 mutation(s) running, 3 part(s) to do") }),
    "Progressing", "ClickHouseReady: 1 mutation(s) running" },
  { "Ready Unknown", profile({ observedGeneration = 3, conditions = { cond("Ready", "Unknown", "Starting", "") } }),
    "Progressing", "Ready is Unknown" },
  { "Ready without a status field", profile({ observedGeneration = 3, conditions = { { type = "Ready" } } }),
    "Progressing", "Ready is not set" },
  { "Ready=False reason Progressing, no other conditions",
    profile({ observedGeneration = 3, conditions = { cond("Ready", "False", "Progressing", "CacheReady: starting") } }),
    "Progressing", "CacheReady: starting" },
  { "unknown canary phase while progressing", profile(merge(status_from({ working("CanaryReady", "Progressing",
      "moving") }), { canary = { phase = "FromTheFuture", weight = 5 } })),
    "Progressing", "CanaryReady: moving" },

  -- Suspended: a run held by `pause`.
  { "canary paused at a stage", with_canary("Progressing", { paused = true, stage = "2/4", stageIndex = 1,
      weight = 25, message = "paused at stage 2/4" }),
    "Suspended", "canary paused at stage 2/4, weight 25%; resume with `perf-operator canary resume shop -n shop`" },
  { "canary paused while waiting for pods", with_canary("WaitingForPods", { paused = true, stage = "1/4",
      weight = 10, message = "paused by command" }),
    "Suspended", "canary paused at stage 1/4, weight 10%" },
  { "canary paused while promoting", with_canary("Promoting", { paused = true, stage = "4/4", weight = 100 }),
    "Suspended", "canary paused at stage 4/4" },
  -- Suspended: a run held by a gate.
  { "a new template waiting for confirm-rollout", with_canary("Waiting", { gate = "confirm-rollout",
      message = "waiting for the confirm-rollout webhooks" }),
    "Suspended", "canary held by its confirm-rollout webhooks; open the gate, or pass it with `perf-operator canary promote shop -n shop`" },
  { "the last stage held by confirm-promotion", with_canary("Progressing", { gate = "confirm-promotion", stage = "4/4",
      weight = 100 }),
    "Suspended", "canary held by its confirm-promotion webhooks at stage 4/4" },
  { "CanaryReady Paused without status.canary",
    profile(status_from({ working("CanaryReady", "Paused", "paused at stage 2/4") }), { name = "web", generation = 3 }),
    "Suspended", "canary paused; resume with `perf-operator canary resume web`" },
  { "canary paused, another component still working",
    with_canary("Progressing", { paused = true, stage = "2/4", weight = 25 },
      { working("ClickHouseReady", "Applying", "1 change(s) pending on 1 table(s)") }),
    "Suspended", "canary paused at stage 2/4" },

  -- Suspended by spec.suspend.
  { "profile suspended while ready", suspended(profile(status_from(others()))),
    "Suspended", "profile suspended (spec.suspend: true): nothing is applied; set spec.suspend to false to resume",
    flux = "Current" }, -- Flux reads Ready, which still describes what was applied
  { "profile suspended in the middle of a run", suspended(with_canary("Progressing", { stage = "2/4", weight = 25 })),
    "Suspended", "canary Progressing, stage 2/4 at 25% frozen" },
  { "profile suspended before its first round", suspended(profile(nil)),
    "Suspended", "profile suspended (spec.suspend: true)" },
  { "profile suspended while a component had failed", suspended(component(failed("CacheReady", "Unreachable",
      "redis down"))),
    "Suspended", "set spec.suspend to false to resume", flux = "Failed" }, -- Flux reads the Degraded kept from before
  -- Held: another profile holds the target (conditions::held(Hold::TargetHeld)).
  { "target held by another profile", profile({ observedGeneration = 3, phase = "Degraded", conditions = {
      cond("Ready", "False", "TargetHeld", "deployment shop is already the target of profile first"),
      cond("Progressing", "False", "TargetHeld", "nothing is applied while another profile holds the target"),
      cond("Degraded", "True", "TargetHeld", "deployment shop is already the target of profile first") } }),
    "Degraded", "TargetHeld: deployment shop is already the target of profile first" },

  -- Degraded.
  { "canary rolled back", with_canary("RolledBack", { stage = "2/4", weight = 0, failedChecks = 3,
      message = "3/3 failed checks, last: p99-latency 180 ms (< 150 ms)" }),
    "Degraded", "CanaryReady: 3/3 failed checks, last: p99-latency 180 ms" },
  { "canary aborted", with_canary("RolledBack", { message = "aborted by command" }),
    "Degraded", "CanaryReady: aborted by command" },
  { "canary deadline exceeded", with_canary("Failed", {
      message = "no progress within 600s in phase WaitingForPods (last: scaling the canary to 10% (stage 1))" }),
    "Degraded", "CanaryReady: no progress within 600s in phase WaitingForPods" },
  { "canary rolled back, status.canary only (no conditions)",
    profile({ observedGeneration = 3, canary = { phase = "RolledBack", weight = 0, stage = "2/4",
      message = "3/3 failed checks" } }),
    "Degraded", "canary RolledBack, stage 2/4: 3/3 failed checks" },
  { "canary workloads not read", component(failed("CanaryReady", "Error", "the canary's workloads were not read")),
    "Degraded", "CanaryReady: the canary's workloads were not read" },
  { "canary paused and another component failed: degraded wins",
    with_canary("Progressing", { paused = true, stage = "2/4", weight = 25 },
      { failed("ClickHouseReady", "Unreachable", "connection refused") }),
    "Degraded", "ClickHouseReady: connection refused" },
  { "work in progress and another component failed",
    with_canary("Progressing", { stage = "2/4", weight = 25, message = "holding" },
      { failed("PoliciesReady", "PinMismatch", "cache policy: sha256 mismatch; published the spec's TTLs") }),
    "Degraded", "PoliciesReady: cache policy: sha256 mismatch" },
  { "invalid spec", invalid("spec.canary.stages: must be strictly increasing and end at 100"),
    "Degraded", "InvalidSpec: spec.canary.stages: must be strictly increasing" },
  { "wrong Redis password", component(failed("CacheReady", "WrongPassword", "WRONGPASS invalid username-password")),
    "Degraded", "CacheReady: WRONGPASS" },
  { "Redis full", component(failed("CacheReady", "OverMemory", "r:6379 is full (noeviction): writes are refused")),
    "Degraded", "writes are refused" },
  { "Redis unreachable", component(failed("CacheReady", "Unreachable", "connection refused")),
    "Degraded", "CacheReady: connection refused" },
  { "owned objects not applied", component(failed("CacheReady", "ApplyFailed", "forbidden: deployments.apps")),
    "Degraded", "CacheReady: forbidden" },
  { "Redis Secret not read", component(failed("CacheReady", "NotObserved", "Redis Secret not read")),
    "Degraded", "Redis Secret not read" },
  { "no randomness for the password", component(failed("CacheReady", "NoRandomness", "getrandom failed")),
    "Degraded", "getrandom failed" },
  { "PostgreSQL unreachable", component(failed("PoolsReady", "Unreachable", "postgres: connection refused")),
    "Degraded", "PoolsReady: postgres: connection refused" },
  { "pools undersized", component(failed("PoolsReady", "Undersized", "postgres needs 12 per pod, allowed 7")),
    "Degraded", "needs 12 per pod, allowed 7" },
  { "pools credentials unavailable",
    component(failed("PoolsReady", "CredentialsUnavailable", "Secret pg-app not found")),
    "Degraded", "Secret pg-app not found" },
  { "ClickHouse refused a statement", component(failed("ClickHouseReady", "Failed", "events: Code: 36")),
    "Degraded", "ClickHouseReady: events: Code: 36" },
  { "ClickHouse credentials unavailable",
    component(failed("ClickHouseReady", "CredentialsUnavailable", "Secret ch not found")),
    "Degraded", "Secret ch not found" },
  { "policy unavailable", component(failed("PoliciesReady", "Unavailable", "rate-limit policy: timeout")),
    "Degraded", "PoliciesReady: rate-limit policy: timeout" },
  { "SLO alert query refused", component(failed("AlertsReady", "QueryRefused", "spec.slo: query does not parse")),
    "Degraded", "AlertsReady: spec.slo: query does not parse" },
  { "PrometheusRule not applied", component(failed("AlertsReady", "ApplyFailed", "forbidden: prometheusrules")),
    "Degraded", "AlertsReady: forbidden: prometheusrules" },
  { "Ready=False with a reason from the future",
    profile({ observedGeneration = 3, conditions = { cond("Ready", "False", "QuotaExceeded", "too many profiles") } }),
    "Degraded", "QuotaExceeded: too many profiles" },
  { "Degraded=True while Ready=True (contradictory)",
    profile({ observedGeneration = 3, conditions = { cond("Ready", "True", "AllComponentsReady", "fine"),
      cond("Degraded", "True", "Unreachable", "CacheReady: connection refused") } }),
    "Degraded", "Unreachable: CacheReady: connection refused" },
  { "phase Degraded without a Ready condition", profile({ observedGeneration = 3, phase = "Degraded" }),
    "Degraded", "no condition says why" },
  { "very long message", invalid("spec.cache: " .. long),
    "Degraded", "InvalidSpec: spec.cache: éé" },

  -- Hostile field types.
  { "canary is a string", profile(merge(status_from(others()), { canary = "Progressing" })),
    "Healthy", "all components are ready" },
  { "canary fields of the wrong types",
    profile(merge(status_from({ working("CanaryReady", "Progressing", "moving") }),
      { canary = { phase = "Progressing", stage = { 2, 4 }, weight = { "25" }, achievedWeight = true,
        paused = "yes", message = { "x" } } })),
    "Progressing", "canary Progressing; CanaryReady: moving" },
  { "condition fields of the wrong types",
    profile({ observedGeneration = 3, conditions = { { type = "Ready", status = true, reason = {}, message = {} } } }),
    "Progressing", "Ready is true" },
  { "a metatable that raises on every read (the safety net)",
    setmetatable({}, { __index = function() error("boom") end }),
    "Unknown", "perf-operator health check failed", export = false },
}

local passed, failures = 0, 0
for _, case in ipairs(cases) do
  local name, obj, want, substring = case[1], case[2], case[3], case[4]
  local shown_status = "-"
  for _, sandboxed in ipairs({ true, false }) do
    local where = sandboxed and "sandbox" or "open libs"
    local hs, problem = run(obj, sandboxed)
    if hs ~= nil then
      shown_status = hs.status
      if hs.status ~= want then
        problem = "status " .. hs.status .. ", want " .. want
      elseif not string.find(hs.message, substring, 1, true) then
        problem = "message does not contain " .. string.format("%q", substring)
      elseif not sandboxed and #hs.message > 1027 then
        problem = "message not clipped: " .. #hs.message .. " bytes"
      elseif not sandboxed and not utf8.len(hs.message) then
        problem = "message clipped inside a character"
      end
    end
    if problem then
      failures = failures + 1
      io.write(string.format("FAIL %s (%s): %s\n  message: %s\n", name, where, problem,
        hs and string.sub(hs.message, 1, 300) or ""))
    else
      passed = passed + 1
    end
  end
  io.write(string.format("  %-11s %s\n", shown_status, name))
end

local json = dofile(root .. "/tests/gitops/json.lua")

if arg[2] == "--export" and arg[3] then
  local exported = {}
  for _, case in ipairs(cases) do
    if case.export ~= false then
      exported[#exported + 1] = { name = case[1], object = case[2], argocd = case[3], message = case[4], flux = case.flux }
    end
  end
  json.export(arg[3], exported)
end

io.write(string.format("%d passed, %d failed\n", passed, failures))
os.exit(failures == 0 and 0 or 1)
