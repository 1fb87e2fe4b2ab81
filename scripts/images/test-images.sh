#!/usr/bin/env bash
# `npm run test:images`: build every app image on a private, throwaway Docker engine, push it
# to a private registry, pull it back by digest and run it read-only as 1000:1000.
#
# 1. installs Debian's docker.io, docker-registry and debootstrap if missing (needs root);
# 2. builds or reuses the cached Node base image (scripts/images/base-image.sh);
# 3. starts its own dockerd (private socket, data-root, exec-root, pidfile, config, all under
#    one temp dir; --iptables=false --bridge=none) and a registry on a free loopback port;
# 4. runs tests/images/images.e2e.ts (mocha) against them;
# 5. stops both and removes the temp dir on every exit path (trap), leaving nothing running.
#
# Knobs (all optional):
#   K8S_CHAIN_CACHE        cache dir for the base rootfs (default ${XDG_CACHE_HOME:-~/.cache}/k8s-chain)
#   K8S_CHAIN_APPS_DIR     build context holding <app>/Dockerfile (default <repo>/apps)
#   K8S_CHAIN_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the one apt uses)
#   K8S_CHAIN_IMAGES_KEEP=1  keep the temp dir (logs) after the run; the daemons still stop
set -euo pipefail

T0=$(date +%s%N)
elapsed() { echo $(( ($(date +%s%N) - T0) / 1000000 )); }
log() { printf '[test:images %6d ms] %s\n' "$(elapsed)" "$*"; }
die() { log "FAILED: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${K8S_CHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-chain}
APPS_DIR=$(cd "${K8S_CHAIN_APPS_DIR:-$ROOT/apps}" && pwd)

[ "$(id -u)" = 0 ] || die "needs root: it installs Debian packages, runs debootstrap and its own dockerd"

# --- 1. packages --------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/bin/docker ] || missing+=(docker.io)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing from Debian: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's client matches Debian's daemon (API 1.41) and drives its built-in BuildKit;
# a newer client elsewhere on PATH would need the buildx plugin for that.
DOCKER=/usr/bin/docker

WORK=$(mktemp -d /tmp/k8s-chain-images.XXXXXX)
DOCKERD_PID=
REGISTRY_PID=
CHILD_PID= # the step running in the foreground: run in the background and waited for, so
           # that INT/TERM reach the trap at once instead of after the step ends

stop_pid() { # pid, seconds: TERM, wait, then KILL
  local pid=$1 secs=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid m
  trap - EXIT INT TERM
  set +e
  [ -n "$CHILD_PID" ] && stop_pid "$CHILD_PID" 10
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    # Remove our containers first so dockerd's own shutdown is quick.
    ids=$("$DOCKER" ps -aq 2>/dev/null)
    [ -n "$ids" ] && "$DOCKER" rm -f $ids >/dev/null 2>&1
    stop_pid "$DOCKERD_PID" 20
  fi
  [ -n "$REGISTRY_PID" ] && stop_pid "$REGISTRY_PID" 5
  # Anything still alive that was started from our temp dir (a containerd or shim left by a
  # killed dockerd) is ours: stop it by pid.
  for pid in $(grep -lsF "$WORK" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [ "$pid" != $$ ] && stop_pid "$pid" 2
  done
  # Unmount whatever the engine left mounted below the temp dir, deepest first.
  for m in $(awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null
  done
  if [ "${K8S_CHAIN_IMAGES_KEEP:-}" = 1 ]; then
    log "kept $WORK (logs); daemons stopped"
  else
    rm -rf "$WORK"
  fi
  log "total run time $(elapsed) ms (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { "$@" & CHILD_PID=$!; wait "$CHILD_PID"; CHILD_PID=; }
# The same, with the command's stdout to a file (not the function's, which the trap would inherit).
step_to() { local out=$1; shift; "$@" >"$out" & CHILD_PID=$!; wait "$CHILD_PID"; CHILD_PID=; }

# --- 2. base image rootfs -----------------------------------------------------------------
log "base image: building or reusing the cached rootfs"
step_to "$WORK/base-tar" bash "$ROOT/scripts/images/base-image.sh" "$CACHE"
BASE_TAR=$(cat "$WORK/base-tar")

# --- 3. private engine and registry -------------------------------------------------------

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

export DOCKER_HOST="unix://$WORK/docker.sock"
export DOCKER_CONFIG="$WORK/client" # no credential helpers or contexts from ~/.docker
mkdir -p "$DOCKER_CONFIG"
echo '{}' >"$WORK/daemon.json" # never read /etc/docker/daemon.json

log "starting dockerd on $DOCKER_HOST"
dockerd --host "$DOCKER_HOST" --config-file "$WORK/daemon.json" \
  --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/docker.pid" \
  --iptables=false --ip6tables=false --bridge=none --storage-driver overlay2 \
  --log-level warn >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for ((i = 0; ; i++)); do
  "$DOCKER" version >/dev/null 2>&1 && break
  if ! kill -0 "$DOCKERD_PID" 2>/dev/null || [ $i -ge 300 ]; then
    tail -n 20 "$WORK/dockerd.log" >&2
    die "dockerd did not come up (log above)"
  fi
  sleep 0.1
done
log "dockerd $("$DOCKER" version -f '{{.Server.Version}}') ready (pid $DOCKERD_PID)"

for attempt in 1 2 3; do
  REGISTRY_PORT=$(free_port)
  cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
  docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1 && break 2
    kill -0 "$REGISTRY_PID" 2>/dev/null || break
    sleep 0.1
  done
  stop_pid "$REGISTRY_PID" 2
  REGISTRY_PID=
done
[ -n "$REGISTRY_PID" ] || { tail -n 20 "$WORK/registry.log" >&2; die "registry did not come up (log above)"; }
REGISTRY="127.0.0.1:$REGISTRY_PORT"
log "registry ready on $REGISTRY (pid $REGISTRY_PID)"

BASE_IMAGE="k8s-chain/node-base:$(basename "$BASE_TAR" .tar)"
"$DOCKER" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["node"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
log "base image $BASE_IMAGE imported ($("$DOCKER" run --rm --network host "$BASE_IMAGE" node --version))"

# --- 4. the tests -------------------------------------------------------------------------
export K8S_CHAIN_DOCKER="$DOCKER" K8S_CHAIN_REGISTRY="$REGISTRY" K8S_CHAIN_BASE_IMAGE="$BASE_IMAGE" \
  K8S_CHAIN_APPS_DIR="$APPS_DIR" K8S_CHAIN_IMAGES_WORK="$WORK" DOCKER_BUILDKIT=1
cd "$ROOT"
step node_modules/.bin/mocha --no-config --require ts-node/register/transpile-only --timeout 0 \
  tests/images/images.e2e.ts
