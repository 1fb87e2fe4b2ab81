// Where a step's CPU goes, by process: sampled from /proc while the step runs (the engine, the
// program, the providers and the control plane are separate processes, so this splits a
// step's cost between the program and what it cannot change).
import * as fs from "fs";

/** Process kinds, matched on the command line in this order; anything else is not counted. */
const KINDS: Array<[string, RegExp]> = [
  ["dynamic provider (the Rollout watches)", /dynamic-provider/],
  ["program (node, @pulumi/pulumi)", /@pulumi\/pulumi\/cmd\/run|pulumi-language-nodejs/],
  ["kubernetes provider", /pulumi-resource-kubernetes/],
  ["engine (pulumi CLI)", /\/pulumi (preview|up|destroy)\b/],
  ["helm", /\/helm (install|uninstall)/],
  ["kube-apiserver", /kube-apiserver/],
  ["etcd", /\/etcd /],
  ["controllers, scheduler, kwok", /kube-controller-manager|kube-scheduler|\/kwok /],
];

const TICKS = 100; // USER_HZ on Linux

function snapshot(): Map<number, { kind: string; cpu: number }> {
  const out = new Map<number, { kind: string; cpu: number }>();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").replace(/\0/g, " ");
      const kind = KINDS.find(([, re]) => re.test(cmd))?.[0];
      if (!kind) continue;
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(Number(d), { kind, cpu: (Number(f[11]) + Number(f[12])) / TICKS });
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return out;
}

/**
 * Samples every 500 ms until `stop()`; returns CPU seconds per kind spent during the window
 * (a process's last sample less its first; one that ended between samples loses its last
 * half second at most).
 */
export function cpuByProcess(): { stop: () => Map<string, number> } {
  const first = snapshot();
  const last = new Map(first);
  const timer = setInterval(() => {
    for (const [pid, s] of snapshot()) last.set(pid, s);
  }, 500);
  return {
    stop: () => {
      clearInterval(timer);
      for (const [pid, s] of snapshot()) last.set(pid, s);
      const by = new Map<string, number>();
      for (const [pid, s] of last) {
        by.set(s.kind, (by.get(s.kind) ?? 0) + s.cpu - (first.get(pid)?.cpu ?? 0));
      }
      return by;
    },
  };
}
