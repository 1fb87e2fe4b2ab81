// Evaluates generated catalogs of 50, 200 and 800 services under Pulumi's mocks and prints the
// time each takes, next to a baseline measured in the same run: the same Deployments and
// Services registered directly, with no components, validation or ordering. Each is measured
// twice: under ts-node (how `pulumi up` runs index.ts) and as JavaScript compiled by tsc
// (ts-node's source-mapped stack traces, which the SDK takes for every resource, cost extra).
//
// Then the program the way Pulumi runs it: a fresh node process that loads index.ts through
// ts-node in transpile-only mode (Pulumi.yaml's runtime options, tsconfig.pulumi.json), reads a
// 200-service catalog from the stack config and registers every resource (with mocks standing in
// for the engine), timed from the process's start: target under 3 s. Beside it, the floor: a bare
// program registering as many plain resources in the same kind of process.
//
// Run: npm run bench:stack
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { performance } from "perf_hooks";
import { parseStackConfig } from "../../components/catalog";
import { deployChain } from "../../components/chain";
import { median } from "./stats";

const SIZES = (process.env.BENCH_SIZES ?? "50,200,800").split(",").map(Number);
const PINNED = "localhost:5001/app@sha256:" + "ab".repeat(32);

/** A layered catalog: each service calls up to two services of the layer below (width 10). */
function catalog(n: number): Record<string, unknown> {
  const services: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const calls = i >= 10 ? [`svc-${i - 10}`, ...(i % 10 > 0 ? [`svc-${i - 11}`] : [])] : [];
    services[`svc-${i}`] = { image: PINNED, calls, ...(i % 7 === 0 ? { replicas: 1 } : {}) };
  }
  return services;
}

/** Mocks that count registrations; resolves when `expected` have been answered. */
function mocks(): { done: (expected: number) => Promise<void> } {
  let answered = 0;
  let waiter: { expected: number; resolve: () => void } | undefined;
  pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        answered++;
        if (waiter && answered >= waiter.expected) {
          waiter.resolve();
        }
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call: (args) => args.inputs,
    },
    "k8s-chain",
    "bench",
    false,
  );
  return {
    done: (expected) =>
      answered >= expected
        ? Promise.resolve()
        : new Promise((resolve) => {
            waiter = { expected, resolve };
          }),
  };
}

async function timeChain(n: number): Promise<{ ms: number; resources: number; parseMs: number }> {
  const m = mocks();
  const t0 = performance.now();
  const cfg = parseStackConfig({ services: catalog(n) }, { projectRoot: "/", stat: () => undefined });
  const parseMs = performance.now() - t0;
  deployChain(cfg, { projectRoot: "/" });
  const resources = cfg.services.reduce((sum, s) => sum + 3 + (s.replicas >= 2 ? 1 : 0), 0);
  await m.done(resources);
  return { ms: performance.now() - t0, resources, parseMs };
}

async function timeBaseline(n: number): Promise<number> {
  const m = mocks();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const labels = { app: `svc-${i}` };
    new k8s.apps.v1.Deployment(`svc-${i}-deployment`, {
      spec: {
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: "app", image: PINNED }] } },
      },
    });
    new k8s.core.v1.Service(`svc-${i}-service`, {
      metadata: { name: `svc-${i}` },
      spec: { selector: labels, ports: [{ port: 80 }] },
    });
  }
  await m.done(2 * n);
  return performance.now() - t0;
}

const ROOT = path.resolve(__dirname, "..", "..");

/** Compiles the project with tsc into a temp folder; returns the compiled bench script. */
function compile(): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-chain-bench-"));
  execFileSync(process.execPath, [
    require.resolve("typescript/bin/tsc"),
    "-p",
    ROOT,
    "--outDir",
    out,
    "--noEmit",
    "false",
    "--sourceMap",
    "false",
  ]);
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(out, "node_modules"));
  return path.join(out, "lab", "bench", "stack.js");
}

