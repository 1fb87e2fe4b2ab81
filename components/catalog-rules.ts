// The rules that need the whole catalog: callees, cycles, shared node ports, env and label
// collisions with what the stack sets, reserved names, and the apps' timing across a chain.
// Pure; each problem names the service and field, the value and the fix.
import { appEnvProblems, AppTiming, deadlineProblems } from "./app-contract";
import type { ServiceConfig } from "./catalog";
import { findCycles } from "./graph";
import { show } from "./problems";

/** Kubernetes' NodePort range (the API server's default `--service-node-port-range`). */
export const NODE_PORT_MIN = 30000;
export const NODE_PORT_MAX = 32767;
/** The name of the stack's default-deny NetworkPolicy; a service named so would take its name. */
export const DEFAULT_DENY_POLICY_NAME = "k8s-chain-default-deny";

/** Env vars the stack sets from the catalog; `env` may not redefine them. */
function wiredEnvNames(svc: ServiceConfig): string[] {
  return ["SERVICE_NAME", "PORT", "DOWNSTREAM_URLS", ...svc.calls.map(urlEnvName)];
}

/** `service-b` -> `SERVICE_B_URL`. */
export function urlEnvName(callee: string): string {
  return `${callee.toUpperCase().replace(/-/g, "_")}_URL`;
}

/**
 * Why a label key is not the catalog's to set (undefined when it is): the stack's own keys
 * (`app`, `app.kubernetes.io/*`, which select and identify its objects), the keys Kubernetes
 * reserves for its components, and the Deployment controller's `pod-template-hash`.
 */
export function reservedLabelProblem(key: string): string | undefined {
  const prefix = key.includes("/") ? key.slice(0, key.indexOf("/")) : "";
  if (key === "app") {
    return "set by the stack to the service name; remove it or use another key";
  }
  if (prefix === "app.kubernetes.io") {
    return '`app.kubernetes.io/*` keys are set by the stack (its identity labels); remove it or use a prefix of your own such as "example.com/"';
  }
  if (/(^|\.)(kubernetes\.io|k8s\.io)$/.test(prefix)) {
    return `the prefix ${show(prefix)} is reserved for Kubernetes components; use a prefix of your own such as "example.com/"`;
  }
  if (key === "pod-template-hash") {
    return "set by the Deployment controller on every pod; remove it or use another key";
  }
  return undefined;
}

/** Rules that need the whole catalog: callees, cycles, shared node ports, env collisions, reserved names. */
export function checkCatalog(services: ServiceConfig[], problems: string[], namespace: string): void {
  const names = new Set(services.map((s) => s.name));
  /** The timing of every service built from an app folder here, for the deadline check. */
  const timings = new Map<string, AppTiming>();
  const known = [...names].sort();
  for (const svc of services) {
    svc.calls.forEach((callee, i) => {
      if (callee === svc.name) {
        problems.push(`services.${svc.name}.calls[${i}]: a service cannot call itself; remove ${show(callee)}`);
      } else if (!names.has(callee)) {
        const others = known.filter((n) => n !== svc.name);
        problems.push(
          `services.${svc.name}.calls: unknown service ${show(callee)} (known: ${others.join(", ") || "none"})`,
        );
      }
    });
    for (const key of Object.keys(svc.env)) {
      if (wiredEnvNames(svc).includes(key)) {
        problems.push(
          `services.${svc.name}.env.${key}: set by the stack from the catalog; remove it (change \`port\` or \`calls\` instead)`,
        );
      }
    }
    for (const key of Object.keys(svc.labels)) {
      const reserved = reservedLabelProblem(key);
      if (reserved) {
        problems.push(`services.${svc.name}.labels.${key}: ${reserved}`);
      } else if (key.includes("/") && key.indexOf("/") > 253) {
        problems.push(
          `services.${svc.name}.labels.${key}: the prefix is ${key.indexOf("/")} characters; a label key's DNS prefix has at most 253`,
        );
      }
    }
    if (svc.source.kind === "app") {
      const app = appEnvProblems(svc, `services.${svc.name}`);
      problems.push(...app.problems);
      timings.set(svc.name, app.timing);
    }
    if (svc.name === DEFAULT_DENY_POLICY_NAME) {
      problems.push(
        `services.${svc.name}: ${show(svc.name)} is reserved: the stack names its default-deny NetworkPolicy so; rename the service`,
      );
    }
    if (svc.name === "kubernetes" && namespace === "default") {
      problems.push(
        `services.${svc.name}: "kubernetes" in namespace "default" is the API server's own Service, which the stack would take over; rename the service or set \`namespace\``,
      );
    }
  }
  problems.push(
    ...deadlineProblems(
      services.map((s) => ({ ...s, calls: s.calls.filter((c) => names.has(c)) })),
      timings,
    ),
  );
  const graph = new Map(services.map((s) => [s.name, s.calls.filter((c) => c !== s.name && names.has(c))]));
  for (const cycle of findCycles(graph)) {
    problems.push(
      `services.${cycle[0]}.calls: call cycle ${cycle.join(" -> ")}; the chain must end, so remove one of these calls`,
    );
  }
  const byNodePort = new Map<number, string[]>();
  for (const svc of services) {
    if (svc.nodePort !== undefined) {
      byNodePort.set(svc.nodePort, [...(byNodePort.get(svc.nodePort) ?? []), svc.name]);
    }
  }
  for (const [port, users] of byNodePort) {
    for (const user of users.slice(1)) {
      problems.push(
        `services.${user}.nodePort: ${port} is already used by ${users[0]}; node ports are cluster-wide, pick another in ${NODE_PORT_MIN}-${NODE_PORT_MAX}`,
      );
    }
  }
}
