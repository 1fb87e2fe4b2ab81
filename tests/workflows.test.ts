/**
 * The GitHub workflows (`.github/workflows/`) and the local action they share
 * (`.github/actions/write-kubeconfig/`), checked three ways:
 * - GitHub's own parser (`@actions/workflow-parser`) accepts every file with zero errors;
 * - an audit every workflow must pass: no `pull_request_target`, actions pinned to a major
 *   version at least, no `run` script that interpolates an expression or prints a secret or
 *   the kubeconfig (proved able to fail on small bad workflows);
 * - what each workflow promises: triggers, permissions, the Pulumi steps and their inputs
 *   (expressions evaluated with GitHub's own evaluator, `@actions/expressions`), the deploy's
 *   concurrency and environment; the shell and node scripts are run for real where they
 *   compute something (registry host, kubeconfig file, job summary).
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { register } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import type * as WorkflowParser from "@actions/workflow-parser";
import type * as ActionParser from "@actions/workflow-parser/actions/action-parser";
import { evaluateTemplate } from "./support/expressions";

const root = path.resolve(__dirname, "..");
const workflowsDir = path.join(root, ".github", "workflows");
const kubeconfigActionPath = path.join(root, ".github", "actions", "write-kubeconfig", "action.yml");

// ---------------------------------------------------------------------------------------------
// Loading GitHub's parser (the expression evaluator is in ./support/expressions).
// The package is ESM only, and the parser imports its JSON schema without an import
// attribute (it is written for bundlers), which Node refuses. A loader hook adds the attribute
// for that package's own JSON files; `import()` goes through `new Function` because TypeScript
// compiles a literal `import()` to `require()` under `module: commonjs`.

const addJsonImportAttribute = `
export async function load(url, context, nextLoad) {
  if (url.endsWith(".json") && url.includes("/@actions/workflow-parser/")) {
    return nextLoad(url, { ...context, importAttributes: { ...context.importAttributes, type: "json" } });
  }
  return nextLoad(url, context);
}`;

const importEsm = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<unknown>;

interface Libraries {
  workflows: typeof WorkflowParser;
  actions: typeof ActionParser;
}

let libraries: Promise<Libraries> | undefined;

function loadLibraries(): Promise<Libraries> {
  if (!libraries) {
    register("data:text/javascript," + encodeURIComponent(addJsonImportAttribute));
    libraries = Promise.all([
      importEsm("@actions/workflow-parser"),
      importEsm("@actions/workflow-parser/actions/action-parser"),
    ]).then(([workflows, actions]) => ({
      workflows: workflows as typeof WorkflowParser,
      actions: actions as typeof ActionParser,
    }));
  }
  return libraries;
}

type ParseResult = ReturnType<typeof WorkflowParser.parseWorkflow>;

/** Runs one of the parser's entry points with a trace writer; every error it reports, once. */
function parseCollectingErrors(parse: (trace: WorkflowParser.TraceWriter) => ParseResult) {
  const traced: string[] = [];
  const parsed = parse({ error: (m: string) => traced.push(m), info: () => {}, verbose: () => {} });
  const errors = [...parsed.context.errors.getErrors().map((e) => e.message), ...traced];
  return { parsed, errors };
}

/** Every error GitHub's parser reports for a workflow: schema, expressions, then conversion. */
async function workflowErrors(name: string, content: string): Promise<string[]> {
  const { workflows } = await loadLibraries();
  const { parsed, errors } = parseCollectingErrors((trace) => workflows.parseWorkflow({ name, content }, trace));
  if (parsed.value === undefined) {
    return [...errors, `${name}: the parser returned no value`];
  }
  const template = await workflows.convertWorkflowTemplate(parsed.context, parsed.value);
  const converted = (template.errors ?? []).map((e) => e.Message);
  return [...new Set([...errors, ...converted])];
}

/** Every error GitHub's parser reports for an action's `action.yml`. */
async function actionErrors(name: string, content: string): Promise<string[]> {
  const { actions } = await loadLibraries();
  const { errors } = parseCollectingErrors((trace) => actions.parseAction({ name, content }, trace));
  return [...new Set(errors)];
}

