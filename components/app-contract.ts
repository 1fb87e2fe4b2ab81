// The contract of the apps built here (apps/shared), as the stack checks a catalog's \`env\`
// against it: the ranges and defaults come from the app's own parser and deadline module, so
// a change to the app is a change to validation; the timing rules (drain within the grace
// period, budgets down a chain) follow the app's arithmetic. Pure.
import { INT_ENV, LOG_LEVELS } from "../apps/shared/src/config";
import { DEADLINE_MARGIN_MS } from "../apps/shared/src/deadline";
import type { ServiceConfig } from "./catalog";
import { show } from "./problems";

/** The integer env vars the apps parse that the stack checks, with the words its messages use for their units. */
const APP_ENV_INTS = {
  DOWNSTREAM_TIMEOUT_MS: { ...INT_ENV.DOWNSTREAM_TIMEOUT_MS, unit: "milliseconds" },
  DOWNSTREAM_CONCURRENCY: { ...INT_ENV.DOWNSTREAM_CONCURRENCY, unit: "calls at once" },
  SHUTDOWN_DELAY_MS: { ...INT_ENV.SHUTDOWN_DELAY_MS, unit: "milliseconds" },
  SHUTDOWN_TIMEOUT_MS: { ...INT_ENV.SHUTDOWN_TIMEOUT_MS, unit: "milliseconds" },
} as const;
/** The apps' default `SHUTDOWN_TIMEOUT_MS`. */
export const APP_SHUTDOWN_TIMEOUT_DEFAULT_MS = INT_ENV.SHUTDOWN_TIMEOUT_MS.default;
/** The apps' default `DOWNSTREAM_TIMEOUT_MS`: the budget of a request with no `x-request-timeout-ms`. */
export const APP_DOWNSTREAM_TIMEOUT_DEFAULT_MS = INT_ENV.DOWNSTREAM_TIMEOUT_MS.default;
/** The apps' deadline margin: a hop bounds its calls by its budget less this, and forwards that bound less this again. */
export const APP_DEADLINE_MARGIN_MS = DEADLINE_MARGIN_MS;
/** The least a caller at the end of a chain must still have for its downstream call, once every hop above kept its margin. */
const MIN_CALL_BUDGET_MS = 100;

/** The pod's `terminationGracePeriodSeconds` and the stack's `SHUTDOWN_DELAY_MS` (see specs.ts, which uses these). */
export const TERMINATION_GRACE_SECONDS = 30;
const SHUTDOWN_DELAY_MS = 5000;

/** The drain delay the stack puts in a service's env: {@link SHUTDOWN_DELAY_MS}, unless `env` sets its own (then undefined). */
export function stackDrainDelayMs(svc: Pick<ServiceConfig, "env">): number | undefined {
  return svc.env.SHUTDOWN_DELAY_MS === undefined ? SHUTDOWN_DELAY_MS : undefined;
}

/** The timing an app built here will run with: its env, else the defaults; undefined where the env value is refused (reported apart). */
export interface AppTiming {
  downstreamTimeoutMs?: number;
  shutdownDelayMs?: number;
  shutdownTimeoutMs?: number;
}

/**
 * The env values an app built from this project parses at start (apps/shared/src/config.ts),
 * checked as the app would, and how its own timing fits together: the drain inside the pod's
 * grace period (else SIGKILL cuts it), and the longest a request waits inside the shutdown
 * timeout (the app answers every request by then, so a longer wait would end in a 504).
 */
