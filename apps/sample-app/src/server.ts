// Entry point of the sample-app image: `node sample-app/dist/server.js`. Everything else is in @k8s-chain/shared.
import { runService } from "@k8s-chain/shared";

runService("sample-app");
