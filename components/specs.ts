// The Kubernetes objects of one service, as plain specs: pure functions, no resources.
//
// Everything the cluster will see is decided here, so it can be tested (and validated
// against the Kubernetes schema) without Pulumi. The components only register these.
import type * as k8s from "@pulumi/kubernetes";
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { stackDrainDelayMs, TERMINATION_GRACE_SECONDS } from "./app-contract";
import type { ServiceConfig } from "./catalog";
import { DEFAULT_DENY_POLICY_NAME, urlEnvName } from "./catalog-rules";

type Deployment = k8s.types.input.apps.v1.Deployment;
type Namespace = k8s.types.input.core.v1.Namespace;
type NetworkPolicy = k8s.types.input.networking.v1.NetworkPolicy;
type Service = k8s.types.input.core.v1.Service;
type ServicePatch = k8s.core.v1.ServicePatchArgs;
type PodDisruptionBudget = k8s.types.input.policy.v1.PodDisruptionBudget;
/**
 * One container env var. An empty value is written without `value`: the API server drops an
 * empty `value` (omitempty), so writing it would show as a change in every preview.
 */
export type EnvVar = { name: string; value?: string };

/**
 * Stack-wide settings every service's objects share: where they live, how callers reach
 * them, and how long the provider may wait for them.
 */
export interface Placement {
  namespace: string;
  clusterDomain: string;
  /** The `rolloutTimeoutSeconds` of the stack config (see {@link providerAnnotations}). */
  rolloutTimeoutSeconds: number;
}

/**
 * The kubernetes provider's per-resource await timeout (`pulumi.com/timeoutSeconds`, an
 * integer number of seconds as a string; a `customTimeouts` resource option would take
 * precedence, and the stack sets none). Without it the provider waits up to 10 minutes for a
 * Deployment's rollout or a Service's endpoints and load-balancer address.
 */
export const AWAIT_TIMEOUT_ANNOTATION = "pulumi.com/timeoutSeconds";
/**
 * Makes the provider's server-side apply take over fields another manager changed by hand
 * (measured on a real cluster: after `kubectl scale`, every later `up` failed with "conflict
 * with kubectl with subresource scale: .spec.replicas"). The stack owns its objects: `up`
 * puts back what the catalog declares.
 */
const PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce";
/**
 * Tells the provider not to wait for a Service. Its wait for endpoints ends with a fixed 10 s
 * "settle" after every change to them (measured: 10 s per level of the chain, 30 of the dev
 * stack's 56 s first `up`). The stack does not need it: a service's Service is created before
 * its Deployment, whose rollout the stack's own watch waits for (every new pod Ready; the
 * provider's await is skipped too, see {@link RolloutWait}), and endpoints follow Ready pods;
 * the cluster suite checks from the cluster's own watches that every caller is created after
 * its callees have ready endpoints. A `LoadBalancer` keeps the wait, bounded by the timeout:
 * it is how an address that never comes fails `up`.
 */
const SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait";

/** The annotation on each Deployment (its metadata, not the pod template) naming the image's revision. */
export const REVISION_ANNOTATION = "k8s-chain.dev/revision";

/**
 * Who waits for a Deployment's rollout: the stack's own watch (`watched`: the provider skips
 * its await, see rollout.ts), or the provider within `rolloutTimeoutSeconds` (`bounded`: render
 * mode, where there is no cluster to watch).
 */
export type RolloutWait = "watched" | "bounded";

/** The provider annotations of one object: forced apply; a bounded wait, or none for a Service that needs none. */
function providerAnnotations(where: Placement, wait: "bounded" | "none" = "bounded"): Record<string, string> {
  return { [PATCH_FORCE_ANNOTATION]: "true", ...awaitAnnotation(where, wait) };
}

/** How long the provider waits for an object: at most `rolloutTimeoutSeconds`, or not at all. */
function awaitAnnotation(where: Placement, wait: "bounded" | "none"): Record<string, string> {
  return wait === "bounded"
    ? { [AWAIT_TIMEOUT_ANNOTATION]: String(where.rolloutTimeoutSeconds) }
    : { [SKIP_AWAIT_ANNOTATION]: "true" };
}

