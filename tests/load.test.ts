// The cluster suite's HTTP load (tests/support/load.ts), against real servers on loopback.
import * as assert from "assert";
import * as http from "http";
import type { AddressInfo, Socket } from "net";
import { describeLoad, failureLines, keepAlivePool, Load, LoadResult } from "./support/load";
import { Children, freePort, waitForHttp } from "./support/process";

const children = new Children();

/**
 * A Node server in its own process (so that blocking this one's event loop does not stop its
 * timers) with `keepAliveTimeout` 2 s: it announces `Keep-Alive: timeout=2` and closes a
 * connection idle for 3 s (Node adds 1 s of grace).
 */
async function keepAliveServer(): Promise<number> {
  const port = await freePort();
  const script = `
    const srv = require("http").createServer((req, res) => res.end("ok"));
    srv.keepAliveTimeout = 2000;
    srv.listen(${port}, "127.0.0.1");`;
  children.spawn(process.execPath, ["-e", script], { stdio: ["ignore", "ignore", "inherit"] });
  await waitForHttp(`http://127.0.0.1:${port}/`);
  return port;
}

/** GET once through `agent`; resolves with the status or the error's code and message. */
function getWith(agent: http.Agent, port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, agent }, (res) => {
      res.resume().on("end", () => resolve(`HTTP ${res.statusCode}`));
    });
    req.on("error", (e: NodeJS.ErrnoException) => resolve(`${e.code} ${e.message}`));
  });
}

/** Two requests through `agent`, the second 3.3 s after the first ended, just after the server closed its connection. */
async function secondAfterLongIdle(agent: http.Agent, port: number): Promise<string[]> {
  const first = await getWith(agent, port);
  const ended = Date.now();
  await new Promise((r) => setTimeout(r, 2500));
  // Busy until after the server's close (3 s): its FIN arrives while this loop cannot read it,
  // the way a busy test process meets it.
  while (Date.now() - ended < 3300);
  const second = await getWith(agent, port);
  agent.destroy();
  return [first, second];
}

describe("the cluster suite's HTTP load (loopback)", function () {
  this.timeout(20000);
  let port: number;

  before(async () => {
    port = await keepAliveServer();
  });
  after(() => children.stopAll());

  it("a plain keep-alive agent reuses a socket the server is closing, and the request fails (the race)", async () => {
    const results = await secondAfterLongIdle(new http.Agent({ keepAlive: true, maxSockets: 1 }), port);
    assert.deepStrictEqual(results, ["HTTP 200", "ECONNRESET socket hang up"]);
  });

  it("its keep-alive pool closes an idle socket at the server's hint less 1 s, so the same request succeeds", async () => {
    const agent = keepAlivePool(1);
    const t0 = Date.now();
    let closedByUs: number | undefined;
    const first = await new Promise<Socket>((resolve) => {
      http.get({ host: "127.0.0.1", port: port, agent }, (res) => res.resume()).once("socket", resolve);
    });
    first.once("timeout", () => (closedByUs = Date.now()));
    assert.deepStrictEqual(await secondAfterLongIdle(agent, port), ["HTTP 200", "HTTP 200"]);
    assert.ok(closedByUs !== undefined, "the pool never timed the idle socket out");
    // Hint 2 s, less 1 s: well before the server's 3 s (the first request's time included).
    assert.ok(closedByUs - t0 < 2000, `the pool closed the idle socket after ${closedByUs - t0} ms`);
  });

  it("counts every request, and says when a failed keep-alive request was sent and how long its socket sat idle", async () => {
    // Every second request on a connection is cut off: a pooled socket's reuse fails.
    const seen = new WeakMap<Socket, number>();
    const srv = http.createServer((req, res) => {
      const n = (seen.get(req.socket) ?? 0) + 1;
      seen.set(req.socket, n);
      if (n === 2) req.socket.destroy();
      else res.end("ok");
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const load = new Load(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/`, 10).start();
    await new Promise((r) => setTimeout(r, 1050));
    const res = await load.stop();
    srv.close();

    assert.strictEqual(res.ok + res.failures.length, res.sent);
    assert.ok(res.sent >= 8, `sent ${res.sent}`);
    const ka = res.failures.filter((f) => f.mode === "keep-alive");
    assert.ok(ka.length >= 1, describeLoad(res));
    assert.deepStrictEqual(
      res.failures.map((f) => f.what),
      ka.map(() => "ECONNRESET socket hang up"),
    );
    // Keep-alive requests go out every 200 ms; the one that failed reused the first one's socket.
    assert.ok(ka[0].idleMs !== undefined && ka[0].idleMs >= 100 && ka[0].idleMs < 1000, describeLoad(res));
  });

  it("describeLoad names the kinds of failure, then when each was sent and on what socket", () => {
    const r: LoadResult = {
      sent: 1947,
      ok: 1945,
      seconds: 20.31,
      failures: [
        { sentMs: 12340, mode: "keep-alive", what: "ECONNRESET socket hang up", idleMs: 5998 },
        { sentMs: 15000, mode: "new-connection", what: "ECONNREFUSED connect ECONNREFUSED 127.0.0.1:30081" },
      ],
    };
    assert.strictEqual(
      describeLoad(r),
      "sent 1947 in 20.3 s, ok 1945, failed 2 (1 x keep-alive: ECONNRESET socket hang up; " +
        "1 x new-connection: ECONNREFUSED connect ECONNREFUSED <addr>; " +
        "sent at +12.3 s keep-alive on a socket idle 5998 ms, +15.0 s new-connection)",
    );
    assert.strictEqual(
      describeLoad({ sent: 10, ok: 10, seconds: 1, failures: [] }),
      "sent 10 in 1.0 s, ok 10, failed 0",
    );
  });

  it("failureLines lists every failure, a refused new connection at the node port included", () => {
    const refused = {
      sentMs: 1,
      mode: "new-connection" as const,
      what: "ECONNREFUSED connect ECONNREFUSED 127.0.0.1:30081",
    };
    const r = (failures: LoadResult["failures"]): LoadResult => ({
      sent: 100,
      ok: 100 - failures.length,
      seconds: 1,
      failures,
    });
    assert.deepStrictEqual(failureLines(r([])), []);
    assert.deepStrictEqual(failureLines(r([refused])), [`new-connection: ${refused.what}`]);
    assert.deepStrictEqual(failureLines(r([refused, { ...refused, mode: "keep-alive" }])), [
      `new-connection: ${refused.what}`,
      `keep-alive: ${refused.what}`,
    ]);
  });
});
