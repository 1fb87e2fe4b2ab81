#!/usr/bin/env bash
# `npm run test:images`: build the app image (apps/chain-service) on a private, throwaway Docker engine, push it
# to a private registry, pull it back by digest and run it read-only as 10001:10001.
#
# 1. installs Debian's docker.io, docker-registry and debootstrap if missing (needs root);
# 2. builds or reuses the cached Node base image (lab/scripts/images/base-image.sh);
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

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
CACHE=${K8S_CHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-chain}
APPS_DIR=$(cd "${K8S_CHAIN_APPS_DIR:-$ROOT/apps}" && pwd)

[ "$(id -u)" = 0 ] || die "needs root: it installs Debian packages, runs debootstrap and its own dockerd"

# --- 1. packages --------------------------------------------------------------------------
. "$ROOT/lab/scripts/lib/docker.sh"
install_docker_packages

WORK=$(mktemp -d /tmp/k8s-chain-images.XXXXXX)

cleanup() {
  local rc=$? pid m
  trap - EXIT INT TERM
  set +e
  [ -n "$CHILD_PID" ] && stop_pid "$CHILD_PID" 10
  stop_docker
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


# --- 2. private engine, registry and base image -------------------------------------------
start_dockerd
start_registry
log "base image: building or reusing the cached rootfs"
step_to "$WORK/base-tar" bash "$ROOT/lab/scripts/images/base-image.sh" "$CACHE"
import_base_image "$(cat "$WORK/base-tar")"
log "base image runs $("$DOCKER" run --rm --network host "$BASE_IMAGE" node --version)"

# --- 3. the tests -------------------------------------------------------------------------
export K8S_CHAIN_DOCKER="$DOCKER" K8S_CHAIN_REGISTRY="$REGISTRY" K8S_CHAIN_BASE_IMAGE="$BASE_IMAGE" \
  K8S_CHAIN_APPS_DIR="$APPS_DIR" K8S_CHAIN_IMAGES_WORK="$WORK" DOCKER_BUILDKIT=1
cd "$ROOT"
step node_modules/.bin/mocha --no-config --require ts-node/register/transpile-only --timeout 0 \
  tests/images/images.e2e.ts
