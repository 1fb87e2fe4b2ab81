import { Agent, buildConnector, type Dispatcher } from "undici";
import { redactUrl } from "./config";

export { redactUrl };

/** One entry of `DOWNSTREAM_URLS`, resolved once at start. */
export interface Downstream {
  /** What bodies and logs show: the URL as configured, with any `user:password@` replaced by `***@`. */
  readonly shown: string;
  /** `scheme://host:port`: every call is `GET /` on it, whatever path the URL has (the contract says `GET /`). */
  readonly origin: string;
  /** `Basic <base64>` from the URL's `user:password`, sent as `authorization`; never shown or logged. */
  readonly authorization?: string;
}

/** Parses one `DOWNSTREAM_URLS` entry (already checked by loadConfig to be an http(s) URL). */
export function downstreamOf(url: string): Downstream {
  const parsed = new URL(url);
  if (parsed.username === "" && parsed.password === "") return { shown: url, origin: parsed.origin };
  const user = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  return {
    shown: redactUrl(url),
    origin: parsed.origin,
    authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`,
  };
}

/** What one downstream call came to. */
export type CallResult =
  | {
      readonly ok: true;
      readonly url: string;
      /** The downstream's body, checked to be JSON (and not nested too deep), as received. */
      readonly body: string;
      readonly ms: number;
    }
  | {
      readonly ok: false;
      /** The downstream as shown (credentials redacted). */
      readonly url: string;
      /** 502: error, refused, non-2xx or bad body; 504: timed out (here or further down). */
      readonly status: 502 | 504;
      readonly error: string;
      readonly ms: number;
      /**
       * A 504 that one of our services further down reported, to be answered unchanged (the
       * hop that saw the hang names it); undefined when this call is the one that timed out.
       */
      readonly relay?: string;
    };

/** Largest downstream body read; a larger one is a failure, not a memory problem. */
export const MAX_BODY_BYTES = 1024 * 1024;
/**
 * Deepest JSON accepted from a downstream: our own bodies nest 2 levels per hop. A deeper one
 * is a 502 (it would overflow the stack of whoever serialises it again).
 */
export const MAX_JSON_DEPTH = 512;

const NO_CALL_WAITING = new Error("no downstream call is waiting for this connection");

/**
 * The keep-alive connections of every downstream call of one process, opened only while a call
 * to that origin waits for one. undici 7 reconnects each time a request is aborted mid-call (a
 * timeout or a cancel must close its connection, and the aborted request is put back as
 * pending: nodejs/undici#5845; the fix is not in undici 7, and undici 8 needs Node 22). Against
 * a hung downstream every call that timed out cost a second connection that no call used, its
 * idle timeout closing them together 4 s later: a burst of closes in the profile of 200 hanging
 * requests, and twice the connections to a downstream already in trouble.
 */
export class DownstreamPool {
  private readonly agent: Agent;
  /** Per origin: calls handed to the agent whose request is not yet written on a connection. */
  private readonly waiting = new Map<string, number>();

  constructor() {
    const connect = buildConnector({});
    this.agent = new Agent({
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      connect: (options, callback) => {
        // undici asks from inside its own handlers (a dispatch, or the close of an aborted
        // call's socket): answered a microtask later, so a refusal never re-enters them, and
        // from the count as it is then.
        queueMicrotask(() => {
          if ((this.waiting.get(`${options.protocol}//${options.host}`) ?? 0) > 0) connect(options, callback);
          else callback(NO_CALL_WAITING, null);
        });
      },
    });
  }

  /** Hands `handler`'s request to a connection; `written(origin)` must follow, once. */
  send(options: Dispatcher.DispatchOptions & { origin: string }, handler: Dispatcher.DispatchHandler): void {
    this.count(options.origin, 1);
    this.agent.dispatch(options, handler);
  }

  /** The request is on a connection, or its call is over: it no longer needs one. */
  written(origin: string): void {
    this.count(origin, -1);
  }

  destroy(): Promise<void> {
    return this.agent.destroy();
  }

  private count(origin: string, by: number): void {
    const n = (this.waiting.get(origin) ?? 0) + by;
    if (n === 0) this.waiting.delete(origin);
    else this.waiting.set(origin, n);
  }
}

/**
 * A call that waited is not started with less than this, or a quarter of its bound, left: it
 * would take or open a connection only to close it moments later, and against a hung
 * downstream the calls queued behind a timed-out one were sent just before their own ends.
 */
