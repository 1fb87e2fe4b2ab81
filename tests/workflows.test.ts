/**
 * What this project's GitHub workflows (`.github/workflows/`) and their local action
 * (`.github/actions/write-kubeconfig/`) must do: triggers, the preview and deploy jobs' commands,
 * stack name, backend and config keys (no imageTag), where the secrets and the kubeconfig go,
 * the order test -> deploy and, within the deploy, settings -> npm ci -> login -> kubeconfig -> up.
 * Expressions are evaluated with GitHub's evaluator (`@actions/expressions`); the shell and node
 * scripts are run for real where they compute something (registry host, kubeconfig file, job
 * summary).
 *
 * Syntax, expressions, pinning, permissions, injection and the like are left to actionlint and
 * zizmor (`npm run test:workflows`, run by `.ci/run`); see docs/ci-cd.md.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { evaluateTemplate } from "./support/expressions";

const root = path.resolve(__dirname, "..");
const workflowsDir = path.join(root, ".github", "workflows");
const kubeconfigActionPath = path.join(root, ".github", "actions", "write-kubeconfig", "action.yml");

// ---------------------------------------------------------------------------------------------
// The YAML, as plain data.

type Env = Record<string, string | number | boolean>;

interface Step {
  id?: string;
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  shell?: string;
  with?: Record<string, string | number | boolean>;
  env?: Env;
}

interface Job {
  name?: string;
  if?: string;
  uses?: string;
  needs?: string | string[];
  "runs-on"?: string;
  permissions?: string | Record<string, string>;
  environment?: string | { name: string; url?: string };
  concurrency?: string | { group: string; "cancel-in-progress"?: boolean | string };
  env?: Env;
  steps?: Step[];
}

interface Workflow {
  name?: string;
  on: string | string[] | Record<string, unknown>;
  permissions?: string | Record<string, string>;
  env?: Env;
  jobs: Record<string, Job>;
}

interface CompositeAction {
  name: string;
  inputs?: Record<string, { description?: string; required?: boolean; default?: string }>;
  outputs?: Record<string, { description?: string; value: string }>;
  runs: { using: string; steps: Step[] };
}

function readText(file: string): string {
  return fs.readFileSync(file, "utf8");
}

function loadWorkflow(file: string): Workflow {
  return parseYaml(readText(path.join(workflowsDir, file))) as Workflow;
}

function triggersOf(workflow: Workflow): string[] {
  const on = workflow.on;
  if (typeof on === "string") return [on];
  if (Array.isArray(on)) return on;
  return Object.keys(on ?? {});
}

function stepsOf(job: Job): Step[] {
  return job.steps ?? [];
}

function findStep(job: Job, predicate: (step: Step) => boolean, what: string): Step {
  const step = stepsOf(job).find(predicate);
  assert.ok(step, `no step ${what}`);
  return step;
}

function stepIndex(job: Job, predicate: (step: Step) => boolean, what: string): number {
  const index = stepsOf(job).findIndex(predicate);
  assert.ok(index >= 0, `no step ${what}`);
  return index;
}

const usesAction = (action: string) => (step: Step) => (step.uses ?? "").split("@")[0] === action;

/** The secrets a step names anywhere (if, with, env, run), sorted. */
function secretsOf(step: Step): string[] {
  const names = new Set<string>();
  for (const m of JSON.stringify(step).matchAll(/\bsecrets\.([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(m[1]);
  return [...names].sort();
}

/** Each step that names a secret, by its name, with the secrets it names. */
function secretsByStep(job: Job): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const step of stepsOf(job)) {
    const names = secretsOf(step);
    if (names.length > 0) out[step.name ?? step.id ?? step.uses ?? String(step.run)] = names;
  }
  return out;
}

/**
 * The Pulumi step's stack and backend, the same in preview.yml and deploy.yml: the stack from
 * vars.PULUMI_STACK (dev by default), never created by CI; Pulumi Cloud by token, or the
 * self-managed backend in vars.PULUMI_BACKEND_URL with a passphrase; both secrets on that step
 * only (not on the job, where `npm ci`'s install scripts would see them), plus `extraEnv`.
 */
async function assertPulumiStackAndBackend(step: Step, job: Job, extraEnv: Env = {}): Promise<void> {
  const stack = String(step.with?.["stack-name"]);
  assert.equal(await evaluateTemplate(stack, { vars: {} }), "dev");
  assert.equal(await evaluateTemplate(stack, { vars: { PULUMI_STACK: "acme/staging" } }), "acme/staging");
  assert.equal(step.with?.["cloud-url"], "${{ vars.PULUMI_BACKEND_URL }}");
  assert.equal(step.with?.["work-dir"], "./");
  assert.equal(String(step.with?.upsert), "false");
  assert.deepEqual(step.env, {
    PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}",
    PULUMI_CONFIG_PASSPHRASE: "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
    ...extraEnv,
  });
  assert.equal(job.env, undefined, "the Pulumi secrets stay on the Pulumi step");
}

// ---------------------------------------------------------------------------------------------
// Running a step's script for real.

interface ScriptRun {
  status: number | null;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  githubEnv: string;
  summary: string;
  runnerTemp: string;
}

/** The temp dirs of the script runs, removed once the suite is done (tests read them after the run). */
const scriptDirs: string[] = [];
after(() => {
  for (const dir of scriptDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function runScript(script: string, env: Record<string, string>): ScriptRun {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-chain-workflow-"));
  scriptDirs.push(dir);
  const runnerTemp = path.join(dir, "runner-temp");
  fs.mkdirSync(runnerTemp);
  const files = { GITHUB_OUTPUT: "output", GITHUB_ENV: "env", GITHUB_STEP_SUMMARY: "summary" };
  for (const name of Object.values(files)) fs.writeFileSync(path.join(dir, name), "");
  const result = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", script], {
    encoding: "utf8",
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      RUNNER_TEMP: runnerTemp,
      GITHUB_SHA: "0123456789abcdef0123456789abcdef01234567",
      GITHUB_OUTPUT: path.join(dir, files.GITHUB_OUTPUT),
      GITHUB_ENV: path.join(dir, files.GITHUB_ENV),
      GITHUB_STEP_SUMMARY: path.join(dir, files.GITHUB_STEP_SUMMARY),
      ...env,
    },
  });
  const read = (name: string) => fs.readFileSync(path.join(dir, name), "utf8");
  const outputs: Record<string, string> = {};
  for (const line of read(files.GITHUB_OUTPUT).split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) outputs[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    outputs,
    githubEnv: read(files.GITHUB_ENV),
    summary: read(files.GITHUB_STEP_SUMMARY),
    runnerTemp,
  };
}

// ---------------------------------------------------------------------------------------------

const workflowFiles = fs
  .readdirSync(workflowsDir)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

/** The third-party actions this project uses, at the major versions docs/ci-cd.md names. */
const vettedMajors: Record<string, string> = {
  "actions/checkout": "v7",
  "actions/setup-node": "v7",
  "docker/login-action": "v4",
  "pulumi/actions": "v7",
};

const stackName = "${{ vars.PULUMI_STACK || 'dev' }}";
const sha = "89abcdef0123456789abcdef0123456789abcdef";
const headSha = "fedcba9876543210fedcba9876543210fedcba98";

describe("GitHub workflows (.github/workflows)", function () {
  this.timeout(60000);

  it("are test.yml, preview.yml and deploy.yml", () => {
    assert.deepEqual(workflowFiles, ["deploy.yml", "preview.yml", "test.yml"]);
  });

  it("pin each third-party action to a commit SHA with its release in a comment, at the vetted major", () => {
    // The comment is what says which release a SHA is (lab/action/runner.ts reads it to know
    // that pulumi/actions is the v7 it builds); zizmor checks that the SHA is there.
    const files = [...workflowFiles.map((f) => path.join(workflowsDir, f)), kubeconfigActionPath];
    const seen = new Set<string>();
    for (const file of files) {
      for (const line of readText(file).split("\n")) {
        const m = /^\s*(?:-\s+)?uses:\s*(\S+)(.*)$/.exec(line);
        if (!m || m[1].startsWith("./")) continue;
        const pin = /^([\w.-]+\/[\w.-]+)@[0-9a-f]{40}$/.exec(m[1]);
        assert.ok(pin, `${path.basename(file)}: ${m[1]} is not owner/name@<commit SHA>`);
        const version = /^\s+#\s+(v\d+)\.\d+\.\d+\s*$/.exec(m[2]);
        assert.ok(version, `${path.basename(file)}: ${m[1]} has no "# vX.Y.Z" comment`);
        assert.equal(version[1], vettedMajors[pin[1]], `${path.basename(file)}: ${pin[1]} ${version[1]}`);
        seen.add(pin[1]);
      }
    }
    assert.deepEqual([...seen].sort(), Object.keys(vettedMajors).sort());
  });

  describe("test.yml", () => {
    const workflow = () => loadWorkflow("test.yml");

    it("runs on every pull request and push, and can be called by deploy.yml", () => {
      assert.deepEqual(triggersOf(workflow()).sort(), ["pull_request", "push", "workflow_call"]);
      const on = workflow().on as Record<string, { branches?: string[]; "branches-ignore"?: string[] } | null>;
      assert.equal(on.pull_request, null, "pull_request: every pull request, no filter");
      // main's pushes run these same jobs inside deploy.yml, as the gate to the deploy.
      assert.deepEqual(on.push, { "branches-ignore": ["main"] });
    });

    it("installs with npm ci, then runs npm test", () => {
      const unit = workflow().jobs.unit;
      const install = stepIndex(unit, (s) => s.run === "npm ci", "running npm ci");
      const test = stepIndex(unit, (s) => s.run === "npm test", "running npm test");
      assert.ok(install < test);
    });

    it("runs the image tests as root in their own job, after the unit tests", () => {
      const images = workflow().jobs.images;
      assert.equal(images.needs, "unit");
      assert.equal(images["runs-on"], "ubuntu-latest");
      const step = findStep(images, (s) => /npm run test:images/.test(s.run ?? ""), "running test:images");
      assert.match(step.run ?? "", /sudo env "PATH=\$\{PATH\}" npm run test:images/);
    });
  });

  describe("preview.yml", () => {
    const workflow = () => loadWorkflow("preview.yml");
    const job = () => workflow().jobs.preview;
    const previewStep = () => findStep(job(), usesAction("pulumi/actions"), "using pulumi/actions");

    it("is triggered by pull_request only", () => {
      assert.deepEqual(triggersOf(workflow()), ["pull_request"]);
    });

    it("grants pull-requests: write on the preview job only, and skips fork PRs (no secrets there)", () => {
      assert.deepEqual(Object.keys(workflow().jobs), ["preview"]);
      assert.deepEqual(job().permissions, { contents: "read", "pull-requests": "write" });
      assert.equal(job().if, "github.event.pull_request.head.repo.full_name == github.repository");
    });

    it("runs pulumi/actions with command preview, its comment kept up to date on the PR and in the job summary", () => {
      const step = previewStep();
      assert.equal(step.with?.command, "preview");
      assert.equal(String(step.with?.["comment-on-pr"]), "true");
      assert.equal(String(step.with?.["edit-pr-comment"]), "true");
      assert.equal(String(step.with?.["comment-on-summary"]), "true");
    });

    it("previews the stack from vars.PULUMI_STACK (dev by default), on Pulumi Cloud or a self-managed backend", async () => {
      await assertPulumiStackAndBackend(previewStep(), job());
    });

    it("config-map: no imageTag (the stack's digest of each image's inputs); registry only when vars.IMAGE_REGISTRY is set", async () => {
      const input = String(previewStep().with?.["config-map"]);
      const github = { sha, event: { pull_request: { head: { sha: headSha } } } };
      const without = parseYaml(await evaluateTemplate(input, { github, vars: {} }));
      assert.ok(
        without === null || without === undefined || Object.keys(without).length === 0,
        JSON.stringify(without),
      );
      const withRegistry = parseYaml(
        await evaluateTemplate(input, { github, vars: { IMAGE_REGISTRY: "ghcr.io/acme" } }),
      );
      assert.deepEqual(withRegistry, { "k8s-chain:registry": { value: "ghcr.io/acme", secret: false } });
    });

    it("checks out the whole history (each image's revision is the last commit that touched its inputs)", () => {
      const checkout = findStep(job(), usesAction("actions/checkout"), "using actions/checkout");
      assert.equal(String(checkout.with?.["fetch-depth"]), "0");
    });

    it("gets no kubeconfig: the pull request's code never holds cluster credentials (it previews against the state)", () => {
      assert.ok(!stepsOf(job()).some(usesAction("./.github/actions/write-kubeconfig")), "no write-kubeconfig step");
      assert.doesNotMatch(readText(path.join(workflowsDir, "preview.yml")).replace(/#.*$/gm, ""), /KUBECONFIG/);
    });

    it("names the Pulumi secrets on the preview step only (the backend check sees whether the token is set, not its value)", () => {
      assert.deepEqual(secretsByStep(job()), {
        "Check the Pulumi backend settings": ["PULUMI_ACCESS_TOKEN"],
        "pulumi preview": ["PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"],
      });
      const check = findStep(job(), (s) => s.name === "Check the Pulumi backend settings", "checking the backend");
      assert.equal(check.env?.HAS_PULUMI_ACCESS_TOKEN, "${{ secrets.PULUMI_ACCESS_TOKEN != '' }}");
      assert.equal(workflow().env, undefined);
    });

    it("installs with npm ci before the preview, with no secret on the runner yet", () => {
      const install = stepIndex(job(), (s) => s.run === "npm ci", "running npm ci");
      assert.deepEqual(secretsOf(stepsOf(job())[install]), []);
      assert.ok(install < stepIndex(job(), usesAction("pulumi/actions"), "using pulumi/actions"));
    });

    it("fails early, naming what to set, when neither a Pulumi token nor a backend URL is there", () => {
      const check = findStep(job(), (s) => /PULUMI_BACKEND_URL/.test(s.run ?? ""), "checking the backend");
      const missing = runScript(check.run ?? "", { PULUMI_BACKEND_URL: "", HAS_PULUMI_ACCESS_TOKEN: "false" });
      assert.equal(missing.status, 1);
      assert.match(missing.stdout, /::error::Set the secret PULUMI_ACCESS_TOKEN .* or the variable PULUMI_BACKEND_URL/);
      assert.equal(runScript(check.run ?? "", { PULUMI_BACKEND_URL: "", HAS_PULUMI_ACCESS_TOKEN: "true" }).status, 0);
      assert.equal(
        runScript(check.run ?? "", { PULUMI_BACKEND_URL: "s3://b", HAS_PULUMI_ACCESS_TOKEN: "false" }).status,
        0,
      );
    });
  });

  describe("deploy.yml", () => {
    const workflow = () => loadWorkflow("deploy.yml");
    const job = () => workflow().jobs.deploy;
    const upStep = () => findStep(job(), usesAction("pulumi/actions"), "using pulumi/actions");
    const settingsStep = () => findStep(job(), (s) => s.id === "settings", "with id settings");

    it("is triggered by a push to main only", () => {
      assert.deepEqual(workflow().on, { push: { branches: ["main"] } });
    });

    it("deploys only after the tests (test.yml, called as a reusable workflow) pass", () => {
      assert.equal(workflow().jobs.test.uses, "./.github/workflows/test.yml");
      assert.equal(job().needs, "test");
    });

    it("serializes deploys per stack (concurrency, cancel-in-progress false) in the stack's environment", async () => {
      const concurrency = job().concurrency as { group: string; "cancel-in-progress": boolean };
      assert.equal(concurrency["cancel-in-progress"], false);
      assert.equal(await evaluateTemplate(concurrency.group, { vars: {} }), "deploy-dev");
      const environment = job().environment as { name: string };
      assert.equal(await evaluateTemplate(environment.name, { vars: {} }), "dev");
      assert.equal(await evaluateTemplate(environment.name, { vars: { PULUMI_STACK: "prod" } }), "prod");
    });

    it("runs pulumi up on the stack from vars.PULUMI_STACK (dev by default), Cloud or self-managed", async () => {
      const step = upStep();
      assert.equal(step.id, "up");
      assert.equal(step.with?.command, "up");
      await assertPulumiStackAndBackend(step, job(), { KUBECONFIG: "${{ steps.kubeconfig.outputs.path }}" });
    });

    it("config-map sets the registry to vars.IMAGE_REGISTRY and no imageTag (a commit that touches no build input rolls nothing)", async () => {
      const input = String(upStep().with?.["config-map"]);
      const evaluated = await evaluateTemplate(input, { github: { sha }, vars: { IMAGE_REGISTRY: "docker.io/alice" } });
      assert.deepEqual(parseYaml(evaluated), {
        "k8s-chain:registry": { value: "docker.io/alice", secret: false },
      });
    });

    it("checks out the whole history (each image's revision is the last commit that touched its inputs)", () => {
      const checkout = findStep(job(), usesAction("actions/checkout"), "using actions/checkout");
      assert.equal(String(checkout.with?.["fetch-depth"]), "0");
    });

    it("logs in to the registry (docker/login-action, secrets as inputs) and writes the kubeconfig before pulumi up", () => {
      const steps = stepsOf(job());
      const login = stepIndex(job(), usesAction("docker/login-action"), "using docker/login-action");
      assert.deepEqual(steps[login].with, {
        registry: "${{ steps.settings.outputs.registry-host }}",
        username: "${{ secrets.REGISTRY_USERNAME }}",
        password: "${{ secrets.REGISTRY_TOKEN }}",
      });
      const kube = stepIndex(job(), usesAction("./.github/actions/write-kubeconfig"), "writing the kubeconfig");
      assert.equal(steps[kube].id, "kubeconfig");
      assert.deepEqual(steps[kube].with, { "kubeconfig-base64": "${{ secrets.KUBECONFIG_BASE64 }}" });
      const install = stepIndex(job(), (s) => s.run === "npm ci", "running npm ci");
      const up = stepIndex(job(), usesAction("pulumi/actions"), "using pulumi/actions");
      const settings = stepIndex(job(), (s) => s.id === "settings", "with id settings");
      // The settings fail fast; npm ci's install scripts run before any credential is on the runner.
      assert.ok(settings < install && install < login && login < kube && kube < up, "step order");
    });

    it("names each secret only on the step that needs it (the settings check sees only whether each is set)", () => {
      assert.deepEqual(secretsByStep(job()), {
        "Check the deploy settings": [
          "PULUMI_ACCESS_TOKEN",
          "PULUMI_CONFIG_PASSPHRASE",
          "REGISTRY_TOKEN",
          "REGISTRY_USERNAME",
        ],
        "Log in to the image registry": ["REGISTRY_TOKEN", "REGISTRY_USERNAME"],
        "Write kubeconfig": ["KUBECONFIG_BASE64"],
        "pulumi up": ["PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"],
      });
      for (const [name, value] of Object.entries(settingsStep().env ?? {})) {
        if (/secrets\./.test(String(value))) assert.match(String(value), /^\$\{\{ secrets\.\w+ != '' \}\}$/, name);
      }
      assert.equal(workflow().env, undefined);
    });

    it("hands the kubeconfig's path to the pulumi up step alone (not the job's env)", () => {
      const using = stepsOf(job()).filter((s) => JSON.stringify(s).includes("steps.kubeconfig."));
      assert.deepEqual(
        using.map((s) => s.name),
        ["pulumi up"],
      );
      assert.doesNotMatch(readText(path.join(workflowsDir, "deploy.yml")).replace(/#.*$/gm, ""), /GITHUB_ENV/);
    });

    it("derives the registry host to log in to from IMAGE_REGISTRY (empty: Docker Hub)", () => {
      const script = settingsStep().run ?? "";
      const ok = {
        HAS_REGISTRY_USERNAME: "true",
        HAS_REGISTRY_TOKEN: "true",
        HAS_PULUMI_ACCESS_TOKEN: "true",
        HAS_PULUMI_CONFIG_PASSPHRASE: "false",
        PULUMI_BACKEND_URL: "",
      };
      const cases: Array<[string, string]> = [
        ["docker.io/alice", ""],
        ["alice", ""],
        ["ghcr.io/acme", "ghcr.io"],
        ["localhost:5001", "localhost:5001"],
        ["registry.example.com:5000/team/apps", "registry.example.com:5000"],
      ];
      for (const [registry, host] of cases) {
        const run = runScript(script, { ...ok, IMAGE_REGISTRY: registry });
        assert.equal(run.status, 0, `${registry}: ${run.stdout}${run.stderr}`);
        assert.equal(run.outputs["registry-host"], host, registry);
      }
    });

    it("stops before any login when a setting is missing, naming each one", () => {
      const run = runScript(settingsStep().run ?? "", {
        IMAGE_REGISTRY: "",
        PULUMI_BACKEND_URL: "",
        HAS_REGISTRY_USERNAME: "false",
        HAS_REGISTRY_TOKEN: "true",
        HAS_PULUMI_ACCESS_TOKEN: "false",
        HAS_PULUMI_CONFIG_PASSPHRASE: "false",
      });
      assert.equal(run.status, 1);
      const errors = run.stdout.split("\n").filter((l) => l.startsWith("::error::"));
      assert.equal(errors.length, 3, run.stdout);
      assert.match(errors[0], /IMAGE_REGISTRY/);
      assert.match(errors[1], /REGISTRY_USERNAME and REGISTRY_TOKEN/);
      assert.match(errors[2], /PULUMI_ACCESS_TOKEN .* or the variable PULUMI_BACKEND_URL/);
      assert.deepEqual(run.outputs, {});
    });

    it("writes the stack outputs urls, nodePorts and images to the job summary", () => {
      const step = findStep(job(), (s) => /GITHUB_STEP_SUMMARY/.test(s.run ?? ""), "writing the job summary");
      assert.deepEqual(step.env, {
        STACK: stackName,
        URLS: "${{ steps.up.outputs.urls }}",
        NODE_PORTS: "${{ steps.up.outputs.nodePorts }}",
        IMAGES: "${{ steps.up.outputs.images }}",
      });
      const run = runScript(step.run ?? "", {
        STACK: "dev",
        URLS: JSON.stringify({ "sample-app": "http://sample-app.default.svc.cluster.local:80" }),
        NODE_PORTS: JSON.stringify({ "sample-app": 30080 }),
        IMAGES: JSON.stringify({ "sample-app": "docker.io/alice/sample-app@sha256:" + "a".repeat(64) }),
      });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.summary, /^### Stack `dev` at `0123456789abcdef0123456789abcdef01234567`/);
      assert.match(
        run.summary,
        /\| sample-app \| http:\/\/sample-app\.default\.svc\.cluster\.local:80 \| 30080 \| `docker\.io\/alice\/sample-app@sha256:a{64}` \|/,
      );
      assert.equal(run.stdout, "", "nothing but the summary file gets the table");
    });
  });

  describe("the write-kubeconfig action", () => {
    const action = () => parseYaml(readText(kubeconfigActionPath)) as CompositeAction;
    const script = () => {
      assert.equal(action().runs.using, "composite");
      assert.equal(action().runs.steps.length, 1);
      return action().runs.steps[0].run ?? "";
    };
    const kubeconfig = "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user: {token: s3cr3t-token}\n";
    const encoded = Buffer.from(kubeconfig).toString("base64");

    it("writes $RUNNER_TEMP/kubeconfig with mode 600, gives its path as an output (not GITHUB_ENV), and prints neither file nor secret", () => {
      assert.equal(action().outputs?.path.value, "${{ steps.write.outputs.path }}");
      assert.equal(action().runs.steps[0].id, "write");
      const run = runScript(script(), { KUBECONFIG_BASE64: encoded });
      assert.equal(run.status, 0, run.stderr);
      const file = path.join(run.runnerTemp, "kubeconfig");
      assert.equal(fs.readFileSync(file, "utf8"), kubeconfig);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(run.outputs, { path: file });
      assert.equal(run.githubEnv, "");
      for (const leak of ["s3cr3t-token", encoded, "apiVersion"]) {
        assert.ok(!run.stdout.includes(leak) && !run.stderr.includes(leak), `printed ${leak}`);
      }
    });

    it("fails without the secret, naming it", () => {
      const missing = runScript(script(), { KUBECONFIG_BASE64: "" });
      assert.equal(missing.status, 1);
      assert.match(missing.stdout, /::error::The KUBECONFIG_BASE64 secret is empty or not set/);
      assert.deepEqual(missing.outputs, {});
    });

    it("fails on a secret that is not base64, leaving no file behind and printing none of it", () => {
      const run = runScript(script(), { KUBECONFIG_BASE64: "not base64 at all: s3cr3t!" });
      assert.equal(run.status, 1);
      assert.match(run.stdout, /::error::The KUBECONFIG_BASE64 secret is not valid base64/);
      assert.ok(!fs.existsSync(path.join(run.runnerTemp, "kubeconfig")));
      assert.ok(!(run.stdout + run.stderr).includes("s3cr3t"));
    });
  });
});
