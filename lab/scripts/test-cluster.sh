#!/usr/bin/env bash
# `npm run test:cluster`: the real program, driven by the real Pulumi engine, against a real
# Kubernetes cluster on this machine (lab/scripts/cluster.sh).
#
# 1. builds (or reuses) the engine (lab/scripts/engine.sh), the cluster binaries and the docker
#    provider (lab/scripts/docker-provider.sh);
# 2. starts a private dockerd and a registry on loopback, builds two prebuilt variants of the
#    app image from apps/chain-service (for the rollout scenarios; the dev catalog itself is
#    built by the stack) and pushes them: the node's containerd pulls from that registry;
# 3. starts the cluster with every registry pointed at that one;
# 4. runs tests/cluster/*.cluster.ts (mocha);
# 5. stops the cluster, dockerd and the registry and removes the temp dir on every exit path
#    (trap on EXIT, INT and TERM); `lab/scripts/cluster.sh stop` fails if anything is left behind.
#
# If the real node cannot start here, the suite says so and runs on kwok nodes only (scenarios
# that need serving pods are skipped, i.e. pending); K8S_CHAIN_CLUSTER_REQUIRE_REAL_NODE=1 (set
# by .ci/run) makes that a failure instead.
# Knobs: K8S_CHAIN_CLUSTER_KEEP=1 keeps the run dirs (logs); K8S_CHAIN_CLUSTER_GREP=<pattern>
# runs only the matching tests (mocha --grep); K8S_CHAIN_CLUSTER_MAIN=<file.ts> runs that program
# (ts-node) instead of the scenarios, on the same cluster (bench:peers); K8S_CHAIN_CLUSTER_HOLD=<seconds> leaves the
# cluster, registry and stack running that long after the tests, to look at them with
# `lab/scripts/cluster.sh env` and kubectl (INT ends the wait and cleans up).
set -euo pipefail

