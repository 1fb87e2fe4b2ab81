// Open-loop latency probe: GET <url> at a fixed rate for a fixed time, over keep-alive
// connections; a request is sent when due even if earlier ones are still waiting (a stalled
// server is not hidden by waiting for it), and timed from when it was sent. The first second
// warms up (JIT, connections) and is not counted. Prints one JSON line:
// {"count","p50","p99","max","errors","latencies"} (ms; `latencies` is every counted request's,
// for the bench to pool rounds).
//   node -r ts-node/register/transpile-only lab/bench/apps/probe.ts <url> <rate per s> <seconds>
import http from "node:http";
import { quantile } from "../stats";

const [url, rateArg, secondsArg] = process.argv.slice(2);
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const agent = new http.Agent({ keepAlive: true });
const latencies: number[] = [];
let errors = 0;
let pending = 0;
const warmUp = Math.round(rate);
const total = warmUp + Math.round(rate * seconds);
const start = performance.now();

function fire(counted: boolean): void {
  pending++;
  const sentAt = performance.now();
  const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
    res.resume();
    res.on("end", () => {
      if (res.statusCode !== 200) errors += counted ? 1 : 0;
      else if (counted) latencies.push(performance.now() - sentAt);
      done();
    });
  });
  req.on("timeout", () => req.destroy(new Error("timeout")));
  req.on("error", () => {
    errors += counted ? 1 : 0;
    done();
  });
}

function done(): void {
  pending--;
  if (sent === total && pending === 0) report();
}

let sent = 0;
function tick(): void {
  // Catch up on every request that is due by now, then sleep until the next one.
  const now = performance.now();
  while (sent < total && start + (sent * 1000) / rate <= now) fire(sent++ >= warmUp);
  if (sent < total) setTimeout(tick, Math.max(0, start + (sent * 1000) / rate - performance.now()));
}

function report(): void {
  const at = (q: number) => quantile(latencies, q);
  console.log(
    JSON.stringify({
      count: latencies.length,
      p50: at(0.5),
      p99: at(0.99),
      max: at(1),
      errors,
      latencies: latencies.map((ms) => Math.round(ms * 1000) / 1000),
    }),
  );
  agent.destroy();
}

tick();
