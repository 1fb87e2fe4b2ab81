// Entry point of the service-c image: `node service-c/dist/server.js`. Everything else is in @k8s-chain/shared.
import { runService } from "@k8s-chain/shared";

runService("service-c");