const MIN_START_MS = 50;

/** The fewest calls a gate keeps in flight to a downstream whose calls time out. */
const MIN_CONCURRENCY = 4;

/**
 * How many calls go to one downstream at once; the others wait their turn, in order, within
 * their own bound. The limit starts at `max`, halves (down to MIN_CONCURRENCY) each time a
 * call that went out times out, and grows back by one with each answer (additive increase,
 * multiplicative decrease). A call that times out on a connection must close it (HTTP/1.1
 * has no other way to cancel a request), so against a hung downstream every waiting request
 * opened and closed a connection each DOWNSTREAM_TIMEOUT_MS, and that churn took the CPU a
 * `/health` probe needed (docs/benchmarks.md). With the gate, a few connections churn; a
 * call that times out waiting answers 504 without ever opening one. A healthy downstream
 * never meets the limit unless `max` calls are in flight.
 *
 * While the last call that went out timed out (no answer since), the newest waiting call goes
 * first: the oldest has the least time left, so it would open a connection only to close it
 * moments later (under a steady stream, about three times as many calls went out in order:
 * tests/apps/gate.test.ts); the newest holds its slot for its whole bound and has the most
 * time to get an answer if the downstream recovers.
 */
export class Gate {
  private running = 0;
  private readonly waiting: Call[] = [];
  private current: number;
  private drainScheduled = false;
  /** The last call that went out timed out, and none has been answered since. */
  private timingOut = false;

  constructor(readonly max: number) {
    this.current = max;
  }

  /** The limit now. */
  get limit(): number {
    return this.current;
  }

  /** Starts `call` now, or when it is its turn. */
  enter(call: Call): void {
    // With calls waiting, a drain is already due whenever there is room (leave and answered
    // schedule one), and this call goes after them.
    if (this.waiting.length === 0 && this.running < this.current) {
      this.running++;
      call.start();
    } else {
      this.waiting.push(call);
    }
  }

  /** A call that went out got an answer (any status): the downstream is alive. */
  answered(): void {
    this.timingOut = false;
    if (this.current < this.max) {
      this.current++;
      this.drainSoon();
    }
  }

  /** A call that went out timed out. */
  timedOut(): void {
    this.timingOut = true;
    this.current = Math.max(Math.min(MIN_CONCURRENCY, this.max), Math.floor(this.current / 2));
  }

  /** A call that went out has ended. */
  leave(): void {
    this.running--;
    this.drainSoon();
  }

