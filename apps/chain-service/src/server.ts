// Entry point of the chain-service image: `node chain-service/dist/server.js`. Every dev-stack
// service (sample-app, service-a, service-b, service-c) runs this one program; they differ only by
// SERVICE_NAME and env. Everything else is in @k8s-chain/shared.
import { runService } from "@k8s-chain/shared";

runService("chain-service");
