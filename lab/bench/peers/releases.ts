// What bench:peers deploys, as pure data: the releases each tool goes through (as stack
// configs), how the stack's rendered objects become a peer's manifests, the edits a peer
// makes to them that the stack's config cannot express, and the table the run prints.
import * as YAML from "yaml";
import type { RawServices } from "../../../tests/support/catalogs";
import type { KubeObject } from "../../../tests/support/objects";

export const NAMESPACE = "chain-peers";
export const MOVED_NAMESPACE = "chain-peers-moved";
/** The one bound every tool gets: rolloutTimeoutSeconds, `helm --timeout`, `kubectl rollout status --timeout`. */
export const TIMEOUT_S = 60;

/** One release of the chain: the stack's config, and for the peers the objects it renders. */
export interface Release {
  key: ReleaseKey;
  /** What changes from the release before, in a table's words. */
  what: string;
  config: { namespace: string; rolloutTimeoutSeconds: number; services: RawServices };
}

export type ReleaseKey =
  "first" | "imageB" | "badC" | "goodC" | "badRoute" | "goodRoute" | "labels" | "moved" | "swapped";

/** The health route the app does not have: service-c's pods run, and never become Ready. */
export const MISSING_ROUTE = "/not-a-route";

/**
 * The releases, in the order every tool goes through them: the dev catalog on prebuilt
 * images (`v1` everywhere; the stack's own build is the cluster suite's business, so the three
 * tools deploy the same digests), then one change at a time.
 */
export function releases(dev: RawServices, images: { v1: string; v2: string; missing: string }): Release[] {
  const out: Release[] = [];
  let services: RawServices = structuredClone(dev);
  for (const svc of Object.values(services)) {
    delete svc.app;
    svc.image = images.v1;
  }
  let namespace = NAMESPACE;
  const add = (key: ReleaseKey, what: string, edit: (s: RawServices) => void) => {
    services = structuredClone(services);
    edit(services);
    out.push({ key, what, config: { namespace, rolloutTimeoutSeconds: TIMEOUT_S, services } });
  };
  add("first", "first deploy of the dev catalog", () => {});
  add("imageB", "service-b's image v1 -> v2", (s) => (s["service-b"].image = images.v2));
  add("badC", "service-c on an image the registry does not have", (s) => (s["service-c"].image = images.missing));
  add("goodC", "service-c v2 (the next good release)", (s) => (s["service-c"].image = images.v2));
  add("badRoute", `service-c's healthPath ${MISSING_ROUTE}`, (s) => (s["service-c"].healthPath = MISSING_ROUTE));
  add("goodRoute", "service-c's healthPath back (the next good release)", (s) => delete s["service-c"].healthPath);
  add("labels", "label tier=backend on service-c", (s) => (s["service-c"].labels = { tier: "backend" }));
  namespace = MOVED_NAMESPACE;
  add("moved", `namespace ${NAMESPACE} -> ${MOVED_NAMESPACE}`, () => {});
  add("swapped", "node ports 30080 <-> 30081 swapped", (s) => {
    s["sample-app"].nodePort = 30081;
    s["service-a"].nodePort = 30080;
  });
  return out;
}

/** Kinds in the order a peer's file lists them: what a pod needs exists before the pod. */
const KIND_ORDER = ["Namespace", "NetworkPolicy", "Service", "PodDisruptionBudget", "Deployment"];

/**
 * A peer's manifests from the stack's rendered objects: the same objects, less the
 * annotations only Pulumi reads (`pulumi.com/*`: await and patch hints), in KIND_ORDER.
 */
export function peerManifests(rendered: KubeObject[]): KubeObject[] {
  const objs = rendered.map((o) => {
    const c = structuredClone(o);
    const ann = c.metadata?.annotations;
    if (ann) {
      for (const k of Object.keys(ann)) {
        if (k.startsWith("pulumi.com/")) delete ann[k];
      }
      if (Object.keys(ann).length === 0) delete c.metadata!.annotations;
    }
    return c;
  });
  const rank = (o: KubeObject) => {
    const i = KIND_ORDER.indexOf(o.kind);
    if (i < 0) throw new Error(`bench:peers: no place for a rendered ${o.kind} in a peer's file`);
    return i;
  };
  return objs.sort((a, b) => rank(a) - rank(b) || a.metadata!.name!.localeCompare(b.metadata!.name!));
}

