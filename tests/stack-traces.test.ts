import * as assert from "assert";
import { withPlainStackTraces } from "../components/stack-traces";

describe("withPlainStackTraces", () => {
  const saved = { prepare: Error.prepareStackTrace, limit: Error.stackTraceLimit };
  afterEach(() => {
    Error.prepareStackTrace = saved.prepare;
    Error.stackTraceLimit = saved.limit;
  });

  it("takes no trace while registering, then formats traces without source maps", () => {
    const inside = withPlainStackTraces(() => ({ limit: Error.stackTraceLimit, stack: new Error("during").stack }), {});
    assert.deepStrictEqual(inside, { limit: 0, stack: "Error: during" });
    assert.strictEqual(Error.stackTraceLimit, saved.limit);
    assert.notStrictEqual(Error.prepareStackTrace, saved.prepare);
    const lines = new RangeError("after").stack!.split("\n");
    assert.strictEqual(lines[0], "RangeError: after");
    // V8's own frames: this file's name, at a position in the code ts-node handed to V8.
    assert.match(lines[1], /^ {4}at .*tests\/stack-traces\.test\.ts:\d+:\d+\)$/);
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
  });
});
