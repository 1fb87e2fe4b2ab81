// Deadlines (`x-request-timeout-ms`) on real processes: what each hop forwards, a hang at the
// end of a long chain reported by the hop that saw it, a spent budget, and the drain's bound.
import assert from "node:assert/strict";
import { fakeServer, get, hangingServer, startService, stopAll, type Service } from "./harness";

/** apps/shared/src/app.ts DEADLINE_MARGIN_MS: what each hop keeps out of the budget it forwards. */
const MARGIN = 50;

describe("apps: deadlines (x-request-timeout-ms)", function () {
  afterEach(stopAll);

  it("bounds each call by min(DOWNSTREAM_TIMEOUT_MS, budget - margin) and forwards that; no header or a bad one: its own budget", async function () {
    const downstream = await fakeServer((_req, res) => res.end('{"service":"d"}'));
    const a = await startService("service-a", { DOWNSTREAM_URLS: downstream.url, DOWNSTREAM_TIMEOUT_MS: "3000" });
    const sent: [Record<string, string>, string][] = [
      [{}, "3000"],
      [{ "x-request-timeout-ms": "1000" }, String(1000 - MARGIN)],
      // A bound shorter than the gate's 50 ms floor for calls that waited still goes out.
      [{ "x-request-timeout-ms": "80" }, String(80 - MARGIN)],
      [{ "x-request-timeout-ms": "60000" }, "3000"],
      [{ "x-request-timeout-ms": "soon" }, "3000"],
      [{ "x-request-timeout-ms": "-5" }, "3000"],
    ];
    for (const [headers, forwarded] of sent) {
      const reply = await get(`${a.url}/`, headers);
      assert.equal(reply.status, 200, JSON.stringify(headers));
      const seen = downstream.requests[downstream.requests.length - 1];
      assert.equal(seen.headers["x-request-timeout-ms"], forwarded, JSON.stringify(headers));
    }
  });

  it("a hang at the end of a chain of 5 comes back as that hop's 504, unchanged, within the edge's budget", async function () {
    // The end of the chain answers the warm-up requests and hangs on the one under test.
    const hang = await fakeServer((req, res) => {
      if (req.headers["x-request-id"] !== "deep-hang") res.end('{"service":"end"}');
    });
    const budget = 1500;
    // s5 -> hang, s4 -> s5, ..., s1 -> s2; every hop has the same DOWNSTREAM_TIMEOUT_MS.
    const hops: Service[] = [];
    let next = hang.url;
    for (let i = 5; i >= 1; i--) {
      const hop = await startService("service-a", {
        SERVICE_NAME: `s${i}`,
        DOWNSTREAM_URLS: next,
        DOWNSTREAM_TIMEOUT_MS: String(budget),
      });
      hops.unshift(hop);
      next = hop.url;
    }
    // Warm-up: every hop's connection pool and code paths (a cold process on a busy machine
    // can take longer per hop than the 50 ms margin; that is start-up, not the deadline logic).
    for (let i = 0; i < 3; i++) assert.equal((await get(`${hops[0].url}/`)).status, 200);
    const reply = await get(`${hops[0].url}/`, { "x-request-id": "deep-hang" });
    // s1 has no header: it waits `budget` and forwards it; each hop below keeps 50 ms.
    const lastBound = budget - 4 * MARGIN;
    assert.equal(reply.status, 504);
    assert.equal(reply.body, `{"service":"s5","error":"timed out after ${lastBound} ms","failed":"${hang.url}"}`);
    assert.ok(
      reply.ms >= lastBound && reply.ms < budget,
      `the top answered after ${Math.round(reply.ms)} ms (edge budget ${budget} ms)`,
    );
    // Each hop logged its own 504 and the budget it was given.
    for (const [i, hop] of hops.entries()) {
      const line = await hop.waitForLog(
        (l) => l.msg === "request" && l.reqId === "deep-hang",
        `request deep-hang in s${i + 1}`,
      );
      assert.equal(line.status, 504, hop.name);
      const warn = await hop.waitForLog(
        (l) => l.msg === "downstream failed" && l.reqId === "deep-hang",
        "downstream failed",
      );
      assert.equal(warn.boundMs, i === 0 ? budget : budget - i * MARGIN, `s${i + 1}'s bound`);
    }
    // The end of the chain saw the call with the last hop's bound.
    const call = hang.requests.find((r) => r.headers["x-request-id"] === "deep-hang");
    assert.equal(call?.headers["x-request-timeout-ms"], String(lastBound));
  });

  it("a spent budget answers 504 at once without calling any downstream", async function () {
    const downstream = await fakeServer((_req, res) => res.end('{"service":"d"}'));
    const other = await fakeServer((_req, res) => res.end('{"service":"e"}'));
    const a = await startService("service-a", {
      DOWNSTREAM_URLS: `${downstream.url},${other.url}`,
      DOWNSTREAM_TIMEOUT_MS: "3000",
    });
    for (const spent of ["0", String(MARGIN)]) {
      const reply = await get(`${a.url}/`, { "x-request-timeout-ms": spent, "x-request-id": `spent-${spent}` });
      assert.equal(reply.status, 504);
      assert.equal(
        reply.body,
        `{"service":"service-a","error":"request budget spent: x-request-timeout-ms ${spent} leaves no time for a downstream call (${MARGIN} ms margin)"}`,
      );
      assert.ok(reply.ms < 1000, `504 after ${reply.ms} ms`);
      const line = await a.waitForLog(
        (l) => l.msg === "request" && l.reqId === `spent-${spent}`,
        `request spent-${spent}`,
      );
      assert.deepEqual([line.status, line.budget], [504, Number(spent)]);
    }
    assert.deepEqual([downstream.connections, other.connections], [0, 0], "no downstream saw a connection");
    assert.deepEqual([downstream.requests.length, other.requests.length], [0, 0], "no downstream saw a request");
  });

  it("no request outlives the drain: a call in flight at SIGTERM is cut short and answered 504 before the shutdown timeout, exit 0", async function () {
    const hang = await hangingServer();
    const a = await startService("service-a", {
      DOWNSTREAM_URLS: hang.url,
      DOWNSTREAM_TIMEOUT_MS: "60000",
      SHUTDOWN_DELAY_MS: "300",
      SHUTDOWN_TIMEOUT_MS: "700",
    });
    const before = get(`${a.url}/`, { "x-request-id": "before-sigterm" });
    await hang.nthRequest(1);
    const signalled = performance.now();
    a.proc.kill("SIGTERM");
    await a.waitForLog((l) => l.msg?.startsWith("shutdown started") === true, "shutdown started");
    // Taken during the delay with a budget far beyond the drain: bounded by the drain too.
    const during = get(`${a.url}/`, { "x-request-id": "during-delay", "x-request-timeout-ms": "60000" });
    for (const reply of [await before, await during]) {
      const took = performance.now() - signalled;
      assert.equal(reply.status, 504);
      assert.match(
        reply.body,
        new RegExp(`^\\{"service":"service-a","error":"timed out after \\d+ ms","failed":"${hang.url}"\\}$`),
      );
      assert.ok(took < 300 + 700, `answered ${Math.round(took)} ms after SIGTERM (delay 300 + timeout 700)`);
    }
    assert.deepEqual(await a.exited, { code: 0, signal: null });
    const exitMs = performance.now() - signalled;
    assert.ok(exitMs < 300 + 700 + 500, `exit ${Math.round(exitMs)} ms after SIGTERM`);
    assert.equal(a.logs.filter((l) => l.msg?.startsWith("forced exit") === true).length, 0);
    assert.equal(
      hang.requests[1]?.headers["x-request-timeout-ms"] !== undefined,
      true,
      "the call taken during the delay went out",
    );
    assert.ok(
      Number(hang.requests[1].headers["x-request-timeout-ms"]) <= 300 + 700 - MARGIN,
      "bounded by the drain's end",
    );
  });
});
