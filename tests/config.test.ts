import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
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
        "  - registy: unknown config key `k8s-chain:registy`; valid keys are namespace, registry, imageTag, buildArgs, buildNetwork, buildPlatform, clusterDomain, renderDir, rolloutTimeoutSeconds, networkPolicies, services, servicesFile",
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

describe("servicesFile: the catalog in a file of its own", () => {
  const DIGEST = "@sha256:" + "ab".repeat(32);
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-chain-config-"));
  });
  afterEach(() => {
    pulumi.runtime.setAllConfig({});
    fs.rmSync(root, { recursive: true, force: true });
  });
  const failsWith = (config: Record<string, string>, lines: string[]) => {
    pulumi.runtime.setAllConfig(config);
    assert.throws(
      () => readStackConfig(root),
      (e: Error) => pulumi.RunError.isInstance(e) && e.message === lines.join("\n"),
    );
  };

  it("reads a YAML catalog relative to the project root, as `services` would hold it", () => {
    fs.mkdirSync(path.join(root, "stacks"));
    fs.writeFileSync(
      path.join(root, "stacks", "prod.yaml"),
      `# many services\nfront:\n  image: registry.example/front${DIGEST}\n  calls: [back]\nback:\n  image: registry.example/back${DIGEST}\n`,
    );
    pulumi.runtime.setAllConfig({ "k8s-chain:servicesFile": "stacks/prod.yaml" });
    const cfg = readStackConfig(root);
    assert.deepStrictEqual(
      cfg.services.map((s) => [s.name, s.calls]),
      [
        ["front", ["back"]],
        ["back", []],
      ],
    );
  });

  it("reports a missing file with every other problem, and nothing about the catalog it could not read", () => {
    failsWith({ "k8s-chain:servicesFile": "stacks/nope.yaml", "k8s-chain:namespace": "Bad NS" }, [
      "k8s-chain config has 2 problems; nothing was created:",
      '  - namespace: "Bad NS" is not valid; use a DNS-1123 label such as "k8s-chain" (lower-case letters, digits and `-`, at most 63)',
      `  - servicesFile: "stacks/nope.yaml" is not a file (${path.join(root, "stacks", "nope.yaml")}); use a YAML or JSON file's path relative to the project root`,
    ]);
  });

  it("refuses both `services` and `servicesFile`", () => {
    fs.writeFileSync(path.join(root, "c.yaml"), `a:\n  image: r/a${DIGEST}\n`);
    failsWith(
      {
        "k8s-chain:servicesFile": "c.yaml",
        "k8s-chain:services": JSON.stringify({ b: { image: `r/b${DIGEST}` } }),
      },
      [
        "k8s-chain config has 1 problem; nothing was created:",
        '  - services and servicesFile are both set; keep one (servicesFile: "c.yaml")',
      ],
    );
  });

  it("names the file when it is not YAML, and the entry when an entry in it is wrong", () => {
    fs.writeFileSync(path.join(root, "broken.yaml"), "a: [unclosed\n");
    failsWith({ "k8s-chain:servicesFile": "broken.yaml" }, [
      "k8s-chain config has 1 problem; nothing was created:",
      '  - servicesFile: "broken.yaml" is not valid YAML or JSON: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1',
    ]);
    fs.writeFileSync(path.join(root, "c.yaml"), "a:\n  image: r/a\n");
    failsWith({ "k8s-chain:servicesFile": "c.yaml" }, [
      "k8s-chain config has 1 problem; nothing was created:",
      '  - services.a.image: "r/a" has no tag, so it means "latest" and is not pinned; add an explicit tag or an @sha256: digest',
    ]);
  });
});
