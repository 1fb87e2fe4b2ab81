/**
 * GitHub's expression evaluator (`@actions/expressions`), applied to a workflow value the way
 * the runner applies it: every `${{ ... }}` in the string is evaluated against the given
 * contexts (`github`, `vars`, `secrets`, `steps`, ...; a missing key is null, as on GitHub)
 * and coerced to a string. Shared by the workflow audit (tests/workflows.test.ts) and the
 * runner stand-in that runs the Pulumi action (lab/action/runner.ts).
 */
import type * as Expressions from "@actions/expressions";

// The package is ESM only; `import()` goes through `new Function` because TypeScript compiles a
// literal `import()` to `require()` under `module: commonjs`.
const importEsm = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<unknown>;

let library: Promise<typeof Expressions> | undefined;

function loadExpressions(): Promise<typeof Expressions> {
  library ??= importEsm("@actions/expressions") as Promise<typeof Expressions>;
  return library;
}

/** Evaluates a string holding `${{ ... }}` expressions with the given contexts. */
export async function evaluateTemplate(text: string, contexts: Record<string, unknown>): Promise<string> {
  const { Lexer, Parser, Evaluator, data } = await loadExpressions();
  const contextData = JSON.parse(JSON.stringify(contexts), data.reviver) as Expressions.data.Dictionary;
  let out = "";
  let rest = text;
  for (;;) {
    const start = rest.indexOf("${{");
    if (start < 0) return out + rest;
    out += rest.slice(0, start);
    const end = expressionEnd(rest, start + 3);
    const source = rest.slice(start + 3, end).trim();
    const lexed = new Lexer(source).lex();
    const expr = new Parser(lexed.tokens, Object.keys(contexts), []).parse();
    out += new Evaluator(expr, contextData).evaluate().coerceString();
    rest = rest.slice(end + 2);
  }
}

/** Index of the `}}` closing an expression, skipping `'...'` string literals ('' escapes '). */
function expressionEnd(text: string, from: number): number {
  let inString = false;
  for (let i = from; i < text.length; i++) {
    if (text[i] === "'") inString = !inString;
    else if (!inString && text.startsWith("}}", i)) return i;
  }
  throw new Error(`unterminated expression in: ${text}`);
}
