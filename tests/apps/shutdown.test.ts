// SIGTERM handling of the real process: health 503 at once, serving through SHUTDOWN_DELAY_MS,
// then no new connections, in-flight requests answered, exit 0; a bounded forced exit.
import assert from "node:assert/strict";
import { fakeServer, get, hangingServer, spawnService, startService, stopAll } from "./harness";

describe("apps: shutdown", function () {
  afterEach(stopAll);

  it("SIGTERM: 503 while draining, still serving, then refuses connections, answers the in-flight request, exits 0", async function () {
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
    const health = await get(`${a.url}/health`);
    assert.equal(health.status, 503);
    assert.equal(health.body, '{"status":"shutting down"}');
    assert.equal(health.headers.connection, "close");
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

  it("exits 1 when in-flight requests outlast SHUTDOWN_TIMEOUT_MS", async function () {
    const hang = await hangingServer();
    const a = await startService("service-a", {
      DOWNSTREAM_URLS: hang.url,
      DOWNSTREAM_TIMEOUT_MS: "15000",
      SHUTDOWN_TIMEOUT_MS: "400",
    });
    const stuck = get(`${a.url}/`).catch((err: Error) => err);
    await hang.nthRequest(1);
    const signalled = performance.now();
    a.proc.kill("SIGTERM");
    assert.deepEqual(await a.exited, { code: 1, signal: null });
    const took = performance.now() - signalled;
    assert.ok(took >= 400 && took < 3000, `exit came ${took} ms after SIGTERM`);
    const forced = await a.waitForLog((l) => l.msg?.startsWith("forced exit") === true, "forced exit");
    assert.deepEqual([forced.level, forced.inFlight], ["error", 1]);
    assert.ok((await stuck) instanceof Error, "the stuck request was cut off");
  });

  it("idle: SIGTERM exits 0 at once with the default delay; a second signal does not restart the sequence", async function () {
    const a = await startService("sample-app");
    a.proc.kill("SIGTERM");
    a.proc.kill("SIGINT");
    assert.deepEqual(await a.exited, { code: 0, signal: null });
    assert.equal(a.logs.filter((l) => l.msg?.startsWith("shutdown started") === true).length, 1);
  });

  it("refuses to start on a bad environment, naming every problem", async function () {
    const bad = spawnService("service-b", { PORT: "http", DOWNSTREAM_URLS: "ftp://c, http://ok", SHUTDOWN_DELAY_MS: "-1" });
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
