// The stack's env wiring, exercised on the real apps: the env the stack computes for the dev
// stack's chain, with the in-cluster URLs pointed at loopback, on real processes.
import * as assert from "assert";
import { containerEnv } from "../components/specs";
import { fakeServer, get, startService, stopAll, type Service } from "./apps/harness";
import { parse, seedServices } from "./support/catalogs";

/** The env the stack gives `name` in the dev stack, as a plain map. */
function stackEnv(name: string, services = seedServices()): Record<string, string> {
  const cfg = parse({ services });
  const by = new Map(cfg.services.map((s) => [s.name, s]));
  const svc = by.get(name)!;
  const env = containerEnv(
    svc,
    svc.calls.map((c) => by.get(c)!),
    { namespace: "default", clusterDomain: "cluster.local" },
  );
  // As the container sees it: an env var without a value is set, empty.
  return Object.fromEntries(env.map((e) => [e.name, e.value ?? ""]));
}

/** A stand-in for service-c that answers warm-up requests and never answers the one under test. */
const hangOn = (id: string) =>
  fakeServer((req, res) => {
    if (req.headers["x-request-id"] !== id) res.end('{"service":"service-c","downstream":[]}');
  });

/**
 * B's 504 naming the hung URL, its wait `want` ms or up to 20 ms less: A forwards what is left of
 * its budget when the call leaves, so a millisecond or two A spends first on a busy machine
 * comes off B's wait (1898 ms was read under load). The text is otherwise exact.
 */
function assertTimedOut(body: string, want: number, failed: string): void {
  const got = JSON.parse(body) as { error?: string };
  const ms = Number(/^timed out after (\d+) ms$/.exec(got.error ?? "")?.[1]);
  assert.ok(ms <= want && ms >= want - 20, `B waited ${want} ms or a little less: ${body}`);
  assert.strictEqual(body, `{"service":"service-b","error":"timed out after ${ms} ms","failed":"${failed}"}`);
}

/** A few requests through the chain first: cold processes on a busy machine are slower per hop than the margin. */
async function warm(top: Service): Promise<void> {
  for (let i = 0; i < 3; i++) assert.strictEqual((await get(`${top.url}/`)).status, 200);
}

describe("stack wiring on the real apps", function () {
  this.timeout(20000);
  afterEach(stopAll);

  it("when C hangs, A answers B's 504 naming C: the same default budget everywhere, the deadline travels down", async () => {
    const a = stackEnv("service-a");
    const b = stackEnv("service-b");
    assert.deepStrictEqual(
      [a.DOWNSTREAM_TIMEOUT_MS, b.DOWNSTREAM_TIMEOUT_MS],
      [undefined, undefined],
      "no timeout from the call height",
    );
    const hang = await hangOn("hang");
    // The stack's env, with the in-cluster URLs pointed at loopback and no drain delay.
    const procB = await startService("service-b", {
      ...b,
      PORT: "0",
      SHUTDOWN_DELAY_MS: "0",
      DOWNSTREAM_URLS: hang.url,
      SERVICE_C_URL: hang.url,
    });
    const procA = await startService("service-a", {
      ...a,
      PORT: "0",
      SHUTDOWN_DELAY_MS: "0",
      DOWNSTREAM_URLS: procB.url,
      SERVICE_B_URL: procB.url,
    });
    await warm(procA);
    const reply = await get(`${procA.url}/`, { "x-request-id": "hang" });
    // A has the apps' 2000 ms and forwards 50 ms less (its margin for B's answer); B keeps
    // its own 50 ms margin and waits 1900 ms.
    assert.strictEqual(reply.status, 504);
    assertTimedOut(reply.body, 1900, hang.url);
    assert.ok(reply.ms < 2000, `answered after ${Math.round(reply.ms)} ms, within A's 2000 ms budget`);
  });

  it("a callee with a longer DOWNSTREAM_TIMEOUT_MS of its own is still bounded by its caller's budget", async () => {
    const services = seedServices();
    services["service-b"].env = { DOWNSTREAM_TIMEOUT_MS: "9000" };
    services["service-a"].env = { DOWNSTREAM_TIMEOUT_MS: "800" };
    const hang = await hangOn("hang");
    const procB = await startService("service-b", {
      ...stackEnv("service-b", services),
      PORT: "0",
      DOWNSTREAM_URLS: hang.url,
    });
    const procA = await startService("service-a", {
      ...stackEnv("service-a", services),
      PORT: "0",
      DOWNSTREAM_URLS: procB.url,
    });
    await warm(procA);
    const reply = await get(`${procA.url}/`, { "x-request-id": "hang" });
    assert.strictEqual(reply.status, 504);
    // A waits 800 ms and forwards 750; B waits 700.
    assertTimedOut(reply.body, 700, hang.url);
    assert.ok(reply.ms < 800, `answered after ${Math.round(reply.ms)} ms`);
  });
});
