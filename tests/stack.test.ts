import * as assert from "assert";
import * as path from "path";
import * as fs from "fs";
import * as YAML from "yaml";
import * as pulumi from "@pulumi/pulumi";
import { byType, find, installMocks, Recorded, settle, valueOf } from "./support/mocks";
import { parse, PINNED, seedServices } from "./support/catalogs";
import { deployChain } from "../components/chain";
import { AppImage } from "../components/app-image";
import { MicroService } from "../components/micro-service";

const DEP = "kubernetes:apps/v1:Deployment";
const SVC = "kubernetes:core/v1:Service";
const PDB = "kubernetes:policy/v1:PodDisruptionBudget";
const IMG = "docker:index/image:Image";
const ROOT = path.resolve(__dirname, "..");

/** Resources per service: component, Deployment, Service (+ PDB with 2 replicas) (+ AppImage and Image when built). */
function expectedCount(services: ReturnType<typeof parse>["services"]): number {
    return services.reduce((n, s) => n + 3 + (s.replicas >= 2 ? 1 : 0) + (s.app ? 2 : 0), 0);
}

describe("stack (Pulumi mocks)", function () {
    let recorded: Recorded[];

    it("registers the seed's system in call order: a callee's Deployment and Service finish before its caller's Deployment starts", async () => {
        recorded = installMocks({ readyDelayMs: 15 });
        const cfg = parse({ services: seedServices() });
        // Prebuilt images keep this test about ordering only.
        for (const s of cfg.services) { s.image = PINNED; s.app = undefined; }
        deployChain(cfg, { projectRoot: ROOT });
        await settle(recorded, expectedCount(cfg.services));

        const dep = (n: string) => find(recorded, DEP, `${n}-deployment`);
        const svc = (n: string) => find(recorded, SVC, `${n}-service`);
        for (const [caller, callee] of [["service-a", "service-b"], ["service-b", "service-c"]]) {
            assert.ok(dep(callee).finished < dep(caller).started, `${callee}'s Deployment must be ready before ${caller}'s starts`);
            assert.ok(svc(callee).finished < dep(caller).started, `${callee}'s Service must be ready before ${caller}'s Deployment starts`);
        }
        // Independent services are not serialized: sample-app and service-c start before either is ready.
        assert.ok(dep("sample-app").started < dep("service-c").finished);
        assert.ok(dep("service-c").started < dep("sample-app").finished);
        // Within a service the Deployment is ready before the Service is sent.
        assert.ok(dep("service-c").finished < svc("service-c").started);
    });

    it("parents every child to its component and names children from it", async () => {
        recorded = installMocks();
        const cfg = parse({ services: { c: { image: PINNED } } });
        const ms = deployChain(cfg, { projectRoot: ROOT }).services.c;
        await settle(recorded, expectedCount(cfg.services));
        assert.ok(ms instanceof MicroService);
        assert.deepStrictEqual(recorded.map(r => `${r.type}/${r.name}`).sort(), [
            "k8s-chain:components:MicroService/c", `${DEP}/c-deployment`, `${PDB}/c-pdb`, `${SVC}/c-service`,
        ].sort());
        const [parentUrn, depParent, svcParent] = await Promise.all([
            valueOf(ms.urn), valueOf((ms.deployment as any).__parentResource?.urn), valueOf((ms.service as any).__parentResource?.urn),
        ]);
        assert.strictEqual(depParent, parentUrn);
        assert.strictEqual(svcParent, parentUrn);
    });

    it("makes the Service delete-before-replace (fixed name, pinned node port) and lets the auto-named Deployment create first", () => {
        recorded = installMocks();
        const svc = parse({ services: { c: { image: PINNED, expose: "NodePort", nodePort: 30080 } } }).services[0];
        // A transformation sees the options each child is registered with (the mock monitor does not).
        const opts: Record<string, pulumi.CustomResourceOptions> = {};
        new MicroService("c", { service: svc, callees: [], placement: { namespace: "default", clusterDomain: "cluster.local", rolloutTimeoutSeconds: 120 }, image: PINNED },
            { transformations: [a => { opts[a.name] = a.opts; return undefined; }] });
        assert.strictEqual(opts["c-service"].deleteBeforeReplace, true);
        assert.strictEqual(opts["c-deployment"].deleteBeforeReplace, undefined);
    });

    it("creates the namespace unless it is `default`, and puts every object in it", async () => {
        recorded = installMocks();
        const cfg = parse({ namespace: "chain", services: { c: { image: PINNED, replicas: 1 } } });
        deployChain(cfg, { projectRoot: ROOT });
        await settle(recorded, 1 + expectedCount(cfg.services));
        const ns = find(recorded, "kubernetes:core/v1:Namespace", "namespace");
        assert.strictEqual(ns.inputs.metadata.name, "chain");
        assert.ok(ns.finished < find(recorded, DEP, "c-deployment").started);
        for (const r of [...byType(recorded, DEP), ...byType(recorded, SVC)]) {
            assert.strictEqual(r.inputs.metadata.namespace, "chain");
        }

        recorded = installMocks();
        deployChain(parse({ services: { c: { image: PINNED, replicas: 1 } } }), { projectRoot: ROOT });
        await settle(recorded, 3);
        assert.strictEqual(byType(recorded, "kubernetes:core/v1:Namespace").length, 0);
    });

    it("with a registry: pushes each app image and pins its Deployment to the pushed digest", async () => {
        recorded = installMocks();
        const cfg = parse({ registry: "localhost:5001", services: seedServices() });
        const out = deployChain(cfg, { projectRoot: ROOT, tagFor: () => "0123abc" });
        await settle(recorded, expectedCount(cfg.services));
        const img = find(recorded, IMG, "service-a-image");
        assert.strictEqual(img.inputs.imageName, "localhost:5001/service-a:0123abc");
        assert.strictEqual(img.inputs.skipPush, false);
        assert.strictEqual(img.inputs.buildOnPreview, false);
        assert.deepStrictEqual(img.inputs.build, { context: path.join(ROOT, "apps"), dockerfile: path.join(ROOT, "apps/service-a/Dockerfile") });
        const digestRef = img.state.repoDigest;
        assert.match(digestRef, /^localhost:5001\/service-a@sha256:[0-9a-f]{64}$/);
        const container = find(recorded, DEP, "service-a-deployment").inputs.spec.template.spec.containers[0];
        assert.strictEqual(container.image, digestRef);
        assert.strictEqual(await valueOf(out.images["service-a"]), digestRef);
    });

    it("without a registry: builds into the local engine only and runs an immutable tag, never latest", async () => {
        recorded = installMocks();
        const cfg = parse({ services: { "service-c": { app: "apps/service-c" } } });
        const out = deployChain(cfg, { projectRoot: ROOT, tagFor: () => "0123abc" });
        await settle(recorded, expectedCount(cfg.services));
        const img = find(recorded, IMG, "service-c-image");
        assert.strictEqual(img.inputs.imageName, "service-c:0123abc");
        assert.strictEqual(img.inputs.skipPush, true);
        assert.strictEqual(find(recorded, DEP, "service-c-deployment").inputs.spec.template.spec.containers[0].image, "service-c:0123abc");
        assert.strictEqual(await valueOf(out.images["service-c"]), "service-c:0123abc");
    });

    it("shares one tag between apps of the same build context, computing it once", async () => {
        recorded = installMocks();
        const asked: string[] = [];
        const cfg = parse({ services: seedServices() });
        deployChain(cfg, { projectRoot: ROOT, tagFor: dir => { asked.push(dir); return "t1"; } });
        await settle(recorded, expectedCount(cfg.services));
        assert.deepStrictEqual(asked, [path.join(ROOT, "apps")]);
        assert.deepStrictEqual(byType(recorded, IMG).map(r => r.inputs.imageName).sort(),
            ["sample-app:t1", "service-a:t1", "service-b:t1", "service-c:t1"]);
    });

    it("exports urls, nodePorts (NodePort services only) and images", async () => {
        recorded = installMocks();
        const cfg = parse({
            namespace: "chain",
            services: { ...seedServices(), picked: { image: PINNED, expose: "NodePort" }, lb: { image: PINNED, expose: "LoadBalancer" } },
        });
        const out = deployChain(cfg, { projectRoot: ROOT, tagFor: () => "t1" });
        assert.deepStrictEqual(out.urls, {
            "sample-app": "http://sample-app.chain.svc.cluster.local:80",
            "service-a": "http://service-a.chain.svc.cluster.local:80",
            "service-b": "http://service-b.chain.svc.cluster.local:80",
            "service-c": "http://service-c.chain.svc.cluster.local:80",
            picked: "http://picked.chain.svc.cluster.local:80",
            lb: "http://lb.chain.svc.cluster.local:80",
        });
        assert.deepStrictEqual(Object.keys(out.nodePorts).sort(), ["picked", "sample-app", "service-a"]);
        assert.strictEqual(await valueOf(out.nodePorts["sample-app"]), 30080);
        assert.strictEqual(await valueOf(out.nodePorts["service-a"]), 30081);
        assert.strictEqual(await valueOf(out.nodePorts.picked), 31999, "an unpinned node port is the one the cluster assigned");
        assert.strictEqual(await valueOf(out.images.lb), PINNED);
    });

    it("passes `rolloutTimeoutSeconds` to every Deployment and Service the provider waits for", async () => {
        recorded = installMocks();
        const cfg = parse({
            rolloutTimeoutSeconds: "45",
            services: { c: { image: PINNED, replicas: 1 }, lb: { image: PINNED, replicas: 1, expose: "LoadBalancer" } },
        });
        deployChain(cfg, { projectRoot: ROOT });
        await settle(recorded, expectedCount(cfg.services));
        const deps = byType(recorded, DEP);
        assert.deepStrictEqual(deps.map(d => [d.name, d.inputs.spec.progressDeadlineSeconds, d.inputs.metadata.annotations]), [
            ["c-deployment", 45, { "pulumi.com/timeoutSeconds": "45" }],
            ["lb-deployment", 45, { "pulumi.com/timeoutSeconds": "45" }],
        ]);
        assert.deepStrictEqual(byType(recorded, SVC).map(s => [s.name, s.inputs.spec.type, s.inputs.metadata.annotations]), [
            ["c-service", "ClusterIP", { "pulumi.com/timeoutSeconds": "45" }],
            ["lb-service", "LoadBalancer", { "pulumi.com/timeoutSeconds": "45" }],
        ]);
    });

    it("renders through an explicit provider when `renderDir` is set", async () => {
        recorded = installMocks();
        const cfg = parse({ renderDir: "/tmp/rendered", services: { c: { image: PINNED, replicas: 1 } } });
        deployChain(cfg, { projectRoot: ROOT });
        await settle(recorded, 4);
        const provider = find(recorded, "pulumi:providers:kubernetes", "render");
        assert.strictEqual(provider.inputs.renderYamlToDirectory, "/tmp/rendered");
    });

    it("AppImage alone: local tag without a registry, digest with one", async () => {
        recorded = installMocks();
        const local = new AppImage("x", { context: "/c", dockerfile: "/c/x/Dockerfile", repository: "x", tag: "t" });
        const pushed = new AppImage("y", { context: "/c", dockerfile: "/c/y/Dockerfile", repository: "y", tag: "t", registry: "ghcr.io/org" });
        assert.strictEqual(await valueOf(local.ref), "x:t");
        assert.match(await valueOf(pushed.ref), /^ghcr\.io\/org\/y@sha256:/);
    });
});

