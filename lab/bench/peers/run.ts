// `npm run bench:peers`: the chain deployed three ways on the same real cluster, in one run:
// `pulumi up` (this program, the real engine), Helm v4 (a chart made of the stack's rendered
// objects, `upgrade --install --wait --rollback-on-failure`) and `kubectl apply` +
// `kubectl rollout status` (the seed's pipeline), through the same releases (releases.ts),
// each under a steady load on A's node port, one tool after the other (the pinned node ports
// are cluster-wide). Prints one table: seconds, failed requests, and what each tool left.
//
// Run by lab/bench/peers/run.sh, which builds Helm and runs this on the cluster suite's cluster
// (lab/scripts/test-cluster.sh with K8S_CHAIN_CLUSTER_MAIN): real nodes, the suite's registry
// and images.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { EngineStack, engineBin, REPO } from "../../../tests/engine/harness";
import {
  available,
  CHAIN,
  cluster,
  deploymentOf,
  devCatalog,
  errorLines,
  eventually,
  forgetUnansweredConnections,
  get,
  kubectl,
  kubectlJson,
  kubectlStdin,
  loadWhile,
  pushedImages,
} from "../../../tests/cluster/harness";
import type { KubeList, KubeObject } from "../../../tests/support/objects";
import type { LoadResult } from "../../../tests/support/load";
import { run } from "../../../tests/support/process";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IPod } from "kubernetes-models/v1/Pod";
import type { IContainer } from "kubernetes-models/v1/Container";
import {
  combine,
  type Cell,
  labelsInSelectors,
  MISSING_ROUTE,
  MOVED_NAMESPACE,
  NAMESPACE,
  peerManifests,
  type Release,
  type ReleaseKey,
  releases,
  table,
  TIMEOUT_S,
  toYaml,
  type Tool,
  TOOLS,
} from "./releases";

const HELM = process.env.K8S_CHAIN_PEERS_HELM ?? "";
/** What one tool command (or a tool's sequence of them) did. */
interface Outcome {
  ok: boolean;
  seconds: number;
  error: string;
}

/** A tool taking the chain from one release to the next, and away at the end. */
interface Deployer {
  tool: Tool;
  apply(rel: Release): Promise<Outcome>;
  /**
   * The manual step a user of this tool takes when `apply` of `rel` is refused, then `rel`
   * again; undefined when the tool needs none.
   */
  fix?(rel: Release, before: Release): Promise<Outcome & { step: string }>;
  teardown(last: Release): Promise<Outcome>;
}

const kubeEnv = { ...process.env, KUBECONFIG: cluster.kubeconfig };

/**
 * The line of a failed command's output that says what failed, shortened for the table: the
 * last error line (kubectl and Helm end with theirs), or the first (Pulumi's first names the
 * resource and the reason; its last is the summary "update failed").
 */
function errorOf(output: string, which: "first" | "last" = "last"): string {
  const lines = output.trim().split("\n");
  const errors = lines.filter((l) => /error/i.test(l));
  const line = (which === "first" ? errors[0] : errors[errors.length - 1]) ?? lines[lines.length - 1] ?? "";
  const said = line.replace(/^.*?\berror:\s*/i, "").trim();
  return said.length > 140 ? `${said.slice(0, 140)}...` : said;
}

async function timed(command: string, args: string[]): Promise<Outcome> {
  const r = await run(command, args, { env: kubeEnv });
  return { ok: r.code === 0, seconds: r.seconds, error: r.code === 0 ? "" : errorOf(r.stderr || r.stdout) };
}

/** Runs steps one after another until one fails; the seconds add up. */
async function sequence(steps: Array<() => Promise<Outcome>>): Promise<Outcome> {
  let seconds = 0;
  for (const s of steps) {
    const o = await s();
    seconds += o.seconds;
    if (!o.ok) return { ...o, seconds };
  }
  return { ok: true, seconds, error: "" };
}

const kubectlBin = () => path.join(cluster.bin, "kubectl");

/** The pulumi program itself, through the real engine. */
function pulumiDeployer(stack: EngineStack): Deployer {
  const up = async (rel: Release): Promise<Outcome> => {
    stack.setConfig(rel.config);
    const r = await stack.pulumiAsync(["up", "--yes", "--skip-preview"], `up (${rel.key})`);
    return { ok: r.code === 0, seconds: r.seconds, error: r.code === 0 ? "" : errorOf(errorLines(r), "first") };
  };
  return {
    tool: "pulumi",
    apply: up,
    teardown: async () => {
      const r = await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy");
      return { ok: r.code === 0, seconds: r.seconds, error: errorLines(r) };
    },
  };
}

