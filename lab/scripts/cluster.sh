#!/usr/bin/env bash
# A real Kubernetes cluster on this machine, on 127.0.0.1, for `npm run test:cluster`.
#
#   lab/scripts/cluster.sh build   build the binaries if not cached (Go modules in lab/tools/cluster/*)
#   lab/scripts/cluster.sh start   build, then start: etcd, kube-apiserver, kube-controller-manager,
#                              kube-scheduler, CoreDNS (a host process), two real nodes (each:
#                              containerd + runc + CNI bridge, kubelet, kube-proxy, and
#                              kube-network-policies enforcing NetworkPolicies) and kwok nodes
#   lab/scripts/cluster.sh kill-node <i>     lose real node <i> >= 1 abruptly: its link goes down, and
#                              its kubelet, runtime, proxy, enforcer, shims and containers get SIGKILL
#   lab/scripts/cluster.sh restart-node <i>  bring it back: link up, its daemons started again
#   lab/scripts/cluster.sh restart-apiserver  kill the API server (SIGKILL) and start it again
#   lab/scripts/cluster.sh env     print KUBECONFIG=... and the other facts a client needs
#   lab/scripts/cluster.sh stop    stop everything and undo every change to the machine
#   lab/scripts/cluster.sh mem     resident memory of the cluster's processes (MiB)
#   lab/scripts/cluster.sh info    versions key, cache paths and sizes, recorded build time
#
# Environment:
#   K8S_CHAIN_CLUSTER_CACHE     cache root (default ~/.cache/k8s-chain/cluster)
#   K8S_CHAIN_CLUSTER_DIR       run dir: certs, configs, data, logs (default /tmp/k8s-chain-cluster)
#   K8S_CHAIN_CLUSTER_REAL_NODE 1 (default): start the real nodes; 0: kwok nodes only
#   K8S_CHAIN_CLUSTER_REAL_NODES number of real nodes (default 2): node 0 in the machine's network
#                              namespace, each other one in a network namespace of its own
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
# pods, the other nodes' network namespaces (kc-node<i>) and veths (kc-n<i>), the "outside"
# namespace (kc-outside) and its veth (kc-out), routes to the
# Service range and to the other nodes' pod ranges, iptables and nftables rules (snapshotted at
# start, restored at stop), the sysctls the kubelet, kube-proxy and the bridge need (saved and
# restored), cgroups made for pods (the kubepods trees, and the other nodes' roots
# k8s-chain-node<i>), mounts under the run dir and pod netns mounts, /var/log/containers links
# to our pods, the containerd shims' sockets in /run/containerd/s.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="$here/lab/tools/cluster"
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
# A node whose kubelet stops renewing its lease is marked NotReady, and its pods taken out of
# their Services' endpoints, after this many seconds (the controller manager's
# --node-monitor-grace-period; the kubelet renews its lease every quarter of it). Kubernetes'
# default is 50 s; the suite's node-loss scenario measures what this bounds.
node_grace=16
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
  ( cat "$tools"/*/go.mod "$tools"/*/go.sum "$tools"/pause/*.go "$tools"/netpol/*.patch 2>/dev/null || true; go version; echo "$k8s_version"
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
    # The NetworkPolicy enforcer, from its module source with our patch (see the patch's
    # header): this kernel has no nftables "queue" expression, and the nodes run it as a host
    # process with a kubeconfig.
    local np_src="$bin/.tmp/netpol-src"
    (cd "$tools/netpol" && go mod download sigs.k8s.io/kube-network-policies)
    cp -r "$(cd "$tools/netpol" && go list -m -f '{{.Dir}}' sigs.k8s.io/kube-network-policies)" "$np_src"
    chmod -R u+w "$np_src"
    (cd "$np_src" && patch -p1 -s < "$tools/netpol/kube-network-policies.patch")
    go_build "$np_src" "$bin/.tmp" "" ./cmd
    mv "$bin/.tmp/cmd" "$bin/.tmp/kube-network-policies"; rm -rf "$np_src"
    log "built kube-network-policies ($((SECONDS - t0)) s)"
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

kubeconfig() { # <name> [<file name> <API server host:port>]: a kubeconfig using pki/<name>.{crt,key}
  cat > "$run/${2:-$1}.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: k8s-chain
  cluster: {certificate-authority: $run/pki/ca.crt, server: "https://${3:-127.0.0.1:6443}"}
users:
- name: $1
  user: {client-certificate: $run/pki/$1.crt, client-key: $run/pki/$1.key}
contexts:
- name: k8s-chain
  context: {cluster: k8s-chain, user: $1}
current-context: k8s-chain
EOF
}

# user_role <user> <rule>...: a ClusterRole named after a client-certificate user, with these
# rules (YAML list items), bound to that user; each document ends with `---`.
user_role() {
  local user=$1; shift
  printf 'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: "%s"}\nrules:\n' "$user"
  printf '%s\n' "$@"
  printf -- '---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: "%s"}\n' "$user"
  printf 'roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "%s"}\n' "$user"
  printf 'subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "%s"}]\n---\n' "$user"
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
  # containerd's shims put their sockets in /run/containerd/s whatever its state dir (a shim
  # killed with SIGKILL, as kill-node does, leaves its socket there).
  if [ -d /run/containerd ]; then find /run/containerd | sort > "$run/saved/run-containerd"; fi
  if [ -e /run/nri ]; then touch "$run/saved/run-nri"; fi
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
  command -v socat >/dev/null || missing+=(socat)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing from Debian: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  local kwok_nodes=${K8S_CHAIN_CLUSTER_KWOK_NODES:-2}
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
  local nodes i gws=""; nodes=$(real_nodes)
  for ((i = 1; i < nodes; i++)); do gws="$gws,IP:$(node_gw_of "$i")"; done
  cert apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:10.96.0.1,IP:$node_ip$gws,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$cluster_domain,DNS:localhost"
  cert admin "/O=system:masters/CN=k8s-chain-admin"
  cert apiserver-kubelet-client "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  cert netpol "/CN=k8s-chain:kube-network-policies"
  cert coredns "/CN=k8s-chain:coredns"
  cert kwok "/O=system:masters/CN=k8s-chain-kwok"
  openssl ecparam -name prime256v1 -genkey -noout -out "$run/pki/sa.key" 2>/dev/null
  openssl ec -in "$run/pki/sa.key" -pubout -out "$run/pki/sa.pub" 2>/dev/null
  for n in admin controller-manager scheduler coredns kwok; do kubeconfig "$n"; done
  local name
  for ((i = 0; i < nodes; i++)); do
    name=$(node_name_of "$i")
    cert "kubelet-$i" "/O=system:nodes/CN=system:node:$name"
    cert "kubelet-serving-$i" "/CN=$name" "IP:$(node_ip_of "$i"),DNS:$name"
    kubeconfig "kubelet-$i" "kubelet-$i" "$(node_api_of "$i")"
    kubeconfig kube-proxy "kube-proxy-$i" "$(node_api_of "$i")"
    kubeconfig netpol "netpol-$i" "$(node_api_of "$i")"
  done
  log "certificates made"

  daemon etcd "$bin/etcd" --name k8s-chain --data-dir "$run/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster k8s-chain=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --quota-backend-bytes 2147483648
  wait_for etcd 30 curl -fsS http://127.0.0.1:2381/health

  start_apiserver "$bin"
  log "API server ready"
  local kc="$bin/kubectl --kubeconfig $run/admin.kubeconfig"

  daemon kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$run/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$run/controller-manager.kubeconfig" --authorization-kubeconfig "$run/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$run/pki/sa.key" --root-ca-file "$run/pki/ca.crt" \
    --cluster-signing-cert-file "$run/pki/ca.crt" --cluster-signing-key-file "$run/pki/ca.key" \
    --service-cluster-ip-range "$service_cidr" --cluster-cidr "$cluster_cidr" --profiling=false \
    --node-monitor-grace-period "${node_grace}s"
  daemon kube-scheduler "$bin/kube-scheduler" --kubeconfig "$run/scheduler.kubeconfig" \
    --authentication-kubeconfig "$run/scheduler.kubeconfig" --authorization-kubeconfig "$run/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false

  # CoreDNS reads Services, EndpointSlices, Namespaces (and Pods for `pods insecure`); the
  # enforcer reads Pods, Namespaces and NetworkPolicies.
  {
    user_role k8s-chain:coredns \
      '- {apiGroups: [""], resources: [services, endpoints, namespaces, pods], verbs: [list, watch]}' \
      '- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}'
    user_role k8s-chain:kube-network-policies \
      '- {apiGroups: [""], resources: [pods, namespaces], verbs: [list, watch]}' \
      '- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [list, watch]}'
    # The API server's client identity towards the kubelets (exec, logs, port-forward).
    cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "k8s-chain:apiserver-kubelet-client"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kubelet-api-admin"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}]
EOF
  } | $kc apply -f - >/dev/null

  if [ "$nodes" -gt 0 ]; then
    start_coredns "$bin"
    start_outside
    for ((i = 0; i < nodes; i++)); do start_node "$bin" "$i"; done
  fi

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

start_apiserver() { # <bin dir>: start the API server and wait until it is ready
  local bin=$1
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
}

# Node <i>: its name, address, pod range, run dir and network namespace. Node 0 runs in the
# machine's own network namespace (as the one real node always did: NodePorts answer on
# 127.0.0.1 there); node 1 and up each run in a network namespace of their own, joined to the
# machine by a veth pair (host side 10.200.<i>.1, node side 10.200.<i>.11), with a route for
# each node's pod range, so pods on different nodes talk through real routing.
node_name_of() { if [ "$1" = 0 ]; then echo "$node_name"; else echo "$node_name-$1"; fi; }
node_ip_of() { if [ "$1" = 0 ]; then echo "$node_ip"; else echo "10.200.$1.11"; fi; }
node_gw_of() { echo "10.200.$1.1"; }
node_dir_of() { if [ "$1" = 0 ]; then echo "$run"; else echo "$run/node$1"; fi; }
node_netns_of() { echo "kc-node$1"; }
node_veth_of() { echo "kc-n$1"; }
node_cgroup_of() { echo "k8s-chain-node$1"; }
# How a node reaches the API server: node 0 on loopback; the others through a forwarder on
# the host side of their veth (the API server listens on 127.0.0.1 only).
node_api_of() { if [ "$1" = 0 ]; then echo "127.0.0.1:6443"; else echo "$(node_gw_of "$1"):6443"; fi; }
real_nodes() { if [ "${K8S_CHAIN_CLUSTER_REAL_NODE:-1}" = 1 ]; then echo "${K8S_CHAIN_CLUSTER_REAL_NODES:-2}"; else echo 0; fi; }
# node_prefix <i>: the command prefix that runs a program in the node's network namespace
# (only that: files, mounts and cgroups are the machine's, so the node's processes are found
# and stopped like node 0's); nothing for node 0.
node_prefix() { [ "$1" = 0 ] || echo "nsenter --net=/var/run/netns/$(node_netns_of "$1")"; }

# The network of node <i> >= 1: namespace, veth, addresses, routes, forwarders, cgroup root.
node_network() {
  local i=$1 reg=$2 ns veth ip gw d
  ns=$(node_netns_of "$i"); veth=$(node_veth_of "$i"); ip=$(node_ip_of "$i"); gw=$(node_gw_of "$i")
  ip netns add "$ns"
  ip link add "$veth" type veth peer name "$veth-in"
  ip link set "$veth-in" netns "$ns"
  ip addr add "$gw/24" dev "$veth"
  ip link set "$veth" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$veth-in" name eth0
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$gw"
  ip route add "10.244.$i.0/24" via "$ip" dev "$veth"
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$ns" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  daemon "forward-api-$i" socat "TCP-LISTEN:6443,bind=$gw,reuseaddr,fork" TCP:127.0.0.1:6443
  [ -z "$reg" ] || daemon "forward-registry-$i" socat "TCP-LISTEN:${reg##*:},bind=$gw,reuseaddr,fork" "TCP:$reg"
  # Its pods' cgroups under a root of their own: two kubelets must not share /kubepods.
  for d in /sys/fs/cgroup/*/; do [ -L "${d%/}" ] || mkdir -p "$d$(node_cgroup_of "$i")"; done
}

