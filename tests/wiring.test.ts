// The stack's env wiring, exercised on the real apps: the env the stack computes for the dev
// stack's chain, with the in-cluster URLs pointed at loopback, on real processes.
import * as assert from "assert";
import { containerEnv } from "../components/specs";
import { callHeights } from "../components/graph";
import { get, hangingServer, startService, stopAll } from "./apps/harness";
import { parse, seedServices } from "./support/catalogs";

/** The env the stack gives `name` in the dev stack, as a plain map. */
function stackEnv(name: string): Record<string, string> {
    const cfg = parse({ services: seedServices() });
    const by = new Map(cfg.services.map(s => [s.name, s]));
    const heights = callHeights(new Map(cfg.services.map(s => [s.name, s.calls])));
    const svc = by.get(name)!;
    const env = containerEnv(svc, svc.calls.map(c => by.get(c)!), { namespace: "default", clusterDomain: "cluster.local" }, heights.get(name));
    return Object.fromEntries(env.map(e => [e.name, e.value]));
}

describe("stack wiring on the real apps", function () {
    this.timeout(20000);
    afterEach(stopAll);

    it("when C hangs, A's answer names B's timeout on C, because the stack gives A a longer timeout than B", async () => {
        const a = stackEnv("service-a");
        const b = stackEnv("service-b");
        assert.deepStrictEqual([a.DOWNSTREAM_TIMEOUT_MS, b.DOWNSTREAM_TIMEOUT_MS], ["3000", "2000"]);
        const hang = await hangingServer();
        const procB = await startService("service-b", { ...b, PORT: "0", DOWNSTREAM_URLS: hang.url, SERVICE_C_URL: hang.url });
        const procA = await startService("service-a", { ...a, PORT: "0", DOWNSTREAM_URLS: procB.url, SERVICE_B_URL: procB.url });
        const reply = await get(`${procA.url}/`);
        assert.strictEqual(reply.status, 502);
        assert.strictEqual(reply.body,
            `{"service":"service-a","error":"service-b answered 504: timed out after 2000 ms (${hang.url})","failed":"${procB.url}"}`);
    });

    it("with equal timeouts (what the stack avoids) A gives up first and blames B", async () => {
        const hang = await hangingServer();
        const procB = await startService("service-b", { DOWNSTREAM_URLS: hang.url, DOWNSTREAM_TIMEOUT_MS: "1000" });
        const procA = await startService("service-a", { DOWNSTREAM_URLS: procB.url, DOWNSTREAM_TIMEOUT_MS: "1000" });
        const reply = await get(`${procA.url}/`);
        assert.strictEqual(reply.status, 504);
        assert.strictEqual(reply.body, `{"service":"service-a","error":"timed out after 1000 ms","failed":"${procB.url}"}`);
    });
});