/** The manifests of each release, as a file a peer applies. */
type Files = Record<ReleaseKey, string>;

function kubectlDeployer(files: Files, manifests: Record<ReleaseKey, KubeObject[]>): Deployer {
  const rollouts = (rel: Release) =>
    manifests[rel.key]
      .filter((o) => o.kind === "Deployment")
      .map(
        (d) => () =>
          timed(kubectlBin(), [
            "rollout",
            "status",
            `deployment/${d.metadata!.name}`,
            "-n",
            d.metadata!.namespace!,
            `--timeout=${TIMEOUT_S}s`,
          ]),
      );
  const apply = (rel: Release) =>
    sequence([() => timed(kubectlBin(), ["apply", "-f", files[rel.key]]), ...rollouts(rel)]);
  return {
    tool: "kubectl",
    apply,
    fix: (rel, before) => {
      if (rel.key === "labels") {
        const del = deleteDeployment(manifests, rel);
        return manualStep(`${del.what}, apply again`, del.run, () => apply(rel));
      }
      // A namespace move: the old namespace holds the pinned node ports the new one needs.
      const ns = before.config.namespace;
      return manualStep(
        `kubectl delete namespace ${ns}, apply again`,
        () => timed(kubectlBin(), ["delete", "namespace", ns, "--wait=true"]),
        () => apply(rel),
      );
    },
    teardown: (last) => timed(kubectlBin(), ["delete", "-f", files[last.key], "--wait=true", "--ignore-not-found"]),
  };
}

function helmDeployer(chartOf: (rel: Release) => string, manifests: Record<ReleaseKey, KubeObject[]>): Deployer {
  const upgrade = (rel: Release) =>
    timed(HELM, [
      "upgrade",
      "--install",
      "chain",
      chartOf(rel),
      "--namespace",
      "default",
      "--wait",
      "--rollback-on-failure",
      "--timeout",
      `${TIMEOUT_S}s`,
    ]);
  const uninstall = () =>
    timed(HELM, ["uninstall", "chain", "--namespace", "default", "--wait", "--timeout", `${TIMEOUT_S}s`]);
  return {
    tool: "helm",
    apply: upgrade,
    fix: (rel) => {
      if (rel.key === "labels") {
        const del = deleteDeployment(manifests, rel);
        return manualStep(`${del.what}, upgrade again`, del.run, () => upgrade(rel));
      }
      return manualStep("helm uninstall, upgrade --install again", uninstall, () => upgrade(rel));
    },
    teardown: () => uninstall(),
  };
}

/** A manual step, then the release again: the release's outcome, with the seconds of both. */
async function manualStep(
  step: string,
  first: () => Promise<Outcome>,
  again: () => Promise<Outcome>,
): Promise<Outcome & { step: string }> {
  const done = await first();
  const retried = await again();
  return { ...retried, seconds: done.seconds + retried.seconds, step };
}

/** The manual fix for service-c's refused selector change: delete its Deployment (its pods go with it). */
function deleteDeployment(
  manifests: Record<ReleaseKey, KubeObject[]>,
  rel: Release,
): { what: string; run: () => Promise<Outcome> } {
  const d = deploymentName(manifests[rel.key], "service-c");
  return {
    what: `kubectl delete deployment ${d}`,
    run: () => timed(kubectlBin(), ["delete", "deployment", d, "-n", NAMESPACE, "--wait=true"]),
  };
}

function deploymentName(objs: KubeObject[], svc: string): string {
  const d = objs.find((o) => o.kind === "Deployment" && o.metadata?.labels?.["app.kubernetes.io/name"] === svc);
  assert.ok(d, `no Deployment of ${svc} in the manifests`);
  return d.metadata!.name!;
}

/** GET A's node port until the whole chain answers; the seconds it took. */
async function chainAnswers(port: number, withinMs: number): Promise<number> {
  const t0 = Date.now();
  await eventually(withinMs, async () => {
    const res = await get(`http://127.0.0.1:${port}/`, 2000);
    assert.strictEqual(res.status, 200, res.body);
    assert.deepStrictEqual(JSON.parse(res.body), CHAIN);
  });
  return (Date.now() - t0) / 1000;
}

