// The cluster the stack reads and writes is the one its kubernetes provider uses, and nothing
// else: stack config over an ambient kubeconfig that names another (dead) server, no kubectl on
// PATH, credentials the cluster refuses, RBAC that forbids the watch's reads, and a program that
// makes its own provider and deploys through the components (library use). Each runs the real
// program on the real engine against the suite's cluster. Run with `npm run test:cluster`.
import * as assert from "assert";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import * as YAML from "yaml";
import { EngineStack, engineBin, REPO } from "../engine/harness";
import { tempDir } from "../support/process";
import {
  cluster,
  errorLines,
  eventually,
  get,
  kubectl,
  kubectlJson,
  kubectlStdin,
  pushedImages,
  takeDown,
} from "./harness";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { KubeList } from "../support/objects";

/** A port on loopback that nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** The suite's admin kubeconfig with its server, user or both swapped; written to `file`. */
function kubeconfigVariant(file: string, change: { server?: string; token?: string; context?: string }): string {
  const kc = YAML.parse(fs.readFileSync(cluster.kubeconfig, "utf8"));
  if (change.server) kc.clusters[0].cluster.server = change.server;
  if (change.token) kc.users[0].user = { token: change.token };
  if (change.context) {
    kc.contexts[0].name = change.context;
    kc["current-context"] = change.context;
  }
  fs.writeFileSync(file, YAML.stringify(kc));
  return file;
}

/** A folder of links to every program on PATH but `kubectl`, to use as PATH. */
function pathWithout(tool: string, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const d of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!d || !fs.existsSync(d)) continue;
    for (const name of fs.readdirSync(d)) {
      const link = path.join(dir, name);
      if (name === tool || fs.existsSync(link)) continue;
      fs.symlinkSync(path.join(d, name), link);
    }
  }
  return dir;
}

