/** The middle value of `xs` (the upper of the two middle ones for an even count): each bench's "median of N runs". */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/**
 * The value at quantile `q` of `xs` (nearest rank, the same rule as wrk's and the probe's
 * p99: the value below which a fraction `q` of the samples fall); NaN when empty.
 */
export function quantile(xs: readonly number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}
