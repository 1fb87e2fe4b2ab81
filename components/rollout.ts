import * as pulumi from "@pulumi/pulumi";

/**
 * What a rollout watch needs; resolved, these are the dynamic resource's inputs, and a change
 * to any of them (a new `generation` after the program changed the Deployment) is a new watch.
 */
export interface RolloutInputs {
  /** The service's catalog key, named in every error. */
  service: string;
  namespace: string;
  /** The Deployment's name (auto-named by Pulumi). */
  deployment: string;
  /** The generation the program's apply produced: the release this watch is about. */
  generation: number;
  /** How long the release may take to become ready (`rolloutTimeoutSeconds`). */
  timeoutSeconds: number;
  /**
   * What the release's old pods rely on that an `up` removes only when it ends (see
   * {@link drainNeeds}): when an update changes it, the watch also waits for the old pods to
   * finish draining; when it does not (an image update), nothing the old pods use goes away,
   * and the watch ends once the new pods are Ready, as `kubectl rollout status` and Helm do.
   */
  needs?: string;
  /** The cluster to watch: the one the stack's kubernetes provider uses. Not kept in the outputs. */
  connection?: ClusterConnection;
}

/** Where a Deployment's rollout stands, from its status and its pods. */
export type RolloutVerdict =
  | { state: "ready" }
  | { state: "waiting"; why: string }
  | { state: "failed"; why: string; early?: boolean }
  | { state: "overridden"; why: string };

/** The parts of a Deployment this module reads (as the API server returns them). */
interface DeploymentJson {
  metadata: { generation: number; uid: string; annotations?: Record<string, string> };
  spec: { replicas?: number; selector: { matchLabels?: Record<string, string> } };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    readyReplicas?: number;
    unavailableReplicas?: number;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
  };
}

interface PodJson {
  metadata: { name: string; deletionTimestamp?: string; labels?: Record<string, string> };
  spec?: { containers?: Array<{ name: string; startupProbe?: ProbeJson; readinessProbe?: ProbeJson }> };
  status?: {
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: Array<{
      name: string;
      /** The image the container runs, as the pod names it. */
      image?: string;
      ready: boolean;
      restartCount?: number;
      state?: {
        waiting?: { reason?: string; message?: string };
        running?: { startedAt?: string };
        terminated?: { reason?: string; exitCode?: number };
      };
    }>;
  };
}

interface ProbeJson {
  httpGet?: { path?: string; port?: number | string };
}

/** A core/v1 Event as the API server returns it, in the parts read here. */
export interface EventJson {
  involvedObject: { name?: string; fieldPath?: string };
  reason?: string;
  message?: string;
  /** How many times the kubelet saw this same event (it counts repeats instead of writing new ones). */
  count?: number;
  /** The same count from a recorder of events.k8s.io/v1, which leaves `count` unset. */
  series?: { count?: number };
}

/**
 * Judges one look at a Deployment and its pods. Pure, so every branch is tested without a
 * cluster. Ready means what a caller needs, checked here rather than taken from the
 * kubernetes provider's await (on a real node it once reported a rollout complete 22-45 s
 * before the new pods were Ready): the controller has seen this generation, every replica is
 * updated and available, no old replica is counted, and no pod of the Deployment is still
 * terminating, unless `drained` is false (the watch asks for it only when the old pods lose
 * something at the end of the `up`: an old pod draining can still call a callee's old port,
 * and needs its old NetworkPolicy).
 */
export function judgeRollout(
  inputs: RolloutInputs,
  dep: DeploymentJson,
  pods: PodJson[],
  drained = true,
): RolloutVerdict {
  const status = dep.status ?? {};
  if (dep.metadata.generation > inputs.generation) {
    return {
      state: "overridden",
      why:
        `its Deployment was changed after this program applied it (generation ${dep.metadata.generation}, ` +
        `applied ${inputs.generation}): it was rolled back after a failed release, or edited outside Pulumi`,
    };
  }
  if ((status.observedGeneration ?? 0) < inputs.generation) {
    return { state: "waiting", why: "the controller has not seen the new release yet" };
  }
  const want = dep.spec.replicas ?? 1;
  const progressing = status.conditions?.find((c) => c.type === "Progressing");
  if (progressing?.status === "False" && progressing.reason === "ProgressDeadlineExceeded") {
    return { state: "failed", why: podTrouble(pods) ?? progressing.message ?? "its progress deadline passed" };
  }
  const unpullable = pullFailure(pods);
  if (unpullable !== undefined) {
    return { state: "failed", why: unpullable, early: true };
  }
  const updated = status.updatedReplicas ?? 0;
  const available = status.availableReplicas ?? 0;
  const total = status.replicas ?? 0;
  if (updated < want || available < want || total > want || (status.unavailableReplicas ?? 0) > 0) {
    return {
      state: "waiting",
      why:
        `${updated}/${want} updated, ${available}/${want} available, ${total - updated} old` +
        (podTrouble(pods) ? `; ${podTrouble(pods)}` : ""),
    };
  }
  const terminating = pods.filter((p) => p.metadata.deletionTimestamp !== undefined).length;
  if (drained && terminating > 0) {
    return { state: "waiting", why: `${terminating} old pod(s) still draining` };
  }
  return { state: "ready" };
}

