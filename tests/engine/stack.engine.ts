// The real engine on the real program (index.ts): preview, render, replace, refuse.
// Run with `npm run test:engine` (builds or reuses the engine, see lab/scripts/engine.sh).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import {
  devServices,
  EngineStack,
  engineBin,
  pinned,
  PreviewJson,
  PreviewStep,
  REPO,
  RenderedObject,
  urnName,
  urnType,
} from "./harness";
import type { RawServices } from "../support/catalogs";
import { containerOf, isKind, KubeObject, ObjectsByKind } from "../support/objects";

const NAMESPACE = "chain-engine";
const NEW_NAMESPACE = "chain-engine-moved";

/** The rendered objects of `kind` that `pred` accepts, as that kind's type. */
function of<K extends keyof ObjectsByKind>(
  objs: RenderedObject[],
  kind: K,
  pred: (o: ObjectsByKind[K]) => boolean = () => true,
): ObjectsByKind[K][] {
  return objs
    .map((r): KubeObject => r.obj)
    .filter((o): o is KubeObject & ObjectsByKind[K] => isKind(o, kind) && pred(o));
}

function deploymentOf(objs: RenderedObject[], svc: string): ObjectsByKind["Deployment"] {
  const ds = of(objs, "Deployment", (d) => d.metadata?.labels?.app === svc);
  assert.strictEqual(ds.length, 1, `one Deployment for ${svc}, got ${ds.length}: ${ds.map((d) => d.metadata?.name)}`);
  return ds[0];
}

function serviceOf(objs: RenderedObject[], svc: string): ObjectsByKind["Service"] {
  const ss = of(objs, "Service", (s) => s.metadata?.name === svc);
  assert.strictEqual(ss.length, 1, `one Service ${svc}, got ${ss.length}`);
  return ss[0];
}

/** The pinned node ports of a catalog: port -> the service that pins it. */
function pinnedPorts(catalog: RawServices): Map<number, string> {
  return new Map(
    Object.entries(catalog)
      .filter(([, s]) => s.nodePort !== undefined)
      .map(([n, s]) => [s.nodePort as number, n]),
  );
}

/** The steps of one resource, in the order the engine lists them. */
function stepsFor(json: PreviewJson, type: string, name: string): PreviewStep[] {
  return (json.steps ?? []).filter((s) => urnType(s.urn) === type && urnName(s.urn) === name);
}

function ops(steps: PreviewStep[]): string[] {
  return steps.map((s) => s.op);
}

/** The steps that change something, as `op type name`, sorted. */
/**
 * A resource name with a service policy's digest (see networkPolicySpec) written as
 * `<digest>`: the tests name what changes, the digests are the unit tests' business.
 */
function undigested(name: string): string {
  return name.replace(/-network-policy-[0-9a-f]{8}$/, "-network-policy-<digest>");
}

function changes(json: PreviewJson): string[] {
  return (json.steps ?? [])
    .filter((s) => s.op !== "same")
    .map((s) => `${s.op} ${urnType(s.urn)} ${undigested(urnName(s.urn))}`)
    .sort();
}

function summary(json: PreviewJson): string {
  return (json.steps ?? []).map((s) => `${s.op} ${urnType(s.urn)} ${urnName(s.urn)}`).join("\n");
}

