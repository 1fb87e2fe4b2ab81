// What the suites and benches that run real processes share: free loopback ports, temp folders,
// child processes (run to completion, or kept running and stopped at the end or on exit) and a
// wait until an HTTP endpoint answers.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

/** A loopback port nothing listens on (one just bound and freed). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A new folder `<parent>/<prefix>XXXXXX` (parent: the OS temp folder). */
export function tempDir(prefix: string, parent: string = os.tmpdir()): string {
  return fs.mkdtempSync(path.join(parent, prefix));
}

export interface Ran {
  /** The exit code; -1 when a signal ended the process (a timeout's, for one). */
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed (default: no stdin). */
  input?: string;
  /** SIGTERM after this long (as execFile's timeout). */
  timeoutMs?: number;
  /** Called with the child once it is spawned (to signal it while it runs). */
  onSpawn?: (child: ChildProcess) => void;
}

/** Runs `command` to its end without blocking the event loop; never rejects on a non-zero exit. */
export function run(command: string, args: string[], opts: RunOptions = {}): Promise<Ran> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    opts.onSpawn?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill("SIGTERM"), opts.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Long-running children: each is stopped by {@link Children.stopAll}, or killed when this process exits. */
export class Children {
  private readonly running = new Set<ChildProcess>();
  private readonly onExit = (): void => {
    for (const child of this.running) child.kill("SIGKILL");
  };

  constructor() {
    process.on("exit", this.onExit);
  }

  spawn(command: string, args: string[], opts: SpawnOptions): ChildProcess {
    const child = spawn(command, args, opts);
    this.running.add(child);
    child.once("exit", () => this.running.delete(child));
    return child;
  }

  /** Sends `signal` to every child still running, SIGKILL after `graceMs`; resolves when all have exited. */
  async stopAll(signal: NodeJS.Signals = "SIGKILL", graceMs = 3000): Promise<void> {
    const children = [...this.running];
    this.running.clear();
    await Promise.all(children.map((child) => stop(child, signal, graceMs)));
  }
}

/** Sends `signal` to `child` (SIGKILL after `graceMs`) and resolves once it has exited. */
function stop(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 3000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = signal === "SIGKILL" ? undefined : setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill(signal);
  });
}

/** Resolves once `url` answers 200, polling every `everyMs`; rejects after `tries` polls. */
export async function waitForHttp(url: string, tries = 300, everyMs = 50): Promise<void> {
  for (let i = 0; i < tries; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on("error", () => resolve(false));
      req.on("timeout", () => req.destroy());
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  throw new Error(`${url} not ready after ${(tries * everyMs) / 1000} s`);
}
