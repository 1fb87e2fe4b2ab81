import * as assert from "assert";
import * as path from "path";
import * as fs from "fs";
import * as os from "os";
import { execFileSync } from "child_process";
import * as YAML from "yaml";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { byType, childUrn, find, installMocks, Recorded, settle, valueOf } from "./support/mocks";
import { containerOf } from "./support/objects";
import { parse, PINNED, planOf, seedServices } from "./support/catalogs";
import { ChainOutputs, deployChain } from "../components/chain";
import { AppImage } from "../components/app-image";
import { MicroService } from "../components/micro-service";
import { NodePorts } from "../components/node-ports";
import { planChain } from "../components/plan";
import { hostPlatform } from "../components/catalog";
import { networkPolicySpec } from "../components/specs";

const DEP = "kubernetes:apps/v1:Deployment";
const SVC = "kubernetes:core/v1:Service";
const PDB = "kubernetes:policy/v1:PodDisruptionBudget";
const IMG = "docker:index/image:Image";
const NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy";
const ROLLOUT = "pulumi-nodejs:dynamic/k8s-chain:Rollout";
const KEEPER = "kubernetes:core/v1:ServicePatch";
const ROOT = path.resolve(__dirname, "..");

/** The 8 hex digits that end the name of a service's NetworkPolicy (see networkPolicySpec). */
function policyDigest(cfg: ReturnType<typeof parse>, name: string): string {
  const p = planOf(cfg, name);
  return networkPolicySpec(p.service, p.callers, p.callees, { namespace: cfg.namespace }).metadata.name.slice(-8);
}

/**
 * Resources per service: component, Deployment, Service (+ PDB with 2 replicas) (+ AppImage and
 * Image when built) (+ the Service holding a pinned node port) (+ its NetworkPolicy); plus one
 * NodePorts component when any port is pinned, and the default-deny NetworkPolicy. Against a
 * live cluster (no `renderDir`), each service also has its Rollout watch and its port keeper.
 */
function expectedCount(services: ReturnType<typeof parse>["services"], policies = true, live = true): number {
  const pinned = services.filter((s) => s.nodePort !== undefined).length;
  const apps = new Set(services.flatMap((s) => (s.source.kind === "app" ? [s.source.app] : []))).size;
  return (
    services.reduce((n, s) => n + 3 + (s.replicas >= 2 ? 1 : 0) + (policies ? 1 : 0) + (live ? 2 : 0), 0) +
    2 * apps +
    pinned +
    (pinned > 0 ? 1 : 0) +
    (policies ? 1 : 0)
  );
}

/** A fixed tag and revision for built images, standing in for the digest of their inputs. */
const fixed = (tag: string, revision?: string) => async () => ({
  tag,
  revision,
  args: revision ? { REVISION: revision } : ({} as Record<string, string>),
});

/** Every resource's URN, by `type/name`, as the engine would key its state. */
async function urnsOf(out: ChainOutputs): Promise<Record<string, string>> {
  const resources: pulumi.Resource[] = [];
  for (const ms of Object.values(out.services)) {
    resources.push(ms, ms.deployment, ms.service, ...(ms.podDisruptionBudget ? [ms.podDisruptionBudget] : []));
  }
  if (out.pinnedPorts) {
    resources.push(out.pinnedPorts, ...Object.values(out.pinnedPorts.services));
  }
  const urns = await Promise.all(resources.map((r) => valueOf(r.urn)));
  return Object.fromEntries(urns.map((u) => [u.split("::").slice(-2).join("/").replace(/^.*\$/, ""), u]));
}

/**
 * A transformation that records the options each child is registered with, by name (the mock
 * monitor does not see them).
 */
