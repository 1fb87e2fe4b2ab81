// `npm run bench:apps`: the sample services against the seed's Flask app on Flask's development
// server and against a bare node:http server (the ceiling), measured with wrk on loopback.
// Needs `npm run build` (the apps' dist/) and Debian's wrk and python3-flask
// (`apt-get install wrk python3-flask`). Every run is bounded: BENCH_SECONDS (default 5) each,
// BENCH_ROUNDS (default 3) rounds; about 5.5 minutes in all with the defaults.
// BENCH_HEALTH_REPEATS=N runs only the /health-while-hanging probe (ours and the 504 timer), N
// times, and judges the median of the N runs (about 1.5 minutes per run).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Children, freePort, run, waitForHttp } from "../../../tests/support/process";
import { median, quantile } from "../stats";

const ROOT = path.resolve(__dirname, "..", "..", "..");
/** The one program every sample service runs (SERVICE_NAME tells them apart). */
const APP = path.join(ROOT, "apps", "chain-service", "dist", "server.js");
const SECONDS = Number(process.env.BENCH_SECONDS ?? "5");
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? "3");
const CONNECTIONS = 50;
const HANGING = 200;
/** Requests per second of the fixed-rate /health latency probe. */
const PROBE_RATE = 200;
/**
 * `BENCH_HEALTH_REPEATS=N`: only the /health-while-hanging probe, for ours and the 504 timer,
 * N times over with fresh servers, judged on the median of the N pooled ratios. One run's
 * ratio moves by about ±0.2 from run to run here (the p99 without the load alone does: 1.1-2.1 ms
 * between identical runs), so one run cannot say whether a server within 0.2 of the target meets it.
 */
const HEALTH_REPEATS = process.env.BENCH_HEALTH_REPEATS;
const PYTHON = "/usr/bin/python3"; // Debian's, with python3-flask (not a pyenv or venv one)

const children = new Children();
/** The server processes behind a URL (a chain's A URL: A, B and C), for their CPU time. */
const processesOf = new Map<string, number[]>();

/**
 * `timer` is bare node:http answering `/` 504 after the timeout without calling anyone (the
 * /health-while-hanging runs only): the least that answering requests which time out costs.
 */
type Kind = "ours" | "bare" | "flask" | "timer";

/** Starts one server of `kind` on a free port; resolves with its base URL once /health is 200. */
async function start(kind: Kind, name: string, next?: string, timeoutMs?: number): Promise<string> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), SERVICE_NAME: name };
  if (timeoutMs !== undefined) env.DOWNSTREAM_TIMEOUT_MS = String(timeoutMs);
  let command: string[];
  if (kind === "ours") {
    if (next) env.DOWNSTREAM_URLS = next;
    command = [process.execPath, APP];
  } else if (kind === "bare" || kind === "timer") {
    if (kind === "timer") env.ANSWER_504_AFTER_MS = String(timeoutMs);
    else if (next) env.NEXT_URL = next;
    command = [process.execPath, "-r", "ts-node/register/transpile-only", path.join(__dirname, "bare-http.ts")];
  } else {
    if (next) env.NEXT_URL = next;
    command = [PYTHON, path.join(__dirname, "flask_app.py")];
  }
  const child = children.spawn(command[0], command.slice(1), { env, cwd: ROOT, stdio: "ignore" });
  const url = `http://127.0.0.1:${port}/`;
  processesOf.set(url, [child.pid!]);
  await waitForHttp(`${url}health`);
  return url;
}

/** A -> B -> C of one kind; resolves with A's URL. */
async function chain(kind: Kind): Promise<string> {
  const c = await start(kind, "service-c");
  const b = await start(kind, "service-b", c);
  const a = await start(kind, "service-a", b);
  processesOf.set(
    a,
    [a, b, c].flatMap((url) => processesOf.get(url)!),
  );
  return a;
}

function stopAll(): Promise<void> {
  return children.stopAll("SIGTERM", 3000);
}

interface WrkResult {
  /** CPU time (user + system) the server processes spent per request, in µs. */
  cpuUs: number;
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
}

function ms(value: string, unit: string): number {
  const factor = unit === "us" ? 0.001 : unit === "ms" ? 1 : unit === "s" ? 1000 : NaN;
  return Number(value) * factor;
}