/** A Service waits only for a `LoadBalancer`'s address (see {@link SKIP_AWAIT_ANNOTATION}). */
function serviceWait(svc: Pick<ServiceConfig, "expose">): "bounded" | "none" {
  return svc.expose === "LoadBalancer" ? "bounded" : "none";
}

/**
 * Probe timing, all at the `http` port, on routes that touch nothing downstream (so no probe
 * follows the call chain; the seed's readiness on `/` did): startup and readiness on
 * `healthPath`, liveness on `livenessPath` (default the apps' `/livez`, which answers 200 while
 * the process runs, drain included; a prebuilt image without it sets its own).
 *
 * - **startup**: every second from the container's start, so a pod is Ready about a second
 *   after it first answers, not after a fixed initial delay (the seed's 15 s delay and 10 s
 *   period cost each level of the chain about 21 s). 60 failures allowed: a start of up to
 *   about 60 s (longer if probes also time out) is covered before the kubelet restarts it.
 *   Readiness and liveness do not run until it has succeeded once.
 * - **readiness**: every 2 s with no initial delay; out of endpoints after 2 failures in a
 *   row (about 4-6 s), so one slow answer (a GC pause, a CPU-throttled moment under the
 *   500m limit) does not pull a pod, while a wedged pod stops getting traffic within
 *   seconds; back in after one success.
 * - **liveness**: the seed's patient numbers (every 10 s, 5 s timeout, 6 failures: about a
 *   minute of failing before a restart), so a pod under load is not killed for slow answers.
 */
export const PROBE_TIMING = {
  startup: { periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 60 },
  readiness: { periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 2 },
  liveness: { periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 },
} as const;

// SHUTDOWN_DELAY_MS (5000, catalog.ts's stackDrainDelayMs, which validation also uses): how
// long a pod keeps answering every route after SIGTERM while its endpoints and kube-proxy catch
// up (the app reads `SHUTDOWN_DELAY_MS`). No per-call timeout is set: a request's remaining
// budget travels with it (`x-request-timeout-ms`), so the apps' own DOWNSTREAM_TIMEOUT_MS
// (default 2000 ms, or `env`) bounds a request that enters anywhere in the chain.

// TERMINATION_GRACE_SECONDS (30, from catalog.ts): Kubernetes kills the pod after
// this; it must exceed the drain delay plus in-flight work (validation checks the apps' env against it).

/**
 * Requests sized for the small Node services in `apps/`; limits cap a runaway pod. Ephemeral
 * storage covers the `/tmp` emptyDir (capped at 64Mi) and the container's logs (the kubelet
 * keeps up to 5 files of 10Mi by default): a pod past the limit is evicted, not the node.
 */
const RESOURCES = {
  requests: { cpu: "50m", memory: "64Mi", "ephemeral-storage": "64Mi" },
  limits: { cpu: "500m", memory: "256Mi", "ephemeral-storage": "256Mi" },
} as const;

/**
 * The UID and GID the containers run as (the app images' numeric `USER`): 10000 or more, above
 * the range distributions give to host users, so a container escape does not land on a host
 * account's files.
 */
export const RUN_AS = 10001;

/** `http://service-b.default.svc.cluster.local:80`: how callers reach a service in the cluster. */
export function serviceUrl(
  svc: Pick<ServiceConfig, "name" | "servicePort">,
  where: Pick<Placement, "namespace" | "clusterDomain">,
): string {
  return `http://${svc.name}.${where.namespace}.svc.${where.clusterDomain}:${svc.servicePort}`;
}

/** `app.kubernetes.io/part-of` on every object of the stack: selects the pods the default-deny policy covers. */
const PART_OF = { "app.kubernetes.io/part-of": "k8s-chain" } as const;

/**
 * The labels that select a service's pods: the stack's identity label only, never the
 * catalog's `labels`, so a cosmetic label change never touches a selector (a Deployment's is
 * immutable: changing it would replace the Deployment). One object feeds every selector.
 */
function selectorLabels(svc: Pick<ServiceConfig, "name">): Record<string, string> {
  return { "app.kubernetes.io/name": svc.name };
}

