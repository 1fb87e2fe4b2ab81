import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { ConfigError, imagePinProblem, parseStackConfig, ROLLOUT_TIMEOUT_SECONDS, urlEnvName } from "../components/catalog";
import { nodePortServiceName } from "../components/specs";
import { PINNED, parse, problemsOf, seedServices } from "./support/catalogs";

describe("catalog: defaults", () => {
    it("resolves every default of the spec", () => {
        const cfg = parse({ services: { "service-c": { app: "apps/service-c" } } });
        assert.deepStrictEqual(cfg, {
            namespace: "default", registry: undefined, imageTag: undefined, clusterDomain: "cluster.local", renderDir: undefined,
            rolloutTimeoutSeconds: 120,
            services: [{
                name: "service-c", app: "apps/service-c", image: undefined, replicas: 2, port: 8080, servicePort: 80,
                expose: "ClusterIP", nodePort: undefined, calls: [], env: {}, labels: {}, healthPath: "/health",
            }],
        });
    });

    it("keeps an explicit value even when it is falsy-looking (empty env, one replica)", () => {
        const cfg = parse({ services: { c: { image: "nginx:1.27.3", replicas: 1, env: {}, calls: [] } } });
        assert.strictEqual(cfg.services[0].replicas, 1);
        assert.deepStrictEqual(cfg.services[0].env, {});
    });

    it("treats an empty string as unset for the flat keys", () => {
        const cfg = parse({ namespace: "", registry: "", rolloutTimeoutSeconds: "", services: { c: { image: "nginx:1.27.3" } } });
        assert.strictEqual(cfg.namespace, "default");
        assert.strictEqual(cfg.registry, undefined);
        assert.strictEqual(cfg.rolloutTimeoutSeconds, 120);
    });

    it("reads `rolloutTimeoutSeconds` as Pulumi hands it over (a string of digits) or as a number, bounds included", () => {
        const timeout = (v: unknown) => parse({ rolloutTimeoutSeconds: v, services: { c: { image: "nginx:1.27.3" } } }).rolloutTimeoutSeconds;
        assert.deepStrictEqual(["300", 300, "10", 3600].map(timeout), [300, 300, 10, 3600]);
    });

    it("Pulumi.yaml declares `rolloutTimeoutSeconds` as an integer with the parser's default", () => {
        const project = YAML.parse(fs.readFileSync(path.join(__dirname, "..", "Pulumi.yaml"), "utf8"));
        assert.deepStrictEqual(
            { type: project.config.rolloutTimeoutSeconds.type, default: project.config.rolloutTimeoutSeconds.default },
            { type: "integer", default: ROLLOUT_TIMEOUT_SECONDS.default });
    });

    it("accepts the seed's system", () => {
        const cfg = parse({ namespace: "chain", registry: "localhost:5001", imageTag: "abc123", services: seedServices() });
        assert.deepStrictEqual(cfg.services.map(s => s.name), ["sample-app", "service-a", "service-b", "service-c"]);
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
        const fs = { projectRoot: "/project", stat: (p: string) => (p === "/project/apps/a" ? "dir" : undefined) as any };
        assert.throws(() => parseStackConfig({ services: { a: { app: "apps/a" } } }, fs), (e: ConfigError) => {
            assert.deepStrictEqual(e.problems, ['services.a.app: "apps/a" has no Dockerfile; add apps/a/Dockerfile']);
            return true;
        });
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
        assert.strictEqual(parse({ services: { "node-port": { image: "nginx:1.27.3" }, "node-port-a": { image: "nginx:1.27.3" } } }).services.length, 2);
    });

    it("replicas below 1, and not an integer", () => {
        assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", replicas: 0 } }), [
            "services.a.replicas: 0 is not a valid replica count; use an integer >= 1",
        ]);
        assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", replicas: 1.5 } }), [
            "services.a.replicas: 1.5 is not a valid replica count; use an integer >= 1",
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
        assert.strictEqual(parse({ services: { a: { image: "nginx:1.27.3", expose: "NodePort", nodePort: 32767 } } }).services[0].nodePort, 32767);
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
            "services.a.replica: unknown field; valid fields are app, image, replicas, port, servicePort, expose, nodePort, calls, env, labels, healthPath",
        ]);
    });

    it('"/" as the health path of a service that calls others', () => {
        const s = seedServices();
        s["service-a"].healthPath = "/";
        assert.deepStrictEqual(one(s), [
            'services.service-a.healthPath: "/" is refused for a service with `calls` (its `/` calls service-b, so probes would follow the chain); use a route that touches no downstream, e.g. "/health"',
        ]);
        // A leaf may probe "/": it calls nothing.
        assert.strictEqual(parse({ services: { c: { image: "nginx:1.27.3", healthPath: "/" } } }).services[0].healthPath, "/");
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

    it("labels with a bad key or value, or the stack's own `app`", () => {
        assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", labels: { "tier!": "x", team: "-bad-", app: "other" } } }), [
            'services.a.labels.tier!: "tier!" is not a valid key; use a Kubernetes label key such as "tier" or "example.com/tier"',
            'services.a.labels.team: "-bad-" is not a valid value; label values are at most 63 letters, digits, `-`, `_` or `.`, starting and ending alphanumeric',
        ]);
        assert.deepStrictEqual(one({ a: { image: "nginx:1.27.3", labels: { app: "other" } } }), [
            "services.a.labels.app: set by the stack to the service name; remove it or use another key",
        ]);
    });

    it("flat keys with bad values", () => {
        assert.deepStrictEqual(problemsOf({ namespace: "My NS", imageTag: "latest", registry: "https://ghcr.io/org/", services: { c: { image: "nginx:1.27.3" } } }), [
            'namespace: "My NS" is not valid; use a DNS-1123 label such as "k8s-chain" (lower-case letters, digits and `-`, at most 63)',
            'registry: "https://ghcr.io/org/" is not valid; use an image repository prefix such as "ghcr.io/org" or "localhost:5001" (no scheme, no trailing `/`)',
            'imageTag: "latest" is not valid; use a Docker tag other than "latest": up to 128 letters, digits, `_`, `.` or `-`',
        ]);
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
            "namspace: unknown config key `k8s-chain:namspace`; valid keys are namespace, registry, imageTag, clusterDomain, renderDir, rolloutTimeoutSeconds, services",
        ]);
    });

    it("no services at all", () => {
        assert.deepStrictEqual(problemsOf({}), ["services: missing; add at least one service under `k8s-chain:services` (see Pulumi.dev.yaml)"]);
        assert.deepStrictEqual(problemsOf({ services: {} }), ["services: empty; add at least one service under `k8s-chain:services`"]);
    });

    it("lists every problem of a bad catalog in one error", () => {
        let message = "";
        try {
            parse({ services: { a: { image: "nginx", calls: ["b", "x"] }, b: { app: "apps/b", calls: ["a"], replicas: 0 } } }, []);
        } catch (e: any) {
            message = e.message;
        }
        assert.strictEqual(message, [
            "k8s-chain config has 5 problems; nothing was created:",
            '  - services.a.image: "nginx" has no tag, so it means "latest" and is not pinned; add an explicit tag or an @sha256: digest',
            "  - services.b.replicas: 0 is not a valid replica count; use an integer >= 1",
            '  - services.b.app: "apps/b" is not a folder under /project; give the app\'s folder relative to the project root',
            '  - services.a.calls: unknown service "x" (known: b)',
            "  - services.a.calls: call cycle a -> b -> a; the chain must end, so remove one of these calls",
        ].join("\n"));
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
