// Who may talk to whom, computed from the generated NetworkPolicies alone, against the call graph.
import * as assert from "assert";
import { ServiceConfig, StackConfig } from "../components/catalog";
import { allowedConnections, cidrContains, Endpoint, Policy, selectorMatches } from "../components/reachability";
import { defaultDenyPolicySpec, deploymentSpec, networkPolicySpec } from "../components/specs";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PINNED, parse, RawServices, seedServices } from "./support/catalogs";
import { plain } from "./support/objects";

const where = { namespace: "chain", clusterDomain: "cluster.local", rolloutTimeoutSeconds: 120 };

/** The policies the stack registers for a catalog (chain.ts and micro-service.ts, without Pulumi). */
function policiesOf(cfg: StackConfig): Policy[] {
  const by = new Map(cfg.services.map((s) => [s.name, s]));
  return [
    defaultDenyPolicySpec(where) as Policy,
    ...cfg.services.map(
      (s) =>
        networkPolicySpec(
          s,
          cfg.services.filter((c) => c.calls.includes(s.name)),
          s.calls.map((c) => by.get(c)!),
          where,
        ) as Policy,
    ),
  ];
}

/** One address inside a CIDR (its base address). */
const inside = (cidr: string) => cidr.split("/")[0];

/**
 * The endpoints: one pod per service, labelled as its Deployment's pod template; a pod of
 * something else in the same namespace; a client outside the cluster; the cluster DNS on a
 * node address (as in the cluster suite, where CoreDNS is a host process); a server on the
 * internet; and a server inside each `egress` block.
 */
function endpointsOf(cfg: StackConfig): Endpoint[] {
  const pods: Endpoint[] = cfg.services.map((s) => ({
    name: s.name,
    namespace: where.namespace,
    labels: plain<IDeployment>(deploymentSpec({ service: s, env: [] }, where, PINNED)).spec?.template.metadata?.labels,
    ports: [{ port: s.port, protocol: "TCP", name: "http" }],
  }));
  const extra: Endpoint[] = cfg.services.flatMap((s) =>
    s.egress.map((r) => ({
      name: `${r.cidr}`,
      ip: inside(r.cidr),
      ports: [{ port: r.port, protocol: r.protocol }],
    })),
  );
  return [
    ...pods,
    {
      name: "foreign-pod",
      namespace: where.namespace,
      labels: { app: "other" },
      ports: [{ port: 8080, protocol: "TCP" }],
    },
    { name: "outside", ip: "198.51.100.7", ports: [] },
    {
      name: "dns",
      ip: "10.200.0.10",
      ports: [
        { port: 53, protocol: "UDP" },
        { port: 53, protocol: "TCP" },
      ],
    },
    {
      name: "internet",
      ip: "192.0.2.80",
      ports: [
        { port: 443, protocol: "TCP" },
        { port: 8080, protocol: "TCP" },
      ],
    },
    ...extra.filter((e, i) => extra.findIndex((x) => x.name === e.name) === i),
  ];
}

/**
 * What the call graph says, for the connections that involve at least one of the stack's pods:
 * each caller to each callee's port; every service to DNS; every `egress` entry; and into an
 * exposed service from every endpoint that is not one of the stack's pods (their sources are
 * not restricted: a client outside, another pod, any address).
 */
function expectedFromCalls(cfg: StackConfig): string[] {
  const by = new Map(cfg.services.map((s) => [s.name, s]));
  const others = endpointsOf(cfg)
    .map((e) => e.name)
    .filter((n) => !by.has(n));
  const lines: string[] = [];
  for (const s of cfg.services) {
    for (const c of s.calls) {
      lines.push(`${s.name} -> ${c}:${by.get(c)!.port}/TCP`);
    }
    lines.push(`${s.name} -> dns:53/TCP`, `${s.name} -> dns:53/UDP`);
    for (const r of s.egress) {
      lines.push(`${s.name} -> ${r.cidr}:${r.port}/${r.protocol}`);
    }
    if (s.expose !== "ClusterIP") {
      lines.push(...others.map((o) => `${o} -> ${s.name}:${s.port}/TCP`));
    }
  }
  return [...new Set(lines)].sort();
}

/** The allowed connections that involve a pod of the stack. */
function matrix(cfg: StackConfig, policies = policiesOf(cfg)): string[] {
  const ours = new Set(cfg.services.map((s) => s.name));
  return allowedConnections(policies, endpointsOf(cfg)).filter((line) => {
    const [src, rest] = line.split(" -> ");
    return ours.has(src) || ours.has(rest.replace(/:[^:]*$/, ""));
  });
}

