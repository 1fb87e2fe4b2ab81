export { budgetOf, createApp, DEADLINE_MARGIN_MS, pathOf, requestIdOf, TIMEOUT_HEADER, type App } from "./app";
export { loadConfig, LOG_LEVELS, redactUrl, type Config } from "./config";
export {
  Call,
  downstreamOf,
  DownstreamPool,
  jsonProblem,
  MAX_BODY_BYTES,
  MAX_JSON_DEPTH,
  type CallResult,
  type Downstream,
} from "./downstream";
export { createLogger, type Logger } from "./logger";
export { runService } from "./run";
export { createShutdown, type ShutdownOptions } from "./shutdown";