describe("the real Pulumi engine (render mode)", function () {
  this.timeout(0);
  let stack: EngineStack;
  let services: RawServices;
  const config = (over: Record<string, unknown> = {}) => ({
    namespace: NAMESPACE,
    renderDir: stack.renderDir,
    services,
    ...over,
  });

  before(function () {
    const engine = engineBin();
    // K8S_CHAIN_ENGINE_PROGRAM: run another checkout of the project (default: this repo).
    stack = new EngineStack(engine, process.env.K8S_CHAIN_ENGINE_PROGRAM || REPO);
    services = devServices(pinned, process.env.K8S_CHAIN_ENGINE_PROGRAM || REPO);
    stack.init(config());
    const v = stack.ok(["version"]).stdout.trim();
    console.log(`      engine: pulumi ${v} (${engine.cli}), provider from ${engine.bin}; temp ${stack.root}`);
  });

  after(function () {
    if (stack) {
      console.log("      timings:");
      for (const t of stack.timings) {
        console.log(`        ${t.what.padEnd(44)} ${t.seconds.toFixed(1).padStart(6)} s  exit ${t.code}`);
      }
      fs.writeFileSync(
        path.join(stack.root, "..", "k8s-chain-engine-timings.json"),
        JSON.stringify(stack.timings, null, 2),
      );
      stack.dispose();
    }
  });

  it("previews the dev catalog: every expected resource, to be created", function () {
    const { result, json } = stack.previewJson("preview (first)");
    assert.strictEqual(result.code, 0, result.stderr + result.stdout);
    const creates = (json.steps ?? []).filter((s) => s.op === "create");
    const got = creates.map((s) => `${urnType(s.urn)} ${undigested(urnName(s.urn))}`).sort();
    const want = [
      "pulumi:pulumi:Stack k8s-chain-engine",
      "pulumi:providers:kubernetes render",
      "kubernetes:core/v1:Namespace namespace",
      "kubernetes:networking.k8s.io/v1:NetworkPolicy default-deny",
    ];
    for (const [name, svc] of Object.entries(services)) {
      want.push(`k8s-chain:components:MicroService ${name}`);
      want.push(`kubernetes:apps/v1:Deployment ${name}-deployment`);
      want.push(`kubernetes:core/v1:Service ${name}-service`);
      want.push(`kubernetes:networking.k8s.io/v1:NetworkPolicy ${name}-network-policy-<digest>`);
      if (Number(svc.replicas ?? 2) >= 2) {
        want.push(`kubernetes:policy/v1:PodDisruptionBudget ${name}-pdb`);
      }
    }
    // One Service per pinned node port, keyed by the port, under one NodePorts component.
    want.push("k8s-chain:components:NodePorts node-ports");
    for (const port of pinnedPorts(services).keys()) {
      want.push(`kubernetes:core/v1:Service node-port-${port}`);
    }
    assert.deepStrictEqual(got, want.sort());
    assert.ok(!(json.steps ?? []).some((s) => s.op !== "create"), summary(json));
  });

  it("up renders the manifests: NodePort 30080 on its own Service, 80 -> 8080, /health and /livez probes, pinned images, namespace", function () {
    stack.ok(["up", "--yes", "--skip-preview"], "up (create)");
    const objs = stack.rendered();
    assert.ok(objs.length > 0, "nothing rendered");

    const ns = of(objs, "Namespace");
    assert.deepStrictEqual(
      ns.map((n) => n.metadata?.name),
      [NAMESPACE],
    );
    assert.strictEqual(ns[0].metadata?.labels?.["pod-security.kubernetes.io/enforce"], "restricted");
    // The default deny plus one policy per service, named after it and what it allows.
    assert.deepStrictEqual(
      of(objs, "NetworkPolicy")
        .map((p) => p.metadata?.name?.replace(/-[0-9a-f]{8}$/, "-<digest>"))
        .sort(),
      ["k8s-chain-default-deny", ...Object.keys(services).map((n) => `${n}-<digest>`)].sort(),
    );
    for (const { obj, file } of objs) {
      if (obj.kind !== "Namespace") {
        assert.strictEqual(obj.metadata?.namespace, NAMESPACE, `${file} is in namespace ${obj.metadata?.namespace}`);
      }
    }

    // sample-app's own Service (its DNS name) is a ClusterIP; node-port-30080 holds its port.
    const seed = serviceOf(objs, "sample-app");
    assert.strictEqual(seed.spec?.type, "ClusterIP");
    assert.deepStrictEqual(
      seed.spec?.ports?.map((p) => [p.port, p.targetPort, p.nodePort]),
      [[80, "http", undefined]],
    );
    const held = serviceOf(objs, "node-port-30080");
    assert.strictEqual(held.spec?.type, "NodePort");
    assert.deepStrictEqual(
      held.spec?.ports?.map((p) => [p.port, p.targetPort, p.nodePort]),
      [[80, "http", 30080]],
    );
    const seedDeploy = deploymentOf(objs, "sample-app");
    const seedContainer = containerOf(seedDeploy);
    assert.deepStrictEqual(
      seedContainer.ports?.map((p) => [p.name, p.containerPort]),
      [["http", 8080]],
    );
    assert.strictEqual(seedDeploy.spec?.replicas, 2);
    assert.deepStrictEqual(seed.spec?.selector, seedDeploy.spec?.selector.matchLabels);
    assert.deepStrictEqual(held.spec?.selector, seedDeploy.spec?.selector.matchLabels);

    for (const name of Object.keys(services)) {
      const d = deploymentOf(objs, name);
      const c = containerOf(d);
      assert.strictEqual(c.image, pinned(name), `${name} runs ${c.image}`);
      assert.match(c.image, /@sha256:[0-9a-f]{64}$/);
      // Startup and readiness on the health path; liveness on the apps' /livez.
      for (const [probe, route] of [
        [c.startupProbe, "/health"],
        [c.readinessProbe, "/health"],
        [c.livenessProbe, "/livez"],
      ] as const) {
        assert.strictEqual(probe?.httpGet?.path, route, `${name} probe ${JSON.stringify(probe)}`);
        assert.strictEqual(probe?.httpGet?.port, "http");
      }
      assert.strictEqual(
        d.spec?.progressDeadlineSeconds,
        120,
        `${name}: rolloutTimeoutSeconds' default from Pulumi.yaml`,
      );
      const svc = serviceOf(objs, name);
      const pinsPort = services[name].nodePort !== undefined;
      assert.strictEqual(svc.spec?.type, pinsPort ? "ClusterIP" : (services[name].expose ?? "ClusterIP"));
    }
    const outputs = JSON.parse(stack.ok(["stack", "output", "--json"]).stdout);
    assert.strictEqual(outputs.nodePorts["sample-app"], 30080);
    assert.strictEqual(outputs.nodePorts["service-a"], 30081);
    assert.strictEqual(outputs.images["service-c"], pinned("service-c"));
    assert.strictEqual(outputs.urls["service-b"], `http://service-b.${NAMESPACE}.svc.cluster.local:80`);
  });

  it("a second preview finds nothing to change", function () {
    const { result, json } = stack.previewJson("preview (no change)");
    assert.strictEqual(result.code, 0, result.stderr);
    const changed = (json.steps ?? []).filter((s) => s.op !== "same");
    assert.deepStrictEqual(
      changed.map((s) => `${s.op} ${s.urn}`),
      [],
    );
  });

  it("two services swap their pinned node ports: two in-place selector updates, nothing replaced, and back", function () {
    const swap = () => {
      const [a, b] = [services["sample-app"].nodePort, services["service-a"].nodePort];
      services["sample-app"].nodePort = b;
      services["service-a"].nodePort = a;
      stack.setConfig(config());
    };
    for (const round of ["swap", "swap back"]) {
      swap();
      const { result, json } = stack.previewJson(`preview (${round} node ports)`);
      assert.strictEqual(result.code, 0, result.stderr);
      assert.deepStrictEqual(
        changes(json),
        ["update kubernetes:core/v1:Service node-port-30080", "update kubernetes:core/v1:Service node-port-30081"],
        summary(json),
      );
      stack.ok(["up", "--yes", "--skip-preview"], `up (${round} node ports)`);
      const objs = stack.rendered();
      for (const [port, owner] of pinnedPorts(services)) {
        const held = serviceOf(objs, `node-port-${port}`);
        assert.deepStrictEqual(
          held.spec?.selector,
          deploymentOf(objs, owner).spec?.selector.matchLabels,
          `${round}: ${port} -> ${owner}`,
        );
        assert.strictEqual(held.spec?.ports?.[0].nodePort, port);
      }
      const outputs = JSON.parse(stack.ok(["stack", "output", "--json"]).stdout);
      assert.deepStrictEqual(
        [outputs.nodePorts["sample-app"], outputs.nodePorts["service-a"]],
        [services["sample-app"].nodePort, services["service-a"].nodePort],
      );
    }
  });

  it("a pinned node port moves to another service: one in-place selector update, and back", function () {
    const moveTo = (owner: string, from: string) => {
      services[owner] = { ...services[owner], expose: "NodePort", nodePort: services[from].nodePort };
      services[from] = { ...services[from] };
      delete services[from].nodePort;
      stack.setConfig(config());
    };
    // 30080 goes from sample-app (which stays a NodePort service: the cluster picks it a port) to service-c.
    const sampleExpose = services["sample-app"].expose;
    moveTo("service-c", "sample-app");
    const { result, json } = stack.previewJson("preview (move node port)");
    assert.strictEqual(result.code, 0, result.stderr);
    assert.deepStrictEqual(
      changes(json),
      [
        // service-c is exposed now: its policy accepts traffic from anywhere (a new policy;
        // the old one is deleted when the `up` ends).
        "create kubernetes:networking.k8s.io/v1:NetworkPolicy service-c-network-policy-<digest>",
        "delete kubernetes:networking.k8s.io/v1:NetworkPolicy service-c-network-policy-<digest>",
        "update kubernetes:core/v1:Service node-port-30080",
        "update kubernetes:core/v1:Service sample-app-service",
      ],
      summary(json),
    );
    stack.ok(["up", "--yes", "--skip-preview"], "up (move node port)");
    let objs = stack.rendered();
    assert.deepStrictEqual(
      serviceOf(objs, "node-port-30080").spec?.selector,
      deploymentOf(objs, "service-c").spec?.selector.matchLabels,
    );
    assert.strictEqual(serviceOf(objs, "sample-app").spec?.type, "NodePort");
    assert.strictEqual(serviceOf(objs, "service-c").spec?.type, "ClusterIP");

    moveTo("sample-app", "service-c");
    services["sample-app"].expose = sampleExpose;
    delete services["service-c"].expose;
    stack.setConfig(config());
    stack.ok(["up", "--yes", "--skip-preview"], "up (move node port back)");
    objs = stack.rendered();
    assert.deepStrictEqual(
      serviceOf(objs, "node-port-30080").spec?.selector,
      deploymentOf(objs, "sample-app").spec?.selector.matchLabels,
    );
    const again = stack.previewJson("preview (after moving back)");
    assert.deepStrictEqual(
      (again.json.steps ?? []).filter((s) => s.op !== "same").map((s) => s.urn),
      [],
    );
  });

  it("a label edit updates the Deployment in place: selectors hold only the stack's identity label, so nothing is replaced", function () {
    const before = deploymentOf(stack.rendered(), "service-c");
    services["service-c"].labels = { tier: "backend" };
    stack.setConfig(config());

    const { result, json } = stack.previewJson("preview (label edit)");
    assert.strictEqual(result.code, 0, result.stderr);
    assert.deepStrictEqual(
      ops(stepsFor(json, "kubernetes:apps/v1:Deployment", "service-c-deployment")),
      ["update"],
      summary(json),
    );
    assert.deepStrictEqual(ops(stepsFor(json, "kubernetes:core/v1:Service", "service-c-service")), ["update"]);
    assert.ok(!(json.steps ?? []).some((s) => s.op === "replace" || s.op === "create-replacement"), summary(json));

    stack.ok(["up", "--yes", "--skip-preview"], "up (label edit)");
    const objs = stack.rendered();
    const after = deploymentOf(objs, "service-c");
    assert.strictEqual(after.metadata?.name, before.metadata?.name, "the same Deployment");
    assert.deepStrictEqual(after.spec?.selector.matchLabels, { "app.kubernetes.io/name": "service-c" });
    assert.strictEqual(after.spec?.template.metadata?.labels?.tier, "backend");
    assert.deepStrictEqual(serviceOf(objs, "service-c").spec?.selector, { "app.kubernetes.io/name": "service-c" });
    const again = stack.previewJson("preview (after label edit)");
    assert.deepStrictEqual(
      (again.json.steps ?? []).filter((s) => s.op !== "same").map((s) => s.urn),
      [],
    );
  });

  it("a new namespace replaces the node ports' Services delete-before-replace, everything else create-before-delete, and up applies it", function () {
    stack.setConfig(config({ namespace: NEW_NAMESPACE }));
    const { result, json } = stack.previewJson("preview (namespace change)");
    assert.strictEqual(result.code, 0, result.stderr);
    for (const name of Object.keys(services)) {
      // A service's own Service holds no pinned port: its copy in the new namespace is
      // created first, so callers in the old namespace keep their DNS name meanwhile.
      const svc = stepsFor(json, "kubernetes:core/v1:Service", `${name}-service`);
      assert.deepStrictEqual(
        ops(svc),
        ["create-replacement", "replace", "delete-replaced"],
        `${name}-service:\n${summary(json)}`,
      );
      const replace = svc.find((s) => s.op === "replace")!;
      assert.ok(
        (replace.replaceReasons ?? []).some((r) => r.startsWith("metadata")),
        `replaceReasons ${JSON.stringify(replace.replaceReasons)}`,
      );
      // The auto-named Deployment moves create-before-delete.
      assert.deepStrictEqual(
        ops(stepsFor(json, "kubernetes:apps/v1:Deployment", `${name}-deployment`)),
        ["create-replacement", "replace", "delete-replaced"],
        `${name}-deployment:\n${summary(json)}`,
      );
    }
    // Each pinned node port is freed before it is claimed again in the new namespace.
    const all = json.steps ?? [];
    for (const port of pinnedPorts(services).keys()) {
      const held = stepsFor(json, "kubernetes:core/v1:Service", `node-port-${port}`);
      assert.deepStrictEqual(
        ops(held),
        ["delete-replaced", "replace", "create-replacement"],
        `node-port-${port}:\n${summary(json)}`,
      );
      const del = all.findIndex((s) => s.op === "delete-replaced" && urnName(s.urn) === `node-port-${port}`);
      const cre = all.findIndex((s) => s.op === "create-replacement" && urnName(s.urn) === `node-port-${port}`);
      assert.ok(del >= 0 && cre > del, `node-port-${port}: delete at ${del}, create at ${cre}`);
    }

    stack.ok(["up", "--yes", "--skip-preview"], "up (namespace change)");
    const objs = stack.rendered();
    assert.deepStrictEqual(
      of(objs, "Namespace").map((n) => n.metadata?.name),
      [NEW_NAMESPACE],
    );
    for (const { obj, file } of objs) {
      if (obj.kind !== "Namespace") {
        assert.strictEqual(obj.metadata?.namespace, NEW_NAMESPACE, file);
      }
    }
    assert.strictEqual(serviceOf(objs, "node-port-30080").spec?.ports?.[0].nodePort, 30080);
  });

  it("a bad config fails the preview with the program's error and changes nothing", function () {
    const state = JSON.stringify(stack.exportState().deployment.resources);
    const files = stack
      .rendered()
      .map((r) => r.file)
      .sort();
    const bad = structuredClone(services);
    bad["service-a"].calls = ["service-x"];
    bad["sample-app"].nodePort = 20000;
    stack.setConfig(config({ namespace: NEW_NAMESPACE, services: bad }));

    const pre = stack.pulumi(["preview"], "preview (bad config)");
    assert.notStrictEqual(pre.code, 0, "preview should fail");
    const out = pre.stdout + pre.stderr;
    assert.match(out, /services\.service-a\.calls: unknown service "service-x"/);
    assert.match(out, /services\.sample-app\.nodePort/);

    const up = stack.pulumi(["up", "--yes", "--skip-preview"], "up (bad config)");
    assert.notStrictEqual(up.code, 0, "up should fail");
    assert.match(up.stdout + up.stderr, /unknown service "service-x"/);

    assert.strictEqual(JSON.stringify(stack.exportState().deployment.resources), state, "state changed");
    assert.deepStrictEqual(
      stack
        .rendered()
        .map((r) => r.file)
        .sort(),
      files,
      "rendered files changed",
    );
  });
});
