import { randomUUID } from "node:crypto";
import http, { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Config } from "./config";
import { DEADLINE_MARGIN_MS } from "./deadline";
import { Call, downstreamOf, DownstreamPool, Gate, type CallResult } from "./downstream";
import type { Logger } from "./logger";

/** A sample service: an HTTP server that is not listening yet, and its shutdown steps. */
export interface App {
  /** Not listening: the caller picks the port (`server.ts`: PORT on 0.0.0.0; tests: 0). */
  readonly server: http.Server;
  /** True once `startDraining` ran: every route still answers normally, each response closes its connection. */
  readonly draining: boolean;
  /** `GET /` requests being answered right now. */
  readonly inFlight: number;
  /**
   * Step 1 of shutdown: keep serving every route, close each connection after its response,
   * and answer every request by `answerBy` (performance.now()'s clock): downstream calls that
   * would wait longer are cut short and answered 504.
   */
  startDraining(answerBy: number): void;
  /** Step 2: stop accepting, close idle and silent connections, let in-flight requests finish. */
  close(): Promise<void>;
}

export { DEADLINE_MARGIN_MS };

/** The header that carries a request's remaining budget, in ms, relative (app contract). */
export const TIMEOUT_HEADER = "x-request-timeout-ms";

const HEALTH_OK = Buffer.from('{"status":"ok"}');
const LIVE = Buffer.from('{"status":"alive"}');

/** An incoming `x-request-id` is kept when it looks like an id; otherwise a UUID replaces it. */
const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === "string" && REQUEST_ID.test(header) ? header : randomUUID();
}

/** The budget in `x-request-timeout-ms` (whole ms); undefined when absent or not a plain integer (then ignored). */
export function budgetOf(header: string | string[] | undefined): number | undefined {
  return typeof header === "string" && /^\d{1,9}$/.test(header) ? Number(header) : undefined;
}

/**
 * The path of a request target: origin-form (`/health?x`) or absolute-form
 * (`http://host/health?x`, which RFC 9112 says a server must accept); `/` when it has none.
 */
export function pathOf(target: string): string {
  let start = 0;
  if (target.charCodeAt(0) !== 47 /* / */) {
    const authority = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(target);
    if (authority !== null) start = authority[0].length;
  }
  let end = target.length;
  for (let i = start; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) end = i;
  }
  return start === end ? "/" : target.slice(start, end);
}

