import { DEADLINE_MARGIN_MS, type App } from "./app";
import type { Logger } from "./logger";

export interface ShutdownOptions {
  /** Keep serving every route normally this long after the signal (endpoints and kube-proxy catch up). */
  readonly delayMs: number;
  /** Then give in-flight requests this long before a forced exit 1. */
  readonly timeoutMs: number;
  readonly log: Logger;
  /** `process.exit` in the real process. */
  readonly exit: (code: number) => void;
}

/**
 * The shutdown sequence, run once whatever signal (or how many) arrives: keep answering every
 * route (`/health` included) for `delayMs`, each response closing its connection; then stop
 * accepting, close idle and silent connections, let in-flight requests finish, exit 0. Every
 * request is answered by `delayMs + timeoutMs - margin` after the signal (downstream calls
 * that would wait longer are cut short: 504), so the forced exit 1 at `delayMs + timeoutMs`
 * is a backstop that a working process does not reach.
 */
export function createShutdown(app: App, { delayMs, timeoutMs, log, exit }: ShutdownOptions): (signal: string) => void {
  let started = false;
  return (signal) => {
    if (started) {
      log.info({ signal }, "shutdown already in progress");
      return;
    }
    started = true;
    app.startDraining(performance.now() + delayMs + Math.max(0, timeoutMs - DEADLINE_MARGIN_MS));
    log.info({ signal, delayMs }, "shutdown started: still serving every route");
    setTimeout(() => {
      const force = setTimeout(() => {
        log.error({ inFlight: app.inFlight, timeoutMs }, "forced exit: in-flight requests still running");
        exit(1);
      }, timeoutMs);
      // close() stops the listener synchronously, so this line means "no longer accepting".
      const closed = app.close();
      log.info(
        { inFlight: app.inFlight, timeoutMs },
        "closing the server: no new connections, in-flight requests finish",
      );
      void closed.then(() => {
        clearTimeout(force);
        log.info("shutdown complete");
        exit(0);
      });
    }, delayMs);
  };
}
