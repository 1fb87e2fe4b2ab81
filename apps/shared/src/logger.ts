import { hostname } from "node:os";
import pino, { type Logger } from "pino";

export type { Logger };

/**
 * JSON lines on stdout: `level`, `time` (ISO), `service`, `pid`, `hostname`, `msg`; request
 * lines add `reqId`. Writes are synchronous (pino's default stdout stream is not): with an
 * asynchronous one, lines still being written when `process.exit` runs can land after the
 * ones flushed at exit, or be lost.
 */
export function createLogger(serviceName: string, level: string): Logger {
  return pino(
    {
      level,
      base: { service: serviceName, pid: process.pid, hostname: hostname() },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 1, sync: true }),
  );
}