function recordInto(opts: Record<string, pulumi.CustomResourceOptions>): pulumi.ResourceTransformation {
  return (a) => {
    opts[a.name] = a.opts;
    return undefined;
  };
}
describe("stack (Pulumi mocks)", function () {
  let recorded: Recorded[];

  it("registers the seed's system in call order: a callee's Deployment and Service finish before its caller's Deployment starts", async () => {
    recorded = installMocks({ readyDelayMs: 15 });
    const cfg = parse({ services: seedServices() });
    // Prebuilt images keep this test about ordering only.
    for (const s of cfg.services) {
      s.source = { kind: "image", image: PINNED };
    }
    deployChain(cfg, { projectRoot: ROOT });
    await settle(recorded, expectedCount(cfg.services));

    const dep = (n: string) => find(recorded, DEP, `${n}-deployment`);
    const svc = (n: string) => find(recorded, SVC, `${n}-service`);
    const rollout = (n: string) => find(recorded, ROLLOUT, `${n}-rollout`);
    for (const [caller, callee] of [
      ["service-a", "service-b"],
      ["service-b", "service-c"],
    ]) {
      assert.ok(
        dep(callee).finished < dep(caller).started,
        `${callee}'s Deployment must be ready before ${caller}'s starts`,
      );
      assert.ok(
        rollout(callee).finished < dep(caller).started,
        `${callee}'s rollout must be watched to the end before ${caller}'s Deployment starts`,
      );
      assert.ok(
        dep(callee).finished < rollout(callee).started,
        `${callee}'s rollout watch starts once its Deployment is applied`,
      );
      assert.ok(
        svc(callee).finished < dep(caller).started,
        `${callee}'s Service must be ready before ${caller}'s Deployment starts`,
      );
    }
    // Independent services are not serialized: sample-app and service-c start before either is ready.
    assert.ok(dep("sample-app").started < dep("service-c").finished);
    assert.ok(dep("service-c").started < dep("sample-app").finished);
    // Within a service the Service is created first (not waited for), then the Deployment rolls out.
    assert.ok(svc("service-c").finished < dep("service-c").started);
  });

  it("parents every child to its component and names children from it", async () => {
    recorded = installMocks();
    const cfg = parse({ services: { c: { image: PINNED } } });
    const ms = deployChain(cfg, { projectRoot: ROOT }).services.c;
    await settle(recorded, expectedCount(cfg.services));
    assert.ok(ms instanceof MicroService);
    assert.deepStrictEqual(
      recorded.map((r) => `${r.type}/${r.name}`).sort(),
      [
        "k8s-chain:components:MicroService/c",
        `${DEP}/c-deployment`,
        `${PDB}/c-pdb`,
        `${SVC}/c-service`,
        `${NETPOL}/c-network-policy-${policyDigest(cfg, "c")}`,
        `${NETPOL}/default-deny`,
        `${ROLLOUT}/c-rollout`,
        `${KEEPER}/c-port-80`,
      ].sort(),
    );
    assert.ok(ms.networkPolicy);
    // A child's URN carries its parent's type chain: these are the MicroService's children.
    const [parentUrn, depUrn, svcUrn, polUrn] = await Promise.all(
      [ms.urn, ms.deployment.urn, ms.service.urn, ms.networkPolicy.urn].map(valueOf),
    );
    assert.strictEqual(parentUrn, "urn:pulumi:test::k8s-chain::k8s-chain:components:MicroService::c");
    assert.strictEqual(depUrn, childUrn(parentUrn, DEP, "c-deployment"));
    assert.strictEqual(svcUrn, childUrn(parentUrn, SVC, "c-service"));
    assert.strictEqual(polUrn, childUrn(parentUrn, NETPOL, `c-network-policy-${policyDigest(cfg, "c")}`));
  });

  it("leaves the service's own Service (no pinned port) and the auto-named Deployment to Pulumi's default replacement order", () => {
    recorded = installMocks();
    const cfg = parse({ services: { c: { image: PINNED, expose: "NodePort", nodePort: 30080 } } });
    const opts: Record<string, pulumi.CustomResourceOptions> = {};
    const placement = { namespace: "default", clusterDomain: "cluster.local", rolloutTimeoutSeconds: 120 };
    new MicroService(
      "c",
      {
        plan: planOf(cfg, "c"),
        networkPolicy: true,
        placement,
        image: PINNED,
        waitFor: [],
        podsWaitFor: [],
        connection: {},
      },
      { transformations: [recordInto(opts)] },
    );
    assert.strictEqual(opts["c-service"].deleteBeforeReplace, undefined);
    assert.strictEqual(opts["c-deployment"].deleteBeforeReplace, undefined);
  });

  it("holds back only the Deployment for the default deny and the callees; its Service, policy and budget wait for the namespace alone", () => {
    recorded = installMocks();
    const cfg = parse({ services: { c: { image: PINNED, calls: ["d"] }, d: { image: PINNED } } });
    const placement = { namespace: "default", clusterDomain: "cluster.local", rolloutTimeoutSeconds: 120 };
    const [ns, deny, callee] = ["ns", "deny", "callee"].map(
      (n) => new pulumi.ComponentResource("test:index:Marker", n),
    );
    const opts: Record<string, pulumi.CustomResourceOptions> = {};
    new MicroService(
      "c",
      {
        plan: planOf(cfg, "c"),
        networkPolicy: true,
        placement,
        image: PINNED,
        waitFor: [ns],
        podsWaitFor: [deny, callee],
        connection: {},
      },
      { transformations: [recordInto(opts)] },
    );
    const policy = Object.keys(opts).find((n) => n.startsWith("c-network-policy-"))!;
    for (const child of ["c-service", policy, "c-pdb"]) {
      assert.deepStrictEqual(opts[child].dependsOn, [ns], child);
    }
    const dep = opts["c-deployment"].dependsOn as pulumi.Resource[];
    for (const r of [ns, deny, callee]) {
      assert.ok(dep.includes(r), "the Deployment waits for the namespace, the default deny and the callee");
    }
  });

  it("makes a pinned port's Service delete-before-replace: a namespace move frees the port before claiming it again", () => {
    recorded = installMocks();
    const cfg = parse({ services: { c: { image: PINNED, expose: "NodePort", nodePort: 30080 } } });
    const placement = { namespace: "default", clusterDomain: "cluster.local", rolloutTimeoutSeconds: 120 };
    const owner = new MicroService("c", {
      plan: planOf(cfg, "c"),
      networkPolicy: true,
      placement,
      image: PINNED,
      waitFor: [],
      podsWaitFor: [],
      connection: {},
    });
    const ports = planChain(cfg, ROOT).pinnedPorts;
    const opts: Record<string, pulumi.CustomResourceOptions> = {};
    new NodePorts("node-ports", { ports, owners: { c: owner }, placement }, { transformations: [recordInto(opts)] });
    assert.strictEqual(opts["node-port-30080"].deleteBeforeReplace, true);
    assert.deepStrictEqual(opts["node-port-30080"].dependsOn, [owner]);
    assert.throws(() => new NodePorts("orphans", { ports, owners: {}, placement }), {
      message: "NodePorts: no component for c; create each service's MicroService first",
    });
  });

  it("holds each pinned node port in a Service of its own, `node-port-<port>`, under one NodePorts component, after its owner", async () => {
    recorded = installMocks({ readyDelayMs: 15 });
    const cfg = parse({ namespace: "chain", services: seedServices() });
    for (const s of cfg.services) {
      s.source = { kind: "image", image: PINNED };
    }
    const out = deployChain(cfg, { projectRoot: ROOT });
    await settle(recorded, 1 + expectedCount(cfg.services));

    assert.ok(out.pinnedPorts instanceof NodePorts);
    assert.deepStrictEqual(Object.keys(out.pinnedPorts.services), ["30080", "30081"]);
    const held = find(recorded, SVC, "node-port-30081");
    assert.deepStrictEqual(held.inputs.metadata?.name, "node-port-30081");
    assert.deepStrictEqual(held.inputs.spec, {
      type: "NodePort",
      selector: { "app.kubernetes.io/name": "service-a" },
      ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: "http", nodePort: 30081 }],
    });
    // The owner's own Service (its DNS name) is a ClusterIP and holds no node port.
    assert.deepStrictEqual(find(recorded, SVC, "service-a-service").inputs.spec?.ports, [
      { name: "http-80", protocol: "TCP", port: 80, targetPort: "http" },
    ]);
    assert.strictEqual(find(recorded, SVC, "service-a-service").inputs.spec?.type, "ClusterIP");
    // Sent once its owner is ready: the owner's Deployment and Service have finished.
    assert.ok(find(recorded, DEP, "service-a-deployment").finished < held.started);
    assert.ok(find(recorded, SVC, "service-a-service").finished < held.started);
    // Parented to the NodePorts component, never to the owning MicroService.
    const urns = await urnsOf(out);
    assert.strictEqual(
      urns["kubernetes:core/v1:Service/node-port-30081"],
      "urn:pulumi:test::k8s-chain::k8s-chain:components:NodePorts$kubernetes:core/v1:Service::node-port-30081",
    );
    assert.deepStrictEqual(
      await Promise.all([valueOf(out.nodePorts["sample-app"]), valueOf(out.nodePorts["service-a"])]),
      [30080, 30081],
    );
  });

  it("swapping two services' pinned ports keeps every URN: the engine sees two selector updates, not replacements", async () => {
    const run = async (ports: { sampleApp: number; serviceA: number }) => {
      recorded = installMocks();
      const raw = seedServices();
      raw["sample-app"].nodePort = ports.sampleApp;
      raw["service-a"].nodePort = ports.serviceA;
      const cfg = parse({ services: raw });
      for (const s of cfg.services) {
        s.source = { kind: "image", image: PINNED };
      }
      const out = deployChain(cfg, { projectRoot: ROOT });
      await settle(recorded, expectedCount(cfg.services));
      const selectorOf = (port: number) => find(recorded, SVC, `node-port-${port}`).inputs.spec?.selector;
      const held = await Promise.all(Object.values(out.pinnedPorts!.services).map((s) => valueOf(s.urn)));
      const parentUrn = await valueOf(out.pinnedPorts!.urn);
      assert.deepStrictEqual(
        held,
        [childUrn(parentUrn, SVC, "node-port-30080"), childUrn(parentUrn, SVC, "node-port-30081")],
        "parented to NodePorts, not to the service that owns the port",
      );
      return {
        urns: await urnsOf(out),
        selectors: [selectorOf(30080), selectorOf(30081)],
        nodePorts: await Promise.all([valueOf(out.nodePorts["sample-app"]), valueOf(out.nodePorts["service-a"])]),
      };
    };
    const before = await run({ sampleApp: 30080, serviceA: 30081 });
    const after = await run({ sampleApp: 30081, serviceA: 30080 });
    assert.deepStrictEqual(Object.keys(after.urns).length, 4 * 4 + 3);
    assert.deepStrictEqual(after.urns, before.urns);
    assert.deepStrictEqual(before.selectors, [
      { "app.kubernetes.io/name": "sample-app" },
      { "app.kubernetes.io/name": "service-a" },
    ]);
    assert.deepStrictEqual(after.selectors, [
      { "app.kubernetes.io/name": "service-a" },
      { "app.kubernetes.io/name": "sample-app" },
    ]);
    assert.deepStrictEqual(
      [before.nodePorts, after.nodePorts],
      [
        [30080, 30081],
        [30081, 30080],
      ],
    );
  });

  it("moving a pinned port to another service keeps its URN; the old owner's Service keeps its own", async () => {
    const run = async (owner: "sample-app" | "service-c") => {
      recorded = installMocks();
      const cfg = parse({
        services: {
          "sample-app": { image: PINNED, expose: "NodePort", ...(owner === "sample-app" ? { nodePort: 30080 } : {}) },
          "service-c": { image: PINNED, ...(owner === "service-c" ? { expose: "NodePort", nodePort: 30080 } : {}) },
        },
      });
      const out = deployChain(cfg, { projectRoot: ROOT });
      await settle(recorded, expectedCount(cfg.services));
      return {
        urns: await urnsOf(out),
        held: find(recorded, SVC, "node-port-30080").inputs.spec?.selector,
        types: [
          find(recorded, SVC, "sample-app-service").inputs.spec?.type,
          find(recorded, SVC, "service-c-service").inputs.spec?.type,
        ],
        nodePorts: Object.fromEntries(
          await Promise.all(Object.entries(out.nodePorts).map(async ([n, p]) => [n, await valueOf(p)])),
        ),
      };
    };
    const before = await run("sample-app");
    const after = await run("service-c");
    assert.deepStrictEqual(after.urns, before.urns);
    assert.deepStrictEqual(
      [before.held, after.held],
      [{ "app.kubernetes.io/name": "sample-app" }, { "app.kubernetes.io/name": "service-c" }],
    );
    assert.deepStrictEqual(
      [before.types, after.types],
      [
        ["ClusterIP", "ClusterIP"],
        ["NodePort", "ClusterIP"],
      ],
    );
    assert.deepStrictEqual(
      [before.nodePorts, after.nodePorts],
      [{ "sample-app": 30080 }, { "sample-app": 31999, "service-c": 30080 }],
      "an unpinned NodePort service gets whatever port the cluster picks",
    );
  });

  it("creates the namespace unless it is `default`, and puts every object in it", async () => {
    recorded = installMocks();
    const cfg = parse({ namespace: "chain", services: { c: { image: PINNED, replicas: 1 } } });
    deployChain(cfg, { projectRoot: ROOT });
    await settle(recorded, 1 + expectedCount(cfg.services));
    const ns = find(recorded, "kubernetes:core/v1:Namespace", "namespace");
    assert.strictEqual(ns.inputs.metadata?.name, "chain");
    assert.strictEqual(ns.inputs.metadata?.labels?.["pod-security.kubernetes.io/enforce"], "restricted");
    assert.ok(ns.finished < find(recorded, DEP, "c-deployment").started);
    for (const r of [...byType(recorded, DEP), ...byType(recorded, SVC)]) {
      assert.strictEqual(r.inputs.metadata?.namespace, "chain");
    }

    recorded = installMocks();
    deployChain(parse({ services: { c: { image: PINNED, replicas: 1 } } }), { projectRoot: ROOT });
    await settle(recorded, 5);
    assert.strictEqual(byType(recorded, "kubernetes:core/v1:Namespace").length, 0);
  });

  it("creates the default deny first and each service's NetworkPolicy before its Deployment; `networkPolicies: false` creates none", async () => {
    recorded = installMocks({ readyDelayMs: 5 });
    const cfg = parse({ namespace: "chain", services: seedServices() });
    for (const s of cfg.services) {
      s.source = { kind: "image", image: PINNED };
    }
    const out = deployChain(cfg, { projectRoot: ROOT });
    await settle(recorded, 1 + expectedCount(cfg.services));
    const deny = find(recorded, NETPOL, "default-deny");
    assert.strictEqual(deny.inputs.metadata?.name, "k8s-chain-default-deny");
    assert.ok(find(recorded, "kubernetes:core/v1:Namespace", "namespace").finished < deny.started);
    for (const name of ["sample-app", "service-a", "service-b", "service-c"]) {
      const pol = find(recorded, NETPOL, `${name}-network-policy-${policyDigest(cfg, name)}`);
      assert.ok(deny.finished < pol.started, `${name}'s policy after the default deny`);
      assert.ok(pol.finished < find(recorded, DEP, `${name}-deployment`).started, `${name}'s policy before its pods`);
      assert.strictEqual(pol.inputs.metadata?.namespace, "chain");
    }
    // service-b: in from service-a, out to service-c and DNS.
    const b = find(recorded, NETPOL, `service-b-network-policy-${policyDigest(cfg, "service-b")}`).inputs.spec;
    assert.deepStrictEqual(b?.ingress?.[0].from, [
      { podSelector: { matchLabels: { "app.kubernetes.io/name": "service-a" } } },
    ]);
    assert.deepStrictEqual(b?.egress?.[0].to, [
      { podSelector: { matchLabels: { "app.kubernetes.io/name": "service-c" } } },
    ]);
    assert.ok(out.defaultDeny);

    recorded = installMocks();
    const off = parse({ namespace: "chain", networkPolicies: "false", services: seedServices() });
    for (const s of off.services) {
      s.source = { kind: "image", image: PINNED };
    }
    const outOff = deployChain(off, { projectRoot: ROOT });
    await settle(recorded, 1 + expectedCount(off.services, false));
    assert.deepStrictEqual(byType(recorded, NETPOL), []);
    assert.strictEqual(outOff.defaultDeny, undefined);
    assert.strictEqual(outOff.services["service-b"].networkPolicy, undefined);
  });

  it("with a registry: pushes the app image once and pins every Deployment built from it to the pushed digest", async () => {
    recorded = installMocks();
    const cfg = parse({ registry: "localhost:5001", services: seedServices() });
    const out = deployChain(cfg, { projectRoot: ROOT, versionFor: fixed("0123abc", "c0ffee") });
    await settle(recorded, expectedCount(cfg.services));
    assert.deepStrictEqual(
      byType(recorded, IMG).map((r) => r.name),
      ["chain-service-image"],
    );
    const img = find(recorded, IMG, "chain-service-image");
    assert.strictEqual(img.inputs.imageName, "localhost:5001/chain-service:0123abc");
    assert.strictEqual(img.inputs.skipPush, false);
    assert.strictEqual(img.inputs.buildOnPreview, false);
    assert.deepStrictEqual(img.inputs.build, {
      context: path.join(ROOT, "apps"),
      dockerfile: path.join(ROOT, "apps/chain-service/Dockerfile"),
      args: { REVISION: "c0ffee" },
      platform: hostPlatform(),
    });
    const digestRef = String(img.state.repoDigest);
    assert.match(digestRef, /^localhost:5001\/chain-service@sha256:[0-9a-f]{64}$/);
    for (const name of ["sample-app", "service-a", "service-b", "service-c"]) {
      const dep = find(recorded, DEP, `${name}-deployment`).inputs;
      assert.strictEqual(containerOf(dep).image, digestRef, name);
      assert.strictEqual(await valueOf(out.images[name]), digestRef, name);
      // The revision is on the Deployment itself, never on the pod template (a revision alone rolls nothing).
      assert.strictEqual(dep.metadata?.annotations?.["k8s-chain.dev/revision"], "c0ffee", name);
      assert.strictEqual(dep.spec!.template.metadata!.annotations?.["k8s-chain.dev/revision"], undefined, name);
    }
  });

  it("without a registry: builds into the local engine only and runs an immutable tag, never latest", async () => {
    recorded = installMocks();
    const cfg = parse({ services: { "service-c": { app: "apps/chain-service" } } });
    const out = deployChain(cfg, { projectRoot: ROOT, versionFor: fixed("0123abc") });
    await settle(recorded, expectedCount(cfg.services));
    const img = find(recorded, IMG, "chain-service-image");
    assert.strictEqual(img.inputs.imageName, "chain-service:0123abc");
    assert.strictEqual(img.inputs.skipPush, true);
    const dep = find(recorded, DEP, "service-c-deployment").inputs;
    assert.strictEqual(containerOf(dep).image, "chain-service:0123abc");
    assert.strictEqual(await valueOf(out.images["service-c"]), "chain-service:0123abc");
    // No revision known (outside git): no annotation.
    assert.strictEqual(dep.metadata!.annotations!["k8s-chain.dev/revision"], undefined);
  });

  it("builds each distinct app folder once, asking for its version once, and names a second folder of the same name apart", async () => {
    recorded = installMocks();
    const asked: string[] = [];
    const cfg = parse(
      {
        services: { ...seedServices(), web: { app: "apps/web" }, "web-2": { app: "other/web" } },
      },
      ["apps/chain-service", "apps/web", "other/web"],
    );
    deployChain(cfg, {
      projectRoot: ROOT,
      versionFor: async ({ dockerfile }) => {
        asked.push(path.relative(ROOT, dockerfile));
        return { tag: "t1" };
      },
    });
    await settle(recorded, expectedCount(cfg.services));
    assert.deepStrictEqual(asked, ["apps/chain-service/Dockerfile", "apps/web/Dockerfile", "other/web/Dockerfile"]);
    assert.deepStrictEqual(
      byType(recorded, IMG)
        .map((r) => r.inputs.imageName)
        .sort(),
      ["chain-service:t1", "other-web:t1", "web:t1"],
    );
    assert.deepStrictEqual(find(recorded, IMG, "other-web-image").inputs.build?.context, path.join(ROOT, "other"));
  });

  it("across commits of a git repo: a commit that touches no build input changes no image and no Deployment; a source change rolls all four", async function () {
    this.timeout(60000);
    // A repo holding a copy of the apps/ context (sources and manifests) and a README.
    const repo = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-chain-commits-"));
    const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, encoding: "utf8" }).trim();
    const commit = (msg: string) => {
      git("add", "-A");
      git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", msg);
      return git("rev-parse", "HEAD");
    };
    fs.cpSync(path.join(ROOT, "apps"), path.join(repo, "apps"), {
      recursive: true,
      filter: (src) => !/\/(node_modules|dist)$/.test(src),
    });
    fs.writeFileSync(path.join(repo, "README.md"), "# one\n");
    const run = async () => {
      recorded = installMocks();
      const cfg = parse({ services: seedServices() });
      deployChain(cfg, { projectRoot: repo });
      await settle(recorded, expectedCount(cfg.services));
      const deps = Object.fromEntries(byType(recorded, DEP).map((r) => [r.name, r.inputs]));
      return { images: byType(recorded, IMG).map((r) => r.inputs), deps };
    };
    try {
      git("init", "-q");
      const first = commit("first");
      const before = await run();
      assert.strictEqual(before.images.length, 1);
      assert.strictEqual(before.images[0].build?.args?.REVISION, first);
      assert.strictEqual(before.deps["service-a-deployment"].metadata?.annotations?.["k8s-chain.dev/revision"], first);

      fs.writeFileSync(path.join(repo, "README.md"), "# two\n");
      fs.writeFileSync(
        path.join(repo, "apps", "chain-service", "NOTES.md"),
        "docs inside the context, ignored by .dockerignore\n",
      );
      commit("docs only");
      assert.deepStrictEqual(await run(), before);

      fs.appendFileSync(path.join(repo, "apps", "chain-service", "src", "server.ts"), "// changed\n");
      const third = commit("source");
      const after = await run();
      assert.notStrictEqual(after.images[0].imageName, before.images[0].imageName);
      assert.strictEqual(after.images[0].build?.args?.REVISION, third);
      for (const [name, dep] of Object.entries(after.deps)) {
        assert.strictEqual(containerOf(dep).image, after.images[0].imageName, name);
        assert.strictEqual(dep.metadata?.annotations?.["k8s-chain.dev/revision"], third, name);
      }
    } finally {
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });

  it("refuses two app folders whose Dockerfiles have the same size (moby/buildkit#1368 still bites), naming both, before any resource", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-chain-1368-"));
    try {
      for (const [app, user] of [
        ["one", "10001"],
        ["two", "10002"],
        ["three", "100003"],
      ]) {
        fs.mkdirSync(path.join(root, "apps", app), { recursive: true });
        fs.writeFileSync(path.join(root, "apps", app, "Dockerfile"), `FROM scratch\nUSER ${user}\n`);
      }
      const registered = installMocks();
      // A namespace of its own and network policies: both would be registered first, if anything were.
      const cfg = parse({ namespace: "shop", services: { a: { app: "apps/one" }, b: { app: "apps/two" } } }, [
        "apps/one",
        "apps/two",
      ]);
      assert.throws(
        () => deployChain(cfg, { projectRoot: root, versionFor: fixed("t") }),
        (e: Error) => {
          assert.ok(pulumi.RunError.isInstance(e));
          assert.strictEqual(
            e.message,
            "k8s-chain config has 1 problem; nothing was created:\n" +
              "  - apps/one/Dockerfile and apps/two/Dockerfile are both 24 bytes: BuildKit can build one from the other's cached Dockerfile " +
              "(same name, size and mtime, which a fresh clone gives them; moby/buildkit#1368). Make their sizes differ, e.g. with a comment line.",
          );
          return true;
        },
      );
      // Registrations reach the mocks asynchronously: give any that were started time to land.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepStrictEqual(
        registered.map((r) => `${r.type} ${r.name}`),
        [],
      );
      const fine = parse({ services: { a: { app: "apps/one" }, b: { app: "apps/three" }, c: { app: "apps/one" } } }, [
        "apps/one",
        "apps/three",
      ]);
      deployChain(fine, { projectRoot: root, versionFor: fixed("t") });
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("exports urls, nodePorts (NodePort services only) and images", async () => {
    recorded = installMocks();
    const cfg = parse({
      namespace: "chain",
      services: {
        ...seedServices(),
        picked: { image: PINNED, expose: "NodePort" },
        lb: { image: PINNED, expose: "LoadBalancer" },
      },
    });
    const out = deployChain(cfg, { projectRoot: ROOT, versionFor: fixed("t1") });
    assert.deepStrictEqual(out.urls, {
      "sample-app": "http://sample-app.chain.svc.cluster.local:80",
      "service-a": "http://service-a.chain.svc.cluster.local:80",
      "service-b": "http://service-b.chain.svc.cluster.local:80",
      "service-c": "http://service-c.chain.svc.cluster.local:80",
      picked: "http://picked.chain.svc.cluster.local:80",
      lb: "http://lb.chain.svc.cluster.local:80",
    });
    assert.deepStrictEqual(Object.keys(out.nodePorts).sort(), ["picked", "sample-app", "service-a"]);
    assert.strictEqual(await valueOf(out.nodePorts["sample-app"]), 30080);
    assert.strictEqual(await valueOf(out.nodePorts["service-a"]), 30081);
    assert.strictEqual(
      await valueOf(out.nodePorts.picked),
      31999,
      "an unpinned node port is the one the cluster assigned",
    );
    assert.strictEqual(await valueOf(out.images.lb), PINNED);
  });

  it("has a Rollout wait for old pods to drain only when they lose something at the end of the up: a policy or a callee's port, not an image", async () => {
    const needs = async (services: Record<string, Record<string, unknown>>) => {
      recorded = installMocks();
      const cfg = parse({ services });
      deployChain(cfg, { projectRoot: ROOT });
      await settle(recorded, expectedCount(cfg.services));
      return Object.fromEntries(byType(recorded, ROLLOUT).map((r) => [r.inputs.service, r.inputs.needs]));
    };
    const base = { a: { image: PINNED, calls: ["b"] }, b: { image: PINNED } };
    const before = await needs(base);
    const image = await needs({ ...base, b: { image: PINNED.replace(/@sha256:[0-9a-f]{4}/, "@sha256:0000") } });
    const port = await needs({ ...base, b: { image: PINNED, servicePort: 8081 } });
    const calls = await needs({ ...base, a: { image: PINNED }, c: { image: PINNED, calls: ["b"] } });
    assert.deepStrictEqual(image, before, "an image update");
    // b's port moved: its caller a's old pods call the old one, which is kept until the up ends.
    assert.notStrictEqual(port.a, before.a);
    assert.strictEqual(port.b, before.b);
    // a no longer calls b: a's policy and env change, and so does b's policy (its callers).
    assert.notStrictEqual(calls.a, before.a);
    assert.notStrictEqual(calls.b, before.b);
  });

  it("passes `rolloutTimeoutSeconds` to every Deployment and to a LoadBalancer, and waits for no other Service", async () => {
    recorded = installMocks();
    const cfg = parse({
      rolloutTimeoutSeconds: "45",
      services: { c: { image: PINNED, replicas: 1 }, lb: { image: PINNED, replicas: 1, expose: "LoadBalancer" } },
    });
    deployChain(cfg, { projectRoot: ROOT });
    await settle(recorded, expectedCount(cfg.services));
    const deps = byType(recorded, DEP);
    // The stack's Rollout waits for each Deployment, within the same bound; the provider does not.
    assert.deepStrictEqual(
      deps.map((d) => [d.name, d.inputs.spec?.progressDeadlineSeconds, d.inputs.metadata?.annotations]),
      [
        ["c-deployment", 45, { "pulumi.com/patchForce": "true", "pulumi.com/skipAwait": "true" }],
        ["lb-deployment", 45, { "pulumi.com/patchForce": "true", "pulumi.com/skipAwait": "true" }],
      ],
    );
    assert.deepStrictEqual(
      byType(recorded, ROLLOUT).map((r) => [r.name, r.inputs.service, r.inputs.timeoutSeconds]),
      [
        ["c-rollout", "c", 45],
        ["lb-rollout", "lb", 45],
      ],
    );
    assert.deepStrictEqual(
      byType(recorded, SVC).map((s) => [s.name, s.inputs.spec?.type, s.inputs.metadata?.annotations]),
      [
        ["c-service", "ClusterIP", { "pulumi.com/patchForce": "true", "pulumi.com/skipAwait": "true" }],
        ["lb-service", "LoadBalancer", { "pulumi.com/patchForce": "true", "pulumi.com/timeoutSeconds": "45" }],
      ],
    );
  });

  it("renders through an explicit provider when `renderDir` is set", async () => {
    recorded = installMocks();
    const cfg = parse({ renderDir: "/tmp/rendered", services: { c: { image: PINNED, replicas: 1 } } });
    deployChain(cfg, { projectRoot: ROOT });
    await settle(recorded, 6);
    const provider = find(recorded, "pulumi:providers:kubernetes", "render");
    assert.strictEqual(provider.inputs.renderYamlToDirectory, "/tmp/rendered");
    // Files have no rollout to watch, and a port keeper would overwrite the Service's file:
    // the provider waits (bounded) as before.
    assert.deepStrictEqual(byType(recorded, ROLLOUT).length + byType(recorded, KEEPER).length, 0);
    assert.deepStrictEqual(find(recorded, DEP, "c-deployment").inputs.metadata?.annotations, {
      "pulumi.com/patchForce": "true",
      "pulumi.com/timeoutSeconds": "120",
    });
  });

  it("talks to the cluster a program's own provider names: every object through it, each rollout watched over its kubeconfig", async () => {
    recorded = installMocks();
    const cfg = parse({ services: { c: { image: PINNED, replicas: 1 } } });
    const provider = new k8s.Provider("own-cluster", { kubeconfig: "apiVersion: v1\nkind: Config\n", context: "ctx" });
    deployChain(cfg, {
      projectRoot: ROOT,
      cluster: { provider, kubeconfig: pulumi.secret("apiVersion: v1\nkind: Config\n"), context: "ctx" },
    });
    await settle(recorded, expectedCount(cfg.services) + 1);
    // A provider of the program's own is a live cluster, not render mode: the watch and the keeper are there.
    const rollout = find(recorded, ROLLOUT, "c-rollout");
    // Sent to the engine as a secret (it may hold credentials): Pulumi's secret signature.
    assert.deepStrictEqual(rollout.inputs.connection, {
      [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig,
      value: { kubeconfig: "apiVersion: v1\nkind: Config\n", context: "ctx" },
    });
    assert.strictEqual(byType(recorded, KEEPER).length, 1);
    for (const r of recorded.filter((r) => r.type.startsWith("kubernetes:"))) {
      assert.match(String(r.provider), /::own-cluster::/, `${r.type} ${r.name} goes through the program's provider`);
    }
    assert.throws(
      () =>
        deployChain(parse({ renderDir: "/tmp/r", services: { d: { image: PINNED } } }), {
          projectRoot: ROOT,
          cluster: { provider },
        }),
      {
        message:
          "deployChain: k8s-chain:renderDir is set and a kubernetes provider was passed; render mode makes its own provider, so pass one or the other",
      },
    );
  });

  it("builds with the configured buildArgs, buildNetwork and buildPlatform, which are part of the tag's digest", async () => {
    recorded = installMocks();
    const services = { "service-c": { app: "apps/chain-service" } };
    const base = { services, registry: "localhost:5001" };
    const tagWith = async (extra: Record<string, unknown>) => {
      recorded = installMocks();
      const cfg = parse({ ...base, ...extra });
      deployChain(cfg, { projectRoot: ROOT });
      await settle(recorded, expectedCount(cfg.services));
      return find(recorded, IMG, "chain-service-image").inputs;
    };
    const plain = await tagWith({});
    const built = await tagWith({
      buildArgs: { NODE_IMAGE: "localhost:5001/node:20" },
      buildNetwork: "host",
      buildPlatform: "linux/arm64",
    });
    assert.strictEqual(built.build?.network, "host");
    assert.strictEqual(built.build?.platform, "linux/arm64");
    assert.strictEqual((built.build?.args as Record<string, string>).NODE_IMAGE, "localhost:5001/node:20");
    assert.strictEqual(plain.build?.network, undefined);
    assert.strictEqual(plain.build?.platform, hostPlatform());
    // Another base image or platform is another image: another tag.
    assert.notStrictEqual(built.imageName, plain.imageName);
    const onlyPlatform = await tagWith({ buildPlatform: "linux/arm64" });
    assert.notStrictEqual(onlyPlatform.imageName, plain.imageName);
    assert.strictEqual((await tagWith({ buildNetwork: "host" })).imageName, plain.imageName);
  });

  it("AppImage alone: local tag without a registry, digest with one", async () => {
    recorded = installMocks();
    const local = new AppImage("x", { context: "/c", dockerfile: "/c/x/Dockerfile", repository: "x", tag: "t" });
    const pushed = new AppImage("y", {
      context: "/c",
      dockerfile: "/c/y/Dockerfile",
      repository: "y",
      tag: "t",
      registry: "ghcr.io/org",
    });
    assert.strictEqual(await valueOf(local.ref), "x:t");
    assert.match(await valueOf(pushed.ref), /^ghcr\.io\/org\/y@sha256:/);
  });
});

