#!/usr/bin/env bash
# `npm run bench:cluster` and `npm run bench:scale`: generated catalogs against a real control
# plane with kwok nodes (no real node: kwok marks the pods Ready, so these measure the stack
# and the engine). Starts the cluster (lab/scripts/cluster.sh) and stops it on every exit path.
#   lab/bench/cluster/run.sh            run.ts: 50 services, the first `up` by call-graph depth
#   lab/bench/cluster/run.sh scale.ts   scale.ts: 1,000 services against Helm (builds Helm first)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
program=${1:-run.ts}
if [ "$program" = scale.ts ]; then
  K8S_CHAIN_PEERS_HELM=$(bash "$ROOT/lab/bench/peers/helm.sh")
  export K8S_CHAIN_PEERS_HELM
  # 110 pods per kwok node: room for 1,000 services, one replica each.
  export K8S_CHAIN_CLUSTER_KWOK_NODES=${K8S_CHAIN_CLUSTER_KWOK_NODES:-12}
fi
export K8S_CHAIN_CLUSTER_DIR=${K8S_CHAIN_CLUSTER_DIR:-/tmp/k8s-chain-cluster-bench}
export K8S_CHAIN_CLUSTER_REAL_NODE=0 K8S_CHAIN_CLUSTER_KWOK_NODES=${K8S_CHAIN_CLUSTER_KWOK_NODES:-2} K8S_CHAIN_CLUSTER_KWOK_TAINT=0
trap 'bash "$ROOT/lab/scripts/cluster.sh" stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bash "$ROOT/lab/scripts/cluster.sh" start
set -a; . <(bash "$ROOT/lab/scripts/cluster.sh" env); set +a
cd "$ROOT"
node_modules/.bin/ts-node --transpile-only "lab/bench/cluster/$program"
