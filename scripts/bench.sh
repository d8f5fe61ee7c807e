#!/usr/bin/env bash
# `make bench`: a control plane of its own in .cluster-bench/, the performance report
# (bench/report.ts: proxy vs bare-TLS floor vs kube-apiserver), the same-run on/off
# comparisons (hardening checks, metrics, authorization) and the change-stream benchmark,
# then cleanup. BENCH_SCALE=N runs the scale run (bench/scale.ts: N Deployments, ready
# time, RSS, /livez under list load) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(hack/node.sh):$PATH"   # the pinned Node.js LTS, also when run directly
export CLUSTER_DIR="$PWD/.cluster-bench"
trap 'hack/control-plane/cluster.sh down >/dev/null 2>&1 || true' EXIT
hack/control-plane/cluster.sh down >/dev/null 2>&1 || true   # a leftover from a killed run
hack/control-plane/cluster.sh up >/dev/null
if [ -n "${BENCH_SCALE:-}" ]; then
  npx tsx bench/scale.ts
else
  npx tsx bench/report.ts
  npx tsx bench/hardening.ts   # issue 8: per-request checks on vs off, same run
  npx tsx bench/metrics.ts     # issue 12: metrics on vs --metrics=false, same run
  npx tsx bench/authz.ts       # issue 7: authorization on vs off (warm decisions), same run
  npx tsx bench/watch.ts       # issue 11: 1,000 concurrent SSE watchers, change-to-event latency
fi