/**
 * The label edit as hand-written YAML makes it: the label goes into the Deployment's selector
 * and the Service's selector as well as the pods' labels (the seed's layout: one set of labels
 * everywhere). The API server refuses a Deployment's changed selector ("field is immutable").
 * The stack never puts `labels` in a selector, so its own release of the same edit is an
 * in-place rollout; the peers get the edit that reaches the immutable field.
 */
export function labelsInSelectors(
  manifests: KubeObject[],
  service: string,
  labels: Record<string, string>,
): KubeObject[] {
  return manifests.map((o) => {
    const c = structuredClone(o) as KubeObject & {
      spec?: { selector?: Record<string, string> & { matchLabels?: Record<string, string> } };
    };
    if (c.metadata?.labels?.["app.kubernetes.io/name"] !== service) return c;
    if (c.kind === "Deployment") {
      Object.assign(c.spec!.selector!.matchLabels!, labels);
    } else if (c.kind === "Service" && c.metadata!.name === service) {
      Object.assign(c.spec!.selector!, labels);
    }
    return c;
  });
}

export function toYaml(objs: KubeObject[]): string {
  return objs.map((o) => YAML.stringify(o)).join("---\n");
}

/** One tool's result on one row. */
export interface Cell {
  /** Seconds the row took with this tool (the tool's own commands, plus any manual step). */
  seconds?: number;
  /** Failed requests of the load during the row: `failed/sent`. */
  failed?: string;
  /** What happened, in a few words (the manual step, the state the cluster was left in). */
  note: string;
}

export type Tool = "pulumi" | "helm" | "kubectl";
export const TOOLS: Tool[] = ["pulumi", "helm", "kubectl"];

/**
 * One row's cells from several rounds of a tool: the median seconds, the failed requests
 * summed, the last round's note; undefined when no round got to the row.
 */
export function combine(rounds: Array<Record<string, Cell>>, row: string): Cell | undefined {
  const cells = rounds.map((r) => r[row]).filter((c): c is Cell => c !== undefined);
  if (cells.length === 0) return undefined;
  const secs = cells.map((c) => c.seconds).filter((x): x is number => x !== undefined);
  secs.sort((a, b) => a - b);
  const mid = secs.length / 2;
  const seconds =
    secs.length === 0 ? undefined : secs.length % 2 ? secs[Math.floor(mid)] : (secs[mid - 1] + secs[mid]) / 2;
  const failed = cells.map((c) => c.failed).filter((f): f is string => f !== undefined);
  const sum = (i: number) => failed.reduce((n, f) => n + Number(f.split("/")[i]), 0);
  return {
    seconds,
    failed: failed.length === 0 ? undefined : `${sum(0)}/${sum(1)}`,
    note: cells[cells.length - 1].note,
  };
}

/** The printed table: one line per row, a cell per tool, and ours over each peer's seconds. */
export function table(rows: Array<{ row: string; cells: Partial<Record<Tool, Cell>> }>): string {
  const fmt = (c?: Cell) =>
    c === undefined
      ? "not run"
      : [c.seconds === undefined ? undefined : `${c.seconds.toFixed(1)} s`, c.failed && `failed ${c.failed}`, c.note]
          .filter(Boolean)
          .join("; ");
  const ratio = (a?: Cell, b?: Cell) =>
    a?.seconds === undefined || b?.seconds === undefined || b.seconds === 0 ? "-" : (a.seconds / b.seconds).toFixed(2);
  const lines = [
    "| row | pulumi up (ours) | helm v4 | kubectl | ours / helm | ours / kubectl |",
    "|---|---|---|---|---:|---:|",
  ];
  for (const { row, cells } of rows) {
    lines.push(
      `| ${row} | ${fmt(cells.pulumi)} | ${fmt(cells.helm)} | ${fmt(cells.kubectl)} | ${ratio(cells.pulumi, cells.helm)} | ${ratio(cells.pulumi, cells.kubectl)} |`,
    );
  }
  return lines.join("\n");
}
