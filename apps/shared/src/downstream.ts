import { Agent, request } from "undici";

/** What one downstream call came to. */
export type CallResult =
  | { readonly ok: true; readonly url: string; readonly body: unknown; readonly ms: number }
  | {
      readonly ok: false;
      readonly url: string;
      /** 502: error, refused, non-2xx or bad body; 504: timed out. */
      readonly status: 502 | 504;
      readonly error: string;
      readonly ms: number;
    };

/** Largest downstream body read; a larger one is a failure, not a memory problem. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Keep-alive connection pool shared by every downstream call of one process. */
export function createDownstreamAgent(): Agent {
  return new Agent({ keepAliveTimeout: 4_000, keepAliveMaxTimeout: 60_000 });
}

/** Abort reasons made once: `abort()` without one builds a DOMException (and its stack) each time. */
const TIMED_OUT = new Error("downstream call timed out");
export const CANCELLED = new Error("downstream call cancelled");

/**
 * Timed-out calls are aborted a few per turn of the event loop: calls started together time
 * out together, and aborting hundreds in one go (each closes its connection and answers 504)
 * would hold up every other request, `/health` included, for that long.
 */
const ABORTS_PER_TURN = 4;
const timedOut: AbortController[] = [];
let abortsScheduled = false;

function abortTimedOut(controller: AbortController): void {
  timedOut.push(controller);
  if (!abortsScheduled) {
    abortsScheduled = true;
    setImmediate(abortSome);
  }
}

function abortSome(): void {
  for (const controller of timedOut.splice(0, ABORTS_PER_TURN)) controller.abort(TIMED_OUT);
  if (timedOut.length > 0) setImmediate(abortSome);
  else abortsScheduled = false;
}

/**
 * `GET url` with `x-request-id`, bounded as a whole (connect, headers, body) by `timeoutMs`.
 * Never throws: every outcome is a CallResult. `controller.abort(CANCELLED)` ends it early
 * (the caller no longer needs the answer).
 */
export async function callDownstream(
  agent: Agent,
  url: string,
  requestId: string,
  timeoutMs: number,
  controller: AbortController,
): Promise<CallResult> {
  const started = performance.now();
  const ms = () => Math.round((performance.now() - started) * 10) / 10;
  const timer = setTimeout(abortTimedOut, timeoutMs, controller);
  try {
    const res = await request(url, {
      method: "GET",
      dispatcher: agent,
      headers: { "x-request-id": requestId, accept: "application/json" },
      signal: controller.signal,
    });
    const text = await readCapped(res.body);
    if (res.statusCode < 200 || res.statusCode > 299) {
      return { ok: false, url, status: 502, error: describeNon2xx(res.statusCode, text), ms: ms() };
    }
    try {
      return { ok: true, url, body: JSON.parse(text), ms: ms() };
    } catch {
      return { ok: false, url, status: 502, error: `answered ${res.statusCode} with a body that is not JSON`, ms: ms() };
    }
  } catch (err) {
    if (controller.signal.reason === TIMED_OUT) {
      return { ok: false, url, status: 504, error: `timed out after ${timeoutMs} ms`, ms: ms() };
    }
    return { ok: false, url, status: 502, error: describeError(err), ms: ms() };
  } finally {
    clearTimeout(timer);
  }
}

async function readCapped(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      body.destroy();
      throw new Error(`body larger than ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** `service-b answered 502: connection refused (http://...)` when the body is one of ours. */
function describeNon2xx(status: number, text: string): string {
  try {
    const body = JSON.parse(text) as { service?: unknown; error?: unknown; failed?: unknown };
    if (typeof body.service === "string" && typeof body.error === "string") {
      const where = typeof body.failed === "string" ? ` (${body.failed})` : "";
      return `${body.service} answered ${status}: ${body.error}${where}`;
    }
  } catch {
    // not JSON: the status alone
  }
  return `answered ${status}`;
}

function describeError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } };
  const code = e?.code ?? e?.cause?.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return "connection reset";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "DNS lookup failed";
  const message = typeof e?.message === "string" ? e.message : String(err);
  return typeof code === "string" ? `${code}: ${message}` : message;
}