/**
 * A pod of the release whose image cannot be pulled, named with the image and the runtime's
 * reason, or undefined. Such a release can never become ready, so it fails now rather than
 * after `rolloutTimeoutSeconds`.
 */
export function pullFailure(pods: PodJson[]): string | undefined {
  // Inside the function: the engine serializes the provider's functions with what they
  // capture, and a captured Set does not survive that.
  const pullReasons = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];
  // What the container runtime says when pulling again cannot help: the image or tag does not
  // exist, or the registry refuses the credentials. A registry that cannot be reached (refused,
  // a timeout, DNS) may come back, so the release keeps its `rolloutTimeoutSeconds` for it.
  const permanentPullError =
    /not found|manifest unknown|unauthorized|forbidden|denied|insufficient_scope|invalid reference|\b40[13]\b/i;
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp !== undefined) {
      continue;
    }
    for (const c of pod.status?.containerStatuses ?? []) {
      const waiting = c.state?.waiting;
      if (waiting?.reason === undefined || !pullReasons.includes(waiting.reason)) {
        continue;
      }
      const permanent =
        waiting.reason === "InvalidImageName" ||
        waiting.reason === "ErrImageNeverPull" ||
        permanentPullError.test(waiting.message ?? "");
      if (permanent) {
        const image = c.image ? ` "${c.image}"` : "";
        return `pod ${pod.metadata.name} cannot pull its image${image} (${waiting.reason}: ${waiting.message ?? "no message"})`;
      }
    }
  }
  return undefined;
}

/** The first thing wrong with a pod that is not ready (a container waiting, crashed or not ready). */
export function podTrouble(pods: PodJson[]): string | undefined {
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp !== undefined) {
      continue;
    }
    for (const c of pod.status?.containerStatuses ?? []) {
      const waiting = c.state?.waiting;
      if (waiting?.reason && waiting.reason !== "ContainerCreating" && waiting.reason !== "PodInitializing") {
        return `pod ${pod.metadata.name}: ${waiting.reason}${waiting.message ? ` (${waiting.message})` : ""}`;
      }
      if (!c.ready && c.state?.terminated) {
        return `pod ${pod.metadata.name}: container exited (${c.state.terminated.reason ?? `code ${c.state.terminated.exitCode}`})`;
      }
      if (!c.ready && (c.restartCount ?? 0) > 0) {
        return `pod ${pod.metadata.name}: restarted ${c.restartCount} time(s) and not ready`;
      }
    }
    const ready = pod.status?.conditions?.find((c) => c.type === "Ready");
    if (
      ready?.status === "False" &&
      (pod.status?.containerStatuses ?? []).every((c) => c.state?.waiting === undefined)
    ) {
      return `pod ${pod.metadata.name}: running but not ready (its readiness probe fails)`;
    }
  }
  return undefined;
}

/**
 * How many times a pod's startup or readiness probe must have answered 404 before its release
 * is failed at once: about 10 s of it (the startup probe runs every second). An app still
 * starting refuses the connection or answers 503; one that answers 404 for that long serves no
 * such route, and waiting out `rolloutTimeoutSeconds` (120 s by default) cannot change that.
 */
export const MISSING_ROUTE_PROBES = 10;

/**
 * The pods worth asking the kubelet's events about: of the release (not leaving), their
 * container running but not ready, so a probe is what holds them back.
 */
export function probeSuspects(pods: PodJson[]): string[] {
  return pods
    .filter(
      (p) =>
        p.metadata.deletionTimestamp === undefined &&
        (p.status?.containerStatuses ?? []).some((c) => !c.ready && c.state?.running !== undefined),
    )
    .map((p) => p.metadata.name);
}