/**
 * Labels on every object and pod template: the catalog's `labels` (validation refuses the keys
 * below), `app` (kept for `kubectl -l app=...`; in no selector), the selector and the
 * recommended `app.kubernetes.io` set.
 */
function objectLabels(svc: ServiceConfig): Record<string, string> {
  return {
    ...svc.labels,
    app: svc.name,
    ...selectorLabels(svc),
    ...PART_OF,
    "app.kubernetes.io/managed-by": "pulumi",
  };
}

/**
 * The container env: `SERVICE_NAME`, `PORT`, one `<CALLEE>_URL` per callee, `DOWNSTREAM_URLS`
 * (in `calls` order), the drain delay, then the catalog's `env` (which may override the delay,
 * and set `DOWNSTREAM_TIMEOUT_MS`, but not the wiring: validation refuses that).
 */
export function containerEnv(
  svc: ServiceConfig,
  callees: ReadonlyArray<ServiceConfig>,
  where: Pick<Placement, "namespace" | "clusterDomain">,
): EnvVar[] {
  const urls = callees.map((c) => serviceUrl(c, where));
  const env: EnvVar[] = [
    { name: "SERVICE_NAME", value: svc.name },
    { name: "PORT", value: String(svc.port) },
    ...callees.map((c, i) => ({ name: urlEnvName(c.name), value: urls[i] })),
    { name: "DOWNSTREAM_URLS", value: urls.join(",") },
  ];
  const drain = stackDrainDelayMs(svc);
  if (drain !== undefined) {
    env.push({ name: "SHUTDOWN_DELAY_MS", value: String(drain) });
  }
  for (const [name, value] of Object.entries(svc.env)) {
    env.push({ name, value });
  }
  return env.map((e) => (e.value === "" ? { name: e.name } : e));
}

/**
 * Seconds a pod stays bound to a node the cluster has found unreachable or not ready before it
 * is evicted and replaced elsewhere. Short, as these services keep no state on their node; not
 * zero, so that a node that only missed its deadline by a moment does not lose every pod.
 */
export const NODE_LOSS_TOLERATION_SECONDS = 10;

/** The three probes of a service's container (see {@link PROBE_TIMING}). */
export function probes(svc: ServiceConfig) {
  const on = (path: string, timing: (typeof PROBE_TIMING)[keyof typeof PROBE_TIMING]) => ({
    httpGet: { path, port: "http" },
    ...timing,
  });
  return {
    startupProbe: on(svc.healthPath, PROBE_TIMING.startup),
    readinessProbe: on(svc.healthPath, PROBE_TIMING.readiness),
    livenessProbe: on(svc.livenessPath, PROBE_TIMING.liveness),
  };
}

/**
 * The Deployment. It has no `metadata.name`: Pulumi auto-names it, so a change to its
 * immutable selector is a create-before-delete replacement (new pods ready before the old
 * ones go), never a collision with itself.
 *
 * A rollout is bounded twice by `rolloutTimeoutSeconds`: the provider stops waiting and fails
 * `up` after that long (the annotation; its error lists the pods' problems, e.g. ErrImagePull
 * or a failing probe), and Kubernetes marks a rollout that has made no progress for that long
 * as failed (`progressDeadlineSeconds`: condition `Progressing=False`, reason
 * `ProgressDeadlineExceeded`, which `kubectl rollout status` and the provider's messages
 * report). The provider does not stop early on that condition; its own timeout ends the wait.
 */
