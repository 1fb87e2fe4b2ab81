// The generated catalogs of the kwok benches: many services in parallel chains of one depth.

/** A pinned reference kwok never pulls (its pods are Ready without running anything). */
export const PINNED = "127.0.0.1:9/bench@sha256:" + "ab".repeat(32);

/** `n` services in `ceil(n / depth)` parallel chains of `depth` calls each, one replica each. */
export function chains(n: number, depth: number): Record<string, unknown> {
  const width = Math.ceil(n / depth);
  const services: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const callee = i + width;
    services[`svc-${i}`] = { image: PINNED, replicas: 1, calls: callee < n ? [`svc-${callee}`] : [] };
  }
  return services;
}
