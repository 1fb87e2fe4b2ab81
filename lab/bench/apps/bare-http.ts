// The ceiling: a bare node:http server answering the same JSON as the sample services, with no
// router, logging, request ids or shutdown handling. Used by lab/bench/apps/run.ts only.
// `/` calls NEXT_URL (when set) over a keep-alive http.Agent and nests its answer. With
// DOWNSTREAM_TIMEOUT_MS set (the /health-while-hanging runs only, never the chain), a call
// still unanswered after that long is destroyed, closing its connection as ours does, and
// answered 504: the floor for what timed-out calls cost a Node server on this machine.
// With ANSWER_504_AFTER_MS set instead (and no NEXT_URL), `/` calls no one and is answered 504
// after that long: the least that answering requests which time out costs any Node server here.
import http from "node:http";

const name = process.env.SERVICE_NAME ?? "bare";
const next = process.env.NEXT_URL;
const timeoutMs = process.env.DOWNSTREAM_TIMEOUT_MS ? Number(process.env.DOWNSTREAM_TIMEOUT_MS) : undefined;
const answer504AfterMs = process.env.ANSWER_504_AFTER_MS ? Number(process.env.ANSWER_504_AFTER_MS) : undefined;
const agent = new http.Agent({ keepAlive: true });
const health = Buffer.from('{"status":"ok"}');

function json(res: http.ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
}

function callNext(url: string, res: http.ServerResponse): void {
  let timedOut = false;
  const call = http
    .get(url, { agent }, (answer) => {
      let text = "";
      answer.setEncoding("utf8");
      answer.on("data", (chunk: string) => (text += chunk));
      answer.on("end", () => {
        clearTimeout(timer);
        json(res, 200, { service: name, downstream: [JSON.parse(text)] });
      });
    })
    .on("error", (err) => {
      clearTimeout(timer);
      json(res, timedOut ? 504 : 502, { service: name, error: timedOut ? "timed out" : err.message, failed: url });
    });
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          call.destroy();
        }, timeoutMs);
}

http
  .createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "application/json", "content-length": health.length });
      res.end(health);
    } else if (answer504AfterMs !== undefined) {
      const timer = setTimeout(() => json(res, 504, { service: name, error: "timed out" }), answer504AfterMs);
      res.once("close", () => clearTimeout(timer));
    } else if (!next) {
      json(res, 200, { service: name, downstream: [] });
    } else {
      callNext(next, res);
    }
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
