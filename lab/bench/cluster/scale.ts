// `npm run bench:scale`: a generated 1,000-service catalog (parallel chains of depth 10) on a
// real control plane with kwok nodes: `pulumi preview`, `pulumi up` and `pulumi destroy` of the
// stack, against Helm v4 installing and uninstalling the same objects (a chart of what the
// stack renders) with `--wait`. Helm applies everything at once; the stack creates each level
// of the call graph after the one it calls is rolled out, so `up` over Helm's install is what
// the ordering and the engine cost at this size.
//
// Run by lab/bench/cluster/run.sh scale.ts (starts and stops the cluster, builds Helm).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { engineBin, EngineStack, REPO } from "../../../tests/engine/harness";
import type { KubeObject } from "../../../tests/support/objects";
import { run, tempDir } from "../../../tests/support/process";
import { peerManifests, toYaml } from "../peers/releases";
import { chains } from "./catalog";
import { cpuByProcess } from "./cpu";

const SERVICES = Number(process.env.BENCH_SERVICES ?? 1000);
const DEPTH = Number(process.env.BENCH_DEPTH ?? 10);
const NAMESPACE = "bench-scale";
const HELM = process.env.K8S_CHAIN_PEERS_HELM ?? "";
/**
 * The file backend writes the whole state after every step (two copies: 6 MB each by 2,400
 * resources), which made a first render of this catalog quadratic: 60% done after 7 min of
 * CPU. PULUMI_SKIP_CHECKPOINTS=true writes it once at the end (an interrupted up then leaves
 * no record of what it created); BENCH_SCALE_CHECKPOINTS=1 measures with the default instead.
 */
const CHECKPOINTS =
  process.env.BENCH_SCALE_CHECKPOINTS === "1"
    ? { skip: "false", what: "a state checkpoint after every step (the default)" }
    : { skip: "true", what: "PULUMI_SKIP_CHECKPOINTS=true (the state written once, at the end)" };
/** Generous: a bound on a stuck run, not a target. */
const TIMEOUT = "30m";

/** CPU seconds by process kind, per step (see cpu.ts); each printed as soon as its step ends. */
const cpu: Record<string, Map<string, number>> = {};
const cpuLine = (by: Map<string, number>) =>
  [...by]
    .filter(([, s]) => s >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([k, s]) => `${k} ${s.toFixed(1)}`)
    .join(", ");

