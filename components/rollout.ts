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
}

/** Where a Deployment's rollout stands, from its status and its pods. */
export type RolloutVerdict =
  | { state: "ready" }
  | { state: "waiting"; why: string }
  | { state: "failed"; why: string }
  | { state: "overridden"; why: string };

/** The parts of a Deployment this module reads (as `kubectl get -o json` returns them). */
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
  status?: {
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: Array<{
      name: string;
      ready: boolean;
      restartCount?: number;
      state?: { waiting?: { reason?: string; message?: string }; terminated?: { reason?: string; exitCode?: number } };
    }>;
  };
}

/**
 * Judges one look at a Deployment and its pods. Pure, so every branch is tested without a
 * cluster. Ready means what a caller needs, checked here rather than taken from the
 * kubernetes provider's await (on a real node it once reported a rollout complete 22-45 s
 * before the new pods were Ready): the controller has seen this generation, every replica is
 * updated and available, no old replica is counted, and no pod of the Deployment is still
 * terminating, unless `drained` is false (an old pod draining can still call a callee, so a
 * callee's old port must outlive it).
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

/** `a=b,c=d`: a label selector for kubectl. */
export function selectorArg(matchLabels: Record<string, string> | undefined): string {
  return Object.entries(matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/**
 * The dynamic provider: watches the rollout the program just applied, and when it fails,
 * puts the Deployment back on its last good release (`kubectl rollout undo`, which the old
 * pods never stopped serving) before failing `up` with the service's name and the reason.
 *
 * It talks to the cluster with `kubectl`, using the same ambient kubeconfig (`KUBECONFIG`, the
 * current context) as the stack's default kubernetes provider. The engine serializes this
 * object into its own process, so everything it uses is required inside the methods.
 */
const rolloutProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: RolloutInputs, news: RolloutInputs): Promise<pulumi.dynamic.DiffResult> {
    const keys = ["service", "namespace", "deployment", "generation", "timeoutSeconds"] as const;
    return { changes: keys.some((k) => olds[k] !== news[k]) };
  },
  async create(inputs: RolloutInputs): Promise<pulumi.dynamic.CreateResult> {
    return { id: `${inputs.namespace}/${inputs.deployment}`, outs: await watchRollout(inputs) };
  },
  async update(_id: string, _olds: RolloutInputs, news: RolloutInputs): Promise<pulumi.dynamic.UpdateResult> {
    return { outs: await watchRollout(news) };
  },
  async delete(): Promise<void> {
    // Nothing to undo: the watch owns no object.
  },
};

/** Runs kubectl and parses its JSON output, which the caller says the shape of (as the API returns it). */
async function kubectlJson<T>(args: string[]): Promise<T> {
  return JSON.parse(await kubectl([...args, "-o", "json"])) as T;
}

/** Runs kubectl (bounded to 30 s); its stdout, or an error quoting its stderr. */
async function kubectl(args: string[]): Promise<string> {
  // Required here, not imported at the top: the engine serializes the provider's methods into
  // its own process, and a module-level import would not go with them.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { execFile } = require("child_process") as typeof import("child_process");
  return new Promise((resolve, reject) => {
    execFile(
      "kubectl",
      args,
      { maxBuffer: 64 << 20, timeout: 30_000 },
      (err: Error | null, out: string, errOut: string) => {
        if (err) {
          reject(new Error(`kubectl ${args.join(" ")}: ${(errOut || err.message).trim()}`));
        } else {
          resolve(out);
        }
      },
    );
  });
}

type Listed = DeploymentJson & PodJson & { kind: string; metadata: { name: string; labels?: Record<string, string> } };

/**
 * The stack's Deployments and pods in a namespace, one `kubectl get` shared by every watch in
 * this process that looks within the same 400 ms: all the dynamic resources of an `up` run in
 * one provider process, and 50 services rolling at once would otherwise start 100 kubectl
 * processes a second. The cache lives on `globalThis` because this module's own variables are
 * serialized into each resource's copy of the provider.
 */