  /**
   * After the I/O callbacks of this turn: when many clients go away at once, every cancelled
   * call leaves the queue first, instead of each cancellation starting the next waiting call
   * (a new connection) only for it to be cancelled in turn.
   */
  private drainSoon(): void {
    if (this.waiting.length === 0 || this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  /**
   * Waiting calls start up to the limit, in order (newest first while calls time out); one that
   * no longer has time is dropped (its own timer answers it).
   */
  private drain(): void {
    const now = performance.now();
    if (this.timingOut) {
      while (this.running < this.current && this.waiting.length > 0) {
        const next = this.waiting.pop()!;
        if (next.startable(now)) {
          this.running++;
          next.start();
        }
      }
      // The oldest, which can no longer start (time only runs out), leave the queue in one go.
      let stale = 0;
      while (stale < this.waiting.length && !this.waiting[stale].startable(now)) stale++;
      this.waiting.splice(0, stale);
      return;
    }
    // One splice at the end: behind a hung downstream the queue holds every request of the
    // last DOWNSTREAM_TIMEOUT_MS, most of them already answered.
    let i = 0;
    for (; i < this.waiting.length && this.running < this.current; i++) {
      const next = this.waiting[i];
      if (next.startable(now)) {
        this.running++;
        next.start();
      }
    }
    this.waiting.splice(0, i);
  }
}

/**
 * Timed-out calls are settled one per turn of the event loop: calls started together time out
 * together, and settling hundreds in one go (each closes its connection, answers 504 and logs;
 * its client sends the next request at once) would hold up every other request, `/health`
 * included, for that long. One per turn, not a time slice: most of a settlement's cost (the
 * 504, the log line, the socket's close) runs after the settling call returns, in the
 * microtasks and I/O callbacks that follow it, where a slice's clock does not see it (the
 * profile under the bench's 200 hanging requests showed 0.5 ms slices settling dozens at once).
 */
const timedOut: Call[] = [];
let abortsScheduled = false;

function abortTimedOut(call: Call): void {
  timedOut.push(call);
  if (!abortsScheduled) {
    abortsScheduled = true;
    setImmediate(abortOne);
  }
}

function abortOne(): void {
  timedOut.shift()!.timeOut();
  if (timedOut.length > 0) setImmediate(abortOne);
  else abortsScheduled = false;
}

const CANCELLED = new Error("downstream call cancelled");
const TIMED_OUT = new Error("downstream call timed out");

/**
 * `GET /` on one downstream with `x-request-id` and `x-request-timeout-ms` (what is left of the
 * bound when it goes out, less `answerMarginMs`: the callee's own failure then has that long to
 * travel back before this caller gives up on it), bounded as a whole (its wait at the gate,
 * connect, headers, body) by `timeoutMs`; it goes out when `gate`
 * gives it its turn. It never throws: `result` resolves with a CallResult. `cancel()` ends it
 * early (the caller no longer needs the answer); `shorten(atMs)` brings its end forward.
 *
 * Built on undici's `dispatch` (one handler object per call, no body stream, no AbortSignal):
 * the profile of the chain showed undici's `request()` layers among the largest costs per hop.
 */
export class Call implements Dispatcher.DispatchHandler {
  readonly result: Promise<CallResult>;
  private resolve!: (result: CallResult) => void;
  private controller: Dispatcher.DispatchController | undefined;
  private settled = false;
  private status = 0;
  private chunks: Buffer[] = [];
  private size = 0;
  private timer: NodeJS.Timeout;
  private readonly started = performance.now();
  /** Handed to the pool (it had its turn at the gate). */
  private dispatched = false;
  /** Handed to the pool and not yet written on a connection. */
  private awaitingConnection = false;
  private readonly headers: Record<string, string>;
  /** When the call times out, on performance.now()'s clock. */
  private endsAt: number;

  constructor(
    private readonly pool: DownstreamPool,
    private readonly target: Downstream,
    private readonly gate: Gate,
    requestId: string,
    private timeoutMs: number,
    private readonly answerMarginMs = 0,
  ) {
    this.result = new Promise((resolve) => (this.resolve = resolve));
    this.endsAt = this.started + timeoutMs;
    this.timer = setTimeout(abortTimedOut, timeoutMs, this);
    this.headers = { "x-request-id": requestId, accept: "application/json" };
    if (target.authorization !== undefined) this.headers.authorization = target.authorization;
    gate.enter(this);
  }

  /** Whether a call that waited is still worth starting at `now`. */
  startable(now: number): boolean {
    return !this.settled && this.endsAt - now >= Math.max(MIN_START_MS, this.timeoutMs / 4);
  }

  /** Its turn at the gate: sends the request, with the time it has left, less the answer's margin, as the callee's budget. */
  start(): void {
    this.dispatched = true;
    this.awaitingConnection = true;
    const left = Math.min(this.timeoutMs, Math.max(1, Math.round(this.endsAt - performance.now())));
    this.headers["x-request-timeout-ms"] = String(Math.max(0, left - this.answerMarginMs));
    this.pool.send({ origin: this.target.origin, path: "/", method: "GET", headers: this.headers }, this);
  }

  /** Stops waiting at `at` (performance.now()'s clock) if that is sooner than planned. */
  shorten(at: number): void {
    if (this.settled || at >= this.endsAt) return;
    clearTimeout(this.timer);
    this.endsAt = at;
    this.timeoutMs = Math.max(0, Math.round(at - this.started));
    this.timer = setTimeout(abortTimedOut, Math.max(0, at - performance.now()), this);
  }

  cancel(): void {
    if (this.settled) return;
    this.settle({ ok: false, url: this.target.shown, status: 502, error: "cancelled", ms: this.ms() });
    this.stop(CANCELLED);
  }

  /** Called by the staggered abort queue. */
  timeOut(): void {
    if (this.settled) return;
    if (this.dispatched) this.gate.timedOut();
    this.settle({
      ok: false,
      url: this.target.shown,
      status: 504,
      error: this.dispatched
        ? `timed out after ${this.timeoutMs} ms`
        : `timed out after ${this.timeoutMs} ms waiting for a turn (${this.gate.limit} calls at a time)`,
      ms: this.ms(),
    });
    this.stop(TIMED_OUT);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.connected();
    // Settled while still queued for a connection: nothing more to send.
    if (this.settled) controller.abort(CANCELLED);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
    if (!this.settled) this.gate.answered();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    this.size += chunk.length;
    if (this.size > MAX_BODY_BYTES) {
      this.fail(`answered ${this.status} with a body larger than ${MAX_BODY_BYTES} bytes`);
      controller.abort(new Error("body too large"));
      return;
    }
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.settled) return;
    const text =
      this.chunks.length === 1 ? this.chunks[0].toString("utf8") : Buffer.concat(this.chunks).toString("utf8");
    this.chunks = [];
    if (this.status < 200 || this.status > 299) {
      const relay = this.status === 504 ? ourReport(text) : undefined;
      if (relay !== undefined) {
        this.settle({
          ok: false,
          url: this.target.shown,
          status: 504,
          error: "timed out further down",
          ms: this.ms(),
          relay,
        });
      } else {
        this.fail(describeNon2xx(this.status, text));
      }
      return;
    }
    const problem = jsonProblem(text);
    if (problem !== undefined) this.fail(`answered ${this.status} with ${problem}`);
    else this.settle({ ok: true, url: this.target.shown, body: text, ms: this.ms() });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (!this.settled) this.fail(describeError(err));
  }

  private fail(error: string): void {
    this.settle({ ok: false, url: this.target.shown, status: 502, error, ms: this.ms() });
  }

  private stop(reason: Error): void {
    if (this.controller !== undefined && !this.controller.aborted) this.controller.abort(reason);
  }

  private settle(result: CallResult): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve(result);
    this.connected();
    if (this.dispatched) this.gate.leave();
  }