async function timed(what: string, command: string, args: string[]): Promise<number> {
  const sampler = cpuByProcess();
  const r = await run(command, args, { env: process.env });
  cpu[what] = sampler.stop();
  console.log(`[bench:scale] ${what}: CPU s by process: ${cpuLine(cpu[what])}`);
  assert.strictEqual(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  console.log(`[bench:scale] ${what}: ${r.seconds.toFixed(1)} s`);
  return r.seconds;
}

async function main(): Promise<void> {
  assert.ok(
    HELM && fs.existsSync(HELM),
    "K8S_CHAIN_PEERS_HELM must name the helm binary (lab/bench/cluster/run.sh builds it)",
  );
  const engine = engineBin();
  const work = tempDir("bench-scale-");
  // The catalog in a file (servicesFile): as stack config, 1,000 digest-pinned services are
  // more than Pulumi can hand the program (one environment variable, at most 128 KiB).
  const catalogFile = path.join(work, "catalog.json");
  fs.writeFileSync(catalogFile, JSON.stringify(chains(SERVICES, DEPTH)));
  const config = { namespace: NAMESPACE, rolloutTimeoutSeconds: 600, servicesFile: catalogFile };
  const secs: Record<string, number> = {};

  // The same objects for Helm: what the stack renders (render mode: no cluster, no watch).
  const render = new EngineStack(engine, REPO);
  render.env.PULUMI_SKIP_CHECKPOINTS = CHECKPOINTS.skip;
  let objects: KubeObject[];
  try {
    delete render.env.KUBECONFIG;
    render.init({ ...config, renderDir: render.renderDir });
    const sampler = cpuByProcess();
    const r = await render.pulumiAsync(["up", "--yes", "--skip-preview"], "render");
    cpu.render = sampler.stop();
    assert.strictEqual(r.code, 0, r.stdout + r.stderr);
    secs.render = r.seconds;
    objects = peerManifests(render.rendered().map((o) => o.obj as KubeObject));
  } finally {
    render.dispose();
  }
  const chart = path.join(work, "chart");
  fs.mkdirSync(path.join(chart, "templates"), { recursive: true });
  fs.writeFileSync(path.join(chart, "Chart.yaml"), "apiVersion: v2\nname: scale\nversion: 0.1.0\n");
  fs.writeFileSync(path.join(chart, "templates", "all.yaml"), toYaml(objects));
  const kinds = new Map<string, number>();
  for (const o of objects) kinds.set(o.kind, (kinds.get(o.kind) ?? 0) + 1);
  console.log(
    `[bench:scale] ${SERVICES} services, depth ${DEPTH}: ${objects.length} objects (${[...kinds].map(([k, n]) => `${n} ${k}`).join(", ")}); render ${secs.render.toFixed(1)} s`,
  );

  const stack = new EngineStack(engine, REPO);
  stack.env.PULUMI_SKIP_CHECKPOINTS = CHECKPOINTS.skip;
  try {
    stack.init(config);
    for (const [key, args] of [
      ["preview", ["preview"]],
      ["up", ["up", "--yes", "--skip-preview"]],
      ["destroy", ["destroy", "--yes", "--skip-preview"]],
    ] as const) {
      const sampler = cpuByProcess();
      const r = await stack.pulumiAsync([...args], key);
      cpu[`pulumi ${key}`] = sampler.stop();
      console.log(`[bench:scale] pulumi ${key}: CPU s by process: ${cpuLine(cpu[`pulumi ${key}`])}`);
      assert.strictEqual(r.code, 0, `${key} failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
      secs[key] = r.seconds;
      console.log(`[bench:scale] pulumi ${key}: ${r.seconds.toFixed(1)} s`);
    }
  } finally {
    stack.dispose();
  }

  // Helm's client sends 5 requests a second after a burst of 100 unless told otherwise
  // (`--qps`): BENCH_SCALE_HELM_ARGS="--qps=100" measures a tuned Helm.
  const extra = (process.env.BENCH_SCALE_HELM_ARGS ?? "").split(" ").filter(Boolean);
  const helmArgs = ["--namespace", "default", "--wait", "--timeout", TIMEOUT, ...extra];
  secs.helmInstall = await timed("helm install --wait", HELM, ["install", "scale", chart, ...helmArgs]);
  secs.helmUninstall = await timed("helm uninstall --wait", HELM, ["uninstall", "scale", ...helmArgs]);
  fs.rmSync(work, { recursive: true, force: true });

  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  console.log(
    `\nbench:scale, ${new Date().toISOString()}: ${SERVICES} services in chains of depth ${DEPTH} ` +
      `(${objects.length} objects) on kwok nodes; one run; the engine with ${CHECKPOINTS.what}\n`,
  );
  console.log("| step | pulumi (s) | helm (s) | pulumi / helm | target |");
  console.log("|---|---:|---:|---:|---|");
  console.log(`| preview | ${secs.preview.toFixed(1)} | | | under 60 s: ${secs.preview < 60 ? "met" : "MISSED"} |`);
  console.log(
    `| up / install --wait | ${secs.up.toFixed(1)} | ${secs.helmInstall.toFixed(1)} | ${ratio(secs.up, secs.helmInstall)} | ` +
      `within 2x: ${secs.up <= 2 * secs.helmInstall ? "met" : "MISSED"} |`,
  );
  console.log(
    `| destroy / uninstall --wait | ${secs.destroy.toFixed(1)} | ${secs.helmUninstall.toFixed(1)} | ${ratio(secs.destroy, secs.helmUninstall)} | |`,
  );
  console.log(`| render (the program and engine, no cluster) | ${secs.render.toFixed(1)} | | | |`);
  const procs = [...new Set(Object.values(cpu).flatMap((m) => [...m.keys()]))];
  console.log("\nCPU seconds by process during each step (2 cores; sampled from /proc every 500 ms):\n");
  console.log(`| step | ${procs.join(" | ")} |`);
  console.log(`|---|${procs.map(() => "---:").join("|")}|`);
  for (const [step, by] of Object.entries(cpu)) {
    console.log(`| ${step} | ${procs.map((k) => (by.get(k) ?? 0).toFixed(1)).join(" | ")} |`);
  }
  console.log(
    `\nwhat the ordering and the engine add over Helm's install: ${(secs.up - secs.helmInstall).toFixed(1)} s, ` +
      `${((secs.up - secs.helmInstall) / DEPTH).toFixed(1)} s per call level`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
