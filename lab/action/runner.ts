/**
 * A stand-in for the GitHub Actions runner, for tests: it runs steps of this repo's workflows
 * as written in `.github/workflows/*.yml`, one at a time, the way the runner runs them.
 *
 * - `uses: pulumi/actions@<commit SHA> # vN.x.y` (or `@vN`) runs the real action, built once from the vendored source
 *   (`lab/vendor/pulumi-actions-v7`, see {@link buildAction}) and started as a runner
 *   starts a node action: `node dist/index.js` with every input as `INPUT_<NAME>` (action.yml's
 *   defaults, then the step's `with:`), the `GITHUB_*` variables, and the files they name
 *   created beforehand.
 * - `run:` steps run with bash as the runner does (`bash --noprofile --norc -eo pipefail`).
 * - Every `with:`, `env:` and the job's `if:` is read from the workflow file and evaluated with
 *   GitHub's evaluator (`@actions/expressions`) against the contexts the test gives (`github`
 *   with the event payload, `vars`, `secrets`) plus `steps`, `env`, `runner` as the job goes.
 * - After each step the file commands are read back: `GITHUB_OUTPUT` into `steps.<id>.outputs`,
 *   `GITHUB_ENV` and `GITHUB_PATH` into the next steps' environment, `GITHUB_STEP_SUMMARY`
 *   into the job summary; workflow commands on stdout (`::error::`, `::add-mask::`, ...) are
 *   parsed into annotations and masks.
 *
 * What it does not do: check out code, run other actions (checkout, setup-node, login, local
 * actions), step `if:` conditions, services, containers, matrices; it masks nothing (the logs
 * are kept raw so that a test can prove no secret is printed at all).
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { REPO } from "../../tests/engine/harness";
import { evaluateTemplate } from "../../tests/support/expressions";

// ---------------------------------------------------------------------------------------------
// Building the action once.

/** The vendored pulumi/actions source (read-only; copied before building): `K8S_CHAIN_ACTION_SOURCE`, else the repo's `lab/vendor/`. */
const ACTION_SOURCE = process.env.K8S_CHAIN_ACTION_SOURCE ?? path.join(REPO, "lab", "vendor", "pulumi-actions-v7");

const CACHE_ROOT = process.env.K8S_CHAIN_ACTION_CACHE ?? path.join(os.homedir(), ".cache", "k8s-chain", "action");

/**
 * How the action is built, as its package.json's `build` and `postbuild` do (the husky
 * `postinstall` needs a git checkout, so install scripts are skipped; npm resolves the
 * dependencies from the action's yarn.lock). Part of the cache key.
 */
const BUILD_STEPS: string[][] = [
  ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"],
  ["node_modules/.bin/ncc", "build", "src/main.ts", "-e", "typescript", "-o", "dist"],
  ["node", "scripts/replace-ts.js"],
];

interface ActionInput {
  description?: string;
  required?: boolean;
  default?: string;
}

export interface BuiltAction {
  /** Folder holding `action.yml` and `dist/index.js`. */
  dir: string;
  /** The `owner/name` it is, and the major version the vendored source is (`v7`). */
  name: string;
  major: string;
  inputs: Record<string, ActionInput>;
  /** `runs.main`, relative to dir. */
  main: string;
  /** `runs.using` (node24: run here by this machine's node, see the README). */
  using: string;
  /** Seconds the build took in this call; 0 when it came from the cache. */
  builtSeconds: number;
}

function filesUnder(dir: string, rel = ""): string[] {
  return fs
    .readdirSync(path.join(dir, rel), { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => (e.isDirectory() ? filesUnder(dir, path.join(rel, e.name)) : [path.join(rel, e.name)]));
}

function makeWritable(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) makeWritable(path.join(dir, e.name));
    else fs.chmodSync(path.join(dir, e.name), 0o644);
  }
}

/** The cache key: the vendored files, the build steps and the node major version. */
function actionKey(): string {
  const hash = createHash("sha256");
  for (const file of filesUnder(ACTION_SOURCE)) {
    hash
      .update(file + "\0")
      .update(fs.readFileSync(path.join(ACTION_SOURCE, file)))
      .update("\0");
  }
  hash.update(JSON.stringify(BUILD_STEPS)).update(process.versions.node.split(".")[0]);
  return `${path.basename(ACTION_SOURCE)}_${hash.digest("hex").slice(0, 12)}`;
}

