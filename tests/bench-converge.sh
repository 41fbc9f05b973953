#!/usr/bin/env bash
# The convergence benchmark against a real API server (tests/e2e/benches/converge.rs) alone: N profiles for two
# sizes (PERF_BENCH_SIZES=500,2000 by default), the table and the 2000/500 ratios. See tests/bench-scale.sh.
PERF_BENCHES=converge exec "$(dirname "$0")/bench-scale.sh"