/**
 * A pod whose startup or readiness probe has answered 404 at least {@link MISSING_ROUTE_PROBES}
 * times (by the kubelet's `Unhealthy` events for it), named with the probe, the path and what to
 * change; or undefined. Such a release can never become ready, so it fails now. Pure.
 */
export function missingHealthRoute(service: string, pods: PodJson[], events: EventJson[]): string | undefined {
  // Inside the function: see pullFailure.
  const notFound = /^(Startup|Readiness) probe failed: HTTP probe failed with statuscode: 404$/;
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp !== undefined) {
      continue;
    }
    const counts = new Map<string, number>();
    for (const e of events) {
      const m =
        e.reason === "Unhealthy" && e.involvedObject.name === pod.metadata.name && notFound.exec(e.message ?? "");
      if (!m) {
        continue;
      }
      // spec.containers{app}: the container the probe belongs to.
      const container = /\{(.+)\}$/.exec(e.involvedObject.fieldPath ?? "")?.[1] ?? "";
      const key = `${m[1]}\0${container}`;
      counts.set(key, (counts.get(key) ?? 0) + (e.count || e.series?.count || 1));
    }
    for (const [key, count] of counts) {
      if (count < MISSING_ROUTE_PROBES) {
        continue;
      }
      const [kind, container] = key.split("\0");
      const spec = pod.spec?.containers?.find((c) => c.name === container) ?? pod.spec?.containers?.[0];
      const get = (kind === "Startup" ? spec?.startupProbe : spec?.readinessProbe)?.httpGet;
      const where =
        get?.path === undefined ? "" : ` GET ${get.path}${get.port === undefined ? "" : ` (port ${get.port})`}`;
      return (
        `pod ${pod.metadata.name}: its ${kind.toLowerCase()} probe${where} answered 404 ${count} times: ` +
        `the app has no such route; set services.${service}.healthPath to a route it serves`
      );
    }
  }
  return undefined;
}

