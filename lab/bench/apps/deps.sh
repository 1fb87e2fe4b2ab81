#!/usr/bin/env bash
# Installs the bench's Debian packages (wrk, python3-flask) when they are missing, so
# `npm run bench:apps` is one command on a fresh machine. Needs root (or sudo) for apt-get.
set -euo pipefail
missing=()
command -v wrk >/dev/null || missing+=(wrk)
/usr/bin/python3 -c 'import flask' 2>/dev/null || missing+=(python3-flask)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "bench:apps: installing ${missing[*]} from Debian's packages" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
