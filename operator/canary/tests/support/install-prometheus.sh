#!/bin/sh
# Installs the Prometheus server the canary tests start themselves (Debian 12: 2.42).
# The tests find it at $PROMETHEUS_BIN (default /usr/bin/prometheus); the Debian service is not used.
set -eu
if [ -x "${PROMETHEUS_BIN:-/usr/bin/prometheus}" ]; then
    exit 0
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
# The package starts a service on :9090; the tests do not need it.
(systemctl stop prometheus 2>/dev/null || service prometheus stop 2>/dev/null) || true
