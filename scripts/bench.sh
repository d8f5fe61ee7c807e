#!/usr/bin/env bash
# `make bench`: a control plane of its own in .cluster-bench/, the read benchmark, the
# same-run on/off comparisons (hardening checks, metrics, authorization) and the
# change-stream benchmark, then cleanup.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(hack/node.sh):$PATH"   # the pinned Node.js LTS, also when run directly
export CLUSTER_DIR="$PWD/.cluster-bench"
trap 'hack/control-plane/cluster.sh down >/dev/null 2>&1 || true' EXIT
hack/control-plane/cluster.sh up >/dev/null
npx tsx bench/reads.ts
npx tsx bench/hardening.ts   # issue 8: per-request checks on vs off, same run
npx tsx bench/metrics.ts    # issue 12: metrics on vs --metrics=false, same run
npx tsx bench/authz.ts       # issue 7: authorization on vs off (warm decisions), same run
npx tsx bench/watch.ts       # issue 11: 1,000 concurrent SSE watchers, change-to-event latency
