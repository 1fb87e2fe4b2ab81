import type { AddressInfo } from "node:net";
import { createApp } from "./app";

import { loadConfig, redactUrl, type Config } from "./config";
import { createLogger } from "./logger";
import { createShutdown } from "./shutdown";

/**
 * What every `server.ts` runs: read the env, listen on 0.0.0.0:PORT, log
 * `{"msg":"listening","port":<bound port>}`, and shut down gracefully on SIGTERM or SIGINT.
 */
export function runService(defaultServiceName: string): void {
  let config: Config;
  try {
    config = loadConfig(process.env, defaultServiceName);
  } catch (err) {
    createLogger(process.env.SERVICE_NAME?.trim() || defaultServiceName, "info").fatal((err as Error).message);
    process.exit(1);
  }
  const log = createLogger(config.serviceName, config.logLevel);
  const app = createApp(config, log);
  const shutdown = createShutdown(app, {
    delayMs: config.shutdownDelayMs,
    timeoutMs: config.shutdownTimeoutMs,
    log,
    exit: (code) => process.exit(code),
  });
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("uncaughtException", (err) => {
    log.fatal({ err }, "uncaught exception");
    process.exit(1);
  });
  process.on("unhandledRejection", (err) => {
    log.fatal({ err }, "unhandled rejection");
    process.exit(1);
  });

  app.server.on("error", (err) => {
    log.fatal({ err, port: config.port }, "server error");
    process.exit(1);
  });
  app.server.listen(config.port, "0.0.0.0", () => {
    const { port } = app.server.address() as AddressInfo;
    const { downstreamUrls, downstreamTimeoutMs, shutdownDelayMs, shutdownTimeoutMs } = config;
    log.info(
      {
        address: "0.0.0.0",
        port,
        downstreamUrls: downstreamUrls.map(redactUrl),
        downstreamTimeoutMs,
        shutdownDelayMs,
        shutdownTimeoutMs,
      },
      "listening",
    );
  });
}
