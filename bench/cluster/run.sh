#!/usr/bin/env bash
# `npm run bench:cluster`: the first `pulumi up` of a generated 50-service catalog against a
# real control plane with kwok nodes (no real node: kwok marks the pods Ready), at several
# call-graph depths. Starts the cluster (scripts/cluster.sh) and stops it on every exit path.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export K8S_CHAIN_CLUSTER_DIR=${K8S_CHAIN_CLUSTER_DIR:-/tmp/k8s-chain-cluster-bench}
export K8S_CHAIN_CLUSTER_REAL_NODE=0 K8S_CHAIN_CLUSTER_KWOK_NODES=${K8S_CHAIN_CLUSTER_KWOK_NODES:-2} K8S_CHAIN_CLUSTER_KWOK_TAINT=0
trap 'bash "$ROOT/scripts/cluster.sh" stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bash "$ROOT/scripts/cluster.sh" start
set -a; . <(bash "$ROOT/scripts/cluster.sh" env); set +a
cd "$ROOT"
node_modules/.bin/ts-node --transpile-only bench/cluster/run.ts