/** One measurement in a fresh process: the mocks and the SDK's global state are per process. */
function measure(
  script: string | undefined,
  mode: "chain" | "baseline",
  n: number,
): { ms: number; resources: number; parseMs: number } {
  const args = script ? [script] : ["-r", "ts-node/register/transpile-only", __filename];
  const out = execFileSync(process.execPath, [...args, "--one", mode, String(n)], { cwd: ROOT, encoding: "utf8" });
  return JSON.parse(out.trim().split("\n").pop()!);
}

async function one(mode: string, n: number): Promise<void> {
  // Warm up the module cache and JIT so the measurement is not charged for loading.
  if (mode === "chain") {
    await timeChain(10);
    const r = await timeChain(n);
    console.log(JSON.stringify(r));
  } else {
    await timeBaseline(10);
    console.log(JSON.stringify({ ms: await timeBaseline(n), resources: 2 * n, parseMs: 0 }));
  }
}

function main(): void {
  const compiled = compile();
  console.log(
    `k8s-chain stack bench, ${new Date().toISOString()}, node ${process.version}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)}`,
  );
  console.log(
    "runtime   services  resources  parse+order ms  stack ms  baseline ms  stack/baseline  stack ms/service  growth vs first",
  );
  for (const [runtime, script] of [
    ["ts-node", undefined],
    ["tsc (js)", compiled],
  ] as const) {
    let first: number | undefined;
    for (const n of SIZES) {
      const chain = measure(script, "chain", n);
      const base = measure(script, "baseline", n);
      const perService = chain.ms / n;
      first ??= perService;
      console.log(
        [
          runtime.padEnd(8),
          String(n).padStart(8),
          String(chain.resources).padStart(10),
          chain.parseMs.toFixed(1).padStart(15),
          chain.ms.toFixed(0).padStart(9),
          base.ms.toFixed(0).padStart(12),
          (chain.ms / base.ms).toFixed(2).padStart(15),
          perService.toFixed(2).padStart(17),
          (perService / first).toFixed(2).padStart(16),
        ].join(" "),
      );
    }
  }
  fs.rmSync(path.dirname(path.dirname(compiled)), { recursive: true });
  programFigure();
}

const PROGRAM_SERVICES = Number(process.env.BENCH_PROGRAM_SERVICES ?? 200);
const PROGRAM_TARGET_MS = 3000;

type Run = { ms: number; loadedMs: number; cpuMs: number; resources: number };

/** One process's figures: ms since it started when all was registered, and when loading was done. */
function report(loadedMs: number, resources: number): void {
  const cpu = process.cpuUsage();
  const run: Run = { ms: performance.now(), loadedMs, cpuMs: (cpu.user + cpu.system) / 1000, resources };
  console.log(JSON.stringify(run));
}

/** In this process: config and mocks as the engine would give them, then index.ts; prints ms since the process started. */
async function program(n: number): Promise<void> {
  // This file's imports have loaded the SDK, @pulumi/kubernetes and the components by now.
  const loadedMs = performance.now();
  const m = mocks();
  pulumi.runtime.setAllConfig({
    "k8s-chain:services": JSON.stringify(catalog(n)),
    "k8s-chain:renderDir": "/tmp/unused",
  });
  await import("../../index");
  // Render provider, default deny; per service its component, Deployment, Service, NetworkPolicy (+ PDB).
  const resources = 2 + 4 * n + [...Array(n).keys()].filter((i) => i % 7 !== 0).length;
  await m.done(resources);
  report(loadedMs, resources);
}

/**
 * The floor under the program: a bare program in the same kind of process that registers as
 * many plain resources (a Deployment, a Service and a NetworkPolicy per service, a PDB where the
 * program makes one, two more), with no components, validation, ordering or stack-trace change.
 */