/** Runs wrk (1 thread) for `seconds` and parses req/s, p50, p99 and errors. */
async function wrk(url: string, connections: number, seconds: number): Promise<WrkResult> {
  const args = ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "10s", "--latency", url];
  const r = await run("wrk", args);
  process.stderr.write(r.stderr);
  const out = r.stdout;
  if (r.code !== 0) throw new Error(`wrk ${args.join(" ")} exited ${r.code}:\n${out}`);
  const pct = (p: string) => {
    const m = out.match(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, "m"));
    return m ? ms(m[1], m[2]) : NaN;
  };
  const socket = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  return {
    cpuUs: NaN,
    rps: Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? NaN),
    p50: pct("50"),
    p99: pct("99"),
    requests: Number(out.match(/(\d+) requests in/)?.[1] ?? NaN),
    non2xx: Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0),
    socketErrors: socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

/** Per figure, the median of the rounds; the counts are summed. */
function medianRun(runs: WrkResult[]): WrkResult {
  const mid = (pick: (r: WrkResult) => number) => median(runs.map(pick));
  return {
    cpuUs: mid((r) => r.cpuUs),
    rps: mid((r) => r.rps),
    p50: mid((r) => r.p50),
    p99: mid((r) => r.p99),
    requests: runs.reduce((sum, r) => sum + r.requests, 0),
    non2xx: runs.reduce((sum, r) => sum + r.non2xx, 0),
    socketErrors: runs.reduce((sum, r) => sum + r.socketErrors, 0),
  };
}

const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** User + system CPU time of `pids` so far, in µs (from /proc/<pid>/stat). */
function cpuTimeUs(pids: number[]): number {
  return pids.reduce((sum, pid) => {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return sum + ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
  }, 0);
}

/** 1 s of warm-up (JIT, connection pools), then the measured run with the servers' CPU time. */
async function measure(url: string, connections = CONNECTIONS): Promise<WrkResult> {
  const pids = processesOf.get(url.replace(/health$/, "")) ?? [];
  await wrk(url, connections, 1);
  const before = cpuTimeUs(pids);
  const result = await wrk(url, connections, SECONDS);
  return { ...result, cpuUs: pids.length > 0 ? (cpuTimeUs(pids) - before) / result.requests : NaN };
}

