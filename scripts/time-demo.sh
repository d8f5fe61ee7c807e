#!/usr/bin/env bash
# Time from `make demo` to the first answer of `curl …/deployments`, as the README reports
# it. Warm by default (everything cached). COLD=1 starts from empty caches in a temporary
# directory, as on a fresh machine: Go's module and build caches, the control-plane
# binaries, npm's cache, node_modules, bin/ and certs/ (the machine's own caches are left alone).
# The demo runs on free ports with its own .cluster/, which is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(hack/node.sh):$PATH"
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port="$(free_port)"
export DEMO_LISTEN="127.0.0.1:$port" DEMO_HEALTH_LISTEN="127.0.0.1:$(free_port)"
log="$(mktemp)"
if [ "${COLD:-}" = 1 ]; then
  tmp="$(mktemp -d)"
  export XDG_CACHE_HOME="$tmp/cache" GOCACHE="$tmp/gocache" GOMODCACHE="$tmp/gomod" npm_config_cache="$tmp/npm"
  rm -rf node_modules bin certs
  echo "cold: caches in $tmp"
fi
hack/control-plane/cluster.sh down >/dev/null 2>&1 || true
start=$(date +%s.%N)
setsid make demo >"$log" 2>&1 &
demo=$!
cleanup() {
  kill -- -"$demo" 2>/dev/null || true
  hack/control-plane/cluster.sh down >/dev/null 2>&1 || true
  if [ -n "${tmp:-}" ]; then chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"; fi
}
trap cleanup EXIT
until curl -sf --cacert certs/ca.crt --cert certs/client.crt --key certs/client.key "https://localhost:$port/deployments" >/dev/null 2>&1; do
  if ! kill -0 "$demo" 2>/dev/null; then echo "make demo exited early:"; tail -20 "$log"; exit 1; fi
  sleep 0.2
done
printf "%s make demo: first answer after %.1f s\n" "$([ "${COLD:-}" = 1 ] && echo cold || echo warm)" "$(echo "$(date +%s.%N) - $start" | bc)"
