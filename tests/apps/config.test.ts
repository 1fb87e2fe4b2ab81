// The env contract as a pure function (apps/shared/src/config.ts), without a process.
import assert from "node:assert/strict";
import { loadConfig } from "../../apps/shared/src/config";

describe("apps: env contract (loadConfig)", function () {
  it("defaults: PORT 8080, the folder name, no downstreams, 2000 ms, 256 calls, 0 / 10000 ms, info", function () {
    assert.deepEqual(loadConfig({}, "service-a"), {
      port: 8080,
      serviceName: "service-a",
      downstreamUrls: [],
      downstreamTimeoutMs: 2000,
      downstreamConcurrency: 256,
      shutdownDelayMs: 0,
      shutdownTimeoutMs: 10000,
      logLevel: "info",
    });
  });

  it("reads every variable; empty ones take the default; DOWNSTREAM_URLS is split, trimmed, in order", function () {
    const env = {
      PORT: "9090",
      SERVICE_NAME: "web",
      DOWNSTREAM_URLS: " http://service-b.default.svc.cluster.local:80 ,,https://c:8443/x ",
      DOWNSTREAM_TIMEOUT_MS: "1500",
      DOWNSTREAM_CONCURRENCY: "8",
      SHUTDOWN_DELAY_MS: "5000",
      SHUTDOWN_TIMEOUT_MS: "",
      LOG_LEVEL: "debug",
    };
    assert.deepEqual(loadConfig(env, "sample-app"), {
      port: 9090,
      serviceName: "web",
      downstreamUrls: ["http://service-b.default.svc.cluster.local:80", "https://c:8443/x"],
      downstreamTimeoutMs: 1500,
      downstreamConcurrency: 8,
      shutdownDelayMs: 5000,
      shutdownTimeoutMs: 10000,
      logLevel: "debug",
    });
  });

  it("lists every bad value in one error", function () {
    assert.throws(
      () =>
        loadConfig(
          {
            PORT: "65536",
            DOWNSTREAM_TIMEOUT_MS: "0",
            DOWNSTREAM_CONCURRENCY: "0",
            SHUTDOWN_TIMEOUT_MS: "1.5",
            DOWNSTREAM_URLS: "service-b",
            LOG_LEVEL: "loud",
          },
          "service-a",
        ),
      {
        message: [
          "invalid environment for service-a:",
          '  - `PORT` must be an integer from 0 to 65535 (got "65536")',
          '  - `DOWNSTREAM_TIMEOUT_MS` must be an integer from 1 to 3600000 (got "0")',
          '  - `DOWNSTREAM_CONCURRENCY` must be an integer from 1 to 100000 (got "0")',
          '  - `SHUTDOWN_TIMEOUT_MS` must be an integer from 1 to 3600000 (got "1.5")',
          '  - `DOWNSTREAM_URLS` entries must be http:// or https:// URLs (got "service-b")',
          '  - `LOG_LEVEL` must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
        ].join("\n"),
      },
    );
  });
});
