// The stack's own image build (AppImage on the real docker provider, built from lab/vendor/) as a
// user meets it: previews across commits in a git checkout, and a stack with no `registry` on a
// cluster that cannot see the local Docker engine. Run with `npm run test:cluster`.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { EngineStack, engineBin, PreviewStep, REPO, urnName, urnType } from "../engine/harness";
import { run, tempDir } from "../support/process";
import {
  baseImage,
  buildConfig,
  cluster,
  errorLines,
  eventually,
  get,
  kubectlJson,
  pushedImages,
  takeDown,
} from "./harness";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { KubeList } from "../support/objects";

/**
 * A checkout of the program in a git repo of its own (index.ts, components/, apps/ without
 * build output, the project files) with node_modules linked, committed once: what a user's
 * clone is, for the revision and the tag digest.
 */
function checkout(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const entry of [
    "index.ts",
    "components",
    "apps",
    "Pulumi.yaml",
    "Pulumi.dev.yaml",
    "package.json",
    "tsconfig.json",
    "tsconfig.pulumi.json",
  ]) {
    fs.cpSync(path.join(REPO, entry), path.join(dir, entry), {
      recursive: true,
      filter: (src) => !/(^|\/)(node_modules|dist)(\/|$)/.test(path.relative(REPO, src)),
    });
  }
  fs.symlinkSync(path.join(REPO, "node_modules"), path.join(dir, "node_modules"));
  const git = (...args: string[]) =>
    execFileSync("git", ["-c", "user.name=k8s-chain", "-c", "user.email=k8s-chain@localhost", ...args], { cwd: dir });
  git("init", "-q", ".");
  fs.writeFileSync(path.join(dir, ".gitignore"), "node_modules\n");
  git("add", "-A");
  git("commit", "-q", "-m", "the program");
  return dir;
}

/** The steps of a preview that change something, as `<type token> <name>: <op>`. */
function changes(steps: PreviewStep[] | undefined): string[] {
  return (steps ?? [])
    .filter((s) => s.op !== "same")
    .map((s) => `${urnType(s.urn)} ${urnName(s.urn)}: ${s.op}`)
    .sort();
}

