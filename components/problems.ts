// How config problems are reported: one error that lists them all, values shown as written.

/** Thrown when the config has problems; `problems` holds one line per problem. */
export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(formatProblems(problems));
    this.name = "ConfigError";
  }
}

/** The one error text a user reads for config problems: a count, then one line per problem. */
export function formatProblems(problems: string[]): string {
  const noun = problems.length === 1 ? "problem" : "problems";
  return (
    `k8s-chain config has ${problems.length} ${noun}; nothing was created:\n` +
    problems.map((p) => `  - ${p}`).join("\n")
  );
}

/** Renders a value the way the user wrote it, for messages. */
export function show(value: unknown): string {
  if (value === undefined) {
    return "undefined";
  }
  return JSON.stringify(value);
}