/** `a=b,c=d`: a label selector (`labelSelector=`). */
export function selectorArg(matchLabels: Record<string, string> | undefined): string {
  return Object.entries(matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/**
 * The cluster the stack's kubernetes provider talks to, as the provider was told: the
 * `kubernetes:kubeconfig` (a path, or the contents), `kubernetes:context` and
 * `kubernetes:cluster` of stack config, or what a program gave its own provider. All unset:
 * the ambient kubeconfig (`KUBECONFIG`, else `~/.kube/config`) and its current context, as
 * the default provider does.
 */
export interface ClusterConnection {
  kubeconfig?: string;
  context?: string;
  cluster?: string;
}

/** One request to the API server, as the rollout watch makes it. */
export interface ApiClient {
  /** `the cluster at <server> (context "<name>")`, for errors. */
  describe: string;
  /** Sends a request; resolves with the parsed JSON body, rejects with an {@link ApiError}. */
  request<T>(method: "GET" | "PATCH", apiPath: string, patch?: unknown): Promise<T>;
}

/**
 * A failed request to the API server: `fatal` when looking again cannot help (refused
 * credentials, RBAC, a bad kubeconfig). A plain Error with a flag, not a subclass: the engine
 * serializes the provider's functions, and a serialized Error subclass loses its message.
 */
export type ApiError = Error & { fatal: boolean };

function apiError(message: string, fatal: boolean): ApiError {
  return Object.assign(new Error(message), { fatal });
}

function isApiError(err: unknown): err is ApiError {
  return err instanceof Error && typeof (err as Partial<ApiError>).fatal === "boolean";
}

/**
 * The text of a failed API request, and whether it is worth trying again: credentials the
 * cluster refuses (401) and RBAC (403) are final; a refused or dropped connection, a timeout
 * and a 5xx may be the API server blinking. Pure, for tests.
 */
export function apiFailure(what: string, failure: { status?: number; body?: string; error?: string }): ApiError {
  if (failure.status === undefined) {
    return apiError(`${what}: ${failure.error ?? "no answer"}`, false);
  }
  let reason = "";
  try {
    reason = (JSON.parse(failure.body ?? "") as { message?: string }).message ?? "";
  } catch {
    reason = (failure.body ?? "").trim().slice(0, 200);
  }
  const detail = reason ? `: ${reason}` : "";
  if (failure.status === 401) {
    return apiError(
      `${what}: HTTP 401 Unauthorized${detail}: the cluster refused the credentials; check the user of the kubeconfig the stack uses (kubernetes:kubeconfig, else KUBECONFIG)`,
      true,
    );
  }
  if (failure.status === 403) {
    return apiError(
      `${what}: HTTP 403 Forbidden${detail}: the stack's user may not read this; it needs get, list and patch on deployments, and get and list on replicasets and pods, in the stack's namespace`,
      true,
    );
  }
  return apiError(`${what}: HTTP ${failure.status}${detail}`, failure.status < 500 && failure.status !== 429);
}

/**
 * The dynamic provider: watches the rollout the program just applied, and when it fails,
 * puts the Deployment back on its last good release (as `kubectl rollout undo` would, which
 * the old pods never stopped serving) before failing `up` with the service's name and the
 * reason.
 *
 * It talks to the API server itself (`@kubernetes/client-node` reads the kubeconfig: client
 * certificates, tokens and exec plugins), through the same connection as the stack's
 * kubernetes provider ({@link ClusterConnection}); nothing on PATH is needed. The engine
 * serializes this object into its own process, so everything it uses is required inside the
 * functions.
 */
const rolloutProvider: pulumi.dynamic.ResourceProvider = {
  // The engine's first call for each Rollout: the earliest point to tie this process's life
  // to the engine's (see exitWithEngine).
  async check(_olds: RolloutInputs, news: RolloutInputs): Promise<pulumi.dynamic.CheckResult> {
    exitWithEngine();
    return { inputs: news };
  },
  async diff(_id: string, olds: RolloutInputs, news: RolloutInputs): Promise<pulumi.dynamic.DiffResult> {
    // The connection is not compared: new credentials for the same cluster are not a new release.
    const keys = ["service", "namespace", "deployment", "generation", "timeoutSeconds"] as const;
    return { changes: keys.some((k) => olds[k] !== news[k]) };
  },
  async create(inputs: RolloutInputs): Promise<pulumi.dynamic.CreateResult> {
    // A new Deployment has no old pods of its own to wait for.
    return { id: `${inputs.namespace}/${inputs.deployment}`, outs: await watchRollout(inputs, false) };
  },
  async update(_id: string, olds: RolloutInputs, news: RolloutInputs): Promise<pulumi.dynamic.UpdateResult> {
    return { outs: await watchRollout(news, olds.needs !== news.needs) };
  },
  async delete(): Promise<void> {
    // Nothing to undo: the watch owns no object.
  },
};

/**
 * A client for the cluster a {@link ClusterConnection} names, made once per provider process and
 * connection (on `globalThis`: this module's own variables are serialized into each resource's
 * copy of the provider). A kubeconfig that cannot be read, or names no such context, is an
 * {@link ApiError} marked fatal.
 */
function apiClient(conn: ClusterConnection): Promise<ApiClient> {
  const g = globalThis as { k8sChainApiClients?: Map<string, Promise<ApiClient>> };
  const clients = (g.k8sChainApiClients ??= new Map());
  const key = JSON.stringify([conn.kubeconfig, conn.context, conn.cluster]);
  let client = clients.get(key);
  if (client === undefined) {
    client = makeApiClient(conn);
    clients.set(key, client);
    client.catch(() => clients.delete(key));
  }
  return client;
}

async function makeApiClient(conn: ClusterConnection): Promise<ApiClient> {
  // Required here, not imported at the top: the engine serializes the provider's functions into
  // its own process, and a module-level import would not go with them.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const fs = require("fs") as typeof import("fs");
  const os = require("os") as typeof import("os");
  const https = require("https") as typeof import("https");
  const http = require("http") as typeof import("http");
  const { KubeConfig } = require("@kubernetes/client-node") as typeof import("@kubernetes/client-node");
  /* eslint-enable @typescript-eslint/no-require-imports */
  const kc = new KubeConfig();
  let source = "the ambient kubeconfig (KUBECONFIG, else ~/.kube/config)";
  try {
    if (conn.kubeconfig !== undefined && conn.kubeconfig !== "") {
      // As the kubernetes provider reads it: a leading `~` is the home folder; a path to a file
      // is read, anything else is the kubeconfig itself.
      const p = conn.kubeconfig === "~" ? os.homedir() : conn.kubeconfig.replace(/^~\//, `${os.homedir()}/`);
      if (!p.includes("\n") && fs.existsSync(p)) {
        kc.loadFromFile(p);
        source = `kubernetes:kubeconfig (${p})`;
      } else {
        kc.loadFromString(conn.kubeconfig);
        source = "kubernetes:kubeconfig";
      }
    } else {
      kc.loadFromDefault();
    }
  } catch (err) {
    throw apiError(`cannot read ${source}: ${(err as Error).message}`, true);
  }
  if (conn.context) {
    if (kc.getContextObject(conn.context) === null) {
      throw apiError(
        `${source} has no context "${conn.context}" (kubernetes:context); it has ${
          kc
            .getContexts()
            .map((c) => `"${c.name}"`)
            .join(", ") || "none"
        }`,
        true,
      );
    }
    kc.setCurrentContext(conn.context);
  }
  const contextName = kc.getCurrentContext();
  const context = kc.getContextObject(contextName);
  const clusterName = conn.cluster || context?.cluster;
  const cluster = clusterName ? kc.getCluster(clusterName) : null;
  if (cluster === null) {
    throw apiError(
      `${source}: ${clusterName ? `no cluster "${clusterName}"` : `no current context${contextName ? ` "${contextName}"` : ""}`}; set kubernetes:context (or the kubeconfig's current-context)`,
      true,
    );
  }
  if (conn.cluster) {
    // kubernetes:cluster overrides the context's cluster, as it does for the provider.
    kc.contexts = kc.contexts.map((c) => (c.name === contextName ? { ...c, cluster: conn.cluster! } : c));
  }
  const server = new URL(cluster.server);
  const describe = `the cluster at ${cluster.server}${contextName ? ` (context "${contextName}")` : ""}`;
  return {
    describe,
    async request<T>(method: "GET" | "PATCH", apiPath: string, patch?: unknown): Promise<T> {
      const body = patch === undefined ? undefined : JSON.stringify(patch);
      const opts: import("https").RequestOptions = {
        method,
        protocol: server.protocol,
        hostname: server.hostname,
        port: server.port,
        path: `${server.pathname.replace(/\/$/, "")}${apiPath}`,
        headers: {
          accept: "application/json",
          ...(body ? { "content-type": "application/json-patch+json" } : {}),
        },
        timeout: 10_000,
      };
      // Client certificates, CA, bearer tokens, exec plugins: whatever the kubeconfig's user has.
      await kc.applyToHTTPSOptions(opts);
      // Decoded in messages: the label selector as a person writes it.
      const what = `${method} ${decodeURIComponent(apiPath)}`;
      return new Promise<T>((resolve, reject) => {
        const req = (server.protocol === "https:" ? https : http).request(opts, (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              try {
                resolve(JSON.parse(text) as T);
              } catch (err) {
                reject(apiFailure(what, { error: `unreadable answer: ${(err as Error).message}` }));
              }
            } else {
              reject(apiFailure(what, { status, body: text }));
            }
          });
          res.on("error", (err) => reject(apiFailure(what, { error: err.message })));
        });
        req.on("timeout", () => req.destroy(new Error("no answer within 10 s")));
        req.on("error", (err) => reject(apiFailure(what, { error: err.message })));
        req.end(body);
      });
    },
  };
}

