// Ordering of the call graph: pure functions, no Pulumi.
//
// A graph maps each service to the services it calls. Callees must exist before their
// callers (a caller's objects wait for its callees to be created and ready), so the
// creation order is a topological order with callees first.

/** Service name -> the names it calls. Every callee must be a key. */
export type CallGraph = ReadonlyMap<string, readonly string[]>;

/**
 * Every elementary cycle reachable by a depth-first walk, each once, as a path that starts
 * and ends at the same service (`["a", "b", "a"]`), starting from the service that comes
 * first in the graph's order.
 */
export function findCycles(graph: CallGraph): string[][] {
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const seen = new Set<string>();

  const visit = (node: string): void => {
    state.set(node, "visiting");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const s = state.get(next);
      if (s === "visiting") {
        const cycle = [...stack.slice(stack.indexOf(next)), next];
        // The same cycle can be entered from different nodes; report it once.
        const key = [...cycle.slice(0, -1)].sort().join(" ");
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push(cycle);
        }
      } else if (s === undefined) {
        visit(next);
      }
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of graph.keys()) {
    if (!state.has(node)) {
      visit(node);
    }
  }
  return cycles;
}

/**
 * The order to create services in: every service after all the services it calls; among
 * services free to go, the graph's own order (so the result is stable for a given catalog).
 * @throws Error if the graph has a cycle (validation reports cycles first, with their path).
 */
export function creationOrder(graph: CallGraph): string[] {
  const remaining = new Map<string, number>();
  const callers = new Map<string, string[]>();
  for (const [node, callees] of graph) {
    remaining.set(node, new Set(callees).size);
    for (const callee of new Set(callees)) {
      callers.set(callee, [...(callers.get(callee) ?? []), node]);
    }
  }
  const position = new Map([...graph.keys()].map((n, i) => [n, i]));
  const ready = [...graph.keys()].filter((n) => remaining.get(n) === 0);
  const order: string[] = [];
  while (ready.length > 0) {
    const node = ready.shift()!;
    order.push(node);
    const freed: string[] = [];
    for (const caller of callers.get(node) ?? []) {
      const left = (remaining.get(caller) ?? 0) - 1;
      remaining.set(caller, left);
      if (left === 0) {
        freed.push(caller);
      }
    }
    // Keep the queue in graph order so the result does not depend on edge order.
    ready.push(...freed);
    ready.sort((a, b) => (position.get(a) ?? 0) - (position.get(b) ?? 0));
  }
  if (order.length !== graph.size) {
    const stuck = [...graph.keys()].filter((n) => !order.includes(n));
    throw new Error(`call graph has a cycle through ${stuck.join(", ")}`);
  }
  return order;
}