async function bareProgram(n: number): Promise<void> {
  const loadedMs = performance.now();
  const m = mocks();
  new k8s.core.v1.Namespace("bare");
  new k8s.networking.v1.NetworkPolicy("bare-deny", { spec: { podSelector: {} } });
  let resources = 2;
  for (let i = 0; i < n; i++) {
    const labels = { app: `svc-${i}` };
    new k8s.apps.v1.Deployment(`svc-${i}`, {
      spec: {
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: "app", image: PINNED }] } },
      },
    });
    new k8s.core.v1.Service(`svc-${i}`, {
      metadata: { name: `svc-${i}` },
      spec: { selector: labels, ports: [{ port: 80 }] },
    });
    new k8s.networking.v1.NetworkPolicy(`svc-${i}`, { spec: { podSelector: { matchLabels: labels } } });
    resources += 3;
    if (i % 7 !== 0) {
      new k8s.policy.v1.PodDisruptionBudget(`svc-${i}`, {
        spec: { selector: { matchLabels: labels }, maxUnavailable: 1 },
      });
      resources++;
    }
  }
  await m.done(resources);
  report(loadedMs, resources);
}

/** Median of 3 fresh processes of `mode` (--program or --bare-program). */
function runs(mode: string): Run[] {
  const out: Run[] = [];
  for (let i = 0; i < 3; i++) {
    const text = execFileSync(
      process.execPath,
      ["-r", "ts-node/register/transpile-only", __filename, mode, String(PROGRAM_SERVICES)],
      {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, TS_NODE_PROJECT: path.join(ROOT, "tsconfig.pulumi.json") },
      },
    );
    out.push(JSON.parse(text.trim().split("\n").pop()!));
  }
  return out;
}

const seconds = (xs: number[]): string => xs.map((x) => (x / 1000).toFixed(2)).join(", ");

/** The program's figure, next to the bare program's, each the median of 3 fresh processes. */
function programFigure(): void {
  const program = runs("--program");
  const bare = runs("--bare-program");
  const ms = median(program.map((r) => r.ms));
  const bareMs = median(bare.map((r) => r.ms));
  console.log(
    `\nthe program as Pulumi runs it (fresh node, ts-node transpile-only, index.ts, stack config, mocks for the engine): ${PROGRAM_SERVICES} services, ${program[0].resources} resources`,
  );
  console.log(
    `  CPU time (user + system) of the process: median ${(median(program.map((r) => r.cpuMs)) / 1000).toFixed(2)} s (${seconds(program.map((r) => r.cpuMs))} s); bare program ${(median(bare.map((r) => r.cpuMs)) / 1000).toFixed(2)} s`,
  );
  console.log(
    `  bare program, ${bare[0].resources} plain resources in the same kind of process: median ${(bareMs / 1000).toFixed(2)} s (${seconds(bare.map((r) => r.ms))} s)`,
  );
  const loaded = (runs: Run[]) => (median(runs.map((r) => r.loadedMs)) / 1000).toFixed(2);
  console.log(
    `  loading, before anything registers (node, ts-node, the SDK, @pulumi/kubernetes, the components), included in both figures: program median ${loaded(program)} s, bare program ${loaded(bare)} s`,
  );
  console.log(
    `  program: median ${(ms / 1000).toFixed(2)} s of 3 (${seconds(program.map((r) => r.ms))} s), ${(ms / bareMs).toFixed(2)}x the bare program; target < ${PROGRAM_TARGET_MS / 1000} s: ${ms < PROGRAM_TARGET_MS ? "met" : "MISSED"}; load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
}

const oneAt = process.argv.indexOf("--one");
const programAt = process.argv.indexOf("--program");
const bareAt = process.argv.indexOf("--bare-program");
if (programAt >= 0) {
  program(Number(process.argv[programAt + 1])).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else if (bareAt >= 0) {
  bareProgram(Number(process.argv[bareAt + 1])).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else if (process.env.BENCH_PROGRAM_ONLY === "1") {
  programFigure();
} else if (oneAt >= 0) {
  one(process.argv[oneAt + 1], Number(process.argv[oneAt + 2])).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main();
}
