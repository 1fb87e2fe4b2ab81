import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import {
  APP_DEADLINE_MARGIN_MS,
  APP_DOWNSTREAM_TIMEOUT_DEFAULT_MS,
  APP_SHUTDOWN_TIMEOUT_DEFAULT_MS,
} from "../components/app-contract";
import { hostPlatform, parseStackConfig, ROLLOUT_TIMEOUT_SECONDS } from "../components/catalog";
import { urlEnvName } from "../components/catalog-rules";
import { imagePinProblem } from "../components/image-ref";
import { ConfigError } from "../components/problems";
import { nodePortServiceName } from "../components/specs";
import { DEADLINE_MARGIN_MS } from "../apps/shared/src/app";
import { loadConfig } from "../apps/shared/src/config";
import { PINNED, parse, problemsOf, seedServices } from "./support/catalogs";

describe("catalog: defaults", () => {
  it("resolves every default of the spec", () => {
    const cfg = parse({ services: { "service-c": { app: "apps/service-c" } } });
    assert.deepStrictEqual(cfg, {
      namespace: "default",
      registry: undefined,
      imageTag: undefined,
      // The platform defaults to the machine running the program's (hostPlatform).
      build: { args: {}, network: undefined, platform: hostPlatform() },
      clusterDomain: "cluster.local",
      renderDir: undefined,
      rolloutTimeoutSeconds: 120,
      networkPolicies: true,
      services: [
        {
          name: "service-c",
          source: { kind: "app", app: "apps/service-c" },
          replicas: 2,
          port: 8080,
          servicePort: 80,
          expose: "ClusterIP",
          nodePort: undefined,
          calls: [],
          env: {},
          labels: {},
          egress: [],
          healthPath: "/health",
          livenessPath: "/livez",
        },
      ],
    });
  });

  it("keeps an explicit value even when it is falsy-looking (empty env, one replica)", () => {
    const cfg = parse({ services: { c: { image: "nginx:1.27.3", replicas: 1, env: {}, calls: [] } } });
    assert.strictEqual(cfg.services[0].replicas, 1);
    assert.deepStrictEqual(cfg.services[0].env, {});
  });

  it("treats an empty string as unset for the flat keys", () => {
    const cfg = parse({
      namespace: "",
      registry: "",
      rolloutTimeoutSeconds: "",
      services: { c: { image: "nginx:1.27.3" } },
    });
    assert.strictEqual(cfg.namespace, "default");
    assert.strictEqual(cfg.registry, undefined);
    assert.strictEqual(cfg.rolloutTimeoutSeconds, 120);
  });

  it("reads `rolloutTimeoutSeconds` as Pulumi hands it over (a string of digits) or as a number, bounds included", () => {
    const timeout = (v: unknown) =>
      parse({ rolloutTimeoutSeconds: v, services: { c: { image: "nginx:1.27.3" } } }).rolloutTimeoutSeconds;
    assert.deepStrictEqual(["300", 300, "10", 3600].map(timeout), [300, 300, 10, 3600]);
  });

  it("Pulumi.yaml declares every flat key, each with a default that the parser reads as its own default", () => {
    const project = YAML.parse(fs.readFileSync(path.join(__dirname, "..", "Pulumi.yaml"), "utf8"));
    const declared = Object.fromEntries(
      Object.entries(project.config as Record<string, { type: string; default: unknown }>).map(([key, decl]) => [
        key,
        [decl.type, decl.default],
      ]),
    );
    // A declared key without a default is one Pulumi requires: the keys that mean something
    // when unset default to "", which the parser reads as unset.
    assert.deepStrictEqual(declared, {
      namespace: ["string", "default"],
      registry: ["string", ""],
      imageTag: ["string", ""],
      buildNetwork: ["string", ""],
      buildPlatform: ["string", ""],
      clusterDomain: ["string", "cluster.local"],
      renderDir: ["string", ""],
      rolloutTimeoutSeconds: ["integer", ROLLOUT_TIMEOUT_SECONDS.default],
      servicesFile: ["string", ""],
      networkPolicies: ["boolean", true],
    });
    const defaults = Object.fromEntries(Object.entries(declared).map(([key, [, value]]) => [key, value]));
    assert.deepStrictEqual(parse({ ...defaults, services: seedServices() }), parse({ services: seedServices() }));
  });

  it("accepts the seed's system", () => {
    const cfg = parse({ namespace: "chain", registry: "localhost:5001", imageTag: "abc123", services: seedServices() });
    assert.deepStrictEqual(
      cfg.services.map((s) => s.name),
      ["sample-app", "service-a", "service-b", "service-c"],
    );
    assert.strictEqual(cfg.registry, "localhost:5001");
  });
});

