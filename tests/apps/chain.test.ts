// The A -> B -> C chain and the happy paths of the app contract, on real processes.
import assert from "node:assert/strict";
import { fakeServer, get, startService, stopAll } from "./harness";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("apps: the A -> B -> C chain", function () {
  afterEach(stopAll);

  async function chain() {
    const c = await startService("service-c");
    const b = await startService("service-b", { DOWNSTREAM_URLS: c.url });
    const a = await startService("service-a", { DOWNSTREAM_URLS: b.url });
    return { a, b, c };
  }

  it("GET / on A nests B's answer, which nests C's", async function () {
    const { a } = await chain();
    const reply = await get(`${a.url}/`);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["content-type"], "application/json");
    assert.equal(
      reply.body,
      '{"service":"service-a","downstream":[{"service":"service-b","downstream":[{"service":"service-c","downstream":[]}]}]}',
    );
  });

  it("passes x-request-id down the chain, echoes it, and logs it in A, B and C", async function () {
    const { a, b, c } = await chain();
    const reply = await get(`${a.url}/`, { "x-request-id": "trace-42" });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["x-request-id"], "trace-42");
    for (const service of [a, b, c]) {
      const line = await service.waitForLog((l) => l.msg === "request" && l.reqId === "trace-42", "request trace-42");
      assert.deepEqual(
        [line.level, line.service, line.method, line.path, line.status],
        ["info", service.name, "GET", "/", 200],
      );
    }
  });

  it("generates a UUID request id when none (or a malformed one) comes in, and C sees the same id", async function () {
    const { a, c } = await chain();
    for (const headers of [{}, { "x-request-id": "bad id with spaces" }] as Record<string, string>[]) {
      const reply = await get(`${a.url}/`, headers);
      const id = reply.headers["x-request-id"] as string;
      assert.match(id, UUID);
      await c.waitForLog((l) => l.msg === "request" && l.reqId === id, `request ${id} in service-c`);
    }
  });

  it("every log line written while answering a request carries its request id", async function () {
    const { a, b, c } = await chain();
    await get(`${a.url}/`, { "x-request-id": "every-line" });
    await get(`${a.url}/nope`, { "x-request-id": "every-line" });
    await a.waitForLog((l) => l.status === 404, "404 request line");
    for (const service of [a, b, c]) {
      await service.waitForLog((l) => l.msg === "request" && l.path === "/", "request line for /");
      const lines = service.logs.filter((l) => l.msg !== "listening");
      assert.ok(lines.length > 0, `${service.name} logged nothing`);
      for (const line of lines) assert.equal(line.reqId, "every-line", JSON.stringify(line));
    }
  });

  it("names itself after its folder, or SERVICE_NAME", async function () {
    const plain = await startService("unnamed", { SERVICE_NAME: "" });
    assert.equal((await get(`${plain.url}/`)).body, '{"service":"chain-service","downstream":[]}');
    const named = await startService("sample-app", { SERVICE_NAME: "web" });
    assert.equal((await get(`${named.url}/`)).body, '{"service":"web","downstream":[]}');
  });

  it("calls every downstream concurrently and keeps DOWNSTREAM_URLS order in the answer", async function () {
    // Each fake answers only once both have been asked: sequential calls would time out.
    let release: () => void = () => undefined;
    const bothAsked = new Promise<void>((resolve) => (release = resolve));
    let asked = 0;
    const answerAfterBoth = (name: string) =>
      fakeServer((_req, res) => {
        if (++asked === 2) release();
        void bothAsked.then(() => res.end(JSON.stringify({ service: name })));
      });
    const first = await answerAfterBoth("first");
    const second = await answerAfterBoth("second");
    const a = await startService("service-a", {
      DOWNSTREAM_URLS: `${first.url}, ${second.url}`,
      DOWNSTREAM_TIMEOUT_MS: "3000",
    });
    const reply = await get(`${a.url}/`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, '{"service":"service-a","downstream":[{"service":"first"},{"service":"second"}]}');
  });

  it("keeps its connection to a downstream alive across requests", async function () {
    const downstream = await fakeServer((_req, res) => res.end('{"service":"d"}'));
    const a = await startService("service-a", { DOWNSTREAM_URLS: downstream.url });
    for (let i = 0; i < 5; i++) assert.equal((await get(`${a.url}/`)).status, 200);
    assert.equal(downstream.requests.length, 5);
    assert.equal(downstream.connections, 1);
    assert.equal(downstream.requests[0].headers.connection, "keep-alive");
  });

  it('GET /health answers 200 {"status":"ok"} and GET /livez 200 {"status":"alive"}, without calling any downstream', async function () {
    const downstream = await fakeServer((_req, res) => res.end("{}"));
    const a = await startService("service-a", { DOWNSTREAM_URLS: downstream.url });
    for (const [path, body] of [
      ["/health", '{"status":"ok"}'],
      ["/health?probe=1", '{"status":"ok"}'],
      ["/livez", '{"status":"alive"}'],
    ]) {
      const reply = await get(`${a.url}${path}`, { "x-request-timeout-ms": "0" });
      assert.equal(reply.status, 200, path);
      assert.equal(reply.body, body);
      assert.equal(reply.headers["content-type"], "application/json");
    }
    assert.equal(downstream.requests.length, 0);
    assert.equal(downstream.connections, 0);
  });
});