export type Listed = DeploymentJson &
  PodJson & { kind: string; metadata: { name: string; labels?: Record<string, string> } };

/** How many services one pair of snapshot requests names (a URL stays a few KB). */
const SNAPSHOT_NAMES_PER_REQUEST = 40;

/**
 * The label selector of one snapshot request: the stack's objects of the named services.
 * Sorted, so that the same watches make the same request.
 */
export function snapshotSelector(services: string[]): string {
  const names = [...new Set(services)].sort().join(",");
  return `app.kubernetes.io/part-of=k8s-chain,app.kubernetes.io/name in (${names})`;
}

/** Where the snapshots and the watched services are kept: one API server and namespace. */
function snapshotKey(api: ApiClient, namespace: string): string {
  return `${api.describe}\0${namespace}`;
}

/** The services whose rollouts this process watches now, by {@link snapshotKey}. */
function watching(): Map<string, Map<string, number>> {
  const g = globalThis as { k8sChainRolloutsWatching?: Map<string, Map<string, number>> };
  return (g.k8sChainRolloutsWatching ??= new Map());
}

/** Marks `service` as watched in `key` (see {@link snapshotKey}) until the returned function runs. */
export function startWatching(key: string, service: string): () => void {
  const byName = watching().get(key) ?? new Map<string, number>();
  watching().set(key, byName);
  byName.set(service, (byName.get(service) ?? 0) + 1);
  return () => {
    const n = (byName.get(service) ?? 1) - 1;
    if (n > 0) byName.set(service, n);
    else byName.delete(service);
  };
}

