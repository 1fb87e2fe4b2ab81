// Several real nodes, NetworkPolicies enforced, and the disruptions a production cluster has:
// the dev catalog on two real nodes (lab/scripts/cluster.sh: node 0 in the machine's network
// namespace, node 1 in one of its own, kube-network-policies enforcing on both), every check
// made on the cluster itself: where the pods run, what each pod can reach (measured from
// inside it), what a load through A's node port saw.
// Run with `npm run test:cluster` (lab/scripts/test-cluster.sh starts and stops everything).
import * as assert from "assert";
import type { ChildProcess } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { IEndpointSlice } from "kubernetes-models/discovery.k8s.io/v1/EndpointSlice";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { IPod } from "kubernetes-models/v1/Pod";
import type { IService } from "kubernetes-models/v1/Service";
import { allowedConnections, type Endpoint, type Policy } from "../../components/reachability";
import { EngineStack, engineBin, REPO, RunResult } from "../engine/harness";
import type { RawServices } from "../support/catalogs";
import { describeLoad, Load, LoadResult } from "../support/load";
import type { KubeList, KubeObject } from "../support/objects";
import { run } from "../support/process";
import {
  buildConfig,
  cluster,
  deploymentOf,
  devCatalog,
  errorLines,
  eventually,
  forgetUnansweredConnections,
  get,
  kubectl,
  kubectlJson,
  loadWhile,
  pushedImages,
  takeDown,
  Watch,
} from "./harness";

const NAMESPACE = "chain-nodes";
const NODES = (process.env.K8S_CHAIN_CLUSTER_NODES ?? "").split(" ").filter(Boolean);
/** The node the disruptions take away (node 0 holds the node ports the load goes through). */
const LOST = NODES[1];
const OUTSIDE = process.env.K8S_CHAIN_CLUSTER_OUTSIDE ?? "";
const CLUSTER_SH = path.join(REPO, "lab", "scripts", "cluster.sh");
const CHAIN_URL = "http://127.0.0.1:30081/";

/** `lab/scripts/cluster.sh <args>` (kill-node, restart-node, restart-apiserver); throws on failure. */
async function clusterSh(...args: string[]): Promise<string> {
  const r = await run("bash", [CLUSTER_SH, ...args], { env: process.env });
  if (r.code !== 0) {
    throw new Error(`lab/scripts/cluster.sh ${args.join(" ")} failed:\n${r.stderr}`);
  }
  return r.stderr.trim();
}

/** The stack's pods that are not being deleted, by service (`app.kubernetes.io/name`). */
async function podsByService(ns: string): Promise<Map<string, IPod[]>> {
  const list = await kubectlJson<KubeList<IPod>>("get", "pods", "-n", ns);
  const by = new Map<string, IPod[]>();
  for (const p of list.items) {
    const svc = p.metadata!.labels?.["app.kubernetes.io/name"];
    if (svc && !p.metadata!.deletionTimestamp) {
      by.set(svc, [...(by.get(svc) ?? []), p]);
    }
  }
  return by;
}

const isReady = (p: IPod) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

/** Each service has `replicas` Ready pods, each on a different node; returns `service: node, node` lines. */
async function assertSpread(ns: string, services: RawServices): Promise<string[]> {
  const by = await podsByService(ns);
  const lines: string[] = [];
  for (const [name, svc] of Object.entries(services)) {
    const pods = (by.get(name) ?? []).filter(isReady);
    const nodes = pods.map((p) => p.spec!.nodeName!);
    const replicas = (svc.replicas as number | undefined) ?? 2;
    assert.strictEqual(pods.length, replicas, `${name}: ${pods.length} ready pods`);
    assert.strictEqual(new Set(nodes).size, Math.min(replicas, NODES.length), `${name}: replicas on ${nodes}`);
    lines.push(`${name}: ${nodes.sort().join(", ")}`);
  }
  return lines;
}

/** Whether a node's Ready condition is True. */
async function nodeReady(name: string): Promise<boolean> {
  const node = await kubectlJson<{ status: { conditions: { type: string; status: string }[] } }>("get", "node", name);
  return node.status.conditions.some((c) => c.type === "Ready" && c.status === "True");
}

