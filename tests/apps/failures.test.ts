// Downstream failures (504 timeout, 502 refused / non-2xx / bad body, up the chain), routes that
// do not exist, and junk on the socket, on real processes.
import assert from "node:assert/strict";
import net from "node:net";
import { fakeServer, get, hangingServer, rawExchange, refusedUrl, startService, stopAll } from "./harness";

describe("apps: failures", function () {
  afterEach(stopAll);

  it("a hanging downstream gives 504 within DOWNSTREAM_TIMEOUT_MS while /health stays fast", async function () {
    const hang = await hangingServer();
    const a = await startService("service-a", { DOWNSTREAM_URLS: hang.url, DOWNSTREAM_TIMEOUT_MS: "800" });
    const pending = get(`${a.url}/`, { "x-request-id": "hang-1" });
    await hang.nthRequest(1);
    const health = await get(`${a.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body, '{"status":"ok"}');
    assert.ok(health.ms < 200, `/health took ${health.ms} ms while / hung`);
    const reply = await pending;
    assert.equal(reply.status, 504);
    assert.equal(reply.body, `{"service":"service-a","error":"timed out after 800 ms","failed":"${hang.url}"}`);
    assert.ok(reply.ms >= 800 && reply.ms < 1800, `504 came after ${reply.ms} ms`);
    const warn = await a.waitForLog((l) => l.msg === "downstream failed", "downstream failed");
    assert.deepEqual([warn.level, warn.reqId, warn.url], ["warn", "hang-1", hang.url]);
  });

  it("many calls timing out together all get their 504, and /health is answered meanwhile", async function () {
    const hang = await hangingServer();
    const a = await startService("service-a", { DOWNSTREAM_URLS: hang.url, DOWNSTREAM_TIMEOUT_MS: "500" });
    const replies = Promise.all(Array.from({ length: 60 }, () => get(`${a.url}/`)));
    await hang.nthRequest(60);
    const health = await get(`${a.url}/health`);
    assert.equal(health.status, 200);
    for (const reply of await replies) {
      assert.equal(reply.status, 504);
      assert.equal(reply.body, `{"service":"service-a","error":"timed out after 500 ms","failed":"${hang.url}"}`);
      assert.ok(reply.ms >= 500 && reply.ms < 3000, `504 came after ${reply.ms} ms`);
    }
  });

  it("a refused downstream gives 502 at once, not after the timeout", async function () {
    const dead = await refusedUrl();
    const a = await startService("service-a", { DOWNSTREAM_URLS: dead, DOWNSTREAM_TIMEOUT_MS: "5000" });
    const reply = await get(`${a.url}/`);
    assert.equal(reply.status, 502);
    assert.equal(reply.body, `{"service":"service-a","error":"connection refused","failed":"${dead}"}`);
    assert.ok(reply.ms < 1000, `502 came after ${reply.ms} ms`);
  });

  it("the first failure answers at once even while another downstream hangs", async function () {
    const hang = await hangingServer();
    const dead = await refusedUrl();
    const a = await startService("service-a", {
      DOWNSTREAM_URLS: `${hang.url},${dead}`,
      DOWNSTREAM_TIMEOUT_MS: "5000",
    });
    const reply = await get(`${a.url}/`);
    assert.equal(reply.status, 502);
    assert.equal(reply.body, `{"service":"service-a","error":"connection refused","failed":"${dead}"}`);
    assert.ok(reply.ms < 1000, `502 came after ${reply.ms} ms`);
  });

  it("a client that hangs up before the answer: every call it made is cancelled at once, and the request is logged as such", async function () {
    const one = await hangingServer();
    const two = await hangingServer();
    const a = await startService("service-a", {
      DOWNSTREAM_URLS: `${one.url},${two.url}`,
      DOWNSTREAM_TIMEOUT_MS: "5000",
    });
    const client = net.connect(a.port, "127.0.0.1");
    client.on("error", () => undefined);
    client.write("GET / HTTP/1.1\r\nhost: a\r\nx-request-id: gone-1\r\n\r\n");
    const calls = await Promise.all([one.nthRequest(1), two.nthRequest(1)]);
    const hungUp = Date.now();
    const closed = calls.map(
      (req) => new Promise<number>((resolve) => req.socket.once("close", () => resolve(Date.now()))),
    );
    client.destroy();
    const line = await a.waitForLog((l) => l.reqId === "gone-1", "a line about gone-1");
    assert.equal(line.msg, "client closed the connection before the answer");
    assert.equal(line.path, "/");
    assert.ok(typeof line.ms === "number" && line.ms < 5000, `logged ms ${String(line.ms)}`);
    for (const at of await Promise.all(closed)) assert.ok(at - hungUp < 1000, `a call ran on for ${at - hungUp} ms`);
    // Nothing else about it: no answer was attempted, so no "request" or "downstream failed" line.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(
      a.logs.filter((l) => l.reqId === "gone-1").map((l) => l.msg),
      ["client closed the connection before the answer"],
    );
    assert.equal((await get(`${a.url}/health`)).status, 200);
  });

  it("a call that times out or is cancelled closes its connection and opens no other (undici reconnects after an abort)", async function () {
    const hang = await hangingServer();
    const a = await startService("service-a", { DOWNSTREAM_URLS: hang.url, DOWNSTREAM_TIMEOUT_MS: "300" });
    // Timed out: 10 calls went out (under DOWNSTREAM_CONCURRENCY), each on its own connection.
    const replies = await Promise.all(Array.from({ length: 10 }, () => get(`${a.url}/`)));
    assert.deepEqual(
      replies.map((r) => r.status),
      replies.map(() => 504),
    );
    // Cancelled: a client that hangs up while its call is out.
    const client = net.connect(a.port, "127.0.0.1");
    client.on("error", () => undefined);
    client.write("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    await hang.nthRequest(11);
    client.destroy();
    await a.waitForLog((l) => l.msg === "client closed the connection before the answer", "the hang-up logged");
    // Long enough for a reconnect to land (undici's comes at once), short of its 4 s idle timeout.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual({ accepted: hang.connections, open: hang.open }, { accepted: 11, open: 0 });
    // The next call still gets a connection of its own.
    const after = get(`${a.url}/`);
    await hang.nthRequest(12);
    assert.equal((await after).status, 504);
    assert.equal(hang.connections, 12);
  });

  it("an error at the end of the chain propagates up: C refused -> B 502 -> A 502 naming B", async function () {
    const dead = await refusedUrl();
    const b = await startService("service-b", { DOWNSTREAM_URLS: dead });
    const a = await startService("service-a", { DOWNSTREAM_URLS: b.url });
    const reply = await get(`${a.url}/`, { "x-request-id": "up-1" });
    assert.equal(reply.status, 502);
    assert.equal(
      reply.body,
      `{"service":"service-a","error":"service-b answered 502: connection refused (${dead})","failed":"${b.url}"}`,
    );
    for (const service of [a, b]) {
      const line = await service.waitForLog((l) => l.msg === "request" && l.reqId === "up-1", "request up-1");
      assert.equal(line.status, 502);
    }
  });

  it("a timeout further down reaches the top unchanged: B's 504 names C, whatever A's own timeout", async function () {
    const hang = await hangingServer();
    const b = await startService("service-b", { DOWNSTREAM_URLS: hang.url, DOWNSTREAM_TIMEOUT_MS: "300" });
    const a = await startService("service-a", { DOWNSTREAM_URLS: b.url, DOWNSTREAM_TIMEOUT_MS: "3000" });
    const reply = await get(`${a.url}/`, { "x-request-id": "relay-1" });
    assert.equal(reply.status, 504);
    assert.equal(reply.body, `{"service":"service-b","error":"timed out after 300 ms","failed":"${hang.url}"}`);
    const warn = await a.waitForLog((l) => l.msg === "downstream failed" && l.reqId === "relay-1", "downstream failed");
    assert.deepEqual([warn.url, warn.error], [b.url, "timed out further down"]);
  });

  it("credentials in a downstream URL never reach a body or a log line; they are sent as Basic auth", async function () {
    const dead = (await refusedUrl()).replace("http://", "http://alice:s3cret%40x@");
    const hang = await hangingServer();
    const withAuth = hang.url.replace("http://", "http://bob:hunter2@");
    const a = await startService("service-a", { DOWNSTREAM_URLS: dead, DOWNSTREAM_TIMEOUT_MS: "5000" });
    const b = await startService("service-b", { DOWNSTREAM_URLS: withAuth, DOWNSTREAM_TIMEOUT_MS: "300" });
    const refused = await get(`${a.url}/`);
    assert.equal(refused.status, 502);
    assert.equal(
      refused.body,
      `{"service":"service-a","error":"connection refused","failed":"${dead.replace("alice:s3cret%40x@", "***@")}"}`,
    );
    const timedOut = await get(`${b.url}/`);
    assert.equal(timedOut.status, 504);
    assert.equal(
      timedOut.body,
      `{"service":"service-b","error":"timed out after 300 ms","failed":"${hang.url.replace("http://", "http://***@")}"}`,
    );
    assert.equal(hang.requests[0].headers.authorization, `Basic ${Buffer.from("bob:hunter2").toString("base64")}`);
    await a.waitForLog((l) => l.msg === "downstream failed", "downstream failed");
    await b.waitForLog((l) => l.msg === "downstream failed", "downstream failed");
    for (const service of [a, b]) {
      const text = JSON.stringify(service.logs) + service.stderr();
      for (const secret of ["s3cret", "hunter2", "alice", "bob"])
        assert.ok(!text.includes(secret), `${service.name} logged ${secret}: ${text}`);
      assert.ok(text.includes("***@"), "the URL is still shown, redacted");
    }
  });

  it("a downstream answering JSON nested too deep gets 502 (not 500), and the process keeps serving", async function () {
    const deep = await fakeServer((_req, res) => res.end("[".repeat(100_000) + "]".repeat(100_000)));
    const justFine = await fakeServer((_req, res) => res.end("[".repeat(512) + "]".repeat(512)));
    const a = await startService("service-a", { DOWNSTREAM_URLS: deep.url });
    const reply = await get(`${a.url}/`);
    assert.equal(reply.status, 502);
    assert.equal(
      reply.body,
      `{"service":"service-a","error":"answered 200 with JSON nested deeper than 512 levels","failed":"${deep.url}"}`,
    );
    const b = await startService("service-b", { DOWNSTREAM_URLS: justFine.url });
    const fine = await get(`${b.url}/`);
    assert.equal(fine.status, 200);
    assert.equal(fine.body, `{"service":"service-b","downstream":[${"[".repeat(512)}${"]".repeat(512)}]}`);
    assert.equal((await get(`${a.url}/health`)).status, 200);
  });

  it("a downstream URL with a path, query or fragment is called as GET / on its origin (the contract)", async function () {
    const downstream = await fakeServer((_req, res) => res.end('{"service":"d"}'));
    const withPath = `${downstream.url}api/v1?x=1#frag`;
    const a = await startService("service-a", { DOWNSTREAM_URLS: withPath });
    const reply = await get(`${a.url}/`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, '{"service":"service-a","downstream":[{"service":"d"}]}');
    assert.equal(downstream.requests[0].url, "/");
  });

  it("a non-2xx or non-JSON answer from a foreign downstream is a 502", async function () {
    const broken = await fakeServer((_req, res) => {
      res.statusCode = 500;
      res.end("Internal Server Error");
    });
    const html = await fakeServer((_req, res) => res.end("<html>hello</html>"));
    const a = await startService("service-a", { DOWNSTREAM_URLS: broken.url });
    assert.equal(
      (await get(`${a.url}/`)).body,
      `{"service":"service-a","error":"answered 500","failed":"${broken.url}"}`,
    );
    const b = await startService("service-b", { DOWNSTREAM_URLS: html.url });
    const reply = await get(`${b.url}/`);
    assert.equal(reply.status, 502);
    assert.equal(
      reply.body,
      `{"service":"service-b","error":"answered 200 with a body that is not JSON","failed":"${html.url}"}`,
    );
  });

  it("unknown routes get 404 JSON, other methods 405 JSON", async function () {
    const a = await startService("service-a");
    const missing = await get(`${a.url}/nope?x=1`);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers["content-type"], "application/json");
    assert.equal(missing.body, '{"service":"service-a","error":"not found","path":"/nope"}');
    const post = await get(`${a.url}/health`, {}, "POST");
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
    assert.equal(post.body, '{"service":"service-a","error":"method not allowed","method":"POST"}');
  });

  it("an absolute-form request target (RFC 9112) is routed like its path", async function () {
    const a = await startService("service-a");
    const health = await rawExchange(
      a.port,
      `GET http://127.0.0.1:${a.port}/health?probe=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    );
    assert.match(health, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(health.endsWith('\r\n\r\n{"status":"ok"}'), health);
    const root = await rawExchange(
      a.port,
      "GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    );
    assert.ok(root.endsWith('\r\n\r\n{"service":"service-a","downstream":[]}'), root);
    const missing = await rawExchange(
      a.port,
      "GET http://example.com/nope HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    );
    assert.ok(missing.endsWith('{"service":"service-a","error":"not found","path":"/nope"}'), missing);
  });

  it("junk bytes, a huge header or a cut-off request never crash the process", async function () {
    const a = await startService("service-a");
    const junk = await rawExchange(a.port, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]));
    assert.match(junk, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.ok(junk.endsWith('\r\n\r\n{"service":"service-a","error":"bad request"}'), junk);
    const big = await rawExchange(a.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    assert.match(big, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.ok(big.endsWith('{"service":"service-a","error":"request header fields too large"}'), big);
    const smuggle = await rawExchange(
      a.port,
      "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert.match(smuggle, /^HTTP\/1\.1 400 Bad Request\r\n/);
    await new Promise<void>((resolve, reject) => {
      // A request cut off half-way: the client goes away before the headers end.
      const socket = net.connect(a.port, "127.0.0.1", () => socket.end("GET /heal"));
      socket.resume();
      socket.on("close", () => resolve());
      socket.on("error", reject);
    });
    const warn = await a.waitForLog((l) => l.msg === "malformed request", "malformed request");
    assert.equal(warn.status, 400);
    assert.equal(typeof warn.reqId, "string");
    const health = await get(`${a.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(a.proc.exitCode, null);
  });
});