/**
 * The Deployments and pods of the services this process is watching in a namespace: one pair
 * of requests, shared by every watch there that looks within the same 400 ms (and began before
 * it was taken). All the dynamic resources of an `up` run in one provider process, and 50
 * services rolling at once would otherwise make 200 requests a second.
 *
 * Only the services being watched are listed (the engine runs a few at once), never the whole
 * namespace: listing all of a 1,000-service stack's objects every 400 ms throughout an `up`
 * made its cost grow with the square of the catalog (`npm run bench:scale`). The caches live on
 * `globalThis` (see {@link apiClient}).
 */
export async function rolloutSnapshot(
  api: ApiClient,
  namespace: string,
  service: string,
  notBefore: number,
): Promise<Listed[]> {
  const g = globalThis as {
    k8sChainRolloutSnapshots?: Map<string, { at: number; names: Set<string>; items: Promise<Listed[]> }>;
  };
  const cache = (g.k8sChainRolloutSnapshots ??= new Map());
  const key = snapshotKey(api, namespace);
  const hit = cache.get(key);
  // Never a look taken before the caller's watch began: it may predate the Deployment.
  if (hit && hit.names.has(service) && hit.at >= notBefore && Date.now() - hit.at < 400) {
    return hit.items;
  }
  const names = [...new Set([service, ...(watching().get(key)?.keys() ?? [])])].sort();
  const ns = encodeURIComponent(namespace);
  const list = (apiPath: string, kind: string, selector: string) =>
    api
      .request<{ items: Listed[] }>("GET", `${apiPath}?labelSelector=${encodeURIComponent(selector)}`)
      .then((l) => l.items.map((o) => ({ ...o, kind })));
  const requests: Promise<Listed[]>[] = [];
  for (let i = 0; i < names.length; i += SNAPSHOT_NAMES_PER_REQUEST) {
    const selector = snapshotSelector(names.slice(i, i + SNAPSHOT_NAMES_PER_REQUEST));
    requests.push(list(`/apis/apps/v1/namespaces/${ns}/deployments`, "Deployment", selector));
    requests.push(list(`/api/v1/namespaces/${ns}/pods`, "Pod", selector));
  }
  const items = Promise.all(requests).then((lists) => lists.flat());
  cache.set(key, { at: Date.now(), names: new Set(names), items });
  // A failed call is not cached: the next look tries again.
  items.catch(() => {
    if (cache.get(key)?.items === items) cache.delete(key);
  });
  return items;
}

/**
 * How long the watch keeps looking while the API server does not answer (a refused or dropped
 * connection, a timeout, a 5xx): long enough for an API server restart, short enough that a
 * cluster that cannot be reached fails `up` within 15 s of its first look.
 */
const UNREACHABLE_LIMIT_MS = 10_000;

/**
 * Ends this provider process once the engine that started it is gone. The engine stops its
 * plugins when it ends, but an engine killed outright (SIGKILL, a cancelled CI job) cannot,
 * and Pulumi's Node.js dynamic-provider host, unlike its Go plugins, never checks on the
 * engine: its gRPC server and a running watch would keep this process alive for good. The host
 * script execs node, so the engine is this process's parent; a new parent means it is gone.
 * Once per process (on `globalThis`, as {@link apiClient}'s cache).
 */
function exitWithEngine(): void {
  const g = globalThis as { k8sChainEngineGuard?: NodeJS.Timeout };
  if (g.k8sChainEngineGuard === undefined) {
    const engine = process.ppid;
    g.k8sChainEngineGuard = setInterval(() => {
      if (process.ppid !== engine) {
        process.exit(1);
      }
    }, 1000).unref();
  }
}

/** The error of a watch that could not talk to the cluster, naming the service and where. */
function cannotWatch(inputs: RolloutInputs, err: unknown, where: string): Error {
  return new Error(`${inputs.service}: could not watch its rollout on ${where}: ${(err as Error).message}`);
}

/**
 * Watches `inputs`' release until it is ready (with `drain`, until its old pods have also
 * finished draining), or fails it (after a rollback when there is a release to go back to).
 */
async function watchRollout(inputs: RolloutInputs, drain: boolean): Promise<Record<string, unknown>> {
  const started = Date.now();
  let api: ApiClient;
  try {
    api = await apiClient(inputs.connection ?? {});
  } catch (err) {
    throw cannotWatch(inputs, err, "the cluster the stack's kubernetes provider uses");
  }
  // Listed in the shared snapshots while it watches (see rolloutSnapshot).
  const stopWatching = startWatching(snapshotKey(api, inputs.namespace), inputs.service);
  try {
    return await followRollout(api, inputs, drain, started);
  } finally {
    stopWatching();
  }
}