export function deploymentSpec(
  planned: { service: ServiceConfig; env: EnvVar[] },
  where: Placement,
  image: pulumi.Input<string>,
  opts: {
    /** @default "bounded" */
    wait?: RolloutWait;
    /** The built image's revision, as {@link REVISION_ANNOTATION} (none when unknown or prebuilt). */
    revision?: pulumi.Input<string | undefined>;
  } = {},
): Deployment {
  const svc = planned.service;
  const labels = objectLabels(svc);
  const annotations = providerAnnotations(where, opts.wait === "watched" ? "none" : "bounded");
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      namespace: where.namespace,
      labels,
      // On the Deployment's own metadata, never its pod template: a revision alone rolls no pod.
      annotations:
        opts.revision === undefined
          ? annotations
          : pulumi
              .output(opts.revision)
              .apply((rev) => (rev === undefined ? annotations : { ...annotations, [REVISION_ANNOTATION]: rev })),
    },
    spec: {
      replicas: svc.replicas,
      progressDeadlineSeconds: where.rolloutTimeoutSeconds,
      selector: { matchLabels: selectorLabels(svc) },
      // Zero downtime: a new pod must be Ready before an old one is taken away.
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      revisionHistoryLimit: 5,
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
          automountServiceAccountToken: false,
          // Replicas on different nodes: each release's pods (pod-template-hash) spread with a
          // skew of at most one over the nodes they may run on (tainted ones, such as a cordoned
          // or unreachable node, do not count), so with two nodes a release's two pods never
          // share one; on a single node they still schedule. The preferred anti-affinity
          // repeats it for schedulers and audits that read only affinity.
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: "kubernetes.io/hostname",
              whenUnsatisfiable: "DoNotSchedule",
              labelSelector: { matchLabels: selectorLabels(svc) },
              matchLabelKeys: ["pod-template-hash"],
              nodeTaintsPolicy: "Honor",
            },
          ],
          // A node that stops answering is tainted unreachable (or not-ready) once the cluster
          // gives up on it (the controller manager's --node-monitor-grace-period, when its pods
          // also leave the Services' endpoints); its pods are then replaced on the other nodes
          // after NODE_LOSS_TOLERATION_SECONDS instead of Kubernetes' default 300 s.
          tolerations: ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"].map((key) => ({
            key,
            operator: "Exists",
            effect: "NoExecute",
            tolerationSeconds: NODE_LOSS_TOLERATION_SECONDS,
          })),
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                {
                  weight: 100,
                  podAffinityTerm: {
                    topologyKey: "kubernetes.io/hostname",
                    labelSelector: { matchLabels: selectorLabels(svc) },
                  },
                },
              ],
            },
          },
          // Pod Security Standards "restricted".
          securityContext: {
            runAsNonRoot: true,
            runAsUser: RUN_AS,
            runAsGroup: RUN_AS,
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [
            {
              name: svc.name,
              image,
              // A digest or an immutable tag never changes under a name, so a node's copy is good.
              imagePullPolicy: "IfNotPresent",
              ports: [{ name: "http", containerPort: svc.port, protocol: "TCP" }],
              env: planned.env,
              ...probes(svc),
              resources: {
                requests: { ...RESOURCES.requests },
                limits: { ...RESOURCES.limits },
              },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                runAsUser: RUN_AS,
                runAsGroup: RUN_AS,
                capabilities: { drop: ["ALL"] },
              },
              // The root filesystem is read-only; give the runtime a scratch /tmp.
              volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
            },
          ],
          volumes: [{ name: "tmp", emptyDir: { sizeLimit: "64Mi" } }],
        },
      },
    },
  };
}

/**
 * The Service named after the service: the DNS name callers use. Its type is `expose`, except
 * that a service with a pinned `nodePort` gets a ClusterIP Service here and its node port
 * from {@link nodePortServiceSpec}: this Service never holds a pinned port, so nothing about
 * a node port can make it collide with itself or with another service's Service, and a
 * namespace move can create its new copy before deleting the old one.
 * The provider does not wait for it (see {@link SKIP_AWAIT_ANNOTATION}), except for a
 * `LoadBalancer`'s address, at most `rolloutTimeoutSeconds`: a LoadBalancer with no controller
 * to serve it fails `up` within that bound rather than after the provider's 10 minutes.
 */
export function serviceSpec(svc: ServiceConfig, where: Placement): Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: svc.name,
      namespace: where.namespace,
      labels: objectLabels(svc),
      annotations: providerAnnotations(where, serviceWait(svc)),
    },
    spec: {
      type: svc.nodePort !== undefined ? "ClusterIP" : svc.expose,
      selector: selectorLabels(svc),
      ports: [servicePortEntry(svc)],
    },
  };
}

/**
 * `http-80`: the name of a service's Service port, from its number. Each port its Service
 * exposes needs its own name while a changed `servicePort` and the one before it are both
 * exposed (see {@link servicePortKeeperSpec}); callers use the number, never the name.
 */
