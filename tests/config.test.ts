import * as assert from "assert";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { readStackConfig } from "../components/config";

const ROOT = path.resolve(__dirname, "..");

/** Sets the config, then expects reading it to fail with a RunError of exactly these lines. */
function expectRunError(config: Record<string, string>, lines: string[]): void {
  pulumi.runtime.setAllConfig(config);
  assert.throws(
    () => readStackConfig(ROOT),
    (e: Error) => {
      assert.ok(pulumi.RunError.isInstance(e));
      assert.strictEqual(e.message, lines.join("\n"));
      return true;
    },
  );
}

describe("reading the stack config", () => {
  afterEach(() => pulumi.runtime.setAllConfig({}));

  it("fails with a RunError (printed without a stack trace) listing the problems", () => {
    expectRunError(
      {
        "k8s-chain:services": JSON.stringify({ "service-a": { app: "apps/chain-service", calls: ["service-x"] } }),
      },
      [
        "k8s-chain config has 1 problem; nothing was created:",
        '  - services.service-a.calls: unknown service "service-x" (known: none)',
      ],
    );
  });

  it("a `services` or `buildArgs` that is not JSON is listed with every other problem (Pulumi's getObject would throw alone)", () => {
    expectRunError(
      {
        "k8s-chain:namespace": "Bad NS",
        "k8s-chain:imageTag": "latest",
        "k8s-chain:buildArgs": "NODE_IMAGE=x",
        "k8s-chain:services": "service-a",
      },
      [
        "k8s-chain config has 4 problems; nothing was created:",
        '  - namespace: "Bad NS" is not valid; use a DNS-1123 label such as "k8s-chain" (lower-case letters, digits and `-`, at most 63)',
        '  - imageTag: "latest" is not valid; use a Docker tag other than "latest": up to 128 letters, digits, `_`, `.` or `-`',
        '  - buildArgs: "NODE_IMAGE=x" is not a map of build args; use {"KEY": "value"}',
        '  - services: "service-a" is not a map; use {"<name>": {"app": "apps/<name>"}}',
      ],
    );
  });

  it("reports a misspelt key of the namespace, and ignores other namespaces", () => {
    expectRunError(
      {
        "k8s-chain:registy": "localhost:5001",
        "kubernetes:context": "kind-kind",
        "k8s-chain:services": JSON.stringify({ "service-c": { app: "apps/chain-service" } }),
      },
      [
        "k8s-chain config has 1 problem; nothing was created:",
        "  - registy: unknown config key `k8s-chain:registy`; valid keys are namespace, registry, imageTag, buildArgs, buildNetwork, buildPlatform, clusterDomain, renderDir, rolloutTimeoutSeconds, networkPolicies, services",
      ],
    );
  });

  it("refuses a rollout timeout out of range, naming the key, the value and the range", () => {
    expectRunError(
      {
        "k8s-chain:rolloutTimeoutSeconds": "5",
        "k8s-chain:services": JSON.stringify({ "service-c": { app: "apps/chain-service" } }),
      },
      [
        "k8s-chain config has 1 problem; nothing was created:",
        "  - rolloutTimeoutSeconds: 5 is not a valid rollout timeout in seconds; use an integer from 10 to 3600",
      ],
    );
  });

  it("reads every key", () => {
    pulumi.runtime.setAllConfig({
      "k8s-chain:namespace": "chain",
      "k8s-chain:registry": "localhost:5001",
      "k8s-chain:imageTag": "v1",
      "k8s-chain:clusterDomain": "k8s.local",
      "k8s-chain:renderDir": "out",
      "k8s-chain:rolloutTimeoutSeconds": "300",
      "k8s-chain:services": JSON.stringify({ "service-c": { app: "apps/chain-service" } }),
    });
    const cfg = readStackConfig(ROOT);
    assert.deepStrictEqual(
      [cfg.namespace, cfg.registry, cfg.imageTag, cfg.clusterDomain, cfg.renderDir, cfg.rolloutTimeoutSeconds],
      ["chain", "localhost:5001", "v1", "k8s.local", "out", 300],
    );
    assert.deepStrictEqual(cfg.services[0].source, { kind: "app", app: "apps/chain-service" });
  });
});