describe("catalog: validation messages", () => {
  const one = (services: Record<string, unknown>, apps?: string[]) => problemsOf({ services }, apps);

  it("unknown callee, naming the known services", () => {
    const s = seedServices();
    s["service-a"].calls = ["service-x"];
    assert.deepStrictEqual(one(s), [
      'services.service-a.calls: unknown service "service-x" (known: sample-app, service-b, service-c)',
    ]);
  });

  it("a service calling itself", () => {
    assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", calls: ["a"] } }), [
      'services.a.calls[0]: a service cannot call itself; remove "a"',
    ]);
  });

  it("a cycle, with its path", () => {
    const s = seedServices();
    s["service-c"].calls = ["service-a"];
    assert.deepStrictEqual(one(s), [
      "services.service-a.calls: call cycle service-a -> service-b -> service-c -> service-a; the chain must end, so remove one of these calls",
    ]);
  });

  it("both `app` and `image`", () => {
    assert.deepStrictEqual(one({ a: { app: "apps/service-a", image: "nginx:1.27.3" } }), [
      'services.a: only one of `app` or `image` can be set (app "apps/service-a", image "nginx:1.27.3"); keep `app` to build from source or `image` to run a prebuilt image',
    ]);
  });

  it("neither `app` nor `image`", () => {
    assert.deepStrictEqual(one({ a: { replicas: 1 } }), [
      'services.a: one of `app` or `image` is required; set `app` to a folder with a Dockerfile (e.g. "apps/a") or `image` to a pinned image',
    ]);
  });

  it("an image tagged latest", () => {
    assert.deepStrictEqual(one({ a: { image: "nginx:latest" } }), [
      'services.a.image: "nginx:latest" is tagged "latest", which is not pinned; use an explicit version tag or an @sha256: digest',
    ]);
  });

  it("an untagged image (a registry port is not a tag)", () => {
    assert.deepStrictEqual(one({ a: { image: "localhost:5001/nginx" } }), [
      'services.a.image: "localhost:5001/nginx" has no tag, so it means "latest" and is not pinned; add an explicit tag or an @sha256: digest',
    ]);
  });

  it("a missing app folder", () => {
    assert.deepStrictEqual(one({ a: { app: "apps/nope" } }), [
      'services.a.app: "apps/nope" is not a folder under /project; give the app\'s folder relative to the project root',
    ]);
  });

  it("an app folder without a Dockerfile", () => {
    assert.deepStrictEqual(problemsOf({ services: { a: { app: "apps/a" } } }, []).length, 1);
    const fs = { projectRoot: "/project", stat: (p: string) => (p === "/project/apps/a" ? "dir" : undefined) };
    assert.throws(
      () => parseStackConfig({ services: { a: { app: "apps/a" } } }, fs),
      (e: ConfigError) => {
        assert.deepStrictEqual(e.problems, ['services.a.app: "apps/a" has no Dockerfile; add apps/a/Dockerfile']);
        return true;
      },
    );
  });

  it("a bad name", () => {
    assert.deepStrictEqual(one({ Service_A: { image: "nginx:1.27.3" } }), [
      'services.Service_A: "Service_A" is not a valid service name; use a DNS-1035 label: lower-case letters, digits and `-`, starting with a letter, ending alphanumeric, at most 63 characters',
    ]);
    assert.strictEqual(one({ ["a".repeat(64)]: { image: "nginx:1.27.3" } }).length, 1);
    assert.strictEqual(parse({ services: { ["a".repeat(63)]: { image: "nginx:1.27.3" } } }).services.length, 1);
  });

  it("a name the stack gives the Service holding a pinned node port", () => {
    assert.deepStrictEqual(one({ [nodePortServiceName(30080)]: { image: "nginx:1.27.3" } }), [
      'services.node-port-30080: "node-port-30080" is reserved: the stack names the Service holding a pinned node port `node-port-<port>`; rename the service',
    ]);
    assert.strictEqual(
      parse({ services: { "node-port": { image: "nginx:1.27.3" }, "node-port-a": { image: "nginx:1.27.3" } } }).services
        .length,
      2,
    );
  });

  it("replicas below 1, and not an integer", () => {
    assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", replicas: 0 } }), [
      "services.a.replicas: 0 is not a valid replica count; use an integer from 1 to 2147483647",
    ]);
    assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", replicas: 1.5 } }), [
      "services.a.replicas: 1.5 is not a valid replica count; use an integer from 1 to 2147483647",
    ]);
  });

  it("ports out of range", () => {
    assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", port: 0, servicePort: 65536 } }), [
      "services.a.port: 0 is not a valid port; use an integer from 1 to 65535",
      "services.a.servicePort: 65536 is not a valid port; use an integer from 1 to 65535",
    ]);
    assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", port: "8080" } }), [
      'services.a.port: "8080" is not a valid port; use an integer from 1 to 65535',
    ]);
  });

  it("nodePort out of 30000-32767", () => {
    assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", expose: "NodePort", nodePort: 8080 } }), [
      "services.a.nodePort: 8080 is not in the NodePort range; use an integer from 30000 to 32767",
    ]);
    assert.strictEqual(
      parse({ services: { a: { image: "nginx:1.27.3", expose: "NodePort", nodePort: 32767 } } }).services[0].nodePort,
      32767,
    );
  });

  it("nodePort without NodePort", () => {
    assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", nodePort: 30080 } }), [
      'services.a.nodePort: 30080 is set but `expose` is "ClusterIP"; set `expose: NodePort` or remove `nodePort`',
    ]);
  });

  it("nodePort used twice", () => {
    const s = seedServices();
    s["service-a"].nodePort = 30080;
    assert.deepStrictEqual(one(s), [
      "services.service-a.nodePort: 30080 is already used by sample-app; node ports are cluster-wide, pick another in 30000-32767",
    ]);
  });

  it("an unknown Service type and an unknown field", () => {
    assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", expose: "Nodeport", replica: 3 } }), [
      'services.a.expose: "Nodeport" is not a Service type; use one of ClusterIP, NodePort, LoadBalancer',
      "services.a.replica: unknown field; valid fields are app, image, replicas, port, servicePort, expose, nodePort, calls, env, labels, healthPath, livenessPath, egress",
    ]);
  });

  it('"/" as the health path of a service that calls others', () => {
    const s = seedServices();
    s["service-a"].healthPath = "/";
    assert.deepStrictEqual(one(s), [
      'services.service-a.healthPath: "/" is refused for a service with `calls` (its `/` calls service-b, so probes would follow the chain); use a route that touches no downstream, e.g. "/health"',
    ]);
    // A leaf may probe "/": it calls nothing.
    assert.strictEqual(
      parse({ services: { c: { image: "nginx:1.27.3", healthPath: "/" } } }).services[0].healthPath,
      "/",
    );
  });

  it("env that redefines the wiring, and env values that are not strings", () => {
    const s = seedServices();
    s["service-a"].env = { SERVICE_B_URL: "http://elsewhere", LOG_LEVEL: "debug" };
    assert.deepStrictEqual(one(s), [
      "services.service-a.env.SERVICE_B_URL: set by the stack from the catalog; remove it (change `port` or `calls` instead)",
    ]);
    s["service-a"].env = { RETRIES: 3 };
    assert.deepStrictEqual(one(s), ['services.service-a.env.RETRIES: 3 is not a string; quote it ("3")']);
    s["service-a"].env = { "1ST": "x" };
    assert.deepStrictEqual(one(s), [
      'services.service-a.env.1ST: "1ST" is not a valid key; env var names use letters, digits, `_`, `-` and `.`, and do not start with a digit',
    ]);
    s["service-a"].env = ["A=b"];
    assert.deepStrictEqual(one(s), ['services.service-a.env: ["A=b"] is not a map of env vars; use {"KEY": "value"}']);
  });

  it("one bad element of a list or map does not hide the problems of the others", () => {
    assert.deepStrictEqual(
      one({ a: { image: "nginx:1.27.3", calls: ["zzz", 5], env: { PORT: "1", X: 5 } }, b: { image: "nginx:1.27.3" } }),
      [
        "services.a.calls[1]: 5 is not a service name",
        'services.a.env.X: 5 is not a string; quote it ("5")',
        'services.a.calls: unknown service "zzz" (known: b)',
        "services.a.env.PORT: set by the stack from the catalog; remove it (change `port` or `calls` instead)",
      ],
    );
    assert.deepStrictEqual(
      one({
        a: {
          image: "nginx:1.27.3",
          egress: [
            { cidr: "10.0.0.0/40", port: 443 },
            { cidr: "10.0.0.0/8", port: 443, protocol: "SCTP" },
          ],
        },
      }),
      [
        'services.a.egress[0].cidr: "10.0.0.0/40" is not a CIDR; the prefix length 40 is not from 0 to 32; use an address block such as "203.0.113.0/24" or "2001:db8::/32" (a single host is "/32" or "/128")',
        'services.a.egress[1].protocol: "SCTP" is not a protocol; use TCP or UDP',
      ],
    );
  });

  it("labels with a bad key or value, or the stack's own `app`, all in one run", () => {
    assert.deepStrictEqual(
      one({ a: { image: "nginx:1.27.3", labels: { "tier!": "x", team: "-bad-", app: "other" } } }),
      [
        'services.a.labels.tier!: "tier!" is not a valid key; use a Kubernetes label key such as "tier" or "example.com/tier"',
        'services.a.labels.team: "-bad-" is not a valid value; label values are at most 63 letters, digits, `-`, `_` or `.`, starting and ending alphanumeric',
        "services.a.labels.app: set by the stack to the service name; remove it or use another key",
      ],
    );
    assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", labels: { app: "other" } } }), [
      "services.a.labels.app: set by the stack to the service name; remove it or use another key",
    ]);
  });

  it("flat keys with bad values", () => {
    assert.deepStrictEqual(
      problemsOf({
        namespace: "My NS",
        imageTag: "latest",
        registry: "https://ghcr.io/org/",
        services: { c: { image: "nginx:1.27.3" } },
      }),
      [
        'namespace: "My NS" is not valid; use a DNS-1123 label such as "k8s-chain" (lower-case letters, digits and `-`, at most 63)',
        'registry: "https://ghcr.io/org/" is not valid; use an image repository prefix such as "ghcr.io/org" or "localhost:5001" (no scheme, no trailing `/`, a lower-case path)',
        'imageTag: "latest" is not valid; use a Docker tag other than "latest": up to 128 letters, digits, `_`, `.` or `-`',
      ],
    );
  });

  it("`rolloutTimeoutSeconds` out of range or not an integer", () => {
    const bad = (v: unknown) => problemsOf({ rolloutTimeoutSeconds: v, services: { c: { image: "nginx:1.27.3" } } });
    assert.deepStrictEqual([5, "9", 3601, "-1", 12.5, "2m", "1e3", true].map(bad), [
      ["rolloutTimeoutSeconds: 5 is not a valid rollout timeout in seconds; use an integer from 10 to 3600"],
      ["rolloutTimeoutSeconds: 9 is not a valid rollout timeout in seconds; use an integer from 10 to 3600"],
      ["rolloutTimeoutSeconds: 3601 is not a valid rollout timeout in seconds; use an integer from 10 to 3600"],
      ["rolloutTimeoutSeconds: -1 is not a valid rollout timeout in seconds; use an integer from 10 to 3600"],
      ["rolloutTimeoutSeconds: 12.5 is not a valid rollout timeout in seconds; use an integer from 10 to 3600"],
      ['rolloutTimeoutSeconds: "2m" is not a valid rollout timeout in seconds; use an integer from 10 to 3600'],
      ['rolloutTimeoutSeconds: "1e3" is not a valid rollout timeout in seconds; use an integer from 10 to 3600'],
      ["rolloutTimeoutSeconds: true is not a valid rollout timeout in seconds; use an integer from 10 to 3600"],
    ]);
  });

  it("a config key that is not ours (a typo would otherwise be ignored)", () => {
    assert.deepStrictEqual(problemsOf({ namspace: "chain", services: { c: { image: "nginx:1.27.3" } } }), [
      "namspace: unknown config key `k8s-chain:namspace`; valid keys are namespace, registry, imageTag, buildArgs, buildNetwork, buildPlatform, clusterDomain, renderDir, rolloutTimeoutSeconds, networkPolicies, services, servicesFile",
    ]);
  });

  it("no services at all", () => {
    assert.deepStrictEqual(problemsOf({}), [
      "services: missing; add at least one service under `k8s-chain:services` (see Pulumi.dev.yaml)",
    ]);
    assert.deepStrictEqual(problemsOf({ services: {} }), [
      "services: empty; add at least one service under `k8s-chain:services`",
    ]);
  });

  it("lists every problem of a bad catalog in one error", () => {
    let message = "";
    try {
      parse(
        { services: { a: { image: "nginx", calls: ["b", "x"] }, b: { app: "apps/b", calls: ["a"], replicas: 0 } } },
        [],
      );
    } catch (e) {
      message = e instanceof Error ? e.message : String(e);
    }
    assert.strictEqual(
      message,
      [
        "k8s-chain config has 5 problems; nothing was created:",
        '  - services.a.image: "nginx" has no tag, so it means "latest" and is not pinned; add an explicit tag or an @sha256: digest',
        "  - services.b.replicas: 0 is not a valid replica count; use an integer from 1 to 2147483647",
        '  - services.b.app: "apps/b" is not a folder under /project; give the app\'s folder relative to the project root',
        '  - services.a.calls: unknown service "x" (known: b)',
        "  - services.a.calls: call cycle a -> b -> a; the chain must end, so remove one of these calls",
      ].join("\n"),
    );
  });
});