/** Every Deployment of the stack has all its replicas Ready behind its Service. */
async function chainWhole(ns: string, services: RawServices): Promise<boolean> {
  const by = await podsByService(ns);
  return Object.entries(services).every(
    ([name, svc]) => (by.get(name) ?? []).filter(isReady).length === ((svc.replicas as number | undefined) ?? 2),
  );
}

/**
 * Run inside a pod by `node -e`: each target is a TCP connection (`host`, `port`) or a DNS
 * lookup (`dns`, through the pod's resolver); prints one verdict per target: "open" (connected,
 * or resolved) or why not. A connection a policy refuses is dropped: it times out.
 */
const PROBE = `
const net = require("node:net"), dns = require("node:dns");
const targets = JSON.parse(process.argv[1]);
const tcp = (host, port) => new Promise((done) => {
  const s = net.connect({ host, port });
  const t = setTimeout(() => { s.destroy(); done("timeout"); }, 2000);
  s.on("connect", () => { clearTimeout(t); s.destroy(); done("open"); });
  s.on("error", (e) => { clearTimeout(t); done(e.code); });
});
const lookup = (name) => new Promise((done) => {
  const r = new dns.Resolver({ timeout: 2000, tries: 1 });
  r.resolve4(name, (e) => done(e ? e.code : "open"));
});
Promise.all(targets.map((t) => (t.dns ? lookup(t.dns) : tcp(t.host, t.port)))).then((r) => console.log(JSON.stringify(r)));
`;

interface Probe {
  /** What the evaluator calls the connection: `<service> -> <destination>:<port>/<protocol>`. */
  line: string;
  /** What the pod saw: "open", "timeout", an error code. */
  seen: string;
  pod: string;
}

/**
 * The reachability matrix, measured from inside every pod of the stack: to every other
 * service's Service (ClusterIP and servicePort), to the cluster DNS (a lookup of a Service's
 * name), and to an address outside the cluster (lab/scripts/cluster.sh's web server in a network
 * namespace of its own). Each row is named as the evaluator names it (the Service's port
 * translated to the pod's, as a policy sees the packet).
 */
async function measureMatrix(ns: string, services: RawServices): Promise<Probe[]> {
  const svcs = await kubectlJson<KubeList<IService>>("get", "services", "-n", ns);
  const clusterIp = new Map(svcs.items.map((s) => [s.metadata!.name!, s]));
  const [outHost, outPort] = OUTSIDE.split(":");
  const by = await podsByService(ns);
  const probes = await Promise.all(
    [...by].flatMap(([src, pods]) =>
      pods.map(async (pod) => {
        const targets: { line: string; host?: string; port?: number; dns?: string }[] = [];
        for (const dst of Object.keys(services)) {
          if (dst === src) continue;
          const s = clusterIp.get(dst)!;
          targets.push({
            line: `${src} -> ${dst}:${(services[dst].port as number | undefined) ?? 8080}/TCP`,
            host: s.spec!.clusterIP!,
            port: s.spec!.ports![0].port,
          });
        }
        targets.push({ line: `${src} -> dns:53/UDP`, dns: `${src}.${ns}.svc.cluster.local` });
        targets.push({ line: `${src} -> outside:${outPort}/TCP`, host: outHost, port: Number(outPort) });
        const out = await kubectl(
          "exec",
          "-n",
          ns,
          pod.metadata!.name!,
          "--",
          "node",
          "-e",
          PROBE,
          JSON.stringify(targets.map(({ host, port, dns }) => ({ host, port, dns }))),
        );
        const seen = JSON.parse(out.trim().split("\n").pop()!) as string[];
        return targets.map((t, i) => ({ line: t.line, seen: seen[i], pod: pod.metadata!.name! }));
      }),
    ),
  );
  return probes.flat();
}

/**
 * What the policies in the namespace allow, by the pure evaluator (components/reachability.ts):
 * the services as their pods are labelled, the DNS server (the node's address, port 53), the
 * outside address.
 */
async function expectedMatrix(ns: string, services: RawServices): Promise<Set<string>> {
  const policies = await kubectlJson<KubeList<INetworkPolicy>>("get", "networkpolicies", "-n", ns);
  const by = await podsByService(ns);
  const [outHost, outPort] = OUTSIDE.split(":");
  const endpoints: Endpoint[] = [
    ...Object.keys(services).map((name) => ({
      name,
      namespace: ns,
      labels: by.get(name)![0].metadata!.labels!,
      ports: [{ port: (services[name].port as number | undefined) ?? 8080, protocol: "TCP", name: "http" }],
    })),
    { name: "dns", ip: process.env.K8S_CHAIN_CLUSTER_NODE_IP!, ports: [{ port: 53, protocol: "UDP" }] },
    { name: "outside", ip: outHost, ports: [{ port: Number(outPort), protocol: "TCP" }] },
  ];
  return new Set(allowedConnections(policies.items as Policy[], endpoints));
}

