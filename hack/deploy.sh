#!/usr/bin/env bash
# `make deploy` / `make undeploy`: install or remove the Helm release.
#
#   hack/deploy.sh install     helm upgrade --install (idempotent); a missing namespace is
#                              created and marked as created here; certificates read from
#                              certs/ (make generate-certs), the client pair enables `helm test`
#   hack/deploy.sh uninstall   remove the release (and with it the ClusterRole and
#                              ClusterRoleBinding); delete the namespace only when install
#                              created it and nothing else is left in it; exit 0 when
#                              nothing is installed
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
# Set on a namespace this script created, so uninstall knows it may delete it.
CREATED_BY_KEY=k8s-api-proxy/created-by
CREATED_BY_VALUE=make-deploy
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
    if [ -r "$CERTS_DIR/client.crt" ] && [ -r "$CERTS_DIR/client.key" ]; then
      printf 'helmTest:\n  enabled: true\n  clientCrt: %s\n  clientKey: %s\n' \
        "$(base64 -w0 "$CERTS_DIR/client.crt")" "$(base64 -w0 "$CERTS_DIR/client.key")" >> "$values"
    fi
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
    if ! err="$("$KUBECTL" get namespace "$NAMESPACE" -o name 2>&1 >/dev/null)"; then
      case "$err" in *NotFound*) ;; *) echo "deploy: cannot read namespace $NAMESPACE: $err" >&2; exit 1 ;; esac
      "$KUBECTL" create namespace "$NAMESPACE" --dry-run=client -o yaml \
        | "$KUBECTL" annotate -f - --local -o yaml "$CREATED_BY_KEY=$CREATED_BY_VALUE" \
        | "$KUBECTL" create -f - >/dev/null
      echo "deploy: created namespace $NAMESPACE (annotated $CREATED_BY_KEY=$CREATED_BY_VALUE; make undeploy deletes it when nothing else is left in it)" >&2
    fi
    # shellcheck disable=SC2086
    "$HELM" upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" \
      -f "$values" "${image[@]}" ${HELM_FLAGS:-}
    ;;
  uninstall)
    "$HELM" uninstall "$RELEASE" --namespace "$NAMESPACE" --ignore-not-found
    created_by="$("$KUBECTL" get namespace "$NAMESPACE" --ignore-not-found -o "jsonpath={.metadata.annotations.${CREATED_BY_KEY//./\\.}}")"
    if [ "$created_by" != "$CREATED_BY_VALUE" ]; then
      exit 0 # not created by make deploy (or already gone): never ours to delete
    fi
    # Anything a person or another tool put there keeps the namespace: objects without an
    # owner (owned ones go with their owner), other than what Kubernetes creates in every
    # namespace, events, and leftovers of this release (e.g. a failed `helm test` Pod).
    types="$("$KUBECTL" api-resources --verbs=list,delete --namespaced -o name | grep -vxE 'events|events\.events\.k8s\.io' | paste -sd, -)"
    if ! objects="$("$KUBECTL" get "$types" -n "$NAMESPACE" -o json)"; then
      echo "undeploy: could not list what is left in namespace $NAMESPACE; keeping it" >&2
      exit 0
    fi
    others="$(RELEASE="$RELEASE" node -e '
      let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
        const mine = (l) => l["app.kubernetes.io/instance"] === process.env.RELEASE && (l["helm.sh/chart"] ?? "").startsWith("k8s-api-proxy-");
        const left = JSON.parse(s).items.filter(({ kind, metadata: m }) => !(m.ownerReferences ?? []).length && !m.deletionTimestamp
          && !(kind === "ServiceAccount" && m.name === "default") && !(kind === "ConfigMap" && m.name === "kube-root-ca.crt")
          && !mine(m.labels ?? {}));
        process.stdout.write(left.map(({ kind, metadata: m }) => `${kind}/${m.name}`).join(" "));
      });' <<<"$objects")"
    if [ -n "$others" ]; then
      echo "undeploy: keeping namespace $NAMESPACE (created by make deploy) because it still holds: $others" >&2
      exit 0
    fi
    "$KUBECTL" delete namespace "$NAMESPACE" --wait=false
    ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