describe("catalog: as strict as the API server, the runtime and the apps", () => {
  const one = (services: Record<string, unknown>, apps?: string[]) => problemsOf({ services }, apps);
  const REF_HINT =
    'use [registry[:port]/]path[:tag][@sha256:digest] with a lower-case path (letters, digits, and `.`, `_`, `__` or `-` between them), e.g. "ghcr.io/org/app:1.2.3"';
  const CIDR_HINT =
    'use an address block such as "203.0.113.0/24" or "2001:db8::/32" (a single host is "/32" or "/128")';

  it("image references the runtime cannot parse: upper case, empty path components, a registry port out of range", () => {
    assert.deepStrictEqual(
      one({ a: { image: "Nginx:1.2" }, b: { image: "localhost:99999/x:1" }, d: { image: "x//y:1" } }),
      [
        `services.a.image: "Nginx:1.2" is not a valid image reference; ${REF_HINT}`,
        'services.b.image: "localhost:99999/x:1" has registry port 99999; use a port from 1 to 65535',
        `services.d.image: "x//y:1" is not a valid image reference; ${REF_HINT}`,
      ],
    );
    // A tag and a digest together, a registry with a port, underscores and dashes: valid.
    assert.strictEqual(
      parse({
        services: {
          a: { image: `ghcr.io/org/app_x--y:1.2.3@sha256:${"ab".repeat(32)}` },
          b: { image: "localhost:5001/a/b:v1" },
        },
      }).services.length,
      2,
    );
  });

  it("labels: the stack's own keys, Kubernetes' reserved prefixes, pod-template-hash, a prefix over 253 characters", () => {
    const long = "a".repeat(254);
    assert.deepStrictEqual(
      one({
        a: {
          image: "n:1",
          labels: {
            "app.kubernetes.io/name": "x",
            "kubernetes.io/os": "l",
            "pod-template-hash": "1",
            "node.k8s.io/x": "y",
            [`${long}/b`]: "v",
            "example.com/tier": "ok",
          },
        },
      }),
      [
        'services.a.labels.app.kubernetes.io/name: `app.kubernetes.io/*` keys are set by the stack (its identity labels); remove it or use a prefix of your own such as "example.com/"',
        'services.a.labels.kubernetes.io/os: the prefix "kubernetes.io" is reserved for Kubernetes components; use a prefix of your own such as "example.com/"',
        "services.a.labels.pod-template-hash: set by the Deployment controller on every pod; remove it or use another key",
        'services.a.labels.node.k8s.io/x: the prefix "node.k8s.io" is reserved for Kubernetes components; use a prefix of your own such as "example.com/"',
        `services.a.labels.${long}/b: the prefix is 254 characters; a label key's DNS prefix has at most 253`,
      ],
    );
  });

  it("health paths with a query, a fragment or characters a path cannot carry", () => {
    assert.deepStrictEqual(
      one({
        a: { image: "n:1", healthPath: "/health?x=1" },
        b: { image: "n:1", healthPath: "/he alth" },
        c: { image: "n:1", healthPath: "health" },
      }),
      [
        'services.a.healthPath: "/health?x=1" has a query or fragment, which the probe would not send as the app expects; use a plain path such as "/health"',
        'services.b.healthPath: "/he alth" has characters an HTTP path cannot carry unescaped; use letters, digits and -._~/ (or %XX escapes)',
        'services.c.healthPath: "health" is not a path; it must start with "/", e.g. "/health"',
      ],
    );
    assert.strictEqual(
      parse({ services: { a: { image: "n:1", healthPath: "/v1/health%20check" } } }).services[0].healthPath,
      "/v1/health%20check",
    );
    // livenessPath has the same grammar; "/" is refused for a caller (the probe would follow the chain).
    assert.deepStrictEqual(
      one({
        a: { image: "n:1", livenessPath: "/livez?x=1" },
        b: { image: "n:1", livenessPath: "livez" },
        c: { image: "n:1", calls: ["d"], livenessPath: "/" },
        d: { image: "n:1", livenessPath: "/" },
      }),
      [
        'services.a.livenessPath: "/livez?x=1" has a query or fragment, which the probe would not send as the app expects; use a plain path such as "/livez"',
        'services.b.livenessPath: "livez" is not a path; it must start with "/", e.g. "/livez"',
        'services.c.livenessPath: "/" is refused for a service with `calls` (its `/` calls d, so the liveness probe would follow the chain and restart the pod when a callee is slow); use a route that touches no downstream, e.g. "/livez"',
      ],
    );
  });

  it("`egress`: CIDRs, ports, protocols and fields the API server would refuse", () => {
    assert.deepStrictEqual(
      one({
        a: {
          image: "n:1",
          egress: [
            { cidr: "10.0.0.0/33", port: 443 },
            { cidr: "010.1.1.1/32", port: 0 },
            { cidr: "x", port: 1, protocol: "ICMP" },
            { cidr: "10.0.0.0/8", port: 1, extra: 1 },
            "str",
          ],
        },
        b: { image: "n:1", egress: {} },
      }),
      [
        `services.a.egress[0].cidr: "10.0.0.0/33" is not a CIDR; the prefix length 33 is not from 0 to 32; ${CIDR_HINT}`,
        `services.a.egress[1].cidr: "010.1.1.1/32" is not a CIDR; "010.1.1.1" is not an IP address; ${CIDR_HINT}`,
        "services.a.egress[1].port: 0 is not a valid port; use an integer from 1 to 65535",
        `services.a.egress[2].cidr: "x" is not a CIDR; ${CIDR_HINT}`,
        'services.a.egress[2].protocol: "ICMP" is not a protocol; use TCP or UDP',
        'services.a.egress[3]: unknown field "extra"; valid fields are cidr, port, protocol',
        'services.a.egress[4]: "str" is not a map; use {"cidr": "203.0.113.0/24", "port": 443}',
        'services.b.egress: {} is not a list; use [{"cidr": "203.0.113.0/24", "port": 443}]',
      ],
    );
    assert.deepStrictEqual(
      parse({
        services: {
          a: {
            image: "n:1",
            egress: [
              { cidr: "2001:db8::/32", port: 123, protocol: "UDP" },
              { cidr: "203.0.113.7/32", port: 443 },
            ],
          },
        },
      }).services[0].egress,
      [
        { cidr: "2001:db8::/32", port: 123, protocol: "UDP" },
        { cidr: "203.0.113.7/32", port: 443, protocol: "TCP" },
      ],
    );
  });

  it("flat keys: a kube-* namespace, a registry port out of range, a cluster domain that is not a DNS name, a non-boolean `networkPolicies`", () => {
    assert.deepStrictEqual(
      problemsOf({
        namespace: "kube-system",
        networkPolicies: "yes",
        registry: "localhost:70000",
        clusterDomain: "Cluster.local",
        services: { c: { image: "n:1" } },
      }),
      [
        'namespace: "kube-system" is reserved for Kubernetes itself (`kube-*`); the stack would label it and delete it on destroy, so use a namespace of its own such as "k8s-chain"',
        'registry: "localhost:70000" has port 70000; use a port from 1 to 65535',
        'clusterDomain: "Cluster.local" is not valid; use a DNS domain such as "cluster.local" (lower-case DNS labels of at most 63 characters, 253 in all)',
        'networkPolicies: "yes" is not a boolean; use true or false',
      ],
    );
    const flags = (v: unknown) => parse({ networkPolicies: v, services: { c: { image: "n:1" } } }).networkPolicies;
    assert.deepStrictEqual([undefined, "true", "false", true, false].map(flags), [true, true, false, true, false]);
  });

  it("names the stack must not shadow: the API server's `kubernetes` Service in `default`, the default-deny policy's name", () => {
    assert.deepStrictEqual(one({ kubernetes: { image: "n:1" }, "k8s-chain-default-deny": { image: "n:1" } }), [
      'services.kubernetes: "kubernetes" in namespace "default" is the API server\'s own Service, which the stack would take over; rename the service or set `namespace`',
      'services.k8s-chain-default-deny: "k8s-chain-default-deny" is reserved: the stack names its default-deny NetworkPolicy so; rename the service',
    ]);
    assert.strictEqual(parse({ namespace: "chain", services: { kubernetes: { image: "n:1" } } }).services.length, 1);
  });

  it("app folders outside the project", () => {
    assert.deepStrictEqual(one({ a: { app: "../outside" }, b: { app: "/etc" }, c: { app: "." } }), [
      'services.a.app: "../outside" is not inside the project (/project); give a folder under it, relative to it, e.g. "apps/a"',
      'services.b.app: "/etc" is not inside the project (/project); give a folder under it, relative to it, e.g. "apps/b"',
      'services.c.app: "." is not inside the project (/project); give a folder under it, relative to it, e.g. "apps/c"',
    ]);
  });

  it("app folders whose names cannot name an image (the image is the folder's name, lower-cased)", () => {
    const hint =
      "rename it to letters and digits, optionally joined by `.`, `_`, `__` or `-` (the image name is the folder's, lower-cased)";
    assert.deepStrictEqual(
      one(
        {
          a: { app: "apps/x+y" },
          b: { app: "apps/-api" },
          c: { app: "my apps/api" },
          d: { app: "apps/Über" },
          e: { app: "./Apps/Billing_V2/" },
          f: { app: "apps/web.ui" },
        },
        ["apps/x+y", "apps/-api", "my apps/api", "apps/Über", "Apps/Billing_V2", "apps/web.ui"],
      ),
      [
        `services.a.app: "apps/x+y" cannot name an image: the folder name "x+y" is not a repository name; ${hint}`,
        `services.b.app: "apps/-api" cannot name an image: the folder name "-api" is not a repository name; ${hint}`,
        `services.c.app: "my apps/api" cannot name an image: the folder name "my apps" is not a repository name; ${hint}`,
        `services.d.app: "apps/Über" cannot name an image: the folder name "Über" is not a repository name; ${hint}`,
      ],
    );
  });

  it("env values the apps refuse at start, and a drain that does not fit the grace period (apps built here only)", () => {
    assert.deepStrictEqual(
      one({
        "service-a": {
          app: "apps/service-a",
          env: {
            DOWNSTREAM_TIMEOUT_MS: "0",
            DOWNSTREAM_CONCURRENCY: "0",
            SHUTDOWN_DELAY_MS: "2s",
            LOG_LEVEL: "verbose",
          },
        },
        "service-b": { app: "apps/service-b", env: { SHUTDOWN_TIMEOUT_MS: "25000" } },
        prebuilt: { image: "n:1", env: { LOG_LEVEL: "verbose", SHUTDOWN_TIMEOUT_MS: "60000" } },
      }),
      [
        'services.service-a.env.DOWNSTREAM_TIMEOUT_MS: "0" is refused by the app at start; use an integer from 1 to 3600000 (milliseconds)',
        'services.service-a.env.DOWNSTREAM_CONCURRENCY: "0" is refused by the app at start; use an integer from 1 to 100000 (calls at once)',
        'services.service-a.env.SHUTDOWN_DELAY_MS: "2s" is refused by the app at start; use an integer from 0 to 3600000 (milliseconds)',
        'services.service-a.env.LOG_LEVEL: "verbose" is refused by the app at start; use one of fatal, error, warn, info, debug, trace, silent',
        "services.service-b.env: SHUTDOWN_DELAY_MS (5000) + SHUTDOWN_TIMEOUT_MS (25000) = 30000 ms does not fit the pod's 30 s grace period, so Kubernetes would kill the drain; keep the sum under 30000 ms",
      ],
    );
    assert.strictEqual(
      parse({
        services: {
          "service-c": {
            app: "apps/service-c",
            env: { SHUTDOWN_DELAY_MS: "10000", SHUTDOWN_TIMEOUT_MS: "19999", LOG_LEVEL: "debug" },
          },
        },
      }).services.length,
      1,
    );
  });

  it("budgets, drain, shutdown timeout and grace period fit together: every problem in one error, naming field, value and fix", () => {
    // A request taken as the drain ends waits up to DOWNSTREAM_TIMEOUT_MS; the app answers
    // everything by SHUTDOWN_TIMEOUT_MS less the 50 ms margin after it.
    assert.deepStrictEqual(
      one({
        edge: { app: "apps/chain-service", calls: ["mid"], env: { DOWNSTREAM_TIMEOUT_MS: "15000" } },
        mid: { app: "apps/chain-service", calls: ["leaf"], env: { SHUTDOWN_TIMEOUT_MS: "1000" } },
        leaf: { app: "apps/chain-service", env: { DOWNSTREAM_TIMEOUT_MS: "60000", SHUTDOWN_DELAY_MS: "20000" } },
        prebuilt: { image: "n:1", calls: ["leaf"], env: { DOWNSTREAM_TIMEOUT_MS: "60000" } },
      }),
      [
        "services.edge.env: DOWNSTREAM_TIMEOUT_MS (15000) + the apps' 50 ms deadline margin = 15050 ms does not fit SHUTDOWN_TIMEOUT_MS (10000), so a request taken as the drain ends would be cut short with a 504; keep DOWNSTREAM_TIMEOUT_MS at most 9950 or raise SHUTDOWN_TIMEOUT_MS to at least 15050",
        "services.mid.env: DOWNSTREAM_TIMEOUT_MS (2000) + the apps' 50 ms deadline margin = 2050 ms does not fit SHUTDOWN_TIMEOUT_MS (1000), so a request taken as the drain ends would be cut short with a 504; keep DOWNSTREAM_TIMEOUT_MS at most 950 or raise SHUTDOWN_TIMEOUT_MS to at least 2050",
        "services.leaf.env: SHUTDOWN_DELAY_MS (20000) + SHUTDOWN_TIMEOUT_MS (10000) = 30000 ms does not fit the pod's 30 s grace period, so Kubernetes would kill the drain; keep the sum under 30000 ms",
      ],
    );
    // The dev stack's defaults fit: 2000 ms budgets, a 5000 ms drain, a 10000 ms shutdown timeout, 30 s grace.
    assert.strictEqual(parse({ services: seedServices() }).services.length, 4);
  });

  it("deadlines down a chain of any depth: each entry's budget must outlast the margins of the callers below it", () => {
    // 21 services in a row, each calling the next: entering at s0, the caller 19 hops down
    // (s19) has 2000 - 19 x 2 x 50 = 100 ms left, the least that fits; one more hop does not.
    const chain: Record<string, unknown> = {};
    for (let i = 0; i <= 21; i++) {
      chain[`s${i}`] = { app: "apps/chain-service", ...(i < 21 ? { calls: [`s${i + 1}`] } : {}) };
    }
    assert.deepStrictEqual(one(chain), [
      "services.s0.env.DOWNSTREAM_TIMEOUT_MS: 2000 ms (the apps' default) is the budget of a request entering at s0; the 20 callers below it (s0 -> s1 -> ... -> s19 -> s20) each get 100 ms less than their caller (the apps' 50 ms deadline margin, for the answer back, at both ends of a call), leaving s20 0 ms for its call, under the 100 ms a call needs; set it to at least 2100 or shorten the chain",
    ]);
    (chain.s0 as { env?: Record<string, string> }).env = { DOWNSTREAM_TIMEOUT_MS: "2100" };
    assert.strictEqual(parse({ services: chain }).services.length, 22);
    delete chain.s21;
    (chain.s20 as { calls?: string[] }).calls = undefined;
    delete (chain.s0 as { env?: Record<string, string> }).env;
    assert.strictEqual(parse({ services: chain }).services.length, 21);
    // A short budget further down is checked as its own entry (and a prebuilt image ends the run).
    assert.deepStrictEqual(
      one({
        a: { app: "apps/chain-service", calls: ["b", "x"] },
        b: { app: "apps/chain-service", calls: ["c"], env: { DOWNSTREAM_TIMEOUT_MS: "120" } },
        c: { app: "apps/chain-service", calls: ["d"] },
        d: { app: "apps/chain-service" },
        x: { image: "x:1", calls: ["c"] },
      }),
      [
        "services.b.env.DOWNSTREAM_TIMEOUT_MS: 120 ms is the budget of a request entering at b; the 1 caller below it (b -> c) gets 100 ms less than its caller (the apps' 50 ms deadline margin, for the answer back, at both ends of a call), leaving c 20 ms for its call, under the 100 ms a call needs; set it to at least 200 or shorten the chain",
      ],
    );
  });

  it("the deadline constants match the apps'", () => {
    assert.strictEqual(APP_DEADLINE_MARGIN_MS, DEADLINE_MARGIN_MS);
    const defaults = loadConfig({}, "x");
    assert.deepStrictEqual(
      [APP_DOWNSTREAM_TIMEOUT_DEFAULT_MS, APP_SHUTDOWN_TIMEOUT_DEFAULT_MS],
      [defaults.downstreamTimeoutMs, defaults.shutdownTimeoutMs],
    );
  });

  it("a `services` that is not a map still gets every other problem listed", () => {
    assert.deepStrictEqual(
      problemsOf({ namespace: "Bad NS", namspace: "x", rolloutTimeoutSeconds: "5", services: "oops" }),
      [
        "namspace: unknown config key `k8s-chain:namspace`; valid keys are namespace, registry, imageTag, buildArgs, buildNetwork, buildPlatform, clusterDomain, renderDir, rolloutTimeoutSeconds, networkPolicies, services, servicesFile",
        'namespace: "Bad NS" is not valid; use a DNS-1123 label such as "k8s-chain" (lower-case letters, digits and `-`, at most 63)',
        "rolloutTimeoutSeconds: 5 is not a valid rollout timeout in seconds; use an integer from 10 to 3600",
        'services: "oops" is not a map; use {"<name>": {"app": "apps/<name>"}}',
      ],
    );
  });

  it("int32 fields: replicas above 2147483647", () => {
    assert.deepStrictEqual(one({ a: { image: "n:1", replicas: 2147483648 } }), [
      "services.a.replicas: 2147483648 is not a valid replica count; use an integer from 1 to 2147483647",
    ]);
  });
});

