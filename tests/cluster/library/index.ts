// A program that makes its own kubernetes provider (as one that creates its cluster with
// pulumi-eks or GKE does) and deploys the catalog in `k8s-chain:*` through the components. The
// kubeconfig is this program's own config, read as contents, never the ambient one.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import { deployChain } from "../../../components/chain";
import { readStackConfig } from "../../../components/config";

const own = new pulumi.Config("k8s-chain-library");
const kubeconfig = pulumi.secret(fs.readFileSync(own.require("kubeconfigFile"), "utf8"));
const provider = new k8s.Provider("own-cluster", { kubeconfig });
const chain = deployChain(readStackConfig(__dirname), { projectRoot: __dirname, cluster: { provider, kubeconfig } });

export const urls = chain.urls;
export const images = chain.images;
