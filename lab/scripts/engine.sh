#!/usr/bin/env bash
# The real Pulumi engine for `npm run test:engine` (and the audit, action and cluster suites):
# the `pulumi` CLI, the nodejs language host and the kubernetes provider. Each piece that is
# installed is used as it is; only what is missing is built from its Go module
# (lab/tools/engine/*/go.mod) into a cache outside the repo.
#
#   lab/scripts/engine.sh build   find or build each piece; print the engine dir, then the `pulumi` to run
#   lab/scripts/engine.sh bin     same as build (alias)
#   lab/scripts/engine.sh info    print the key, where each piece comes from, cache paths and sizes
#   lab/scripts/engine.sh key     print the key
#   lab/scripts/engine.sh prune   drop the Go module and build caches (keeps binaries)
#
# Where each piece comes from, in K8S_CHAIN_ENGINE=auto (the default):
#   pulumi                      a `pulumi` on PATH (not npm's shim), else built
#   pulumi-language-nodejs      beside that installed CLI (its bundled host), else on PATH,
#                               else built
#   pulumi-resource-kubernetes  of the version the npm SDK asks (@pulumi/kubernetes in
#                               package-lock.json): $PULUMI_HOME/plugins (default ~/.pulumi/plugins)
#                               resource-kubernetes-v<version>/, else on PATH if it reports that
#                               version, else built
# K8S_CHAIN_ENGINE=build builds all three; K8S_CHAIN_ENGINE=installed requires an installed CLI
# (plugins as in auto).
#
# Built binaries land in <cache>/<key>/bin, where the key is the versions plus a hash of the
# Go module files (lab/tools/engine/*/go.mod, go.sum), `go version` and the provider's plugin
# version. <cache>/<key>/engine is made anew on each build: links to the chosen pieces (and the
# launcher for dynamic providers), the folder the first printed line names. The CLI loads the
# nodejs host beside its executable, so when the chosen host is not there the printed `pulumi`
# is a hard link (or copy) of the CLI in that folder. The Go module and
# build caches live in <cache>/go/{mod,build} so a cold build is self-contained and measurable.
#
# Environment:
#   K8S_CHAIN_ENGINE_CACHE  cache root (default ~/.cache/k8s-chain/engine)
#   K8S_CHAIN_ENGINE        auto (default), build or installed (see above)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="$here/lab/tools/engine"
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

key_prefix="pulumi-${pulumi_version}_nodejs-${nodejs_host_version}_kubernetes-${k8s_plugin_version}-from-${k8s_source}"

key() {
  local h
  h="$( (cat "$tools"/*/go.mod "$tools"/*/go.sum; go version; echo "$k8s_plugin_version") | sha256sum | cut -c1-12)"
  echo "${key_prefix}_mod-${h}"
}

# Whether the Go binary $1 was built from the module files in $2 with this `go version`: every
# module it was linked from (its build info: `go version -m`) is pinned, with the same hash, in
# $2/go.sum.
built_from() { # <binary> <module dir>
  local info
  info="$(go version -m "$1" 2>/dev/null)" || return 1
  [ "$(head -n1 <<<"$info" | awk '{print $2}')" = "$(go version | awk '{print $3}')" ] || return 1
  awk 'NR == FNR { sum[$1 " " $2 " " $3] = 1; next }
       ($1 == "mod" || $1 == "dep") && $4 ~ /^h1:/ { n++; if (!(($2 " " $3 " " $4) in sum)) bad = 1 }
       END { exit (bad || n == 0) }' "$2/go.sum" <(tail -n +2 <<<"$info")
}

