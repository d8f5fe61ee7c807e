#!/usr/bin/env bash
# Prints the bin directory of the Node.js that every project command runs on, installing it
# first when needed. The line and exact version live in .node-version (one source of truth,
# also checked against package.json engines, @types/node and the Dockerfile base by
# test/unit/runtime.test.ts).
#
# When the machine's `node` is of the same major line, its directory is printed and nothing
# is installed. Otherwise the official binary of the pinned version is unpacked from the npm
# registry's `node-linux-<arch>` package into
# ${XDG_CACHE_HOME:-$HOME/.cache}/k8s-api-proxy/node/<version>/ once (about 50 MB download),
# and that directory is printed. npm itself is the machine's (it runs on whichever `node` is
# first on PATH).
#
# Usage: PATH="$(hack/node.sh):$PATH"
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="$(tr -d ' \n\r' < "$HERE/.node-version")"
MAJOR="${VERSION%%.*}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/k8s-api-proxy/node/$VERSION"

if [ "${K8S_API_PROXY_SYSTEM_NODE:-}" != "0" ] && command -v node >/dev/null; then
  have="$(node -p 'process.versions.node' 2>/dev/null || true)"
  if [ "${have%%.*}" = "$MAJOR" ]; then dirname "$(command -v node)"; exit 0; fi
fi
if [ -x "$CACHE/bin/node" ]; then echo "$CACHE/bin"; exit 0; fi

case "$(uname -m)" in
  x86_64) arch=x64 ;; aarch64|arm64) arch=arm64 ;;
  *) echo "hack/node.sh: no official Node.js package for $(uname -m); install Node.js $MAJOR yourself" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "hack/node.sh: npm is needed to fetch node-linux-$arch@$VERSION" >&2; exit 1; }
echo "hack/node.sh: installing Node.js $VERSION (npm package node-linux-$arch) into $CACHE" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "node-linux-$arch@$VERSION" >/dev/null)
mkdir -p "$tmp/out"
tar -xzf "$tmp"/node-linux-*.tgz -C "$tmp/out" --strip-components=1 package/bin/node package/LICENSE
"$tmp/out/bin/node" -e "if (process.versions.node !== '$VERSION') process.exit(1)" \
  || { echo "hack/node.sh: the unpacked binary is not Node.js $VERSION" >&2; exit 1; }
mkdir -p "$(dirname "$CACHE")"
rm -rf "$CACHE.tmp"; mv "$tmp/out" "$CACHE.tmp"; mv "$CACHE.tmp" "$CACHE"
echo "$CACHE/bin"
