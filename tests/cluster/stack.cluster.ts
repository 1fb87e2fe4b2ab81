// The real program, run by the real engine, against a real cluster (lab/scripts/cluster.sh):
// every scenario asserts on the cluster itself (the API, watches, HTTP through node ports).
// Run with `npm run test:cluster` (lab/scripts/test-cluster.sh starts and stops everything).
import * as assert from "assert";
import { execFileSync } from "child_process";
import { EngineStack, engineBin, REPO, RunResult } from "../engine/harness";
import {
  available,
  CHAIN,
  cluster,
  eventually,
  get,
  kubectl,
  kubectlJson,
  kubectlStdin,
  buildConfig,
  deploymentOf,
  devCatalog,
  loadWhile,
  pushedImages,
  Watch,
  WatchEvent,
} from "./harness";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IEndpointSlice } from "kubernetes-models/discovery.k8s.io/v1/EndpointSlice";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IEvent } from "kubernetes-models/v1/Event";
import type { IPod } from "kubernetes-models/v1/Pod";
import type { IService } from "kubernetes-models/v1/Service";
import type { RawServices } from "../support/catalogs";
import { describeLoad, failureLines, LoadResult } from "../support/load";
import type { KubeList, KubeObject } from "../support/objects";

const NAMESPACE = "chain-e2e";
const MOVED_NAMESPACE = "chain-e2e-moved";
/** The rollout bound the suite runs with (`k8s-chain:rolloutTimeoutSeconds`). */
const ROLLOUT_TIMEOUT_S = 30;
const nodePortUrl = (port: number, p = "/") => `http://127.0.0.1:${port}${p}`;

/**
 * Whether pods really serve (a real node). On kwok nodes only (the fallback when this machine
 * cannot run the real node), the HTTP checks of a scenario are left out, and it says so.
 */
function servesHttp(): boolean {
  if (!cluster.realNode) {
    console.log("      (kwok nodes only: the HTTP checks of this scenario are not run)");
  }
  return cluster.realNode;
}

function readyEndpoints(slice: IEndpointSlice): number {
  return (slice.endpoints ?? []).filter((e) => e.conditions?.ready).length;
}

/** Every Deployment of the stack available, every Service with ready endpoints. */
async function assertAllReady(ns: string, services: RawServices): Promise<void> {
  for (const name of Object.keys(services)) {
    const d = await deploymentOf(ns, name);
    assert.ok(available(d), `${name}: Deployment not available: ${JSON.stringify(d.status)}`);
    const slices = await kubectlJson<KubeList<IEndpointSlice>>(
      "get",
      "endpointslices",
      "-n",
      ns,
      "-l",
      `kubernetes.io/service-name=${name}`,
    );
    const ready = slices.items.reduce((n, s) => n + readyEndpoints(s), 0);
    assert.strictEqual(ready, services[name].replicas ?? 2, `${name}: ${ready} ready endpoints`);
  }
}

/**
 * The service is wholly on one release: its Deployment's template passes `check` (on its
 * container), it is available, and every pod left (terminating ones gone) runs that template.
 */
async function assertOnRelease(ns: string, svc: string, check: (container: IContainer) => void): Promise<void> {
  const d = await deploymentOf(ns, svc);
  check(d.spec!.template.spec!.containers[0]);
  await eventually(60_000, async () => {
    const now = await deploymentOf(ns, svc);
    assert.ok(available(now), `${svc}: not available: ${JSON.stringify(now.status)}`);
    const pods = await kubectlJson<KubeList<IPod>>("get", "pods", "-n", ns, "-l", `app.kubernetes.io/name=${svc}`);
    assert.strictEqual(
      pods.items.length,
      now.spec!.replicas,
      `${svc}: pods ${pods.items.map((p) => p.metadata!.name)}`,
    );
    for (const p of pods.items) {
      check(p.spec!.containers[0]);
    }
  });
}

/** Waits (at most `withinMs`) for A's whole chain to answer on a node port. */
async function assertChainAnswers(port = 30081, withinMs = 10_000): Promise<void> {
  await eventually(withinMs, async () => {
    const res = await get(nodePortUrl(port));
    assert.strictEqual(res.status, 200, res.body);
    assert.deepStrictEqual(JSON.parse(res.body), CHAIN);
  });
}

