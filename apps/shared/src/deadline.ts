// The deadline arithmetic every hop shares; no imports, so the stack reads it too
// (components/app-contract.ts validates a catalog's timeouts with it).

/**
 * The time an answer needs to travel back one hop. A hop keeps it twice out of the budget it
 * was given: its downstream calls are bounded by the budget less this (so its own answer reaches
 * its caller in time), and each call forwards its bound less this again (so the callee's answer,
 * a 504 of its own included, reaches this hop before this hop's timer fires). A hang deep in a
 * chain is then reported by the hop that saw it: each hop waits 2 x 50 ms less than its caller.
 */
export const DEADLINE_MARGIN_MS = 50;
