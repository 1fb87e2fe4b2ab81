import { randomUUID } from "node:crypto";
import http, { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { Config } from "./config";
import { CANCELLED, callDownstream, createDownstreamAgent, type CallResult } from "./downstream";
import type { Logger } from "./logger";

/** A sample service: an HTTP server that is not listening yet, and its shutdown steps. */
export interface App {
  /** Not listening: the caller picks the port (`server.ts`: PORT on 0.0.0.0; tests: 0). */
  readonly server: http.Server;
  /** True once `startDraining` ran: `/health` answers 503, every response closes its connection. */
  readonly draining: boolean;
  /** `GET /` requests being answered right now. */
  readonly inFlight: number;
  /** Step 1 of shutdown: fail readiness, keep serving. */
  startDraining(): void;
  /** Step 2: stop accepting, let in-flight requests finish, close downstream connections. */
  close(): Promise<void>;
}

const HEALTH_OK = Buffer.from('{"status":"ok"}');
const HEALTH_DRAINING = Buffer.from('{"status":"shutting down"}');

/** An incoming `x-request-id` is kept when it looks like an id; otherwise a UUID replaces it. */
const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === "string" && REQUEST_ID.test(header) ? header : randomUUID();
}

/** The app factory: routes, downstream fan-out, malformed-request handling. Never listens. */
export function createApp(config: Config, log: Logger): App {
  const agent = createDownstreamAgent();
  const service = config.serviceName;
  let draining = false;
  let inFlight = 0;

  const server = http.createServer((req, res) => {
    const reqId = requestIdOf(req.headers["x-request-id"]);
    res.setHeader("x-request-id", reqId);
    if (draining) res.setHeader("connection", "close");
    const url = req.url ?? "/";
    const query = url.indexOf("?");
    const path = query === -1 ? url : url.slice(0, query);

    if (path !== "/health" && path !== "/") {
      sendJson(res, 404, { service, error: "not found", path });
      log.info({ reqId, method: req.method, path, status: 404 }, "request");
    } else if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      sendJson(res, 405, { service, error: "method not allowed", method: req.method });
      log.info({ reqId, method: req.method, path, status: 405 }, "request");
    } else if (path === "/health") {
      send(res, draining ? 503 : 200, draining ? HEALTH_DRAINING : HEALTH_OK);
      if (log.isLevelEnabled("debug")) log.debug({ reqId, method: req.method, path, status: res.statusCode }, "request");
    } else if (config.downstreamUrls.length === 0) {
      sendJson(res, 200, { service, downstream: [] });
      log.info({ reqId, method: req.method, path, status: 200, calls: 0 }, "request");
    } else {
      inFlight++;
      res.once("close", () => inFlight--);
      fanOut(req, res, reqId).catch((err: unknown) => {
        log.error({ reqId, err }, "unexpected error");
        if (!res.headersSent) sendJson(res, 500, { service, error: "internal error" });
        else res.destroy();
      });
    }
  });

  /** `GET /`: every downstream at once; the first failure answers (and cancels the rest). */
  async function fanOut(req: http.IncomingMessage, res: http.ServerResponse, reqId: string): Promise<void> {
    const started = performance.now();
    const calls = config.downstreamUrls.map((url) => ({ url, controller: new AbortController(), done: false }));
    // Once the answer is decided (or the client has gone), calls still running are cancelled.
    const cancelRest = () => {
      for (const call of calls) if (!call.done) call.controller.abort(CANCELLED);
    };
    res.once("close", cancelRest);
    const outcome = await firstFailureOrAll(
      calls.map((call) =>
        callDownstream(agent, call.url, reqId, config.downstreamTimeoutMs, call.controller).then((result) => {
          call.done = true;
          return result;
        }),
      ),
    );
    cancelRest();
    const ms = Math.round((performance.now() - started) * 10) / 10;
    if (res.destroyed) {
      log.info({ reqId, method: req.method, path: "/", ms }, "client closed the connection before the answer");
    } else if (Array.isArray(outcome)) {
      sendJson(res, 200, { service, downstream: outcome.map((r) => r.body) });
      log.info({ reqId, method: req.method, path: "/", status: 200, ms, calls: outcome.length }, "request");
    } else {
      sendJson(res, outcome.status, { service, error: outcome.error, failed: outcome.url });
      log.warn({ reqId, url: outcome.url, error: outcome.error, callMs: outcome.ms }, "downstream failed");
      log.info({ reqId, method: req.method, path: "/", status: outcome.status, ms }, "request");
    }
  }

  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    const answering = (socket as Duplex & { _httpMessage?: http.ServerResponse })._httpMessage;
    if (err.code === "ECONNRESET" || !socket.writable || answering?.headersSent) {
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
    startDraining() {
      draining = true;
    },
    close() {
      return new Promise<void>((resolve) => {
        // The callback runs once every connection has ended (or at once when never listening).
        server.close(() => {
          agent.close().then(resolve, resolve);
        });
        server.closeIdleConnections();
      });
    },
  };
}

function send(res: http.ServerResponse, status: number, body: Buffer): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  send(res, status, Buffer.from(JSON.stringify(value)));
}

type Failure = Extract<CallResult, { ok: false }>;
type Success = Extract<CallResult, { ok: true }>;

/** Resolves with the first failure as soon as it happens, or with every success in order. */
function firstFailureOrAll(calls: Promise<CallResult>[]): Promise<Success[] | Failure> {
  return new Promise((resolve) => {
    const results: Success[] = new Array(calls.length);
    let left = calls.length;
    if (left === 0) resolve(results);
    calls.forEach((call, i) => {
      void call.then((result) => {
        if (!result.ok) return resolve(result);
        results[i] = result;
        if (--left === 0) resolve(results);
      });
    });
  });
}
