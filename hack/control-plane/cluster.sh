#!/usr/bin/env bash
# Runs a real, local Kubernetes control plane (etcd + kube-apiserver, RBAC on) on
# loopback, for the tests and the demo. No controller-manager, scheduler or kubelet:
# see test/helpers/cluster.ts for what that means for Deployments and Pods.
#
# Usage: hack/control-plane/cluster.sh up|down|status|stop-apiserver|start-apiserver
#
#   up               start (or repair) the cluster, bootstrap the proxy's identity;
#                    idempotent: a running cluster is left as is, a half-running one is
#                    completed on the same data, ports and keys (old tokens stay valid)
#   down             stop both processes and delete .cluster/; exit 0 when nothing runs
#   status           print what runs; exit 0 when the API server answers /readyz
#   stop-apiserver   stop kube-apiserver only (etcd and its data stay): an outage
#   start-apiserver  start kube-apiserver again on the same data and keys
#
# Environment: CLUSTER_DIR (default <repo>/.cluster), READY_TIMEOUT_SECONDS (default 90).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
D="${CLUSTER_DIR:-$ROOT/.cluster}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-90}"
RBAC_DIR="$ROOT/charts/k8s-api-proxy/rbac"
RBAC_FILE="$RBAC_DIR/clusterrole.yaml"
# The demo client certificate's group (hack/certs.ts DEMO_CLIENT_GROUP), bound to the scaler role.
DEMO_CLIENT_GROUP=k8s-api-proxy-demo
PROXY_NS=k8s-api-proxy
PROXY_SA=k8s-api-proxy
# The Helm release `make deploy` installs by default; the chart names cluster-scoped
# objects <fullname>-<namespace> (here the release name is the full name), so these are
# the names it renders and can adopt.
RELEASE=k8s-api-proxy
PROXY_RBAC="$RELEASE-$PROXY_NS"
PROXY_TOKEN_DURATION=48h

eval "$("$HERE/build.sh" --print)"

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

binary_of() { # binary_of NAME -> the path of the binary that NAME runs
  case "$1" in etcd) echo "$ETCD" ;; kube-apiserver) echo "$KUBE_APISERVER" ;; *) die "unknown process $1" ;; esac
}

pid_runs() { # pid_runs PID BINARY -> 0 when PID is a live (not zombie) process running BINARY
  local pid="$1" bin="$2" state comm exe
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # `kill -0` also succeeds for a zombie (exited, not yet reaped) and for an unrelated
  # process that was given a recycled PID; check the state and the executable instead.
  state="$(ps -o stat= -p "$pid" 2>/dev/null | tr -d ' ')" || return 1
  case "$state" in ''|Z*|X*) return 1 ;; esac
  if [ -e "/proc/$pid/exe" ]; then
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
    exe="${exe% (deleted)}"   # the binary was rebuilt in place since the process started
    [ "$exe" = "$(readlink -f "$bin")" ]
  else # no /proc (macOS): compare the command name
    comm="$(ps -o comm= -p "$pid" 2>/dev/null)" || return 1
    [ "$(basename "$comm")" = "$(basename "$bin")" ]
  fi
}

alive() { # alive NAME -> 0 when .cluster/NAME.pid names a live process of NAME's binary
  local f="$D/$1.pid"
  [ -f "$f" ] && pid_runs "$(cat "$f")" "$(binary_of "$1")"
}

