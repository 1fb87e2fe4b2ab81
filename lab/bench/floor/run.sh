#!/usr/bin/env bash
# `npm run bench:floor`: lab/bench/floor/run.ts on the cluster suite's cluster
# (lab/scripts/test-cluster.sh builds and starts everything, runs it instead of the scenarios, and
# stops everything on every exit path). Needs root, like the suite; never beside a cluster run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
K8S_CHAIN_CLUSTER_MAIN=lab/bench/floor/run.ts K8S_CHAIN_CLUSTER_REQUIRE_REAL_NODE=1 \
  exec bash "$ROOT/lab/scripts/test-cluster.sh"
