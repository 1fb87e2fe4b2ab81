/** The environment contract of every sample service, parsed once at start-up. */
export interface Config {
  /** Port to listen on (0: any free port). @default 8080 */
  readonly port: number;
  /** Name in every response body and log line. @default the app's folder name */
  readonly serviceName: string;
  /** Base URLs whose `GET /` is called by `GET /`, in order. @default [] */
  readonly downstreamUrls: readonly string[];
  /**
   * Bound on each downstream call (connect, headers and body), and the budget of a request
   * that comes without `x-request-timeout-ms`. @default 2000
   */
  readonly downstreamTimeoutMs: number;
  /**
   * Most calls in flight to one downstream at once; more wait their turn within their bound.
   * The limit halves (down to 4) when calls time out and grows back with answers. @default 256
   */
  readonly downstreamConcurrency: number;
  /** How long to keep serving every route normally after SIGTERM. @default 0 */
  readonly shutdownDelayMs: number;
  /** After the delay, how long in-flight requests get before a forced exit 1. @default 10000 */
  readonly shutdownTimeoutMs: number;
  /** pino level: fatal, error, warn, info, debug, trace, silent. @default "info" */
  readonly logLevel: string;
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/**
 * The integer env vars, each with its default and the range the app accepts. Exported as data
 * so the stack validates a catalog's `env` against the app's own contract, not a copy of it.
 */
export const INT_ENV = {
  PORT: { default: 8080, min: 0, max: 65535 },
  DOWNSTREAM_TIMEOUT_MS: { default: 2000, min: 1, max: 3_600_000 },
  DOWNSTREAM_CONCURRENCY: { default: 256, min: 1, max: 100_000 },
  SHUTDOWN_DELAY_MS: { default: 0, min: 0, max: 3_600_000 },
  SHUTDOWN_TIMEOUT_MS: { default: 10_000, min: 1, max: 3_600_000 },
} as const;

/** Every `scheme://user:password@` in `text` becomes `scheme://***@` (`http://user:pass@host/x` -> `http://***@host/x`). */
export function redactUrl(text: string): string {
  return text.replace(/([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^\s/?#]*@/g, "$1***@");
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads the env contract. Unset or empty variables take their default; every bad value is
 * collected, and one Error lists them all.
 */
export function loadConfig(env: Env, defaultServiceName: string): Config {
  const problems: string[] = [];

  const integer = (key: keyof typeof INT_ENV): number => {
    const { default: fallback, min, max } = INT_ENV[key];
    const raw = env[key]?.trim() ?? "";
    if (raw === "") return fallback;
    const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`\`${key}\` must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
      return fallback;
    }
    return value;
  };

  const port = integer("PORT");
  const downstreamTimeoutMs = integer("DOWNSTREAM_TIMEOUT_MS");
  const downstreamConcurrency = integer("DOWNSTREAM_CONCURRENCY");
  const shutdownDelayMs = integer("SHUTDOWN_DELAY_MS");
  const shutdownTimeoutMs = integer("SHUTDOWN_TIMEOUT_MS");

  const serviceName = env.SERVICE_NAME?.trim() || defaultServiceName;

  const downstreamUrls = (env.DOWNSTREAM_URLS ?? "")
    .split(",")
    .map((url) => url.trim())
    .filter((url) => url !== "");
  for (const url of downstreamUrls) {
    let protocol = "";
    try {
      protocol = new URL(url).protocol;
    } catch {
      // reported below
    }
    if (protocol !== "http:" && protocol !== "https:") {
      problems.push(
        `\`DOWNSTREAM_URLS\` entries must be http:// or https:// URLs (got ${JSON.stringify(redactUrl(url))})`,
      );
    }
  }

  const logLevel = env.LOG_LEVEL?.trim() || "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`\`LOG_LEVEL\` must be one of ${LOG_LEVELS.join(", ")} (got ${JSON.stringify(logLevel)})`);
  }

  if (problems.length > 0) {
    throw new Error(`invalid environment for ${serviceName}:\n  - ${problems.join("\n  - ")}`);
  }
  return {
    port,
    serviceName,
    downstreamUrls,
    downstreamTimeoutMs,
    downstreamConcurrency,
    shutdownDelayMs,
    shutdownTimeoutMs,
    logLevel,
  };
}
