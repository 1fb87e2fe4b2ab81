import { hostname } from "node:os";
import pino, { type Logger } from "pino";

export type { Logger };

/**
 * JSON lines on stdout: `level`, `time` (ISO), `service`, `pid`, `hostname`, `msg`; request
 * lines add `reqId`. Writes are synchronous, so nothing is lost on exit.
 */
export function createLogger(serviceName: string, level: string): Logger {
  return pino({
    level,
    base: { service: serviceName, pid: process.pid, hostname: hostname() },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