export function appEnvProblems(svc: ServiceConfig, at: string): { problems: string[]; timing: AppTiming } {
  const graceSeconds = TERMINATION_GRACE_SECONDS;
  const problems: string[] = [];
  const ints: Record<string, number> = {};
  for (const [key, range] of Object.entries(APP_ENV_INTS)) {
    const raw = svc.env[key];
    if (raw === undefined || raw.trim() === "") {
      continue;
    }
    const value = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!Number.isSafeInteger(value) || value < range.min || value > range.max) {
      problems.push(
        `${at}.env.${key}: ${show(raw)} is refused by the app at start; use an integer from ${range.min} to ${range.max} (${range.unit})`,
      );
    } else {
      ints[key] = value;
    }
  }
  const level = svc.env.LOG_LEVEL?.trim();
  if (level !== undefined && level !== "" && !(LOG_LEVELS as readonly string[]).includes(level)) {
    problems.push(
      `${at}.env.LOG_LEVEL: ${show(svc.env.LOG_LEVEL)} is refused by the app at start; use one of ${LOG_LEVELS.join(", ")}`,
    );
  }
  const orDefault = (key: keyof typeof APP_ENV_INTS, fallback: number) =>
    ints[key] ?? (svc.env[key] === undefined || svc.env[key].trim() === "" ? fallback : undefined);
  const timing: AppTiming = {
    downstreamTimeoutMs: orDefault("DOWNSTREAM_TIMEOUT_MS", APP_DOWNSTREAM_TIMEOUT_DEFAULT_MS),
    // The stack's drain delay, else `env`'s (an empty value: the app's 0).
    shutdownDelayMs: stackDrainDelayMs(svc) ?? orDefault("SHUTDOWN_DELAY_MS", 0),
    shutdownTimeoutMs: orDefault("SHUTDOWN_TIMEOUT_MS", APP_SHUTDOWN_TIMEOUT_DEFAULT_MS),
  };
  const { downstreamTimeoutMs: wait, shutdownDelayMs: delay, shutdownTimeoutMs: timeout } = timing;
  if (delay !== undefined && timeout !== undefined && delay + timeout >= graceSeconds * 1000) {
    problems.push(
      `${at}.env: SHUTDOWN_DELAY_MS (${delay}) + SHUTDOWN_TIMEOUT_MS (${timeout}) = ${delay + timeout} ms does not fit ` +
        `the pod's ${graceSeconds} s grace period, so Kubernetes would kill the drain; keep the sum under ${graceSeconds * 1000} ms`,
    );
  }
  if (svc.calls.length > 0 && wait !== undefined && timeout !== undefined && wait + APP_DEADLINE_MARGIN_MS > timeout) {
    problems.push(
      `${at}.env: DOWNSTREAM_TIMEOUT_MS (${wait}) + the apps' ${APP_DEADLINE_MARGIN_MS} ms deadline margin = ` +
        `${wait + APP_DEADLINE_MARGIN_MS} ms does not fit SHUTDOWN_TIMEOUT_MS (${timeout}), so a request taken as the drain ends ` +
        `would be cut short with a 504; keep DOWNSTREAM_TIMEOUT_MS at most ${timeout - APP_DEADLINE_MARGIN_MS} or raise ` +
        `SHUTDOWN_TIMEOUT_MS to at least ${wait + APP_DEADLINE_MARGIN_MS}`,
    );
  }
  return { problems, timing };
}

/**
 * Deadlines down every chain of apps built here: a request entering at `k` (no header) has
 * k's DOWNSTREAM_TIMEOUT_MS, and each hop forwards its bound less the apps' margin, then bounds
 * its own calls by that less the margin again, so the caller `hops` levels down has that budget
 * less 2 x `hops` margins for its own call. For
 * each such `k`, the longest run of callers below it must leave MIN_CALL_BUDGET_MS (an entry
 * lower in the chain with a smaller budget is checked as its own `k`). Services with a prebuilt
 * image end a run: whether they honour the header is unknown.
 */
export function deadlineProblems(services: ServiceConfig[], timings: Map<string, AppTiming>): string[] {
  const byName = new Map(services.map((s) => [s.name, s]));
  const isAppCaller = (name: string) => timings.has(name) && (byName.get(name)?.calls.length ?? 0) > 0;
  /** The longest path of app-built callers below `name` (names after it), memoised; cycles are reported elsewhere. */
  const longest = new Map<string, string[]>();
  const visiting = new Set<string>();
  const below = (name: string): string[] => {
    const known = longest.get(name);
    if (known !== undefined) {
      return known;
    }
    if (visiting.has(name)) {
      return [];
    }
    visiting.add(name);
    let best: string[] = [];
    for (const callee of byName.get(name)?.calls ?? []) {
      if (callee !== name && isAppCaller(callee)) {
        const path = [callee, ...below(callee)];
        if (path.length > best.length) {
          best = path;
        }
      }
    }
    visiting.delete(name);
    longest.set(name, best);
    return best;
  };
  const problems: string[] = [];
  for (const svc of services) {
    const budget = timings.get(svc.name)?.downstreamTimeoutMs;
    if (!isAppCaller(svc.name) || budget === undefined) {
      continue;
    }
    const path = below(svc.name);
    const kept = 2 * APP_DEADLINE_MARGIN_MS;
    const left = budget - path.length * kept;
    if (path.length > 0 && left < MIN_CALL_BUDGET_MS) {
      const chain = [svc.name, ...path];
      const shown = chain.length > 6 ? [...chain.slice(0, 2), "...", ...chain.slice(-2)] : chain;
      const set =
        svc.env.DOWNSTREAM_TIMEOUT_MS === undefined || svc.env.DOWNSTREAM_TIMEOUT_MS.trim() === ""
          ? " (the apps' default)"
          : "";
      problems.push(
        `services.${svc.name}.env.DOWNSTREAM_TIMEOUT_MS: ${budget} ms${set} is the budget of a request entering at ${svc.name}; ` +
          `the ${path.length} caller${path.length === 1 ? "" : "s"} below it (${shown.join(" -> ")}) ${path.length === 1 ? "gets" : "each get"} ${kept} ms less than ${path.length === 1 ? "its caller" : "their caller"} (the apps' ${APP_DEADLINE_MARGIN_MS} ms deadline margin, for the answer back, at both ends of a call), ` +
          `leaving ${path[path.length - 1]} ${left} ms for its call, under the ${MIN_CALL_BUDGET_MS} ms a call needs; ` +
          `set it to at least ${MIN_CALL_BUDGET_MS + path.length * kept} or shorten the chain`,
      );
    }
  }
  return problems;
}
