// Entry point of the service-a image: `node service-a/dist/server.js`. Everything else is in @k8s-chain/shared.
import { runService } from "@k8s-chain/shared";

runService("service-a");