describe("the program (index.ts) with the dev stack's config", function () {
    this.timeout(60000);
    let recorded: Recorded[];
    let program: any;

    before(async () => {
        recorded = installMocks();
        const dev = YAML.parse(fs.readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8")).config;
        pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries(dev).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])));
        program = require("../index");
        await settle(recorded, 4 * 6);
    });

    after(() => pulumi.runtime.setAllConfig({}));

    it("matches the seed: sample-app with 2 replicas, NodePort 30080, port 80 -> 8080, probes on /health", () => {
        const dep = find(recorded, DEP, "sample-app-deployment").inputs;
        assert.strictEqual(dep.spec.replicas, 2);
        const c = dep.spec.template.spec.containers[0];
        assert.strictEqual(c.ports[0].containerPort, 8080);
        for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
            assert.deepStrictEqual(probe.httpGet, { path: "/health", port: "http" });
        }
        const svc = find(recorded, SVC, "sample-app-service").inputs.spec;
        assert.deepStrictEqual(svc.ports, [{ name: "http", protocol: "TCP", port: 80, targetPort: "http", nodePort: 30080 }]);
        assert.strictEqual(svc.type, "NodePort");
    });

    it("wires service-a -> service-b -> service-c by in-cluster URLs and exposes service-a as a NodePort", async () => {
        const env = (n: string) => find(recorded, DEP, `${n}-deployment`).inputs.spec.template.spec.containers[0].env;
        assert.deepStrictEqual(env("service-a").find((e: any) => e.name === "DOWNSTREAM_URLS").value, "http://service-b.default.svc.cluster.local:80");
        assert.deepStrictEqual(env("service-b").find((e: any) => e.name === "SERVICE_C_URL").value, "http://service-c.default.svc.cluster.local:80");
        const timeout = (n: string) => env(n).find((e: any) => e.name === "DOWNSTREAM_TIMEOUT_MS")?.value;
        assert.deepStrictEqual([timeout("service-a"), timeout("service-b"), timeout("service-c")], ["3000", "2000", undefined]);
        assert.strictEqual(find(recorded, SVC, "service-a-service").inputs.spec.type, "NodePort");
        assert.deepStrictEqual(await valueOf(program.nodePorts["sample-app"]), 30080);
    });

    it("builds each app from its own folder with an immutable, non-latest tag", async () => {
        const images = byType(recorded, IMG);
        assert.deepStrictEqual(images.map(i => i.name).sort(), ["sample-app-image", "service-a-image", "service-b-image", "service-c-image"]);
        for (const img of images) {
            const tag = img.inputs.imageName.split(":")[1];
            assert.ok(tag && tag !== "latest", `tag of ${img.inputs.imageName}`);
            assert.ok(fs.existsSync(img.inputs.build.dockerfile), img.inputs.build.dockerfile);
        }
        assert.strictEqual(await valueOf(program.images["service-b"]), find(recorded, IMG, "service-b-image").inputs.imageName);
    });
});
