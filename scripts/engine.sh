#!/usr/bin/env bash
# The real Pulumi engine for `npm run test:engine`: the `pulumi` CLI, the nodejs
# language host and the kubernetes provider, built from their Go modules
# (tools/engine/*/go.mod) into a cache outside the repo, once per versions key.
#
#   scripts/engine.sh build   build if not cached; print the bin dir, then the `pulumi` to run
#   scripts/engine.sh bin     same as build (alias)
#   scripts/engine.sh info    print the versions key, cache paths and sizes
#   scripts/engine.sh prune   drop the Go module and build caches (keeps binaries)
#
# Environment:
#   K8S_CHAIN_ENGINE_CACHE  cache root (default ~/.cache/k8s-chain/engine)
#   K8S_CHAIN_ENGINE        auto (default): use a `pulumi` CLI already on PATH
#                           (with its bundled nodejs language host) and build
#                           only what is missing; build: always use the built
#                           CLI; installed: require an installed CLI.
#
# Everything lands in <cache>/<key>/bin; the Go module and build caches live in
# <cache>/go/{mod,build} so a cold build is self-contained and measurable.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$here/tools/engine"
cache_root="${K8S_CHAIN_ENGINE_CACHE:-$HOME/.cache/k8s-chain/engine}"
mode="${K8S_CHAIN_ENGINE:-auto}"
# The go.mod files need no newer Go than this machine's; never switch toolchains.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

# Versions. The CLI and language host are stamped with the versions of the
# modules they are built from. The kubernetes provider is built from the only
# revision the Go module proxy serves (pseudo-version of the v4.25.0 tag) and is
# stamped with the plugin version that the npm SDK (@pulumi/kubernetes) asks
# for, read from package-lock.json (what `npm ci` installs; so this works before
# `npm ci` too), so that the engine loads it for that SDK.
pulumi_version="v3.274.1"
nodejs_host_version="v3.68.0"
k8s_source="4.25.0-f47bc2d6f199"
k8s_plugin_version="$(node -p "require('$here/package-lock.json').packages['node_modules/@pulumi/kubernetes'].version")"

log() { echo "engine: $*" >&2; }

key() {
  local h
  h="$( (cat "$tools"/*/go.mod "$tools"/*/go.sum; go version; echo "$k8s_plugin_version"; sed -n '/^build_one()/,/^installed_pulumi()/p' "${BASH_SOURCE[0]}") | sha256sum | cut -c1-12)"
  echo "pulumi-${pulumi_version}_nodejs-${nodejs_host_version}_kubernetes-${k8s_plugin_version}-from-${k8s_source}_${h}"
}

build_one() { # <module dir> <main package> <output name> <ldflags -X ...>
  local dir="$1" pkg="$2" out="$3" x="$4"
  local t0=$SECONDS
  [ -x "$bindir/$out" ] && return 0
  log "building $out from $pkg"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $x" -o "$bindir/.$out.tmp" "$pkg")
  mv "$bindir/.$out.tmp" "$bindir/$out"
  log "built $out in $((SECONDS - t0))s"
}

