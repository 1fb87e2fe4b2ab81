// Why this exists: the Pulumi SDK takes a stack trace for every resource it registers (its
// source position, with Error.stackTraceLimit raised to Infinity) and for every promise it
// tracks (leak reports, about ten per resource). Under ts-node every one of those traces goes
// through ts-node's source-map-support, which maps each frame: for a 200-service catalog that
// was about 0.8 s of the 3.5-4 s the program takes (profiled with `node --cpu-prof`). None of
// those traces is read by a person unless the program crashes.
//
// So while the validated catalog registers, and only then, traces are formatted by V8 without
// source maps (frames still name the .ts files, with positions in the transpiled code), and
// the SDK's promise bookkeeping takes none. Both are put back when registering returns or
// throws: nothing outside that call sees a changed Error. Config errors are reported before
// this starts and carry no trace anyway (RunError). K8S_CHAIN_STACK_TRACES=1 keeps ts-node's
// source-mapped traces throughout, to debug the stack itself.

/** V8's own format: `Error: message` then `    at frame` per call site. */
function plainStackTrace(error: Error, frames: NodeJS.CallSite[]): string {
  const head = `${error.name ?? "Error"}${error.message ? `: ${error.message}` : ""}`;
  return frames.length === 0 ? head : `${head}\n    at ${frames.join("\n    at ")}`;
}

/**
 * Runs `register` (which creates the stack's resources) with stack traces that cost no
 * source-map lookups, and no trace at all for the SDK's promise bookkeeping
 * (Error.stackTraceLimit 0; the SDK raises it itself for source positions); then puts
 * Error.prepareStackTrace and Error.stackTraceLimit back as they were.
 */
export function withPlainStackTraces<T>(register: () => T, env: NodeJS.ProcessEnv = process.env): T {
  if (env.K8S_CHAIN_STACK_TRACES === "1") {
    return register();
  }
  const { prepareStackTrace, stackTraceLimit } = Error;
  Error.prepareStackTrace = plainStackTrace;
  Error.stackTraceLimit = 0;
  try {
    return register();
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
    Error.prepareStackTrace = prepareStackTrace;
  }
}