// ---------------------------------------------------------------------------------------------
// The YAML, as plain data.

type Env = Record<string, string | number | boolean>;

interface Step {
  id?: string;
  name?: string;
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
  defaults?: { run?: { shell?: string } };
  env?: Env;
  steps?: Step[];
}

interface Workflow {
  name?: string;
  on: string | string[] | Record<string, unknown>;
  permissions?: string | Record<string, string>;
  concurrency?: string | { group: string; "cancel-in-progress"?: boolean | string };
  defaults?: { run?: { shell?: string } };
  env?: Env;
  jobs: Record<string, Job>;
}

interface CompositeAction {
  name: string;
  inputs?: Record<string, { description?: string; required?: boolean; default?: string }>;
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

function permissionsOf(p: Job["permissions"]): Record<string, string> {
  if (p === undefined) return {};
  if (typeof p === "string") return { "*": p };
  return p;
}

// ---------------------------------------------------------------------------------------------
// The audit: rules every workflow (and the local action) must pass. Returns one message per
// violation, naming where it is.

/** Env var names (workflow, job or step level) whose value comes from a secret or an input. */
function sensitiveEnvNames(...envs: Array<Env | undefined>): string[] {
  const names: string[] = [];
  for (const env of envs) {
    for (const [name, value] of Object.entries(env ?? {})) {
      if (/\$\{\{[^}]*\b(secrets|inputs)\./.test(String(value))) names.push(name);
    }
  }
  return names;
}

/** Where a line's output goes, if it does not go to the job log (a pipe or a file). */
function outputIsCaptured(line: string): boolean {
  const logFiles = /GITHUB_STEP_SUMMARY|GITHUB_OUTPUT|GITHUB_ENV|\/dev\/std(out|err)/;
  const pipe = /\|(?!\|)\s*(\S+)/.exec(line);
  if (pipe && pipe[1] !== "tee") return true;
  const redirect = /(^|[^0-9&])>>?\s*(\S+)/.exec(line);
  return redirect !== null && !redirect[2].startsWith("&") && !logFiles.test(redirect[2]);
}

const tracing = /\bset\s+-[a-zA-Z]*x|\bset\s+-o\s+xtrace|\b(bash|sh)\s+-[a-zA-Z]*x/;
const readsKubeconfig =
  /\b(cat|head|tail|less|more|xxd|od|strings|nl|base64(?![^|;&]*\s(-d|--decode)\b))\b[^|;&]*kube_?config/i;

/** Problems in one `run` step: interpolation into the script, tracing, printing secrets. */
function runStepProblems(step: Step, where: string, inheritedEnv: Array<Env | undefined>, shell?: string): string[] {
  const problems: string[] = [];
  const script = String(step.run ?? "");
  const label = `${where} step "${step.name ?? step.id ?? script.split("\n")[0]}"`;
  if (/\$\{\{[^}]*\bsecrets\./.test(script)) {
    problems.push(`${label}: a secret is interpolated into the run script (pass it through env)`);
  } else if (script.includes("${{")) {
    problems.push(`${label}: an expression is interpolated into the run script (pass it through env)`);
  }
  if (tracing.test(script) || tracing.test(step.shell ?? shell ?? "")) {
    problems.push(`${label}: traces commands (set -x), which prints every secret it expands`);
  }
  const sensitive = sensitiveEnvNames(...inheritedEnv, step.env);
  for (const line of script.split("\n")) {
    if (readsKubeconfig.test(line) || /\bkubectl\s+config\s+view\b/.test(line)) {
      problems.push(`${label}: prints the kubeconfig: ${line.trim()}`);
    }
    if (!/\b(echo|printf|cat|tee)\b/.test(line) || outputIsCaptured(line)) continue;
    for (const name of sensitive) {
      if (new RegExp(`\\$\\{?${name}\\b`).test(line)) {
        problems.push(`${label}: prints the secret-bearing variable ${name}: ${line.trim()}`);
      }
    }
  }
  return problems;
}

/** Problems with one `uses:` reference: local, or owner/repo pinned to vN or a full SHA. */
function usesProblems(uses: string, where: string): string[] {
  if (uses.startsWith("./")) return [];
  if (uses.startsWith("docker://")) {
    return /@sha256:[0-9a-f]{64}$/.test(uses) ? [] : [`${where}: ${uses} is not pinned by digest`];
  }
  return /^[\w.-]+\/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/.test(uses)
    ? []
    : [`${where}: ${uses} is not pinned to a major version or a commit SHA`];
}

function auditWorkflow(file: string, workflow: Workflow): string[] {
  const problems: string[] = [];
  if (triggersOf(workflow).includes("pull_request_target")) {
    problems.push(`${file}: triggered by pull_request_target`);
  } else if (stringifyYaml(workflow).includes("pull_request_target")) {
    problems.push(`${file}: mentions pull_request_target outside comments`);
  }
  for (const [id, job] of Object.entries(workflow.jobs ?? {})) {
    const where = `${file} job ${id}`;
    if (job.uses) problems.push(...usesProblems(job.uses, where));
    const shell = job.defaults?.run?.shell ?? workflow.defaults?.run?.shell;
    for (const step of stepsOf(job)) {
      if (step.uses) problems.push(...usesProblems(step.uses, where));
      if (step.run !== undefined) problems.push(...runStepProblems(step, where, [workflow.env, job.env], shell));
    }
  }
  return problems;
}

function auditCompositeAction(file: string, action: CompositeAction): string[] {
  const problems: string[] = [];
  for (const step of action.runs.steps) {
    if (step.uses) problems.push(...usesProblems(step.uses, file));
    if (step.run !== undefined) problems.push(...runStepProblems(step, file, []));
  }
  return problems;
}

/**
 * The Pulumi step's stack and backend, the same in preview.yml and deploy.yml: the stack from
 * vars.PULUMI_STACK (dev by default), never created by CI; Pulumi Cloud by token, or the
 * self-managed backend in vars.PULUMI_BACKEND_URL with a passphrase; both secrets on that step
 * only (not on the job, where `npm ci`'s install scripts would see them).
 */
async function assertPulumiStackAndBackend(step: Step, job: Job): Promise<void> {
  const stack = String(step.with?.["stack-name"]);
  assert.equal(await evaluateTemplate(stack, { vars: {} }), "dev");
  assert.equal(await evaluateTemplate(stack, { vars: { PULUMI_STACK: "acme/staging" } }), "acme/staging");
  assert.equal(step.with?.["cloud-url"], "${{ vars.PULUMI_BACKEND_URL }}");
  assert.equal(step.with?.["work-dir"], "./");
  assert.equal(String(step.with?.upsert), "false");
  assert.deepEqual(step.env, {
    PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}",
    PULUMI_CONFIG_PASSPHRASE: "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
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

function runScript(script: string, env: Record<string, string>): ScriptRun {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-chain-workflow-"));
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

/** Every workflow file: each one is parsed and audited, not only the three below. */
const workflowFiles = fs.readdirSync(workflowsDir).filter((f) => /\.ya?ml$/.test(f)).sort();

/** The lowest major version of each third-party action, as confirmed from its repository. */
const minimumMajors: Record<string, number> = {
  "actions/checkout": 7,
  "actions/setup-node": 7,
  "docker/login-action": 4,
  "pulumi/actions": 7,
};

const stackName = "${{ vars.PULUMI_STACK || 'dev' }}";
const sha = "89abcdef0123456789abcdef0123456789abcdef";
const headSha = "fedcba9876543210fedcba9876543210fedcba98";

describe("GitHub workflows (.github/workflows)", function () {
  this.timeout(60000);

  before(async () => {
    await loadLibraries();
  });

  it("include test.yml, preview.yml and deploy.yml", () => {
    for (const file of ["test.yml", "preview.yml", "deploy.yml"]) assert.ok(workflowFiles.includes(file), file);
  });

  for (const file of workflowFiles) {
    it(`${file} parses with GitHub's parser with zero errors`, async () => {
      const errors = await workflowErrors(file, readText(path.join(workflowsDir, file)));
      assert.deepEqual(errors, []);
    });
  }

  it("the write-kubeconfig action parses with GitHub's parser with zero errors", async () => {
    assert.deepEqual(await actionErrors("action.yml", readText(kubeconfigActionPath)), []);
  });

  for (const file of workflowFiles) {
    it(`${file} passes the audit (no pull_request_target, pinned actions, no secret printed)`, () => {
      assert.deepEqual(auditWorkflow(file, loadWorkflow(file)), []);
    });
  }

  it("the write-kubeconfig action passes the audit", () => {
    const action = parseYaml(readText(kubeconfigActionPath)) as CompositeAction;
    assert.deepEqual(auditCompositeAction("write-kubeconfig/action.yml", action), []);
  });

  it("pins every third-party action at or above the confirmed major version", () => {
    const seen = new Set<string>();
    for (const file of workflowFiles) {
      for (const job of Object.values(loadWorkflow(file).jobs)) {
        for (const step of stepsOf(job)) {
          if (!step.uses || step.uses.startsWith("./")) continue;
          const [action, ref] = step.uses.split("@");
          assert.ok(action in minimumMajors, `${file}: ${action} is not an action this project has vetted`);
          const major = Number(/^v(\d+)/.exec(ref)?.[1]);
          assert.ok(major >= minimumMajors[action], `${file}: ${step.uses} is below v${minimumMajors[action]}`);
          seen.add(action);
        }
      }
    }
    assert.deepEqual([...seen].sort(), Object.keys(minimumMajors).sort());
  });

  it("no job grants itself write access except the preview job's pull-requests: write", () => {
    for (const file of workflowFiles) {
      const workflow = loadWorkflow(file);
      assert.deepEqual(workflow.permissions, { contents: "read" }, `${file}: top-level permissions`);
      for (const [id, job] of Object.entries(workflow.jobs)) {
        const writes = Object.entries(permissionsOf(job.permissions)).filter(([, level]) => level === "write");
        const allowed = file === "preview.yml" && id === "preview" ? [["pull-requests", "write"]] : [];
        assert.deepEqual(writes, allowed, `${file} job ${id}`);
      }
    }
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

    it("runs pulumi/actions with command preview and comment-on-pr true", () => {
      const step = previewStep();
      assert.equal(step.with?.command, "preview");
      assert.equal(String(step.with?.["comment-on-pr"]), "true");
    });

    it("previews the stack from vars.PULUMI_STACK (dev by default), on Pulumi Cloud or a self-managed backend", async () => {
      await assertPulumiStackAndBackend(previewStep(), job());
    });

    it("config-map: no imageTag (the stack's digest of each image's inputs); registry only when vars.IMAGE_REGISTRY is set", async () => {
      const input = String(previewStep().with?.["config-map"]);
      const github = { sha, event: { pull_request: { head: { sha: headSha } } } };
      const without = parseYaml(await evaluateTemplate(input, { github, vars: {} }));
      assert.ok(without === null || without === undefined || Object.keys(without).length === 0, JSON.stringify(without));
      const withRegistry = parseYaml(await evaluateTemplate(input, { github, vars: { IMAGE_REGISTRY: "ghcr.io/acme" } }));
      assert.deepEqual(withRegistry, { "k8s-chain:registry": { value: "ghcr.io/acme", secret: false } });
    });

    it("checks out the whole history (each image's revision is the last commit that touched its inputs)", () => {
      const checkout = findStep(job(), usesAction("actions/checkout"), "using actions/checkout");
      assert.equal(String(checkout.with?.["fetch-depth"]), "0");
    });

    it("writes the kubeconfig when the secret is there, and previews without one otherwise", () => {
      const kube = stepIndex(job(), usesAction("./.github/actions/write-kubeconfig"), "writing the kubeconfig");
      const step = stepsOf(job())[kube];
      assert.equal(step.with?.["kubeconfig-base64"], "${{ secrets.KUBECONFIG_BASE64 }}");
      assert.equal(step.with?.required, "false");
      assert.ok(kube < stepIndex(job(), usesAction("pulumi/actions"), "using pulumi/actions"));
    });

    it("fails early, naming what to set, when neither a Pulumi token nor a backend URL is there", () => {
      const check = findStep(job(), (s) => /PULUMI_BACKEND_URL/.test(s.run ?? ""), "checking the backend");
      const missing = runScript(check.run ?? "", { PULUMI_BACKEND_URL: "", HAS_PULUMI_ACCESS_TOKEN: "false" });
      assert.equal(missing.status, 1);
      assert.match(missing.stdout, /::error::Set the secret PULUMI_ACCESS_TOKEN .* or the variable PULUMI_BACKEND_URL/);
      assert.equal(runScript(check.run ?? "", { PULUMI_BACKEND_URL: "", HAS_PULUMI_ACCESS_TOKEN: "true" }).status, 0);
      assert.equal(runScript(check.run ?? "", { PULUMI_BACKEND_URL: "s3://b", HAS_PULUMI_ACCESS_TOKEN: "false" }).status, 0);
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
      await assertPulumiStackAndBackend(step, job());
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
      assert.deepEqual(steps[kube].with, { "kubeconfig-base64": "${{ secrets.KUBECONFIG_BASE64 }}", required: "true" });
      const install = stepIndex(job(), (s) => s.run === "npm ci", "running npm ci");
      const up = stepIndex(job(), usesAction("pulumi/actions"), "using pulumi/actions");
      const settings = stepIndex(job(), (s) => s.id === "settings", "with id settings");
      // The settings fail fast; npm ci's install scripts run before any credential is on the runner.
      assert.ok(settings < install && install < login && login < kube && kube < up, "step order");
    });

    it("derives the registry host to log in to from IMAGE_REGISTRY (empty: Docker Hub)", () => {
      const script = settingsStep().run ?? "";
      const ok = { HAS_REGISTRY_USERNAME: "true", HAS_REGISTRY_TOKEN: "true", HAS_PULUMI_ACCESS_TOKEN: "true", HAS_PULUMI_CONFIG_PASSPHRASE: "false", PULUMI_BACKEND_URL: "" };
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
    const script = () => {
      const action = parseYaml(readText(kubeconfigActionPath)) as CompositeAction;
      assert.equal(action.runs.using, "composite");
      assert.equal(action.runs.steps.length, 1);
      return action.runs.steps[0].run ?? "";
    };
    const kubeconfig = "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user: {token: s3cr3t-token}\n";
    const encoded = Buffer.from(kubeconfig).toString("base64");

    it("writes $RUNNER_TEMP/kubeconfig with mode 600, exports KUBECONFIG, and prints neither file nor secret", () => {
      assert.match(script(), /umask 077/);
      assert.match(script(), /chmod 600/);
      const run = runScript(script(), { KUBECONFIG_BASE64: encoded, KUBECONFIG_REQUIRED: "true" });
      assert.equal(run.status, 0, run.stderr);
      const file = path.join(run.runnerTemp, "kubeconfig");
      assert.equal(fs.readFileSync(file, "utf8"), kubeconfig);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.equal(run.githubEnv, `KUBECONFIG=${file}\n`);
      assert.equal(run.outputs.written, "true");
      for (const leak of ["s3cr3t-token", encoded, "apiVersion"]) {
        assert.ok(!run.stdout.includes(leak) && !run.stderr.includes(leak), `printed ${leak}`);
      }
    });

    it("fails without the secret when required, carries on with a notice when not", () => {
      const required = runScript(script(), { KUBECONFIG_BASE64: "", KUBECONFIG_REQUIRED: "true" });
      assert.equal(required.status, 1);
      assert.match(required.stdout, /::error::The KUBECONFIG_BASE64 secret is empty or not set/);
      const optional = runScript(script(), { KUBECONFIG_BASE64: "", KUBECONFIG_REQUIRED: "false" });
      assert.equal(optional.status, 0);
      assert.equal(optional.outputs.written, "false");
      assert.equal(optional.githubEnv, "");
    });

    it("fails on a secret that is not base64, leaving no file behind and printing none of it", () => {
      const run = runScript(script(), { KUBECONFIG_BASE64: "not base64 at all: s3cr3t!", KUBECONFIG_REQUIRED: "true" });
      assert.equal(run.status, 1);
      assert.match(run.stdout, /::error::The KUBECONFIG_BASE64 secret is not valid base64/);
      assert.ok(!fs.existsSync(path.join(run.runnerTemp, "kubeconfig")));
      assert.ok(!(run.stdout + run.stderr).includes("s3cr3t"));
    });
  });

  describe("the checks can fail (bad workflows)", () => {
    const bad = (steps: string, on = "push") => `
on: ${on}
permissions:
  contents: read
jobs:
  deploy:
    runs-on: ubuntu-latest
    env:
      KUBE: \${{ secrets.KUBECONFIG_BASE64 }}
    steps:
${steps}`;
    const audit = (content: string) => auditWorkflow("bad.yml", parseYaml(content) as Workflow);

    it("GitHub's parser reports a misspelt permission and an unknown context", async () => {
      const errors = await workflowErrors(
        "bad.yml",
        "on: push\npermissions:\n  contents: reed\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ nosuch.value }}\n",
      );
      assert.ok(errors.length >= 2, errors.join("\n"));
      assert.ok(errors.some((e) => /reed/.test(e)), errors.join("\n"));
      assert.ok(errors.some((e) => /nosuch/.test(e)), errors.join("\n"));
    });

    it("GitHub's parser rejects a bad action.yml", async () => {
      const errors = await actionErrors("action.yml", "name: x\ndescription: y\nruns:\n  using: composite\n  steps:\n    - run: echo hi\n      bogus: 1\n");
      assert.ok(errors.length >= 1, "expected an error");
    });

    it("flags a secret interpolated into a run script", () => {
      assert.deepEqual(audit(bad("      - run: deploy --token ${{ secrets.TOKEN }}")), [
        'bad.yml job deploy step "deploy --token ${{ secrets.TOKEN }}": a secret is interpolated into the run script (pass it through env)',
      ]);
    });

    it("flags any other expression interpolated into a run script", () => {
      assert.equal(audit(bad("      - run: echo ${{ github.event.pull_request.title }}")).length, 1);
    });

    it("flags echoing a secret-bearing variable, set -x, and printing the kubeconfig", () => {
      const problems = audit(
        bad(`      - name: leaky
        run: |
          set -eux
          echo "$KUBE"
          printf '%s' "$KUBE" | base64 -d > "$RUNNER_TEMP/kubeconfig"
          cat "$RUNNER_TEMP/kubeconfig"
          kubectl config view --raw
          echo "k=$KUBE" >> "$GITHUB_OUTPUT"`),
      );
      assert.deepEqual(problems, [
        'bad.yml job deploy step "leaky": traces commands (set -x), which prints every secret it expands',
        'bad.yml job deploy step "leaky": prints the secret-bearing variable KUBE: echo "$KUBE"',
        'bad.yml job deploy step "leaky": prints the kubeconfig: cat "$RUNNER_TEMP/kubeconfig"',
        'bad.yml job deploy step "leaky": prints the kubeconfig: kubectl config view --raw',
        'bad.yml job deploy step "leaky": prints the secret-bearing variable KUBE: echo "k=$KUBE" >> "$GITHUB_OUTPUT"',
      ]);
    });

    it("accepts a secret piped into a file, and a step-level secret env that is not printed", () => {
      const steps = `      - env:
          TOKEN: \${{ secrets.TOKEN }}
        run: |
          umask 077
          printf '%s' "$KUBE" | base64 --decode > "$RUNNER_TEMP/kubeconfig"
          echo "KUBECONFIG=$RUNNER_TEMP/kubeconfig" >> "$GITHUB_ENV"
          deploy --token "$TOKEN"`;
      assert.deepEqual(audit(bad(steps)), []);
    });

    it("flags pull_request_target, an unpinned action and a branch-pinned action", () => {
      const problems = audit(
        bad("      - uses: actions/checkout\n      - uses: pulumi/actions@main\n      - uses: actions/setup-node@v7", "pull_request_target"),
      );
      assert.deepEqual(problems, [
        "bad.yml: triggered by pull_request_target",
        "bad.yml job deploy: actions/checkout is not pinned to a major version or a commit SHA",
        "bad.yml job deploy: pulumi/actions@main is not pinned to a major version or a commit SHA",
      ]);
    });

    it("flags pull_request_target in a trigger list", () => {
      assert.deepEqual(audit(bad("      - run: true", "[push, pull_request_target]")), [
        "bad.yml: triggered by pull_request_target",
      ]);
    });
  });
});
