// The ceiling: a bare node:http server answering the same JSON as the sample services, with no
// router, logging, request ids, timeouts or shutdown handling. Used by bench/apps/run.ts only.
// `/` calls NEXT_URL (when set) over a keep-alive http.Agent and nests its answer.
import http from "node:http";

const name = process.env.SERVICE_NAME ?? "bare";
const next = process.env.NEXT_URL;
const agent = new http.Agent({ keepAlive: true });
const health = Buffer.from('{"status":"ok"}');

function json(res: http.ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
}

http
  .createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "application/json", "content-length": health.length });
      res.end(health);
    } else if (!next) {
      json(res, 200, { service: name, downstream: [] });
    } else {
      http
        .get(next, { agent }, (answer) => {
          let text = "";
          answer.setEncoding("utf8");
          answer.on("data", (chunk: string) => (text += chunk));
          answer.on("end", () => json(res, 200, { service: name, downstream: [JSON.parse(text)] }));
        })
        .on("error", (err) => json(res, 502, { service: name, error: err.message, failed: next }));
    }
  })
  .listen(Number(process.env.PORT), "127.0.0.1");
