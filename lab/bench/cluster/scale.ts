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

const SERVICES = Number(process.env.BENCH_SERVICES ?? 1000);
const DEPTH = Number(process.env.BENCH_DEPTH ?? 10);
const NAMESPACE = "bench-scale";
const HELM = process.env.K8S_CHAIN_PEERS_HELM ?? "";
/** Generous: a bound on a stuck run, not a target. */
const TIMEOUT = "30m";

async function timed(what: string, command: string, args: string[]): Promise<number> {
  const r = await run(command, args, { env: process.env });
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
  const config = { namespace: NAMESPACE, rolloutTimeoutSeconds: 600, services: chains(SERVICES, DEPTH) };
  const work = tempDir("bench-scale-");
  const secs: Record<string, number> = {};

  // The same objects for Helm: what the stack renders (render mode: no cluster, no watch).
  const render = new EngineStack(engine, REPO);
  let objects: KubeObject[];
  try {
    delete render.env.KUBECONFIG;
    render.init({ ...config, renderDir: render.renderDir });
    const r = await render.pulumiAsync(["up", "--yes", "--skip-preview"], "render");
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
  try {
    stack.init(config);
    for (const [key, args] of [
      ["preview", ["preview"]],
      ["up", ["up", "--yes", "--skip-preview"]],
      ["destroy", ["destroy", "--yes", "--skip-preview"]],
    ] as const) {
      const r = await stack.pulumiAsync([...args], key);
      assert.strictEqual(r.code, 0, `${key} failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
      secs[key] = r.seconds;
      console.log(`[bench:scale] pulumi ${key}: ${r.seconds.toFixed(1)} s`);
    }
  } finally {
    stack.dispose();
  }

  const helmArgs = ["--namespace", "default", "--wait", "--timeout", TIMEOUT];
  secs.helmInstall = await timed("helm install --wait", HELM, ["install", "scale", chart, ...helmArgs]);
  secs.helmUninstall = await timed("helm uninstall --wait", HELM, ["uninstall", "scale", ...helmArgs]);
  fs.rmSync(work, { recursive: true, force: true });

  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  console.log(
    `\nbench:scale, ${new Date().toISOString()}: ${SERVICES} services in chains of depth ${DEPTH} ` +
      `(${objects.length} objects) on kwok nodes; one run\n`,
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
  console.log(
    `\nwhat the ordering and the engine add over Helm's install: ${(secs.up - secs.helmInstall).toFixed(1)} s, ` +
      `${((secs.up - secs.helmInstall) / DEPTH).toFixed(1)} s per call level`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
