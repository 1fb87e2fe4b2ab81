// What the cluster suite needs besides the engine harness: the cluster's own API (kubectl and
// watches, to assert on what the cluster did, never on Pulumi's word), the images the suite
// pushed, and small HTTP helpers (the load it runs during changes is ../support/load.ts).
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as path from "path";
import * as YAML from "yaml";
import { REPO, type EngineStack, type RunResult } from "../engine/harness";
import type { RawServices } from "../support/catalogs";
import * as assert from "assert";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { KubeList, KubeObject } from "../support/objects";
import { describeLoad, Load, type LoadResult } from "../support/load";
import { run } from "../support/process";

function required(name: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run this suite with \`npm run test:cluster\` (lab/scripts/test-cluster.sh)`);
  }
  return v;
}

export const cluster = {
  kubeconfig: required("KUBECONFIG"),
  bin: required("K8S_CHAIN_CLUSTER_BIN"),
  realNode: process.env.K8S_CHAIN_CLUSTER_REAL_NODE === "1",
};

/** The pinned references test-cluster.sh pushed: `<app>` and `<app>@v2` -> `registry/app@sha256:...`. */
export function pushedImages(): Record<string, string> {
  return JSON.parse(fs.readFileSync(required("K8S_CHAIN_CLUSTER_IMAGES"), "utf8"));
}

/** The base image test-cluster.sh imported into its dockerd (the Dockerfiles' `NODE_IMAGE`; no Docker Hub here). */
export function baseImage(): string {
  return required("K8S_CHAIN_CLUSTER_BASE_IMAGE");
}

/**
 * How the stack builds on this machine: push to the suite's registry (unless `registry` is
 * false), the base image from the local engine, and `RUN` steps on the host network (the
 * suite's dockerd has no bridge).
 */
export function buildConfig(registry = true): Record<string, unknown> {
  return {
    ...(registry ? { registry: pushedImages().registry } : {}),
    buildArgs: { NODE_IMAGE: baseImage() },
    buildNetwork: "host",
  };
}

/** The dev stack's catalog (`Pulumi.dev.yaml`), untouched: every service built from its app folder. */
export function devCatalog(): RawServices {
  return structuredClone(
    YAML.parse(fs.readFileSync(path.join(REPO, "Pulumi.dev.yaml"), "utf8")).config["k8s-chain:services"],
  );
}

/** The lines of a pulumi run that carry an error, for the log. */
export function errorLines(r: RunResult): string {
  return (r.stdout + r.stderr)
    .split("\n")
    .filter((l) => /error:/.test(l))
    .join("\n");
}

/** What A's `/` answers when the dev catalog's whole chain A -> B -> C serves. */
export const CHAIN = {
  service: "service-a",
  downstream: [{ service: "service-b", downstream: [{ service: "service-c", downstream: [] }] }],
};

/** The controller has seen the Deployment's generation and every replica is updated, ready and available, no old one left. */
export function available(d: IDeployment): boolean {
  const want = d.spec!.replicas ?? 1;
  const s: NonNullable<IDeployment["status"]> = d.status ?? {};
  return (
    (s.observedGeneration ?? 0) >= d.metadata!.generation! &&
    s.updatedReplicas === want &&
    s.readyReplicas === want &&
    s.availableReplicas === want &&
    (s.replicas ?? 0) === want
  );
}

/** The Deployment of a service (by the stack's `app.kubernetes.io/name` label). */
export async function deploymentOf(ns: string, svc: string): Promise<IDeployment> {
  const list = await kubectlJson<KubeList<IDeployment>>(
    "get",
    "deployments",
    "-n",
    ns,
    "-l",
    `app.kubernetes.io/name=${svc}`,
  );
  assert.strictEqual(
    list.items.length,
    1,
    `one Deployment for ${svc} in ${ns}, got ${list.items.map((d) => d.metadata!.name)}`,
  );
  return list.items[0];
}

/** `kubectl <args>`; resolves with stdout, rejects with stderr on a non-zero exit. */
export function kubectl(...args: string[]): Promise<string> {
  return kubectlRun(undefined, args);
}

/** `kubectl <args>` with `input` on stdin (e.g. `apply -f -`). */
export function kubectlStdin(input: string, ...args: string[]): Promise<string> {
  return kubectlRun(input, args);
}

