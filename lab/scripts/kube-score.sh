#!/usr/bin/env bash
# kube-score for `npm run test:audit`: built from its Go module (lab/tools/kube-score/go.mod pins
# the version and, in go.sum, every dependency) into a cache outside the repo, once per key.
#
#   lab/scripts/kube-score.sh build   build if not cached; print the path of the kube-score binary
#   lab/scripts/kube-score.sh key     print the cache key (kube-score version, Go version, pins)
#   lab/scripts/kube-score.sh info    print the key, cache paths, sizes and the last build time
#
# Environment:
#   K8S_CHAIN_KUBE_SCORE_CACHE  cache root (default ~/.cache/k8s-chain/kube-score)
#
# The binary lands in <cache>/<key>/kube-score; the Go module and build caches live in
# <cache>/go/{mod,build}, so a cold build is self-contained and measurable.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="$here/lab/tools/kube-score"
cache_root="${K8S_CHAIN_KUBE_SCORE_CACHE:-$HOME/.cache/k8s-chain/kube-score}"
# The go.mod needs no newer Go than this machine's; never switch toolchains.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
pkg=github.com/zegl/kube-score/cmd/kube-score
version="$(sed -n 's#^\s*github.com/zegl/kube-score \(v[^ ]*\).*#\1#p' "$tools/go.mod")"

log() { echo "kube-score: $*" >&2; }

key() {
  local go_version h
  go_version="$(go env GOVERSION)"
  h="$( (cat "$tools/go.mod" "$tools/go.sum"; sed -n '/^do_build()/,/^}/p' "${BASH_SOURCE[0]}") | sha256sum | cut -c1-12)"
  echo "${version}_${go_version}_${h}"
}

do_build() {
  local k out t0
  k="$(key)"
  out="$cache_root/$k/kube-score"
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.lock"
  flock 9
  if [ ! -x "$out" ]; then
    t0=$SECONDS
    log "building $pkg $version into $cache_root/$k"
    mkdir -p "$cache_root/$k"
    # go.sum is committed: build exactly what it pins.
    (cd "$tools" && GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOFLAGS="-mod=readonly" \
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${version#v}" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    echo "$((SECONDS - t0))" >"$cache_root/$k/build-seconds"
    log "built in $((SECONDS - t0))s"
  fi
  flock -u 9
  echo "$out"
}

case "${1:-build}" in
  build) do_build ;;
  key) key ;;
  info)
    k="$(key)"
    echo "key:        $k"
    echo "binary:     $cache_root/$k/kube-score"
    [ -f "$cache_root/$k/build-seconds" ] && echo "build time: $(cat "$cache_root/$k/build-seconds")s"
    for d in "$cache_root/go/mod" "$cache_root/go/build" "$cache_root/$k"; do
      [ -d "$d" ] && du -sh "$d"
    done
    ;;
  *) echo "usage: $0 [build|key|info]" >&2; exit 2 ;;
esac
