// Who may talk to whom under a set of NetworkPolicies: a pure evaluator, no Pulumi, no cluster.
//
// It applies the semantics of `networking.k8s.io/v1` NetworkPolicy to a list of endpoints
// (pods, with their namespace and labels, and addresses outside the pods), so a test can ask
// of the policies the stack generates exactly which connections they allow, and compare that
// with the call graph. What it models:
// - a pod is isolated for ingress (egress) when a policy of its namespace selects it with that
//   policy type; an isolated pod accepts (sends) only what some rule of a selecting policy allows;
//   a connection needs both the source's egress and the destination's ingress;
// - peers: `podSelector` (matchLabels and matchExpressions) in the policy's namespace,
//   `namespaceSelector` against the namespace's `kubernetes.io/metadata.name` label, `ipBlock`
//   (with `except`) against an endpoint's address; ports by number, name and `endPort`.
// What it does not: pods are matched by labels, not by address (an `ipBlock` never matches a
// pod here; on a real cluster whether it does is up to the network plugin), and traffic from
// the node itself (the kubelet's probes) is out of scope, as most network plugins allow it.

/** A pod (with `namespace` and `labels`) or an address outside the pods (with `ip`). */
export interface Endpoint {
  name: string;
  namespace?: string;
  labels?: Readonly<Record<string, string>>;
  ip?: string;
  /** What it listens on (a destination); a source needs none. */
  ports: ReadonlyArray<{ port: number; protocol: string; name?: string }>;
}

type Selector = {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
};
type PolicyPort = { protocol?: string; port?: number | string; endPort?: number };
type Peer = { podSelector?: Selector; namespaceSelector?: Selector; ipBlock?: { cidr: string; except?: string[] } };
type Rule = { ports?: PolicyPort[]; from?: Peer[]; to?: Peer[] };
/** The parts of a NetworkPolicy the evaluator reads (the stack's specs are of this shape). */
export interface Policy {
  metadata?: { name?: string; namespace?: string };
  spec?: { podSelector?: Selector; policyTypes?: string[]; ingress?: Rule[]; egress?: Rule[] };
}

/** Whether a label selector matches labels (an empty selector matches everything). */
export function selectorMatches(sel: Selector | undefined, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(sel?.matchLabels ?? {})) {
    if (labels[k] !== v) {
      return false;
    }
  }
  for (const e of sel?.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const ok =
      e.operator === "In"
        ? has && (e.values ?? []).includes(labels[e.key])
        : e.operator === "NotIn"
          ? !has || !(e.values ?? []).includes(labels[e.key])
          : e.operator === "Exists"
            ? has
            : e.operator === "DoesNotExist"
              ? !has
              : (() => {
                  throw new Error(`unknown selector operator ${e.operator}`);
                })();
    if (!ok) {
      return false;
    }
  }
  return true;
}

/** An IPv4 or IPv6 address as a number, with its width in bits. */
function parseIp(ip: string): { value: bigint; bits: number } {
  if (ip.includes(".") && !ip.includes(":")) {
    const parts = ip.split(".").map(Number);
    return { value: parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n), bits: 32 };
  }
  const [head, tail] = ip.includes("::") ? ip.split("::") : [ip, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return { value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n), bits: 128 };
}

/** Whether `ip` is inside `cidr` (`a.b.c.d/n` or IPv6). */
export function cidrContains(cidr: string, ip: string): boolean {
  const [base, len] = cidr.split("/");
  const b = parseIp(base);
  const a = parseIp(ip);
  if (a.bits !== b.bits) {
    return false;
  }
  const shift = BigInt(b.bits - Number(len));
  return a.value >> shift === b.value >> shift;
}

function peerMatches(peer: Peer, policyNamespace: string | undefined, other: Endpoint): boolean {
  if (peer.ipBlock) {
    const ip = other.ip;
    return (
      ip !== undefined &&
      cidrContains(peer.ipBlock.cidr, ip) &&
      !(peer.ipBlock.except ?? []).some((c) => cidrContains(c, ip))
    );
  }
  if (other.namespace === undefined) {
    return false;
  }
  const nsOk = peer.namespaceSelector
    ? selectorMatches(peer.namespaceSelector, { "kubernetes.io/metadata.name": other.namespace })
    : other.namespace === policyNamespace;
  return nsOk && selectorMatches(peer.podSelector, other.labels ?? {});
}

function portMatches(
  ports: PolicyPort[] | undefined,
  dst: Endpoint,
  port: { port: number; protocol: string; name?: string },
): boolean {
  if (ports === undefined || ports.length === 0) {
    return true;
  }
  return ports.some((p) => {
    if ((p.protocol ?? "TCP") !== port.protocol) {
      return false;
    }
    if (p.port === undefined) {
      return true;
    }
    if (typeof p.port === "string") {
      return port.name === p.port && dst.namespace !== undefined;
    }
    return p.endPort !== undefined ? port.port >= p.port && port.port <= p.endPort : port.port === p.port;
  });
}

function policyTypes(p: Policy): string[] {
  return p.spec?.policyTypes ?? ["Ingress", ...(p.spec?.egress !== undefined ? ["Egress"] : [])];
}

/** Whether `self`'s policies let it take part in the connection, as destination (ingress) or source (egress). */
function side(
  policies: ReadonlyArray<Policy>,
  self: Endpoint,
  other: Endpoint,
  dst: Endpoint,
  port: { port: number; protocol: string; name?: string },
  dir: "Ingress" | "Egress",
): boolean {
  if (self.namespace === undefined) {
    return true; // no policy applies to an address outside the pods
  }
  const selecting = policies.filter(
    (p) =>
      p.metadata?.namespace === self.namespace &&
      policyTypes(p).includes(dir) &&
      selectorMatches(p.spec?.podSelector, self.labels ?? {}),
  );
  if (selecting.length === 0) {
    return true;
  }
  return selecting.some(
    (p) =>
      (dir === "Ingress" ? p.spec?.ingress : p.spec?.egress)?.some((rule) => {
        const peers = dir === "Ingress" ? rule.from : rule.to;
        return (
          portMatches(rule.ports, dst, port) &&
          (peers === undefined ||
            peers.length === 0 ||
            peers.some((peer) => peerMatches(peer, p.metadata?.namespace, other)))
        );
      }) ?? false,
  );
}

/**
 * Every connection the policies allow between the endpoints, as sorted lines
 * `<source> -> <destination>:<port>/<protocol>`, one per port the destination listens on
 * (an endpoint never to itself). Without any policy, everything is allowed.
 */
export function allowedConnections(policies: ReadonlyArray<Policy>, endpoints: ReadonlyArray<Endpoint>): string[] {
  const lines: string[] = [];
  for (const src of endpoints) {
    for (const dst of endpoints) {
      if (src === dst) {
        continue;
      }
      for (const port of dst.ports) {
        if (side(policies, src, dst, dst, port, "Egress") && side(policies, dst, src, dst, port, "Ingress")) {
          lines.push(`${src.name} -> ${dst.name}:${port.port}/${port.protocol}`);
        }
      }
    }
  }
  return lines.sort();
}