async function namespaceSnapshot(namespace: string): Promise<Listed[]> {
  const g = globalThis as { k8sChainRolloutSnapshots?: Map<string, { at: number; items: Promise<Listed[]> }> };
  const cache = (g.k8sChainRolloutSnapshots ??= new Map());
  const hit = cache.get(namespace);
  if (hit && Date.now() - hit.at < 400) {
    return hit.items;
  }
  const items = kubectlJson<{ items: Listed[] }>([
    "get",
    "deployments,pods",
    "-n",
    namespace,
    "-l",
    "app.kubernetes.io/part-of=k8s-chain",
  ]).then((list) => list.items);
  cache.set(namespace, { at: Date.now(), items });
  // A failed call is not cached: the next look tries again.
  items.catch(() => {
    if (cache.get(namespace)?.items === items) cache.delete(namespace);
  });
  return items;
}

/** Polls until the release is ready, or fails (after a rollback when there is a release to go back to). */
async function watchRollout(inputs: RolloutInputs): Promise<Record<string, unknown>> {
  const look = async (generation: number, drained = true) => {
    const items = (await namespaceSnapshot(inputs.namespace)).filter(
      (o) => o.metadata.labels?.["app.kubernetes.io/name"] === inputs.service,
    );
    const dep = items.find((o) => o.kind === "Deployment" && o.metadata.name === inputs.deployment);
    if (dep === undefined) {
      throw new Error(`${inputs.service}: its Deployment ${inputs.namespace}/${inputs.deployment} is gone`);
    }
    const pods = items.filter((o) => o.kind === "Pod");
    return { dep, verdict: judgeRollout({ ...inputs, generation }, dep, pods, drained) };
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const started = Date.now();
  // A little past the progress deadline, so the controller's own verdict (with its reason)
  // usually comes first.
  const deadline = started + (inputs.timeoutSeconds + 5) * 1000;
  let last = "";
  for (;;) {
    let seen: Awaited<ReturnType<typeof look>>;
    try {
      seen = await look(inputs.generation);
    } catch (err) {
      // The API server may blink (or kubectl time out) under load: look again until the deadline.
      if (Date.now() > deadline) {
        throw new Error(`${inputs.service}: could not watch its rollout: ${(err as Error).message}`);
      }
      await sleep(1000);
      continue;
    }
    const { dep, verdict } = seen;
    if (verdict.state === "ready") {
      // The inputs stay in the outputs: the next diff compares against them.
      return {
        ...inputs,
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
      throw new Error(
        `${inputs.service}: its release did not become ready within ${inputs.timeoutSeconds}s ` +
          `(rolloutTimeoutSeconds): ${last}. ${await rollBack(inputs, dep, look)}`,
      );
    }
    await sleep(500);
  }
}

/** Puts the Deployment back on the release before this one, if there is one; says what it did. */
async function rollBack(
  inputs: RolloutInputs,
  dep: DeploymentJson,
  look: (generation: number, drained?: boolean) => Promise<{ dep: DeploymentJson; verdict: RolloutVerdict }>,
): Promise<string> {
  const current = Number(dep.metadata.annotations?.["deployment.kubernetes.io/revision"] ?? 0);
  type ReplicaSets = {
    items: Array<{ metadata: { ownerReferences?: Array<{ uid: string }>; annotations?: Record<string, string> } }>;
  };
  const sets = (
    await kubectlJson<ReplicaSets>([
      "get",
      "replicasets",
      "-n",
      inputs.namespace,
      "-l",
      selectorArg(dep.spec.selector.matchLabels),
    ])
  ).items;
  const earlier = sets
    .filter((rs) => rs.metadata.ownerReferences?.some((o) => o.uid === dep.metadata.uid))
    .map((rs) => Number(rs.metadata.annotations?.["deployment.kubernetes.io/revision"] ?? 0))
    .filter((r) => r > 0 && r < current);
  if (earlier.length === 0) {
    return "It has no earlier release to go back to; its pods are left as they are for you to inspect. Fix the release and run `pulumi up` again.";
  }
  const target = Math.max(...earlier);
  await kubectl([
    "rollout",
    "undo",
    `deployment/${inputs.deployment}`,
    "-n",
    inputs.namespace,
    `--to-revision=${target}`,
  ]);
  // The old pods never stopped serving; wait (bounded) until the Deployment is back on them
  // (the failed pods may still be terminating: they never served).
  const undone = await kubectlJson<DeploymentJson>(["get", "deployment", inputs.deployment, "-n", inputs.namespace]);
  const until = Date.now() + inputs.timeoutSeconds * 1000;
  let settled = false;
  while (!settled && Date.now() < until) {
    settled = (await look(undone.metadata.generation, false)).verdict.state === "ready";
    if (!settled) {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return (
    `Rolled it back to its last good release (revision ${target}), which kept serving throughout` +
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