describe("catalog: helpers", () => {
  it("accepts pinned images and refuses the rest", () => {
    assert.strictEqual(imagePinProblem(PINNED), undefined);
    assert.strictEqual(imagePinProblem("ghcr.io/org/app:1.2.3"), undefined);
    assert.strictEqual(imagePinProblem("localhost:5001/app:abc"), undefined);
    assert.match(imagePinProblem("app@sha256:123")!, /malformed digest/);
    assert.match(imagePinProblem("app:")!, /invalid tag/);
  });

  it("derives the URL env name", () => {
    assert.strictEqual(urlEnvName("service-b"), "SERVICE_B_URL");
  });
});

describe("catalog: how images are built (buildArgs, buildNetwork, buildPlatform)", () => {
  const services = { "service-c": { app: "apps/chain-service" } };

  it("reads them, and defaults the platform to the machine's", () => {
    const cfg = parse({
      services,
      buildArgs: { NODE_IMAGE: "mirror.example/node:20.20.2-bookworm-slim" },
      buildNetwork: "host",
      buildPlatform: "linux/arm64",
    });
    assert.deepStrictEqual(cfg.build, {
      args: { NODE_IMAGE: "mirror.example/node:20.20.2-bookworm-slim" },
      network: "host",
      platform: "linux/arm64",
    });
    assert.strictEqual(hostPlatform("x64"), "linux/amd64");
    assert.strictEqual(hostPlatform("arm64"), "linux/arm64");
  });

  it("names the key, the value and the fix, every problem at once", () => {
    assert.deepStrictEqual(
      problemsOf({
        services,
        buildArgs: { "NODE-IMAGE": "x", REVISION: "abc", N: 5 },
        buildNetwork: "bridge",
        buildPlatform: "amd64",
      }),
      [
        'buildArgs.NODE-IMAGE: "NODE-IMAGE" is not a valid key; a build arg is a letter or `_`, then letters, digits or `_` (as a Dockerfile\'s ARG names it)',
        'buildArgs.N: 5 is not a string; quote it ("5")',
        'buildNetwork: "bridge" is not valid; use "default", "host" (a Docker engine without a bridge network) or "none"',
        'buildPlatform: "amd64" is not valid; use an OS and architecture such as "linux/amd64" or "linux/arm64" (the cluster\'s nodes\')',
      ],
    );
    assert.deepStrictEqual(problemsOf({ services, buildArgs: { REVISION: "abc" } }), [
      "buildArgs.REVISION: set by the stack (the last commit that touched the app's build inputs); remove it, or set `imageTag` to name the images yourself",
    ]);
    assert.deepStrictEqual(problemsOf({ services, buildArgs: "NODE_IMAGE=x" }), [
      'buildArgs: "NODE_IMAGE=x" is not a map of build args; use {"KEY": "value"}',
    ]);
  });
});
