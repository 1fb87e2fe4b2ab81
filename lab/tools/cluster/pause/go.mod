module k8s-chain/tools/cluster/pause

go 1.26.0