describe("the program (index.ts) with the dev stack's config", function () {
  this.timeout(60000);
  let recorded: Recorded[];
  let program: typeof import("../index");

  before(async () => {
    recorded = installMocks();
    const dev = YAML.parse(fs.readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8")).config;
    pulumi.runtime.setAllConfig(
      Object.fromEntries(Object.entries(dev).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])),
    );
    program = await import("../index");
    // Per service: component, Deployment, Service, PDB, NetworkPolicy, Rollout, port keeper; one AppImage
    // and Image for the one app folder; two pinned ports under NodePorts; the default deny.
    await settle(recorded, 4 * 7 + 2 + 3 + 1);
  });

  after(() => pulumi.runtime.setAllConfig({}));

  it("matches the seed: sample-app with 2 replicas, NodePort 30080, port 80 -> 8080, startup and readiness on /health, liveness on /livez", () => {
    const dep = find(recorded, DEP, "sample-app-deployment").inputs;
    assert.strictEqual(dep.spec?.replicas, 2);
    const c = containerOf(dep);
    assert.strictEqual(c.ports?.[0].containerPort, 8080);
    for (const probe of [c.startupProbe, c.readinessProbe]) {
      assert.deepStrictEqual(probe?.httpGet, { path: "/health", port: "http" });
    }
    assert.deepStrictEqual(c.livenessProbe?.httpGet, { path: "/livez", port: "http" });
    const svc = find(recorded, SVC, "sample-app-service").inputs.spec;
    assert.deepStrictEqual(svc?.ports, [{ name: "http-80", protocol: "TCP", port: 80, targetPort: "http" }]);
    assert.strictEqual(svc?.type, "ClusterIP");
    const held = find(recorded, SVC, "node-port-30080").inputs.spec;
    assert.deepStrictEqual(held?.ports, [
      { name: "http", protocol: "TCP", port: 80, targetPort: "http", nodePort: 30080 },
    ]);
    assert.deepStrictEqual([held?.type, held?.selector], ["NodePort", { "app.kubernetes.io/name": "sample-app" }]);
  });

  it("wires service-a -> service-b -> service-c by in-cluster URLs and exposes service-a as a NodePort", async () => {
    const env = (n: string) => containerOf(find(recorded, DEP, `${n}-deployment`).inputs).env;
    assert.deepStrictEqual(
      env("service-a")?.find((e) => e.name === "DOWNSTREAM_URLS")?.value,
      "http://service-b.default.svc.cluster.local:80",
    );
    assert.deepStrictEqual(
      env("service-b")?.find((e) => e.name === "SERVICE_C_URL")?.value,
      "http://service-c.default.svc.cluster.local:80",
    );
    const timeout = (n: string) => env(n)!.find((e) => e.name === "DOWNSTREAM_TIMEOUT_MS")?.value;
    // No per-call timeout from the call height: the request's budget travels with it (x-request-timeout-ms).
    assert.deepStrictEqual(
      [timeout("service-a"), timeout("service-b"), timeout("service-c")],
      [undefined, undefined, undefined],
    );
    assert.deepStrictEqual(find(recorded, SVC, "node-port-30081").inputs.spec?.selector, {
      "app.kubernetes.io/name": "service-a",
    });
    assert.deepStrictEqual(await valueOf(program.nodePorts["sample-app"]), 30080);
    assert.deepStrictEqual(await valueOf(program.nodePorts["service-a"]), 30081);
  });

  it("builds the one app folder once, with a tag that is a digest of its inputs, and runs it in all four Deployments", async () => {
    const images = byType(recorded, IMG);
    assert.deepStrictEqual(
      images.map((i) => i.name),
      ["chain-service-image"],
    );
    const img = images[0].inputs;
    assert.match(img.imageName, /^chain-service:inputs-[0-9a-f]{32}$/);
    assert.ok(fs.existsSync(img.build?.dockerfile ?? ""), img.build?.dockerfile);
    for (const name of ["sample-app", "service-a", "service-b", "service-c"]) {
      assert.strictEqual(containerOf(find(recorded, DEP, `${name}-deployment`).inputs).image, img.imageName, name);
      assert.strictEqual(await valueOf(program.images[name]), img.imageName, name);
    }
  });
});
