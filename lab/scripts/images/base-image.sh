#!/usr/bin/env bash
# Builds (or reuses) the local Node base image's root filesystem for `npm run test:images`.
#
# No registry other than the package registries is reachable here, so the official node
# images cannot be pulled. This makes a stand-in, shaped like the official node:20 images:
#   debootstrap --variant=minbase --include=nodejs,ca-certificates trixie   (Node 20.19)
#   npm 10.8.2 (the npm the official Node 20.19 images bundle) from the npm registry, in
#     /usr/local/lib/node_modules/npm with /usr/local/bin/npm and npx, as there;
#   a `node` user with uid/gid 1000 and home /home/node, as there;
#   this machine's extra trusted CAs (/usr/local/share/ca-certificates/*.crt), so that
#     `npm ci` inside a build reaches the registry through this machine's TLS egress proxy.
# (Debian's own npm package is not used: debootstrap does not resolve it completely, and its
# npm then fails with "Cannot find module 'color-support'"; it is also 9.2 and pulls python3.)
#
# The result is a tarball cached outside the repository (default ~/.cache/k8s-chain/base/),
# keyed by a hash of this script, the suite, the npm version and the extra CAs, so a warm
# run only re-imports it.
# Usage: base-image.sh CACHE_DIR   -> prints the path of the cached rootfs tarball on stdout.
set -euo pipefail

CACHE_DIR=${1:?usage: base-image.sh CACHE_DIR}
SUITE=${K8S_CHAIN_BASE_SUITE:-trixie}
PACKAGES=nodejs,ca-certificates
NPM_VERSION=${K8S_CHAIN_BASE_NPM:-10.8.2}
EXTRA_CAS=(/usr/local/share/ca-certificates/*.crt)
[ -e "${EXTRA_CAS[0]}" ] || EXTRA_CAS=()

debian_mirror() {
  if [ -n "${K8S_CHAIN_DEBIAN_MIRROR:-}" ]; then echo "$K8S_CHAIN_DEBIAN_MIRROR"; return; fi
  # The mirror apt already uses: first "URIs:" (deb822) or "deb URL" line whose path ends in /debian.
  local url
  url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -nE 's#^URIs:[[:space:]]+(https?://[^[:space:]]+/debian)/?$#\1#p; s#^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?(https?://[^[:space:]]+/debian)/?[[:space:]].*#\2#p' \
    | head -n1)
  echo "${url:-http://deb.debian.org/debian}"
}

mkdir -p "$CACHE_DIR/base"
KEY=$( { cat "$0"; echo "$SUITE $PACKAGES $NPM_VERSION"; cat ${EXTRA_CAS[@]+"${EXTRA_CAS[@]}"}; } | sha256sum | cut -c1-12)
TARBALL="$CACHE_DIR/base/node-$SUITE-$KEY.tar"

exec 9>"$CACHE_DIR/base/.lock"
flock 9 # another run building the same base waits here, then reuses it

if [ -s "$TARBALL" ]; then
  echo "base: reusing cached rootfs $TARBALL" >&2
  echo "$TARBALL"
  exit 0
fi

MIRROR=$(debian_mirror)
ROOTFS=$(mktemp -d "$CACHE_DIR/base/rootfs.XXXXXX")
DEBOOTSTRAP_PID=
# On INT/TERM stop debootstrap and its children too: it runs in the background, in a process
# group of its own, so the trap fires at once and can end the whole group.
cleanup() {
  [ -n "$DEBOOTSTRAP_PID" ] && kill -TERM -- "-$DEBOOTSTRAP_PID" 2>/dev/null
  wait
  awk -v r="$ROOTFS" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r | xargs -r umount -l
  rm -rf "$ROOTFS" "$TARBALL.partial"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "base: debootstrap --variant=minbase --include=$PACKAGES $SUITE from $MIRROR (cold: this takes a few minutes)" >&2
start=$SECONDS
setsid debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$CACHE_DIR/base/debootstrap.log" 2>&1 &
DEBOOTSTRAP_PID=$!
if ! wait "$DEBOOTSTRAP_PID"; then
  echo "base: debootstrap failed; last lines of $CACHE_DIR/base/debootstrap.log:" >&2
  tail -n 20 "$CACHE_DIR/base/debootstrap.log" >&2
  exit 1
fi
DEBOOTSTRAP_PID=
echo "base: debootstrap took $((SECONDS - start)) s" >&2

# npm as the official images lay it out.
( cd "$ROOTFS/tmp" && npm pack "npm@$NPM_VERSION" --silent >/dev/null )
install -d "$ROOTFS/usr/local/lib/node_modules/npm"
tar -xzf "$ROOTFS/tmp/npm-$NPM_VERSION.tgz" -C "$ROOTFS/usr/local/lib/node_modules/npm" --strip-components=1
rm -f "$ROOTFS/tmp/npm-$NPM_VERSION.tgz"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"

if [ ${#EXTRA_CAS[@]} -gt 0 ]; then
  cp "${EXTRA_CAS[@]}" "$ROOTFS/usr/local/share/ca-certificates/"
  chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1 # (its rehash warns about the bundle file; harmless)
fi

# The official node images have user node (1000:1000, home /home/node): mirror that, so a
# Dockerfile written for them (USER node or USER 1000:1000) works on this base too.
grep -q '^node:' "$ROOTFS/etc/group" || echo 'node:x:1000:' >>"$ROOTFS/etc/group"
grep -q '^node:' "$ROOTFS/etc/passwd" || echo 'node:x:1000:1000::/home/node:/bin/sh' >>"$ROOTFS/etc/passwd"
grep -q '^node:' "$ROOTFS/etc/shadow" || echo 'node:*:20000:0:99999:7:::' >>"$ROOTFS/etc/shadow"
install -d -o 1000 -g 1000 "$ROOTFS/home/node"
# Trim what an image never needs (apt caches, docs); keeps dpkg's database.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/*
: >"$ROOTFS/etc/resolv.conf" # docker provides its own at run time
echo "base: node $(chroot "$ROOTFS" node --version), npm $(chroot "$ROOTFS" /usr/local/bin/npm --version)" >&2

tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.partial" .
mv "$TARBALL.partial" "$TARBALL"
find "$CACHE_DIR/base" -maxdepth 1 -name "node-$SUITE-*.tar" ! -name "$(basename "$TARBALL")" -delete # older recipes
echo "base: cached $TARBALL ($(du -m "$TARBALL" | cut -f1) MiB)" >&2
echo "$TARBALL"
