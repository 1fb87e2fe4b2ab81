import * as assert from "assert";
import { Deployment, IDeployment } from "kubernetes-models/apps/v1/Deployment";
import { IService, Service } from "kubernetes-models/v1/Service";
import { IPodDisruptionBudget, PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { INamespace, Namespace } from "kubernetes-models/v1/Namespace";
import { INetworkPolicy, NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import {
  AWAIT_TIMEOUT_ANNOTATION,
  containerEnv,
  defaultDenyPolicySpec,
  deploymentSpec,
  namespaceSpec,
  networkPolicySpec,
  nodePortServiceName,
  nodePortServiceSpec,
  podDisruptionBudgetSpec,
  PROBE_TIMING,
  probes,
  RUN_AS,
  servicePortKeeperSpec,
  serviceSpec,
  serviceUrl,
} from "../components/specs";
import { planChain } from "../components/plan";
import { PINNED, parse, planOf, seedServices } from "./support/catalogs";
import { containerOf, ObjectMeta, plain, podSpecOf } from "./support/objects";

const where = { namespace: "chain", clusterDomain: "cluster.local", rolloutTimeoutSeconds: 120 };
const seed = () => {
  const cfg = parse({ services: seedServices() });
  const by = new Map(cfg.services.map((s) => [s.name, s]));
  const callees = (n: string) => by.get(n)!.calls.map((c) => by.get(c)!);
  return { cfg, by, callees };
};

describe("specs", () => {
  it("wires env: SERVICE_NAME, PORT, <CALLEE>_URL, DOWNSTREAM_URLS, drain delay, then `env`", () => {
    const cfg = parse({
      services: {
        a: { image: "a:1", calls: ["c", "b"], env: { LOG_LEVEL: "debug", SHUTDOWN_DELAY_MS: "1000" } },
        b: { image: "b:1", servicePort: 8081 },
        c: { image: "c:1" },
      },
    });
    const [a, b, c] = cfg.services;
    assert.deepStrictEqual(containerEnv(a, [c, b], where), [
      { name: "SERVICE_NAME", value: "a" },
      { name: "PORT", value: "8080" },
      { name: "C_URL", value: "http://c.chain.svc.cluster.local:80" },
      { name: "B_URL", value: "http://b.chain.svc.cluster.local:8081" },
      { name: "DOWNSTREAM_URLS", value: "http://c.chain.svc.cluster.local:80,http://b.chain.svc.cluster.local:8081" },
      { name: "LOG_LEVEL", value: "debug" },
      { name: "SHUTDOWN_DELAY_MS", value: "1000" },
    ]);
    assert.deepStrictEqual(containerEnv(c, [], where), [
      { name: "SERVICE_NAME", value: "c" },
      { name: "PORT", value: "8080" },
      { name: "DOWNSTREAM_URLS" },
      { name: "SHUTDOWN_DELAY_MS", value: "5000" },
    ]);
  });

  it("sets no per-call timeout: none from the call height, the apps' own unless `env` sets one", () => {
    const { by, callees } = seed();
    for (const name of ["service-a", "service-b", "service-c"]) {
      const names = containerEnv(by.get(name)!, callees(name), where).map((e) => e.name);
      assert.deepStrictEqual(
        names.filter((n) => !n.endsWith("_URL")),
        ["SERVICE_NAME", "PORT", "DOWNSTREAM_URLS", "SHUTDOWN_DELAY_MS"],
        name,
      );
    }
    const own = parse({
      services: { a: { image: "a:1", calls: ["b"], env: { DOWNSTREAM_TIMEOUT_MS: "500" } }, b: { image: "b:1" } },
    });
    assert.deepStrictEqual(
      containerEnv(own.services[0], [own.services[1]], where).filter((e) => e.name === "DOWNSTREAM_TIMEOUT_MS"),
      [{ name: "DOWNSTREAM_TIMEOUT_MS", value: "500" }],
      "`env` sets it, once",
    );
  });

  it("builds the seed's sample-app: 2 replicas, startup and readiness on /health, liveness on /livez, NodePort 30080, 80 -> 8080", () => {
    const { cfg, by } = seed();
    const svc = by.get("sample-app")!;
    const dep = plain<IDeployment>(deploymentSpec(planOf(cfg, "sample-app"), where, PINNED));
    assert.strictEqual(dep.spec?.replicas, 2);
    assert.deepStrictEqual(dep.spec?.selector.matchLabels, { "app.kubernetes.io/name": "sample-app" });
    assert.deepStrictEqual(dep.spec?.template.metadata?.labels?.app, "sample-app");
    const c = containerOf(dep);
    assert.strictEqual(c.image, PINNED);
    assert.deepStrictEqual(c.ports, [{ name: "http", containerPort: 8080, protocol: "TCP" }]);
    const health = { path: "/health", port: "http" };
    assert.deepStrictEqual(c.startupProbe, {
      httpGet: health,
      periodSeconds: 1,
      timeoutSeconds: 2,
      failureThreshold: 60,
    });
    assert.deepStrictEqual(c.readinessProbe, {
      httpGet: health,
      periodSeconds: 2,
      timeoutSeconds: 2,
      failureThreshold: 2,
    });
    assert.deepStrictEqual(c.livenessProbe, {
      httpGet: { path: "/livez", port: "http" },
      periodSeconds: 10,
      timeoutSeconds: 5,
      failureThreshold: 6,
    });
    // Its own Service (the DNS name) is a ClusterIP; the pinned port has a Service of its own.
    const s = plain<IService>(serviceSpec(svc, where));
    assert.deepStrictEqual(s.metadata?.name, "sample-app");
    assert.deepStrictEqual(s.spec, {
      type: "ClusterIP",
      selector: { "app.kubernetes.io/name": "sample-app" },
      ports: [{ name: "http-80", protocol: "TCP", port: 80, targetPort: "http" }],
    });
    assert.deepStrictEqual(nodePortServiceSpec({ port: 30080, service: svc }, where), {
      apiVersion: "v1",
      kind: "Service",
      metadata: {
        name: "node-port-30080",
        namespace: "chain",
        labels: {
          app: "sample-app",
          "app.kubernetes.io/name": "sample-app",
          "app.kubernetes.io/part-of": "k8s-chain",
          "app.kubernetes.io/managed-by": "pulumi",
          "app.kubernetes.io/component": "node-port",
        },
        annotations: { "pulumi.com/patchForce": "true", "pulumi.com/skipAwait": "true" },
      },
      spec: {
        type: "NodePort",
        selector: { "app.kubernetes.io/name": "sample-app" },
        ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: "http", nodePort: 30080 }],
      },
    });
  });

  it("keys a pinned node port's Service by the port: the same name whichever service owns it", () => {
    // Before and after port 30080 moves from x to y (one catalog may not pin a port twice).
    const before = parse({
      services: {
        x: { image: "x:1", expose: "NodePort", nodePort: 30080, servicePort: 8081, labels: { tier: "edge" } },
        y: { image: "y:1" },
        picked: { image: "p:1", expose: "NodePort" },
        inside: { image: "i:1" },
      },
    });
    const after = parse({
      services: { x: { image: "x:1" }, y: { image: "y:1", expose: "NodePort", nodePort: 30080 } },
    });
    const [x, , picked, inside] = before.services;
    const y = after.services[1];
    const held = (svc: typeof x) => plain<IService>(nodePortServiceSpec({ port: 30080, service: svc }, where));
    assert.strictEqual(nodePortServiceName(30080), "node-port-30080");
    assert.deepStrictEqual([held(x).metadata?.name, held(y).metadata?.name], ["node-port-30080", "node-port-30080"]);
    assert.deepStrictEqual(held(x).spec?.selector, { "app.kubernetes.io/name": "x" });
    assert.deepStrictEqual(held(y).spec?.selector, { "app.kubernetes.io/name": "y" });
    assert.deepStrictEqual(held(x).spec?.ports, [
      { name: "http", protocol: "TCP", port: 8081, targetPort: "http", nodePort: 30080 },
    ]);
    // Without a pinned port: no such Service; `expose` alone decides the service's own Service.
    assert.deepStrictEqual(
      planChain(before, "/project").pinnedPorts.map((p) => [p.port, p.service.name]),
      [[30080, "x"]],
    );
    assert.deepStrictEqual(plain<IService>(serviceSpec(picked, where)).spec, {
      type: "NodePort",
      selector: { "app.kubernetes.io/name": "picked" },
      ports: [{ name: "http-80", protocol: "TCP", port: 80, targetPort: "http" }],
    });
    assert.strictEqual(plain<IService>(serviceSpec(inside, where)).spec?.type, "ClusterIP");
    assert.strictEqual(plain<IService>(serviceSpec(x, where)).spec?.type, "ClusterIP");
  });

  it("probes: startup every second with no initial delay, readiness on healthPath, liveness on livenessPath (/livez); none follows the call chain", () => {
    const cfg = parse({
      services: {
        a: { app: "apps/chain-service", calls: ["b"], healthPath: "/ready" },
        b: { image: "b:1", healthPath: "/ready", livenessPath: "/ready" },
      },
    });
    const built = probes(cfg.services[0]);
    assert.deepStrictEqual(Object.keys(built), ["startupProbe", "readinessProbe", "livenessProbe"]);
    assert.deepStrictEqual(
      [built.startupProbe.httpGet, built.readinessProbe.httpGet, built.livenessProbe.httpGet],
      [
        { path: "/ready", port: "http" },
        { path: "/ready", port: "http" },
        { path: "/livez", port: "http" },
      ],
    );
    // A prebuilt image that serves no /livez names its own liveness path.
    assert.deepStrictEqual(probes(cfg.services[1]).livenessProbe.httpGet, { path: "/ready", port: "http" });
    for (const probe of [...Object.values(built), ...Object.values(probes(cfg.services[1]))]) {
      assert.notStrictEqual(probe.httpGet.path, "/", "no probe on the route that calls downstream");
      assert.strictEqual(
        "initialDelaySeconds" in probe,
        false,
        "no fixed initial delay: the startup probe gates the others",
      );
    }
    // A start of up to about a minute is covered before the kubelet restarts the container.
    const { startup, readiness, liveness } = PROBE_TIMING;
    assert.strictEqual(startup.periodSeconds * startup.failureThreshold, 60);
    // A wedged pod leaves the endpoints within seconds; a failing one is restarted only after about a minute.
    assert.ok(readiness.failureThreshold * readiness.periodSeconds + readiness.timeoutSeconds <= 6);
    assert.strictEqual(liveness.failureThreshold * liveness.periodSeconds, 60);
  });

  it("rolls out with zero downtime and terminates gracefully", () => {
    const { cfg } = seed();
    const dep = plain<IDeployment>(deploymentSpec(planOf(cfg, "service-b"), where, PINNED));
    assert.deepStrictEqual(dep.spec?.strategy, {
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    assert.strictEqual(podSpecOf(dep).terminationGracePeriodSeconds, 30);
    const env = containerOf(dep).env;
    assert.deepStrictEqual(
      env?.find((e) => e.name === "SHUTDOWN_DELAY_MS"),
      { name: "SHUTDOWN_DELAY_MS", value: "5000" },
    );
  });

  it("bounds every rollout and every Service's wait by `rolloutTimeoutSeconds`", () => {
    const cfg = parse({ services: { c: { image: "c:1" }, lb: { image: "lb:1", expose: "LoadBalancer" } } });
    const at45 = { ...where, rolloutTimeoutSeconds: 45 };
    const dep = plain<IDeployment>(deploymentSpec(planOf(cfg, "c"), at45, PINNED));
    assert.strictEqual(dep.spec?.progressDeadlineSeconds, 45);
    assert.deepStrictEqual(dep.metadata?.annotations, {
      "pulumi.com/patchForce": "true",
      "pulumi.com/timeoutSeconds": "45",
    });
    assert.deepStrictEqual(
      dep.spec!.template.metadata!.annotations,
      undefined,
      "not on the pod template: changing it rolls no pod",
    );
    // Only a LoadBalancer is waited for (its address); any other Service is not waited for at all.
    assert.deepStrictEqual(plain<IService>(serviceSpec(cfg.services[0], at45)).metadata?.annotations, {
      "pulumi.com/patchForce": "true",
      "pulumi.com/skipAwait": "true",
    });
    assert.deepStrictEqual(plain<IService>(serviceSpec(cfg.services[1], at45)).metadata?.annotations, {
      "pulumi.com/patchForce": "true",
      "pulumi.com/timeoutSeconds": "45",
    });
    assert.strictEqual(AWAIT_TIMEOUT_ANNOTATION, "pulumi.com/timeoutSeconds");
  });

  it("waits for a port keeper exactly as for its Service: not at all, except a LoadBalancer's, bounded", () => {
    // Callers wait for the callee's whole component, keeper included: a keeper the provider
    // waited for would add its 10 s endpoint settle to every level of the chain.
    const cfg = parse({ services: { c: { image: "c:1" }, lb: { image: "lb:1", expose: "LoadBalancer" } } });
    const at45 = { ...where, rolloutTimeoutSeconds: 45 };
    assert.deepStrictEqual(plain<IService>(servicePortKeeperSpec(cfg.services[0], at45)).metadata, {
      name: "c",
      namespace: "chain",
      annotations: { "pulumi.com/skipAwait": "true" },
    });
    assert.deepStrictEqual(plain<IService>(servicePortKeeperSpec(cfg.services[1], at45)).metadata, {
      name: "lb",
      namespace: "chain",
      annotations: { "pulumi.com/timeoutSeconds": "45" },
    });
    for (const svc of cfg.services) {
      const own = plain<IService>(serviceSpec(svc, at45)).metadata!.annotations!;
      const keeper = plain<IService>(servicePortKeeperSpec(svc, at45)).metadata!.annotations!;
      for (const [key, value] of Object.entries(keeper)) {
        assert.strictEqual(own[key], value, `${svc.name}: the Service and its keeper must agree on ${key}`);
      }
    }
  });

  it("meets Pod Security Standards 'restricted' and sets requests and limits", () => {
    const { cfg } = seed();
    const pod = podSpecOf(plain<IDeployment>(deploymentSpec(planOf(cfg, "service-c"), where, PINNED)));
    assert.deepStrictEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      seccompProfile: { type: "RuntimeDefault" },
    });
    const c = pod.containers[0];
    assert.deepStrictEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      capabilities: { drop: ["ALL"] },
    });
    assert.ok(RUN_AS >= 10000, "UID/GID 10000 or more: above the host users' range");
    assert.deepStrictEqual(c.resources, {
      requests: { cpu: "50m", memory: "64Mi", "ephemeral-storage": "64Mi" },
      limits: { cpu: "500m", memory: "256Mi", "ephemeral-storage": "256Mi" },
    });
    assert.strictEqual(pod.automountServiceAccountToken, false);
  });

  it("leaves the Deployment unnamed (auto-named, so replacements are create-before-delete) and names the Service", () => {
    const { cfg, by } = seed();
    const svc = by.get("service-c")!;
    assert.strictEqual(
      plain<IDeployment>(deploymentSpec(planOf(cfg, "service-c"), where, PINNED)).metadata!.name,
      undefined,
    );
    assert.strictEqual(plain<IService>(serviceSpec(svc, where)).metadata?.name, "service-c");
    assert.strictEqual(plain<IService>(serviceSpec(svc, where)).metadata?.namespace, "chain");
  });

  it("selects by the stack's identity label only: catalog labels go on metadata and the pod template, never in a selector", () => {
    const unlabelled = parse({ services: { c: { image: "c:1", expose: "NodePort", nodePort: 30080 } } }).services[0];
    const labelled = parse({
      services: {
        c: { image: "c:1", expose: "NodePort", nodePort: 30080, labels: { tier: "backend", "example.com/team": "x" } },
      },
    }).services[0];
    const selectors = (svc: typeof unlabelled) => {
      const dep = plain<IDeployment>(deploymentSpec({ service: svc, env: [] }, where, PINNED));
      return [
        dep.spec?.selector.matchLabels,
        podSpecOf(dep).affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0].podAffinityTerm
          .labelSelector?.matchLabels,
        plain<IService>(serviceSpec(svc, where)).spec?.selector,
        plain<IService>(nodePortServiceSpec({ port: 30080, service: svc }, where)).spec?.selector,
        plain<IPodDisruptionBudget>(podDisruptionBudgetSpec(svc, where)).spec?.selector?.matchLabels,
        plain<INetworkPolicy>(networkPolicySpec(svc, [], [], where)).spec?.podSelector.matchLabels,
      ];
    };
    assert.deepStrictEqual(selectors(unlabelled), Array(6).fill({ "app.kubernetes.io/name": "c" }));
    assert.deepStrictEqual(
      selectors(labelled),
      selectors(unlabelled),
      "a label edit changes no selector, so it replaces nothing",
    );
    const dep = plain<IDeployment>(deploymentSpec({ service: labelled, env: [] }, where, PINNED));
    const expected = {
      tier: "backend",
      "example.com/team": "x",
      app: "c",
      "app.kubernetes.io/name": "c",
      "app.kubernetes.io/part-of": "k8s-chain",
      "app.kubernetes.io/managed-by": "pulumi",
    };
    assert.deepStrictEqual(dep.metadata?.labels, expected);
    assert.deepStrictEqual(dep.spec?.template.metadata?.labels, expected);
    assert.deepStrictEqual(plain<IService>(serviceSpec(labelled, where)).metadata?.labels, expected);
  });

  it("spreads each release's replicas across the nodes they may run on, and replaces them 10 s after their node is lost", () => {
    const { cfg } = seed();
    const pod = podSpecOf(plain<IDeployment>(deploymentSpec(planOf(cfg, "service-c"), where, PINNED)));
    assert.deepStrictEqual(pod.topologySpreadConstraints, [
      {
        maxSkew: 1,
        topologyKey: "kubernetes.io/hostname",
        whenUnsatisfiable: "DoNotSchedule",
        labelSelector: { matchLabels: { "app.kubernetes.io/name": "service-c" } },
        matchLabelKeys: ["pod-template-hash"],
        nodeTaintsPolicy: "Honor",
      },
    ]);
    assert.deepStrictEqual(pod.tolerations, [
      { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute", tolerationSeconds: 10 },
      { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: 10 },
    ]);
    assert.deepStrictEqual(pod.affinity, {
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            podAffinityTerm: {
              topologyKey: "kubernetes.io/hostname",
              labelSelector: { matchLabels: { "app.kubernetes.io/name": "service-c" } },
            },
          },
        ],
      },
    });
  });

  it("labels the stack's namespace for Pod Security enforce/audit/warn = restricted", () => {
    assert.deepStrictEqual(namespaceSpec("chain"), {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: "chain",
        labels: {
          "pod-security.kubernetes.io/enforce": "restricted",
          "pod-security.kubernetes.io/audit": "restricted",
          "pod-security.kubernetes.io/warn": "restricted",
          "app.kubernetes.io/part-of": "k8s-chain",
          "app.kubernetes.io/managed-by": "pulumi",
        },
        annotations: { "pulumi.com/patchForce": "true" },
      },
    });
  });

  it("network policies: a default deny for the stack's pods, and per service its callers in, its callees, DNS and `egress` out", () => {
    const cfg = parse({
      services: {
        a: {
          image: "a:1",
          calls: ["b"],
          egress: [
            { cidr: "203.0.113.0/24", port: 443 },
            { cidr: "2001:db8::/32", port: 123, protocol: "UDP" },
          ],
        },
        b: { image: "b:1", port: 9090 },
        edge: { image: "e:1", expose: "LoadBalancer", calls: ["b"] },
      },
    });
    const [a, b, edge] = cfg.services;
    assert.deepStrictEqual(defaultDenyPolicySpec(where), {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: {
        name: "k8s-chain-default-deny",
        namespace: "chain",
        labels: { "app.kubernetes.io/part-of": "k8s-chain", "app.kubernetes.io/managed-by": "pulumi" },
        annotations: { "pulumi.com/patchForce": "true" },
      },
      spec: {
        podSelector: { matchLabels: { "app.kubernetes.io/part-of": "k8s-chain" } },
        policyTypes: ["Ingress", "Egress"],
      },
    });
    const dns = {
      ports: [
        { protocol: "UDP", port: 53 },
        { protocol: "TCP", port: 53 },
      ],
    };
    const policyOf = (svc: typeof a, callers: (typeof a)[], callees: (typeof a)[]) =>
      plain<INetworkPolicy>(networkPolicySpec(svc, callers, callees, where));
    assert.deepStrictEqual(policyOf(b, [a, edge], []).spec, {
      podSelector: { matchLabels: { "app.kubernetes.io/name": "b" } },
      policyTypes: ["Ingress", "Egress"],
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: { "app.kubernetes.io/name": "a" } } },
            { podSelector: { matchLabels: { "app.kubernetes.io/name": "edge" } } },
          ],
          ports: [{ protocol: "TCP", port: 9090 }],
        },
      ],
      egress: [dns],
    });
    assert.deepStrictEqual(policyOf(a, [], [b]).spec, {
      podSelector: { matchLabels: { "app.kubernetes.io/name": "a" } },
      policyTypes: ["Ingress", "Egress"],
      ingress: [],
      egress: [
        {
          to: [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "b" } } }],
          ports: [{ protocol: "TCP", port: 9090 }],
        },
        dns,
        { to: [{ ipBlock: { cidr: "203.0.113.0/24" } }], ports: [{ protocol: "TCP", port: 443 }] },
        { to: [{ ipBlock: { cidr: "2001:db8::/32" } }], ports: [{ protocol: "UDP", port: 123 }] },
      ],
    });
    // Exposed: from anywhere, on its port only.
    assert.deepStrictEqual(policyOf(edge, [], [b]).spec?.ingress, [{ ports: [{ protocol: "TCP", port: 8080 }] }]);
    assert.match(String(policyOf(edge, [], [b]).metadata?.name), /^edge-[0-9a-f]{8}$/);
  });

  it("names a service's policy after what it allows: a changed graph is a new policy, an unchanged one keeps its name", () => {
    const cfg = parse({
      services: {
        a: { image: "c:1", calls: ["b"] },
        b: { image: "c:1", calls: ["c"] },
        c: { image: "c:1" },
        d: { image: "c:1" },
      },
    });
    const [a, b, c, d] = ["a", "b", "c", "d"].map((n) => cfg.services.find((x) => x.name === n)!);
    const name = (svc: typeof a, callers: (typeof a)[], callees: (typeof a)[]) =>
      networkPolicySpec(svc, callers, callees, where).metadata.name;
    // b's calls move from c to d: b's and c's names change (the old objects are deleted after
    // the rollouts, the new ones created before), a's does not (an update in place, if any).
    assert.notStrictEqual(name(b, [a], [c]), name(b, [a], [d]));
    assert.notStrictEqual(name(c, [b], []), name(c, [], []));
    assert.strictEqual(name(a, [], [b]), name(a, [], [b]));
    assert.strictEqual(name(b, [a], [c]), networkPolicySpec(b, [a], [c], { namespace: "other" }).metadata.name);
    // Labels are not part of what a policy allows: a new label keeps the name.
    const labelled = { ...b, labels: { "example.com/tier": "mid" } };
    assert.strictEqual(name(labelled, [a], [c]), name(b, [a], [c]));
  });

  it("makes a PodDisruptionBudget only for two or more replicas", () => {
    const cfg = parse({ services: { one: { image: "c:1", replicas: 1 }, two: { image: "c:1", replicas: 2 } } });
    assert.strictEqual(podDisruptionBudgetSpec(cfg.services[0], where), undefined);
    assert.deepStrictEqual(
      plain<IPodDisruptionBudget>(podDisruptionBudgetSpec(cfg.services[1], where)).spec?.maxUnavailable,
      1,
    );
  });

  it("gives in-cluster URLs with namespace and cluster domain", () => {
    assert.strictEqual(
      serviceUrl({ name: "service-b", servicePort: 80 }, { namespace: "default", clusterDomain: "k8s.example" }),
      "http://service-b.default.svc.k8s.example:80",
    );
  });

  it("produces objects that validate against the Kubernetes schema", () => {
    const cfg = parse({
      services: {
        ...seedServices(),
        lb: {
          image: "nginx:1.27.3",
          expose: "LoadBalancer",
          replicas: 1,
          labels: { "example.com/tier": "edge" },
          egress: [{ cidr: "203.0.113.0/24", port: 443 }],
        },
      },
    });
    const by = new Map(cfg.services.map((s) => [s.name, s]));
    for (const svc of cfg.services) {
      const named = <T extends { metadata?: ObjectMeta }>(o: T): T => ({
        ...o,
        metadata: { ...o.metadata, name: o.metadata?.name ?? `${svc.name}-x` },
      });
      new Deployment(named(plain<IDeployment>(deploymentSpec(planOf(cfg, svc.name), where, PINNED)))).validate();
      new Service(plain<IService>(serviceSpec(svc, where))).validate();
      const pdb = podDisruptionBudgetSpec(svc, where);
      if (pdb) {
        new PodDisruptionBudget(named(plain<IPodDisruptionBudget>(pdb))).validate();
      }
      const callers = cfg.services.filter((s) => s.calls.includes(svc.name));
      new NetworkPolicy(
        plain<INetworkPolicy>(
          networkPolicySpec(
            svc,
            callers,
            svc.calls.map((c) => by.get(c)!),
            where,
          ),
        ),
      ).validate();
    }
    for (const pinned of planChain(cfg, "/project").pinnedPorts) {
      new Service(plain<IService>(nodePortServiceSpec(pinned, where))).validate();
    }
    new NetworkPolicy(plain<INetworkPolicy>(defaultDenyPolicySpec(where))).validate();
    new Namespace(plain<INamespace>(namespaceSpec("chain"))).validate();
    // The check can fail: a wrong type is refused.
    const good = named(plain<IDeployment>(deploymentSpec(planOf(cfg, cfg.services[0].name), where, PINNED)));
    // A replica count as a string: not an IDeployment (that is the point), so only a cast types it.
    const bad = { ...good, spec: { ...good.spec, replicas: "2" } } as unknown as IDeployment;
    assert.throws(() => new Deployment(bad).validate(), /replicas must be integer/);
    function named<T extends { metadata?: ObjectMeta }>(o: T): T {
      return { ...o, metadata: { ...o.metadata, name: "x" } };
    }
  });
});

