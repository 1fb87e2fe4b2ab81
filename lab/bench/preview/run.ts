// `npm run bench:preview`: `pulumi preview` of the dev catalog next to `pulumi preview` of a
// one-ConfigMap TypeScript program, on the same engine (lab/scripts/engine.sh), in one run:
// interleaved, median of 3 each (BENCH_PREVIEW_RUNS), printing both and the ratio (target 1.3x).
//
// Both programs run in render mode (the kubernetes provider writes YAML to a folder, no
// cluster) with the same Pulumi.yaml runtime options as this project, so the ratio is what the
// program itself costs. The dev catalog's services use pinned prebuilt `image:` references
// instead of `app: apps/chain-service`: a stack with app folders needs the docker provider
// (lab/scripts/docker-provider.sh), and a build would be measured with the program.
import * as fs from "fs";
import * as os from "os";
import { devServices, EngineStack, engineBin, REPO } from "../../../tests/engine/harness";
import { baselineProgram } from "../baseline";
import { median } from "../stats";

const RUNS = Number(process.env.BENCH_PREVIEW_RUNS ?? 3);
const TARGET = 1.3;

function main(): void {
  const engine = engineBin();
  const baselineDir = baselineProgram(true);
  const dev = new EngineStack(engine, REPO);
  const base = new EngineStack(engine, baselineDir);
  try {
    dev.init({ renderDir: dev.renderDir, services: devServices() });
    base.init({ renderDir: base.renderDir });
    const times: Record<"dev" | "base", number[]> = { dev: [], base: [] };
    const stacks = [
      [dev, "dev"],
      [base, "base"],
    ] as const;
    /** One `pulumi preview` of `stack`; its seconds, or an error naming which one failed. */
    const preview = (stack: EngineStack, what: string): number => {
      const r = stack.pulumi(["preview"]);
      if (r.code !== 0) {
        throw new Error(`${what}: pulumi preview exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      }
      return r.seconds;
    };
    // One unmeasured preview each (plugin cache, OS file cache), then interleaved runs.
    for (const [stack, what] of stacks) preview(stack, what);
    for (let i = 0; i < RUNS; i++) {
      for (const [stack, what] of stacks) times[what].push(preview(stack, what));
    }
    const d = median(times.dev);
    const b = median(times.base);
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(", ");
    console.log(
      `k8s-chain preview bench, ${new Date().toISOString()}, ${os.cpus().length} cores, load ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );
    console.log(`engine: ${engine.cli}`);
    console.log(
      `dev catalog (4 services, prebuilt images, render mode): median ${d.toFixed(2)} s of ${RUNS} (${fmt(times.dev)})`,
    );
    console.log(
      `one-ConfigMap TypeScript program (render mode):        median ${b.toFixed(2)} s of ${RUNS} (${fmt(times.base)})`,
    );
    const ratio = d / b;
    // Truncated, never rounded up.
    console.log(
      `ratio dev / one-ConfigMap: ${(Math.floor(ratio * 100) / 100).toFixed(2)}x (target <= ${TARGET}x: ${ratio <= TARGET ? "met" : "MISSED"})`,
    );
  } finally {
    dev.dispose();
    base.dispose();
    fs.rmSync(baselineDir, { recursive: true, force: true });
  }
}

main();