stop_proc() { # stop_proc NAME: SIGTERM, wait up to 15 s, then SIGKILL; never signals another binary
  local f="$D/$1.pid" pid bin
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  bin="$(binary_of "$1")"
  if pid_runs "$pid" "$bin"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do pid_runs "$pid" "$bin" || break; sleep 0.1; done
    pid_runs "$pid" "$bin" && kill -9 "$pid" 2>/dev/null || true
    # Exited: give whoever reaps it a moment to do so; an unreaped zombie holds no port or
    # file, so do not wait for ever (kill -0 only probes, it signals nothing).
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

ensure_binaries() {
  if [ ! -x "$ETCD" ] || [ ! -x "$KUBE_APISERVER" ] || [ ! -x "$KUBECTL" ]; then
    "$HERE/build.sh" etcd kube-apiserver kubectl >&2
  fi
}

# Ports, keys and the admin token are made once per .cluster/ and reused by every
# restart, so a repaired cluster keeps serving the same URL and honouring old tokens.
ensure_state() {
  mkdir -p "$D/logs" "$D/certs" "$D/etcd"
  chmod 700 "$D"
  if [ ! -f "$D/ports.env" ]; then
    printf 'ETCD_CLIENT_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\n' \
      "$(free_port)" "$(free_port)" "$(free_port)" > "$D/ports.env"
  fi
  if [ ! -f "$D/certs/sa.key" ]; then
    openssl genrsa -out "$D/certs/sa.key" 2048 2>/dev/null
    openssl rsa -in "$D/certs/sa.key" -pubout -out "$D/certs/sa.pub" 2>/dev/null
  fi
  if [ ! -f "$D/certs/client-ca.key" ]; then
    # A CA for client-certificate users (tests of kubeconfig client-certificate fields).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=local-client-ca \
      -keyout "$D/certs/client-ca.key" -out "$D/certs/client-ca.crt" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
  fi
  if [ ! -f "$D/tokens.csv" ]; then
    (umask 077; echo "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n'),admin,admin,system:masters" > "$D/tokens.csv")
  fi
}

start_etcd() {
  # shellcheck disable=SC1091
  . "$D/ports.env"
  log "starting etcd on 127.0.0.1:$ETCD_CLIENT_PORT"
  setsid nohup "$ETCD" --name default --data-dir "$D/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" \
    >> "$D/logs/etcd.log" 2>&1 < /dev/null &
  echo $! > "$D/etcd.pid"
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health" 2>/dev/null | grep -q '"health":"true"'; then return 0; fi
    alive etcd || die "etcd exited; see $D/logs/etcd.log"
    sleep 0.2
  done
  die "etcd did not become healthy within 20 s; see $D/logs/etcd.log"
}

start_apiserver() {
  # shellcheck disable=SC1091
  . "$D/ports.env"
  log "starting kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
  # --advertise-address: an offline box has no default route to derive it from.
  # --endpoint-reconciler-type=none: a loopback address may not be written to the
  #   kubernetes Endpoints. --disable-admission-plugins=ServiceAccount: no
  #   controller-manager creates the `default` ServiceAccount that plugin requires.
  setsid nohup "$KUBE_APISERVER" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --cert-dir="$D/certs" \
    --token-auth-file="$D/tokens.csv" \
    --client-ca-file="$D/certs/client-ca.crt" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$D/certs/sa.pub" \
    --service-account-signing-key-file="$D/certs/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --disable-admission-plugins=ServiceAccount \
    --allow-privileged=true --v=1 \
    >> "$D/logs/kube-apiserver.log" 2>&1 < /dev/null &
  echo $! > "$D/kube-apiserver.pid"
  local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
  while [ $SECONDS -lt $deadline ]; do
    if curl -fsSk --max-time 2 "https://127.0.0.1:$APISERVER_PORT/readyz" 2>/dev/null | grep -q '^ok'; then
      log "kube-apiserver ready"
      return 0
    fi
    alive kube-apiserver || die "kube-apiserver exited; see $D/logs/kube-apiserver.log"
    sleep 0.5
  done
  die "kube-apiserver not ready after ${READY_TIMEOUT_SECONDS}s (READY_TIMEOUT_SECONDS); see $D/logs/kube-apiserver.log"
}

write_kubeconfig() { # write_kubeconfig FILE USER TOKEN [NAMESPACE]
  local f="$1" tmp="$1.tmp"
  # shellcheck disable=SC1091
  . "$D/ports.env"
  rm -f "$tmp"
  (umask 077
   "$KUBECTL" config --kubeconfig="$tmp" set-cluster local --server="https://127.0.0.1:$APISERVER_PORT" \
     --certificate-authority="$D/certs/apiserver.crt" --embed-certs=true >/dev/null
   "$KUBECTL" config --kubeconfig="$tmp" set-credentials "$2" --token="$3" >/dev/null
   "$KUBECTL" config --kubeconfig="$tmp" set-context "$2" --cluster=local --user="$2" ${4:+--namespace="$4"} >/dev/null
   "$KUBECTL" config --kubeconfig="$tmp" use-context "$2" >/dev/null)
  mv "$tmp" "$f"
}

apply_as() { # apply_as FILE NAME: apply the object in FILE under metadata.name NAME (admin)
  "$KUBECTL" --kubeconfig="$D/admin.kubeconfig" create --dry-run=client -o json -f "$1" \
    | NAME="$2" node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);r.metadata.name=process.env.NAME;process.stdout.write(JSON.stringify(r))})' \
    | "$KUBECTL" --kubeconfig="$D/admin.kubeconfig" apply --server-side -f - >/dev/null
}