describe("plan of the chain", () => {
  it("plans each service once, in creation order: callees, callers, URL, env, image source, picked or pinned node port", () => {
    const cfg = parse({
      namespace: "chain",
      services: {
        edge: { app: "apps/chain-service", calls: ["mid", "db"], expose: "NodePort" },
        mid: { app: "./apps/chain-service/", calls: ["db"], expose: "NodePort", nodePort: 30080 },
        db: { image: PINNED, servicePort: 5432 },
      },
    });
    const plan = planChain(cfg, "/project");
    assert.deepStrictEqual(
      plan.services.map((p) => p.service.name),
      ["db", "mid", "edge"],
    );
    const [db, mid, edge] = plan.services;
    assert.deepStrictEqual(
      edge.callees.map((c) => c.name),
      ["mid", "db"],
    );
    assert.deepStrictEqual(
      db.callers.map((c) => c.name),
      ["edge", "mid"],
    );
    assert.strictEqual(db.url, "http://db.chain.svc.cluster.local:5432");
    assert.deepStrictEqual(edge.env, containerEnv(cfg.services[0], [cfg.services[1], cfg.services[2]], plan.placement));
    assert.deepStrictEqual(db.image, { kind: "image", image: PINNED });
    // `apps/chain-service` and `./apps/chain-service/` are one Dockerfile: one build, shared.
    assert.strictEqual(edge.image, mid.image);
    assert.deepStrictEqual(plan.builds, [
      {
        kind: "app",
        app: "./apps/chain-service/",
        context: "/project/apps",
        dockerfile: "/project/apps/chain-service/Dockerfile",
        name: "chain-service",
      },
    ]);
    assert.deepStrictEqual(
      plan.services.map((p) => p.pickedNodePort),
      [false, false, true],
    );
    assert.deepStrictEqual(
      plan.pinnedPorts.map((p) => [p.port, p.service.name]),
      [[30080, "mid"]],
    );
    assert.deepStrictEqual(
      [plan.ownNamespace, plan.networkPolicies, plan.placement],
      ["chain", true, { namespace: "chain", clusterDomain: "cluster.local", rolloutTimeoutSeconds: 120 }],
    );
    assert.strictEqual(planChain(parse({ services: { c: { image: PINNED } } }), "/project").ownNamespace, undefined);
  });

  it("names two app folders with the same last segment by creation order: the first created keeps the short name", () => {
    const cfg = parse(
      {
        services: {
          caller: { app: "apps/team-b/api", calls: ["callee"] },
          callee: { app: "apps/team-a/api" },
        },
      },
      ["apps/team-a/api", "apps/team-b/api"],
    );
    const plan = planChain(cfg, "/project");
    assert.deepStrictEqual(
      plan.builds.map((b) => [b.app, b.name]),
      [
        ["apps/team-b/api", "apps-team-b-api"],
        ["apps/team-a/api", "api"],
      ],
    );
  });
});
