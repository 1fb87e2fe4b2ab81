# Sourced by the suites that need images (test-images.sh, test-cluster.sh): a private Docker
# engine and a registry, both on loopback and under the caller's $WORK, which the caller's
# cleanup stops (stop_docker) and removes. Needs log, die and WORK from the caller.
DOCKER=/usr/bin/docker
DOCKERD_PID=
REGISTRY_PID=
REGISTRY=
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"



free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# Debian's docker.io (client and daemon match: API 1.41, built-in BuildKit), its registry and
# debootstrap for the base image; curl for the health checks.
install_docker_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v curl >/dev/null || missing+=(curl)
  [ -x /usr/bin/docker ] || missing+=(docker.io)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing from Debian: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

start_dockerd() {
  # Container shims (the legacy builder's RUN steps, `docker run`) put their sockets in
  # /run/containerd/s whatever the exec root: note whether it was there, for stop_docker.
  [ -e /run/containerd ] && touch "$WORK/run-containerd-existed"
  export DOCKER_HOST="unix://$WORK/docker.sock"
  export DOCKER_CONFIG="$WORK/client" # no credential helpers or contexts from ~/.docker
  mkdir -p "$DOCKER_CONFIG"
  echo '{}' >"$WORK/daemon.json" # never read /etc/docker/daemon.json
  log "starting dockerd on $DOCKER_HOST"
  dockerd --host "$DOCKER_HOST" --config-file "$WORK/daemon.json" \
    --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/docker.pid" \
    --iptables=false --ip6tables=false --bridge=none --storage-driver overlay2 \
    --log-level warn >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  local i
  for ((i = 0; ; i++)); do
    "$DOCKER" version >/dev/null 2>&1 && break
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null || [ $i -ge 300 ]; then
      tail -n 20 "$WORK/dockerd.log" >&2
      die "dockerd did not come up (log above)"
    fi
    sleep 0.1
  done
  log "dockerd $("$DOCKER" version -f '{{.Server.Version}}') ready (pid $DOCKERD_PID)"
}

start_registry() {
  local attempt i port
  for attempt in 1 2 3; do
    port=$(free_port)
    cat >"$WORK/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
    docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
    REGISTRY_PID=$!
    for ((i = 0; i < 100; i++)); do
      if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
        REGISTRY="127.0.0.1:$port"
        log "registry ready on $REGISTRY (pid $REGISTRY_PID)"
        return 0
      fi
      kill -0 "$REGISTRY_PID" 2>/dev/null || break
      sleep 0.1
    done
    stop_pid "$REGISTRY_PID" 2
    REGISTRY_PID=
  done
  tail -n 20 "$WORK/registry.log" >&2
  die "registry did not come up (log above)"
}

# Imports the base rootfs tarball made by lab/scripts/images/base-image.sh as the image the
# Dockerfiles' NODE_IMAGE build arg names; sets BASE_IMAGE. $1: the tarball.
import_base_image() {
  BASE_IMAGE="k8s-chain/node-base:$(basename "$1" .tar)"
  "$DOCKER" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' "$1" "$BASE_IMAGE" >/dev/null
  log "base image $BASE_IMAGE imported"
}

stop_docker() {
  local ids
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    # Remove our containers first so dockerd's own shutdown is quick.
    ids=$("$DOCKER" ps -aq 2>/dev/null)
    [ -n "$ids" ] && "$DOCKER" rm -f $ids >/dev/null 2>&1
    stop_pid "$DOCKERD_PID" 20
  fi
  [ -n "$REGISTRY_PID" ] && stop_pid "$REGISTRY_PID" 5
  # Anything still alive that was started from our temp dir (a containerd or shim left by a
  # killed dockerd) is ours: stop it by pid.
  local pid m
  for pid in $(grep -lsF "$WORK" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [ "$pid" != $$ ] && stop_pid "$pid" 2
  done
  # Unmount whatever the engine left mounted below the temp dir, deepest first.
  for m in $(awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null
  done
  # /run/containerd, if our dockerd's shims made it (their sockets are gone with them).
  if [ -d "$WORK" ] && [ ! -e "$WORK/run-containerd-existed" ] && [ -d /run/containerd ] &&
    [ -z "$(find /run/containerd -type s 2>/dev/null)" ]; then
    rm -rf /run/containerd
  fi
  return 0
}
