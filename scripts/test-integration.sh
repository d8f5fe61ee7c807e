#!/usr/bin/env bash
# Integration tier: starts the real control plane in .cluster-test/ (its own directory,
# so a `make demo` cluster is left alone), runs test/integration/*.test.ts one file at a
# time, and always stops the control plane again, also when a test fails or the run is
# interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(hack/node.sh):$PATH"   # the pinned Node.js LTS, also when run directly
echo "integration tier on node $(node --version) ($(command -v node))"
export CLUSTER_DIR="${CLUSTER_DIR:-$PWD/.cluster-test}"
cleanup() { hack/control-plane/cluster.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
hack/control-plane/cluster.sh down >/dev/null 2>&1 || true   # a leftover from a killed run
hack/control-plane/cluster.sh up
files=("${@:-test/integration/*.test.ts}")
# shellcheck disable=SC2068
node --import tsx --test --test-reporter=spec --test-concurrency=1 ${files[@]}
