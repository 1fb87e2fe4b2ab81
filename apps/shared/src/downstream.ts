import { Agent, type Dispatcher } from "undici";
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

/** Keep-alive connection pool shared by every downstream call of one process. */
export function createDownstreamAgent(): Agent {
  return new Agent({ keepAliveTimeout: 4_000, keepAliveMaxTimeout: 60_000 });
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
 * `GET /` on one downstream with `x-request-id` and `x-request-timeout-ms` (the bound, so the
 * callee spends no more than this caller waits), bounded as a whole (connect, headers, body)
 * by `timeoutMs`. It never throws: `result` resolves with a CallResult. `cancel()` ends it
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
  /** When the call times out, on performance.now()'s clock. */
  private endsAt: number;

  constructor(
    agent: Dispatcher,
    private readonly target: Downstream,
    requestId: string,
    private timeoutMs: number,
  ) {
    this.result = new Promise((resolve) => (this.resolve = resolve));
    this.endsAt = this.started + timeoutMs;
    this.timer = setTimeout(abortTimedOut, timeoutMs, this);
    const headers: Record<string, string> = {
      "x-request-id": requestId,
      "x-request-timeout-ms": String(timeoutMs),
      accept: "application/json",
    };
    if (target.authorization !== undefined) headers.authorization = target.authorization;
    agent.dispatch({ origin: target.origin, path: "/", method: "GET", headers }, this);
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
    this.settle({
      ok: false,
      url: this.target.shown,
      status: 504,
      error: `timed out after ${this.timeoutMs} ms`,
      ms: this.ms(),
    });
    this.stop(TIMED_OUT);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Settled while still queued for a connection: nothing more to send.
    if (this.settled) controller.abort(CANCELLED);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
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