/** A deterministic pseudo-random generator (mulberry32), so a failing graph can be reproduced by its seed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A layered call graph of `n` services (each calls up to 3 of the later ones), some exposed, some with extra egress. */
function generatedCatalog(seed: number, n: number): StackConfig {
  const rnd = random(seed);
  const names = Array.from({ length: n }, (_, i) => `svc-${i}`);
  const services: RawServices = {};
  names.forEach((name, i) => {
    const later = names.slice(i + 1);
    const calls = later.filter(() => rnd() < Math.min(1, 3 / Math.max(later.length, 1)));
    const expose = rnd() < 0.2 ? (rnd() < 0.5 ? "NodePort" : "LoadBalancer") : "ClusterIP";
    services[name] = {
      image: PINNED,
      calls,
      expose,
      port: [8080, 9090, 3000][Math.floor(rnd() * 3)],
      ...(rnd() < 0.25 ? { egress: [{ cidr: `203.0.${Math.floor(rnd() * 255)}.0/24`, port: 443 }] } : {}),
      ...(rnd() < 0.1 ? { egress: [{ cidr: "2001:db8::/32", port: 123, protocol: "UDP" }] } : {}),
    };
  });
  return parse({ namespace: "chain", services });
}

describe("network: who may talk to whom, from the generated policies alone", () => {
  it("the dev catalog: exactly its call graph, DNS, and the exposed services from outside", () => {
    const cfg = parse({ namespace: "chain", services: seedServices() });
    assert.deepStrictEqual(matrix(cfg), [
      "dns -> sample-app:8080/TCP",
      "dns -> service-a:8080/TCP",
      "foreign-pod -> sample-app:8080/TCP",
      "foreign-pod -> service-a:8080/TCP",
      "internet -> sample-app:8080/TCP",
      "internet -> service-a:8080/TCP",
      "outside -> sample-app:8080/TCP",
      "outside -> service-a:8080/TCP",
      "sample-app -> dns:53/TCP",
      "sample-app -> dns:53/UDP",
      "service-a -> dns:53/TCP",
      "service-a -> dns:53/UDP",
      "service-a -> service-b:8080/TCP",
      "service-b -> dns:53/TCP",
      "service-b -> dns:53/UDP",
      "service-b -> service-c:8080/TCP",
      "service-c -> dns:53/TCP",
      "service-c -> dns:53/UDP",
    ]);
    assert.deepStrictEqual(matrix(cfg), expectedFromCalls(cfg));
  });

  it("generated graphs: the matrix equals the call graph (plus DNS, `egress` and exposure)", () => {
    for (let seed = 1; seed <= 25; seed++) {
      const cfg = generatedCatalog(seed, 6 + (seed % 10));
      assert.deepStrictEqual(matrix(cfg), expectedFromCalls(cfg), `seed ${seed}`);
    }
  });

  it("each rule matters: dropping callers' ingress, callees' egress, DNS or `egress` changes the matrix", () => {
    const cfg = parse({
      namespace: "chain",
      services: { ...seedServices(), "service-c": { image: PINNED, egress: [{ cidr: "203.0.113.0/24", port: 443 }] } },
    });
    const expected = expectedFromCalls(cfg);
    assert.deepStrictEqual(matrix(cfg), expected);
    const without = (edit: (spec: NonNullable<Policy["spec"]>) => void) =>
      matrix(
        cfg,
        policiesOf(cfg).map((p) => {
          const copy = structuredClone(p);
          if (copy.metadata?.name !== "k8s-chain-default-deny" && copy.spec !== undefined) {
            edit(copy.spec);
          }
          return copy;
        }),
      );
    const missing = (got: string[]) => expected.filter((l) => !got.includes(l));
    assert.deepStrictEqual(
      missing(
        without((s) => {
          s.ingress = s.ingress?.filter((r) => r.from === undefined);
        }),
      ),
      ["service-a -> service-b:8080/TCP", "service-b -> service-c:8080/TCP"],
    );
    assert.deepStrictEqual(
      missing(
        without((s) => {
          s.egress = s.egress?.filter((r) => !r.to?.[0]?.podSelector);
        }),
      ),
      ["service-a -> service-b:8080/TCP", "service-b -> service-c:8080/TCP"],
    );
    assert.deepStrictEqual(
      missing(
        without((s) => {
          s.egress = s.egress?.filter((r) => r.to !== undefined);
        }),
      ).filter((l) => l.includes("dns")).length,
      8,
    );
    assert.deepStrictEqual(
      missing(
        without((s) => {
          s.egress = s.egress?.filter((r) => !r.to?.[0]?.ipBlock);
        }),
      ),
      ["service-c -> 203.0.113.0/24:443/TCP"],
    );
    assert.deepStrictEqual(
      missing(
        without((s) => {
          s.ingress = s.ingress?.filter((r) => r.from !== undefined);
        }),
      ).length,
      2 * 5,
      "2 exposed services x 5 sources outside the stack",
    );
  });

  it("the default deny alone isolates every pod of the stack and no other", () => {
    const cfg = parse({ namespace: "chain", services: seedServices() });
    const endpoints = endpointsOf(cfg);
    const ours = new Set(cfg.services.map((s) => s.name));
    const allowed = allowedConnections([defaultDenyPolicySpec(where) as Policy], endpoints);
    assert.deepStrictEqual(
      allowed.filter((l) => [...ours].some((n) => l.startsWith(`${n} `) || l.includes(`-> ${n}:`))),
      [],
    );
    assert.ok(allowed.includes("foreign-pod -> dns:53/UDP"), "a pod the stack does not own is not isolated");
    // Without any policy (`networkPolicies: false`), everyone reaches everyone.
    assert.ok(allowedConnections([], endpoints).includes("service-c -> service-a:8080/TCP"));
  });

  it("the evaluator: selectors, CIDRs, named ports and policy types", () => {
    assert.ok(
      selectorMatches(
        { matchLabels: { a: "1" }, matchExpressions: [{ key: "b", operator: "In", values: ["x"] }] },
        { a: "1", b: "x" },
      ),
    );
    assert.ok(!selectorMatches({ matchExpressions: [{ key: "b", operator: "NotIn", values: ["x"] }] }, { b: "x" }));
    assert.ok(selectorMatches({ matchExpressions: [{ key: "b", operator: "DoesNotExist" }] }, {}));
    assert.ok(selectorMatches(undefined, { any: "thing" }));
    assert.ok(cidrContains("10.0.0.0/8", "10.200.0.10"));
    assert.ok(!cidrContains("10.0.0.0/16", "10.200.0.10"));
    assert.ok(cidrContains("2001:db8::/32", "2001:db8:0:1::5"));
    assert.ok(!cidrContains("2001:db8::/32", "10.0.0.1"));
    const a: Endpoint = { name: "a", namespace: "n", labels: { r: "a" }, ports: [] };
    const b: Endpoint = {
      name: "b",
      namespace: "n",
      labels: { r: "b" },
      ports: [
        { port: 8080, protocol: "TCP", name: "http" },
        { port: 9000, protocol: "TCP" },
      ],
    };
    const ingressOnly: Policy = {
      metadata: { namespace: "n" },
      spec: {
        podSelector: { matchLabels: { r: "b" } },
        ingress: [{ from: [{ podSelector: { matchLabels: { r: "a" } } }], ports: [{ port: "http" }] }],
      },
    };
    assert.deepStrictEqual(
      allowedConnections([ingressOnly], [a, b]),
      ["a -> b:8080/TCP"],
      "a named port; no Egress type: egress open",
    );
    const otherNs: Policy = { ...ingressOnly, metadata: { namespace: "m" } };
    assert.deepStrictEqual(
      allowedConnections([otherNs], [a, b]),
      ["a -> b:8080/TCP", "a -> b:9000/TCP"],
      "a policy of another namespace selects nothing here",
    );
    const ipOnly: Policy = {
      metadata: { namespace: "n" },
      spec: {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["10.0.0.0/8"] } }] }],
      },
    };
    const ext: Endpoint = { name: "x", ip: "10.1.2.3", ports: [{ port: 1, protocol: "TCP" }] };
    const web: Endpoint = { name: "w", ip: "192.0.2.1", ports: [{ port: 1, protocol: "TCP" }] };
    assert.deepStrictEqual(
      allowedConnections([ipOnly], [a, ext, web]).filter((l) => l.startsWith("a ")),
      ["a -> w:1/TCP"],
    );
  });

  it("services that nobody calls and that are not exposed accept nothing; a LoadBalancer accepts anyone", () => {
    const cfg = parse({
      namespace: "chain",
      services: { lone: { image: PINNED }, lb: { image: PINNED, expose: "LoadBalancer", port: 3000 } },
    });
    assert.deepStrictEqual(matrix(cfg), [
      "dns -> lb:3000/TCP",
      "foreign-pod -> lb:3000/TCP",
      "internet -> lb:3000/TCP",
      "lb -> dns:53/TCP",
      "lb -> dns:53/UDP",
      "lone -> dns:53/TCP",
      "lone -> dns:53/UDP",
      "outside -> lb:3000/TCP",
    ]);
    const lone = cfg.services.find((s) => s.name === "lone") as ServiceConfig;
    assert.deepStrictEqual(plain<INetworkPolicy>(networkPolicySpec(lone, [], [], where)).spec?.ingress, []);
  });
});
