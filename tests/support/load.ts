// A steady, bounded HTTP load that counts every failed request: what the cluster suite runs
// against a node port while it changes the stack. It needs no cluster, so the unit suite
// checks it against real servers on loopback (tests/load.test.ts).
import * as http from "http";
import type { Socket } from "net";

export type LoadMode = "new-connection" | "keep-alive";

/** Any failed request of a load run. */
export interface Failure {
  /** When the request was sent, in ms after the run started. */
  sentMs: number;
  mode: LoadMode;
  what: string;
  /** A keep-alive request sent on a socket from the pool: how long that socket had sat idle. */
  idleMs?: number;
}

export interface LoadResult {
  sent: number;
  ok: number;
  failures: Failure[];
  seconds: number;
}

/**
 * The keep-alive pool. A server announces how long it keeps an idle connection
 * (`Keep-Alive: timeout=5` from the apps, Node's default; it closes one idle for 5 s plus a
 * 1 s grace), and Node 20's http.Agent honours that hint, less 1 s, only when it is shorter
 * than the agent's own `timeout`, which has no default. Without one, a socket idle for ~6 s
 * stays in the pool, and a request sent on it as the server's FIN arrives fails with
 * "ECONNRESET socket hang up" (nodejs/node#47130): a client's race, not the server's fault,
 * and it once failed a cluster run's label edit. With a timeout set, an idle socket is
 * closed by the client at the hint less 1 s (4 s against the apps), before the server's.
 */
export function keepAlivePool(maxSockets = 4): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, timeout: 30_000 });
}

/**
 * A steady, bounded load on one URL: `rps` requests a second, alternating between a new TCP
 * connection per request and a small keep-alive pool, each with a 5 s timeout. Every request
 * that does not end in a 200 is a failure.
 */
export class Load {
  private timer?: NodeJS.Timeout;
  private readonly keepAlive = keepAlivePool();
  /** When each pooled socket's last response ended: how long a reused one sat idle. */
  private readonly freedAt = new WeakMap<Socket, number>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly result: LoadResult = { sent: 0, ok: 0, failures: [], seconds: 0 };
  private t0 = 0;

  constructor(
    private readonly url: string,
    private readonly rps = 100,
  ) {}

  start(): this {
    this.t0 = Date.now();
    let n = 0;
    this.timer = setInterval(() => {
      const mode = n++ % 2 === 0 ? "new-connection" : "keep-alive";
      const p = this.one(mode);
      this.inflight.add(p);
      void p.finally(() => this.inflight.delete(p));
    }, 1000 / this.rps);
    return this;
  }

  private one(mode: LoadMode): Promise<void> {
    this.result.sent++;
    const sentMs = Date.now() - this.t0;
    let idleMs: number | undefined;
    return new Promise((resolve) => {
      const fail = (what: string) => {
        this.result.failures.push({ sentMs, mode, what, ...(idleMs === undefined ? {} : { idleMs }) });
        resolve();
      };
      const req = http.get(
        this.url,
        { agent: mode === "keep-alive" ? this.keepAlive : false, timeout: 5000 },
        (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (d) => {
            body += d;
          });
          res.on("end", () => {
            if (res.statusCode === 200) {
              this.result.ok++;
              resolve();
            } else {
              fail(`HTTP ${res.statusCode} ${body.slice(0, 200)}`);
            }
          });
          res.on("error", (e) => fail(`response ${(e as NodeJS.ErrnoException).code ?? e.message}`));
        },
      );
      if (mode === "keep-alive") {
        req.once("socket", (socket: Socket) => {
          const freed = this.freedAt.get(socket);
          if (freed !== undefined) idleMs = Date.now() - freed;
          req.once("close", () => this.freedAt.set(socket, Date.now()));
        });
      }
      req.on("timeout", () => req.destroy(new Error("timeout after 5 s")));
      req.on("error", (e) => fail(`${(e as NodeJS.ErrnoException).code ?? ""} ${e.message}`.trim()));
    });
  }

  /** Stops sending, waits for what is in flight, and returns the counts. */
  async stop(): Promise<LoadResult> {
    clearInterval(this.timer);
    await Promise.all([...this.inflight]);
    this.keepAlive.destroy();
    this.result.seconds = (Date.now() - this.t0) / 1000;
    return this.result;
  }
}

/**
 * Every failure of a load run as `<mode>: <what>`: what a scenario asserts is empty. None is
 * tolerated: the refusals and bursts the suite once allowed for were new connections reusing a
 * source port that an earlier scenario had failed, which each load now clears first
 * (forgetUnansweredConnections in ../cluster/harness.ts; the figures are in docs/testing.md).
 */
export function failureLines(r: LoadResult): string[] {
  return r.failures.map((f) => `${f.mode}: ${f.what}`);
}

/** How many failures describeLoad lists one by one (when, and the pooled socket's idle time). */
const FAILURES_LISTED = 5;

/**
 * One line for the log: `sent 2412 in 24.1 s, ok 2412, failed 0`, then the kinds of failure
 * and, for the first few, when each was sent and whether its socket came from the pool.
 */
export function describeLoad(r: LoadResult): string {
  const kinds = new Map<string, number>();
  for (const f of r.failures) {
    const k = `${f.mode}: ${f.what.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, "<addr>")}`;
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  const detail = [...kinds].map(([k, n]) => `${n} x ${k}`).join("; ");
  const listed = r.failures.slice(0, FAILURES_LISTED).map((f) => {
    const socket =
      f.mode === "new-connection"
        ? ""
        : f.idleMs === undefined
          ? " on a new socket"
          : ` on a socket idle ${f.idleMs} ms`;
    return `+${(f.sentMs / 1000).toFixed(1)} s ${f.mode}${socket}`;
  });
  const more = r.failures.length > FAILURES_LISTED ? `, ${r.failures.length - FAILURES_LISTED} more` : "";
  return (
    `sent ${r.sent} in ${r.seconds.toFixed(1)} s, ok ${r.ok}, failed ${r.failures.length}` +
    (detail ? ` (${detail}; sent at ${listed.join(", ")}${more})` : "")
  );
}
