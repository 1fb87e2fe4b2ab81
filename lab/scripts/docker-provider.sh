#!/usr/bin/env bash
# The Pulumi docker provider (`pulumi-resource-docker`) that the stack's `AppImage` runs on, built
# from the source vendored in lab/vendor/ (no GitHub downloads here; see lab/vendor/README.md), once,
# into a cache outside the repo.
#
#   lab/scripts/docker-provider.sh build   find or build it; print the binary's path
#   lab/scripts/docker-provider.sh key     print the cache key
#   lab/scripts/docker-provider.sh info    key, where it is, build time, cache sizes
#
# The key hashes the two vendored tarballs, `go version` and the plugin version it is stamped
# with: the version of @pulumi/docker in package-lock.json (what `npm ci` installs), so that the
# engine loads it for that SDK. Built as the vendored source's own Makefile does: the upstream
# Terraform provider unpacked as `upstream`, the patches applied with `git apply --3way`, the
# embedded schema generated (`generate.go`), then `go build -tags no_compose`.
#
# Environment:
#   K8S_CHAIN_DOCKER_PROVIDER_CACHE  cache root (default ~/.cache/k8s-chain/docker-provider)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
vendor="$here/lab/vendor"
provider_tar="$vendor/pulumi-docker-237b7899.tar.gz"
upstream_tar="$vendor/terraform-provider-docker-5074970c.tar.gz"
cache_root="${K8S_CHAIN_DOCKER_PROVIDER_CACHE:-$HOME/.cache/k8s-chain/docker-provider}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
version="$(node -p "require('$here/package-lock.json').packages['node_modules/@pulumi/docker'].version")"

log() { echo "docker-provider: $*" >&2; }

key() {
  local h
  h="$( (sha256sum "$provider_tar" "$upstream_tar" | cut -d' ' -f1; go version; echo "$version") | sha256sum | cut -c1-12)"
  echo "docker-${version}_src-${h}"
}

do_build() {
  local k dir bin work t0=$SECONDS
  k="$(key)"
  dir="$cache_root/$k"
  bin="$dir/pulumi-resource-docker"
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    log "building pulumi-resource-docker $version from lab/vendor/ (cold: about 4 min alone on 2 cores, 13 beside other builds)"
    export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build"
    # go.sum is the vendored one; -mod=mod only lets go write the go.sum lines of the
    # generator's own imports (the provider's Makefile builds the same way).
    export GOFLAGS="-mod=mod" CGO_ENABLED=0
    mkdir -p "$dir"
    work="$cache_root/.work-$k"
    rm -rf "$work"; mkdir -p "$work"
    tar xzf "$provider_tar" -C "$work"
    tar xzf "$upstream_tar" -C "$work"
    mv "$work/terraform-provider-docker" "$work/pulumi-docker/upstream"
    (
      cd "$work/pulumi-docker/upstream"
      git init -q . && git add -A && git -c user.name=k8s-chain -c user.email=k8s-chain@localhost commit -q -m upstream
      for p in ../patches/*.patch; do git apply --3way "$p"; done
    )
    (cd "$work/pulumi-docker/provider/cmd/pulumi-resource-docker" && VERSION="$version" go run ./generate.go)
    (cd "$work/pulumi-docker/provider" && go build -tags no_compose -trimpath \
      -ldflags "-X github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version=$version -s -w" \
      -o "$dir/.pulumi-resource-docker.tmp" ./cmd/pulumi-resource-docker)
    mv "$dir/.pulumi-resource-docker.tmp" "$bin"
    rm -rf "$work"
    echo "$((SECONDS - t0))" >> "$dir/build-seconds"
    log "built in $((SECONDS - t0))s: $bin"
  fi
  flock -u 9
  echo "$bin"
}

case "${1:-build}" in
  build) do_build ;;
  key) key ;;
  info)
    k="$(key)"
    echo "key:        $k"
    echo "version:    $version"
    if [ -x "$cache_root/$k/pulumi-resource-docker" ]; then echo "binary:     $cache_root/$k/pulumi-resource-docker"; else echo "binary:     to build"; fi
    [ -f "$cache_root/$k/build-seconds" ] && echo "build time: $(tr '\n' ' ' < "$cache_root/$k/build-seconds")s"
    for d in "$cache_root/go/mod" "$cache_root/go/build"; do
      if [ -d "$d" ]; then du -sh "$d"; fi
    done
    ;;
  *) echo "usage: $0 [build|key|info]" >&2; exit 2 ;;
esac