/** A downstream that accepts connections and never answers; counts open connections. */
async function deadDownstream(): Promise<{ url: string; open: () => number; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    open: () => sockets.size,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

interface Probe {
  count: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  /** Every counted request's latency (ms), to pool the rounds. */
  latencies: number[];
}

/** Fixed-rate /health latency from its own process (lab/bench/apps/probe.ts). */
async function probe(url: string, seconds: number): Promise<Probe> {
  const args = [
    "-r",
    "ts-node/register/transpile-only",
    path.join(__dirname, "probe.ts"),
    url,
    String(PROBE_RATE),
    String(seconds),
  ];
  const r = await run(process.execPath, args, { cwd: ROOT });
  process.stderr.write(r.stderr);
  if (r.code !== 0) throw new Error(`probe exited ${r.code}`);
  return JSON.parse(r.stdout) as Probe;
}

/** What the probe rounds of one server gathered. */
interface HangFigures {
  /** Per round: the fixed-rate probe alone, then while HANGING `/` requests hang. */
  probeAlone: Probe[];
  probeHanging: Probe[];
  hangingSeen: number;
  /** Per hanging phase: the dead downstream's open connections once the requests hang. */
  downstreamSeen: number[];
}

interface HangResult extends HangFigures {
  /** wrk's 10-connection runs, alone then while hanging. */
  wrk: { alone: WrkResult; health: WrkResult };
}

/** wrk holding `connections` `/` requests open until stopped (each one answered 504 is sent again at once). */
function hangLoad(url: string, connections: number): { stop: () => Promise<void> } {
  const child = children.spawn("wrk", ["-t1", `-c${connections}`, "-d600s", "--timeout", "10s", url], {
    stdio: "ignore",
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    stop: () => {
      child.kill("SIGINT");
      return exited;
    },
  };
}

/** Established TCP connections to `port` on 127.0.0.1 (from /proc/net/tcp): wrk's, to a server. */
function connectionsTo(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return fs
    .readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .filter((line) => {
      const f = line.trim().split(/\s+/);
      return f[1] === local && f[3] === "01";
    }).length;
}

/**
 * Bounded wait (<= 5 s) until `count` `/` requests hang: wrk's connections to the server, each
 * with a request the server cannot answer before the downstream's timeout. Resolves with how
 * many do, and how many connections the dead downstream has then: as many for a server that
 * sends every call, fewer for ours once its gate has come down (docs/apps.md).
 */
async function untilHanging(
  url: string,
  dead: { open: () => number },
  count: number,
): Promise<{ hanging: number; downstream: number }> {
  const port = Number(new URL(url).port);
  for (let i = 0; i < 100 && connectionsTo(port) < count; i++) await new Promise((r) => setTimeout(r, 50));
  // The calls that go out do so as their requests arrive; give the last ones a moment.
  await new Promise((r) => setTimeout(r, 200));
  return { hanging: connectionsTo(port), downstream: dead.open() };
}

/** One server of the /health-while-hanging runs, its dead downstream and its probe figures so far. */
interface HangServer extends HangFigures {
  url: string;
  dead: Awaited<ReturnType<typeof deadDownstream>>;
}

/**
 * /health of each kind alone and while HANGING `/` requests wait on a dead downstream (each
 * server its own): the fixed-rate probe in ROUNDS rounds, the kinds in turn within each round
 * and each alone then hanging (so a busy neighbour on the machine hurts them alike), then, with
 * `wrkRuns`, wrk with 10 connections once each. The bare node:http server is the floor: what timed-out calls
 * cost any Node server here, with nothing of ours in the way; the 504 timer is below it (no
 * calls at all, only the answers). Results in the order of `kinds`.
 */
async function healthWhileHanging(kinds: Kind[], wrkRuns: true): Promise<HangResult[]>;
async function healthWhileHanging(kinds: Kind[], wrkRuns: false): Promise<HangFigures[]>;
async function healthWhileHanging(kinds: Kind[], wrkRuns: boolean): Promise<(HangFigures & Partial<HangResult>)[]> {
  const deads: HangServer["dead"][] = [];
  try {
    const servers: HangServer[] = [];
    for (const kind of kinds) {
      const dead = await deadDownstream();
      deads.push(dead);
      const url = await start(kind, "service-a", dead.url, 2000);
      await wrk(`${url}health`, 10, 1);
      servers.push({ url, dead, probeAlone: [], probeHanging: [], hangingSeen: Infinity, downstreamSeen: [] });
    }
    /** Runs `measured` while HANGING `/` requests hang on `server`. */
    const whileHanging = async <T>(server: HangServer, measured: () => Promise<T>): Promise<T> => {
      const load = hangLoad(server.url, HANGING);
      try {
        const seen = await untilHanging(server.url, server.dead, HANGING);
        server.hangingSeen = Math.min(server.hangingSeen, seen.hanging);
        server.downstreamSeen.push(seen.downstream);
        return await measured();
      } finally {
        await load.stop();
      }
    };
    for (let round = 0; round < ROUNDS; round++) {
      for (const server of servers) {
        server.probeAlone.push(await probe(`${server.url}health`, SECONDS));
        server.probeHanging.push(await whileHanging(server, () => probe(`${server.url}health`, SECONDS)));
      }
    }
    const results: (HangFigures & Partial<HangResult>)[] = [];
    for (const server of servers) {
      let wrkRun: HangResult["wrk"] | undefined;
      if (wrkRuns) {
        const alone = await wrk(`${server.url}health`, 10, SECONDS);
        const health = await whileHanging(server, () => wrk(`${server.url}health`, 10, SECONDS));
        wrkRun = { alone, health };
      }
      // After the last hanging phase, which adds to hangingSeen and downstreamSeen.
      const { probeAlone, probeHanging, hangingSeen, downstreamSeen } = server;
      results.push({ probeAlone, probeHanging, hangingSeen, downstreamSeen, wrk: wrkRun });
    }
    return results;
  } finally {
    await stopAll();
    for (const dead of deads) dead.close();
  }
}

const f = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

function row(label: string, r: WrkResult): string {
  const errors = r.non2xx + r.socketErrors;
  return `| ${label} | ${f(r.rps, 0)} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.cpuUs, 0)} | ${errors} |`;
}

/** A ratio with 3 decimals and whether it meets `target`, decided on the exact value (never the rounded one). */
const judged = (value: number, target: number, atLeast: boolean) =>
  `${f(value, 3)} (target ${atLeast ? ">=" : "<="} ${f(target)}: ${(atLeast ? value >= target : value <= target) ? "met" : "NOT met"})`;

/**
 * The probe's p99 while hanging and alone, each over the requests of every round pooled, and
 * the per-round ratios. Pooled, not the median of the rounds' p99s: a round's p99 is its 10th
 * slowest request, which one stall of the machine moves (per-round ratios have swung from 0.44
 * to 2.13 in one run); pooled, it is the 30th slowest of 3,000 with the defaults. The ratio of
 * the rounds' median p99s, which earlier runs were judged on (docs/benchmarks.md), is printed
 * beside it.
 */
function hangFigures(hang: HangFigures): {
  ratio: number;
  hanging: number;
  alone: number;
  text: string;
  rounds: string;
} {
  const pooled = (probes: Probe[]) =>
    quantile(
      probes.flatMap((p) => p.latencies),
      0.99,
    );
  const alone = pooled(hang.probeAlone);
  const hanging = pooled(hang.probeHanging);
  const n = (probes: Probe[]) => probes.reduce((sum, p) => sum + p.count, 0);
  const rounds = hang.probeHanging.map((p, i) => f(p.p99 / hang.probeAlone[i].p99)).join(", ");
  const medianRatio = median(hang.probeHanging.map((p) => p.p99)) / median(hang.probeAlone.map((p) => p.p99));
  return {
    ratio: hanging / alone,
    hanging,
    alone,
    text:
      `${f(hanging)} ms against ${f(alone)} ms alone (p99 of ${n(hang.probeHanging)} and ${n(hang.probeAlone)} ` +
      `requests, the rounds pooled)`,
    rounds: `${rounds} (median of rounds ${f(medianRatio, 3)})`,
  };
}

/** The BENCH_HEALTH_REPEATS runs: ours and the timer, which goes first alternating, `times` times. */
async function repeatHealth(times: number): Promise<void> {
  const ratios: { ours: number[]; timer: number[] } = { ours: [], timer: [] };
  console.log(
    `BENCH_HEALTH_REPEATS=${times}: only \`GET /health\` at ${PROBE_RATE} req/s, alone then while ${HANGING} \`/\` hang ` +
      `(${ROUNDS} rounds of ${SECONDS} s pooled per run), ours and the 504 timer, fresh servers each run\n`,
  );
  console.log(
    "| run | ours: pooled p99 ratio | ours: p99 ms while hanging / alone | 504 timer: ratio | ours / timer |",
  );
  console.log("|---|---:|---:|---:|---:|");
  for (let i = 0; i < times; i++) {
    // A drift of the machine within a run then favours neither.
    const kinds: Kind[] = i % 2 === 0 ? ["ours", "timer"] : ["timer", "ours"];
    const results = await healthWhileHanging(kinds, false);
    const [ours, timer] = (i % 2 === 0 ? results : [...results].reverse()).map(hangFigures);
    ratios.ours.push(ours.ratio);
    ratios.timer.push(timer.ratio);
    console.log(
      `| ${i + 1} | ${f(ours.ratio, 3)} | ${f(ours.hanging)} / ${f(ours.alone)} | ${f(timer.ratio, 3)} | ` +
        `${f(ours.ratio / timer.ratio, 3)} |`,
    );
  }
  const summary = (rs: number[]) =>
    `median of ${rs.length} runs ${judged(median(rs), 1.2, false)}; at or under 1.20 in ${rs.filter((r) => r <= 1.2).length} of ${rs.length} ` +
    `(${[...rs]
      .sort((a, b) => a - b)
      .map((r) => f(r, 3))
      .join(", ")})`;
  console.log("");
  console.log(`- /health p99 while ${HANGING} \`/\` hang, ours: ${summary(ratios.ours)}`);
  console.log(`- the 504 timer: ${summary(ratios.timer)}`);
}

function version(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
      .trim()
      .split("\n")[0];
  } catch {
    return "";
  }
}

async function main(): Promise<void> {
  const flask = version(PYTHON, ["-c", "import importlib.metadata as m; print(m.version('flask'))"]);
  const wrkVersion = version("wrk", ["-v"]) || version("sh", ["-c", "wrk -v 2>&1; true"]);
  if (!flask || !wrkVersion) {
    throw new Error("needs Debian's python3-flask and wrk: apt-get install -y python3-flask wrk");
  }
  if (!fs.existsSync(APP)) {
    throw new Error(`run \`npm run build\` first (${path.relative(ROOT, APP)} is missing)`);
  }
  const cpu = os.cpus()[0]?.model ?? "?";
  console.log(
    `# lab/bench/apps: ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores (${cpu}), ` +
      `${Math.round(os.totalmem() / 2 ** 30)} GiB, load average ${os.loadavg()[0].toFixed(2)} at start, node ${process.version}, Flask ${flask} (Debian python3-flask, ` +
      `development server), ${wrkVersion.split(" [")[0]}, 1 wrk thread, ${SECONDS} s per run after 1 s warm-up, ` +
      `median of ${ROUNDS} rounds (the /health-while-hanging probe: ${ROUNDS} rounds; its 10-connection wrk runs: 1), loopback\n`,
  );

  if (HEALTH_REPEATS !== undefined) {
    const times = Number(HEALTH_REPEATS);
    if (!Number.isInteger(times) || times < 1) {
      throw new Error(
        `BENCH_HEALTH_REPEATS is "${HEALTH_REPEATS}": set it to a whole number of runs, 1 or more (for example 6), or unset it for the whole bench`,
      );
    }
    await repeatHealth(times);
    return;
  }
  // The three kinds run side by side and are measured in turn, ROUNDS times, so that a busy
  // neighbour on the machine hurts them alike; each figure is the median of its rounds.
  const results: Record<string, WrkResult> = {};
  for (const [what, launch, suffix] of [
    ["health", (kind: Kind) => start(kind, "service-a"), "health"],
    ["chain", chain, ""],
  ] as const) {
    const kinds: Kind[] = ["ours", "bare", "flask"];
    const urls = await Promise.all(kinds.map((kind) => launch(kind)));
    const rounds: WrkResult[][] = kinds.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, url] of urls.entries()) rounds[i].push(await measure(`${url}${suffix}`));
    }
    kinds.forEach((kind, i) => (results[`${kind} ${what}`] = medianRun(rounds[i])));
    await stopAll();
  }
  const [hangOurs, hangBare, hangFlask, hangTimer] = await healthWhileHanging(["ours", "bare", "flask", "timer"], true);

  console.log(
    `| run (${CONNECTIONS} connections unless noted) | req/s | p50 ms | p99 ms | server CPU µs/req | errors |`,
  );
  console.log("|---|---:|---:|---:|---:|---:|");
  console.log(row("`GET /health`, ours (service-a)", results["ours health"]));
  console.log(row("`GET /health`, bare node:http", results["bare health"]));
  console.log(row("`GET /health`, Flask dev server", results["flask health"]));
  console.log(row("`GET /` A -> B -> C, ours", results["ours chain"]));
  console.log(row("`GET /` A -> B -> C, bare node:http", results["bare chain"]));
  console.log(row("`GET /` A -> B -> C, Flask dev server", results["flask chain"]));
  console.log(row("`GET /health` (10 conn.) alone, ours", hangOurs.wrk.alone));
  console.log(row(`\`GET /health\` (10 conn.) while ${hangOurs.hangingSeen} \`/\` hang, ours`, hangOurs.wrk.health));
  console.log(row("`GET /health` (10 conn.) alone, bare node:http", hangBare.wrk.alone));
  console.log(
    row(`\`GET /health\` (10 conn.) while ${hangBare.hangingSeen} \`/\` hang, bare node:http`, hangBare.wrk.health),
  );
  console.log(row("`GET /health` (10 conn.) alone, Flask", hangFlask.wrk.alone));
  console.log(row(`\`GET /health\` (10 conn.) while ${hangFlask.hangingSeen} \`/\` hang, Flask`, hangFlask.wrk.health));
  console.log(row("`GET /health` (10 conn.) alone, 504 timer", hangTimer.wrk.alone));
  console.log(
    row(`\`GET /health\` (10 conn.) while ${hangTimer.hangingSeen} \`/\` hang, 504 timer`, hangTimer.wrk.health),
  );
  const ratio = (a: string, b: string) => f(results[a].rps / results[b].rps, 3);
  console.log("");
  console.log(
    `- /health: ours / bare node:http = ${ratio("ours health", "bare health")}; ours / Flask = ${ratio("ours health", "flask health")}x`,
  );
  console.log(
    `- chain A -> B -> C, request logging on (info): ours / bare node:http = ${judged(results["ours chain"].rps / results["bare chain"].rps, 0.8, true)}; ` +
      `ours / Flask = ${ratio("ours chain", "flask chain")}x`,
  );
  const cpuRatio = (a: string, b: string) => f(results[a].cpuUs / results[b].cpuUs);
  console.log(
    `- server CPU per request, ours / bare node:http: /health ${cpuRatio("ours health", "bare health")}, chain ${cpuRatio("ours chain", "bare chain")}; ` +
      `Flask / ours: /health ${cpuRatio("flask health", "ours health")}x, chain ${cpuRatio("flask chain", "ours chain")}x`,
  );
  const probeRow = (label: string, p: Probe) =>
    `| ${label} | ${p.count} | ${f(p.p50)} | ${f(p.p99)} | ${f(p.max)} | ${p.errors} |`;
  console.log("");
  console.log(
    `\`GET /health\` at a fixed ${PROBE_RATE} req/s for ${SECONDS} s (lab/bench/apps/probe.ts, open loop after 1 s of warm-up, each request ` +
      `timed from when it was sent), ${ROUNDS} rounds, each alone then while ${HANGING} \`/\` hang on a downstream that never answers (DOWNSTREAM_TIMEOUT_MS=2000):`,
  );
  console.log("");
  console.log("| server, situation, round | answered | p50 ms | p99 ms | max ms | errors |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const [name, hang] of [
    ["ours", hangOurs],
    ["bare node:http", hangBare],
    ["Flask", hangFlask],
    ["504 timer", hangTimer],
  ] as const) {
    hang.probeAlone.forEach((p, i) => console.log(probeRow(`${name}, alone, ${i + 1}`, p)));
    hang.probeHanging.forEach((p, i) =>
      console.log(probeRow(`${name}, while ${hang.hangingSeen} \`/\` hang, ${i + 1}`, p)),
    );
  }
  const ours = hangFigures(hangOurs);
  const floor = hangFigures(hangBare);
  const timer = hangFigures(hangTimer);
  console.log("");
  console.log(
    `- /health p99 while ${hangOurs.hangingSeen} \`/\` hang, ours: ${ours.text}, ` +
      `ratio ${judged(ours.ratio, 1.2, false)}; per round ${ours.rounds}`,
  );
  console.log(
    `- connections open at the dead downstream while they hang, per phase: ours ${hangOurs.downstreamSeen.join(", ")} ` +
      `(its gate sends 4 at a time once calls time out); bare node:http ${hangBare.downstreamSeen.join(", ")}`,
  );
  console.log(
    `- the floor, bare node:http under the same load (its timed-out calls close their connections too, ` +
      `nothing else): ${floor.text}, ratio ${f(floor.ratio, 3)}; per round ${floor.rounds}`,
  );
  console.log(
    `- the 504 timer, bare node:http answering each \`/\` 504 after 2 s without calling anyone (no connection, ` +
      `no log; the least answering these requests costs here): ${timer.text}, ratio ${judged(timer.ratio, 1.2, false)}; ` +
      `per round ${timer.rounds}; ours / the 504 timer: ${f(ours.ratio / timer.ratio, 3)}`,
  );
  console.log(
    `- at full load with 10 connections (wrk, one run each): ours p99 ${f(hangOurs.wrk.health.p99)} ms while hanging, ${f(hangOurs.wrk.alone.p99)} ms alone ` +
      `(ratio ${f(hangOurs.wrk.health.p99 / hangOurs.wrk.alone.p99)}); Flask probe p99 ${f(median(hangFlask.probeHanging.map((p) => p.p99)))} ms while hanging, ` +
      `${f(median(hangFlask.probeAlone.map((p) => p.p99)))} ms alone`,
  );
  console.log(
    `- load average at the end: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(", ")} (1, 5, 15 min) on ${os.cpus().length} cores`,
  );
}

main()
  .catch((err: Error) => {
    console.error(err.message);
    process.exitCode = 1;
  })
  .finally(() => void stopAll());