function servicePortName(port: number): string {
  return `http-${port}`;
}

/** The port entry of a service's Service; its port keeper co-owns this very entry. */
function servicePortEntry(svc: Pick<ServiceConfig, "servicePort">) {
  return { name: servicePortName(svc.servicePort), protocol: "TCP", port: svc.servicePort, targetPort: "http" };
}

/**
 * A server-side-apply patch of the service's own Service that co-owns its current port entry
 * (the same values, under the patch's own field manager). When `servicePort` changes, the
 * Service's update drops the old port from the Service's own field manager, but the keeper
 * of the old port still owns it, so the old port keeps working while the callers roll onto
 * the new URL; the old keeper leaves the program, and Pulumi deletes it (the provider
 * relinquishes its fields, and the port goes) only at the end of `up`, after every caller's
 * rollout, old pods included, is done. Measured before it: 1-9 failed requests per change.
 * The provider treats the patch as a Service and would wait for its endpoints, with the same
 * 10 s settle the Service itself skips: callers' Deployments wait for their callees' whole
 * component, so that was 10 s per level again (measured: 4 -> 14 s, 14 -> 24 s and 24 -> 34 s for C's, B's and
 * A's keepers in a first `up` of the dev stack). It carries the Service's own wait annotation,
 * with the same value, so the two field managers share it without a conflict.
 */
export function servicePortKeeperSpec(svc: ServiceConfig, where: Placement): ServicePatch {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: svc.name, namespace: where.namespace, annotations: awaitAnnotation(where, serviceWait(svc)) },
    spec: {
      ports: [servicePortEntry(svc)],
    },
  };
}

/** `node-port-30080`: the Kubernetes name, and Pulumi's logical name, of the Service holding a pinned node port. */
export function nodePortServiceName(port: number): string {
  return `node-port-${port}`;
}

/**
 * The Service that holds a pinned node port, for the service that pins it. It is keyed by the
 * port, not the service: its name is {@link nodePortServiceName} whichever service owns the
 * port, so moving a port to another service, or swapping two services' ports, is an in-place
 * update of its selector (and `port`): the port is never released and claimed again, so the
 * API server never finds it "already allocated".
 */
export function nodePortServiceSpec(pinned: { port: number; service: ServiceConfig }, where: Placement): Service {
  const svc = pinned.service;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: nodePortServiceName(pinned.port),
      namespace: where.namespace,
      labels: { ...objectLabels(svc), "app.kubernetes.io/component": "node-port" },
      annotations: providerAnnotations(where, "none"),
    },
    spec: {
      type: "NodePort",
      selector: selectorLabels(svc),
      ports: [{ name: "http", protocol: "TCP", port: svc.servicePort, targetPort: "http", nodePort: pinned.port }],
    },
  };
}

/**
 * Pod Security Admission labels of the namespace the stack owns: pods that are not
 * "restricted" are refused (enforce), logged (audit) and reported to the client (warn).
 */
const POD_SECURITY_LABELS = {
  "pod-security.kubernetes.io/enforce": "restricted",
  "pod-security.kubernetes.io/audit": "restricted",
  "pod-security.kubernetes.io/warn": "restricted",
} as const;

/** The namespace the stack owns (every namespace but `default`). */
export function namespaceSpec(name: string): Namespace {
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name,
      labels: { ...POD_SECURITY_LABELS, ...PART_OF, "app.kubernetes.io/managed-by": "pulumi" },
      annotations: { [PATCH_FORCE_ANNOTATION]: "true" },
    },
  };
}

/**
 * Cluster DNS, as a NetworkPolicy egress rule: UDP and TCP 53 to any destination. Not only to
 * kube-system's pods: a cluster may run its DNS outside any pod (the cluster suite's CoreDNS
 * is a host process on the node IP), and a rule naming pods would cut name resolution there.
 */
const DNS_EGRESS = {
  ports: [
    { protocol: "UDP", port: 53 },
    { protocol: "TCP", port: 53 },
  ],
};

/**
 * The stack's default-deny policy: every pod labelled `app.kubernetes.io/part-of: k8s-chain`
 * in the namespace is isolated for ingress and egress, so what each service's own policy
 * ({@link networkPolicySpec}) does not allow is refused.
 */
