import * as assert from "assert";
import { withPlainStackTraces } from "../components/stack-traces";

describe("withPlainStackTraces", () => {
  const saved = { prepare: Error.prepareStackTrace, limit: Error.stackTraceLimit };
  afterEach(() => {
    Error.prepareStackTrace = saved.prepare;
    Error.stackTraceLimit = saved.limit;
  });

  it("takes no trace while registering, formats traces there without source maps, and puts both back after", () => {
    const inside = withPlainStackTraces(() => {
      const lines = new RangeError("during").stack!.split("\n");
      return { limit: Error.stackTraceLimit, prepare: Error.prepareStackTrace, lines };
    }, {});
    assert.strictEqual(inside.limit, 0);
    assert.notStrictEqual(inside.prepare, saved.prepare);
    assert.deepStrictEqual(inside.lines, ["RangeError: during"]);
    // Outside the call, Error is as it was: no process-wide change is left behind.
    assert.strictEqual(Error.stackTraceLimit, saved.limit);
    assert.strictEqual(Error.prepareStackTrace, saved.prepare);
  });

  it("formats a trace the SDK asks for while registering (the limit raised) with V8's frames", () => {
    const stack = withPlainStackTraces(() => {
      Error.stackTraceLimit = Infinity;
      return new Error("source position").stack!;
    }, {});
    const lines = stack.split("\n");
    assert.strictEqual(lines[0], "Error: source position");
    // V8's own frames: this file's name, at a position in the code ts-node handed to V8.
    assert.match(lines[1], /^ {4}at .*tests\/stack-traces\.test\.ts:\d+:\d+\)?$/);
  });

  it("keeps the source-mapped traces with K8S_CHAIN_STACK_TRACES=1", () => {
    const inside = withPlainStackTraces(() => Error.stackTraceLimit, { K8S_CHAIN_STACK_TRACES: "1" });
    assert.strictEqual(inside, saved.limit);
    assert.strictEqual(Error.prepareStackTrace, saved.prepare);
  });

  it("restores the limit when registering throws", () => {
    assert.throws(
      () =>
        withPlainStackTraces(() => {
          throw new Error("bad");
        }, {}),
      /^Error: bad$/,
    );
    assert.strictEqual(Error.stackTraceLimit, saved.limit);
    assert.strictEqual(Error.prepareStackTrace, saved.prepare);
  });
});