/**
 * The matrix measured in the pods equals the evaluator's verdict on the policies in the
 * cluster, and that verdict is the call graph: a service reaches its callees, DNS, and what its
 * `egress` names; nothing else. Returns the open rows, for the log.
 */
async function assertMatrix(ns: string, services: RawServices): Promise<string[]> {
  const expected = await expectedMatrix(ns, services);
  const graph = new Set<string>();
  for (const [name, svc] of Object.entries(services)) {
    for (const callee of (svc.calls as string[] | undefined) ?? []) {
      graph.add(`${name} -> ${callee}:${(services[callee].port as number | undefined) ?? 8080}/TCP`);
    }
    graph.add(`${name} -> dns:53/UDP`);
    for (const e of (svc.egress as { cidr: string; port: number }[] | undefined) ?? []) {
      if (e.cidr === `${OUTSIDE.split(":")[0]}/32`) graph.add(`${name} -> outside:${e.port}/TCP`);
    }
  }
  const measured = await measureMatrix(ns, services);
  const wrong = measured.filter((p) => (p.seen === "open") !== expected.has(p.line));
  assert.deepStrictEqual(
    wrong.map((p) => `${p.pod}: ${p.line} ${p.seen} (policies say ${expected.has(p.line) ? "open" : "closed"})`),
    [],
    "the pods reach what the policies say",
  );
  const rows = new Set(measured.map((p) => p.line));
  assert.deepStrictEqual(
    [...expected].filter((l) => rows.has(l)).sort(),
    [...graph].sort(),
    "the policies allow exactly the call graph, DNS and the egress",
  );
  const open = measured.filter((p) => p.seen === "open").length;
  return [
    `${measured.length} connections tried from ${new Set(measured.map((p) => p.pod)).size} pods: ${open} open, ${measured.length - open} refused, as the policies say`,
  ];
}

/** Pulumi's plugins written in Go, which check on the engine every 5 minutes (rpcutil.Healthcheck). */
const GO_PLUGIN = /\/(pulumi-language-nodejs|pulumi-resource-kubernetes|pulumi-resource-docker) /;
const PULUMI_HEALTHCHECK_MS = 5 * 60_000;
/**
 * The one of them that does not exit: pulumi-resource-kubernetes serves through provider.Main of
 * pulumi/pkg v3.215.0, which cancels a shadowed context when the health check fails, so its
 * server never stops. (Later versions moved the cancel into the same scope.) Pulumi's defect,
 * not the stack's: reported, and the process killed by the suite to leave nothing behind.
 */
const NEVER_EXITS = /\/pulumi-resource-kubernetes /;
const pluginsLeft: { procs: { pid: number; cmdline: string }[]; killedAt: number }[] = [];

