#!/usr/bin/env bash
# `npm run bench:peers`: builds (or reuses) Helm v4 (lab/bench/peers/helm.sh), then runs
# lab/bench/peers/run.ts on the cluster suite's cluster: lab/scripts/test-cluster.sh builds the engine,
# the cluster and the images, starts everything, runs the bench instead of the scenarios, and
# stops everything on every exit path. Needs root, like the suite; never beside a cluster run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
helm=$(bash "$ROOT/lab/bench/peers/helm.sh")
K8S_CHAIN_PEERS_HELM="$helm" K8S_CHAIN_CLUSTER_MAIN=lab/bench/peers/run.ts K8S_CHAIN_CLUSTER_REQUIRE_REAL_NODE=1 \
  exec bash "$ROOT/lab/scripts/test-cluster.sh"
