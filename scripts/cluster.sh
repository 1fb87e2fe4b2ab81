#!/usr/bin/env bash
# A real Kubernetes cluster on this machine, on 127.0.0.1, for `npm run test:cluster`.
#
#   scripts/cluster.sh build   build the binaries if not cached (Go modules in tools/cluster/*)
#   scripts/cluster.sh start   build, then start: etcd, kube-apiserver, kube-controller-manager,
#                              kube-scheduler, one real node (containerd + runc + CNI bridge,
#                              kubelet, kube-proxy, CoreDNS as a host process) and kwok nodes
#   scripts/cluster.sh env     print KUBECONFIG=... and the other facts a client needs
#   scripts/cluster.sh stop    stop everything and undo every change to the machine
#   scripts/cluster.sh mem     resident memory of the cluster's processes (MiB)
#   scripts/cluster.sh info    versions key, cache paths and sizes, recorded build time
#
# Environment:
#   K8S_CHAIN_CLUSTER_CACHE     cache root (default ~/.cache/k8s-chain/cluster)
#   K8S_CHAIN_CLUSTER_DIR       run dir: certs, configs, data, logs (default /tmp/k8s-chain-cluster)
#   K8S_CHAIN_CLUSTER_REAL_NODE 1 (default): start the real node; 0: kwok nodes only
#   K8S_CHAIN_CLUSTER_KWOK_NODES number of kwok nodes (default 2), tainted
#                              kwok.x-k8s.io/node=fake:NoSchedule so only pods that ask land there
#   K8S_CHAIN_CLUSTER_KWOK_TAINT 1 (default) taint the kwok nodes; 0: any pod may land there
#                              (the kwok bench, with no real node)
#   K8S_CHAIN_CLUSTER_REGISTRY  host:port of a registry on loopback that the node's containerd
#                              pulls every image from (default: none, every pull fails closed)
#   K8S_CHAIN_CLUSTER_KEEP=1    keep the run dir (logs) after stop
#
# What start changes on the machine, and stop undoes (also when start fails or is
# interrupted): processes (all started with setsid, pids in the run dir), two bridges
# (kc-node0 holding the node IP, kc-cni0 for pods) and the veths and network namespaces of
# pods, a route to the Service range, iptables and nftables rules (snapshotted at start,
# restored at stop), the sysctls the kubelet, kube-proxy and the bridge need (saved and
# restored), cgroups made for pods (the kubepods trees),
# mounts under the run dir and pod netns mounts, /var/log/containers links to our pods.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$here/tools/cluster"
cache_root="${K8S_CHAIN_CLUSTER_CACHE:-$HOME/.cache/k8s-chain/cluster}"
run="${K8S_CHAIN_CLUSTER_DIR:-/tmp/k8s-chain-cluster}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

k8s_version="v1.36.1"
node_name="k8s-chain-node"
node_ip="10.200.0.10"
pod_cidr="10.244.0.0/24"
cluster_cidr="10.244.0.0/16"
service_cidr="10.96.0.0/16"
cluster_domain="cluster.local"
node_bridge="kc-node0"
cni_bridge="kc-cni0"
# Sysctls a component changes (kubelet: panic, overcommit; kube-proxy: route_localnet,
# conntrack; the pod network: forwarding and bridge netfilter). Saved at start, restored at stop.
sysctls=(
  kernel.panic kernel.panic_on_oops vm.overcommit_memory
  net.ipv4.ip_forward net.ipv4.conf.all.route_localnet
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait net.netfilter.nf_conntrack_tcp_be_liberal
)

