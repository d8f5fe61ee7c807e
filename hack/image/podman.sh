#!/usr/bin/env bash
# Runs Debian's podman the way this machine (and CI) can run it, without changing /etc:
# every configuration file and all image storage is the project's own (podman itself still
# keeps a small blob-info cache in /var/lib/containers/cache when run as root).
#   storage   ${XDG_CACHE_HOME:-$HOME/.cache}/k8s-api-proxy/podman/storage  (vfs; kept, so warm builds are fast)
#   runtime   /tmp/k8s-api-proxy-podman-$UID/{run,tmp}                    (state that must not survive a reboot)
#   config    .../podman/{containers,storage,registries}.conf, rewritten on every call
# Containers run with runc (crun refuses this VM's hybrid cgroup layout), cgroupfs, and
# explicit rlimits lower than the host's hard limits (podman's defaults need
# CAP_SYS_RESOURCE, which this VM does not grant).
#
# Usage: hack/image/podman.sh <podman arguments>   e.g. hack/image/podman.sh images
set -euo pipefail
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/k8s-api-proxy/podman"
RUN="/tmp/k8s-api-proxy-podman-$(id -u)"
# Below the host's hard limits (20000 open files here); enough for Node.js.
NOFILE="${K8S_API_PROXY_PODMAN_NOFILE:-8192}"
NPROC="${K8S_API_PROXY_PODMAN_NPROC:-4096}"
RUNC="$(command -v runc || echo /usr/bin/runc)"
mkdir -p "$CACHE/storage" "$CACHE/networks" "$RUN/run" "$RUN/tmp"
cat > "$CACHE/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RUN/events.log"
tmp_dir = "$RUN/tmp"
[engine.runtimes]
runc = ["$RUNC"]
[network]
network_config_dir = "$CACHE/networks"
CONF
cat > "$CACHE/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$CACHE/storage"
runroot = "$RUN/run"
CONF
cat > "$CACHE/registries.conf" <<CONF
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
CONF
export CONTAINERS_CONF="$CACHE/containers.conf"
export CONTAINERS_STORAGE_CONF="$CACHE/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$CACHE/registries.conf"
export TMPDIR="$RUN/tmp"
exec podman --storage-driver vfs --runtime "$RUNC" --root "$CACHE/storage" --runroot "$RUN/run" \
  --cgroup-manager cgroupfs --events-backend file "$@"