/** Every Deployment of the release available, its old pods gone, and the chain answering: the start of a row. */
async function settled(rel: Release): Promise<void> {
  const ns = rel.config.namespace;
  const port = rel.config.services["service-a"].nodePort as number;
  await eventually(120_000, async () => {
    const list = await kubectlJson<KubeList<IDeployment>>("get", "deployments", "-n", ns);
    assert.strictEqual(list.items.length, Object.keys(rel.config.services).length, "Deployments in the namespace");
    for (const d of list.items) assert.ok(available(d), `${d.metadata!.name}: ${JSON.stringify(d.status)}`);
    const pods = await kubectlJson<KubeList<IPod>>("get", "pods", "-n", ns);
    const want = list.items.reduce((n, d) => n + (d.spec!.replicas ?? 1), 0);
    assert.strictEqual(pods.items.length, want, "pods (terminating ones gone)");
  });
  await chainAnswers(port, 30_000);
}

/**
 * service-c's state after a failed release: rolled back or half-rolled, and its pods. `bad`
 * tells the failed release's container from the good one's; `what` names the failed release
 * ("a missing image").
 */
async function stateOf(ns: string, svc: string, bad: (c: IContainer) => boolean, what: string): Promise<string> {
  const d = await deploymentOf(ns, svc);
  const onBad = bad(d.spec!.template.spec!.containers[0]);
  const pods = await kubectlJson<KubeList<IPod>>("get", "pods", "-n", ns, "-l", `app.kubernetes.io/name=${svc}`);
  const ready = (p: IPod) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
  const good = pods.items.filter((p) => !bad(p.spec!.containers[0]) && ready(p)).length;
  const badPods = pods.items.filter((p) => bad(p.spec!.containers[0])).length;
  return `${onBad ? `left half-rolled (template on ${what})` : "rolled back"}, ${good} good pods ready, ${badPods} on ${what}`;
}

/**
 * Pulls `images` onto every real node before any tool runs (a pod per node and image that
 * exits at once), so no tool's first deploy pays a pull the others then find cached.
 */
async function prePull(images: string[]): Promise<void> {
  const nodes = (process.env.K8S_CHAIN_CLUSTER_NODES ?? "").split(" ").filter(Boolean);
  assert.ok(nodes.length > 0, "K8S_CHAIN_CLUSTER_NODES names no node");
  const pods = nodes.flatMap((node, i) =>
    images.map((image, j) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `bench-peers-pull-${i}-${j}`, namespace: "default" },
      spec: {
        nodeName: node,
        restartPolicy: "Never",
        securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "pull",
            image,
            command: ["node", "-e", "0"],
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
          },
        ],
      },
    })),
  );
  await kubectlStdin(pods.map((p) => JSON.stringify(p)).join("\n"), "apply", "-f", "-");
  try {
    for (const p of pods) {
      await eventually(120_000, async () => {
        const got = await kubectlJson<IPod>("get", "pod", p.metadata.name, "-n", "default");
        assert.strictEqual(got.status?.phase, "Succeeded", `${p.metadata.name}: ${got.status?.phase}`);
      });
    }
  } finally {
    await kubectl("delete", "pods", "-n", "default", ...pods.map((p) => p.metadata.name), "--wait=true");
  }
  console.log(`[bench:peers] pulled ${images.length} images onto ${nodes.join(", ")}`);
}

const failedOf = (r: LoadResult) => `${r.failures.length}/${r.sent}`;

