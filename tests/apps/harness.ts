// Real-process harness for the sample services: spawn `node apps/chain-service/dist/server.js`
// (the one program every dev-stack service runs) as SERVICE_NAME=<name> on PORT=0, learn the
// bound port from its "listening" log line, talk to it over loopback.
import type { ChildProcess } from "node:child_process";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { Children, freePort } from "../support/process";

export const ROOT = path.resolve(__dirname, "..", "..");
/** The app folder every service of these tests runs (apps/<APP>/dist/server.js). */
const APP = "chain-service";

/** Bounds every wait in these tests (mocha's own timeout is 20 s). */
const WAIT_MS = 10_000;

type LogLine = Record<string, unknown> & { msg?: string; reqId?: string; level?: string };

export interface Service {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Every JSON line written to stdout so far. */
  readonly logs: LogLine[];
  /** Resolves with the first log line (seen or to come) matching `match`. */
  waitForLog(match: (line: LogLine) => boolean, what: string): Promise<LogLine>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stderr: () => string;
}

const running = new Children();
const fakes = new Set<FakeServer>();

/** Kills the processes and closes the fake servers a test left running; call from `afterEach`. */
export async function stopAll(): Promise<void> {
  const servers = [...fakes];
  fakes.clear();
  await Promise.all(servers.map((fake) => fake.close()));
  await running.stopAll("SIGKILL");
}

/** A started process whose port is not known yet (see `startService`). */
type Spawned = Omit<Service, "port" | "url">;

/**
 * Spawns the built app as SERVICE_NAME=`name` with PORT=0 and `env` (which may set SERVICE_NAME
 * itself; "" leaves the app's default). The DOWNSTREAM_*, SHUTDOWN_* and LOG_LEVEL of the test run are dropped.
 */
export function spawnService(name: string, env: Record<string, string> = {}): Spawned {
  const script = path.join(ROOT, "apps", APP, "dist", "server.js");
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: "0", SERVICE_NAME: name, ...env };
  for (const key of [
    "DOWNSTREAM_URLS",
    "DOWNSTREAM_TIMEOUT_MS",
    "SHUTDOWN_DELAY_MS",
    "SHUTDOWN_TIMEOUT_MS",
    "LOG_LEVEL",
  ]) {
    if (!(key in env)) delete childEnv[key];
  }
  const proc = running.spawn(process.execPath, [script], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  const logs: LogLine[] = [];
  const waiters: { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];
  let stderr = "";
  let pending = "";
  proc.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf("\n")) !== -1) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { msg: "(not JSON)", text };
      }
      logs.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.match(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );

  const waitForLog = (match: (line: LogLine) => boolean, what: string): Promise<LogLine> => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(`${name}: no log line ${what} within ${WAIT_MS} ms; logs:\n${JSON.stringify(logs)}\n${stderr}`),
        );
      }, WAIT_MS);
      waiters.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) });
      void exited.then(({ code }) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before logging ${what}; logs:\n${JSON.stringify(logs)}\n${stderr}`));
      });
    });
  };

  return { name, proc, logs, waitForLog, exited, stderr: () => stderr };
}

/** Starts the built app as `name` with PORT=0 and `env`, resolved once it logged `listening` with its port. */
export async function startService(name: string, env: Record<string, string> = {}): Promise<Service> {
  const spawned = spawnService(name, env);
  const line = await spawned.waitForLog((l) => l.msg === "listening", '"listening"');
  const port = line.port as number;
  return { ...spawned, port, url: `http://127.0.0.1:${port}` };
}

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly ms: number;
}

/** One GET on a fresh connection (no agent pooling), bounded by WAIT_MS. */
export function get(url: string, headers: Record<string, string> = {}, method = "GET"): Promise<Reply> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout: WAIT_MS }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: performance.now() - started }),
      );
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: no answer within ${WAIT_MS} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** Writes `bytes` on a raw connection and collects everything until the server closes it. */
export function rawExchange(port: number, bytes: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes));
    let answer = "";
    socket.setTimeout(WAIT_MS, () =>
      socket.destroy(new Error(`no close within ${WAIT_MS} ms; got ${JSON.stringify(answer)}`)),
    );
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (answer += chunk));
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
  });
}

/** A stand-in downstream on port 0; `handler` decides what each request gets. */
interface FakeServer {
  readonly url: string;
  readonly port: number;
  /** Requests received so far, with their headers. */
  readonly requests: http.IncomingMessage[];
  /** TCP connections accepted so far. */
  connections: number;
  /** TCP connections open now. */
  open: number;
  /** Resolves when the n-th request has arrived. */
  nthRequest(n: number): Promise<http.IncomingMessage>;
  close(): Promise<void>;
}

export async function fakeServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<FakeServer> {
  const requests: http.IncomingMessage[] = [];
  const waiters: { n: number; resolve: (req: http.IncomingMessage) => void }[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    for (const waiter of waiters.filter((w) => w.n === requests.length)) waiter.resolve(req);
    handler(req, res);
  });
  const fake: FakeServer = {
    url: "",
    port: 0,
    requests,
    connections: 0,
    open: 0,
    nthRequest: (n) =>
      requests.length >= n ? Promise.resolve(requests[n - 1]) : new Promise((resolve) => waiters.push({ n, resolve })),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on("connection", (socket: net.Socket) => {
    fake.connections++;
    fake.open++;
    socket.once("close", () => fake.open--);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  fakes.add(Object.assign(fake, { port, url: `http://127.0.0.1:${port}/` }));
  return fake;
}

/** A downstream that accepts connections and never answers. */
export function hangingServer(): Promise<FakeServer> {
  return fakeServer(() => undefined);
}

/** A loopback URL on which nothing listens (a port just freed). */
export async function refusedUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}/`;
}

/**
 * A TCP proxy on loopback in front of `target` that delays every chunk by `delayMs` each way:
 * the network transit between two hops, which loopback does not have. Order is kept (equal
 * delays fire in order). Closed by {@link stopAll}.
 */
export async function slowLink(target: string, delayMs: number): Promise<{ url: string }> {
  const to = new URL(target);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(to.port), to.hostname);
    for (const [from, into] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from);
      from.on("data", (chunk) => setTimeout(() => into.write(chunk), delayMs));
      from.on("end", () => setTimeout(() => into.end(), delayMs));
      from.on("error", () => into.destroy());
      from.on("close", () => {
        sockets.delete(from);
        setTimeout(() => into.destroy(), delayMs);
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  fakes.add({
    url: "",
    port,
    requests: [],
    connections: 0,
    open: 0,
    nthRequest: () => new Promise(() => undefined),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
  return { url: `http://127.0.0.1:${port}/` };
}
