import * as assert from "assert";
import type { IContainerState } from "kubernetes-models/v1/ContainerState";
import {
  apiFailure,
  ApiClient,
  judgeRollout,
  missingHealthRoute,
  MISSING_ROUTE_PROBES,
  probeSuspects,
  podTrouble,
  pullFailure,
  RolloutInputs,
  rolloutSnapshot,
  selectorArg,
  snapshotSelector,
  startWatching,
} from "../components/rollout";

/** A Deployment as `kubectl get -o json` shows it, in the parts the judgement reads. */
type DeploymentJson = Parameters<typeof judgeRollout>[1];
/** A pod as the judgement reads it; its containers' states as kubectl shows them (`running` too, which it does not read). */
type PodJson = Parameters<typeof podTrouble>[0][number];
type ContainerStatusJson = Omit<NonNullable<NonNullable<PodJson["status"]>["containerStatuses"]>[number], "state"> & {
  state?: IContainerState;
};
type PodFixture = Omit<PodJson, "status"> & {
  status?: Omit<NonNullable<PodJson["status"]>, "containerStatuses"> & { containerStatuses?: ContainerStatusJson[] };
};

const INPUTS: RolloutInputs = {
  service: "service-b",
  namespace: "chain",
  deployment: "service-b-deployment-1a2b",
  generation: 4,
  timeoutSeconds: 30,
};

/** A Deployment as `kubectl get -o json` shows it, wanting 2 replicas, with status overrides. */
function dep(status: DeploymentJson["status"], generation = 4): DeploymentJson {
  return {
    metadata: { generation, uid: "u", annotations: { "deployment.kubernetes.io/revision": "3" } },
    spec: { replicas: 2, selector: { matchLabels: { "app.kubernetes.io/name": "service-b" } } },
    status: {
      observedGeneration: 4,
      replicas: 2,
      updatedReplicas: 2,
      availableReplicas: 2,
      readyReplicas: 2,
      ...status,
    },
  };
}

function pod(name: string, extra: Partial<PodFixture> = {}): PodFixture {
  return {
    metadata: { name },
    status: {
      conditions: [{ type: "Ready", status: "True" }],
      containerStatuses: [{ name: "app", ready: true, state: { running: {} } }],
    },
    ...extra,
  };
}