/** One tool through every release; a cell per row. */
async function scenario(
  d: Deployer,
  rels: Record<ReleaseKey, Release>,
  missing: string,
  log: string[],
): Promise<Record<string, Cell>> {
  const cells: Record<string, Cell> = {};
  const say = (row: string, c: Cell) => {
    cells[row] = c;
    console.log(`[bench:peers] ${d.tool}: ${row}: ${JSON.stringify(c)}`);
  };
  const load = (what: string, f: () => Promise<void>, port = 30081) =>
    loadWhile(`http://127.0.0.1:${port}/`, `${d.tool}: ${what}`, f, log);

  // 1. First deploy: until A's `/` returns the whole chain. The tool before may have left
  // unanswered connections to the node ports (its failed rows): their source ports would come
  // back in this poll and go to its gone pods (see forgetUnansweredConnections), as they did
  // once: kubectl's first deploy, right after Helm's namespace move, took 34.8 s instead of 5.
  for (const port of [30080, 30081]) await forgetUnansweredConnections(port);
  const t0 = Date.now();
  const first = await d.apply(rels.first);
  assert.ok(first.ok, `${d.tool}: first deploy failed: ${first.error}`);
  await chainAnswers(30081, 60_000);
  say("first deploy, until A answers with the whole chain", { seconds: (Date.now() - t0) / 1000, note: "" });
  await settled(rels.first);

  // 2. An image update of service-b under load.
  let o!: Outcome;
  let res = await load("image update", async () => {
    o = await d.apply(rels.imageB);
  });
  assert.ok(o.ok, `${d.tool}: image update failed: ${o.error}`);
  say("image update of service-b", { seconds: o.seconds, failed: failedOf(res), note: "" });
  await settled(rels.imageB);

  // 3. Releases that never become ready, each followed by the next good one: an image the
  // registry does not have, and pods that run but never become Ready (a health route the app
  // does not have). `bad` tells the failed release's container from the good one's.
  const failedThenGood = async (
    what: string,
    bad: Release,
    good: Release,
    isBad: (c: IContainer) => boolean,
    goodRow: string,
  ): Promise<void> => {
    res = await load(`release on ${what}`, async () => {
      o = await d.apply(bad);
    });
    assert.ok(!o.ok, `${d.tool}: a release on ${what} succeeded`);
    const state = await stateOf(NAMESPACE, "service-c", isBad, what);
    say(`release on ${what}: until the tool reports it`, {
      seconds: o.seconds,
      failed: failedOf(res),
      note: `${state}; said "${o.error}"`,
    });
    res = await load(goodRow, async () => {
      o = await d.apply(good);
    });
    assert.ok(o.ok, `${d.tool}: the good release after ${what} failed: ${o.error}`);
    say(goodRow, { seconds: o.seconds, failed: failedOf(res), note: "" });
    await settled(good);
  };
  await failedThenGood(
    "a missing image",
    rels.badC,
    rels.goodC,
    (c) => c.image === missing,
    "the next good release (service-c v2)",
  );
  await failedThenGood(
    "a missing health route",
    rels.badRoute,
    rels.goodRoute,
    (c) => c.readinessProbe?.httpGet?.path === MISSING_ROUTE,
    "the next good release (health route back)",
  );

  // 4 and 5. Changes that reach immutable fields or cluster-wide ports.
  for (const key of ["labels", "moved"] as const) {
    const rel = rels[key];
    const before = key === "labels" ? rels.goodRoute : rels.labels;
    let note = "";
    let seconds = 0;
    res = await load(rel.what, async () => {
      o = await d.apply(rel);
      seconds = o.seconds;
      if (o.ok) {
        note = "one step";
        return;
      }
      assert.ok(d.fix, `${d.tool}: ${rel.what} failed: ${o.error}`);
      const refused = o.error;
      const f = await d.fix(rel, before);
      seconds += f.seconds;
      assert.ok(f.ok, `${d.tool}: ${rel.what} failed after the manual step (${f.step}): ${f.error}`);
      note = `refused ("${refused}"); manual step: ${f.step}`;
    });
    say(key === "labels" ? "label edit (peers: into the selectors)" : "namespace move", {
      seconds,
      failed: failedOf(res),
      note,
    });
    await settled(rel);
  }

  // 6. Two pinned node ports swapped: the load on 30080, A's port after the swap.
  res = await load(
    "node port swap",
    async () => {
      o = await d.apply(rels.swapped);
    },
    30081,
  );
  assert.ok(o.ok, `${d.tool}: the node port swap failed: ${o.error}`);
  say("swap of two pinned node ports", { seconds: o.seconds, failed: failedOf(res), note: "one step" });
  await settled(rels.swapped);

  // 7. Teardown: the tool's command, and until the namespace is gone.
  const t1 = Date.now();
  o = await d.teardown(rels.swapped);
  assert.ok(o.ok, `${d.tool}: teardown failed: ${o.error}`);
  await eventually(120_000, () => assert.rejects(kubectl("get", "namespace", MOVED_NAMESPACE), /NotFound/));
  say("teardown", { seconds: o.seconds, note: `namespace gone after ${((Date.now() - t1) / 1000).toFixed(1)} s` });
  return cells;
}