start_node() { # <bin dir> <i>
  local bin=$1 i=$2 reg=${K8S_CHAIN_CLUSTER_REGISTRY:-}
  local kc="$bin/kubectl --kubeconfig $run/admin.kubeconfig"
  local name ip nd cidr mirror
  name=$(node_name_of "$i"); ip=$(node_ip_of "$i"); nd=$(node_dir_of "$i"); cidr="10.244.$i.0/24"
  mkdir -p "$nd"/{containerd/root,containerd/state,containerd/certs.d/_default,cni/net.d,kubelet,pod-logs}

  if [ "$i" = 0 ]; then
    # The node's address: a bridge holding a /32 (this VM cannot make dummy links); the
    # Service range routed to it so the host reaches ClusterIPs too.
    ip link add "$node_bridge" type bridge
    ip addr add "$node_ip/32" dev "$node_bridge"
    ip link set "$node_bridge" up
    ip route add "$service_cidr" dev "$node_bridge" src "$node_ip"
    sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
    # The cluster's traffic never leaves the machine: nothing from the pod range, and nothing
    # to the cluster's own ranges (pods, Services, nodes, the outside address), goes out of the
    # uplink, even when a route is missing (a lost node's pods: without these rules the
    # machine's default route would take their packets off it).
    local up r; up=$(cat "$run/saved/uplink")
    if [ -n "$up" ]; then
      iptables -I FORWARD -s "$cluster_cidr" -o "$up" -j DROP
      for r in "$cluster_cidr" "$service_cidr" 10.200.0.0/16 10.201.0.0/24; do
        iptables -I FORWARD -d "$r" -o "$up" -j DROP
        iptables -I OUTPUT -d "$r" -o "$up" -j DROP
      done
    fi
    # Every registry resolves to the local one, or fails closed on a loopback port nobody
    # serves: no image pull ever looks up a name outside this machine.
    mirror=${reg:-127.0.0.1:9}
    echo "$mirror" > "$run/registry"
  else
    node_network "$i" "$reg"
    if [ -n "$reg" ]; then mirror="$(node_gw_of "$i"):${reg##*:}"; else mirror=127.0.0.1:9; fi
  fi

  cat > "$nd/containerd/certs.d/_default/hosts.toml" <<EOF
server = "http://$mirror"
[host."http://$mirror"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
  cat > "$nd/cni/net.d/10-k8s-chain.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "k8s-chain", "plugins": [
  {"type": "bridge", "bridge": "kc-cni$i", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$nd/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  cat > "$nd/containerd/config.toml" <<EOF
version = 3
root = "$nd/containerd/root"
state = "$nd/containerd/state"
[grpc]
  address = "$nd/containerd/containerd.sock"
[ttrpc]
  address = "$nd/containerd/containerd.sock.ttrpc"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "k8s-chain.local/pause:1"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$nd/containerd/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$nd/cni/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      SystemdCgroup = false
      BinaryName = "$(command -v runc)"
      Root = "$nd/runc"
[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
# NRI on a socket of this node's own (the default, /var/run/nri/nri.sock, would be one file for
# every node's runtime): its NetworkPolicy enforcer learns new pods' addresses from it.
[plugins.'io.containerd.nri.v1.nri']
  disable = false
  socket_path = "$nd/containerd/nri.sock"
EOF

  cat > "$nd/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $run/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $run/pki/kubelet-serving-$i.crt
tlsPrivateKeyFile: $run/pki/kubelet-serving-$i.key
clusterDomain: $cluster_domain
clusterDNS: [$node_ip]
resolvConf: ""
cgroupDriver: cgroupfs
cgroupRoot: /$([ "$i" = 0 ] || node_cgroup_of "$i")
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
containerRuntimeEndpoint: unix://$nd/containerd/containerd.sock
podCIDR: $cidr
podLogsDir: $nd/pod-logs
volumePluginDir: $nd/kubelet-plugins
serializeImagePulls: false
nodeStatusUpdateFrequency: 4s
nodeLeaseDurationSeconds: $node_grace
syncFrequency: 10s
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF

  # NodePorts on 127.0.0.1 for node 0 (the machine's loopback); on its own address for the others.
  local ports="[\"127.0.0.1/32\"]" localhost=true
  [ "$i" = 0 ] || { ports="[\"$ip/32\"]"; localhost=false; }
  cat > "$nd/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $run/kube-proxy-$i.kubeconfig}
hostnameOverride: $name
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $cluster_cidr
mode: iptables
nodePortAddresses: $ports
iptables: {localhostNodePorts: $localhost, syncPeriod: 30s, minSyncPeriod: 0s}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  node_daemons "$bin" "$i"
  wait_for "node $name Ready" 60 bash -c "$kc get node $name -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  log "node $name Ready"
}

# node_daemons <bin dir> <i>: the node's processes (start, and the restart after `kill-node`).
node_daemons() {
  local bin=$1 i=$2 name nd ip
  name=$(node_name_of "$i"); nd=$(node_dir_of "$i"); ip=$(node_ip_of "$i")
  PATH="$bin:$PATH" daemon "containerd-$i" $(node_prefix "$i") "$bin/containerd" --config "$nd/containerd/config.toml"
  local ctr="$bin/ctr --address $nd/containerd/containerd.sock -n k8s.io"
  wait_for "containerd of $name" 30 $ctr version
  # The sandbox image: a static program that waits for a signal, made here (no registry).
  [ -f "$run/pause.tar" ] || python3 "$here/lab/scripts/cluster-oci.py" "$bin/pause" /pause k8s-chain.local/pause:1 "$run/pause.tar"
  $ctr images import --no-unpack=false "$run/pause.tar" >/dev/null
  log "containerd of $name ready, sandbox image imported"
  daemon "kubelet-$i" $(node_prefix "$i") "$bin/kubelet" --config "$nd/kubelet.yaml" --kubeconfig "$run/kubelet-$i.kubeconfig" \
    --root-dir "$nd/kubelet" --cert-dir "$nd/kubelet/pki" --hostname-override "$name" --node-ip "$ip"
  daemon "kube-proxy-$i" $(node_prefix "$i") "$bin/kube-proxy" --config "$nd/kube-proxy.yaml"
  # NetworkPolicies are enforced on each node by kube-network-policies: the first packet of
  # each connection to or from a pod a policy selects goes to it over NFQUEUE for a verdict.
  daemon "netpol-$i" $(node_prefix "$i") "$bin/kube-network-policies" --kubeconfig "$run/netpol-$i.kubeconfig" \
    --hostname-override "$name" --metrics-bind-address 127.0.0.1:0 --nri-socket "$nd/containerd/nri.sock"
}

# Names of the node's processes in pids/ (the order they are stopped in).
node_daemon_names() { local i=$1; echo "netpol-$i kube-proxy-$i kubelet-$i"; }

# An address outside the cluster that pods could reach if nothing refused them: a web server in
# a network namespace of its own (kc-outside, 10.201.0.2:8080, behind a veth from the machine),
# so that every pod's packets to it are forwarded, as to any address off the node, and the
# NetworkPolicy enforcers see them.
outside_ip=10.201.0.2
outside_port=8080
start_outside() {
  ip netns add kc-outside
  ip link add kc-out type veth peer name kc-out-in
  ip link set kc-out-in netns kc-outside
  ip addr add 10.201.0.1/24 dev kc-out
  ip link set kc-out up
  ip -n kc-outside link set lo up
  ip -n kc-outside link set kc-out-in name eth0
  ip -n kc-outside addr add "$outside_ip/24" dev eth0
  ip -n kc-outside link set eth0 up
  ip -n kc-outside route add default via 10.201.0.1
  mkdir -p "$run/outside"; echo outside > "$run/outside/index.html"
  daemon outside nsenter --net=/var/run/netns/kc-outside python3 -m http.server --bind "$outside_ip" \
    --directory "$run/outside" "$outside_port"
}

start_coredns() { # <bin dir>: cluster DNS as a host process on node 0's address
  mkdir -p "$run/coredns"
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
  daemon coredns "$1/coredns" -conf "$run/coredns/Corefile"
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
  stop_all 5 $(for n in kwok coredns outside kube-scheduler kube-controller-manager; do pidof_name "$n"; done) \
    $(cd "$run/pids" 2>/dev/null && for n in netpol-* kube-proxy-* kubelet-* forward-*; do pidof_name "$n"; done)
  log "stop: node and controllers stopped"
  # Pods: kill every process in a cgroup that did not exist at start (the kubepods tree).
  if [ -f "$run/saved/cgroups" ]; then
    local new; new=$(pod_cgroups | sort | comm -13 "$run/saved/cgroups" -)
    for m in $new; do cat "$m/cgroup.procs" 2>/dev/null; done | sort -u | xargs -r kill -KILL 2>/dev/null
  fi
  # Shims and anything else started from the run dir.
  local keep; keep=$(for n in kube-apiserver etcd $(cd "$run/pids" 2>/dev/null && echo containerd-*); do pidof_name "$n"; done)
  stop_all 3 $(our_pids | grep -vxF -f <(printf '%s\n' $keep))
  # The API server would wait for its open watches (about 30 s) after a TERM; nothing of it
  # needs saving, so it is killed.
  kill -KILL "$(pidof_name kube-apiserver)" 2>/dev/null
  stop_all 10 $keep
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
  for n in "$cni_bridge" "$node_bridge" kc-out $(node_links); do ip link del "$n" 2>/dev/null; done
  # Cgroups made since start, deepest first, then the other nodes' cgroup roots.
  if [ -f "$run/saved/cgroups" ]; then
    pod_cgroups | sort | comm -13 "$run/saved/cgroups" - | sort -r | xargs -r rmdir 2>/dev/null
  fi
  node_cgroup_roots | xargs -r rmdir 2>/dev/null
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
  # The shims' sockets (and /run/containerd itself if it was not there before).
  if [ -f "$run/saved/run-containerd" ]; then
    find /run/containerd -mindepth 1 2>/dev/null | sort | comm -13 "$run/saved/run-containerd" - | sort -r | while read -r f; do
      if [ -d "$f" ]; then rmdir "$f" 2>/dev/null; else rm -f "$f"; fi
    done
  else
    rm -rf /run/containerd
  fi
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

# The host side of the other nodes' veths, and their cgroup roots, that exist now.
node_links() { ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^kc-n[0-9]+$'; return 0; }
node_cgroup_roots() { find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name 'k8s-chain-node[0-9]*' 2>/dev/null; return 0; }

# What of ours is still on the machine (empty when stop did its job).
leftovers() {
  our_pids | sed 's/^/process /'
  awk -v w="$run/" 'index($2, w) == 1 { print "mount " $2 }' /proc/self/mounts
  for n in "$cni_bridge" "$node_bridge" kc-out $(node_links); do ip link show "$n" >/dev/null 2>&1 && echo "link $n"; done
  node_cgroup_roots | sed 's/^/cgroup /'
  ls /var/run/netns 2>/dev/null | grep -E '^kc-(node|outside)' | sed 's/^/netns /'
  if [ -f "$run/saved/run-containerd" ]; then
    find /run/containerd 2>/dev/null | sort | comm -13 "$run/saved/run-containerd" - | sed 's/^/file /'
  else
    [ -e /run/containerd ] && echo "file /run/containerd"
  fi
  [ -e /run/nri ] && [ ! -f "$run/saved/run-nri" ] && echo "file /run/nri"
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
  [ -f "$run/admin.kubeconfig" ] || die "no cluster at $run (lab/scripts/cluster.sh start)"
  echo "KUBECONFIG=$run/admin.kubeconfig"
  echo "K8S_CHAIN_CLUSTER_BIN=$(cat "$run/bin")"
  echo "K8S_CHAIN_CLUSTER_NODE_IP=$node_ip"
  [ -f "$run/pids/outside" ] && echo "K8S_CHAIN_CLUSTER_OUTSIDE=$outside_ip:$outside_port"
  local i names=""
  local n; n=$(ls "$run/pids" | grep -c '^kubelet-' || true)
  for ((i = 0; i < n; i++)); do names="$names $(node_name_of "$i")"; done
  echo "K8S_CHAIN_CLUSTER_NODES=\"${names# }\""
  echo "K8S_CHAIN_CLUSTER_REAL_NODE=$([ -f "$run/pids/kubelet-0" ] && echo 1 || echo 0)"
  [ -f "$run/registry" ] && echo "K8S_CHAIN_CLUSTER_REGISTRY=$(cat "$run/registry")"
  return 0
}

# Lose node <i> as a machine is lost: its network first (its end of the veth goes down, as a
# dead machine's NIC: nothing it sends or is sent arrives, and its address stops answering ARP),
# then every process of it at once, with SIGKILL (no graceful shutdown, no status update).
do_kill_node() {
  local i=${1:?node index} n
  [ "$i" -ge 1 ] || die "kill-node: only a node in its own namespace (1 and up) can be lost"
  ip -n "$(node_netns_of "$i")" link set eth0 down
  local pids; pids=$(for n in $(node_daemon_names "$i") "containerd-$i"; do pidof_name "$n"; done)
  # Its containers (every process below its cgroup root) and its shims (started from its dir).
  pids="$pids $(find /sys/fs/cgroup/*/"$(node_cgroup_of "$i")" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
  pids="$pids $(grep -lsF "$(node_dir_of "$i")/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3)"
  kill -KILL $pids 2>/dev/null
  log "node $(node_name_of "$i") lost: link down, $(echo $pids | wc -w) processes killed"
}

# The API server killed (SIGKILL, as a crash or an OOM kill) and started again, as a
# supervisor would; prints how long it did not answer. (A SIGTERM here takes about 30 s to end
# it: after it stops listening it waits for the open watches, up to its request timeout.)
do_restart_apiserver() {
  local t0; t0=$(date +%s%N)
  local pid; pid=$(pidof_name kube-apiserver)
  kill -KILL "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  start_apiserver "$(cat "$run/bin")"
  log "API server restarted: $(( ($(date +%s%N) - t0) / 1000000 )) ms without it"
}

do_restart_node() {
  local i=${1:?node index}
  ip -n "$(node_netns_of "$i")" link set eth0 up
  ip -n "$(node_netns_of "$i")" route replace default via "$(node_gw_of "$i")"
  node_daemons "$(cat "$run/bin")" "$i"
  log "node $(node_name_of "$i") restarted"
}

case "${1:-}" in
  build) do_build ;;
  kill-node) do_kill_node "${2:-}" ;;
  restart-node) do_restart_node "${2:-}" ;;
  restart-apiserver) do_restart_apiserver ;;
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
  *) echo "usage: $0 build|start|stop|env|mem|info|kill-node <i>|restart-node <i>|restart-apiserver" >&2; exit 2 ;;
esac