/** The app factory: routes, downstream fan-out with deadlines, malformed requests, draining. Never listens. */
export function createApp(config: Config, log: Logger): App {
  const pool = new DownstreamPool();
  const service = config.serviceName;
  const serviceJson = JSON.stringify(service);
  const downstreams = config.downstreamUrls.map(downstreamOf);
  /** One gate per downstream entry: calls in flight to it at once. */
  const gates = downstreams.map(() => new Gate(config.downstreamConcurrency));
  let draining = false;
  let answerBy = Infinity;
  let closing = false;
  let inFlight = 0;
  /** Downstream calls under way, to cut short when the drain needs it. */
  const calls = new Set<Call>();
  /** Every open connection, to close the idle and silent ones on `close()`. */
  const sockets = new Set<Socket>();
  /** Connections with a response under way (more than one when requests are pipelined). */
  const answering = new Map<Socket, number>();

  function send(
    res: http.ServerResponse,
    status: number,
    body: Buffer | string,
    reqId: string,
    extra?: string[],
  ): void {
    const headers = [
      "content-type",
      "application/json",
      "content-length",
      String(Buffer.byteLength(body)),
      "x-request-id",
      reqId,
    ];
    if (draining) headers.push("connection", "close");
    if (extra !== undefined) headers.push(...extra);
    res.writeHead(status, headers);
    res.end(body);
  }

  const sendJson = (res: http.ServerResponse, status: number, value: unknown, reqId: string, extra?: string[]) =>
    send(res, status, JSON.stringify(value), reqId, extra);

  const server = http.createServer((req, res) => {
    const socket = req.socket;
    answering.set(socket, (answering.get(socket) ?? 0) + 1);
    res.once("close", () => {
      const left = answering.get(socket)! - 1;
      if (left === 0) answering.delete(socket);
      else answering.set(socket, left);
    });
    const reqId = requestIdOf(req.headers["x-request-id"]);
    const path = pathOf(req.url ?? "/");
    const method = req.method;
    const known = path === "/" || path === "/health" || path === "/livez";

    if (!known) {
      sendJson(res, 404, { service, error: "not found", path }, reqId);
      log.info({ reqId, method, path, status: 404 }, "request");
    } else if (method !== "GET" && method !== "HEAD") {
      sendJson(res, 405, { service, error: "method not allowed", method }, reqId, ["allow", "GET, HEAD"]);
      log.info({ reqId, method, path, status: 405 }, "request");
    } else if (path !== "/") {
      // /health (readiness) and /livez (liveness): 200 while the process runs, drain included.
      send(res, 200, path === "/health" ? HEALTH_OK : LIVE, reqId);
      if (log.isLevelEnabled("debug")) log.debug({ reqId, method, path, status: 200 }, "request");
    } else if (downstreams.length === 0) {
      send(res, 200, `{"service":${serviceJson},"downstream":[]}`, reqId);
      log.info({ reqId, method, path, status: 200, calls: 0 }, "request");
    } else {
      inFlight++;
      res.once("close", () => inFlight--);
      fanOut(req, res, reqId).catch((err: unknown) => {
        log.error({ reqId, err }, "unexpected error");
        if (!res.headersSent) sendJson(res, 500, { service, error: "internal error" }, reqId);
        else res.destroy();
      });
    }
  });

  /**
   * `GET /`: every downstream at once, each bounded by the smaller of DOWNSTREAM_TIMEOUT_MS and
   * the request's budget less the margin (and by the drain's end); the first failure answers
   * (and cancels the rest). A spent budget answers 504 without calling anyone.
   */
  async function fanOut(req: http.IncomingMessage, res: http.ServerResponse, reqId: string): Promise<void> {
    const started = performance.now();
    const budget = budgetOf(req.headers[TIMEOUT_HEADER]);
    const ownMs =
      budget === undefined
        ? config.downstreamTimeoutMs
        : Math.min(config.downstreamTimeoutMs, budget - DEADLINE_MARGIN_MS);
    const boundMs = Math.min(ownMs, Math.floor(answerBy - started));
    if (boundMs <= 0) {
      const error =
        ownMs <= 0
          ? `request budget spent: ${TIMEOUT_HEADER} ${budget} leaves no time for a downstream call (${DEADLINE_MARGIN_MS} ms margin)`
          : "shutting down: no time left for a downstream call";
      // No `failed`: it names the downstream that failed, and none was called.
      sendJson(res, 504, { service, error }, reqId);
      log.info({ reqId, method: req.method, path: "/", status: 504, budget, error }, "request");
      return;
    }
    const pending = downstreams.map(
      (target, i) => new Call(pool, target, gates[i], reqId, boundMs, DEADLINE_MARGIN_MS),
    );
    for (const call of pending) calls.add(call);
    // Once the answer is decided (or the client has gone), calls still running are cancelled.
    const cancelRest = () => {
      for (const call of pending) {
        calls.delete(call);
        call.cancel();
      }
    };
    res.once("close", cancelRest);
    const outcome = await firstFailureOrAll(pending.map((call) => call.result));
    cancelRest();
    const ms = Math.round((performance.now() - started) * 10) / 10;
    if (res.destroyed) {
      log.info({ reqId, method: req.method, path: "/", ms }, "client closed the connection before the answer");
    } else if (Array.isArray(outcome)) {
      send(res, 200, `{"service":${serviceJson},"downstream":[${outcome.map((r) => r.body).join(",")}]}`, reqId);
      log.info({ reqId, method: req.method, path: "/", status: 200, ms, calls: outcome.length }, "request");
    } else {
      if (outcome.relay !== undefined) send(res, 504, outcome.relay, reqId);
      else sendJson(res, outcome.status, { service, error: outcome.error, failed: outcome.url }, reqId);
      log.warn({ reqId, url: outcome.url, error: outcome.error, callMs: outcome.ms, boundMs }, "downstream failed");
      log.info({ reqId, method: req.method, path: "/", status: outcome.status, ms }, "request");
    }
  }

  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    // A response under way on this connection owns it: an error page written now would
    // interleave with that response, so the connection just closes.
    if (closing || err.code === "ECONNRESET" || !socket.writable || answering.has(socket as Socket)) {
      socket.destroy();
      return;
    }
    const reqId = randomUUID();
    const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
    log.warn({ reqId, code: err.code, status }, "malformed request");
    const body = JSON.stringify({ service, error: STATUS_CODES[status]?.toLowerCase() });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${reqId}\r\nconnection: close\r\n\r\n${body}`,
    );
  });

  return {
    server,
    get draining() {
      return draining;
    },
    get inFlight() {
      return inFlight;
    },
    startDraining(by: number) {
      draining = true;
      answerBy = by;
      for (const call of calls) call.shorten(by);
    },
    close() {
      closing = true;
      return new Promise<void>((resolve) => {
        // The callback runs once every connection has ended (or at once when never listening).
        server.close(() => {
          pool.destroy().then(resolve, resolve);
        });
        // A connection with no response under way is idle (keep-alive between requests),
        // silent (connected, nothing sent) or part-way through its headers: none of them is
        // owed an answer, and Node counts only the first as idle. The others end after their
        // response, which carries `connection: close` since the drain began.
        for (const socket of sockets) {
          if (!answering.has(socket)) socket.destroy();
        }
      });
    },
  };
}

type Failure = Extract<CallResult, { ok: false }>;
type Success = Extract<CallResult, { ok: true }>;

/** Resolves with the first failure as soon as it happens, or with every success in order. */
function firstFailureOrAll(results: Promise<CallResult>[]): Promise<Success[] | Failure> {
  return new Promise((resolve) => {
    const done: Success[] = new Array(results.length);
    let left = results.length;
    if (left === 0) resolve(done);
    results.forEach((result, i) => {
      void result.then((r) => {
        if (!r.ok) return resolve(r);
        done[i] = r;
        if (--left === 0) resolve(done);
      });
    });
  });
}