export function defaultDenyPolicySpec(where: Pick<Placement, "namespace">): NetworkPolicy {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: {
      name: DEFAULT_DENY_POLICY_NAME,
      namespace: where.namespace,
      labels: { ...PART_OF, "app.kubernetes.io/managed-by": "pulumi" },
      annotations: { [PATCH_FORCE_ANNOTATION]: "true" },
    },
    spec: { podSelector: { matchLabels: { ...PART_OF } }, policyTypes: ["Ingress", "Egress"] },
  };
}

/**
 * A service's NetworkPolicy, from the call graph: ingress on its container port only from its
 * callers' pods (from anywhere when exposed as `NodePort` or `LoadBalancer`; from no pod when
 * nothing calls it: the kubelet's probes come from the node, which policies do not cover);
 * egress only to its callees' pods on their container ports (a Service's address is translated
 * to the pod's before policies apply), to DNS ({@link DNS_EGRESS}) and to the catalog's `egress`.
 *
 * It is named after what it allows, `<service>-<8 hex digits of its spec>`: a changed graph is a
 * new policy, created before the pods that need it roll, while the old one is deleted only when
 * the `up` ends, after every rollout. Policies add up, so during the `up` the old pods keep the
 * paths they use and the new pods have theirs; an update in place would cut the old pods off
 * at once (a caller whose `calls` move from C to D would lose C while its old pods still serve).
 */
export function networkPolicySpec(
  svc: ServiceConfig,
  callers: ReadonlyArray<ServiceConfig>,
  callees: ReadonlyArray<ServiceConfig>,
  where: Pick<Placement, "namespace">,
): NetworkPolicy & { metadata: { name: string } } {
  const http = [{ protocol: "TCP", port: svc.port }];
  const ingress =
    svc.expose !== "ClusterIP"
      ? [{ ports: http }]
      : callers.length > 0
        ? [{ from: callers.map((c) => ({ podSelector: { matchLabels: selectorLabels(c) } })), ports: http }]
        : [];
  const spec = {
    podSelector: { matchLabels: selectorLabels(svc) },
    policyTypes: ["Ingress", "Egress"],
    ingress,
    egress: [
      ...callees.map((c) => ({
        to: [{ podSelector: { matchLabels: selectorLabels(c) } }],
        ports: [{ protocol: "TCP", port: c.port }],
      })),
      DNS_EGRESS,
      ...svc.egress.map((r) => ({
        to: [{ ipBlock: { cidr: r.cidr } }],
        ports: [{ protocol: r.protocol, port: r.port }],
      })),
    ],
  };
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: {
      name: `${svc.name}-${specDigest(spec)}`,
      namespace: where.namespace,
      labels: objectLabels(svc),
      annotations: { [PATCH_FORCE_ANNOTATION]: "true" },
    },
    spec,
  };
}

/** 8 hex digits of a spec's SHA-256 (its JSON: the specs here are built in a fixed key order). */
function specDigest(spec: object): string {
  return createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 8);
}

/**
 * What a release's old pods rely on that an `up` removes only when it ends, as one string: the
 * service's NetworkPolicy (a changed one is a new policy, the old one deleted at the end) and
 * its env (the URLs it calls: a callee's changed port is kept until then, see
 * {@link servicePortKeeperSpec}). The Rollout waits for the old pods to finish draining only
 * when this changes; an image update changes neither, so its old pods lose nothing while they
 * drain and the `up` need not wait for them.
 */
export function drainNeeds(env: ReadonlyArray<EnvVar>, policyName: string | undefined): string {
  return JSON.stringify({ policy: policyName ?? null, env });
}

/** With two or more replicas, a voluntary disruption (node drain) may take only one pod at a time. */
export function podDisruptionBudgetSpec(svc: ServiceConfig, where: Placement): PodDisruptionBudget | undefined {
  if (svc.replicas < 2) {
    return undefined;
  }
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: {
      namespace: where.namespace,
      labels: objectLabels(svc),
      annotations: { [PATCH_FORCE_ANNOTATION]: "true" },
    },
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(svc) } },
  };
}