/**
 * From the watches: the moment each service's Deployment was first seen, and the first
 * moment it was available with ready endpoints behind its Service.
 */
function timeline(deploys: WatchEvent<IDeployment>[], slices: WatchEvent<IEndpointSlice>[], ns: string, since: number) {
  // By service name (undefined for an object without the label).
  const created = new Map<string | undefined, number>();
  const avail = new Map<string | undefined, number>();
  const endpoints = new Map<string | undefined, number>();
  for (const e of deploys) {
    const d = e.object;
    if (e.at < since || d.metadata!.namespace !== ns) {
      continue;
    }
    const svc = d.metadata!.labels?.["app.kubernetes.io/name"];
    if (e.type === "ADDED" && !created.has(svc)) {
      created.set(svc, e.at);
    }
    if (created.has(svc) && available(d) && !avail.has(svc)) {
      avail.set(svc, e.at);
    }
  }
  for (const e of slices) {
    const slice = e.object;
    if (e.at < since || slice.metadata!.namespace !== ns) {
      continue;
    }
    const svc = slice.metadata!.labels?.["kubernetes.io/service-name"];
    if (readyEndpoints(slice) > 0 && !endpoints.has(svc)) {
      endpoints.set(svc, e.at);
    }
  }
  return { created, avail, endpoints };
}

/**
 * Asserts that each caller's Deployment appeared only after its callees were available with
 * endpoints; returns a line per call, then the ordering's cost per call level (median and max
 * of those gaps: the time the stack adds between a callee ready and its caller created).
 */
function assertOrdered(services: RawServices, t: ReturnType<typeof timeline>): string[] {
  const lines: string[] = [];
  const gaps: number[] = [];
  for (const [name, svc] of Object.entries(services)) {
    // `calls` as the catalog lists them (a list of service names; this catalog is the dev stack's, valid).
    for (const callee of (svc.calls as string[] | undefined) ?? []) {
      const created = t.created.get(name);
      const ready = Math.max(t.avail.get(callee) ?? Infinity, t.endpoints.get(callee) ?? Infinity);
      assert.ok(created !== undefined, `${name}: no Deployment creation seen`);
      assert.ok(ready !== Infinity, `${callee}: never seen available with endpoints`);
      assert.ok(
        created > ready,
        `${name}'s Deployment was created ${ready - created} ms before its callee ${callee} was available with endpoints`,
      );
      lines.push(`${callee} ready -> ${name} created: +${created - ready} ms`);
      gaps.push(created - ready);
    }
  }
  gaps.sort((a, b) => a - b);
  const median =
    gaps.length % 2 ? gaps[(gaps.length - 1) / 2] : (gaps[gaps.length / 2 - 1] + gaps[gaps.length / 2]) / 2;
  lines.push(
    `ordering cost per call level: median ${median} ms, max ${gaps[gaps.length - 1]} ms over ${gaps.length} levels (goal: under 1000 ms)`,
  );
  return lines;
}

/**
 * Stands in for a load-balancer controller: polls for Service `name`, and `delayMs` after it
 * first sees it, writes `ip` to its status.loadBalancer (the status subresource, as a real
 * controller does). `stop()` ends the polling and resolves with when the address was written.
 */