bootstrap() {
  local admin="$D/admin.kubeconfig" k
  write_kubeconfig "$admin" admin "$(cut -d, -f1 "$D/tokens.csv")"
  k=("$KUBECTL" --kubeconfig="$admin")
  # RBAC bootstrap roles are written by a post-start hook; wait until admin may act.
  for _ in $(seq 1 60); do "${k[@]}" get ns default >/dev/null 2>&1 && break; sleep 0.5; done
  # No namespace controller runs here, so a deleted namespace (e.g. after `make undeploy`)
  # stays Terminating for ever. Do its controller's last step: drop the finalizer.
  if [ "$("${k[@]}" get namespace "$PROXY_NS" -o jsonpath='{.status.phase}' 2>/dev/null)" = Terminating ]; then
    "${k[@]}" get namespace "$PROXY_NS" -o json \
      | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const n=JSON.parse(s);n.spec.finalizers=[];process.stdout.write(JSON.stringify(n))})' \
      | "${k[@]}" replace --raw "/api/v1/namespaces/$PROXY_NS/finalize" -f - >/dev/null
    for _ in $(seq 1 50); do "${k[@]}" get namespace "$PROXY_NS" >/dev/null 2>&1 || break; sleep 0.1; done
  fi
  "${k[@]}" create namespace "$PROXY_NS" --dry-run=client -o yaml | "${k[@]}" apply --server-side -f - >/dev/null
  "${k[@]}" -n "$PROXY_NS" create serviceaccount "$PROXY_SA" --dry-run=client -o yaml | "${k[@]}" apply --server-side -f - >/dev/null
  # The rules from the chart's files, under the names the chart gives its ClusterRoles:
  # the proxy's own, and the two client roles (<name>-viewer, <name>-scaler).
  apply_as "$RBAC_FILE" "$PROXY_RBAC"
  apply_as "$RBAC_DIR/client-viewer.yaml" "$PROXY_RBAC-viewer"
  apply_as "$RBAC_DIR/client-scaler.yaml" "$PROXY_RBAC-scaler"
  "${k[@]}" create clusterrolebinding "$PROXY_RBAC" --clusterrole="$PROXY_RBAC" \
    --serviceaccount="$PROXY_NS:$PROXY_SA" --dry-run=client -o yaml | "${k[@]}" apply --server-side -f - >/dev/null
  # The demo: clients in group k8s-api-proxy-demo (the O of `make generate-certs`' client
  # certificate) may list and scale everywhere, so the README's curl commands work.
  "${k[@]}" create clusterrolebinding k8s-api-proxy-demo --clusterrole="$PROXY_RBAC-scaler" \
    --group="$DEMO_CLIENT_GROUP" --dry-run=client -o yaml | "${k[@]}" apply --server-side -f - >/dev/null
  # Mark the objects the chart also renders as belonging to the Helm release $RELEASE in $PROXY_NS, so that
  # `make deploy` against this cluster adopts them instead of failing on "exists and
  # cannot be imported" (the chart renders the same names for that release).
  local obj
  for obj in "-n $PROXY_NS serviceaccount/$PROXY_SA" "clusterrole/$PROXY_RBAC" "clusterrolebinding/$PROXY_RBAC" \
             "clusterrole/$PROXY_RBAC-viewer" "clusterrole/$PROXY_RBAC-scaler"; do
    # shellcheck disable=SC2086
    "${k[@]}" label --overwrite $obj app.kubernetes.io/managed-by=Helm >/dev/null
    # shellcheck disable=SC2086
    "${k[@]}" annotate --overwrite $obj meta.helm.sh/release-name="$RELEASE" meta.helm.sh/release-namespace="$PROXY_NS" >/dev/null
  done
  local token
  token="$("${k[@]}" -n "$PROXY_NS" create token "$PROXY_SA" --duration="$PROXY_TOKEN_DURATION")"
  write_kubeconfig "$D/proxy.kubeconfig" "$PROXY_SA" "$token" "$PROXY_NS"
  log "admin kubeconfig: $admin"
  log "proxy kubeconfig: $D/proxy.kubeconfig (ServiceAccount $PROXY_NS/$PROXY_SA, ClusterRole $PROXY_RBAC)"
}

cmd_up() {
  ensure_binaries
  ensure_state
  if alive kube-apiserver && ! alive etcd; then
    log "kube-apiserver runs without etcd: restarting it after etcd"
    stop_proc kube-apiserver
  fi
  alive etcd || start_etcd
  alive kube-apiserver || start_apiserver
  bootstrap
}

cmd_down() {
  stop_proc kube-apiserver
  stop_proc etcd
  rm -rf "$D"
  log "down"
}

cmd_status() {
  local rc=0
  if alive etcd; then echo "etcd: running (pid $(cat "$D/etcd.pid"))"; else echo "etcd: stopped"; rc=1; fi
  if alive kube-apiserver; then echo "kube-apiserver: running (pid $(cat "$D/kube-apiserver.pid"))"; else echo "kube-apiserver: stopped"; rc=1; fi
  if [ -f "$D/ports.env" ]; then
    # shellcheck disable=SC1091
    . "$D/ports.env"
    echo "server: https://127.0.0.1:$APISERVER_PORT"
    echo "readyz: $(curl -sSk --max-time 2 "https://127.0.0.1:$APISERVER_PORT/readyz" 2>&1 || true)"
  fi
  [ -f "$D/admin.kubeconfig" ] && echo "admin kubeconfig: $D/admin.kubeconfig"
  [ -f "$D/proxy.kubeconfig" ] && echo "proxy kubeconfig: $D/proxy.kubeconfig"
  return $rc
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  stop-apiserver) stop_proc kube-apiserver ;;
  start-apiserver)
    [ -f "$D/ports.env" ] || die "no cluster state in $D; run '$0 up' first"
    alive etcd || die "etcd is not running; run '$0 up' to repair"
    alive kube-apiserver || start_apiserver ;;
  *) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
