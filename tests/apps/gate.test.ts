// How many calls go to one downstream at once (apps/shared/src/downstream.ts, Gate), on real
// processes on loopback.
import assert from "node:assert/strict";
import type http from "node:http";
import { fakeServer, get, hangingServer, startService, stopAll } from "./harness";

/** A downstream that answers after `delayMs`, or never while `hung` is set; counts calls at once. */
async function switchableServer(delayMs: number) {
  const state = { hung: false, now: 0, most: 0 };
  const server = await fakeServer((_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (state.hung) return;
    state.now++;
    state.most = Math.max(state.most, state.now);
    setTimeout(() => {
      state.now--;
      res.end(JSON.stringify({ service: "down", downstream: [] }));
    }, delayMs);
  });
  return { server, state };
}

describe("apps: calls to one downstream at a time", function () {
  afterEach(stopAll);

  it("once calls time out, a hung downstream gets 4 at a time; the others answer 504 without going out", async function () {
    const hang = await hangingServer();
    const a = await startService("service-a", { DOWNSTREAM_URLS: hang.url, DOWNSTREAM_TIMEOUT_MS: "500" });
    // First wave: under DOWNSTREAM_CONCURRENCY (256), every call goes out and times out.
    const first = await Promise.all(Array.from({ length: 20 }, () => get(`${a.url}/`)));
    assert.deepEqual(
      first.map((r) => r.body),
      first.map(() => `{"service":"service-a","error":"timed out after 500 ms","failed":"${hang.url}"}`),
    );
    assert.equal(hang.requests.length, 20);
    // Second wave: the limit has come down to 4.
    const second = await Promise.all(Array.from({ length: 20 }, () => get(`${a.url}/`)));
    const bodies = new Map<string, number>();
    for (const reply of second) {
      assert.equal(reply.status, 504);
      assert.ok(reply.ms >= 500 && reply.ms < 3000, `504 came after ${reply.ms} ms`);
      bodies.set(reply.body, (bodies.get(reply.body) ?? 0) + 1);
    }
    assert.deepEqual(
      bodies,
      new Map([
        [`{"service":"service-a","error":"timed out after 500 ms","failed":"${hang.url}"}`, 4],
        [
          `{"service":"service-a","error":"timed out after 500 ms waiting for a turn (4 calls at a time)","failed":"${hang.url}"}`,
          16,
        ],
      ]),
    );
    assert.equal(hang.requests.length, 24);
    assert.equal((await get(`${a.url}/health`)).status, 200);
  });

  it("while calls time out, the newest waiting call goes out first, with nearly its whole bound", async function () {
    const hang = await hangingServer();
    const a = await startService("service-a", { DOWNSTREAM_URLS: hang.url, DOWNSTREAM_TIMEOUT_MS: "1000" });
    // Bring the limit down to 4.
    await Promise.all(Array.from({ length: 20 }, () => get(`${a.url}/`)));
    const before = hang.requests.length;
    // Then a steady stream: one request every 50 ms for 3 s, each waiting for its answer.
    const replies: Promise<Awaited<ReturnType<typeof get>>>[] = [];
    for (let i = 0; i < 60; i++) {
      replies.push(get(`${a.url}/`));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const reply of await Promise.all(replies)) assert.equal(reply.status, 504);
    // Oldest first, each freed slot went to a call with a quarter to a half of its bound left,
    // which timed out soon after: about 16 calls a second. Newest first, each went out just
    // after it arrived and held its slot for its bound: about 4 a second.
    const sent = hang.requests.slice(before);
    const budgets = sent.map((r) => Number(r.headers["x-request-timeout-ms"]));
    assert.ok(sent.length <= 20, `${sent.length} calls went out in 3 s (budgets ${budgets.join(", ")})`);
    // (The last ones can have less: once the stream stops, the newest waiting call is older.)
    const fresh = budgets.filter((ms) => ms >= 850).length;
    assert.ok(
      fresh >= sent.length * 0.75,
      `${fresh} of ${sent.length} calls went out with nearly their whole bound: ${budgets.join(", ")}`,
    );
  });

  it("when the downstream answers again, the limit grows back with each answer", async function () {
    const { server, state } = await switchableServer(50);
    const a = await startService("service-a", { DOWNSTREAM_URLS: server.url, DOWNSTREAM_TIMEOUT_MS: "1000" });
    state.hung = true;
    await Promise.all(Array.from({ length: 10 }, () => get(`${a.url}/`)));
    state.hung = false;
    const replies = await Promise.all(Array.from({ length: 40 }, () => get(`${a.url}/`)));
    assert.deepEqual(
      replies.map((r) => r.status),
      replies.map(() => 200),
    );
    // It started at 4 at a time and grew: more than 4 were in flight at some point.
    assert.ok(state.most > 4, `at most ${state.most} calls at once`);
  });

  it("calls beyond DOWNSTREAM_CONCURRENCY wait their turn, then go out with the budget they have left", async function () {
    const { server, state } = await switchableServer(300);
    const a = await startService("service-a", {
      DOWNSTREAM_URLS: server.url,
      DOWNSTREAM_CONCURRENCY: "2",
      DOWNSTREAM_TIMEOUT_MS: "5000",
    });
    // 6 calls, 2 at a time, 300 ms each: three waves.
    const replies = await Promise.all(Array.from({ length: 6 }, () => get(`${a.url}/`)));
    for (const reply of replies) assert.equal(reply.status, 200, reply.body);
    assert.equal(state.most, 2);
    const slowest = Math.max(...replies.map((r) => r.ms));
    assert.ok(slowest >= 900, `the last answer came after ${slowest} ms`);
    const budgets = server.requests.map((r) => Number(r.headers["x-request-timeout-ms"])).sort((x, y) => y - x);
    // The first wave forwards the whole bound less the margin for the answer back (50 ms).
    assert.deepEqual(budgets.slice(0, 2), [4950, 4950]);
    assert.ok(budgets[5] <= 4700, `the last call forwarded ${budgets[5]} ms`);
  });
});