async function main(): Promise<void> {
  assert.ok(
    HELM && fs.existsSync(HELM),
    "K8S_CHAIN_PEERS_HELM must name the helm binary (lab/bench/peers/run.sh builds it)",
  );
  assert.ok(cluster.realNode, "bench:peers needs the real nodes (pods that serve)");
  const pushed = pushedImages();
  const images = {
    v1: pushed["service-a"],
    v2: pushed["service-a@v2"],
    missing: pushed["service-a"].replace(/@sha256:[0-9a-f]{64}$/, `@sha256:${"0".repeat(64)}`),
  };
  const rels = releases(devCatalog(), images);
  const byKey = Object.fromEntries(rels.map((r) => [r.key, r])) as Record<ReleaseKey, Release>;
  const engine = engineBin();
  const work = fs.mkdtempSync(path.join(process.env.TMPDIR ?? "/tmp", "bench-peers-"));

  // The peers' manifests: what the stack renders for each release (render mode, no cluster).
  const render = new EngineStack(engine, REPO);
  // Render mode refuses a kubeconfig, and the provider would take the suite's from the env.
  delete render.env.KUBECONFIG;
  const manifests = {} as Record<ReleaseKey, KubeObject[]>;
  const files = {} as Files;
  try {
    render.init({ ...byKey.first.config, renderDir: render.renderDir });
    for (const rel of rels) {
      render.setConfig({ ...rel.config, renderDir: render.renderDir });
      render.ok(["up", "--yes", "--skip-preview"], `render (${rel.key})`);
      let objs = peerManifests(render.rendered().map((r) => r.obj as KubeObject));
      for (const o of objs) {
        if (o.kind !== "Namespace") assert.strictEqual(o.metadata!.namespace, rel.config.namespace, o.metadata!.name);
      }
      if (rel.key === "labels") objs = labelsInSelectors(objs, "service-c", { tier: "backend" });
      manifests[rel.key] = objs;
      files[rel.key] = path.join(work, `${rel.key}.yaml`);
      fs.writeFileSync(files[rel.key], toYaml(objs));
    }
  } finally {
    render.dispose();
  }
  console.log(
    `[bench:peers] rendered ${rels.length} releases: ${manifests.first.length} objects in the first (${work})`,
  );

  const chartOf = (rel: Release): string => {
    const dir = path.join(work, `chart-${rel.key}`);
    fs.mkdirSync(path.join(dir, "templates"), { recursive: true });
    fs.writeFileSync(path.join(dir, "Chart.yaml"), "apiVersion: v2\nname: chain\nversion: 0.1.0\n");
    fs.writeFileSync(path.join(dir, "templates", "chain.yaml"), fs.readFileSync(files[rel.key], "utf8"));
    return dir;
  };

  await prePull([images.v1, images.v2]);
  const which = (process.env.BENCH_PEERS_TOOLS ?? TOOLS.join(",")).split(",") as Tool[];
  const rounds = Number(process.env.BENCH_PEERS_ROUNDS ?? 1);
  // Per tool, one map of cells per round; the tools take turns within a round.
  const results: Partial<Record<Tool, Array<Record<string, Cell>>>> = {};
  const log: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const tool of which) {
      console.log(`[bench:peers] round ${round} of ${rounds}: ${tool}`);
      const stack = new EngineStack(engine, REPO);
      try {
        let d: Deployer;
        if (tool === "pulumi") {
          stack.init(byKey.first.config);
          d = pulumiDeployer(stack);
        } else if (tool === "helm") {
          d = helmDeployer(chartOf, manifests);
        } else {
          d = kubectlDeployer(files, manifests);
        }
        (results[tool] ??= []).push(await scenario(d, byKey, images.missing, log));
      } catch (e) {
        console.log(`[bench:peers] ${tool}: FAILED: ${(e as Error).message}`);
        // Whatever the failed tool left must not meet the next one (pinned node ports).
        await run(HELM, ["uninstall", "chain", "--namespace", "default", "--wait"], { env: kubeEnv });
        if (tool === "pulumi") await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy (cleanup)");
        for (const ns of [NAMESPACE, MOVED_NAMESPACE]) {
          await run(kubectlBin(), ["delete", "namespace", ns, "--ignore-not-found", "--wait=true"], { env: kubeEnv });
        }
        process.exitCode = 1;
      } finally {
        stack.dispose();
      }
    }
  }

  const rows = Object.keys(results.pulumi?.[0] ?? results.helm?.[0] ?? results.kubectl?.[0] ?? {});
  console.log("\nload runs:\n" + log.map((l) => `  ${l}`).join("\n"));
  console.log(
    `\nbench:peers, ${new Date().toISOString()}, the same objects three ways on one cluster (2 real nodes), ` +
      `load 100 req/s on A's node port; ${rounds === 1 ? "one round" : `median seconds of ${rounds} rounds, failed requests summed, the last round's notes`}:\n`,
  );
  console.log(
    table(
      rows.map((row) => ({ row, cells: Object.fromEntries(which.map((t) => [t, combine(results[t] ?? [], row)])) })),
    ),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