describe("the stack's own image build on the real docker provider", function () {
  this.timeout(0);
  const work = tempDir("k8s-chain-build-");
  const stacks: EngineStack[] = [];

  before(function () {
    if (!cluster.realNode) this.skip();
  });

  after(async function () {
    await takeDown(stacks);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it("a commit that touches no build input previews no change; an edit under the app rebuilds its image and rolls only its Deployments", async function () {
    const dir = checkout(path.join(work, "checkout"));
    const stack = new EngineStack(engineBin(), dir);
    stacks.push(stack);
    stack.env.KUBECONFIG = cluster.kubeconfig;
    const images = pushedImages();
    // service-b is built from the app folder; service-c runs a prebuilt image.
    const config = {
      namespace: "build-e2e",
      rolloutTimeoutSeconds: 30,
      ...buildConfig(true),
      services: {
        "service-b": { app: "apps/chain-service", calls: ["service-c"], replicas: 1 },
        "service-c": { image: images["service-c"], replicas: 1 },
      },
    };
    stack.init(config);
    const first = await stack.pulumiAsync(["up", "--yes", "--skip-preview"], "up (built service-b)");
    assert.strictEqual(first.code, 0, first.stdout + first.stderr);
    const deps = async () =>
      Object.fromEntries(
        (await kubectlJson<KubeList<IDeployment>>("get", "deployments", "-n", "build-e2e")).items.map((d) => [
          d.metadata!.labels!["app.kubernetes.io/name"],
          { generation: d.metadata!.generation, image: d.spec!.template.spec!.containers[0].image },
        ]),
      );
    const before = await deps();
    assert.match(before["service-b"].image!, /\/chain-service@sha256:[0-9a-f]{64}$/);

    // A commit that touches nothing the build reads.
    execFileSync(
      "git",
      ["-c", "user.name=k", "-c", "user.email=k@localhost", "commit", "-q", "--allow-empty", "-m", "empty"],
      {
        cwd: dir,
      },
    );
    const same = stack.previewJson("preview (empty commit)");
    assert.strictEqual(same.result.code, 0, same.result.stderr);
    assert.deepStrictEqual(changes(same.json.steps), []);

    // An edit of the app's source: its image, and the Deployment built from it (and its watch).
    const server = path.join(dir, "apps", "chain-service", "src", "server.ts");
    fs.appendFileSync(server, "\n// an edit\n");
    execFileSync("git", ["-c", "user.name=k", "-c", "user.email=k@localhost", "commit", "-q", "-am", "edit"], {
      cwd: dir,
    });
    const edited = stack.previewJson("preview (app source edited)");
    assert.strictEqual(edited.result.code, 0, edited.result.stderr);
    assert.deepStrictEqual(changes(edited.json.steps), [
      "docker:index/image:Image chain-service-image: update",
      "kubernetes:apps/v1:Deployment service-b-deployment: update",
      "pulumi-nodejs:dynamic/k8s-chain:Rollout service-b-rollout: update",
    ]);
    const up = await stack.pulumiAsync(["up", "--yes", "--skip-preview"], "up (app source edited)");
    assert.strictEqual(up.code, 0, up.stdout + up.stderr);
    const after = await deps();
    assert.notStrictEqual(after["service-b"].image, before["service-b"].image);
    assert.deepStrictEqual(after["service-c"], before["service-c"], "service-c (prebuilt) must not change");
    const down = await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy");
    assert.strictEqual(down.code, 0, down.stdout + down.stderr);
  });

  it("the README's quick start with a registry, as written, deploys the dev stack and the chain answers", async function () {
    // The commands as the README has them (the block after "With a registry"), run by bash in
    // a checkout of the program, with a HOME of its own (so `pulumi login --local` keeps its
    // state there) and the engine's `pulumi` and providers first on PATH. What differs, and
    // why: `npm ci` is left out (node_modules is linked from the repo, where it already ran);
    // the registry is the suite's (not localhost:5001); two config keys this machine needs
    // (no Docker Hub, no bridge network) are set before `pulumi up`; PULUMI_SKIP_CONFIRMATIONS
    // answers `up`'s prompt, as a terminal user would.
    const readme = fs.readFileSync(path.join(REPO, "README.md"), "utf8");
    const block = /With a registry the cluster pulls from[^\n]*\n\n```bash\n([\s\S]*?)```/.exec(readme);
    assert.ok(block, "the README has no quick start with a registry");
    const [first, second] = block[1].trim().split("\n");
    assert.match(first, /^npm ci && pulumi login --local && pulumi stack select dev --create$/);
    assert.match(second, /^pulumi config set k8s-chain:registry localhost:5001 && pulumi up$/);
    const dir = checkout(path.join(work, "quick-start"));
    const home = path.join(work, "quick-start-home");
    const bin = path.join(work, "quick-start-bin");
    fs.mkdirSync(home);
    fs.mkdirSync(bin);
    const engine = engineBin();
    for (const name of fs.readdirSync(engine.bin)) {
      fs.symlinkSync(path.join(engine.bin, name), path.join(bin, name));
    }
    fs.symlinkSync(process.env.K8S_CHAIN_DOCKER_PROVIDER!, path.join(bin, "pulumi-resource-docker"));
    const script = [
      "set -euo pipefail",
      first.replace(/^npm ci && /, ""),
      `pulumi config set --path 'k8s-chain:buildArgs.NODE_IMAGE' '${baseImage()}'`,
      "pulumi config set k8s-chain:buildNetwork host",
      second.replace("localhost:5001", pushedImages().registry),
      "pulumi stack output images --json",
    ].join("\n");
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: home,
      PATH: `${path.dirname(engine.cli)}${path.delimiter}${bin}${path.delimiter}${process.env.PATH}`,
      KUBECONFIG: cluster.kubeconfig,
      PULUMI_CONFIG_PASSPHRASE: "k8s-chain-quick-start",
      PULUMI_SKIP_CONFIRMATIONS: "true",
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "true",
      // The nodejs host built here predates reading Pulumi.yaml's runtime.options (see the engine harness).
      PULUMI_NODEJS_TSCONFIG_PATH: "tsconfig.pulumi.json",
    };
    delete env.PULUMI_HOME;
    delete env.PULUMI_ACCESS_TOKEN;
    delete env.PULUMI_BACKEND_URL;
    const r = await run("bash", ["-c", script], { cwd: dir, env });
    console.log(`      the quick start: ${r.seconds.toFixed(1)} s, exit ${r.code}`);
    try {
      assert.strictEqual(r.code, 0, r.stdout + r.stderr);
      const images = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf("{\n"))) as Record<string, string>;
      assert.deepStrictEqual(Object.keys(images).sort(), ["sample-app", "service-a", "service-b", "service-c"]);
      assert.strictEqual(new Set(Object.values(images)).size, 1, "one image for the four");
      const answer = await eventually(10_000, async () => {
        const res = await get("http://127.0.0.1:30081/");
        assert.strictEqual(res.status, 200, res.body);
        return JSON.parse(res.body);
      });
      assert.deepStrictEqual(answer, {
        service: "service-a",
        downstream: [{ service: "service-b", downstream: [{ service: "service-c", downstream: [] }] }],
      });
    } finally {
      const down = await run("bash", ["-c", "pulumi destroy --yes --skip-preview"], { cwd: dir, env });
      assert.strictEqual(down.code, 0, down.stdout + down.stderr);
    }
  });

  it("with no registry, on a cluster that cannot see the local engine, the release fails within seconds, naming the image", async function () {
    const stack = new EngineStack(engineBin(), REPO);
    stacks.push(stack);
    stack.env.KUBECONFIG = cluster.kubeconfig;
    stack.init({
      namespace: "build-local",
      rolloutTimeoutSeconds: 120,
      ...buildConfig(false),
      services: { "service-c": { app: "apps/chain-service", replicas: 1 } },
    });
    const t0 = Date.now();
    const r = await stack.pulumiAsync(["up", "--yes", "--skip-preview"], "up (no registry)");
    const s = (Date.now() - t0) / 1000;
    console.log(`      no registry: up failed after ${s.toFixed(1)} s (rolloutTimeoutSeconds 120 s)\n${errorLines(r)}`);
    assert.notStrictEqual(r.code, 0);
    assert.ok(s < 60, `up took ${s} s: an image the node cannot pull must not wait out the 120 s rollout`);
    assert.match(
      r.stdout + r.stderr,
      /service-c: its release can never become ready: pod service-c-\S+ cannot pull its image "(docker\.io\/library\/)?chain-service:inputs-[0-9a-f]{32}" \((ErrImagePull|ImagePullBackOff): [^)]*not found\)\. It has no earlier release to go back to/,
    );
    const down = await stack.pulumiAsync(["destroy", "--yes", "--skip-preview"], "destroy");
    assert.strictEqual(down.code, 0, down.stdout + down.stderr);
  });
});
