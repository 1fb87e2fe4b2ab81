#!/usr/bin/env bash
# The Helm v4 CLI for the `bench:peers` benchmark, which compares `pulumi up` with Helm v4 and
# kubectl on the same cluster. Built from its Go module (lab/tools/peers/helm/go.mod pins
# helm.sh/helm/v4 and, in go.sum, every dependency; no download from GitHub or get.helm.sh)
# into a cache outside the repo, once per key.
#
#   lab/bench/peers/helm.sh [build]  build if not cached; print the absolute path of the helm binary
#                                (the only line on stdout; progress and timing go to stderr)
#   lab/bench/peers/helm.sh key      print the cache key
#   lab/bench/peers/helm.sh info     print the key, cache paths, sizes and the recorded build time
#
# Environment:
#   K8S_CHAIN_PEERS_CACHE  cache root (default ~/.cache/k8s-chain/peers)
#
# The binary lands in <cache>/<key>/bin/helm, where <key> is 12 hex digits of the sha256 of
# go.mod, go.sum, `go version` and this script's build section, so it is rebuilt only when one
# of them changes. <cache>/<key>/.complete is written last: a build that was cut short is redone.
# The Go module and build caches are this cache's own, <cache>/go/{mod,build} (never the
# cluster's), so a cold build is self-contained and measurable: 176 s on 2 cores
# (Go 1.26.8; 121 module downloads, 542 MB, included); a cached run takes about 25 ms.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
tools="$here/lab/tools/peers/helm"
cache_root="${K8S_CHAIN_PEERS_CACHE:-$HOME/.cache/k8s-chain/peers}"
# helm v4.3.2 needs Go 1.26.0, no newer than this machine's: never switch toolchains.
export GOTOOLCHAIN=local
pkg=helm.sh/helm/v4/cmd/helm
version="$(sed -n 's#^\s*helm.sh/helm/v4 \(v[^ ]*\).*#\1#p' "$tools/go.mod")"
[ -n "$version" ] || { echo "helm: no helm.sh/helm/v4 requirement in $tools/go.mod" >&2; exit 1; }

log() { echo "helm: $*" >&2; }

key() {
  ( cat "$tools/go.mod" "$tools/go.sum"; go version
    sed -n '/^# --- build/,/^# --- end build/p' "${BASH_SOURCE[0]}" ) | sha256sum | cut -c1-12
}

# --- build
do_build() {
  local k dir t0
  k="$(key)"
  mkdir -p "$cache_root"
  cache_root="$(cd "$cache_root" && pwd)"
  dir="$cache_root/$k"
  if [ ! -f "$dir/.complete" ]; then
    exec 9>"$cache_root/.lock"
    flock 9
    # Another run may have built it while this one waited for the lock.
    if [ ! -f "$dir/.complete" ]; then
      t0=$SECONDS
      log "building $pkg $version into $dir (cold: about 3 min on 2 cores)"
      rm -rf "$dir"; mkdir -p "$dir/bin"
      # go.sum is committed: build exactly what it pins. The version is the one `helm version`
      # prints (helm's Makefile sets the same variables; the module zip carries no git commit).
      (cd "$tools" && GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOFLAGS="-mod=readonly" \
        CGO_ENABLED=0 go build -trimpath -ldflags "-s -w \
          -X helm.sh/helm/v4/internal/version.version=$version \
          -X helm.sh/helm/v4/internal/version.metadata= \
          -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
        -o "$dir/bin/.helm.tmp" "$pkg")
      mv "$dir/bin/.helm.tmp" "$dir/bin/helm"
      echo "$((SECONDS - t0))" >"$dir/build-seconds"
      touch "$dir/.complete"
      log "built helm $version in $((SECONDS - t0)) s"
    fi
    flock -u 9
  else
    log "helm $version cached ($k)"
  fi
  echo "$dir/bin/helm"
}
# --- end build

case "${1:-build}" in
  build) do_build ;;
  key) key ;;
  info)
    k="$(key)"
    echo "key:        $k"
    echo "binary:     $cache_root/$k/bin/helm"
    if [ ! -f "$cache_root/$k/.complete" ]; then echo "status:     not built"; fi
    if [ -f "$cache_root/$k/build-seconds" ]; then echo "build time: $(cat "$cache_root/$k/build-seconds") s"; fi
    for d in "$cache_root/go/mod" "$cache_root/go/build" "$cache_root/$k"; do
      if [ -d "$d" ]; then du -sh "$d"; fi
    done
    ;;
  *) echo "usage: $0 [build|key|info]" >&2; exit 2 ;;
esac