# The provider's main package embeds schema-embed.json and terraform-mapping-embed.json, which
# upstream's `go generate` (cmd/pulumi-resource-kubernetes/generate.go) writes next to
# schema.json before a build; the module zip has only the sources, and `go build -overlay`
# may not add files under GOMODCACHE. So the main package (main.go only) is copied from the
# module cache into a work dir in the cache, beside tools/engine/kubernetes/go.mod and go.sum,
# and the two files are generated there the way generate.go does it (schema version stamped,
# both re-serialized compactly). Prints the work dir.
k8s_main() { # <work dir>
  local work="$1" src
  src="$(cd "$tools/kubernetes" && go mod download -json github.com/pulumi/pulumi-kubernetes/provider/v4 \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Dir))')/cmd/pulumi-resource-kubernetes"
  rm -rf "$work"; mkdir -p "$work"
  cp "$tools/kubernetes/go.mod" "$tools/kubernetes/go.sum" "$src/main.go" "$work/"
  chmod u+w "$work"/*
  SRC="$src" WORK="$work" VERSION="$k8s_plugin_version" node -e '
    const fs = require("fs"), path = require("path");
    const { SRC, WORK, VERSION } = process.env;
    const schema = JSON.parse(fs.readFileSync(path.join(SRC, "schema.json"), "utf8"));
    schema.version = VERSION;
    fs.writeFileSync(path.join(WORK, "schema-embed.json"), JSON.stringify(schema));
    const mapping = JSON.parse(fs.readFileSync(path.join(SRC, "terraform-mapping.json"), "utf8"));
    fs.writeFileSync(path.join(WORK, "terraform-mapping-embed.json"), JSON.stringify(mapping));'
  echo "$work"
}

installed_pulumi() {
  # An installed CLI, not one of ours and not npm's `pulumi` package shim.
  local p
  p="$(command -v pulumi 2>/dev/null || true)"
  [ -n "$p" ] || return 1
  case "$(readlink -f "$p")" in "$cache_root"/*) return 1 ;; esac
  "$p" version >/dev/null 2>&1 || return 1
  echo "$p"
}

do_build() {
  local k bindir lock
  k="$(key)"
  bindir="$cache_root/$k/bin"
  export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build"
  # go.sum is committed: build exactly what it pins.
  export GOFLAGS="-mod=readonly"

  local want_cli=1 inst=""
  if [ "$mode" != build ] && inst="$(installed_pulumi)"; then
    want_cli=0
    log "using installed pulumi at $inst ($("$inst" version))"
  elif [ "$mode" = installed ]; then
    log "K8S_CHAIN_ENGINE=installed but no pulumi CLI on PATH"; exit 1
  fi

  mkdir -p "$cache_root"
  lock="$cache_root/.lock"
  exec 9>"$lock"
  flock 9

  if [ ! -f "$bindir/.complete" ] || { [ $want_cli = 1 ] && [ ! -x "$bindir/pulumi" ]; }; then
    local t0=$SECONDS
    mkdir -p "$bindir"
    if [ $want_cli = 1 ]; then
      build_one "$tools/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi pulumi \
        "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$pulumi_version"
      build_one "$tools/language-nodejs" github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs pulumi-language-nodejs \
        "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$nodejs_host_version"
    fi
    if [ ! -x "$bindir/pulumi-resource-kubernetes" ]; then
      local kdir
      kdir="$(k8s_main "$cache_root/$k/kubernetes-main")"
      build_one "$kdir" . pulumi-resource-kubernetes \
        "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$k8s_plugin_version"
    fi
    touch "$bindir/.complete"
    echo "$((SECONDS - t0))" >> "$cache_root/$k/build-seconds"
    log "engine ready in $((SECONDS - t0))s: $bindir"
  fi
  # The launcher the CLI's releases ship for dynamic providers (the stack's Rollout watch is
  # one): the engine runs it in the program's folder, and it runs the provider host of the
  # program's own @pulumi/pulumi. Not a Go build, so outside the cache key.
  if [ ! -x "$bindir/pulumi-resource-pulumi-nodejs" ]; then
    printf '#!/bin/sh\nexec node ./node_modules/@pulumi/pulumi/cmd/dynamic-provider "$@"\n' >"$bindir/.dyn.tmp"
    chmod +x "$bindir/.dyn.tmp"
    mv "$bindir/.dyn.tmp" "$bindir/pulumi-resource-pulumi-nodejs"
  fi
  flock -u 9
  echo "$bindir"
  if [ $want_cli = 1 ]; then echo "$bindir/pulumi"; else echo "$inst"; fi
}

case "${1:-build}" in
  build|bin) do_build ;;
  key) key ;;
  info)
    k="$(key)"
    echo "key:        $k"
    echo "bin:        $cache_root/$k/bin"
    [ -f "$cache_root/$k/build-seconds" ] && echo "build time: $(cat "$cache_root/$k/build-seconds")s"
    for d in "$cache_root/go/mod" "$cache_root/go/build" "$cache_root/$k/bin"; do
      [ -d "$d" ] && du -sh "$d"
    done
    ;;
  prune)
    export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build"
    go clean -modcache 2>/dev/null || true
    rm -rf "$cache_root/go"
    ;;
  *) echo "usage: $0 [build|info|key|prune]" >&2; exit 2 ;;
esac