# Keys before this one hashed part of this script as well as the module files. A cached engine
# under such a key (same versions, .complete) whose binaries check out against today's module
# files (built_from) is moved to today's key, and its old name left as a link to it, instead of
# a ~25 min rebuild.
migrate() { # <new key dir>
  local new="$1" old
  [ -e "$new" ] && return 0
  for old in "$cache_root/${key_prefix}"_[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]; do
    [ -d "$old" ] && [ ! -L "$old" ] && [ -f "$old/bin/.complete" ] || continue
    built_from "$old/bin/pulumi" "$tools/pulumi" || continue
    built_from "$old/bin/pulumi-language-nodejs" "$tools/language-nodejs" || continue
    built_from "$old/bin/pulumi-resource-kubernetes" "$tools/kubernetes" || continue
    mv "$old" "$new"
    ln -s "$(basename "$new")" "$old"
    log "moved the engine cached under $(basename "$old") to $(basename "$new") (built from the same module files)"
    return 0
  done
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
# module cache into a work dir in the cache, beside lab/tools/engine/kubernetes/go.mod and go.sum,
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

installed_nodejs_host() { # [installed cli]
  local p
  if [ -n "${1:-}" ]; then
    p="$(dirname "$(readlink -f "$1")")/pulumi-language-nodejs"
    [ -x "$p" ] && { echo "$p"; return 0; }
  fi
  p="$(command -v pulumi-language-nodejs 2>/dev/null || true)"
  [ -n "$p" ] || return 1
  case "$(readlink -f "$p")" in "$cache_root"/*) return 1 ;; esac
  echo "$p"
}

installed_kubernetes() {
  # The plugin cache names the version; a binary on PATH has to say it in its build info
  # (a release stamps version.Version by -ldflags, a source build has the module version).
  local p
  p="${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-kubernetes-v$k8s_plugin_version/pulumi-resource-kubernetes"
  [ -x "$p" ] && { echo "$p"; return 0; }
  p="$(command -v pulumi-resource-kubernetes 2>/dev/null || true)"
  [ -n "$p" ] || return 1
  case "$(readlink -f "$p")" in "$cache_root"/*) return 1 ;; esac
  if go version -m "$p" 2>/dev/null \
    | grep -Eq "version\.Version=v?${k8s_plugin_version}([^0-9.]|\$)|pulumi-kubernetes/provider/v4[[:space:]]+v${k8s_plugin_version}([[:space:]]|\$)"; then
    echo "$p"; return 0
  fi
  log "not using $p: its build info does not say it is version $k8s_plugin_version"
  return 1
}

# Sets cli, host, k8s: the installed piece's path, or "" when it is to be built.
resolve() {
  cli="" host="" k8s=""
  if [ "$mode" != build ]; then
    cli="$(installed_pulumi)" || cli=""
    if [ -z "$cli" ] && [ "$mode" = installed ]; then
      log "K8S_CHAIN_ENGINE=installed but no pulumi CLI on PATH"; exit 1
    fi
    host="$(installed_nodejs_host "$cli")" || host=""
    # A built CLI loads the host built beside it, if there is one, before any other.
    if [ -z "$cli" ] && [ -x "$cache_root/$(key)/bin/pulumi-language-nodejs" ]; then host=""; fi
    k8s="$(installed_kubernetes)" || k8s=""
  fi
}

do_build() {
  local k dir bindir lock cli host k8s
  k="$(key)"
  dir="$cache_root/$k"
  bindir="$dir/bin"
  export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build"
  # go.sum is committed: build exactly what it pins.
  export GOFLAGS="-mod=readonly"

  resolve
  [ -n "$cli" ] && log "using installed pulumi at $cli ($("$cli" version))"
  [ -n "$host" ] && log "using installed pulumi-language-nodejs at $host"
  [ -n "$k8s" ] && log "using installed pulumi-resource-kubernetes $k8s_plugin_version at $k8s"

  mkdir -p "$cache_root"
  lock="$cache_root/.lock"
  exec 9>"$lock"
  flock 9

  migrate "$dir"
  mkdir -p "$bindir"
  local t0=$SECONDS built=0
  if [ -z "$cli" ] && [ ! -x "$bindir/pulumi" ]; then
    build_one "$tools/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi pulumi \
      "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$pulumi_version"
    built=1
  fi
  if [ -z "$host" ] && [ ! -x "$bindir/pulumi-language-nodejs" ]; then
    build_one "$tools/language-nodejs" github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs pulumi-language-nodejs \
      "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$nodejs_host_version"
    built=1
  fi
  if [ -z "$k8s" ] && [ ! -x "$bindir/pulumi-resource-kubernetes" ]; then
    local kdir
    kdir="$(k8s_main "$dir/kubernetes-main")"
    build_one "$kdir" . pulumi-resource-kubernetes \
      "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$k8s_plugin_version"
    built=1
  fi
  if [ $built = 1 ]; then
    echo "$((SECONDS - t0))" >> "$dir/build-seconds"
    log "built in $((SECONDS - t0))s: $bindir"
  fi
  [ -x "$bindir/pulumi" ] && [ -x "$bindir/pulumi-language-nodejs" ] && [ -x "$bindir/pulumi-resource-kubernetes" ] \
    && touch "$bindir/.complete"
  # The launcher the CLI's releases ship for dynamic providers (the stack's Rollout watch is
  # one): the engine runs it in the program's folder, and it runs the provider host of the
  # program's own @pulumi/pulumi. Not a Go build, so outside the cache key.
  if [ ! -x "$bindir/pulumi-resource-pulumi-nodejs" ]; then
    printf '#!/bin/sh\nexec node ./node_modules/@pulumi/pulumi/cmd/dynamic-provider "$@"\n' >"$bindir/.dyn.tmp"
    chmod +x "$bindir/.dyn.tmp"
    mv "$bindir/.dyn.tmp" "$bindir/pulumi-resource-pulumi-nodejs"
  fi
  # The engine dir: one link per piece, to the installed one or the built one.
  local eng="$dir/engine" run_cli="${cli:-$bindir/pulumi}" use_host="${host:-$bindir/pulumi-language-nodejs}" real
  rm -rf "$eng.tmp"; mkdir -p "$eng.tmp"
  ln -s "$use_host" "$eng.tmp/pulumi-language-nodejs"
  real="$(readlink -f "$run_cli")"
  if [ "$(readlink -f "$(dirname "$real")/pulumi-language-nodejs" 2>/dev/null)" = "$(readlink -f "$use_host")" ]; then
    ln -s "$run_cli" "$eng.tmp/pulumi"
  else
    # The CLI loads the nodejs host that sits beside its own executable (links resolved; a
    # bundled plugin cannot be put in the plugin cache): so the CLI runs from the engine dir,
    # as a hard link (a copy across file systems), beside the chosen host.
    ln -f "$real" "$eng.tmp/pulumi" 2>/dev/null || cp "$real" "$eng.tmp/pulumi"
    run_cli="$eng/pulumi"
  fi
  ln -s "${k8s:-$bindir/pulumi-resource-kubernetes}" "$eng.tmp/pulumi-resource-kubernetes"
  ln -s "$bindir/pulumi-resource-pulumi-nodejs" "$eng.tmp/pulumi-resource-pulumi-nodejs"
  rm -rf "$eng"; mv "$eng.tmp" "$eng"
  flock -u 9
  echo "$eng"
  echo "$run_cli"
}

case "${1:-build}" in
  build|bin) do_build ;;
  key) key ;;
  info)
    k="$(key)"
    resolve
    echo "key:        $k"
    echo "mode:       $mode"
    for piece in "pulumi:$cli" "pulumi-language-nodejs:$host" "pulumi-resource-kubernetes:$k8s"; do
      name="${piece%%:*}" at="${piece#*:}"
      if [ -n "$at" ]; then
        echo "$(printf '%-28s' "$name:") installed at $at"
      elif [ -x "$cache_root/$k/bin/$name" ]; then
        echo "$(printf '%-28s' "$name:") built, $cache_root/$k/bin/$name"
      else
        old="$(ls -d "$cache_root/${key_prefix}"_[0-9a-f]*[0-9a-f]/bin/"$name" 2>/dev/null | head -n1 || true)"
        if [ -n "$old" ] && [ ! -e "$cache_root/$k" ]; then
          echo "$(printf '%-28s' "$name:") to build, unless \`build\` can move $old (older key) here"
        else
          echo "$(printf '%-28s' "$name:") to build"
        fi
      fi
    done
    echo "bin:        $cache_root/$k/bin"
    [ -f "$cache_root/$k/build-seconds" ] && echo "build time: $(cat "$cache_root/$k/build-seconds" | tr '\n' ' ')s"
    for d in "$cache_root/go/mod" "$cache_root/go/build" "$cache_root/$k/bin"; do
      if [ -d "$d" ]; then du -sh "$d"; fi
    done
    ;;
  prune)
    export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build"
    go clean -modcache 2>/dev/null || true
    rm -rf "$cache_root/go"
    ;;
  *) echo "usage: $0 [build|info|key|prune]" >&2; exit 2 ;;
esac