  /** No longer waiting for a connection (written on one, or over). */
  private connected(): void {
    if (!this.awaitingConnection) return;
    this.awaitingConnection = false;
    this.pool.written(this.target.origin);
  }

  private ms(): number {
    return Math.round((performance.now() - this.started) * 10) / 10;
  }
}

/**
 * Why `text` is not a body we pass on (undefined when it is): not JSON, or nested deeper than
 * MAX_JSON_DEPTH. The depth is scanned first, without recursion.
 */
export function jsonProblem(text: string): string | undefined {
  if (nestingDepth(text) > MAX_JSON_DEPTH) return `JSON nested deeper than ${MAX_JSON_DEPTH} levels`;
  try {
    JSON.parse(text);
    return undefined;
  } catch {
    return "a body that is not JSON";
  }
}

/** The deepest `[`/`{` nesting of `text`, outside strings (stops counting past MAX_JSON_DEPTH). */
function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) {
      inString = true;
    } else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > max && (max = depth) > MAX_JSON_DEPTH) return max;
    } else if (c === 93 /* ] */ || c === 125 /* } */) {
      depth--;
    }
  }
  return max;
}

/** One of our services' failure bodies: `{"service":..., "error":..., "failed":...}`. */
function ourFailure(text: string): { service: string; error: string; failed?: string } | undefined {
  if (text.length > 64 * 1024 || jsonProblem(text) !== undefined) return undefined;
  const body = JSON.parse(text) as { service?: unknown; error?: unknown; failed?: unknown } | null;
  if (body === null || typeof body !== "object") return undefined;
  if (typeof body.service !== "string" || typeof body.error !== "string") return undefined;
  if (body.failed !== undefined && typeof body.failed !== "string") return undefined;
  return body as { service: string; error: string; failed?: string };
}

/** The body of a 504 one of our services reported, to pass on unchanged; undefined for anything else. */
function ourReport(text: string): string | undefined {
  return ourFailure(text) === undefined ? undefined : text;
}

/** `service-b answered 502: connection refused (http://...)` when the body is one of ours. */
function describeNon2xx(status: number, text: string): string {
  const body = ourFailure(text);
  if (body === undefined) return `answered ${status}`;
  const where = body.failed !== undefined ? ` (${body.failed})` : "";
  return `${body.service} answered ${status}: ${body.error}${where}`;
}

function describeError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } };
  const code = e?.code ?? e?.cause?.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return "connection reset";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "DNS lookup failed";
  const message = typeof e?.message === "string" ? e.message : String(err);
  return redactUrl(typeof code === "string" ? `${code}: ${message}` : message);
}
