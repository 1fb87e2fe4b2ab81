// SIGTERM handling of the real process: every route answered normally through SHUTDOWN_DELAY_MS,
// then no new connections, idle and silent connections closed, in-flight requests answered,
// exit 0; and the forced exit, on the shutdown sequence itself.
import assert from "node:assert/strict";
import net from "node:net";
import type { App } from "../../apps/shared/src/app";
import { createLogger } from "../../apps/shared/src/logger";
import { createShutdown } from "../../apps/shared/src/shutdown";
import { fakeServer, get, spawnService, startService, stopAll } from "./harness";

/** A raw connection to `port` that has sent `bytes` (maybe nothing); resolves once connected and written. */
function openSocket(port: number, bytes: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () =>
      bytes === "" ? resolve(socket) : socket.write(bytes, () => resolve(socket)),
    );
    socket.on("error", () => undefined);
    socket.once("error", reject);
  });
}

describe("apps: shutdown", function () {
  afterEach(stopAll);

  it("SIGTERM: every route answered normally while draining (/health 200), then refuses connections, answers the in-flight request, exits 0", async function () {
    // The downstream holds its first request until released; later ones are answered at once.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const downstream = await fakeServer((req, res) => {
      const answer = () => res.end('{"service":"slow"}');
      if (req.headers["x-request-id"] === "in-flight") void released.then(answer);
      else answer();
    });
    const a = await startService("service-a", {
      DOWNSTREAM_URLS: downstream.url,
      DOWNSTREAM_TIMEOUT_MS: "15000",
      SHUTDOWN_DELAY_MS: "1500",
    });
    const inFlight = get(`${a.url}/`, { "x-request-id": "in-flight" });
    await downstream.nthRequest(1);

    a.proc.kill("SIGTERM");
    await a.waitForLog((l) => l.msg?.startsWith("shutdown started") === true, "shutdown started");
    // Kubernetes already takes a terminating pod out of its endpoints: a 503 here would only
    // reach clients that health-check through the Service.
    const health = await get(`${a.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body, '{"status":"ok"}');
    assert.equal(
      health.headers.connection,
      "close",
      "each response closes its connection, so clients reconnect elsewhere",
    );
    const live = await get(`${a.url}/livez`);
    assert.deepEqual([live.status, live.body], [200, '{"status":"alive"}']);
    const missing = await get(`${a.url}/nope`);
    assert.equal(missing.status, 404);
    const during = await get(`${a.url}/`, { "x-request-id": "during-delay" });
    assert.equal(during.status, 200, "still serving during SHUTDOWN_DELAY_MS");
    assert.equal(during.body, '{"service":"service-a","downstream":[{"service":"slow"}]}');

    const closing = await a.waitForLog((l) => l.msg?.startsWith("closing the server") === true, "closing the server");
    assert.equal(closing.inFlight, 1);
    await assert.rejects(get(`${a.url}/health`), { code: "ECONNREFUSED" });

    release();
    const answered = await inFlight;
    assert.equal(answered.status, 200);
    assert.equal(answered.body, '{"service":"service-a","downstream":[{"service":"slow"}]}');
    assert.deepEqual(await a.exited, { code: 0, signal: null });

    const order = a.logs
      .filter((l) => l.msg !== "request" || l.reqId === "in-flight")
      .map((l) => (l.msg === "request" ? `request ${l.status}` : l.msg?.replace(/:.*/, "")));
    assert.deepEqual(
      order,
      ["listening", "shutdown started", "closing the server", "request 200", "shutdown complete"],
      JSON.stringify(a.logs),
    );
  });

  it("idle keep-alive, silent and half-header connections do not hold up the exit: SIGTERM exits 0 at once", async function () {
    const a = await startService("service-a", { SHUTDOWN_TIMEOUT_MS: "5000" });
    // A keep-alive connection between requests, one that never sent a byte, one that sent half its headers.
    const idle = await openSocket(a.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise<void>((resolve) => idle.once("data", () => resolve()));
    const silent = await openSocket(a.port, "");
    const half = await openSocket(a.port, "GET /health HTTP/1.1\r\nHost: x\r\nX-Part");
    const closed = [idle, silent, half].map(
      (socket) => new Promise<void>((resolve) => socket.once("close", () => resolve())),
    );
    // Let the server see all three before the signal.
    await get(`${a.url}/health`);
    const signalled = performance.now();
    a.proc.kill("SIGTERM");
    assert.deepEqual(await a.exited, { code: 0, signal: null });
    const took = performance.now() - signalled;
    assert.ok(took < 1000, `exit ${Math.round(took)} ms after SIGTERM (the shutdown timeout is 5000 ms)`);
    await Promise.all(closed);
    assert.equal(a.logs.filter((l) => l.msg?.startsWith("forced exit") === true).length, 0);
  });

  it("forced exit 1 when the server does not close within the shutdown timeout (the backstop)", async function () {
    const exits: number[] = [];
    let drainBy = 0;
    const stuck: App = {
      server: undefined as never,
      draining: true,
      inFlight: 1,
      startDraining: (by) => void (drainBy = by),
      close: () => new Promise<void>(() => undefined),
    };
    const signalled = performance.now();
    const exited = new Promise<void>((resolve) => {
      const shutdown = createShutdown(stuck, {
        delayMs: 100,
        timeoutMs: 200,
        log: createLogger("t", "silent"),
        exit: (code) => (exits.push(code), resolve()),
      });
      shutdown("SIGTERM");
      shutdown("SIGTERM");
    });
    await exited;
    const took = performance.now() - signalled;
    assert.deepEqual(exits, [1]);
    assert.ok(took >= 300 && took < 1000, `forced exit after ${Math.round(took)} ms (delay 100 + timeout 200)`);
    // Requests were told to be answered 50 ms (the margin) before the forced exit.
    assert.ok(
      Math.abs(drainBy - (signalled + 100 + 200 - 50)) < 20,
      `answer-by ${drainBy - signalled} ms after the signal`,
    );
  });

  it("idle: SIGTERM exits 0 at once with the default delay; a second signal does not restart the sequence", async function () {
    const a = await startService("sample-app");
    a.proc.kill("SIGTERM");
    a.proc.kill("SIGINT");
    assert.deepEqual(await a.exited, { code: 0, signal: null });
    assert.equal(a.logs.filter((l) => l.msg?.startsWith("shutdown started") === true).length, 1);
  });

  it("refuses to start on a bad environment, naming every problem", async function () {
    const bad = spawnService("service-b", {
      PORT: "http",
      DOWNSTREAM_URLS: "ftp://c, http://ok",
      SHUTDOWN_DELAY_MS: "-1",
    });
    assert.deepEqual(await bad.exited, { code: 1, signal: null });
    const fatal = bad.logs.find((l) => l.level === "fatal");
    assert.equal(
      fatal?.msg,
      [
        "invalid environment for service-b:",
        '  - `PORT` must be an integer from 0 to 65535 (got "http")',
        '  - `SHUTDOWN_DELAY_MS` must be an integer from 0 to 3600000 (got "-1")',
        '  - `DOWNSTREAM_URLS` entries must be http:// or https:// URLs (got "ftp://c")',
      ].join("\n"),
    );
  });
});
