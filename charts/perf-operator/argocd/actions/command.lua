-- Argo CD resource action of a PerformanceProfile: asks the operator to run one canary command, by writing the
-- perf.operator.dev/canary-command annotation as `kubectl perf canary VERB` does. The verb is set when the
-- definitions are generated (examples/gitops/argocd/generate.sh). The value is VERB@STAMP: the operator acts on each
-- value once, so the stamp makes the same verb count again; it never repeats the value acted on last.
-- gopher-lua without the string library: base functions only.

local VERB = "__VERB__"
local ANNOTATION = "perf.operator.dev/canary-command"

local stamp = "argocd"
local loaded, os_lib = pcall(require, "os")
if loaded and type(os_lib) == "table" and type(os_lib.time) == "function" then
  stamp = tostring(os_lib.time())
end
local value = VERB .. "@" .. stamp

local function table_at(t, key)
  if type(t[key]) ~= "table" then
    t[key] = {}
  end
  return t[key]
end

local annotations = table_at(table_at(obj, "metadata"), "annotations")
local status = obj.status
local last = type(status) == "table" and type(status.canary) == "table" and status.canary.lastCommand or nil
if value == last or value == annotations[ANNOTATION] then
  value = value .. "-1"
end
annotations[ANNOTATION] = value
return obj