T0=$(date +%s%N)
elapsed() { echo $(( ($(date +%s%N) - T0) / 1000000 )); }
log() { printf '[test:cluster %6d ms] %s\n' "$(elapsed)" "$*"; }
die() { log "FAILED: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${K8S_CHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-chain}
[ "$(id -u)" = 0 ] || die "needs root: it runs a kubelet, containerd, kube-proxy and dockerd"

. "$ROOT/lab/scripts/lib/docker.sh"
install_docker_packages

WORK=$(mktemp -d /tmp/k8s-chain-suite.XXXXXX)
CLUSTER_STARTED=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [ -n "$CHILD_PID" ] && stop_pid "$CHILD_PID" 10
  # Pulumi's plugins an interrupted run left (the SIGKILL scenario leaves some to Pulumi's own
  # 5-minute health check, and one that never exits): every process still running with one of
  # this run's test stacks' PULUMI_HOME (their temp dirs are under $WORK/tmp; another suite's,
  # running beside this one, are not).
  local pid
  for pid in $(grep -lsz "^PULUMI_HOME=$WORK/tmp/" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
    [ "$pid" != $$ ] || continue
    log "killing a leftover Pulumi process: $pid $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)"
    kill -KILL "$pid" 2>/dev/null
  done
  if [ -n "$CLUSTER_STARTED" ]; then
    bash "$ROOT/lab/scripts/cluster.sh" stop || { log "cluster stop left something behind"; [ "$rc" = 0 ] && rc=1; }
  fi
  stop_docker
  if [ "${K8S_CHAIN_CLUSTER_KEEP:-}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  log "total run time $(elapsed) ms (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. engine, cluster binaries, docker provider (cached; cold on 2 cores: 858, 533, 229 s) -
log "engine: building or reusing"
step_to "$WORK/engine" bash "$ROOT/lab/scripts/engine.sh" build
log "cluster binaries: building or reusing"
step_to "$WORK/cluster-bin" bash "$ROOT/lab/scripts/cluster.sh" build
log "docker provider: building or reusing"
step_to "$WORK/docker-provider" bash "$ROOT/lab/scripts/docker-provider.sh" build

# --- 2. images --------------------------------------------------------------------------------
start_dockerd
start_registry
step_to "$WORK/base-tar" bash "$ROOT/lab/scripts/images/base-image.sh" "$CACHE"
import_base_image "$(cat "$WORK/base-tar")"

# build_push <app> <variant>: builds apps/<app> and pushes it; prints the pinned reference.
# A variant differs only by a label, so it is a new image (new digest) of the same program.
build_push() {
  local app=$1 variant=$2 tag="$REGISTRY/$1:cluster-$2"
  "$DOCKER" build --network host -q -f "$ROOT/apps/$app/Dockerfile" \
    --build-arg "NODE_IMAGE=$BASE_IMAGE" --label "org.k8s-chain.test-variant=$variant" \
    -t "$tag" "$ROOT/apps" >"$WORK/build-$app-$variant.log" 2>&1 \
    || { tail -n 20 "$WORK/build-$app-$variant.log" >&2; return 1; }
  "$DOCKER" push -q "$tag" >/dev/null || { echo "docker push $tag failed" >&2; return 1; }
  "$DOCKER" inspect --format '{{index .RepoDigests 0}}' "$tag"
}
t_img=$(elapsed)
# Every dev-stack service runs the one program (apps/chain-service); v2 is the new release
# the rollout scenarios move service-a and service-b to. (A failure inside $(...) would not
# stop this script: each reference is checked here.)
v1=$(build_push chain-service v1) || die "docker build or push of chain-service (v1) failed"
v2=$(build_push chain-service v2) || die "docker build or push of chain-service (v2) failed"
cat > "$WORK/images.json" <<EOF
{
  "sample-app": "$v1", "service-a": "$v1", "service-b": "$v1", "service-c": "$v1",
  "service-a@v2": "$v2", "service-b@v2": "$v2",
  "registry": "$REGISTRY"
}
EOF
log "images built and pushed in $(( ($(elapsed) - t_img) / 1000 )) s: $(tr -d '\n ' < "$WORK/images.json")"

# --- 3. the cluster ---------------------------------------------------------------------------
CLUSTER_STARTED=1
if ! K8S_CHAIN_CLUSTER_REGISTRY="$REGISTRY" step bash "$ROOT/lab/scripts/cluster.sh" start; then
  [ "${K8S_CHAIN_CLUSTER_REQUIRE_REAL_NODE:-}" = 1 ] && die "the cluster with its real node did not start (K8S_CHAIN_CLUSTER_REQUIRE_REAL_NODE=1)"
  log "THE REAL NODE DID NOT START ON THIS MACHINE (output above): falling back to kwok nodes only;"
  log "the scenarios that need pods to serve traffic or pull images are skipped and reported as pending"
  K8S_CHAIN_CLUSTER_REAL_NODE=0 K8S_CHAIN_CLUSTER_KWOK_TAINT=0 step bash "$ROOT/lab/scripts/cluster.sh" start
fi
bash "$ROOT/lab/scripts/cluster.sh" env > "$WORK/cluster.env"
set -a; . "$WORK/cluster.env"; set +a

# --- 4. the tests -----------------------------------------------------------------------------
export K8S_CHAIN_CLUSTER_IMAGES="$WORK/images.json"
# The stack builds the dev catalog's image itself (AppImage, the real docker provider) with
# this dockerd (DOCKER_HOST), from the local base image, pushing to the registry.
export K8S_CHAIN_DOCKER_PROVIDER="$(tail -n 1 "$WORK/docker-provider")"
export K8S_CHAIN_CLUSTER_BASE_IMAGE="$BASE_IMAGE"
cd "$ROOT"
grep_args=()
[ -n "${K8S_CHAIN_CLUSTER_GREP:-}" ] && grep_args=(--grep "$K8S_CHAIN_CLUSTER_GREP")
rc=0
t_tests=$(elapsed)
# The test stacks' temp dirs (EngineStack, under os.tmpdir()) in this run's own dir.
mkdir -p "$WORK/tmp"
if [ -n "${K8S_CHAIN_CLUSTER_MAIN:-}" ]; then
  # A bench on the suite's cluster (lab/bench/peers/run.sh): that program instead of the scenarios.
  TMPDIR="$WORK/tmp" step node_modules/.bin/ts-node --transpile-only "$K8S_CHAIN_CLUSTER_MAIN" || rc=$?
else
  TMPDIR="$WORK/tmp" step node_modules/.bin/mocha --no-config --require ts-node/register/transpile-only --timeout 0 \
    "${grep_args[@]}" 'tests/cluster/*.cluster.ts' || rc=$?
fi
log "tests took $(( ($(elapsed) - t_tests) / 1000 )) s; the cluster's processes hold $(bash "$ROOT/lab/scripts/cluster.sh" mem) MiB resident now"
if [ -n "${K8S_CHAIN_CLUSTER_HOLD:-}" ]; then
  log "holding everything for ${K8S_CHAIN_CLUSTER_HOLD} s: KUBECONFIG=$KUBECONFIG"
  step sleep "$K8S_CHAIN_CLUSTER_HOLD"
fi
exit "$rc"