/** {@link watchRollout}'s looks, every 500 ms, until the release is ready or has failed. */
async function followRollout(
  api: ApiClient,
  inputs: RolloutInputs,
  drain: boolean,
  started: number,
): Promise<Record<string, unknown>> {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const look = async (generation: number, drained = true) => {
    const items = (await rolloutSnapshot(api, inputs.namespace, inputs.service, started)).filter(
      (o) => o.metadata.labels?.["app.kubernetes.io/name"] === inputs.service,
    );
    const dep = items.find((o) => o.kind === "Deployment" && o.metadata.name === inputs.deployment);
    if (dep === undefined) {
      throw new Error(`${inputs.service}: its Deployment ${inputs.namespace}/${inputs.deployment} is gone`);
    }
    const pods = items.filter((o) => o.kind === "Pod");
    return { dep, pods, verdict: judgeRollout({ ...inputs, generation }, dep, pods, drained) };
  };
  // A pod held back by a probe for a while: ask the kubelet's events whether the probe's route
  // is missing (see missingHealthRoute). Only then, each such pod at most every 2 s, and never
  // again once the cluster refuses to show events (RBAC): without them the release keeps its
  // timeout, as before.
  const suspectSince = new Map<string, number>();
  let eventsAskedAt = 0;
  let eventsRefused = false;
  const routeMissing = async (pods: PodJson[]): Promise<string | undefined> => {
    const now = Date.now();
    const suspects = probeSuspects(pods);
    for (const name of [...suspectSince.keys()]) {
      if (!suspects.includes(name)) suspectSince.delete(name);
    }
    for (const name of suspects) {
      if (!suspectSince.has(name)) suspectSince.set(name, now);
    }
    const due = suspects
      .filter((name) => now - suspectSince.get(name)! >= (MISSING_ROUTE_PROBES - 2) * 1000)
      .slice(0, 3);
    if (eventsRefused || due.length === 0 || now - eventsAskedAt < 2000) {
      return undefined;
    }
    eventsAskedAt = now;
    const ns = encodeURIComponent(inputs.namespace);
    try {
      const lists = await Promise.all(
        due.map((name) =>
          api.request<{ items: EventJson[] }>(
            "GET",
            `/api/v1/namespaces/${ns}/events?fieldSelector=${encodeURIComponent(`involvedObject.name=${name},reason=Unhealthy`)}`,
          ),
        ),
      );
      return missingHealthRoute(
        inputs.service,
        pods,
        lists.flatMap((l) => l.items),
      );
    } catch (err) {
      eventsRefused = isApiError(err) && err.fatal;
      return undefined;
    }
  };
  // A little past the progress deadline, so the controller's own verdict (with its reason)
  // usually comes first.
  const deadline = started + (inputs.timeoutSeconds + 5) * 1000;
  let last = "";
  let failingSince: number | undefined;
  for (;;) {
    let seen: Awaited<ReturnType<typeof look>>;
    try {
      seen = await look(inputs.generation, drain);
      failingSince = undefined;
    } catch (err) {
      if (!isApiError(err)) {
        throw err;
      }
      // The API server may blink under load or restart: look again for a few seconds, but
      // refused credentials, RBAC and a server that stays away end the watch now.
      failingSince ??= Date.now();
      if (err.fatal || Date.now() - failingSince >= UNREACHABLE_LIMIT_MS || Date.now() > deadline) {
        throw cannotWatch(inputs, err, api.describe);
      }
      await sleep(1000);
      continue;
    }
    const { dep, pods } = seen;
    let verdict = seen.verdict;
    if (verdict.state === "waiting") {
      const missing = await routeMissing(pods);
      if (missing !== undefined) {
        verdict = { state: "failed", why: missing, early: true };
      }
    }
    if (verdict.state === "ready") {
      // The inputs stay in the outputs (the next diff compares against them), but not the
      // connection, which may hold credentials.
      const kept: Record<string, unknown> = { ...inputs };
      delete kept.connection;
      return {
        ...kept,
        revision: dep.metadata.annotations?.["deployment.kubernetes.io/revision"] ?? "",
        seconds: (Date.now() - started) / 1000,
      };
    }
    if (verdict.state === "overridden") {
      throw new Error(
        `${inputs.service}: ${verdict.why}. Run \`pulumi up --refresh\` to apply this program's release again.`,
      );
    }
    last = verdict.why;
    if (verdict.state === "failed" || Date.now() > deadline) {
      let undone: string;
      try {
        undone = await rollBack(api, inputs, dep, look);
      } catch (err) {
        undone = `Rolling it back failed (${(err as Error).message}); its pods are left as they are.`;
      }
      throw new Error(
        verdict.state === "failed" && verdict.early
          ? `${inputs.service}: its release can never become ready: ${last}. ${undone}`
          : `${inputs.service}: its release did not become ready within ${inputs.timeoutSeconds}s ` +
              `(rolloutTimeoutSeconds): ${last}. ${undone}`,
      );
    }
    await sleep(500);
  }
}

