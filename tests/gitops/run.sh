#!/usr/bin/env bash
# The GitOps checks; no service needed. The Argo CD health check (charts/perf-operator/argocd/health.lua) on every
# status case and the resource actions (charts/perf-operator/argocd/actions) on every canary phase, in Lua 5.4 (Argo CD's sandbox and open libraries), then the same cases in the engines themselves:
# gopher-lua as Argo CD runs it, and the Flux Kustomization's health expressions in cel-go (tests/gitops/engines,
# built from the Go module proxy). Then examples/gitops: every YAML parses, and the argocd-cm example embeds the
# health check exactly.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v lua5.4 >/dev/null || { echo "lua5.4 is missing (Debian's lua5.4; tests/support/install.sh)" >&2; exit 1; }
python3 -c 'import yaml' 2>/dev/null || { echo "PyYAML is missing (Debian's python3-yaml)" >&2; exit 1; }
work="$(mktemp -d /tmp/perf-gitops.XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "== Argo CD health check, lua5.4"
lua5.4 tests/gitops/health_test.lua . --export "$work/cases.json"

echo "== Argo CD resource actions, lua5.4"
lua5.4 tests/gitops/actions_test.lua . --export "$work/actions.json"

echo "== the same cases in gopher-lua (Argo CD) and cel-go (Flux)"
(cd tests/gitops/engines && go build -mod=readonly -buildvcs=false -o "$work/engines" .)
"$work/engines" "$work/cases.json" charts/perf-operator/argocd/health.lua examples/gitops/flux/kustomizations.yaml \
    "$work/actions.json" charts/perf-operator/argocd/actions

echo "== examples/gitops"
examples/gitops/argocd/generate.sh --stdout | diff -u examples/gitops/argocd/argocd-cm.yaml - \
    || { echo "argocd-cm.yaml is not what generate.sh writes: run examples/gitops/argocd/generate.sh" >&2; exit 1; }
python3 - examples/gitops charts/perf-operator/argocd/health.lua <<'EOF'
import pathlib, sys, yaml

root, source = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).read_text()
KEY = "resource.customizations.health.perf.operator.dev_PerformanceProfile"

def embedded(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == KEY:
                yield v
            yield from embedded(v)
    elif isinstance(node, list):
        for v in node:
            yield from embedded(v)

problems, files, docs, copies = [], 0, 0, 0
for path in sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml")):
    files += 1
    try:
        loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        problems.append(f"{path}: {e}")
        continue
    for i, doc in enumerate(loaded, 1):
        docs += 1
        # `perf-operator validate -f examples/` reports a document without apiVersion and kind.
        if not (isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind")):
            problems.append(f"{path}: document {i} has no apiVersion and kind")
        for value in embedded(doc):
            copies += 1
            if value != source:
                problems.append(f"{path}: {KEY} differs from charts/perf-operator/argocd/health.lua")
if copies == 0:
    problems.append(f"no {KEY} found under {root}")
for p in problems:
    print("FAIL", p)
print(f"yaml: {files} files, {docs} documents; {copies} embedded health check(s) equal to the source")
print(f"{files + copies - len(problems)} passed, {len(problems)} failed")
sys.exit(1 if problems else 0)
EOF
