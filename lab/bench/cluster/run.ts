// The first `pulumi up` of a generated 50-service catalog on kwok nodes, by call-graph depth.
// The stack creates a caller only after its callees are rolled out with endpoints, so the
// time should grow with the depth of the graph (levels wait for each other), not with the
// number of services. Depth 1 (50 independent services) is the baseline of the same run.
//
// Run: npm run bench:cluster (lab/bench/cluster/run.sh starts and stops the cluster).
import { engineBin, EngineStack, REPO } from "../../../tests/engine/harness";
import { chains } from "./catalog";

const SERVICES = Number(process.env.BENCH_SERVICES ?? 50);
const DEPTHS = (process.env.BENCH_DEPTHS ?? "1,5,10,25,50").split(",").map(Number);

async function main(): Promise<void> {
  const engine = engineBin();
  const rows: Array<{ depth: number; up: number; destroy: number }> = [];
  for (const depth of DEPTHS) {
    const stack = new EngineStack(engine, REPO);
    try {
      stack.init({ namespace: `bench-depth-${depth}`, services: chains(SERVICES, depth) });
      const up = await stack.pulumiAsync(["up", "--yes", "--skip-preview"], "up");
      if (up.code !== 0) {
        throw new Error(`up failed at depth ${depth}:\n${up.stdout}\n${up.stderr}`);
      }
      const down = await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy");
      if (down.code !== 0) {
        throw new Error(`destroy failed at depth ${depth}:\n${down.stdout}\n${down.stderr}`);
      }
      rows.push({ depth, up: up.seconds, destroy: down.seconds });
      console.log(`depth ${depth}: up ${up.seconds.toFixed(1)} s, destroy ${down.seconds.toFixed(1)} s`);
    } finally {
      stack.dispose();
    }
  }
  const base = rows.find((r) => r.depth === 1)?.up ?? rows[0].up;
  console.log(
    `\n${SERVICES} services on kwok nodes, first up by call-graph depth (baseline: depth ${rows[0].depth}, same run)`,
  );
  console.log("| depth | up (s) | up / baseline | up per level (s) | destroy (s) |");
  console.log("|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    console.log(
      `| ${r.depth} | ${r.up.toFixed(1)} | ${(r.up / base).toFixed(2)} | ${(r.up / r.depth).toFixed(2)} | ${r.destroy.toFixed(1)} |`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