T0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - T0) / 1000000 )); }
log() { printf '[cluster %6d ms] %s\n' "$(ms)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# --- build -------------------------------------------------------------------------------

key() {
  ( cat "$tools"/*/go.mod "$tools"/*/go.sum "$tools"/pause/*.go 2>/dev/null || true; go version; echo "$k8s_version"
    sed -n '/^do_build()/,/^# --- end build/p' "${BASH_SOURCE[0]}" ) | sha256sum | cut -c1-12
}

ldflags_k8s() {
  local p x=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x="$x -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=36 -X $p.gitTreeState=clean"
  done
  echo "$x"
}

go_build() { # <module dir> <out dir> <ldflags> <packages...>
  local dir=$1 out=$2 ld=$3; shift 3
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ld" -o "$out/" "$@")
}

do_build() {
  local k bin t0=$SECONDS
  k="$(key)"
  bin="$cache_root/$k/bin"
  export GOMODCACHE="$cache_root/go/mod" GOCACHE="$cache_root/go/build" GOFLAGS="-mod=readonly"
  mkdir -p "$cache_root"
  exec 8>"$cache_root/.lock"
  flock 8
  if [ ! -f "$bin/.complete" ]; then
    rm -rf "$bin"; mkdir -p "$bin/.tmp"
    log "building the cluster binaries into $bin (cold: about 20 min on 2 cores)"
    go_build "$tools/etcd" "$bin/.tmp" "" go.etcd.io/etcd/server/v3
    mv "$bin/.tmp/server" "$bin/.tmp/etcd"
    log "built etcd ($((SECONDS - t0)) s)"
    go_build "$tools/kube" "$bin/.tmp" "$(ldflags_k8s)" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl sigs.k8s.io/kwok/cmd/kwok
    log "built the control plane, kubelet, kube-proxy, kubectl and kwok ($((SECONDS - t0)) s)"
    go_build "$tools/containerd" "$bin/.tmp" \
      "-X github.com/containerd/containerd/v2/version.Version=v2.4.2" \
      github.com/containerd/containerd/v2/cmd/containerd \
      github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
      github.com/containerd/containerd/v2/cmd/ctr
    log "built containerd ($((SECONDS - t0)) s)"
    go_build "$tools/coredns" "$bin/.tmp" "" github.com/coredns/coredns
    log "built coredns ($((SECONDS - t0)) s)"
    go_build "$tools/pause" "$bin/.tmp" "" .
    # kwok has no built-in stages when run standalone: take the module's own.
    local kwok_dir
    kwok_dir="$(cd "$tools/kube" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
    mkdir -p "$bin/.tmp/kwok-stages"
    for s in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
             pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
      cp "$kwok_dir/kustomize/stage/$s.yaml" "$bin/.tmp/kwok-stages/"
    done
    mv "$bin/.tmp"/* "$bin/"; rmdir "$bin/.tmp"
    touch "$bin/.complete"
    echo "$((SECONDS - t0))" > "$cache_root/$k/build-seconds"
    log "cluster binaries ready in $((SECONDS - t0)) s"
  fi
  flock -u 8
  echo "$bin"
}
# --- end build

# --- start -------------------------------------------------------------------------------

# Processes started from the run dir (daemons, shims, containers' parents; matched on "$run/",
# so a sibling dir such as /tmp/k8s-chain-cluster-suite.* is never taken for ours), not this shell or
# the grep that looked (a pid that is gone once the grep is done was the grep).
our_pids() {
  local pid
  for pid in $(grep -lsF "$run/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [ "$pid" != $$ ] && [ "$pid" != "$BASHPID" ] && [ -e "/proc/$pid" ] && echo "$pid"
  done
  return 0
}

# The cgroups the kubelet makes for pods (cgroupfs driver, cgroup root "/": a kubepods tree in
# every hierarchy); containers live below them. Only these are ours: other cgroups that appear
# meanwhile (this machine's own process manager makes some) are left alone.
pod_cgroups() {
  find /sys/fs/cgroup -mindepth 2 -type d \( -name kubepods -o -path '*/kubepods/*' \) 2>/dev/null
  return 0
}

pidof_name() { [ -f "$run/pids/$1" ] && cat "$run/pids/$1" || true; }

daemon() { # <name> <command...>: start in its own session, log to logs/<name>.log
  local name=$1; shift
  setsid "$@" >"$run/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$run/pids/$name"
}

wait_for() { # <what> <seconds> <command...>
  local what=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$what not ready after ${secs}s (logs in $run/logs)"
}

cert() { # <name> <subject> [<san>]: a key and a certificate signed by the cluster CA
  local name=$1 subj=$2 san=${3:-}
  openssl ecparam -name prime256v1 -genkey -noout -out "$run/pki/$name.key" 2>/dev/null
  openssl req -new -key "$run/pki/$name.key" -subj "$subj" -out "$run/pki/$name.csr" 2>/dev/null
  local ext="$run/pki/$name.ext"
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi; } > "$ext"
  openssl x509 -req -in "$run/pki/$name.csr" -CA "$run/pki/ca.crt" -CAkey "$run/pki/ca.key" \
    -CAcreateserial -days 2 -sha256 -extfile "$ext" -out "$run/pki/$name.crt" 2>/dev/null
}

kubeconfig() { # <name>: a kubeconfig using pki/<name>.{crt,key}
  cat > "$run/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: k8s-chain
  cluster: {certificate-authority: $run/pki/ca.crt, server: "https://127.0.0.1:6443"}
users:
- name: $1
  user: {client-certificate: $run/pki/$1.crt, client-key: $run/pki/$1.key}
contexts:
- name: k8s-chain
  context: {cluster: k8s-chain, user: $1}
current-context: k8s-chain
EOF
}

snapshot_machine() {
  mkdir -p "$run/saved"
  for s in "${sysctls[@]}"; do
    v=$(sysctl -n "$s" 2>/dev/null) && printf '%s=%s\n' "$s" "$v"
  done > "$run/saved/sysctls"
  for t in iptables ip6tables; do
    for m in nft legacy; do
      command -v "$t-$m-save" >/dev/null && "$t-$m-save" > "$run/saved/$t-$m" 2>/dev/null || true
    done
  done
  command -v nft >/dev/null && nft list tables > "$run/saved/nft-tables" 2>/dev/null || true
  pod_cgroups | sort > "$run/saved/cgroups"
  ls /var/run/netns 2>/dev/null | sort > "$run/saved/netns" || true
  [ -d /var/log/containers ] && echo yes > "$run/saved/var-log-containers" || echo no > "$run/saved/var-log-containers"
  ip route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1); exit}' > "$run/saved/uplink"
}

do_start() {
  [ "$(id -u)" = 0 ] || die "needs root: it runs a kubelet, containerd and kube-proxy"
  if [ -d "$run/pids" ]; then
    log "a cluster dir exists at $run: stopping it first"
    do_stop || true
  fi
  local bin
  bin="$(do_build)"
  local missing=()
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v nft >/dev/null || missing+=(nftables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing from Debian: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  local real=${K8S_CHAIN_CLUSTER_REAL_NODE:-1} kwok_nodes=${K8S_CHAIN_CLUSTER_KWOK_NODES:-2}
  rm -rf "$run"; mkdir -p "$run"/{pids,logs,pki,etcd}
  echo "$bin" > "$run/bin"
  snapshot_machine
  # From here on, whatever fails or interrupts start undoes what it did.
  trap 'rc=$?; trap - EXIT INT TERM; log "start failed or interrupted: stopping"; do_stop || true; exit $rc' EXIT
  trap 'exit 130' INT; trap 'exit 143' TERM
  local t_start=$SECONDS

  # Certificates (ECDSA P-256: quick to make): one CA for everything; client certs name each component's identity.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$run/pki/ca.key" -out "$run/pki/ca.crt" \
    -days 2 -subj "/CN=k8s-chain-ca" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:10.96.0.1,IP:$node_ip,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$cluster_domain,DNS:localhost"
  cert admin "/O=system:masters/CN=k8s-chain-admin"
  cert apiserver-kubelet-client "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  cert kubelet "/O=system:nodes/CN=system:node:$node_name"
  cert kubelet-serving "/CN=$node_name" "IP:$node_ip,DNS:$node_name"
  cert coredns "/CN=k8s-chain:coredns"
  cert kwok "/O=system:masters/CN=k8s-chain-kwok"
  openssl ecparam -name prime256v1 -genkey -noout -out "$run/pki/sa.key" 2>/dev/null
  openssl ec -in "$run/pki/sa.key" -pubout -out "$run/pki/sa.pub" 2>/dev/null
  for n in admin controller-manager scheduler kube-proxy kubelet coredns kwok; do kubeconfig "$n"; done
  log "certificates made"

  daemon etcd "$bin/etcd" --name k8s-chain --data-dir "$run/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster k8s-chain=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --quota-backend-bytes 2147483648
  wait_for etcd 30 curl -fsS http://127.0.0.1:2381/health

  daemon kube-apiserver "$bin/kube-apiserver" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port 6443 --etcd-servers http://127.0.0.1:2379 \
    --client-ca-file "$run/pki/ca.crt" --tls-cert-file "$run/pki/apiserver.crt" --tls-private-key-file "$run/pki/apiserver.key" \
    --service-account-key-file "$run/pki/sa.pub" --service-account-signing-key-file "$run/pki/sa.key" \
    --service-account-issuer "https://kubernetes.default.svc.$cluster_domain" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-cluster-ip-range "$service_cidr" --service-node-port-range 30000-32767 \
    --kubelet-client-certificate "$run/pki/apiserver-kubelet-client.crt" --kubelet-client-key "$run/pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP --profiling=false
  wait_for kube-apiserver 60 curl -fsS --cacert "$run/pki/ca.crt" --cert "$run/pki/admin.crt" --key "$run/pki/admin.key" https://127.0.0.1:6443/readyz
  log "API server ready"
  local kc="$bin/kubectl --kubeconfig $run/admin.kubeconfig"

  daemon kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$run/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$run/controller-manager.kubeconfig" --authorization-kubeconfig "$run/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$run/pki/sa.key" --root-ca-file "$run/pki/ca.crt" \
    --cluster-signing-cert-file "$run/pki/ca.crt" --cluster-signing-key-file "$run/pki/ca.key" \
    --service-cluster-ip-range "$service_cidr" --cluster-cidr "$cluster_cidr" --profiling=false
  daemon kube-scheduler "$bin/kube-scheduler" --kubeconfig "$run/scheduler.kubeconfig" \
    --authentication-kubeconfig "$run/scheduler.kubeconfig" --authorization-kubeconfig "$run/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false

  # CoreDNS reads Services, EndpointSlices, Namespaces (and Pods for `pods insecure`).
  $kc apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "k8s-chain:coredns"}
rules:
- apiGroups: [""]
  resources: [services, endpoints, namespaces, pods]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "k8s-chain:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "k8s-chain:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "k8s-chain:coredns"}]
EOF

  if [ "$real" = 1 ]; then start_node "$bin"; fi

  if [ "$kwok_nodes" -gt 0 ]; then
    daemon kwok "$bin/kwok" --kubeconfig "$run/kwok.kubeconfig" --manage-all-nodes=false \
      --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
      --manage-nodes-with-label-selector "" --node-lease-duration-seconds 40 \
      --cidr 10.250.0.0/16 --node-ip 10.250.0.1 \
      $(for f in "$bin"/kwok-stages/*.yaml; do printf -- '-c %s ' "$f"; done)
    for ((i = 0; i < kwok_nodes; i++)); do
      $kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
spec:
  taints: $([ "${K8S_CHAIN_CLUSTER_KWOK_TAINT:-1}" = 1 ] && echo '[{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}]' || echo '[]')
status:
  allocatable: {cpu: "32", memory: 256Gi, ephemeral-storage: 100Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, ephemeral-storage: 100Gi, pods: "110"}
EOF
    done
    wait_for "kwok nodes" 60 bash -c "$kc get nodes -l type=kwok -o jsonpath='{.items[*].status.conditions[?(@.type==\"Ready\")].status}' | grep -qv False"
  fi
  wait_for "service account default" 60 $kc get serviceaccount default -n default
  trap - EXIT INT TERM
  echo "$((SECONDS - t_start))" > "$run/start-seconds"
  log "cluster up in $((SECONDS - t_start)) s, $(do_mem) MiB resident: $($kc get nodes --no-headers | awk '{print $1"="$2}' | tr '\n' ' ')"
}

start_node() {
  local bin=$1 reg=${K8S_CHAIN_CLUSTER_REGISTRY:-}
  local kc="$bin/kubectl --kubeconfig $run/admin.kubeconfig"
  mkdir -p "$run"/{containerd/root,containerd/state,containerd/certs.d/_default,cni/net.d,kubelet,pod-logs,coredns}

  # The node's address: a bridge holding a /32 (this VM cannot make dummy links); the
  # Service range routed to it so the host reaches ClusterIPs too.
  ip link add "$node_bridge" type bridge
  ip addr add "$node_ip/32" dev "$node_bridge"
  ip link set "$node_bridge" up
  ip route add "$service_cidr" dev "$node_bridge" src "$node_ip"
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  # Pod traffic never leaves the machine: drop anything from the pod range out of the uplink.
  local up; up=$(cat "$run/saved/uplink")
  [ -n "$up" ] && iptables -I FORWARD -s "$cluster_cidr" -o "$up" -j DROP

  # Every registry resolves to the local one, or fails closed on a loopback port nobody
  # serves: no image pull ever looks up a name outside this machine.
  local mirror=${reg:-127.0.0.1:9}
  echo "$mirror" > "$run/registry"
  cat > "$run/containerd/certs.d/_default/hosts.toml" <<EOF
server = "http://$mirror"
[host."http://$mirror"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
  cat > "$run/cni/net.d/10-k8s-chain.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "k8s-chain", "plugins": [
  {"type": "bridge", "bridge": "$cni_bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$run/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  cat > "$run/containerd/config.toml" <<EOF
version = 3
root = "$run/containerd/root"
state = "$run/containerd/state"
[grpc]
  address = "$run/containerd/containerd.sock"
[ttrpc]
  address = "$run/containerd/containerd.sock.ttrpc"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "k8s-chain.local/pause:1"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$run/containerd/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$run/cni/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      SystemdCgroup = false
      BinaryName = "$(command -v runc)"
[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
EOF
  PATH="$bin:$PATH" daemon containerd "$bin/containerd" --config "$run/containerd/config.toml"
  local ctr="$bin/ctr --address $run/containerd/containerd.sock -n k8s.io"
  wait_for containerd 30 $ctr version
  # The sandbox image: a static program that waits for a signal, made here (no registry).
  python3 "$here/scripts/cluster-oci.py" "$bin/pause" /pause k8s-chain.local/pause:1 "$run/pause.tar"
  $ctr images import --no-unpack=false "$run/pause.tar" >/dev/null
  log "containerd ready, sandbox image imported"

  cat > "$run/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $run/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $run/pki/kubelet-serving.crt
tlsPrivateKeyFile: $run/pki/kubelet-serving.key
clusterDomain: $cluster_domain
clusterDNS: [$node_ip]
resolvConf: ""
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
containerRuntimeEndpoint: unix://$run/containerd/containerd.sock
podCIDR: $pod_cidr
podLogsDir: $run/pod-logs
volumePluginDir: $run/kubelet-plugins
serializeImagePulls: false
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  daemon kubelet "$bin/kubelet" --config "$run/kubelet.yaml" --kubeconfig "$run/kubelet.kubeconfig" \
    --root-dir "$run/kubelet" --cert-dir "$run/kubelet/pki" --hostname-override "$node_name" --node-ip "$node_ip"

  cat > "$run/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $run/kube-proxy.kubeconfig}
hostnameOverride: $node_name
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $cluster_cidr
mode: iptables
nodePortAddresses: ["127.0.0.1/32"]
iptables: {localhostNodePorts: true, syncPeriod: 30s, minSyncPeriod: 0s}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  daemon kube-proxy "$bin/kube-proxy" --config "$run/kube-proxy.yaml"

  cat > "$run/coredns/Corefile" <<EOF
.:53 {
    bind $node_ip
    errors
    kubernetes $cluster_domain in-addr.arpa ip6.arpa {
        kubeconfig $run/coredns.kubeconfig k8s-chain
        pods insecure
        ttl 5
    }
}
EOF
  daemon coredns "$bin/coredns" -conf "$run/coredns/Corefile"

  wait_for "node $node_name Ready" 60 bash -c "$kc get node $node_name -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  log "node $node_name Ready"
}

# --- stop --------------------------------------------------------------------------------


stop_all() { # seconds, pids...: TERM them all at once, wait up to that long, then KILL the rest
  local secs=$1 i pid alive; shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null
  for ((i = 0; i < secs * 10; i++)); do
    alive=
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && return 0
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null
  return 0
}

do_stop() {
  [ -d "$run" ] || { log "nothing to stop ($run does not exist)"; return 0; }
  set +e
  local n pid m
  stop_all 5 $(for n in kwok kube-proxy coredns kubelet kube-scheduler kube-controller-manager; do pidof_name "$n"; done)
  log "stop: node and controllers stopped"
  # Pods: kill every process in a cgroup that did not exist at start (the kubepods tree).
  if [ -f "$run/saved/cgroups" ]; then
    local new; new=$(pod_cgroups | sort | comm -13 "$run/saved/cgroups" -)
    for m in $new; do cat "$m/cgroup.procs" 2>/dev/null; done | sort -u | xargs -r kill -KILL 2>/dev/null
  fi
  # Shims and anything else started from the run dir.
  stop_all 3 $(our_pids | grep -vxF -e "$(pidof_name containerd)" -e "$(pidof_name kube-apiserver)" -e "$(pidof_name etcd)")
  stop_all 10 $(for n in containerd kube-apiserver etcd; do pidof_name "$n"; done)
  for pid in $(our_pids); do kill -KILL "$pid" 2>/dev/null; done
  log "stop: containers, containerd, API server and etcd stopped"
  # Mounts below the run dir (container rootfs, volumes, netns), deepest first.
  for m in $(awk -v w="$run/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null
  done
  # Pod network namespaces made since start.
  if [ -f "$run/saved/netns" ]; then
    for n in $(ls /var/run/netns 2>/dev/null | sort | comm -13 "$run/saved/netns" -); do
      umount -l "/var/run/netns/$n" 2>/dev/null; rm -f "/var/run/netns/$n"
    done
  fi
  # Links: the pods' veths on our bridge, then the bridges (their routes go with them).
  for n in $(ip -o link show master "$cni_bridge" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$n" 2>/dev/null
  done
  for n in "$cni_bridge" "$node_bridge"; do ip link del "$n" 2>/dev/null; done
  # Cgroups made since start, deepest first.
  if [ -f "$run/saved/cgroups" ]; then
    pod_cgroups | sort | comm -13 "$run/saved/cgroups" - | sort -r | xargs -r rmdir 2>/dev/null
  fi
  # Firewall: restore each table as it was; flush and drop tables that did not exist.
  local t b f
  for t in iptables ip6tables; do
    for b in nft legacy; do
      f="$run/saved/$t-$b"
      command -v "$t-$b-save" >/dev/null && [ -f "$f" ] || continue
      for tbl in $("$t-$b-save" 2>/dev/null | sed -n 's/^\*//p'); do
        if grep -qx "\*$tbl" "$f"; then
          awk -v t="*$tbl" '$0 == t {p = 1} p {print} p && $0 == "COMMIT" {exit}' "$f" | "$t-$b-restore" 2>/dev/null
        else
          "$t-$b" -t "$tbl" -F 2>/dev/null; "$t-$b" -t "$tbl" -X 2>/dev/null
        fi
      done
    done
  done
  if [ -f "$run/saved/nft-tables" ] && command -v nft >/dev/null; then
    nft list tables 2>/dev/null | sort | comm -13 <(sort "$run/saved/nft-tables") - | while read -r _ fam name; do
      nft delete table "$fam" "$name" 2>/dev/null
    done
  fi
  [ -f "$run/saved/sysctls" ] && while IFS= read -r kv; do sysctl -qw "$kv" 2>/dev/null; done < "$run/saved/sysctls"
  # The kubelet links container logs into /var/log/containers.
  if [ -d /var/log/containers ]; then
    find /var/log/containers -maxdepth 1 -type l -lname "$run/*" -delete 2>/dev/null
    [ "$(cat "$run/saved/var-log-containers" 2>/dev/null)" = no ] && rmdir /var/log/containers 2>/dev/null
  fi
  local left; left=$(leftovers)
  if [ "${K8S_CHAIN_CLUSTER_KEEP:-}" = 1 ]; then log "kept $run (logs)"; else rm -rf "$run"; fi
  set -e
  if [ -n "$left" ]; then log "stop left this behind:"; echo "$left" >&2; return 1; fi
  log "stopped; nothing left behind"
}

# What of ours is still on the machine (empty when stop did its job).
leftovers() {
  our_pids | sed 's/^/process /'
  awk -v w="$run/" 'index($2, w) == 1 { print "mount " $2 }' /proc/self/mounts
  for n in "$cni_bridge" "$node_bridge"; do ip link show "$n" >/dev/null 2>&1 && echo "link $n"; done
  if [ -f "$run/saved/cgroups" ]; then
    pod_cgroups | sort | comm -13 "$run/saved/cgroups" - | sed 's/^/cgroup /'
  fi
  if [ -f "$run/saved/iptables-nft" ]; then
    diff <(grep -v '^#' "$run/saved/iptables-nft" | sed 's/\[[0-9:]*\]$//') \
         <(iptables-nft-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9:]*\]$//') | grep '^[<>]' | sed 's/^/iptables /'
  fi
  if [ -f "$run/saved/sysctls" ]; then
    while IFS= read -r kv; do
      [ "$(sysctl -n "${kv%%=*}" 2>/dev/null)" = "${kv#*=}" ] || echo "sysctl ${kv%%=*} is $(sysctl -n "${kv%%=*}"), was ${kv#*=}"
    done < "$run/saved/sysctls"
  fi
}

# Resident memory of the cluster's own processes (control plane, node daemons, kwok, shims;
# not the pods' processes), in MiB.
do_mem() {
  local kb=0 pid r
  for pid in $(our_pids); do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && kb=$((kb + ${r:-0}))
  done
  echo "$((kb / 1024))"
}

do_env() {
  [ -f "$run/admin.kubeconfig" ] || die "no cluster at $run (scripts/cluster.sh start)"
  echo "KUBECONFIG=$run/admin.kubeconfig"
  echo "K8S_CHAIN_CLUSTER_BIN=$(cat "$run/bin")"
  echo "K8S_CHAIN_CLUSTER_NODE_IP=$node_ip"
  echo "K8S_CHAIN_CLUSTER_REAL_NODE=$([ -f "$run/pids/kubelet" ] && echo 1 || echo 0)"
  [ -f "$run/registry" ] && echo "K8S_CHAIN_CLUSTER_REGISTRY=$(cat "$run/registry")"
  return 0
}

case "${1:-}" in
  build) do_build ;;
  start) do_start ;;
  stop) do_stop ;;
  env) do_env ;;
  mem) do_mem ;;
  key) key ;;
  info)
    k="$(key)"
    echo "key:        $k"
    echo "bin:        $cache_root/$k/bin"
    [ -f "$cache_root/$k/build-seconds" ] && echo "build time: $(cat "$cache_root/$k/build-seconds") s"
    for d in "$cache_root/go/mod" "$cache_root/go/build" "$cache_root/$k/bin"; do [ -d "$d" ] && du -sh "$d"; done
    ;;
  *) echo "usage: $0 build|start|stop|env|mem|info" >&2; exit 2 ;;
esac
