// Entry point of the service-b image: `node service-b/dist/server.js`. Everything else is in @k8s-chain/shared.
import { runService } from "@k8s-chain/shared";

runService("service-b");