/**
 * Builds the vendored action into `~/.cache/k8s-chain/action/<key>` (K8S_CHAIN_ACTION_CACHE)
 * unless that is there already: a copy of the source in a temp folder of the cache, npm
 * install, ncc, then only `action.yml`, `LICENSE` and `dist/` moved into place by one rename,
 * so a build that dies half-way leaves nothing that looks complete.
 */
export function buildAction(log: (line: string) => void = () => {}): BuiltAction {
  if (!fs.existsSync(path.join(ACTION_SOURCE, "action.yml"))) {
    throw new Error(
      `no pulumi/actions source at ${ACTION_SOURCE}: lab/vendor/pulumi-actions-v7 is part of the repo (or set K8S_CHAIN_ACTION_SOURCE)`,
    );
  }
  const key = actionKey();
  const dir = path.join(CACHE_ROOT, key);
  let builtSeconds = 0;
  if (!fs.existsSync(path.join(dir, ".complete"))) {
    const t0 = Date.now();
    fs.mkdirSync(CACHE_ROOT, { recursive: true });
    const work = fs.mkdtempSync(path.join(CACHE_ROOT, `.build-${key}-`));
    try {
      const src = path.join(work, "src");
      fs.cpSync(ACTION_SOURCE, src, { recursive: true });
      makeWritable(src); // the vendor folder is read-only; the copy must not be
      const buildLog = path.join(work, "build.log");
      for (const [cmd, ...args] of BUILD_STEPS) {
        log(`action build: ${cmd} ${args.join(" ")}`);
        const r = spawnSync(cmd, args, { cwd: src, encoding: "utf8", maxBuffer: 1 << 26 });
        fs.appendFileSync(buildLog, `$ ${cmd} ${args.join(" ")}\n${r.stdout ?? ""}${r.stderr ?? ""}`);
        if (r.status !== 0) {
          throw new Error(
            `building pulumi/actions failed at \`${cmd} ${args.join(" ")}\` (exit ${r.status ?? r.error})\n${(r.stdout ?? "") + (r.stderr ?? "")}`.slice(
              0,
              8000,
            ),
          );
        }
      }
      const out = path.join(work, "out");
      fs.mkdirSync(out);
      for (const entry of ["action.yml", "LICENSE", "dist"]) {
        fs.cpSync(path.join(src, entry), path.join(out, entry), { recursive: true });
      }
      fs.copyFileSync(buildLog, path.join(out, "build.log"));
      builtSeconds = Math.round((Date.now() - t0) / 100) / 10;
      fs.writeFileSync(path.join(out, ".complete"), `${builtSeconds}\n`);
      try {
        fs.renameSync(out, dir);
      } catch (e) {
        // Another run finished the same build first: keep its copy.
        if (!fs.existsSync(path.join(dir, ".complete"))) throw e;
      }
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
  const metadata = parseYaml(fs.readFileSync(path.join(dir, "action.yml"), "utf8")) as {
    inputs?: Record<string, ActionInput>;
    runs: { using: string; main: string };
  };
  const major = /-(v\d+)$/.exec(path.basename(ACTION_SOURCE))?.[1] ?? "";
  return {
    dir,
    name: "pulumi/actions",
    major,
    inputs: metadata.inputs ?? {},
    main: metadata.runs.main,
    using: metadata.runs.using,
    builtSeconds,
  };
}

// ---------------------------------------------------------------------------------------------
// Runner file and workflow commands.

/**
 * Parses a file command file the runner reads back (`GITHUB_OUTPUT`, `GITHUB_ENV`):
 * `name=value` lines and `name<<DELIMITER` ... `DELIMITER` blocks, as @actions/core writes them.
 */
function parseFileCommand(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") continue;
    const heredoc = /^([^=]+?)<<(.+)$/.exec(line);
    if (heredoc && !line.includes("=")) {
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== heredoc[2]; i++) value.push(lines[i]);
      if (i >= lines.length) throw new Error(`file command: no closing delimiter ${heredoc[2]} for ${heredoc[1]}`);
      out[heredoc[1]] = value.join("\n");
    } else {
      const eq = line.indexOf("=");
      if (eq <= 0) throw new Error(`file command: cannot parse line ${JSON.stringify(line)}`);
      out[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  return out;
}

interface Annotation {
  level: "error" | "warning" | "notice";
  message: string;
}

const unescapeData = (s: string) => s.replace(/%0D/g, "\r").replace(/%0A/g, "\n").replace(/%25/g, "%");

/** The workflow commands (`::name props::data`) in a step's stdout. */
function workflowCommands(stdout: string): { annotations: Annotation[]; masks: string[] } {
  const annotations: Annotation[] = [];
  const masks: string[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^::([a-z-]+)(?: [^:]*)?::(.*)$/.exec(line.replace(/\r$/, ""));
    if (!m) continue;
    const [, command, data] = m;
    if (command === "error" || command === "warning" || command === "notice") {
      annotations.push({ level: command, message: unescapeData(data) });
    } else if (command === "add-mask") {
      masks.push(unescapeData(data));
    }
  }
  return { annotations, masks };
}

// ---------------------------------------------------------------------------------------------
// The workflow, as the YAML says it.

type Scalar = string | number | boolean | null;

interface WorkflowStep {
  id?: string;
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  shell?: string;
  with?: Record<string, Scalar>;
  env?: Record<string, Scalar>;
}

interface WorkflowJob {
  if?: string;
  env?: Record<string, Scalar>;
  steps?: WorkflowStep[];
}

interface Workflow {
  name?: string;
  env?: Record<string, Scalar>;
  jobs: Record<string, WorkflowJob>;
}

const WORKFLOWS_DIR = path.join(REPO, ".github", "workflows");

// ---------------------------------------------------------------------------------------------
// A job, run step by step.

interface JobOptions {
  /** The workflow file name under .github/workflows (read when the job is created). */
  workflow: string;
  /** The job id in it. */
  job: string;
  /** The built pulumi/actions, for steps that use it. */
  action: BuiltAction;
  /** GITHUB_WORKSPACE: the checkout the steps run in. */
  workspace: string;
  /** The event that triggered the run, and its webhook payload (written to GITHUB_EVENT_PATH). */
  event: { name: string; payload: Record<string, unknown> };
  /** `github.*` values: repository `owner/name`, sha, ref, the job token. */
  github: { repository: string; sha: string; ref: string; token: string; actor?: string };
  /** Where GitHub's REST API is: GITHUB_API_URL (and GITHUB_SERVER_URL, GITHUB_GRAPHQL_URL). */
  apiUrl: string;
  vars: Record<string, string>;
  /** Repository secrets (GITHUB_TOKEN is added: `secrets.GITHUB_TOKEN` is the job token). */
  secrets: Record<string, string>;
  /** The runner machine's own environment (PATH, HOME, ...), as the steps inherit it. */
  machineEnv: Record<string, string>;
  /** A folder of its own for the runner's files (temp, tool cache, step files, logs). */
  runnerDir: string;
}

export interface StepResult {
  step: WorkflowStep;
  exitCode: number;
  outcome: "success" | "failure";
  stdout: string;
  stderr: string;
  /** stdout and stderr lines in the order they came. */
  log: string[];
  annotations: Annotation[];
  masks: string[];
  outputs: Record<string, string>;
  summary: string;
  /** The inputs the action got (action steps), after defaults and evaluation. */
  inputs: Record<string, string>;
  /** The environment the step's process got. */
  env: Record<string, string>;
  seconds: number;
}

export class RunnerJob {
  /** The `steps` context: outputs and outcome of each step with an id. */
  readonly steps: Record<string, { outputs: Record<string, string>; outcome: string; conclusion: string }> = {};
  readonly results: StepResult[] = [];
  private readonly workflow: Workflow;
  private readonly workflowText: string;
  private readonly definition: WorkflowJob;
  private readonly addedEnv: Record<string, string> = {};
  private readonly addedPath: string[] = [];
  private readonly temp: string;
  private readonly toolCache: string;
  private readonly eventPath: string;
  private readonly runId = String(Math.floor(Math.random() * 1e9));

  constructor(private readonly opts: JobOptions) {
    this.workflowText = fs.readFileSync(path.join(WORKFLOWS_DIR, opts.workflow), "utf8");
    this.workflow = parseYaml(this.workflowText) as Workflow;
    const job = this.workflow.jobs?.[opts.job];
    if (!job) throw new Error(`${opts.workflow} has no job ${opts.job}`);
    this.definition = job;
    this.temp = path.join(opts.runnerDir, "temp");
    this.toolCache = path.join(opts.runnerDir, "toolcache");
    fs.mkdirSync(this.temp, { recursive: true });
    fs.mkdirSync(this.toolCache, { recursive: true });
    fs.mkdirSync(path.join(opts.runnerDir, "logs"), { recursive: true });
    this.eventPath = path.join(opts.runnerDir, "event.json");
    fs.writeFileSync(this.eventPath, JSON.stringify(opts.event.payload, null, 2));
  }

  /** The job summary so far: every step's GITHUB_STEP_SUMMARY, in order. */
  get summary(): string {
    return this.results.map((r) => r.summary).join("");
  }

  /** The job's `if:` (true when it has none), evaluated as GitHub would for this event. */
  async condition(): Promise<boolean> {
    const cond = this.definition.if;
    if (cond === undefined) return true;
    const expr = cond.trim().startsWith("${{") ? cond : `\${{ ${cond} }}`;
    return (await evaluateTemplate(expr, this.contexts())) === "true";
  }

  /** The step with this id or name. */
  step(idOrName: string): WorkflowStep {
    const found = (this.definition.steps ?? []).filter((s) => s.id === idOrName || s.name === idOrName);
    if (found.length !== 1) {
      throw new Error(
        `${this.opts.workflow} job ${this.opts.job}: ${found.length} steps with id or name ${JSON.stringify(idOrName)}`,
      );
    }
    return found[0];
  }

  /** Runs the step with this id or name, as the runner would, and records its result. */
  async run(idOrName: string, timeoutMs = 15 * 60 * 1000): Promise<StepResult> {
    if (!(await this.condition())) {
      throw new Error(
        `${this.opts.workflow} job ${this.opts.job} would be skipped for this event (if: ${this.definition.if})`,
      );
    }
    const step = this.step(idOrName);
    if (step.if !== undefined) throw new Error(`step ${idOrName}: the stand-in does not evaluate step if: conditions`);
    const index = this.results.length + 1;
    const files = this.stepFiles(index);
    const contexts = this.contexts();
    const env: Record<string, string> = {
      ...this.opts.machineEnv,
      ...this.githubEnv(step, index),
      ...files,
      ...(await this.evaluateMap({ ...this.workflow.env, ...this.definition.env }, contexts)),
      ...this.addedEnv,
      ...(await this.evaluateMap(step.env, contexts)),
    };
    env.PATH = [...this.addedPath, this.opts.machineEnv.PATH ?? "/usr/bin:/bin"].join(path.delimiter);

    let command: string[];
    let inputs: Record<string, string> = {};
    const annotations: Annotation[] = [];
    if (step.uses !== undefined) {
      const [name, pinned] = step.uses.split("@");
      const ref = this.majorOf(name, pinned, idOrName);
      const action = this.opts.action;
      if (name !== action.name)
        throw new Error(`step ${idOrName}: the stand-in runs ${action.name} only, not ${step.uses}`);
      if (ref !== action.major)
        throw new Error(
          `step ${idOrName} uses ${step.uses}, but the vendored source is ${action.name}@${action.major}`,
        );
      inputs = await this.actionInputs(step, contexts, annotations);
      for (const [input, value] of Object.entries(inputs)) {
        env[`INPUT_${input.replace(/ /g, "_").toUpperCase()}`] = value;
      }
      command = [process.execPath, path.join(action.dir, action.main)];
    } else if (step.run !== undefined) {
      if (step.shell !== undefined && step.shell !== "bash")
        throw new Error(`step ${idOrName}: shell ${step.shell} is not supported`);
      const script = path.join(this.temp, `step-${index}.sh`);
      fs.writeFileSync(script, await evaluateTemplate(step.run, contexts));
      command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", script];
    } else {
      throw new Error(`step ${idOrName}: neither uses nor run`);
    }

    const t0 = Date.now();
    const run = await spawnLogged(command, { cwd: this.opts.workspace, env, timeoutMs });
    const seconds = Math.round((Date.now() - t0) / 100) / 10;
    const commands = workflowCommands(run.stdout);
    const result: StepResult = {
      step,
      exitCode: run.exitCode,
      outcome: run.exitCode === 0 ? "success" : "failure",
      stdout: run.stdout,
      stderr: run.stderr,
      log: run.log,
      annotations: [...annotations, ...commands.annotations],
      masks: commands.masks,
      outputs: parseFileCommand(fs.readFileSync(files.GITHUB_OUTPUT, "utf8")),
      summary: fs.readFileSync(files.GITHUB_STEP_SUMMARY, "utf8"),
      inputs,
      env,
      seconds,
    };
    fs.writeFileSync(
      path.join(this.opts.runnerDir, "logs", `${index}-${(step.id ?? step.name ?? "step").replace(/\W+/g, "-")}.log`),
      run.log.join("\n") + "\n",
    );
    this.results.push(result);
    Object.assign(this.addedEnv, parseFileCommand(fs.readFileSync(files.GITHUB_ENV, "utf8")));
    this.addedPath.unshift(
      ...fs
        .readFileSync(files.GITHUB_PATH, "utf8")
        .split("\n")
        .filter((l) => l.trim() !== "")
        .reverse(),
    );
    if (step.id) {
      this.steps[step.id] = { outputs: result.outputs, outcome: result.outcome, conclusion: result.outcome };
    }
    return result;
  }

  /** action.yml's defaults (evaluated: `github-token: ${{ github.token }}`), then `with:`. */
  private async actionInputs(
    step: WorkflowStep,
    contexts: Record<string, unknown>,
    warnings: Annotation[],
  ): Promise<Record<string, string>> {
    const declared = this.opts.action.inputs;
    const inputs: Record<string, string> = {};
    for (const [name, def] of Object.entries(declared)) {
      if (def.default !== undefined) inputs[name] = await evaluateTemplate(String(def.default), contexts);
    }
    const given = await this.evaluateMap(step.with, contexts);
    const unexpected = Object.keys(given).filter((k) => !(k in declared));
    if (unexpected.length > 0) {
      // What the runner says (and then runs the step anyway).
      warnings.push({
        level: "warning",
        message: `Unexpected input(s) '${unexpected.join("', '")}', valid inputs are ['${Object.keys(declared).join("', '")}']`,
      });
    }
    return { ...inputs, ...given };
  }

  private async evaluateMap(
    map: Record<string, Scalar> | undefined,
    contexts: Record<string, unknown>,
  ): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(map ?? {})) {
      out[k] = v === null ? "" : await evaluateTemplate(String(v), contexts);
    }
    return out;
  }

  /** Fresh, empty file-command files for one step. */
  private stepFiles(index: number) {
    const dir = path.join(this.opts.runnerDir, "files", String(index));
    fs.mkdirSync(dir, { recursive: true });
    const files = {
      GITHUB_OUTPUT: path.join(dir, "output"),
      GITHUB_STATE: path.join(dir, "state"),
      GITHUB_ENV: path.join(dir, "env"),
      GITHUB_PATH: path.join(dir, "path"),
      GITHUB_STEP_SUMMARY: path.join(dir, "summary.md"),
    };
    for (const f of Object.values(files)) fs.writeFileSync(f, "");
    return files;
  }

  private githubContext() {
    const { github, event, workspace, apiUrl } = this.opts;
    const [owner] = github.repository.split("/");
    const pr = event.payload.pull_request as { head?: { ref?: string }; base?: { ref?: string } } | undefined;
    return {
      action: "",
      actor: github.actor ?? "octocat",
      api_url: apiUrl,
      base_ref: pr?.base?.ref ?? "",
      event: event.payload,
      event_name: event.name,
      event_path: this.eventPath,
      graphql_url: `${apiUrl}/graphql`,
      head_ref: pr?.head?.ref ?? "",
      job: this.opts.job,
      ref: github.ref,
      ref_name: github.ref.replace(/^refs\/(heads|tags)\//, ""),
      ref_type: github.ref.startsWith("refs/tags/") ? "tag" : "branch",
      repository: github.repository,
      repository_owner: owner,
      retention_days: "90",
      run_attempt: "1",
      run_id: this.runId,
      run_number: "1",
      server_url: apiUrl,
      sha: github.sha,
      token: github.token,
      triggering_actor: github.actor ?? "octocat",
      workflow: this.workflow.name ?? this.opts.workflow,
      workspace,
    };
  }

  private contexts(): Record<string, unknown> {
    return {
      github: this.githubContext(),
      vars: this.opts.vars,
      secrets: { ...this.opts.secrets, GITHUB_TOKEN: this.opts.github.token },
      steps: this.steps,
      env: { ...this.workflow.env, ...this.definition.env, ...this.addedEnv },
      runner: {
        os: "Linux",
        arch: "X64",
        name: "k8s-chain-stand-in",
        temp: this.temp,
        tool_cache: this.toolCache,
        debug: "",
      },
      job: { status: "success" },
      strategy: {},
      matrix: {},
      needs: {},
      inputs: {},
    };
  }

  /**
   * The major version (`v7`) a `uses:` ref names: the ref itself (`@v7`), or, for a ref pinned to
   * a commit SHA, the version in the comment the workflow keeps beside it
   * (`uses: pulumi/actions@<sha> # v7.0.0`), the only place the file says which release it is.
   */
  private majorOf(name: string, ref: string, idOrName: string): string {
    if (!/^[0-9a-f]{40}$/.test(ref)) return ref;
    const escaped = `${name}@${ref}`.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    const comment = new RegExp(`uses:\\s*${escaped}\\s+#\\s*(v\\d+)(\\.\\d+)*\\s*$`, "m").exec(this.workflowText);
    if (!comment)
      throw new Error(`step ${idOrName} uses ${name}@${ref} with no version comment (# vN.x.y) beside the SHA`);
    return comment[1];
  }

  /** The variables the runner sets for every step. */
  private githubEnv(step: WorkflowStep, index: number): Record<string, string> {
    const g = this.githubContext();
    const [actionRepo, actionRef] = (step.uses ?? "").split("@");
    return {
      CI: "true",
      GITHUB_ACTIONS: "true",
      GITHUB_ACTION: step.id ?? `__run_${index}`,
      GITHUB_ACTION_REPOSITORY: actionRepo ?? "",
      GITHUB_ACTION_REF: actionRef ?? "",
      GITHUB_ACTOR: g.actor,
      GITHUB_API_URL: g.api_url,
      GITHUB_BASE_REF: g.base_ref,
      GITHUB_EVENT_NAME: g.event_name,
      GITHUB_EVENT_PATH: g.event_path,
      GITHUB_GRAPHQL_URL: g.graphql_url,
      GITHUB_HEAD_REF: g.head_ref,
      GITHUB_JOB: g.job,
      GITHUB_REF: g.ref,
      GITHUB_REF_NAME: g.ref_name,
      GITHUB_REF_TYPE: g.ref_type,
      GITHUB_REPOSITORY: g.repository,
      GITHUB_REPOSITORY_OWNER: g.repository_owner,
      GITHUB_RETENTION_DAYS: g.retention_days,
      GITHUB_RUN_ATTEMPT: g.run_attempt,
      GITHUB_RUN_ID: g.run_id,
      GITHUB_RUN_NUMBER: g.run_number,
      GITHUB_SERVER_URL: g.server_url,
      GITHUB_SHA: g.sha,
      GITHUB_TRIGGERING_ACTOR: g.triggering_actor,
      GITHUB_WORKFLOW: g.workflow,
      GITHUB_WORKSPACE: g.workspace,
      RUNNER_ARCH: "X64",
      RUNNER_NAME: "k8s-chain-stand-in",
      RUNNER_OS: "Linux",
      RUNNER_TEMP: this.temp,
      RUNNER_TOOL_CACHE: this.toolCache,
    };
  }
}

/** Runs a command to its end without blocking the event loop (the API stand-in lives here). */
function spawnLogged(
  command: string[],
  opts: { cwd: string; env: Record<string, string>; timeoutMs: number },
): Promise<{ exitCode: number; stdout: string; stderr: string; log: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const log: string[] = [];
    const partial = { out: "", err: "" };
    const take = (which: "out" | "err", chunk: string) => {
      const lines = (partial[which] + chunk).split("\n");
      partial[which] = lines.pop() ?? "";
      log.push(...lines);
    };
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
      take("out", c);
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
      take("err", c);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      for (const rest of [partial.out, partial.err]) if (rest !== "") log.push(rest);
      resolve({ exitCode: code ?? (signal ? 128 : -1), stdout, stderr, log });
    });
  });
}
