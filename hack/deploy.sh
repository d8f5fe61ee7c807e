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
[ -x "$HELM" ] && [ -x "$KUBECTL" ] || hack/control-plane/build.sh helm kubectl >&2

case "${1:-}" in
  install)
    for f in ca.crt server.crt server.key; do
      [ -r "$CERTS_DIR/$f" ] || { echo "deploy: $CERTS_DIR/$f missing; run 'make generate-certs' first" >&2; exit 2; }
    done
    # Certificates go to helm in a private values file, never on a command line
    # (where `ps` would show the key).
    values="$(mktemp)"
    trap 'rm -f "$values"' EXIT
    chmod 600 "$values"
    printf 'tls:\n  caCrt: %s\n  crt: %s\n  key: %s\n' \
      "$(base64 -w0 "$CERTS_DIR/ca.crt")" "$(base64 -w0 "$CERTS_DIR/server.crt")" "$(base64 -w0 "$CERTS_DIR/server.key")" > "$values"
    image=()
    if [ -n "${IMG:-}" ]; then
      # registry:5000/repo:tag, repo@sha256:..., or repo (tag "latest").
      name="${IMG%@*}"; digest=""; [ "$name" != "$IMG" ] && digest="${IMG#*@}"
      last="${name##*/}"; tag=""
      case "$last" in *:*) tag="${last##*:}"; name="${name%:*}" ;; esac
      image=(--set "image.repository=$name" --set "image.tag=${tag:-latest}" --set "image.digest=$digest")
    else
      echo "deploy: IMG is not set; installing the chart's default image $(sed -n 's/^  repository: //p' "$CHART/values.yaml"). Set IMG=registry/repo:tag to use yours." >&2
    fi
    # shellcheck disable=SC2086
    "$HELM" upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace \
      -f "$values" "${image[@]}" ${HELM_FLAGS:-}
    ;;
  uninstall)
    "$HELM" uninstall "$RELEASE" --namespace "$NAMESPACE" --ignore-not-found
    "$KUBECTL" delete namespace "$NAMESPACE" --ignore-not-found --wait=false
    ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