describe("rollout judgement (the stack's own wait for a release)", () => {
  it("is ready only when this generation is observed, every replica updated and available, and no old pod is left", () => {
    assert.deepStrictEqual(judgeRollout(INPUTS, dep({}), [pod("p1"), pod("p2")]), { state: "ready" });
    assert.deepStrictEqual(judgeRollout(INPUTS, dep({ observedGeneration: 3 }), []), {
      state: "waiting",
      why: "the controller has not seen the new release yet",
    });
    assert.deepStrictEqual(judgeRollout(INPUTS, dep({ updatedReplicas: 1, replicas: 3 }), []), {
      state: "waiting",
      why: "1/2 updated, 2/2 available, 2 old",
    });
    assert.deepStrictEqual(judgeRollout(INPUTS, dep({ availableReplicas: 1, unavailableReplicas: 1 }), []), {
      state: "waiting",
      why: "2/2 updated, 1/2 available, 0 old",
    });
  });

  it("waits for old pods to finish draining, unless told not to", () => {
    const draining = pod("old", { metadata: { name: "old", deletionTimestamp: "2026-11-26T00:00:00Z" } });
    assert.deepStrictEqual(judgeRollout(INPUTS, dep({}), [pod("p1"), pod("p2"), draining]), {
      state: "waiting",
      why: "1 old pod(s) still draining",
    });
    assert.deepStrictEqual(judgeRollout(INPUTS, dep({}), [pod("p1"), pod("p2"), draining], false), { state: "ready" });
  });

  it("fails on the controller's progress deadline, with the first pod's trouble as the reason", () => {
    const stuck = pod("service-b-x", {
      status: {
        containerStatuses: [
          {
            name: "app",
            ready: false,
            state: { waiting: { reason: "ImagePullBackOff", message: 'Back-off pulling image "r/b@sha256:00"' } },
          },
        ],
      },
    });
    const deadline = {
      conditions: [
        {
          type: "Progressing",
          status: "False",
          reason: "ProgressDeadlineExceeded",
          message: 'ReplicaSet "x" has timed out progressing.',
        },
      ],
    };
    assert.deepStrictEqual(
      judgeRollout(INPUTS, dep({ ...deadline, updatedReplicas: 1, replicas: 3 }), [pod("p1"), stuck]),
      { state: "failed", why: 'pod service-b-x: ImagePullBackOff (Back-off pulling image "r/b@sha256:00")' },
    );
    assert.deepStrictEqual(judgeRollout(INPUTS, dep({ ...deadline }), []), {
      state: "failed",
      why: 'ReplicaSet "x" has timed out progressing.',
    });
  });

  it("says so when the Deployment changed after the program applied it (a rollback, or a hand edit)", () => {
    assert.deepStrictEqual(judgeRollout(INPUTS, dep({}, 5), []), {
      state: "overridden",
      why: "its Deployment was changed after this program applied it (generation 5, applied 4): it was rolled back after a failed release, or edited outside Pulumi",
    });
  });

  it("names what is wrong with a pod: waiting, exited, restarting, or running but not ready", () => {
    const c = (s: Record<string, unknown>) =>
      pod("p", {
        status: {
          conditions: [{ type: "Ready", status: "False" }],
          containerStatuses: [{ name: "app", ready: false, ...s }],
        },
      });
    assert.strictEqual(podTrouble([c({ state: { waiting: { reason: "ErrImagePull" } } })]), "pod p: ErrImagePull");
    assert.strictEqual(podTrouble([c({ state: { waiting: { reason: "ContainerCreating" } } })]), undefined);
    assert.strictEqual(podTrouble([c({ state: { terminated: { exitCode: 1 } } })]), "pod p: container exited (code 1)");
    assert.strictEqual(
      podTrouble([c({ restartCount: 2, state: { running: {} } })]),
      "pod p: restarted 2 time(s) and not ready",
    );
    assert.strictEqual(
      podTrouble([c({ state: { running: {} } })]),
      "pod p: running but not ready (its readiness probe fails)",
    );
    assert.strictEqual(podTrouble([pod("ok")]), undefined);
  });

  it("fails at once on an image that can never be pulled (not found, refused), naming the image; waits out a registry that may come back", () => {
    const pulling = (reason: string, message: string) =>
      pod("service-b-new", {
        status: {
          conditions: [{ type: "Ready", status: "False" }],
          containerStatuses: [
            { name: "app", image: "chain-service:inputs-1", ready: false, state: { waiting: { reason, message } } },
          ],
        },
      });
    const notFound =
      'failed to pull and unpack image "docker.io/library/chain-service:inputs-1": failed to resolve reference "docker.io/library/chain-service:inputs-1": docker.io/library/chain-service:inputs-1: not found';
    const rolling = dep({ updatedReplicas: 1, replicas: 3, availableReplicas: 2 });
    assert.deepStrictEqual(judgeRollout(INPUTS, rolling, [pod("p1"), pod("p2"), pulling("ErrImagePull", notFound)]), {
      state: "failed",
      why: `pod service-b-new cannot pull its image "chain-service:inputs-1" (ErrImagePull: ${notFound})`,
      early: true,
    });
    const denied = `Back-off pulling image "chain-service:inputs-1": ErrImagePull: pull access denied, repository does not exist or may require authorization`;
    assert.strictEqual(
      pullFailure([pulling("ImagePullBackOff", denied)]),
      `pod service-b-new cannot pull its image "chain-service:inputs-1" (ImagePullBackOff: ${denied})`,
    );
    assert.match(pullFailure([pulling("InvalidImageName", "bad")])!, /\(InvalidImageName: bad\)$/);
    // A registry that refuses connections or times out may recover: the release keeps its timeout.
    const refused =
      'failed to do request: Head "https://localhost:5001/v2/x/manifests/1": dial tcp 127.0.0.1:5001: connect: connection refused';
    assert.strictEqual(pullFailure([pulling("ErrImagePull", refused)]), undefined);
    assert.strictEqual(judgeRollout(INPUTS, rolling, [pulling("ErrImagePull", refused)]).state, "waiting");
    // An old pod on its way out does not count.
    const leaving = pulling("ErrImagePull", notFound);
    leaving.metadata.deletionTimestamp = "2026-12-06T00:00:00Z";
    assert.strictEqual(pullFailure([leaving]), undefined);
  });

  it("fails on a health route the app does not have: its probe answered 404 ten times, by the kubelet's events", () => {
    const starting = (name: string, state: ContainerStatusJson["state"], extra: Partial<PodFixture> = {}) =>
      pod(name, {
        spec: {
          containers: [
            {
              name: "app",
              startupProbe: { httpGet: { path: "/not-a-route", port: "http" } },
              readinessProbe: { httpGet: { path: "/not-a-route", port: "http" } },
            },
          ],
        },
        status: {
          conditions: [{ type: "Ready", status: "False" }],
          containerStatuses: [{ name: "app", ready: false, state }],
        },
        ...extra,
      });
    const held = starting("service-b-new", { running: { startedAt: "2026-12-06T00:00:00Z" } });
    const leaving = starting(
      "service-b-old",
      { running: {} },
      { metadata: { name: "service-b-old", deletionTimestamp: "x" } },
    );
    const pulling = starting("service-b-pull", { waiting: { reason: "ContainerCreating" } });
    assert.deepStrictEqual(probeSuspects([held, leaving, pulling, pod("service-b-ready")]), ["service-b-new"]);

    const event = (message: string, count: number, name = "service-b-new") => ({
      involvedObject: { name, fieldPath: "spec.containers{app}" },
      reason: "Unhealthy",
      message,
      count,
    });
    const notFound = "Startup probe failed: HTTP probe failed with statuscode: 404";
    assert.strictEqual(MISSING_ROUTE_PROBES, 10);
    // The kubelet counts repeats on one event; two events of the same probe add up.
    assert.strictEqual(
      missingHealthRoute("service-b", [held], [event(notFound, 6), event(notFound, 4)]),
      "pod service-b-new: its startup probe GET /not-a-route (port http) answered 404 10 times: the app has no such route; set services.service-b.healthPath to a route it serves",
    );
    assert.strictEqual(
      missingHealthRoute(
        "service-b",
        [held],
        [event("Readiness probe failed: HTTP probe failed with statuscode: 404", 12)],
      ),
      "pod service-b-new: its readiness probe GET /not-a-route (port http) answered 404 12 times: the app has no such route; set services.service-b.healthPath to a route it serves",
    );
    // A recorder of events.k8s.io/v1 counts in `series` and leaves `count` unset.
    const newStyle = { ...event(notFound, 0), count: undefined, series: { count: 11 } };
    assert.match(missingHealthRoute("service-b", [held], [newStyle])!, /answered 404 11 times/);
    // Not yet ten, another status (an app still starting), a refused connection, another pod, a pod leaving: wait on.
    assert.strictEqual(missingHealthRoute("service-b", [held], [event(notFound, 9)]), undefined);
    assert.strictEqual(
      missingHealthRoute(
        "service-b",
        [held],
        [event("Startup probe failed: HTTP probe failed with statuscode: 503", 30)],
      ),
      undefined,
    );
    assert.strictEqual(
      missingHealthRoute(
        "service-b",
        [held],
        [
          event(
            'Startup probe failed: Get "http://10.244.1.5:8080/not-a-route": dial tcp 10.244.1.5:8080: connect: connection refused',
            30,
          ),
        ],
      ),
      undefined,
    );
    assert.strictEqual(missingHealthRoute("service-b", [held], [event(notFound, 30, "service-b-other")]), undefined);
    assert.strictEqual(missingHealthRoute("service-b", [leaving], [event(notFound, 30, "service-b-old")]), undefined);
  });

  it("words a failed request to the API server, final or worth trying again", () => {
    const unauthorized = apiFailure("GET /api/v1/namespaces/chain/pods", {
      status: 401,
      body: '{"kind":"Status","message":"Unauthorized"}',
    });
    assert.deepStrictEqual(
      [unauthorized.message, unauthorized.fatal],
      [
        "GET /api/v1/namespaces/chain/pods: HTTP 401 Unauthorized: Unauthorized: the cluster refused the credentials; check the user of the kubeconfig the stack uses (kubernetes:kubeconfig, else KUBECONFIG)",
        true,
      ],
    );
    const forbidden = apiFailure("GET /api/v1/namespaces/chain/pods", {
      status: 403,
      body: '{"message":"pods is forbidden: User \\"ci\\" cannot list resource \\"pods\\" in API group \\"\\" in the namespace \\"chain\\""}',
    });
    assert.strictEqual(forbidden.fatal, true);
    assert.strictEqual(
      forbidden.message,
      'GET /api/v1/namespaces/chain/pods: HTTP 403 Forbidden: pods is forbidden: User "ci" cannot list resource "pods" in API group "" in the namespace "chain": the stack\'s user may not read this; it needs get, list and patch on deployments, and get and list on replicasets and pods, in the stack\'s namespace',
    );
    const refused = apiFailure("GET /x", { error: "connect ECONNREFUSED 127.0.0.1:6443" });
    assert.deepStrictEqual([refused.message, refused.fatal], ["GET /x: connect ECONNREFUSED 127.0.0.1:6443", false]);
    assert.strictEqual(apiFailure("GET /x", { status: 503, body: "busy" }).fatal, false);
    assert.strictEqual(apiFailure("GET /x", { status: 429, body: "" }).fatal, false);
    assert.strictEqual(apiFailure("GET /x", { status: 404, body: "" }).fatal, true);
  });

  it("writes a label selector", () => {
    assert.strictEqual(selectorArg({ a: "b", "app.kubernetes.io/name": "x" }), "a=b,app.kubernetes.io/name=x");
    assert.strictEqual(selectorArg(undefined), "");
  });
});

