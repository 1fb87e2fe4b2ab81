// The NetworkPolicy enforcer of the suite's nodes: kube-network-policies (SIG Network), built
// from its module source with kube-network-policies.patch applied (see scripts/cluster.sh).
module k8s-chain.local/tools/netpol

go 1.23.0

require sigs.k8s.io/kube-network-policies v0.8.0
