// Deadlines (`x-request-timeout-ms`) on real processes: what each hop forwards, a hang at the
// end of a long chain reported by the hop that saw it, a spent budget, and the drain's bound.
import assert from "node:assert/strict";
import { fakeServer, get, hangingServer, slowLink, startService, stopAll, type Service } from "./harness";

/** apps/shared/src/app.ts DEADLINE_MARGIN_MS: what each hop keeps out of the budget it forwards. */
const MARGIN = 50;

describe("apps: deadlines (x-request-timeout-ms)", function () {
  afterEach(stopAll);

  it("bounds each call by min(DOWNSTREAM_TIMEOUT_MS, budget - margin) and forwards that less the margin; no header or a bad one: its own budget", async function () {
    const downstream = await fakeServer((_req, res) => res.end('{"service":"d"}'));
    const a = await startService("service-a", { DOWNSTREAM_URLS: downstream.url, DOWNSTREAM_TIMEOUT_MS: "3000" });
    // Forwarded: the bound less the margin again, the time the callee's answer needs to come back.
    const sent: [Record<string, string>, string][] = [
      [{}, String(3000 - MARGIN)],
      [{ "x-request-timeout-ms": "1000" }, String(1000 - 2 * MARGIN)],
      // A bound shorter than the gate's 50 ms floor for calls that waited still goes out, with
      // no time for the callee to call further (a callee without downstreams answers as usual).
      [{ "x-request-timeout-ms": "80" }, "0"],
      [{ "x-request-timeout-ms": "60000" }, String(3000 - MARGIN)],
      [{ "x-request-timeout-ms": "soon" }, String(3000 - MARGIN)],
      [{ "x-request-timeout-ms": "-5" }, String(3000 - MARGIN)],
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
    // s1 has no header: it waits `budget` and forwards 50 ms less; each hop below keeps 50 ms
    // for its own answer and forwards 50 ms less again.
    const lastBound = budget - 2 * 4 * MARGIN;
    assert.equal(reply.status, 504);
    // Each hop forwards what is left of its own bound when it calls, so the time a loaded
    // machine spends in a hop comes off what the next one gets (10 ms over four hops was seen
    // with another suite running beside this one): the bound s5 reports is at most lastBound.
    const body = JSON.parse(reply.body) as { service: string; error: string; failed: string };
    const reported = Number(/^timed out after (\d+) ms$/.exec(body.error)?.[1]);
    assert.deepStrictEqual({ ...body, error: "" }, { service: "s5", error: "", failed: hang.url }, reply.body);
    assert.ok(
      reported <= lastBound && reported > lastBound - 100,
      `s5 timed out after ${reported} ms: not within 100 ms under ${lastBound} (${reply.body})`,
    );
    assert.ok(
      reply.ms >= reported && reply.ms < budget,
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
      const want = budget - 2 * i * MARGIN;
      const bound = Number(warn.boundMs);
      assert.ok(bound <= want && bound > want - 100, `s${i + 1}'s bound ${bound}, want ${want}`);
    }
    // The end of the chain saw the call with the last hop's bound.
    const call = hang.requests.find((r) => r.headers["x-request-id"] === "deep-hang");
    const forwarded = Number(call?.headers["x-request-timeout-ms"]);
    assert.ok(
      forwarded <= lastBound - MARGIN && forwarded > lastBound - MARGIN - 100,
      `the end of the chain got ${forwarded} ms, want ${lastBound - MARGIN}`,
    );
  });

  it("a hang is reported by the hop that saw it even with 25 ms of transit each way per hop: A -> B -> C -> a hang, x-request-timeout-ms 1200 at A", async function () {
    // Loopback has no transit; a real network has some. With 25 ms each way on A -> B and
    // B -> C, a margin that covers one way only (50 ms for the request and the answer) lets
    // B's timer, then A's, fire before C's 504 comes back: A answered `timed out after 1150 ms`
    // naming B. Keeping the margin for the answer too leaves each hop 50 ms to spare.
    // The end answers the warm-up requests and hangs on the one under test.
    const hang = await fakeServer((req, res) => {
      if (req.headers["x-request-id"] !== "slow-hang") res.end('{"service":"end"}');
    });
    const c = await startService("service-c", { DOWNSTREAM_URLS: hang.url });
    const toC = await slowLink(c.url, 25);
    const b = await startService("service-b", { DOWNSTREAM_URLS: toC.url });
    const toB = await slowLink(b.url, 25);
    const a = await startService("service-a", { DOWNSTREAM_URLS: toB.url });
    // Warm-up: connections and code paths, so the 50 ms to spare per hop is not spent on a cold start.
    for (let i = 0; i < 3; i++) assert.equal((await get(`${a.url}/`)).status, 200);
    const reply = await get(`${a.url}/`, { "x-request-timeout-ms": "1200", "x-request-id": "slow-hang" });
    // Each hop waits the margin less than it was given, and forwards the margin less again
    // (time for its callee's answer to come back): C waits at most 1200 - 5 x 50 (less what
    // B spent before its call went out).
    assert.equal(reply.status, 504);
    const body = JSON.parse(reply.body);
    assert.deepEqual([body.service, body.failed], ["service-c", hang.url], reply.body);
    const waited = Number(/^timed out after (\d+) ms$/.exec(body.error)?.[1]);
    assert.ok(waited <= 1200 - 5 * MARGIN && waited > 1200 - 6 * MARGIN, reply.body);
    assert.ok(reply.ms < 1200, `A answered after ${Math.round(reply.ms)} ms (budget 1200 ms)`);
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