// At the very end of the suite (a root hook: the other files' scenarios run meanwhile): what a
// SIGKILLed up left has exited by itself within Pulumi's health-check period, but for the one
// known to stay, which is killed here.
after(async function () {
  this.timeout(0);
  for (const { procs, killedAt } of pluginsLeft) {
    const alive = () => procs.filter((p) => fs.existsSync(`/proc/${p.pid}`));
    const deadline = killedAt + PULUMI_HEALTHCHECK_MS + 30_000;
    while (alive().some((p) => !NEVER_EXITS.test(p.cmdline)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
    }
    const left = alive();
    for (const p of left) process.kill(p.pid, "SIGKILL");
    console.log(
      `  ${((Date.now() - killedAt) / 1000).toFixed(0)} s after the SIGKILLed up, of Pulumi's plugins it left ` +
        `(${procs.map((p) => p.cmdline.split(" ")[0].split("/").pop()).join(", ")}) these were still running, now killed: ` +
        `${left.map((p) => p.cmdline.split(" ")[0].split("/").pop()).join(", ") || "none"}`,
    );
    assert.deepStrictEqual(
      left.map((p) => p.cmdline.split(" ")[0].split("/").pop()),
      procs.filter((p) => NEVER_EXITS.test(p.cmdline)).map((p) => p.cmdline.split(" ")[0].split("/").pop()),
      "the plugins a SIGKILLed up left that did not exit within Pulumi's 5-minute health check",
    );
  }
});

describe("two real nodes, NetworkPolicies enforced, and disruptions", function () {
  this.timeout(0);
  const stacks: EngineStack[] = [];
  let stack: EngineStack;
  let services: RawServices;
  const loads: string[] = [];
  const config = () => ({ namespace: NAMESPACE, rolloutTimeoutSeconds: 60, ...buildConfig(), services });
  const up = async (what: string, onSpawn?: (child: ChildProcess) => void): Promise<RunResult> => {
    stack.setConfig(config());
    return stack.pulumiAsync(["up", "--yes", "--skip-preview"], what, onSpawn);
  };
  const upOk = async (what: string): Promise<RunResult> => {
    const r = await up(what);
    assert.strictEqual(r.code, 0, `${what} failed:\n${errorLines(r)}\n${r.stdout.slice(-3000)}`);
    return r;
  };
  /** Runs `f` under a steady load on A's node port (the whole chain); returns the counts. */
  const underLoad = (what: string, f: () => Promise<void>): Promise<LoadResult> => loadWhile(CHAIN_URL, what, f, loads);
  /**
   * No process of this stack's pulumi runs is left (the runs have ended), but for those a
   * SIGKILLed run left to Pulumi's health check (checked at the end of the suite).
   */
  const assertNoOrphans = async (after: string) => {
    const known = new Set(pluginsLeft.flatMap((l) => l.procs.map((p) => p.pid)));
    await eventually(10_000, async () =>
      assert.deepStrictEqual(
        stack
          .processes()
          .filter((p) => !known.has(p.pid))
          .map((p) => `${p.pid} ${p.cmdline}`),
        [],
        `processes left after ${after}`,
      ),
    );
  };

  before(function () {
    if (!cluster.realNode || NODES.length < 2 || !OUTSIDE) {
      console.log(`      NOTE: these scenarios need two real nodes (have: ${NODES.join(", ") || "none"}): skipped`);
      this.skip();
    }
    services = devCatalog();
    stack = new EngineStack(engineBin(), REPO);
    stacks.push(stack);
    stack.init(config());
  });

  after(async function () {
    // A lost node left behind by a failed scenario comes back before the next file's scenarios.
    if (LOST && cluster.realNode) {
      await kubectl("uncordon", LOST).catch(() => undefined);
    }
    console.log("      load runs:");
    for (const l of loads) console.log(`        ${l}`);
    await takeDown(stacks);
  });

  it("the dev catalog comes up on two nodes: each service's two replicas on different nodes", async function () {
    await upOk("up (dev catalog, two nodes)");
    await eventually(15_000, async () => assert.strictEqual((await get(CHAIN_URL)).status, 200));
    const lines = await eventually(15_000, () => assertSpread(NAMESPACE, services));
    for (const l of lines) console.log(`      ${l}`);
  });

  it("NetworkPolicies are enforced: the reachability matrix measured in every pod is the call graph's", async function () {
    const t0 = Date.now();
    const lines = await assertMatrix(NAMESPACE, services);
    for (const l of lines) console.log(`      ${l} (${Date.now() - t0} ms)`);
  });

  it("a calls change (B from C to a new D) in one up under load: 0 failed requests, and the matrix follows", async function () {
    services["service-d"] = { app: "apps/chain-service", port: 8080 };
    services["service-b"].calls = ["service-d"];
    // Four replicas of B: two per node, so the drain below evicts two pods of one service
    // from one node, which its budget (one unavailable at a time) must pace.
    services["service-b"].replicas = 4;
    // B may also reach the outside address: an ipBlock the enforcer must honour for B alone.
    services["service-b"].egress = [{ cidr: `${OUTSIDE.split(":")[0]}/32`, port: Number(OUTSIDE.split(":")[1]) }];
    const res = await underLoad("calls change B: C -> D", async () => {
      await upOk("up (B calls D instead of C)");
    });
    assert.deepStrictEqual(
      res.failures.map((f) => `${f.mode}: ${f.what}`),
      [],
      `failed requests during the calls change: ${describeLoad(res)}`,
    );
    const body = JSON.parse((await get(CHAIN_URL)).body);
    assert.strictEqual(body.downstream[0].downstream[0].service, "service-d");
    for (const l of await assertMatrix(NAMESPACE, services)) console.log(`      ${l}`);
    for (const l of await assertSpread(NAMESPACE, services)) console.log(`      ${l}`);
  });

  it("a drain of a node holding pods of every service honours the PodDisruptionBudgets: 0 failed requests", async function () {
    const before = await podsByService(NAMESPACE);
    for (const [name, pods] of before) {
      assert.ok(
        pods.some((p) => p.spec!.nodeName === LOST),
        `${name} has no pod on ${LOST}`,
      );
    }
    assert.strictEqual(before.get("service-b")!.filter((p) => p.spec!.nodeName === LOST).length, 2);
    const slices = await Watch.start<IEndpointSlice>(
      `/apis/discovery.k8s.io/v1/namespaces/${NAMESPACE}/endpointslices`,
    );
    let drain = "";
    let refused = 0;
    const t0 = Date.now();
    const res = await underLoad(`drain ${LOST}`, async () => {
      const r = await run(path.join(cluster.bin, "kubectl"), [
        "--kubeconfig",
        cluster.kubeconfig,
        "drain",
        LOST,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=180s",
      ]);
      assert.strictEqual(r.code, 0, `kubectl drain failed: ${r.stderr}`);
      drain = r.stdout;
      // kubectl retries an eviction a budget refuses, and says so on stderr.
      refused = r.stderr.split("\n").filter((l) => /disruption budget/.test(l)).length;
    });
    slices.stop();
    console.log(
      `      drain took ${((Date.now() - t0) / 1000).toFixed(1)} s; evictions refused by a budget (and retried): ${refused}`,
    );
    try {
      assert.deepStrictEqual(
        res.failures.map((f) => `${f.mode}: ${f.what}`),
        [],
        describeLoad(res),
      );
      // The budgets held: no Service was ever left without a ready endpoint.
      const ready = new Map<string, Map<string, number>>();
      let least = new Map<string, number>();
      for (const e of slices.events) {
        const svc = e.object.metadata!.labels?.["kubernetes.io/service-name"];
        if (!svc || !(svc in services)) continue;
        const slicesOf = ready.get(svc) ?? new Map<string, number>();
        slicesOf.set(
          e.object.metadata!.name!,
          e.type === "DELETED" ? 0 : (e.object.endpoints ?? []).filter((x) => x.conditions?.ready).length,
        );
        ready.set(svc, slicesOf);
        const total = [...slicesOf.values()].reduce((a, b) => a + b, 0);
        least = least.set(svc, Math.min(least.get(svc) ?? Infinity, total));
      }
      console.log(
        `      fewest ready endpoints during the drain: ${[...least].map(([s, n]) => `${s} ${n}`).join(", ")}`,
      );
      // Each budget allows one pod of its service unavailable at a time: B's second pod on
      // the node is evicted only once the first one's replacement is Ready.
      for (const [name, svc] of Object.entries(services)) {
        const want = ((svc.replicas as number | undefined) ?? 2) - 1;
        assert.ok(
          (least.get(name) ?? 0) >= want,
          `${name} had ${least.get(name)} ready endpoints during the drain (its budget allows no fewer than ${want})`,
        );
      }
      const evicted = drain.split("\n").filter((l) => /evicted/.test(l));
      assert.strictEqual(evicted.length, Object.keys(services).length + 1, `evictions:\n${drain}`);
      const after = await podsByService(NAMESPACE);
      for (const [name, pods] of after) {
        assert.ok(!pods.some((p) => p.spec!.nodeName === LOST), `${name} still has a pod on ${LOST}`);
      }
    } finally {
      await kubectl("uncordon", LOST);
    }
  });

  it("the next release spreads every service over both nodes again", async function () {
    // Kubernetes does not move running pods back after an uncordon; a release does.
    for (const svc of Object.values(services)) svc.env = { ...((svc.env as object) ?? {}), LOG_LEVEL: "warn" };
    await upOk("up (a release of every service)");
    for (const l of await eventually(15_000, () => assertSpread(NAMESPACE, services))) console.log(`      ${l}`);
  });

  it("a node lost abruptly: the chain keeps answering from the other node and is whole again without a hand", async function () {
    const slices = await Watch.start<IEndpointSlice>(
      `/apis/discovery.k8s.io/v1/namespaces/${NAMESPACE}/endpointslices`,
    );
    await forgetUnansweredConnections(30081);
    const loadStart = Date.now();
    const load = new Load(CHAIN_URL, 100).start();
    await new Promise((r) => setTimeout(r, 2000));
    const lostAt = Date.now();
    console.log(`      ${await clusterSh("kill-node", "1")}`);
    // The cluster notices (the node's Ready condition leaves True) ...
    const noticed = await eventually(120_000, async () => {
      assert.ok(!(await nodeReady(LOST)), `${LOST} still Ready`);
      return Date.now();
    });
    // ... and every service is whole again on the nodes left: all its replicas Ready, none on the lost node.
    const whole = await eventually(120_000, async () => {
      const by = await podsByService(NAMESPACE);
      for (const name of Object.keys(services)) {
        assert.ok(!(by.get(name) ?? []).some((p) => p.spec!.nodeName === LOST), `${name} still on ${LOST}`);
      }
      assert.ok(await chainWhole(NAMESPACE, services), "not whole yet");
      return Date.now();
    });
    await new Promise((r) => setTimeout(r, 3000));
    const res = await load.stop();
    slices.stop();
    // When each Service stopped sending to the lost node: its slices' last endpoint there left
    // "ready" (or the slice).
    const outOfService = new Map<string, number>();
    const readyThere = new Map<string, Set<string>>();
    for (const e of slices.events) {
      const svc = e.object.metadata!.labels?.["kubernetes.io/service-name"] ?? "";
      const key = `${svc}/${e.object.metadata!.name}`;
      const there = new Set(
        e.type === "DELETED"
          ? []
          : (e.object.endpoints ?? [])
              .filter((x) => x.nodeName === LOST && x.conditions?.ready)
              .flatMap((x) => x.addresses),
      );
      readyThere.set(key, there);
      const any = [...readyThere].some(([k, v]) => k.startsWith(`${svc}/`) && v.size > 0);
      if (!any && e.at > lostAt && !outOfService.has(svc)) outOfService.set(svc, e.at);
    }
    console.log(
      `      endpoints on ${LOST} out of each Service: ${[...outOfService]
        .map(([svc, at]) => `${svc} +${((at - lostAt) / 1000).toFixed(1)} s`)
        .join(", ")}`,
    );
    const failedFrom = res.failures.length ? res.failures[0].sentMs : 0;
    const failedTo = res.failures.length ? Math.max(...res.failures.map((f) => f.sentMs)) : 0;
    const lostMs = lostAt - loadStart;
    // The failures by when they were sent (5 s after the loss each) and kind.
    const buckets = new Map<string, number>();
    for (const f of res.failures) {
      const from = Math.floor((f.sentMs - lostMs) / 5000) * 5;
      const key = `+${from}-${from + 5} s ${f.mode}: ${f.what.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, "<addr>").slice(0, 60)}`;
      buckets.set(key, (buckets.get(key) ?? 0) + 1);
    }
    for (const [k, n] of buckets) console.log(`        ${n} x ${k}`);
    const line =
      `node lost: ${describeLoad(res)}; failures from +${((failedFrom - lostMs) / 1000).toFixed(1)} s to ` +
      `+${((failedTo - lostMs) / 1000).toFixed(1)} s after the loss; the node NotReady ` +
      `${((noticed - lostAt) / 1000).toFixed(1)} s after it, every service whole again on the other node ` +
      `(all replicas Ready) ${((whole - lostAt) / 1000).toFixed(1)} s after it`;
    loads.push(line);
    console.log(`      ${line}`);
    // The connections the loss left unanswered, each still bound to a lost pod (see the late
    // failures below): forgotten, so that the chain's answer here, and the next scenario's load,
    // go by the rules of now.
    const unanswered = await forgetUnansweredConnections(30081);
    console.log(`      unanswered connections the loss left in conntrack, forgotten now: ${unanswered}`);
    assert.strictEqual((await get(CHAIN_URL)).status, 200);
    // What bounds them: the cluster notices after its grace period (16 s here, plus up to its
    // 5 s monitor period) and takes the lost pods out of every Service's endpoints at once;
    // the stack's 10 s toleration then replaces them on the other node.
    const out = Math.max(...Object.keys(services).map((name) => outOfService.get(name) ?? Infinity));
    assert.ok(
      out - lostAt < 30_000,
      `the lost pods left the endpoints only ${((out - lostAt) / 1000).toFixed(1)} s after`,
    );
    // Once they have (5 s for every proxy to follow), almost every request succeeds. Not all:
    // a few new connections still reach the lost node afterwards, in bursts from about 30 s
    // after the loss. Each reuses the source port of a connection that failed during the loss,
    // and so matches that attempt's conntrack entry, which keeps its NAT to the lost pod for
    // 120 s (see forgetUnansweredConnections: the kernel, and kube-proxy clearing UDP entries
    // only; not the stack). Printed, and held under 1 in 10.
    const after = out + 5000 - loadStart;
    const late = res.failures.filter((f) => f.sentMs > after);
    const sentAfter = Math.round((res.seconds * 1000 - after) / 10);
    console.log(`      failed after the endpoints left (+5 s): ${late.length} of about ${sentAfter}`);
    assert.ok(
      late.length < sentAfter / 10,
      `${late.length} of about ${sentAfter} requests failed after the endpoints left`,
    );
    assert.ok(whole - lostAt < 60_000, `whole again only after ${((whole - lostAt) / 1000).toFixed(1)} s`);
  });

  it("the node comes back: Ready, its old pods cleaned up, and an up finds nothing to change", async function () {
    const t0 = Date.now();
    await clusterSh("restart-node", "1");
    await eventually(60_000, async () => {
      assert.ok(await nodeReady(LOST), `${LOST} not Ready`);
    });
    const ready = Date.now();
    // The pods that were on it when it was lost are gone from the API (none stuck Terminating).
    await eventually(90_000, async () => {
      const pods = await kubectlJson<KubeList<IPod>>("get", "pods", "-n", NAMESPACE);
      const stuck = pods.items.filter((p) => p.spec!.nodeName === LOST);
      assert.deepStrictEqual(
        stuck.map((p) => `${p.metadata!.name} ${p.status?.phase}`),
        [],
        "pods of the lost node",
      );
    });
    console.log(
      `      ${LOST} Ready ${((ready - t0) / 1000).toFixed(1)} s after its restart; its old pods gone ${((Date.now() - t0) / 1000).toFixed(1)} s after`,
    );
    const preview = stack.previewJson("preview (after the node came back)");
    assert.strictEqual(preview.result.code, 0, preview.result.stderr);
    const changed = (preview.json.steps ?? []).filter((s) => s.op !== "same").map((s) => `${s.op} ${s.urn}`);
    assert.deepStrictEqual(changed, [], "the stack still matches the cluster");
    assert.strictEqual((await get(CHAIN_URL)).status, 200);
  });

  it("the API server restarted during an up: the next up converges, nothing orphaned", async function () {
    const images = pushedImages();
    delete services["service-a"].app;
    services["service-a"].image = images["service-a@v2"];
    let restarted = "";
    const r = await up("up (API server restarted during it)", () => {
      setTimeout(() => {
        void clusterSh("restart-apiserver").then((l) => (restarted = l));
      }, 4000);
    });
    await eventually(60_000, async () => assert.ok(restarted, "API server not back"));
    console.log(`      ${restarted}; that up exited ${r.code}${r.code ? `: ${errorLines(r).split("\n")[0]}` : ""}`);
    await assertNoOrphans("the up the API server restart interrupted");
    await upOk("up (after the API server restart)");
    await assertSingleRelease("service-a", images["service-a@v2"]);
    await assertClusterIsState();
    await assertNoOrphans("the next up");
  });

  /**
   * No object orphaned: the stack's Deployments, Services, NetworkPolicies and budgets in the
   * namespace are exactly those its state holds (an interrupted `up` could have left one the
   * state does not know, or lost one it does).
   */
  const assertClusterIsState = async () => {
    const resources = stack.exportState().deployment.resources ?? [];
    for (const [type, plural] of [
      ["kubernetes:apps/v1:Deployment", "deployments"],
      ["kubernetes:core/v1:Service", "services"],
      ["kubernetes:networking.k8s.io/v1:NetworkPolicy", "networkpolicies"],
      ["kubernetes:policy/v1:PodDisruptionBudget", "poddisruptionbudgets"],
    ]) {
      const inState = resources
        .filter((r) => r.type === type)
        .map((r) => (r.outputs?.metadata as { name?: string } | undefined)?.name)
        .sort();
      const inCluster = (await kubectlJson<KubeList<KubeObject>>("get", plural, "-n", NAMESPACE)).items
        .map((o) => o.metadata?.name)
        .sort();
      assert.deepStrictEqual(inCluster, inState, `${plural} in ${NAMESPACE}: the cluster against the stack's state`);
    }
  };

  /** One Deployment for `svc`, on `image`, every pod on it, the chain answering. */
  const assertSingleRelease = async (svc: string, image: string) => {
    const dep = await deploymentOf(NAMESPACE, svc);
    assert.strictEqual(dep.spec!.template.spec!.containers[0].image, image);
    await eventually(60_000, async () => {
      const pods = (await podsByService(NAMESPACE)).get(svc) ?? [];
      assert.deepStrictEqual(
        pods.map((p) => p.spec!.containers[0].image),
        pods.map(() => image),
      );
      assert.ok(await chainWhole(NAMESPACE, services));
    });
    assert.strictEqual((await get(CHAIN_URL)).status, 200);
  };

  for (const signal of ["SIGINT", "SIGKILL"] as const) {
    it(`an up interrupted by ${signal} mid-rollout: the next up converges, nothing orphaned`, async function () {
      const images = pushedImages();
      // service-a moves between its two prebuilt releases: a rollout to interrupt.
      const next =
        services["service-a"].image === images["service-a@v2"] ? images["service-a"] : images["service-a@v2"];
      delete services["service-a"].app;
      services["service-a"].image = next;
      const r = await up(`up (${signal} mid-rollout)`, (child) => {
        // Once service-a's Deployment is being updated (its Rollout is watching), interrupt.
        const watch = setInterval(() => {
          void kubectlJson<
            KubeList<{
              metadata: { generation: number };
              spec: { template: { spec: { containers: { image: string }[] } } };
            }>
          >("get", "deployments", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=service-a").then(
            (d) => {
              if (d.items.some((x) => x.spec.template.spec.containers[0].image === next) && child.exitCode === null) {
                clearInterval(watch);
                // A moment later its Rollout is watching the new pods come up.
                setTimeout(() => child.kill(signal), 1500);
              }
            },
            () => undefined,
          );
        }, 200);
        child.once("exit", () => clearInterval(watch));
      });
      console.log(`      the interrupted up exited ${r.code} after ${r.seconds.toFixed(1)} s`);
      if (signal === "SIGKILL") {
        // The engine could not stop its plugins. The stack's Rollout provider (Node.js) ends
        // itself within a second (exitWithEngine); Pulumi's own Go plugins end at their next
        // engine health check, at most 5 minutes after they started: waited for at the end of
        // the suite (below), not here.
        const killedAt = Date.now();
        const left = await eventually(10_000, async () => {
          const procs = stack.processes();
          assert.deepStrictEqual(
            procs.filter((p) => !GO_PLUGIN.test(p.cmdline)).map((p) => `${p.pid} ${p.cmdline}`),
            [],
            "processes of the SIGKILLed up other than Pulumi's Go plugins",
          );
          return procs;
        });
        console.log(
          `      left for Pulumi's health check: ${left.map((p) => p.cmdline.split(" ")[0].split("/").pop()).join(", ") || "nothing"}`,
        );
        pluginsLeft.push({ procs: left, killedAt });
      } else {
        await assertNoOrphans(`the up ${signal} interrupted`);
      }
      let again = await up(`up (after ${signal})`);
      if (signal === "SIGKILL") {
        // A killed `up` cannot release the stack's lock (the file backend's lock file; Pulumi
        // Cloud's lease): the next one refuses, and `pulumi cancel` is Pulumi's documented way out.
        assert.match(errorLines(again), /the stack is currently locked/);
        console.log(
          `      the next up refused: ${errorLines(again).trim().split("\n")[0].slice(0, 120)}; pulumi cancel, then up`,
        );
        stack.ok(["cancel", "--yes"], "cancel (after SIGKILL)");
        again = await up(`up (after SIGKILL and cancel)`);
      }
      assert.strictEqual(again.code, 0, `the next up after ${signal} did not converge:\n${errorLines(again)}`);
      await assertSingleRelease("service-a", next);
      await assertClusterIsState();
      await assertNoOrphans(`the up after ${signal}`);
    });
  }
});
