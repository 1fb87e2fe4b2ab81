import * as assert from "assert";
import { creationOrder, findCycles } from "../components/graph";

const g = (edges: Record<string, string[]>) => new Map(Object.entries(edges));

describe("graph", () => {
  it("orders callees before callers, keeping catalog order among the free", () => {
    assert.deepStrictEqual(
      creationOrder(g({ "sample-app": [], "service-a": ["service-b"], "service-b": ["service-c"], "service-c": [] })),
      ["sample-app", "service-c", "service-b", "service-a"],
    );
  });

  it("handles a diamond and repeated edges", () => {
    const order = creationOrder(g({ top: ["left", "right"], left: ["base"], right: ["base", "base"], base: [] }));
    assert.deepStrictEqual(order, ["base", "left", "right", "top"]);
  });

  it("finds a cycle and prints its path once", () => {
    assert.deepStrictEqual(findCycles(g({ a: ["b"], b: ["c"], c: ["a"] })), [["a", "b", "c", "a"]]);
    assert.deepStrictEqual(findCycles(g({ x: [], a: ["b"], b: ["a"], c: ["d"], d: ["c"] })), [
      ["a", "b", "a"],
      ["c", "d", "c"],
    ]);
    assert.deepStrictEqual(findCycles(g({ a: ["b"], b: [] })), []);
  });

  it("refuses to order a cyclic graph", () => {
    assert.throws(() => creationOrder(g({ a: ["b"], b: ["a"], c: [] })), /call graph has a cycle through a, b/);
  });
});
