// k8s-chain: reads the service catalog, builds the images and deploys the chain.
import { deployChain } from "./components/chain";
import { readClusterConnection, readStackConfig } from "./components/config";
import { withPlainStackTraces } from "./components/stack-traces";

const config = readStackConfig(__dirname);
const chain = withPlainStackTraces(() =>
  deployChain(config, { projectRoot: __dirname, cluster: readClusterConnection() }),
);

export const urls = chain.urls;
export const nodePorts = chain.nodePorts;
export const images = chain.images;
