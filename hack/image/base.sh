#!/usr/bin/env bash
# Makes sure podman's storage (hack/image/podman.sh) holds the stand-in for the Dockerfile's
# base image, docker.io/library/node:24-bookworm-slim, which no registry can serve here:
#
#   debootstrap --variant=minbase bookworm, slimmed as debian:bookworm-slim is (no docs, man
#   pages, locales, apt lists) + the official Node.js binary from the npm package
#   node-linux-<arch>@$(cat .node-version) + the npm release that this Node.js bundles, laid
#   out as the official image lays them out (/usr/local/{bin,include,lib/node_modules}, user
#   node 1000) and imported as one layer.
#
# The root filesystem is cached as a tarball in ${XDG_CACHE_HOME:-$HOME/.cache}/k8s-api-proxy/image/,
# keyed by its inputs (suite, variant, architecture, Node.js version, this script); it is
# imported only when the image in podman's storage carries a different key. Debian's
# packages are whatever the mirror serves the day the tarball is made: delete the tarball
# to refresh them.
#
# Usage: hack/image/base.sh     (needs root for debootstrap and chroot, npm, podman)
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PODMAN="$ROOT/hack/image/podman.sh"
BASE_REF="docker.io/library/node:24-bookworm-slim"
SUITE=bookworm
VARIANT=minbase
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
NODE_VERSION="$(tr -d ' \n\r' < "$ROOT/.node-version")"   # the project's one pin
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/k8s-api-proxy/image"
log() { echo "hack/image/base.sh: $*" >&2; }

case "$(uname -m)" in
  x86_64) ARCH=x64 DEB_ARCH=amd64 ;; aarch64|arm64) ARCH=arm64 DEB_ARCH=arm64 ;;
  *) log "no official Node.js package for $(uname -m)"; exit 1 ;;
esac

# The cache key: every input of the base, including this script (its recipe).
KEY="$(printf '%s\n' "$SUITE" "$VARIANT" "$DEB_ARCH" "$NODE_VERSION" "$(sha256sum < "$0")" | sha256sum | cut -c1-16)"
TARBALL="$CACHE/node-$NODE_VERSION-$SUITE-slim-$KEY.tar"

# debian:bookworm-slim's dpkg excludes (debuerreotype --slim), so later apt installs stay slim too.
SLIM_EXCLUDES='path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*'

make_rootfs() {
  local work rootfs npm_version
  work="$(mktemp -d "${TMPDIR:-/tmp}/k8s-api-proxy-base.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  rootfs="$work/rootfs"
  log "debootstrap --variant=$VARIANT $SUITE from $MIRROR (once; about a minute)"
  debootstrap --variant="$VARIANT" --arch="$DEB_ARCH" "$SUITE" "$rootfs" "$MIRROR" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
  # Slim it as debian:bookworm-slim is: no docs, man pages or locales; no apt lists or caches.
  printf '%s\n' "$SLIM_EXCLUDES" > "$rootfs/etc/dpkg/dpkg.cfg.d/docker"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian,man}/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/* "$rootfs"/tmp/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  printf '%s\n' "deb $MIRROR $SUITE main" > "$rootfs/etc/apt/sources.list"

  log "adding Node.js $NODE_VERSION (npm package node-linux-$ARCH)"
  (cd "$work" && npm pack --silent "node-linux-$ARCH@$NODE_VERSION" >/dev/null)
  mkdir -p "$work/node"
  tar -xzf "$work"/node-linux-*.tgz -C "$work/node" --strip-components=1
  install -D -m 0755 "$work/node/bin/node" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/include" "$rootfs/usr/local/share/doc" "$rootfs/usr/local/share/man/man1"
  cp -r "$work/node/include/node" "$rootfs/usr/local/include/"
  cp "$work/node/share/man/man1/node.1" "$rootfs/usr/local/share/man/man1/"
  install -D -m 0644 "$work/node/LICENSE" "$rootfs/usr/local/share/doc/node/LICENSE"
  # The npm that this Node.js release bundles: the newest "upgrade npm to X" in its changelog.
  npm_version="$(grep -m1 -oE 'upgrade npm to [0-9]+\.[0-9]+\.[0-9]+' "$work/node/CHANGELOG.md" | awk '{print $4}')"
  [ -n "$npm_version" ] || { log "cannot tell which npm Node.js $NODE_VERSION bundles"; exit 1; }
  log "adding npm $npm_version (the version Node.js $NODE_VERSION bundles)"
  (cd "$work" && npm pack --silent "npm@$npm_version" >/dev/null)
  mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$work/npm-$npm_version.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # The official image's user.
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  chroot "$rootfs" /usr/local/bin/node -e "if (process.versions.node !== '$NODE_VERSION') process.exit(1)" \
    || { log "the unpacked binary is not Node.js $NODE_VERSION"; exit 1; }
  [ "$(chroot "$rootfs" /usr/local/bin/npm --version)" = "$npm_version" ] || { log "npm $npm_version does not run"; exit 1; }
  echo "$npm_version" > "$work/npm-version"
  mkdir -p "$CACHE"
  tar --sort=name --numeric-owner --mtime=@0 --xattrs -C "$rootfs" -cf "$TARBALL.tmp" .
  rm -f "$CACHE"/node-*.tar "$CACHE"/node-*.tar.info   # other keys
  echo "npm=$npm_version" > "$TARBALL.info"
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$work"
  trap - EXIT
}

ensure_base() {
  if [ "$("$PODMAN" image inspect --format '{{index .Labels "io.k8s-api-proxy.stand-in-key"}}' "$BASE_REF" 2>/dev/null)" = "$KEY" ]; then
    return 0
  fi
  [ -f "$TARBALL" ] || make_rootfs
  local npm_version
  npm_version="$(sed -n 's/^npm=//p' "$TARBALL.info")"
  log "importing $TARBALL as $BASE_REF"
  "$PODMAN" import --quiet \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV NODE_VERSION=$NODE_VERSION" \
    --change 'CMD ["node"]' \
    --change "LABEL io.k8s-api-proxy.stand-in-key=$KEY" \
    --change "LABEL io.k8s-api-proxy.stand-in=debootstrap-$VARIANT-$SUITE+node-linux-$ARCH@$NODE_VERSION+npm@$npm_version" \
    --message "k8s-api-proxy stand-in for $BASE_REF" \
    "$TARBALL" "$BASE_REF" >/dev/null
  # The previous stand-in and the layers cached on it are of no further use.
  "$PODMAN" image prune --force >/dev/null
}

ensure_base
