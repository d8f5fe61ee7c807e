#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy, once.
#
# Each binary lands in ${XDG_CACHE_HOME:-$HOME/.cache}/k8s-api-proxy/bin/<component>-<version>/
# and is reused while present, so a warm run takes seconds. Versions come from the
# wrapper modules' go.mod files beside this script (one source of truth).
#
# Usage: hack/control-plane/build.sh [COMPONENT...]  build what is missing (all, or only the named:
#                                                   etcd kube-apiserver kubectl helm kube-score
#                                                   promlint gateway-api-crds)
#        hack/control-plane/build.sh --print        only print where each one is (no build)
#
# gateway-api-crds builds nothing: it downloads the sigs.k8s.io/gateway-api module pinned
# by gateway-api/go.mod (checked against its go.sum) into Go's module cache, where the
# chart tests read the standard channel's CRD YAML (GATEWAY_API_CRDS).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_BIN="${XDG_CACHE_HOME:-$HOME/.cache}/k8s-api-proxy/bin"
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0

modver() { # modver DIR MODULE -> version required by DIR/go.mod
  awk -v m="$2" '$1==m && $2 ~ /^v/ {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$1/go.mod"
}
KUBE_VERSION="$(modver "$HERE/kube-apiserver" k8s.io/kubernetes)"
ETCD_VERSION="$(modver "$HERE/etcd" go.etcd.io/etcd/server/v3)"
HELM_VERSION="$(modver "$HERE/helm" helm.sh/helm/v3)"
# helm's default Kubernetes version (`helm template`, `helm lint`'s deprecation checks) is
# its client-go minor, set at link time as helm's own Makefile does; without it, 1.20.
HELM_KUBE_MINOR="$(modver "$HERE/helm" k8s.io/client-go | cut -d. -f2)"
KUBE_SCORE_VERSION="$(modver "$HERE/kube-score" github.com/zegl/kube-score)"
GATEWAY_API_VERSION="$(modver "$HERE/gateway-api" sigs.k8s.io/gateway-api)"
PROMLINT_VERSION="$(modver "$HERE/promlint" github.com/prometheus/client_golang)"
GATEWAY_API_DIR="$(go env GOMODCACHE)/sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"

path_of() { echo "$CACHE_BIN/$1-$2/$1"; }

if [ "${1:-}" = "--print" ]; then
  echo "KUBE_APISERVER=$(path_of kube-apiserver "$KUBE_VERSION")"
  echo "KUBECTL=$(path_of kubectl "$KUBE_VERSION")"
  echo "ETCD=$(path_of etcd "$ETCD_VERSION")"
  echo "HELM=$(path_of helm "$HELM_VERSION-kube1.$HELM_KUBE_MINOR")"
  echo "KUBE_SCORE=$(path_of kube-score "$KUBE_SCORE_VERSION")"
  echo "PROMLINT=$(path_of promlint "$PROMLINT_VERSION")"
  echo "GATEWAY_API_CRDS=$GATEWAY_API_DIR/config/crd/standard"
  exit 0
fi

WANTED=" ${*:-etcd kube-apiserver kubectl helm kube-score promlint gateway-api-crds} "
build() { # build NAME VERSION MODULE_DIR PACKAGE LDFLAGS
  local name="$1" version="$2" dir="$3" pkg="$4" ldflags="$5" out
  case "$WANTED" in *" $name "*) ;; *) return 0 ;; esac
  out="$(path_of "$name" "$version")"
  if [ -x "$out" ]; then echo "cached: $out"; return; fi
  echo "building $name $version (cold builds take minutes)..."
  local start=$SECONDS
  mkdir -p "$(dirname "$out")"
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  echo "built $out in $((SECONDS - start))s"
}

MINOR="$(echo "$KUBE_VERSION" | cut -d. -f2)"
KUBE_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/component-base/version.gitTreeState=clean"
# Independent modules build side by side when there is more than one core (BUILD_JOBS=1
# to serialize); kubectl follows kube-apiserver in one job, since they share most packages
# and the second build reuses the first's cache rather than compiling them twice at once.
pids=()
spawn() { if [ "${BUILD_JOBS:-$(nproc 2>/dev/null || echo 1)}" -gt 1 ]; then "$@" & pids+=($!); else "$@"; fi; }
kube() {
  build kube-apiserver "$KUBE_VERSION" "$HERE/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$KUBE_LDFLAGS"
  build kubectl "$KUBE_VERSION" "$HERE/kube-apiserver" k8s.io/kubernetes/cmd/kubectl "$KUBE_LDFLAGS"
}
spawn kube
spawn build etcd "$ETCD_VERSION" "$HERE/etcd" go.etcd.io/etcd/server/v3 "-s -w"
for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid"; done
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  HELM_LDFLAGS="$HELM_LDFLAGS -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_KUBE_MINOR"
done
build helm "$HELM_VERSION-kube1.$HELM_KUBE_MINOR" "$HERE/helm" helm.sh/helm/v3/cmd/helm "$HELM_LDFLAGS"
build kube-score "$KUBE_SCORE_VERSION" "$HERE/kube-score" github.com/zegl/kube-score/cmd/kube-score "-s -w -X main.version=$KUBE_SCORE_VERSION"
build promlint "$PROMLINT_VERSION" "$HERE/promlint" . "-s -w"
case "$WANTED" in *" gateway-api-crds "*)
  if [ -f "$GATEWAY_API_DIR/config/crd/standard/gateway.networking.k8s.io_tlsroutes.yaml" ]; then
    echo "cached: $GATEWAY_API_DIR/config/crd/standard"
  else
    echo "downloading sigs.k8s.io/gateway-api $GATEWAY_API_VERSION (CRDs for the chart tests)..."
    (cd "$HERE/gateway-api" && go mod download sigs.k8s.io/gateway-api)
    echo "downloaded $GATEWAY_API_DIR/config/crd/standard"
  fi ;;
esac
