#!/usr/bin/env bash
# `make deploy` / `make undeploy`: install or remove the Helm release.
#
#   hack/deploy.sh install     helm upgrade --install (idempotent), namespace created if missing,
#                              certificates read from certs/ (make generate-certs)
#   hack/deploy.sh uninstall   remove the release (and with it the ClusterRole and
#                              ClusterRoleBinding) and the namespace; exit 0 when nothing is installed
#
# Environment: KUBECONFIG (the target cluster; default kubectl's), NAMESPACE (k8s-api-proxy),
# RELEASE (k8s-api-proxy), IMG (registry/repo:tag; default the chart's image), CERTS_DIR
# (certs), HELM_FLAGS (extra helm flags, e.g. "--wait --timeout 2m" on a real cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(hack/control-plane/build.sh --print)"
NAMESPACE="${NAMESPACE:-k8s-api-proxy}"
RELEASE="${RELEASE:-k8s-api-proxy}"
CERTS_DIR="${CERTS_DIR:-certs}"
CHART=charts/k8s-api-proxy
[ -x "$HELM" ] || hack/control-plane/build.sh >&2

case "${1:-}" in
  install)
    for f in ca.crt server.crt server.key; do
      [ -r "$CERTS_DIR/$f" ] || { echo "deploy: $CERTS_DIR/$f missing; run 'make generate-certs' first" >&2; exit 2; }
    done
    image=()
    if [ -n "${IMG:-}" ]; then
      repo="${IMG%:*}"; tag="${IMG##*:}"
      [ "$repo" = "$IMG" ] && tag=latest
      image=(--set "image.repository=$repo" --set "image.tag=$tag")
    fi
    # shellcheck disable=SC2086
    "$HELM" upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace \
      --set "tls.caCrt=$(base64 -w0 "$CERTS_DIR/ca.crt")" \
      --set "tls.crt=$(base64 -w0 "$CERTS_DIR/server.crt")" \
      --set "tls.key=$(base64 -w0 "$CERTS_DIR/server.key")" \
      "${image[@]}" ${HELM_FLAGS:-}
    ;;
  uninstall)
    "$HELM" uninstall "$RELEASE" --namespace "$NAMESPACE" --ignore-not-found
    "$KUBECTL" delete namespace "$NAMESPACE" --ignore-not-found --wait=false
    ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
