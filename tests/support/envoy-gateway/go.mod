// Test infrastructure only: Envoy Gateway's CRDs (the YAML its module ships in charts/gateway-helm) at a pinned
// version, copied once per machine by tests/support/fetch-envoy-gateway-crds.sh. Nothing here is built.
module perf-operator.test/envoy-gateway

go 1.26.0

require github.com/envoyproxy/gateway v1.9.1