function fakeLoadBalancerController(
  namespace: string,
  name: string,
  delayMs: number,
  ip: string,
): { stop: () => Promise<number | undefined> } {
  let stopped = false;
  let assignedAt: number | undefined;
  const loop = (async () => {
    let seenAt: number | undefined;
    while (!stopped && assignedAt === undefined) {
      const seen = await kubectl("get", "service", name, "-n", namespace, "-o", "name").then(
        () => true,
        () => false,
      );
      if (seen && seenAt === undefined) seenAt = Date.now();
      if (seenAt !== undefined && Date.now() - seenAt >= delayMs) {
        const status = JSON.stringify({ status: { loadBalancer: { ingress: [{ ip }] } } });
        await kubectl("patch", "service", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", status);
        assignedAt = Date.now();
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return assignedAt;
    },
  };
}

describe("the real program on a real cluster", function () {
  this.timeout(0);
  let stack: EngineStack;
  let services: RawServices;
  let images: Record<string, string>;
  let ns = NAMESPACE;
  let deploys: Watch<IDeployment>;
  let slices: Watch<IEndpointSlice>;
  const loads: string[] = [];
  /** What the stack's own build of apps/chain-service pushed (the dev catalog's image), once the first up ran. */
  let built = "";
  const config = (over: Record<string, unknown> = {}) => ({
    namespace: ns,
    rolloutTimeoutSeconds: ROLLOUT_TIMEOUT_S,
    ...buildConfig(),
    services,
    ...over,
  });
  /** Points a service at a prebuilt image (`ref`), or back at its app folder (no `ref`): the stack's own build. */
  const runImage = (svc: string, ref?: string) => {
    if (ref === undefined) {
      delete services[svc].image;
      services[svc].app = "apps/chain-service";
    } else {
      delete services[svc].app;
      services[svc].image = ref;
    }
  };
  const up = async (what: string): Promise<RunResult> => {
    stack.setConfig(config());
    return stack.pulumiAsync(["up", "--yes", "--skip-preview"], what);
  };
  const upOk = async (what: string): Promise<RunResult> => {
    const r = await up(what);
    assert.strictEqual(r.code, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  /**
   * How long a failed release may hold `up`: the rollout's bound, plus what the engine spends
   * on any `up` (the no-change `up` measured in this run, when it ran; 15 s if not), plus 20 s
   * for the rollback and the margin the watch gives the controller's own verdict.
   */
  const failureBound = (): number => {
    const idle = stack.timings.find((t) => t.what === "up (no change)")?.seconds ?? 15;
    return ROLLOUT_TIMEOUT_S + idle + 20;
  };
  /** The error lines of a failed `up`, for the log. */
  const errorsOf = (r: RunResult): string =>
    (r.stdout + r.stderr)
      .split("\n")
      .filter((l) => /^\s+error: /.test(l))
      .join("\n");
  /** Runs `f` under a steady load on A's node port (the whole chain) and returns the counts. */
  const underLoad = (what: string, f: () => Promise<void>): Promise<LoadResult> =>
    loadWhile(nodePortUrl(30081), what, f, loads);

  before(async function () {
    if (!cluster.realNode) {
      console.log(
        "      NOTE: NO REAL NODE: pods run on kwok nodes, which serve no traffic; the scenarios that need it are skipped (pending) and the others say which checks they leave out",
      );
    }
    const engine = engineBin();
    stack = new EngineStack(engine, REPO);
    images = pushedImages();
    // The dev catalog as it is: every service built from apps/chain-service by the stack.
    services = devCatalog();
    stack.init(config());
    deploys = await Watch.start<IDeployment>("/apis/apps/v1/deployments");
    slices = await Watch.start<IEndpointSlice>("/apis/discovery.k8s.io/v1/endpointslices");
  });

  after(async function () {
    deploys?.stop();
    slices?.stop();
    if (stack) {
      console.log("      timings:");
      for (const t of stack.timings) {
        console.log(`        ${t.what.padEnd(52)} ${t.seconds.toFixed(1).padStart(6)} s  exit ${t.code}`);
      }
      console.log("      load runs:");
      for (const l of loads) {
        console.log(`        ${l}`);
      }
      // Whatever a failed scenario left: the stack's objects go with the cluster anyway.
      if (!process.env.K8S_CHAIN_CLUSTER_HOLD) {
        stack.dispose();
      }
    }
  });

  it("the dev catalog comes up: every Deployment available, endpoints ready, node ports and the whole chain answer", async function () {
    const since = Date.now();
    const r = await upOk("up (dev catalog, first)");
    console.log(
      `      first up of the dev catalog (the image built by the stack): ${r.seconds.toFixed(1)} s (goal: under 45 s)`,
    );
    // The stack built apps/chain-service once with the docker provider, pushed it, and every
    // Deployment runs the pushed digest, which the registry has.
    const outputs = JSON.parse(stack.ok(["stack", "output", "--json"]).stdout) as { images: Record<string, string> };
    built = outputs.images["service-a"];
    assert.match(built, new RegExp(`^${images.registry.replace(/\./g, "\\.")}/chain-service@sha256:[0-9a-f]{64}$`));
    for (const name of Object.keys(services)) {
      assert.strictEqual(outputs.images[name], built, name);
      assert.strictEqual((await deploymentOf(ns, name)).spec!.template.spec!.containers[0].image, built, name);
    }
    const digest = built.split("@")[1];
    const manifest = await get(`http://${images.registry}/v2/chain-service/manifests/${digest}`);
    assert.strictEqual(manifest.status, 200, `the registry has no ${built}`);
    // Every replica behind its Service can lag the rollout by a moment (seen on kwok nodes);
    // the ordering check below holds callers to "at least one ready endpoint" before they start.
    await eventually(10_000, () => assertAllReady(ns, services));
    if (servesHttp()) {
      const seed = await eventually(5000, async () => {
        const res = await get(nodePortUrl(30080, "/health"));
        assert.strictEqual(res.status, 200);
        return res;
      });
      assert.deepStrictEqual(JSON.parse(seed.body), { status: "ok" });
      await assertChainAnswers();
    }
    // Ordering, from what the cluster itself reported while the engine ran.
    for (const l of assertOrdered(services, timeline(deploys.events, slices.events, ns, since))) {
      console.log(`      ${l}`);
    }
  });

  it("a second up changes nothing in the cluster", async function () {
    const before = await kubectlJson<KubeList<KubeObject>>(
      "get",
      "deployments,services,poddisruptionbudgets",
      "-n",
      ns,
    );
    const r = await stack.pulumiAsync(["up", "--yes", "--skip-preview", "--expect-no-changes"], "up (no change)");
    assert.strictEqual(r.code, 0, r.stdout + r.stderr);
    const after = await kubectlJson<KubeList<KubeObject>>("get", "deployments,services,poddisruptionbudgets", "-n", ns);
    const versions = (l: KubeList<KubeObject>) =>
      l.items.map((o) => `${o.kind}/${o.metadata!.name}@${o.metadata!.resourceVersion}`).sort();
    assert.deepStrictEqual(versions(after), versions(before));
  });

  it("refresh and up restore a Deployment scaled by hand and a Service deleted by hand", async function () {
    const b = await deploymentOf(ns, "service-b");
    await kubectl("scale", "deployment", b.metadata!.name!, "-n", ns, "--replicas=4");
    await kubectl("delete", "service", "service-c", "-n", ns, "--wait=true");
    const ref = await stack.pulumiAsync(["refresh", "--yes", "--skip-preview"], "refresh (after kubectl scale/delete)");
    assert.strictEqual(ref.code, 0, ref.stdout + ref.stderr);
    await upOk("up (restore)");
    await eventually(20_000, async () => {
      const d = await deploymentOf(ns, "service-b");
      assert.strictEqual(d.spec!.replicas, 2);
      assert.ok(available(d), JSON.stringify(d.status));
    });
    await kubectlJson("get", "service", "service-c", "-n", ns);
    await eventually(10_000, () => assertAllReady(ns, services));
    if (servesHttp()) {
      await assertChainAnswers();
    }
  });

  it("a new image rolls out in place with no failed request through the chain, repeatedly", async function () {
    if (!cluster.realNode) this.skip();
    const steps: Array<[string, string, string]> = [
      ["service-a", "service-a@v2", "service-a -> v2"],
      ["service-b", "service-b@v2", "service-b (a callee) -> v2"],
      ["service-a", "service-a", "service-a -> v1"],
      ["service-b", "service-b", "service-b -> v1"],
    ];
    const failed: string[] = [];
    for (const [svc, ref, what] of steps) {
      const uid = (await deploymentOf(ns, svc)).metadata!.uid;
      // v2 is a prebuilt variant; back to v1 is back to the stack's own build.
      const want = ref.endsWith("@v2") ? images[ref] : built;
      runImage(svc, ref.endsWith("@v2") ? want : undefined);
      const res = await underLoad(`rollout ${what}`, async () => {
        await upOk(`up (rollout ${what})`);
      });
      const d = await deploymentOf(ns, svc);
      assert.strictEqual(d.metadata!.uid, uid, `${svc}: the Deployment was replaced, not rolled in place`);
      assert.strictEqual(d.spec!.template.spec!.containers[0].image, want);
      assert.ok(available(d));
      if (res.failures.length > 0) {
        failed.push(`${what}: ${describeLoad(res)}`);
      }
    }
    assert.deepStrictEqual(failed, []);
  });

  it("pinned node ports swap between two services, and move to another service, each in one up", async function () {
    services["sample-app"].nodePort = 30081;
    services["service-a"].nodePort = 30080;
    const swap = await upOk("up (swap node ports 30080 <-> 30081)");
    const ports = await kubectlJson<KubeList<IService>>(
      "get",
      "services",
      "-n",
      ns,
      "-l",
      "app.kubernetes.io/component=node-port",
    );
    const holders = Object.fromEntries(
      ports.items.map((s) => [
        s.spec!.ports![0].nodePort,
        s.spec!.selector!["app.kubernetes.io/name"] ?? s.spec!.selector!.app,
      ]),
    );
    assert.deepStrictEqual(holders, { 30080: "service-a", 30081: "sample-app" }, `after the swap:\n${swap.stdout}`);
    if (servesHttp()) {
      const t0 = Date.now();
      await assertChainAnswers(30080);
      console.log(`      30080 answered as service-a ${Date.now() - t0} ms after the swap's up returned`);
      const seed = await eventually(5000, async () => {
        const res = await get(nodePortUrl(30081));
        assert.strictEqual(res.status, 200, res.body);
        return res;
      });
      assert.strictEqual(JSON.parse(seed.body).service, "sample-app");
    }

    // 30081 moves from sample-app to service-b; sample-app takes a new one.
    services["sample-app"].nodePort = 30082;
    services["service-b"].expose = "NodePort";
    services["service-b"].nodePort = 30081;
    await upOk("up (move node port 30081 to service-b)");
    const moved = await kubectlJson<IService>("get", "service", "node-port-30081", "-n", ns);
    assert.strictEqual(moved.spec!.selector!["app.kubernetes.io/name"], "service-b");
    if (servesHttp()) {
      const b = await eventually(5000, async () => {
        const res = await get(nodePortUrl(30081));
        assert.strictEqual(res.status, 200, res.body);
        assert.strictEqual(JSON.parse(res.body).service, "service-b");
        return res;
      });
      assert.deepStrictEqual(JSON.parse(b.body), CHAIN.downstream[0]);
      await eventually(5000, async () => assert.strictEqual((await get(nodePortUrl(30082, "/health"))).status, 200));
    }

    // And back to the dev catalog's ports.
    services = {
      ...services,
      "sample-app": { ...services["sample-app"], nodePort: 30080 },
      "service-a": { ...services["service-a"], nodePort: 30081 },
    };
    delete services["service-b"].expose;
    delete services["service-b"].nodePort;
    await upOk("up (node ports back)");
    if (servesHttp()) {
      await assertChainAnswers(30081);
    }
  });

  it("a label edit rolls the pods in place (selectors hold only the stack's identity) while the chain keeps answering", async function () {
    if (!cluster.realNode) this.skip();
    const before = await deploymentOf(ns, "service-c");
    services["service-c"].labels = { tier: "backend" };
    const res = await underLoad("label edit on service-c", async () => {
      await upOk("up (label edit)");
    });
    const d = await deploymentOf(ns, "service-c");
    assert.strictEqual(d.metadata!.uid, before.metadata!.uid, "the Deployment was replaced");
    assert.deepStrictEqual(d.spec!.selector, before.spec!.selector);
    assert.strictEqual(d.spec!.template.metadata!.labels!.tier, "backend");
    assert.ok(available(d));
    await assertChainAnswers();
    assert.deepStrictEqual(failureLines(res), []);
  });

  it("a release whose pods never become ready fails within the bound, names the service, and the next up recovers", async function () {
    if (!cluster.realNode) this.skip();
    const good = built;
    // An image the registry does not have: the node's pull fails at once, and so does the release.
    const missing = good.replace(/@sha256:[0-9a-f]{64}$/, `@sha256:${"0".repeat(64)}`);
    runImage("service-c", missing);
    const t0 = Date.now();
    const bad = await up("up (bad image, must fail)");
    const s = (Date.now() - t0) / 1000;
    const idle = stack.timings.find((t) => t.what === "up (no change)")?.seconds ?? 15;
    console.log(
      `      missing image: up failed after ${s.toFixed(1)} s (rolloutTimeoutSeconds ${ROLLOUT_TIMEOUT_S} s; allowed ${(idle + 15).toFixed(1)} s: a no-change up plus 15 s)`,
    );
    console.log(errorsOf(bad));
    assert.notStrictEqual(bad.code, 0, "up succeeded with an image that does not exist");
    assert.ok(s < idle + 15, `up took ${s} s: a missing image must fail within seconds, not wait out the rollout`);
    assert.match(
      bad.stdout + bad.stderr,
      new RegExp(
        `service-c: its release can never become ready: pod service-c-\\S+ cannot pull its image "${missing.replace(/\./g, "\\.")}" \\((ErrImagePull|ImagePullBackOff): [^)]*not found`,
      ),
    );
    assert.match(bad.stdout + bad.stderr, /Rolled it back to its last good release \(revision \d+\)/);
    // The old pods kept serving, and the cluster is back on the last good release: the
    // Deployment itself, not only its old pods (no half-rolled Deployment).
    await assertChainAnswers();
    await assertOnRelease(ns, "service-c", (c) => assert.strictEqual(c.image, good));
    // The pull went to the local registry, never to a name outside the machine.
    const events = await kubectlJson<KubeList<IEvent>>("get", "events", "-n", ns, "--field-selector", "reason=Failed");
    const pulls = events.items
      .map((e) => e.message as string)
      .filter((m: string) => m.startsWith("Failed to pull image"));
    assert.ok(pulls.length > 0, "no pull failure event");
    for (const m of pulls) {
      assert.match(m, /127\.0\.0\.1:\d+/, m);
      assert.doesNotMatch(m, /docker\.io|lookup/i, m);
    }

    runImage("service-c");
    const fixed = await upOk("up (fixed image)");
    console.log(`      recovery up after the bad image: ${fixed.seconds.toFixed(1)} s`);
    await assertAllReady(ns, services);
    await assertChainAnswers();

    // A health route the app does not have: its probes answer 404, and the release fails once
    // the kubelet has counted ten of them, not at the bound.
    services["service-b"].healthPath = "/not-a-route";
    const t1 = Date.now();
    const unhealthy = await up("up (missing health route, must fail)");
    const s1 = (Date.now() - t1) / 1000;
    console.log(
      `      missing health route: up failed after ${s1.toFixed(1)} s (rolloutTimeoutSeconds ${ROLLOUT_TIMEOUT_S} s; allowed ${(idle + 20).toFixed(1)} s: a no-change up plus 20 s)`,
    );
    console.log(errorsOf(unhealthy));
    assert.notStrictEqual(unhealthy.code, 0);
    assert.ok(
      s1 < idle + 20,
      `up took ${s1} s: a route answering 404 must fail within seconds, not wait out the rollout`,
    );
    assert.match(
      unhealthy.stdout + unhealthy.stderr,
      /service-b: its release can never become ready: pod service-b-\S+: its startup probe GET \/not-a-route \(port http\) answered 404 \d+ times: the app has no such route; set services\.service-b\.healthPath to a route it serves\. Rolled it back to its last good release \(revision \d+\)/,
    );
    await assertChainAnswers();
    await assertOnRelease(ns, "service-b", (c) => assert.strictEqual(c.readinessProbe!.httpGet!.path, "/health"));
    delete services["service-b"].healthPath;
    await upOk("up (health route fixed)");
    await assertAllReady(ns, services);

    // A release that may yet become ready as far as the watch can tell (its app exits at start,
    // so its pods restart) waits out the bound, then fails naming what its pods do.
    const envBefore = services["service-b"].env;
    services["service-b"].env = {
      ...(envBefore as Record<string, string> | undefined),
      NODE_OPTIONS: "--no-such-option",
    };
    const t2 = Date.now();
    const crashing = await up("up (app exits at start, must fail)");
    const s2 = (Date.now() - t2) / 1000;
    console.log(
      `      app exits at start: up failed after ${s2.toFixed(1)} s (allowed ${failureBound().toFixed(1)} s)`,
    );
    console.log(errorsOf(crashing));
    assert.notStrictEqual(crashing.code, 0);
    assert.ok(s2 > ROLLOUT_TIMEOUT_S && s2 < failureBound(), `up took ${s2} s`);
    assert.match(
      crashing.stdout + crashing.stderr,
      /service-b: its release did not become ready within \d+s \(rolloutTimeoutSeconds\): pod service-b-\S+: (CrashLoopBackOff|container exited|restarted \d+ time)/,
    );
    assert.match(crashing.stdout + crashing.stderr, /Rolled it back to its last good release/);
    await assertChainAnswers();
    await assertOnRelease(ns, "service-b", (c) =>
      assert.ok(!(c.env ?? []).some((e) => e.name === "NODE_OPTIONS"), "NODE_OPTIONS still in the release"),
    );
    services["service-b"].env = envBefore;
    if (envBefore === undefined) delete services["service-b"].env;
    await upOk("up (app fixed)");
    await assertAllReady(ns, services);
  });

  it("a LoadBalancer that never gets an address fails within the bound", async function () {
    services["service-d"] = { image: built, expose: "LoadBalancer" };
    const t0 = Date.now();
    const r = await up("up (LoadBalancer, no controller: must fail)");
    const s = (Date.now() - t0) / 1000;
    console.log(`      LoadBalancer with no controller: up failed after ${s.toFixed(1)} s`);
    assert.notStrictEqual(r.code, 0);
    assert.ok(s < failureBound(), `up took ${s} s`);
    assert.match(r.stdout + r.stderr, /service-d/);
    delete services["service-d"];
    await upOk("up (LoadBalancer removed)");
    await assert.rejects(kubectl("get", "service", "service-d", "-n", ns), /NotFound/);
  });

  it("a LoadBalancer whose address comes while up waits: up waits for it, then succeeds", async function () {
    // What a load-balancer controller does (MetalLB, a cloud's): write the Service's
    // status.loadBalancer once it has an address. The cluster has none, so this stands in for
    // it, 8 s after the Service appears, through the same status subresource.
    const delayMs = 8000;
    const controller = fakeLoadBalancerController(ns, "service-d", delayMs, "192.0.2.10");
    services["service-d"] = { image: built, expose: "LoadBalancer" };
    let r: RunResult;
    let assignedAt: number | undefined;
    try {
      r = await upOk("up (LoadBalancer, an address after 8 s)");
    } finally {
      delete services["service-d"];
      assignedAt = await controller.stop();
    }
    // The engine's own account of the Service's step ("created (9s)"): without the wait, a
    // Service is created in well under a second.
    const lines = r.stdout.split("\n").filter((l) => l.includes("service-d-service"));
    console.log(lines.map((l) => `        ${l.trim()}`).join("\n"));
    const took = /service-d-service\s+created\s+\((\d+)s\)/.exec(r.stdout);
    console.log(
      `      LoadBalancer given an address ${delayMs / 1000} s after it appeared: up took ${r.seconds.toFixed(1)} s, ` +
        `the Service's step ${took ? `${took[1]} s` : "(not found in the output)"}`,
    );
    assert.ok(assignedAt !== undefined, "the stand-in controller never saw service-d");
    assert.ok(took, "the engine's output has no `service-d-service created (<n>s)`");
    assert.ok(
      Number(took[1]) >= delayMs / 1000 - 1,
      `the Service's step took ${took[1]} s: it did not wait for the address`,
    );
    assert.ok(
      Number(took[1]) < ROLLOUT_TIMEOUT_S,
      `the Service's step took ${took[1]} s: it did not take the address when it came`,
    );
    const svc = await kubectlJson<IService>("get", "service", "service-d", "-n", ns);
    assert.strictEqual(svc.status?.loadBalancer?.ingress?.[0]?.ip, "192.0.2.10");
    await upOk("up (LoadBalancer removed again)");
    await assert.rejects(kubectl("get", "service", "service-d", "-n", ns), /NotFound/);
  });

  it("a callee's servicePort change is one up; its callers roll onto the new port (failed requests counted)", async function () {
    if (!cluster.realNode) this.skip();
    services["service-b"].servicePort = 8081;
    const res = await underLoad("service-b servicePort 80 -> 8081", async () => {
      await upOk("up (servicePort change)");
    });
    const a = await deploymentOf(ns, "service-a");
    const env = a.spec!.template.spec!.containers[0].env!;
    assert.strictEqual(
      env.find((e) => e.name === "SERVICE_B_URL")!.value,
      `http://service-b.${ns}.svc.cluster.local:8081`,
    );
    await assertAllReady(ns, services);
    await assertChainAnswers();
    // The old port was kept until the callers had rolled, then went with its keeper.
    const svc = await kubectlJson<IService>("get", "service", "service-b", "-n", ns);
    assert.deepStrictEqual(
      svc.spec!.ports!.map((p) => p.port),
      [8081],
    );
    console.log(`      servicePort change: ${res.failures.length} failed of ${res.sent}`);
    assert.deepStrictEqual(failureLines(res), []);
  });

  it("a namespace move is one up; callers are recreated after their callees in the new namespace", async function () {
    if (!cluster.realNode) this.skip();
    const since = Date.now();
    ns = MOVED_NAMESPACE;
    const res = await underLoad("namespace move", async () => {
      await upOk("up (namespace move)");
    });
    await assertAllReady(ns, services);
    await assertChainAnswers();
    for (const l of assertOrdered(services, timeline(deploys.events, slices.events, ns, since))) {
      console.log(`      ${l}`);
    }
    await eventually(60_000, () => assert.rejects(kubectl("get", "namespace", NAMESPACE), /NotFound/));
    // A pinned node port cannot be held by two namespaces at once: its Service is deleted
    // before its replacement is created, so the port is dark for that moment (reported above).
    const outage = res.failures.length;
    console.log(`      namespace move: ${outage} failed of ${res.sent}`);
  });

  it("no image pull leaves the machine: a Docker Hub name goes to the local registry and fails closed, with no DNS query out", async function () {
    if (!cluster.realNode) this.skip();
    // Count every DNS packet this machine sends anywhere but to the cluster's own DNS
    // while the node tries to pull (the rule goes with the cluster's firewall snapshot).
    const rule = ["OUTPUT", "-m", "comment", "--comment", "k8s-chain-dns-watch", "-j", "ACCEPT"];
    const watch = [
      ["-p", "udp", "--dport", "53"],
      ["-p", "tcp", "--dport", "53"],
    ].map((p) => [...p, "!", "-d", `${process.env.K8S_CHAIN_CLUSTER_NODE_IP}/32`]);
    for (const w of watch) {
      execFileSync("iptables", ["-I", rule[0], "1", ...w, ...rule.slice(1)]);
    }
    try {
      const pod = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "pull-from-docker-hub", namespace: "default" },
        spec: {
          restartPolicy: "Never",
          containers: [{ name: "c", image: "docker.io/library/busybox:1.36.1" }],
          securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } },
        },
      };
      await kubectlStdin(JSON.stringify(pod), "apply", "-f", "-");
      const message = await eventually(30_000, async () => {
        const ev = await kubectlJson<KubeList<IEvent>>(
          "get",
          "events",
          "-n",
          "default",
          "--field-selector",
          "involvedObject.name=pull-from-docker-hub,reason=Failed",
        );
        assert.ok(ev.items.length > 0, "no pull failure yet");
        return ev.items[0].message as string;
      });
      console.log(`      pull of docker.io/library/busybox: ${message.slice(0, 300)}`);
      // The local registry (every registry's mirror here) answered that it has no such
      // image; a pull that had gone looking for Docker Hub would fail on a lookup or a dial.
      assert.match(message, /docker\.io\/library\/busybox:1\.36\.1: not found/);
      assert.doesNotMatch(message, /lookup|dial tcp|no such host|i\/o timeout/);
      const counters = execFileSync("iptables", ["-L", "OUTPUT", "-v", "-x", "-n"], { encoding: "utf8" })
        .split("\n")
        .filter((l) => l.includes("k8s-chain-dns-watch"));
      assert.strictEqual(counters.length, 2, counters.join("\n"));
      for (const l of counters) {
        assert.strictEqual(l.trim().split(/\s+/)[0], "0", `DNS packets left the machine:\n${l}`);
      }
    } finally {
      for (const w of watch) {
        execFileSync("iptables", ["-D", rule[0], ...w, ...rule.slice(1)]);
      }
      await kubectl("delete", "pod", "pull-from-docker-hub", "-n", "default", "--ignore-not-found", "--wait=false");
    }
  });

  it("destroy removes every object and the namespace", async function () {
    const r = await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy");
    assert.strictEqual(r.code, 0, r.stdout + r.stderr);
    await eventually(60_000, () => assert.rejects(kubectl("get", "namespace", ns), /NotFound/));
    const left = await kubectlJson<KubeList<KubeObject>>(
      "get",
      "deployments,services,poddisruptionbudgets",
      "-A",
      "-l",
      "app.kubernetes.io/part-of=k8s-chain",
    );
    assert.deepStrictEqual(
      left.items.map((o) => `${o.kind}/${o.metadata!.namespace}/${o.metadata!.name}`),
      [],
    );
  });
});
