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

/**
 * `GET url` with `x-request-id`, bounded as a whole (connect, headers, body) by `timeoutMs`.
 * Never throws: every outcome is a CallResult. `signal` aborts it early (the caller gave up).
 */
export async function callDownstream(
  agent: Agent,
  url: string,
  requestId: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<CallResult> {
  const started = performance.now();
  const ms = () => Math.round((performance.now() - started) * 10) / 10;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const onCallerAbort = () => controller.abort();
  signal.addEventListener("abort", onCallerAbort, { once: true });
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
    if (timedOut) return { ok: false, url, status: 504, error: `timed out after ${timeoutMs} ms`, ms: ms() };
    return { ok: false, url, status: 502, error: describeError(err), ms: ms() };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onCallerAbort);
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