/**
 * Puts the Deployment back on the release before this one, if there is one, the way `kubectl
 * rollout undo --to-revision` does (the Deployment's pod template replaced by that ReplicaSet's,
 * less its `pod-template-hash` label); says what it did.
 */
async function rollBack(
  api: ApiClient,
  inputs: RolloutInputs,
  dep: DeploymentJson,
  look: (
    generation: number,
    drained?: boolean,
  ) => Promise<{ dep: DeploymentJson; pods: PodJson[]; verdict: RolloutVerdict }>,
): Promise<string> {
  const current = Number(dep.metadata.annotations?.["deployment.kubernetes.io/revision"] ?? 0);
  type ReplicaSet = {
    metadata: { ownerReferences?: Array<{ uid: string }>; annotations?: Record<string, string> };
    spec: { template: { metadata?: { labels?: Record<string, string> } } & Record<string, unknown> };
  };
  const ns = encodeURIComponent(inputs.namespace);
  const sets = (
    await api.request<{ items: ReplicaSet[] }>(
      "GET",
      `/apis/apps/v1/namespaces/${ns}/replicasets?labelSelector=${encodeURIComponent(selectorArg(dep.spec.selector.matchLabels))}`,
    )
  ).items;
  const revisionOf = (rs: ReplicaSet) => Number(rs.metadata.annotations?.["deployment.kubernetes.io/revision"] ?? 0);
  const earlier = sets
    .filter((rs) => rs.metadata.ownerReferences?.some((o) => o.uid === dep.metadata.uid))
    .filter((rs) => revisionOf(rs) > 0 && revisionOf(rs) < current)
    .sort((a, b) => revisionOf(b) - revisionOf(a));
  if (earlier.length === 0) {
    return "It has no earlier release to go back to; its pods are left as they are for you to inspect. Fix the release and run `pulumi up` again.";
  }
  const target = earlier[0];
  const template = structuredClone(target.spec.template);
  delete template.metadata?.labels?.["pod-template-hash"];
  const undone = await api.request<DeploymentJson>(
    "PATCH",
    `/apis/apps/v1/namespaces/${ns}/deployments/${encodeURIComponent(inputs.deployment)}`,
    [
      // Only the Deployment this watch saw: a replaced one has another uid.
      { op: "test", path: "/metadata/uid", value: dep.metadata.uid },
      { op: "replace", path: "/spec/template", value: template },
    ],
  );
  // The old pods never stopped serving; wait (bounded) until the Deployment is back on them
  // (the failed pods may still be terminating: they never served).
  const until = Date.now() + inputs.timeoutSeconds * 1000;
  let settled = false;
  while (!settled && Date.now() < until) {
    settled = (await look(undone.metadata.generation, false).catch(() => undefined))?.verdict.state === "ready";
    if (!settled) {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return (
    `Rolled it back to its last good release (revision ${revisionOf(target)}), which kept serving throughout` +
    `${settled ? "" : " (its pods were not all settled when this gave up waiting)"}. ` +
    "Fix the release and run `pulumi up` again."
  );
}

/**
 * A Deployment's rollout, watched by the stack itself; callers depend on it through the
 * service's component, so no caller starts before this release's pods are Ready. A failed
 * release fails `up` within `rolloutTimeoutSeconds`, naming the service and the reason, with
 * the Deployment back on its last good release.
 */
export class Rollout extends pulumi.dynamic.Resource {
  /** The Deployment revision that became ready. */
  public readonly revision!: pulumi.Output<string>;

  constructor(
    name: string,
    args: { [K in keyof RolloutInputs]: pulumi.Input<RolloutInputs[K]> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(rolloutProvider, name, { ...args, revision: undefined, seconds: undefined }, opts, "k8s-chain", "Rollout");
  }
}