describe("the cluster the stack's provider uses, and nothing else", function () {
  this.timeout(0);
  const work = tempDir("k8s-chain-connection-");
  let images: Record<string, string>;
  const stacks: EngineStack[] = [];
  /** A new stack of `programDir`, deploying one prebuilt service (service-c, one replica) into `namespace`. */
  const newStack = (namespace: string, other: Record<string, unknown>, programDir = REPO, links = {}) => {
    const stack = new EngineStack(engineBin(), programDir, links);
    stacks.push(stack);
    const config = {
      namespace,
      rolloutTimeoutSeconds: 30,
      services: { "service-c": { image: images["service-c"], replicas: 1 } },
    };
    stack.init(config);
    stack.setConfig(config, other);
    return { stack, config };
  };
  const up = (stack: EngineStack, what: string) => stack.pulumiAsync(["up", "--yes", "--skip-preview"], what);

  before(function () {
    if (!cluster.realNode) this.skip();
    images = pushedImages();
  });

  after(async function () {
    await takeDown(stacks);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it("stack config names the cluster, the ambient KUBECONFIG a dead server: up watches the right one, and a bad release is rolled back", async function () {
    const dead = kubeconfigVariant(path.join(work, "dead.kubeconfig"), {
      server: `https://127.0.0.1:${await deadPort()}`,
    });
    const { stack, config } = newStack("conn-config", { "kubernetes:kubeconfig": cluster.kubeconfig });
    stack.env.KUBECONFIG = dead;
    const first = await up(stack, "up (kubernetes:kubeconfig, ambient KUBECONFIG dead)");
    assert.strictEqual(first.code, 0, first.stdout + first.stderr);
    await eventually(10_000, async () => {
      const d = await kubectlJson<KubeList<IDeployment>>("get", "deployments", "-n", "conn-config");
      assert.strictEqual(d.items[0]?.status?.availableReplicas, 1);
    });

    // A release that cannot start is watched, and rolled back, on the same cluster.
    const missing = images["service-c"].replace(/@sha256:[0-9a-f]{64}$/, `@sha256:${"0".repeat(64)}`);
    stack.setConfig(
      { ...config, services: { "service-c": { image: missing, replicas: 1 } } },
      { "kubernetes:kubeconfig": cluster.kubeconfig },
    );
    const bad = await up(stack, "up (missing image, ambient KUBECONFIG dead)");
    console.log(errorLines(bad));
    assert.notStrictEqual(bad.code, 0);
    assert.match(
      bad.stdout + bad.stderr,
      /service-c: its release can never become ready: pod service-c-\S+ cannot pull/,
    );
    assert.match(bad.stdout + bad.stderr, /Rolled it back to its last good release \(revision 1\)/);
    const d = await kubectlJson<KubeList<IDeployment>>("get", "deployments", "-n", "conn-config");
    assert.strictEqual(d.items[0].spec!.template.spec!.containers[0].image, images["service-c"]);
    stack.setConfig(config, { "kubernetes:kubeconfig": cluster.kubeconfig });
    const down = await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy");
    assert.strictEqual(down.code, 0, down.stdout + down.stderr);
  });

  it("with no kubectl on PATH, up deploys and watches every rollout", async function () {
    const { stack } = newStack("conn-no-kubectl", {});
    stack.env.KUBECONFIG = cluster.kubeconfig;
    stack.env.PATH = pathWithout("kubectl", path.join(work, "bin-without-kubectl"));
    assert.ok(!fs.existsSync(path.join(stack.env.PATH, "kubectl")));
    const r = await up(stack, "up (no kubectl on PATH)");
    assert.strictEqual(r.code, 0, r.stdout + r.stderr);
    const d = await kubectlJson<KubeList<IDeployment>>("get", "deployments", "-n", "conn-no-kubectl");
    assert.strictEqual(d.items[0]?.status?.availableReplicas, 1);
    const down = await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy");
    assert.strictEqual(down.code, 0, down.stdout + down.stderr);
  });

  it("credentials the cluster refuses fail up within 15 s, at the first object, naming the cause", async function () {
    const refused = kubeconfigVariant(path.join(work, "refused.kubeconfig"), { token: "not-a-token" });
    const { stack } = newStack("conn-refused", { "kubernetes:kubeconfig": refused });
    const t0 = Date.now();
    const r = await up(stack, "up (refused credentials)");
    const s = (Date.now() - t0) / 1000;
    console.log(`      refused credentials: up failed after ${s.toFixed(1)} s`);
    console.log(errorLines(r));
    assert.notStrictEqual(r.code, 0);
    assert.ok(s < 15, `up took ${s} s`);
    // The kubernetes provider meets the refusal first, at the first object (before any watch),
    // and says so in its own words.
    assert.ok(
      (r.stdout + r.stderr).includes(
        "kubernetes:core/v1:Namespace (namespace):\n    error: configured Kubernetes cluster is unreachable: unable to load schema information from the API server: the server has asked for the client to provide credentials",
      ),
      r.stdout + r.stderr,
    );
  });

  it("RBAC that forbids reading pods fails up within 15 s with one error naming the cluster, the service and the cause", async function () {
    // A user that may manage everything the stack creates, but not read pods.
    const account = "k8s-chain-no-pods";
    const role = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: account },
      rules: [
        { apiGroups: [""], resources: ["namespaces", "services"], verbs: ["*"] },
        { apiGroups: ["apps"], resources: ["deployments", "replicasets"], verbs: ["*"] },
        { apiGroups: ["policy"], resources: ["poddisruptionbudgets"], verbs: ["*"] },
        { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: ["*"] },
      ],
    };
    const binding = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: account },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: account },
      subjects: [{ kind: "ServiceAccount", name: account, namespace: "default" }],
    };
    await kubectl("create", "serviceaccount", account, "-n", "default");
    try {
      await kubectlStdin(
        JSON.stringify({ apiVersion: "v1", kind: "List", items: [role, binding] }),
        "apply",
        "-f",
        "-",
      );
      const token = (await kubectl("create", "token", account, "-n", "default", "--duration=1h")).trim();
      const limited = kubeconfigVariant(path.join(work, "no-pods.kubeconfig"), { token, context: "no-pods" });
      const server = YAML.parse(fs.readFileSync(limited, "utf8")).clusters[0].cluster.server;
      const { stack } = newStack("conn-rbac", { "kubernetes:kubeconfig": limited });
      const t0 = Date.now();
      const r = await up(stack, "up (RBAC: no pods)");
      const s = (Date.now() - t0) / 1000;
      console.log(`      RBAC forbidding pods: up failed after ${s.toFixed(1)} s`);
      console.log(errorLines(r));
      assert.notStrictEqual(r.code, 0);
      assert.ok(s < 15, `up took ${s} s`);
      const text =
        `service-c: could not watch its rollout on the cluster at ${server} (context "no-pods"): ` +
        "GET /api/v1/namespaces/conn-rbac/pods?labelSelector=app.kubernetes.io/part-of=k8s-chain,app.kubernetes.io/name in (service-c): HTTP 403 Forbidden: " +
        `pods is forbidden: User "system:serviceaccount:default:${account}" cannot list resource "pods" in API group "" in the namespace "conn-rbac": ` +
        "the stack's user may not read this; it needs get, list and patch on deployments, and get and list on replicasets and pods, in the stack's namespace";
      assert.ok((r.stdout + r.stderr).includes(text), `expected:\n${text}\nin:\n${r.stdout}${r.stderr}`);
      // The admin's view: the stack's objects go.
      stack.setConfig(
        { namespace: "conn-rbac", services: { "service-c": { image: images["service-c"], replicas: 1 } } },
        { "kubernetes:kubeconfig": cluster.kubeconfig },
      );
      const down = await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy");
      assert.strictEqual(down.code, 0, down.stdout + down.stderr);
    } finally {
      await kubectl("delete", "clusterrolebinding,clusterrole", account, "--ignore-not-found");
      await kubectl("delete", "serviceaccount", account, "-n", "default", "--ignore-not-found");
    }
  });

  it("a program with its own provider deploys the catalog through the components (library use), the ambient KUBECONFIG dead", async function () {
    const dead = kubeconfigVariant(path.join(work, "dead-too.kubeconfig"), {
      server: `https://127.0.0.1:${await deadPort()}`,
    });
    const program = path.join(REPO, "tests", "cluster", "library");
    const links = {
      node_modules: path.join(REPO, "node_modules"),
      "tsconfig.json": path.join(REPO, "tsconfig.json"),
      "tsconfig.pulumi.json": path.join(REPO, "tsconfig.pulumi.json"),
    };
    const services = {
      "service-b": {
        image: images["service-b"],
        calls: ["service-c"],
        replicas: 1,
        expose: "NodePort",
        nodePort: 30090,
      },
      "service-c": { image: images["service-c"], replicas: 1 },
    };
    const stack = new EngineStack(engineBin(), program, links);
    stacks.push(stack);
    stack.init({ namespace: "conn-library", rolloutTimeoutSeconds: 30, services });
    stack.setConfig(
      { namespace: "conn-library", rolloutTimeoutSeconds: 30, services },
      { "k8s-chain-library:kubeconfigFile": cluster.kubeconfig },
    );
    stack.env.KUBECONFIG = dead;
    const r = await up(stack, "up (library: its own provider)");
    assert.strictEqual(r.code, 0, r.stdout + r.stderr);
    // Watched (the Rollouts are in the state) and serving.
    const state = stack.exportState().deployment.resources ?? [];
    assert.deepStrictEqual(
      state.filter((x) => x.type === "pulumi-nodejs:dynamic/k8s-chain:Rollout").map((x) => x.urn.split("::").pop()),
      ["service-c-rollout", "service-b-rollout"],
    );
    const answer = await eventually(10_000, async () => {
      const res = await get("http://127.0.0.1:30090/");
      assert.strictEqual(res.status, 200, res.body);
      return JSON.parse(res.body);
    });
    assert.deepStrictEqual(answer, { service: "service-b", downstream: [{ service: "service-c", downstream: [] }] });
    const down = await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy");
    assert.strictEqual(down.code, 0, down.stdout + down.stderr);
  });
});
