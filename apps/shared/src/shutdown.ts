import type { App } from "./app";
import type { Logger } from "./logger";

export interface ShutdownOptions {
  /** Keep serving this long after the signal while `/health` answers 503. */
  readonly delayMs: number;
  /** Then give in-flight requests this long before a forced exit 1. */
  readonly timeoutMs: number;
  readonly log: Logger;
  /** `process.exit` in the real process. */
  readonly exit: (code: number) => void;
}

/**
 * The shutdown sequence, run once whatever signal (or how many) arrives: health 503 at once;
 * after `delayMs` stop accepting and wait for in-flight requests; exit 0, or 1 when they are
 * still running `timeoutMs` later. Worst case from the signal to exit: delayMs + timeoutMs.
 */
export function createShutdown(app: App, { delayMs, timeoutMs, log, exit }: ShutdownOptions): (signal: string) => void {
  let started = false;
  return (signal) => {
    if (started) {
      log.info({ signal }, "shutdown already in progress");
      return;
    }
    started = true;
    app.startDraining();
    log.info({ signal, delayMs }, "shutdown started: /health answers 503, still serving");
    setTimeout(() => {
      const force = setTimeout(() => {
        log.error({ inFlight: app.inFlight, timeoutMs }, "forced exit: in-flight requests still running");
        exit(1);
      }, timeoutMs);
      // close() stops the listener synchronously, so this line means "no longer accepting".
      const closed = app.close();
      log.info({ inFlight: app.inFlight, timeoutMs }, "closing the server: no new connections, in-flight requests finish");
      void closed.then(() => {
        clearTimeout(force);
        log.info("shutdown complete");
        exit(0);
      });
    }, delayMs);
  };
}