async function kubectlRun(input: string | undefined, args: string[]): Promise<string> {
  const r = await run(path.join(cluster.bin, "kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args], { input });
  if (r.code !== 0) {
    throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr || `exit ${r.code}`}`);
  }
  return r.stdout;
}

/** `kubectl ... -o json`, parsed; `T` is what the caller asked kubectl for (an object, or a `KubeList` of them). */
export async function kubectlJson<T = unknown>(...args: string[]): Promise<T> {
  return JSON.parse(await kubectl(...args, "-o", "json"));
}

/** A client for the API server with the admin credentials of the kubeconfig. */
function apiAgent(): { server: URL; agent: https.Agent } {
  const kc = YAML.parse(fs.readFileSync(cluster.kubeconfig, "utf8"));
  const c = kc.clusters[0].cluster;
  const u = kc.users[0].user;
  return {
    server: new URL(c.server),
    agent: new https.Agent({
      ca: fs.readFileSync(c["certificate-authority"]),
      cert: fs.readFileSync(u["client-certificate"]),
      key: fs.readFileSync(u["client-key"]),
      keepAlive: true,
    }),
  };
}

/** One event of a watch on a collection of `T` (the collection's objects; for an `ERROR` event, a Status). */
export interface WatchEvent<T = KubeObject> {
  /** Local arrival time (ms since the epoch). */
  at: number;
  type: string;
  object: T;
}

/**
 * Watches a collection (e.g. `/apis/apps/v1/deployments`) from now on and records every event
 * with the time it arrived, so the suite can say what the cluster looked like at any moment.
 */
export class Watch<T = KubeObject> {
  readonly events: WatchEvent<T>[] = [];
  private req?: http.ClientRequest;

  private constructor(private readonly apiPath: string) {}

  /** Starts a watch on `apiPath`, a collection of `T` (e.g. `IDeployment` for `/apis/apps/v1/deployments`). */
  static async start<T = KubeObject>(apiPath: string): Promise<Watch<T>> {
    const w = new Watch<T>(apiPath);
    await w.open();
    return w;
  }

  private open(): Promise<void> {
    const { server, agent } = apiAgent();
    return new Promise((resolve, reject) => {
      const url = new URL(`${this.apiPath}?watch=1&allowWatchBookmarks=false`, server);
      this.req = https.get(url, { agent }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`watch ${this.apiPath}: HTTP ${res.statusCode}`));
          return;
        }
        let buf = "";
        res.setEncoding("utf8").on("data", (chunk: string) => {
          const at = Date.now();
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim()) {
              const ev = JSON.parse(line);
              this.events.push({ at, type: ev.type, object: ev.object });
            }
          }
        });
        resolve();
      });
      this.req.on("error", (e) => {
        if (!this.req?.destroyed) {
          reject(e);
        }
      });
    });
  }

  stop(): void {
    this.req?.destroy();
  }
}

/**
 * Forgets the new connections to node 0's `port` on 127.0.0.1 that never got an answer: deletes
 * their conntrack entries (state SYN_SENT) and returns how many there were.
 *
 * Why: a connection that failed because its pod was gone (a lost node, a deleted pod) leaves an
 * entry that keeps its NAT to that pod for 120 s (nf_conntrack_tcp_timeout_syn_sent), and
 * kube-proxy clears stale entries for UDP Services only (pkg/proxy/conntrack/cleanup.go of
 * v1.36.1). The kernel hands the same source port to this machine's next connections to the
 * node port after about 30 s under a load like ours, and a SYN that matches such an entry is
 * taken for a retransmission: it goes to the dead pod again (EHOSTUNREACH, or a timeout) though
 * every rule now points elsewhere (the trace is in docs/testing.md). Left in place, one
 * scenario's failures would fail the next one's load.
 */
export async function forgetUnansweredConnections(port: number): Promise<number> {
  const r = await run("conntrack", [
    "-D",
    "-p",
    "tcp",
    "--orig-dst",
    "127.0.0.1",
    "--orig-port-dst",
    String(port),
    "--state",
    "SYN_SENT",
  ]);
  // It exits 1 when it deleted nothing; the count is on stderr either way.
  const m = /(\d+) flow entries have been deleted/.exec(r.stderr);
  if (!m) {
    throw new Error(`conntrack -D failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
  return Number(m[1]);
}

/** The node port a URL on 127.0.0.1 goes to. */
function portOf(url: string): number {
  return Number(new URL(url).port);
}

/**
 * Waits (at most 30 s) until `url` has answered 200 to 20 new connections in a row; returns
 * the ms it took. A guard, now that what broke a load's first second is known and removed
 * (see {@link forgetUnansweredConnections}): a load measured from a steady start counts only
 * what the change under test does.
 */
async function steady(url: string): Promise<number> {
  const t0 = Date.now();
  for (let inARow = 0; inARow < 20;) {
    if (Date.now() - t0 > 30_000) {
      throw new Error(`${url} did not answer 20 new connections in a row within 30 s`);
    }
    const res = await get(url, 2000).catch(() => undefined);
    inARow = res?.status === 200 ? inARow + 1 : 0;
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

/**
 * Runs `f` under a steady load on `url` (100 req/s, half new connections, half keep-alive),
 * started with no unanswered connection left by an earlier run (see
 * {@link forgetUnansweredConnections}) once the path answers steadily (see {@link steady}),
 * and 6 s more after it (the old pods' drain, which an image update's `up` no longer waits
 * for, under load too); logs the counts as one line, also pushed to `log`, and returns them.
 */
export async function loadWhile(url: string, what: string, f: () => Promise<void>, log: string[]): Promise<LoadResult> {
  const forgot = await forgetUnansweredConnections(portOf(url));
  if (forgot > 0) {
    console.log(`      ${what}: forgot ${forgot} unanswered connections an earlier run left (conntrack)`);
  }
  const waited = await steady(url);
  if (waited > 1500) {
    console.log(`      ${what}: the path answered steadily only after ${waited} ms`);
  }
  const load = new Load(url, 100).start();
  let res: LoadResult;
  try {
    await f();
    await new Promise((r) => setTimeout(r, 6000));
  } finally {
    res = await load.stop();
  }
  const line = `${what}: ${describeLoad(res)}`;
  log.push(line);
  console.log(`      ${line}`);
  return res;
}

/** GET a URL once; resolves with status and body (no throw on non-2xx). */
export function get(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on("error", reject);
  });
}

/** Retries `f` until it returns without throwing, or rethrows its last error after `ms`. */
export async function eventually<T>(ms: number, f: () => Promise<T>): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (Date.now() > until) {
        throw e;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * The end of a file of scenarios that each made a stack: destroys each one (a scenario that
 * failed half-way leaves its objects; a no-op after its own destroy), prints its timed pulumi
 * commands, and removes its temp folder.
 */
export async function takeDown(stacks: EngineStack[]): Promise<void> {
  for (const stack of stacks) {
    await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy (cleanup)");
    console.log("      timings:");
    for (const t of stack.timings) {
      console.log(`        ${t.what.padEnd(60)} ${t.seconds.toFixed(1).padStart(6)} s  exit ${t.code}`);
    }
    stack.dispose();
  }
}
