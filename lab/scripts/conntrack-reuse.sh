#!/bin/bash
# The node port's late failures, reproduced without a cluster (docs/testing.md): in a network
# namespace of its own, a DNAT like kube-proxy's sends 127.0.0.1:30999 to a pod that is gone,
# 20 connections from fixed source ports fail; the rule is then pointed at a live server. The
# same 20 source ports still fail (their SYN_SENT conntrack entries keep the old NAT), 20 fresh
# ones succeed, and the old ones succeed once those entries are deleted. Then the refusal: 20
# more ports fail to the gone pod, its address comes back with nothing listening (a pod starting,
# or one whose app has closed its port), the rule again points at the live server, and those 20
# ports are refused (ECONNREFUSED) while fresh ones succeed. Exits 1 if the kernel behaves
# otherwise. Root; needs iptables, conntrack, python3 and node. Everything it makes is inside its
# two namespaces, which are deleted on every exit.
set -u
ns=k8s-chain-ctreuse
podns=k8s-chain-ctreuse-pod
cleanup() {
  ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns del $ns 2>/dev/null
  ip netns del $podns 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
X="ip netns exec $ns"
P="ip netns exec $podns"
ip netns add $ns
ip netns add $podns
$X ip link set lo up
$X sysctl -qw net.ipv4.conf.all.route_localnet=1
# The gone pod: an address behind a link whose other end is down (no ARP answer: EHOSTUNREACH).
# That end lives in a namespace of its own, as a pod's does: the address coming back there later
# changes nothing on ct-a (the MASQUERADE rule flushes its entries when ct-a's own address or
# link goes down, which would hide what this shows).
$X ip link add ct-a type veth peer name ct-b netns $podns
$X ip addr add 10.99.0.1/24 dev ct-a
$X ip link set ct-a up
$X python3 -m http.server --bind 127.0.0.1 8081 >/dev/null 2>&1 &
for _ in $(seq 50); do $X bash -c 'echo > /dev/tcp/127.0.0.1/8081' 2>/dev/null && break; sleep 0.1; done
$X iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 --dport 30999 -j DNAT --to-destination 10.99.0.2:8080
$X iptables -t nat -A POSTROUTING -s 127.0.0.0/8 -o ct-a -j MASQUERADE

# connect <first source port>: 20 connections at once; prints {"outcome":count}.
connect() {
  $X node -e '
    const net = require("net"); const from = Number(process.argv[1]);
    const one = (p) => new Promise((res) => {
      const s = net.connect({ host: "127.0.0.1", port: 30999, localAddress: "127.0.0.1", localPort: p });
      const t = setTimeout(() => { s.destroy(); res("timeout"); }, 6000);
      s.on("connect", () => { clearTimeout(t); s.destroy(); res("ok"); });
      s.on("error", (e) => { clearTimeout(t); res(e.code); });
    });
    Promise.all(Array.from({ length: 20 }, (_, i) => one(from + i))).then((out) => {
      const c = {}; for (const o of out) c[o] = (c[o] || 0) + 1; console.log(JSON.stringify(c));
    });' "$1"
}
expect() { # <what> <got> <want>
  echo "$1: $2"
  [ "$2" = "$3" ] || { echo "  expected $3" >&2; failed=1; }
}
failed=0
expect "ports 40000-40019 to the gone pod" "$(connect 40000)" '{"EHOSTUNREACH":20}'
$X iptables -t nat -R OUTPUT 1 -p tcp -d 127.0.0.1 --dport 30999 -j DNAT --to-destination 127.0.0.1:8081
expect "the rule now to a live server; ports 40000-40019 again" "$(connect 40000)" '{"EHOSTUNREACH":20}'
expect "fresh ports 41000-41019" "$(connect 41000)" '{"ok":20}'
$X conntrack -D -p tcp --orig-port-dst 30999 --state SYN_SENT 2>&1 >/dev/null | sed 's/^/conntrack: /'
expect "ports 40000-40019 once those entries are deleted" "$(connect 40000)" '{"ok":20}'

# The refusal: the same, but the pod's address answers again before the ports come back.
$X iptables -t nat -R OUTPUT 1 -p tcp -d 127.0.0.1 --dport 30999 -j DNAT --to-destination 10.99.0.2:8080
expect "ports 42000-42019 to the gone pod" "$(connect 42000)" '{"EHOSTUNREACH":20}'
$P ip link set lo up
$P ip addr add 10.99.0.2/24 dev ct-b
$P ip link set ct-b up
$X iptables -t nat -R OUTPUT 1 -p tcp -d 127.0.0.1 --dport 30999 -j DNAT --to-destination 127.0.0.1:8081
expect "its address answers again, nothing on 8080; ports 42000-42019 again" "$(connect 42000)" '{"ECONNREFUSED":20}'
expect "fresh ports 43000-43019" "$(connect 43000)" '{"ok":20}'
exit $failed
