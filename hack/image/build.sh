#!/usr/bin/env bash
# Builds the project's container image with podman (hack/image/podman.sh) from the unchanged
# Dockerfile: first the stand-in for its base image (hack/image/base.sh, cached), then
# `podman build --pull=never` with the host network (the build stage runs `npm ci` against
# the npm registry). Layers are cached in podman's storage, so a changed src/ re-runs only
# the bundle step, and a build whose inputs did not change is skipped (see inputs_digest).
#
# Usage: hack/image/build.sh [TAG]   (default k8s-api-proxy:dev; prints the image id on stdout)
# Exit 3 when podman, runc or debootstrap are missing and cannot be installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PODMAN="$ROOT/hack/image/podman.sh"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/k8s-api-proxy/image"
log() { echo "hack/image/build.sh: $*" >&2; }

# podman, runc and debootstrap come from Debian's packages; install them when missing and
# possible (root with apt-get, as in CI), else exit 3 so callers can say why they skip.
ensure_tools() {
  local missing=()
  for t in podman runc debootstrap; do command -v "$t" >/dev/null || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]} from Debian's packages"
    if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap; } >&2; then return 0; fi
  fi
  log "cannot install ${missing[*]} (needs root and apt-get): apt-get install podman runc debootstrap"
  exit 3
}

ensure_tools
"$ROOT/hack/image/base.sh"
TAG="${1:-k8s-api-proxy:dev}"
# A machine whose way to the npm registry needs an extra CA (NODE_EXTRA_CA_CERTS, e.g. a
# TLS-inspecting proxy) lends it to the build stage's npm through read-only mounts that
# exist only while RUN steps run; no layer of the image contains it.
build_mounts=()
CA_FILE="${K8S_API_PROXY_BUILD_CA:-${NODE_EXTRA_CA_CERTS:-}}"
if [ -n "$CA_FILE" ] && [ -f "$CA_FILE" ]; then
  mkdir -p "$CACHE"
  echo "cafile=/run/k8s-api-proxy-build-ca.crt" > "$CACHE/build.npmrc"
  build_mounts+=(--volume "$CA_FILE:/run/k8s-api-proxy-build-ca.crt:ro" --volume "$CACHE/build.npmrc:/root/.npmrc:ro")
  log "the build stage's npm trusts $CA_FILE too (mounted for the build only)"
fi

# podman's layer cache still copies whole layers with vfs (minutes on a busy machine), so an
# unchanged build is skipped altogether: the digest of everything the build reads (the base
# image, Dockerfile, .dockerignore and each path its "!" lines let into the context; only
# for an allow-list .dockerignore that starts with "*") is recorded next to the image id.
inputs_digest() {
  local ignore="$ROOT/.dockerignore" paths=()
  [ "$(grep -v '^#' "$ignore" 2>/dev/null | grep -m1 .)" = "*" ] || return 1
  mapfile -t paths < <(sed -n 's/^!//p' "$ignore")
  {
    "$PODMAN" image inspect --format '{{.Id}}' docker.io/library/node:24-bookworm-slim
    (cd "$ROOT" && find Dockerfile .dockerignore "${paths[@]}" -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-64
}
STAMP="$CACHE/built-$(echo "$TAG" | tr '/:' '__')"
digest="$(inputs_digest || true)"
if [ -n "$digest" ] && [ -f "$STAMP" ] && read -r stamp_digest stamp_id < "$STAMP" && [ "$stamp_digest" = "$digest" ] \
  && [ "$("$PODMAN" image inspect --format '{{.Id}}' "$TAG" 2>/dev/null)" = "$stamp_id" ]; then
  log "$TAG is up to date (nothing the build reads has changed)"
  echo "$stamp_id"
  exit 0
fi
log "podman build -t $TAG (Dockerfile unchanged, --pull=never, host network)"
"$PODMAN" build --pull=never --network host --layers "${build_mounts[@]}" --tag "$TAG" --file "$ROOT/Dockerfile" "$ROOT" >&2
id="$("$PODMAN" image inspect --format '{{.Id}}' "$TAG")"
[ -z "$digest" ] || echo "$digest $id" > "$STAMP"
echo "$id"