describe("rollout snapshots (what the watches ask the API server)", () => {
  /** An API server that answers every list with nothing and records each request's path. */
  const recording = (describe: string) => {
    const paths: string[] = [];
    const api: ApiClient = {
      describe,
      request: <T>(_method: string, apiPath: string) => {
        paths.push(decodeURIComponent(apiPath));
        return Promise.resolve({ items: [] } as T);
      },
    };
    return { api, paths };
  };
  const names = (path: string) => /name in \(([^)]*)\)/.exec(path)![1];

  it("writes one selector for the named services, sorted, each once", () => {
    assert.strictEqual(
      snapshotSelector(["svc-b", "svc-a", "svc-b"]),
      "app.kubernetes.io/part-of=k8s-chain,app.kubernetes.io/name in (svc-a,svc-b)",
    );
  });

  it("lists the Deployments and pods of the services being watched, not the whole namespace, and shares them for 400 ms", async () => {
    const { api, paths } = recording("shared");
    const stops = ["svc-1", "svc-2"].map((s) => startWatching("shared\0chain", s));
    const t0 = Date.now();
    await rolloutSnapshot(api, "chain", "svc-1", t0);
    await rolloutSnapshot(api, "chain", "svc-2", t0);
    assert.deepStrictEqual(paths, [
      "/apis/apps/v1/namespaces/chain/deployments?labelSelector=app.kubernetes.io/part-of=k8s-chain,app.kubernetes.io/name in (svc-1,svc-2)",
      "/api/v1/namespaces/chain/pods?labelSelector=app.kubernetes.io/part-of=k8s-chain,app.kubernetes.io/name in (svc-1,svc-2)",
    ]);
    // A watch that began after that snapshot, or a service it did not name, gets a new one.
    await rolloutSnapshot(api, "chain", "svc-3", t0);
    await rolloutSnapshot(api, "chain", "svc-1", Date.now() + 1);
    assert.deepStrictEqual(paths.slice(2).map(names), [
      "svc-1,svc-2,svc-3",
      "svc-1,svc-2,svc-3",
      "svc-1,svc-2",
      "svc-1,svc-2",
    ]);
    for (const stop of stops) stop();
  });

  it("names at most 40 services in one request", async () => {
    const { api, paths } = recording("many");
    const stops = Array.from({ length: 85 }, (_, i) =>
      startWatching("many\0chain", `svc-${String(i).padStart(2, "0")}`),
    );
    await rolloutSnapshot(api, "chain", "svc-00", Date.now());
    assert.deepStrictEqual(
      paths.map((p) => names(p).split(",").length),
      [40, 40, 40, 40, 5, 5],
    );
    for (const stop of stops) stop();
  });
});
