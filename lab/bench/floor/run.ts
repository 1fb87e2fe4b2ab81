// `npm run bench:floor`: what a `pulumi up` of the stack costs before it changes anything,
// against the smallest Pulumi program on the same engine and cluster, in one run (the cluster
// suite's cluster, like bench:peers). Interleaved, BENCH_FLOOR_RUNS rounds (4), each:
//   - a no-change `up` of the dev catalog (prebuilt images, as bench:peers deploys it);
//   - an image update of service-b (v1 <-> v2), `up` until its new pods are Ready;
//   - a no-change `up` and a one-change `up` of a one-ConfigMap program (lab/bench/baseline.ts).
// Prints the medians and ours over the baseline. No target: the figure explains bench:peers'
// rows where Helm and kubectl win on time (docs/benchmarks.md). BENCH_FLOOR_LOG=<dir>: one more
// no-change `up` of each, unmeasured, with the engine's log (`-v=9`) written there, to read
// where the seconds go.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EngineStack, engineBin, REPO } from "../../../tests/engine/harness";
import { devCatalog, pushedImages } from "../../../tests/cluster/harness";
import { baselineProgram } from "../baseline";
import { releases } from "../peers/releases";
import { median } from "../stats";

const RUNS = Number(process.env.BENCH_FLOOR_RUNS ?? 4);

async function main(): Promise<void> {
  const engine = engineBin();
  const pushed = pushedImages();
  const rels = releases(devCatalog(), { v1: pushed["service-a"], v2: pushed["service-a@v2"], missing: "" });
  const [first, imageB] = [rels.find((r) => r.key === "first")!, rels.find((r) => r.key === "imageB")!];
  const dev = new EngineStack(engine, REPO);
  const base = new EngineStack(engine, baselineProgram(false));
  const times: Record<string, number[]> = {};
  const up = async (stack: EngineStack, what: string, measured = true): Promise<void> => {
    const r = await stack.pulumiAsync(["up", "--yes", "--skip-preview"], what);
    if (r.code !== 0) throw new Error(`${what}: pulumi up exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    if (measured) (times[what] ??= []).push(r.seconds);
    console.log(`[bench:floor] ${what}: ${r.seconds.toFixed(2)} s`);
  };
  try {
    dev.init(first.config);
    base.init({ value: "a" });
    // Unmeasured: the first deploys (and the images' pulls).
    await up(dev, "dev catalog, first up", false);
    await up(base, "one ConfigMap, first up", false);
    for (let i = 0; i < RUNS; i++) {
      await up(dev, "dev catalog, no change");
      await up(base, "one ConfigMap, no change");
      base.setConfig({ value: `v${i}` });
      await up(base, "one ConfigMap, one change");
      dev.setConfig(i % 2 === 0 ? imageB.config : first.config);
      await up(dev, "dev catalog, image update of service-b");
    }
    const logDir = process.env.BENCH_FLOOR_LOG;
    if (logDir) {
      fs.mkdirSync(logDir, { recursive: true });
      for (const [stack, file] of [
        [dev, "dev-no-change.log"],
        [base, "one-configmap-no-change.log"],
      ] as const) {
        const r = await stack.pulumiAsync(
          ["up", "--yes", "--skip-preview", "--logflow", "--logtostderr", "-v=9"],
          file,
        );
        fs.writeFileSync(path.join(logDir, file), r.stderr);
      }
      console.log(`[bench:floor] engine logs of a no-change up each in ${logDir}`);
    }
  } finally {
    for (const stack of [dev, base]) {
      await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy");
      stack.dispose();
    }
  }
  const m = (what: string) => median(times[what]);
  const fmt = (what: string) =>
    `${what}: median ${m(what).toFixed(2)} s of ${RUNS} (${times[what].map((x) => x.toFixed(2)).join(", ")})`;
  console.log(
    `\nbench:floor, ${new Date().toISOString()}, ${os.cpus().length} cores, load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  for (const what of Object.keys(times)) console.log(fmt(what));
  const ratio = m("dev catalog, no change") / m("one ConfigMap, no change");
  console.log(
    `no-change up, dev catalog over one ConfigMap: ${ratio.toFixed(2)}x (+${(m("dev catalog, no change") - m("one ConfigMap, no change")).toFixed(2)} s)`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
