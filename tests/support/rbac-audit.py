#!/usr/bin/env python3
"""Least privilege, proven: compares the verbs the chart grants the operator with the verbs the end-to-end run used.

    rbac-audit.py AUDIT_LOG [RELEASE]

Reads the API server's audit log (tests/support/control-plane.sh writes one with every request's metadata) for the
requests of the chart's ServiceAccount (system:serviceaccount:RELEASE:RELEASE, release perf-operator by default)
and the release's live ClusterRole and leader Role (kubectl, admin identity). Fails when
- a request of the operator was refused by authorization (a verb the code needs and the chart does not grant), or
- a verb is granted that no request used, unless it is listed in NOT_EXERCISED below with the reason the suite
  cannot exercise it.
Prints both sets either way, so a run shows what the operator did.
"""

import collections
import json
import subprocess
import sys

# (apiGroup, resource[/subresource], verb) granted on purpose though the suite's run never uses it, and why.
NOT_EXERCISED = {
    ("perf.operator.dev", "performanceprofiles/finalizers", "update"):
        "owned objects set blockOwnerDeletion; only clusters with the OwnerReferencesPermissionEnforcement "
        "admission plugin check this verb, and the suite's API server does not run it",
    ("apps", "statefulsets", "get"):
        "an owned object is read from the watch cache; a GET only when a round runs before the cache has listed, "
        "which the suite's operators (listed before they lead) never meet for a StatefulSet",
    ("apps", "deployments", "delete"):
        "a provisioned Redis switched from cache-only to persistence retires its Deployment (the suite switches "
        "the other way, which deletes the StatefulSet)",
}


def kubectl_json(*args):
    out = subprocess.run(["kubectl", *args, "-o", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"rbac-audit: kubectl {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def granted(release):
    """(group, resource, verb) of the release's ClusterRole and leader Role."""
    rules = kubectl_json("get", "clusterrole", release)["rules"]
    rules += kubectl_json("get", "role", f"{release}-leader", "-n", release)["rules"]
    out = set()
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    out.add((group, resource, verb))
    return out


def with_apply_creates(seen):
    """A server-side apply is a patch that the API server also authorizes as create when the object is new (the
    audit log records the patch only): every resource patched counts as created."""
    out = collections.Counter(seen)
    for (group, resource, verb), n in seen.items():
        if verb == "patch":
            out[(group, resource, "create")] += 0
    return out


def used(log_path, user):
    """Counts of (group, resource, verb) the user's requests used, and those authorization refused."""
    seen, refused = collections.Counter(), collections.Counter()
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if user not in line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("user", {}).get("username") != user or event.get("stage") != "ResponseComplete":
                continue
            ref = event.get("objectRef") or {}
            if not ref.get("resource"):
                continue  # discovery and /version: allowed to every authenticated user
            resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            key = (ref.get("apiGroup", ""), resource, event.get("verb", ""))
            seen[key] += 1
            if (event.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid":
                refused[key] += 1
    return seen, refused


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    log_path, release = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "perf-operator")
    user = f"system:serviceaccount:{release}:{release}"
    grants = granted(release)
    seen, refused = used(log_path, user)
    may_create = with_apply_creates(seen)
    if not seen:
        sys.exit(f"rbac-audit: no request of {user} in {log_path}: did the end-to-end suite run?")
    unused = sorted(g for g in grants if g not in may_create and g not in NOT_EXERCISED)
    print(f"rbac-audit: {sum(seen.values())} requests of {user}")
    for (group, resource, verb), n in sorted(seen.items()):
        mark = "REFUSED " if (group, resource, verb) in refused else ""
        print(f"  used     {mark}{verb:7} {group or 'core'}/{resource}  x{n}")
    for group, resource, verb in sorted(g for g in grants if g not in seen and g in may_create):
        print(f"  granted  {verb:7} {group or 'core'}/{resource}  (server-side applies that create)")
    for group, resource, verb in sorted(g for g in grants if g in NOT_EXERCISED and g not in seen):
        print(f"  granted  {verb:7} {group or 'core'}/{resource}  (not exercised: {NOT_EXERCISED[(group, resource, verb)]})")
    failed = False
    for (group, resource, verb), n in sorted(refused.items()):
        print(f"rbac-audit: {n} requests to {verb} {group or 'core'}/{resource} were refused: grant it in "
              "charts/perf-operator/templates/rbac.yaml", file=sys.stderr)
        failed = True
    for group, resource, verb in unused:
        print(f"rbac-audit: {verb} {group or 'core'}/{resource} is granted and no request used it: drop it from "
              "charts/perf-operator/templates/rbac.yaml (or say in NOT_EXERCISED why the suite cannot use it)",
              file=sys.stderr)
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
