#!/usr/bin/env bash
# `npm run test:workflows`: audits .github/ with the tools the GitHub Actions ecosystem uses,
# and fails on any finding of either:
#   - actionlint (workflow syntax, expressions, contexts, job needs, action inputs; with
#     Debian's `shellcheck` on PATH, every `run:` script of the workflows, and here the local
#     actions' scripts too), built from its Go module: lab/tools/actionlint/go.mod pins the
#     version and, in go.sum, every dependency;
#   - zizmor (security: unpinned actions, template injection, excessive permissions, credential
#     persistence, GITHUB_ENV writes, ...), from PyPI at the version below, in a venv; run
#     --offline (no GitHub API here, so the online audits are skipped).
# Both are installed into a cache outside the repo, once per key, as lab/scripts/kube-score.sh does.
#
#   lab/scripts/audit-workflows.sh          install what is missing, then run both over .github/
#   lab/scripts/audit-workflows.sh install  install only; print the paths of the two tools
#   lab/scripts/audit-workflows.sh key      print the two cache keys
#   lab/scripts/audit-workflows.sh info     print the keys, cache paths, sizes and install times
#
# Environment:
#   K8S_CHAIN_WORKFLOW_AUDIT_CACHE  cache root (default ~/.cache/k8s-chain/workflow-audit)
#
# actionlint lands in <cache>/actionlint/<key>/actionlint with the Go module and build caches in
# <cache>/go/{mod,build}; zizmor in the venv <cache>/zizmor/<key>/. shellcheck comes from
# Debian (apt-get) when it is not on PATH: without it actionlint would skip the scripts.
# Reading the local actions' scripts takes node and the repo's `yaml` package (after `npm ci`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="$here/lab/tools/actionlint"
cache_root="${K8S_CHAIN_WORKFLOW_AUDIT_CACHE:-$HOME/.cache/k8s-chain/workflow-audit}"
# The go.mod needs no newer Go than this machine's; never switch toolchains.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
pkg=github.com/rhysd/actionlint/cmd/actionlint
actionlint_version="$(sed -n 's#^\s*github.com/rhysd/actionlint \(v[^ ]*\).*#\1#p' "$tools/go.mod")"
zizmor_version=1.32.0
python="${K8S_CHAIN_PYTHON:-python3.11}"

log() { echo "audit-workflows: $*" >&2; }

actionlint_key() {
  local h
  h="$( (cat "$tools/go.mod" "$tools/go.sum"; sed -n '/^build_actionlint()/,/^}/p' "${BASH_SOURCE[0]}") | sha256sum | cut -c1-12)"
  echo "${actionlint_version}_$(go env GOVERSION)_${h}"
}

zizmor_key() {
  echo "${zizmor_version}_$("$python" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')"
}

build_actionlint() {
  local k out t0
  k="$(actionlint_key)"
  out="$cache_root/actionlint/$k/actionlint"
  if [ ! -x "$out" ]; then
    t0=$SECONDS
    log "building $pkg $actionlint_version into $cache_root/actionlint/$k"
    mkdir -p "$cache_root/actionlint/$k"
    # go.sum is committed: build exactly what it pins.
    (cd "$tools" && GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOFLAGS="-mod=readonly" \
      CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/rhysd/actionlint.version=${actionlint_version}" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    echo "$((SECONDS - t0))" >"$cache_root/actionlint/$k/build-seconds"
    log "actionlint built in $((SECONDS - t0))s"
  fi
  echo "$out"
}

install_zizmor() {
  local k venv t0
  k="$(zizmor_key)"
  venv="$cache_root/zizmor/$k"
  # install-seconds is written last: a venv without it is a broken install, made anew.
  if [ ! -f "$venv/install-seconds" ]; then
    t0=$SECONDS
    log "installing zizmor==$zizmor_version from PyPI into $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --only-binary=:all: \
      "zizmor==$zizmor_version" >&2
    echo "$((SECONDS - t0))" >"$venv/install-seconds"
    log "zizmor installed in $((SECONDS - t0))s"
  fi
  echo "$venv/bin/zizmor"
}

ensure_shellcheck() {
  command -v shellcheck >/dev/null && return 0
  log "shellcheck is not on PATH: installing Debian's shellcheck"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y --no-install-recommends shellcheck >&2 \
    || { $sudo apt-get update >&2 && $sudo apt-get install -y --no-install-recommends shellcheck >&2; }
  command -v shellcheck >/dev/null || { log "shellcheck did not install; actionlint would skip the run: scripts"; exit 1; }
}

install_all() {
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.lock"
  flock 9
  actionlint="$(build_actionlint)"
  zizmor="$(install_zizmor)"
  flock -u 9
  ensure_shellcheck
}

run() {
  install_all
  cd "$here"
  shopt -s nullglob
  local files=(.github/workflows/*.yml .github/workflows/*.yaml .github/actions/*/action.yml .github/actions/*/action.yaml)
  local workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
  local failed=0
  echo "actionlint $("$actionlint" -version | head -1), shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${workflows[*]}"
  # actionlint reads the local actions the workflows use (./.github/actions/*) through them.
  "$actionlint" -no-color -oneline -shellcheck="$(command -v shellcheck)" "${workflows[@]}" || failed=1
  # actionlint reads a local action's inputs and outputs through the workflows that use it but
  # not its scripts: shellcheck each bash `run:` of .github/actions/*/action.yml the same way.
  local action
  for action in .github/actions/*/action.yml .github/actions/*/action.yaml; do
    node -e '
      const a = require("yaml").parse(require("fs").readFileSync(process.argv[1], "utf8"));
      for (const s of a.runs?.steps ?? []) if (s.run !== undefined && (s.shell ?? "bash") === "bash") process.stdout.write(s.run + "\n");
    ' "$action" | shellcheck -s bash -S style - | sed "s#^In - #In $action #" || failed=1
  done
  echo "zizmor $("$zizmor" --version | awk '{print $2}') --offline: ${files[*]}"
  # --persona=regular (the default); --min-severity unset: every finding counts.
  "$zizmor" --offline --no-progress --color=never "${files[@]}" || failed=1
  if [ "$failed" != 0 ]; then
    echo "test:workflows: findings above (fix the workflow; suppress only with a reason inline)" >&2
    exit 1
  fi
  echo "test:workflows: actionlint and zizmor found nothing"
}

case "${1:-run}" in
  run) run ;;
  install) install_all; echo "$actionlint"; echo "$zizmor" ;;
  key) echo "actionlint: $(actionlint_key)"; echo "zizmor:     $(zizmor_key)" ;;
  info)
    ka="$(actionlint_key)"; kz="$(zizmor_key)"
    echo "actionlint: $cache_root/actionlint/$ka/actionlint"
    [ -f "$cache_root/actionlint/$ka/build-seconds" ] && echo "  build time: $(cat "$cache_root/actionlint/$ka/build-seconds")s"
    echo "zizmor:     $cache_root/zizmor/$kz/bin/zizmor"
    [ -f "$cache_root/zizmor/$kz/install-seconds" ] && echo "  install time: $(cat "$cache_root/zizmor/$kz/install-seconds")s"
    for d in "$cache_root/go/mod" "$cache_root/go/build" "$cache_root/actionlint/$ka" "$cache_root/zizmor/$kz"; do
      [ -d "$d" ] && du -sh "$d"
    done
    ;;
  *) echo "usage: $0 [run|install|key|info]" >&2; exit 2 ;;
esac
