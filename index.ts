// k8s-chain: reads the service catalog, builds the images and deploys the chain.
import { deployChain } from "./components/chain";
import { readStackConfig } from "./components/config";

const config = readStackConfig(__dirname);
// The SDK takes a stack trace for every resource and every output it creates (source positions,
// leak reports), and under ts-node each one is mapped through source maps: most of the time a
// large catalog takes to register. None is needed to register a validated catalog, so none is
// taken while it registers (K8S_CHAIN_STACK_TRACES=1 keeps them, to debug the stack itself).
const limit = Error.stackTraceLimit;
if (process.env.K8S_CHAIN_STACK_TRACES !== "1") {
    Error.stackTraceLimit = 0;
}
let chain: ReturnType<typeof deployChain>;
try {
    chain = deployChain(config, { projectRoot: __dirname });
} finally {
    Error.stackTraceLimit = limit;
}

export const urls = chain.urls;
export const nodePorts = chain.nodePorts;
export const images = chain.images;
