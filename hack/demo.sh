#!/usr/bin/env bash
# `make demo`: sample namespaces and Deployments on the local control plane, then the
# proxy in the foreground on https://localhost:8443 with the least-privilege
# ServiceAccount's kubeconfig. Ctrl-C stops the proxy (the cluster keeps running;
# `make cluster-down` removes it).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(hack/control-plane/build.sh --print)"
LISTEN="${DEMO_LISTEN:-127.0.0.1:8443}"
HEALTH="${DEMO_HEALTH_LISTEN:-127.0.0.1:8081}"
PORT="${LISTEN##*:}"
K=("$KUBECTL" --kubeconfig=.cluster/admin.kubeconfig)

sample() { # sample NAMESPACE NAME REPLICAS
  "${K[@]}" create namespace "$1" --dry-run=client -o yaml | "${K[@]}" apply --server-side -f - >/dev/null
  "${K[@]}" -n "$1" create deployment "$2" --image=registry.k8s.io/pause:3.10 --replicas="$3" \
    --dry-run=client -o yaml | "${K[@]}" apply --server-side --field-manager=demo -f - >/dev/null
}
sample default foo 3
sample baz bar 1
sample shop frontend 2
sample shop checkout 4
echo "sample Deployments (no controller-manager runs, so no Pods appear):"
"${K[@]}" get deployments -A -o custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,REPLICAS:.spec.replicas

# The demo client is authorized through its group (certificate O), bound to the scaler
# role by cluster-up; certificates made before groups existed lack it.
if ! openssl x509 -in certs/client.crt -noout -subject 2>/dev/null | grep -q 'O *= *k8s-api-proxy-demo'; then
  echo "demo: certs/client.crt is not in group k8s-api-proxy-demo, so the proxy would answer 403;" >&2
  echo "      run 'make generate-certs FORCE=1' (or bind its CN to a role, see README 'Clients and authorization')" >&2
fi

C="curl --cacert ./certs/ca.crt --cert ./certs/client.crt --key ./certs/client.key"
cat <<MSG

k8s-api-proxy on https://localhost:$PORT (probes on http://$HEALTH). In another shell:

  $C https://localhost:$PORT/healthz
  $C https://localhost:$PORT/deployments
  $C "https://localhost:$PORT/deployments?namespace=shop"
  $C https://localhost:$PORT/deployments/default/foo/replicas
  $C -X PUT -H 'Content-Type: application/json' -d '{"replicas": 5}' https://localhost:$PORT/deployments/default/foo/replicas

Watch the cache follow the cluster:
  $KUBECTL --kubeconfig=.cluster/admin.kubeconfig -n default scale deployment foo --replicas=7

Ctrl-C stops the proxy; 'make cluster-down' stops the control plane.

MSG
exec ./bin/api --kubeconfig .cluster/proxy.kubeconfig --listen "$LISTEN" --health-listen "$HEALTH"
