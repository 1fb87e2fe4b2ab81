export { createApp, requestIdOf, type App } from "./app";
export { loadConfig, LOG_LEVELS, type Config } from "./config";
export { callDownstream, createDownstreamAgent, MAX_BODY_BYTES, type CallResult } from "./downstream";
export { createLogger, type Logger } from "./logger";
export { runService } from "./run";
export { createShutdown, type ShutdownOptions } from "./shutdown";
