/**
 * The Pulumi steps of preview.yml and deploy.yml, run through the real Pulumi GitHub Action
 * (pulumi/actions v7, built from lab/vendor/pulumi-actions-v7) by the runner stand-in (lab/action/runner.ts), with
 * the real engine (lab/scripts/engine.sh) in render mode, and GitHub's REST API stood in for on
 * loopback (lab/action/github-api.ts). Run with `npm run test:action`; see the README, CI/CD.
 *
 * The stack is made once beforehand, as the README tells a user to do from a laptop: a
 * passphrase stack in a local file backend (EngineStack from the engine tests, stack `engine`),
 * its committed config the dev catalog with every `app:` swapped for a pinned `image:` (no
 * docker provider here) plus `k8s-chain:renderDir`, so the kubernetes provider writes YAML to
 * a folder instead of calling a cluster. The workflows then find it through the repository
 * variables PULUMI_STACK and PULUMI_BACKEND_URL, exactly as on GitHub.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { devServices, EngineStack, engineBin, pinned, REPO } from "../engine/harness";
import { parse as parseYaml } from "yaml";
import { GitHubStandIn } from "../../lab/action/github-api";
import { buildAction, BuiltAction, RunnerJob, StepResult } from "../../lab/action/runner";

const REPOSITORY = "acme/k8s-chain";
const PR = 7;
/** The stack EngineStack creates; the workflows get it from vars.PULUMI_STACK. */
const STACK = "engine";
/** EngineStack's passphrase: the PULUMI_CONFIG_PASSPHRASE secret must open its stack. */
const PASSPHRASE = "k8s-chain-engine-tests";
const sha = (seed: string) => createHash("sha1").update(seed).digest("hex");
/** The keys the laptop committed in the stack's config file; the workflows add only `registry`. */
const COMMITTED_KEYS = ["k8s-chain:renderDir", "k8s-chain:services"];

function repository() {
  return { full_name: REPOSITORY, name: REPOSITORY.split("/")[1], owner: { login: REPOSITORY.split("/")[0] } };
}

/** A `pull_request` (synchronize) webhook payload, as much of it as the workflow and action read. */
function pullRequestEvent(headSha: string, headRepo = REPOSITORY) {
  return {
    name: "pull_request",
    payload: {
      action: "synchronize",
      number: PR,
      pull_request: {
        number: PR,
        state: "open",
        title: "Scale service-b",
        head: { ref: "scale-service-b", sha: headSha, repo: { full_name: headRepo, fork: headRepo !== REPOSITORY } },
        base: { ref: "main", sha: sha("base"), repo: { full_name: REPOSITORY } },
      },
      repository: repository(),
      sender: { login: "octocat" },
    },
  };
}

function pushEvent(commit: string) {
  return {
    name: "push",
    payload: {
      ref: "refs/heads/main",
      before: sha("before"),
      after: commit,
      head_commit: { id: commit },
      repository: repository(),
      pusher: { name: "octocat" },
    },
  };
}

/** The last lines of a step's log, for assertion messages. */
function tail(r: StepResult, n = 40): string {
  return `\n--- exit ${r.exitCode}, last ${n} log lines:\n${r.log.slice(-n).join("\n")}`;
}

/** Every regular file under dir (symlinks, i.e. the linked repo, not followed). */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : e.isFile() ? [p] : [];
  });
}

describe("pulumi/actions runs the workflows' Pulumi steps (runner stand-in, real engine, render mode)", function () {
  this.timeout(0);
  const token = "ghs_" + randomBytes(18).toString("hex");
  const secrets = { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
  let engine: { bin: string; cli: string };
  let action: BuiltAction;
  let github: GitHubStandIn;
  let laptop: EngineStack;
  let machineEnv: Record<string, string>;
  let vars: Record<string, string>;
  /** Every step run, in order. */
  const results: StepResult[] = [];
  const timings: string[] = [];
  let jobCount = 0;

  const goodConfig = () => ({ renderDir: laptop.renderDir, services: devServices() });
  const configValue = (key: string) => laptop.ok(["config", "get", `k8s-chain:${key}`]).stdout.trim();
  /**
   * The keys of the stack's config file in the checkout (Pulumi.engine.yaml), where the action's
   * `config-map` lands (`pulumi config set-all`): the committed keys plus what the workflow set.
   * No `k8s-chain:imageTag` among them means CI left the tag to the stack's default (a digest
   * of each image's build inputs); a workflow that forced it (to the commit, say) would add it.
   */
  const configKeys = () => {
    const doc = parseYaml(fs.readFileSync(path.join(laptop.projectDir, `Pulumi.${STACK}.yaml`), "utf8")) ?? {};
    return Object.keys(doc.config ?? {}).sort();
  };

  function job(
    workflow: string,
    id: string,
    event: { name: string; payload: Record<string, unknown> },
    commit: string,
    ref: string,
    jobVars = vars,
  ): RunnerJob {
    return new RunnerJob({
      workflow,
      job: id,
      action,
      workspace: laptop.projectDir,
      event,
      github: { repository: REPOSITORY, sha: commit, ref, token },
      apiUrl: github.url,
      vars: jobVars,
      secrets,
      machineEnv,
      runnerDir: path.join(laptop.root, "runner", `${++jobCount}-${workflow}-${id}`),
    });
  }

  const previewJob = (headSha: string, jobVars = vars) =>
    job("preview.yml", "preview", pullRequestEvent(headSha), sha(`merge-${headSha}`), `refs/pull/${PR}/merge`, jobVars);

  async function run(j: RunnerJob, step: string, what: string): Promise<StepResult> {
    const r = await j.run(step);
    results.push(r);
    timings.push(`${what.padEnd(44)} ${r.seconds.toFixed(1).padStart(6)} s  exit ${r.exitCode}`);
    return r;
  }

  /** The calls the stand-in received while fn ran. */
  async function callsDuring<T>(fn: () => Promise<T>): Promise<[T, GitHubStandIn["calls"]]> {
    const before = github.calls.length;
    const result = await fn();
    return [result, github.calls.slice(before)];
  }

  before(async function () {
    engine = engineBin();
    action = buildAction((line) => console.log(`      ${line}`));
    github = await GitHubStandIn.start(REPOSITORY, token);
    laptop = new EngineStack(engine);
    laptop.init(goodConfig());
    // The runner machine: a HOME of its own (so a fresh ~/.pulumi), the engine on PATH.
    const home = path.join(laptop.root, "runner-home");
    fs.mkdirSync(home);
    machineEnv = {
      PATH:
        [...new Set([path.dirname(engine.cli), engine.bin, path.dirname(process.execPath)])].join(path.delimiter) +
        ":/usr/local/bin:/usr/bin:/bin",
      HOME: home,
      LANG: "C.UTF-8",
      // Any client that honours the proxy variables and tries to leave the machine is recorded
      // and refused by the stand-in; GitHub's API is on loopback, which they bypass.
      HTTP_PROXY: github.url,
      HTTPS_PROXY: github.url,
      http_proxy: github.url,
      https_proxy: github.url,
      NO_PROXY: "127.0.0.1,localhost",
      no_proxy: "127.0.0.1,localhost",
      // Offline stand-ins for what a runner would download: the kubernetes plugin is
      // preinstalled below, nothing else is fetched, no update check.
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
      PULUMI_SKIP_UPDATE_CHECK: "true",
    };
    // The provider, installed into the runner's ~/.pulumi under the version @pulumi/kubernetes
    // asks for (as the engine tests do; a runner would download it).
    const version = JSON.parse(
      fs.readFileSync(path.join(REPO, "node_modules", "@pulumi", "kubernetes", "package.json"), "utf8"),
    ).version;
    const install = spawnSync(
      engine.cli,
      [
        "plugin",
        "install",
        "resource",
        "kubernetes",
        version,
        "--file",
        path.join(engine.bin, "pulumi-resource-kubernetes"),
        "--non-interactive",
      ],
      { env: machineEnv, encoding: "utf8" },
    );
    assert.equal(install.status, 0, `plugin install: ${install.stdout}${install.stderr}`);
    vars = { PULUMI_STACK: STACK, PULUMI_BACKEND_URL: `file://${path.join(laptop.root, "state")}` };
    const v = laptop.ok(["version"]).stdout.trim();
    console.log(
      `      action: ${action.name}@${action.major} (${action.using}, run by node ${process.version}) from ${action.dir}${action.builtSeconds ? `, built in ${action.builtSeconds} s` : ", cached"}`,
    );
    console.log(`      engine: pulumi ${v} (${engine.cli}); GitHub API stand-in ${github.url}; temp ${laptop.root}`);
  });

  after(async function () {
    console.log("      timings:");
    for (const t of timings) console.log(`        ${t}`);
    await github?.close();
    laptop?.dispose();
  });

  describe("preview.yml on a pull request", () => {
    it("the preview job runs for a pull request from the repository itself, not from a fork", async () => {
      assert.equal(await previewJob(sha("head-1")).condition(), true);
      const fork = job(
        "preview.yml",
        "preview",
        pullRequestEvent(sha("head-1"), "mallory/k8s-chain"),
        sha("m"),
        `refs/pull/${PR}/merge`,
      );
      assert.equal(await fork.condition(), false);
    });

    it("previews the dev catalog and posts one PR comment naming the stack and listing the changes", async () => {
      const headSha = sha("head-1");
      const [r, calls] = await callsDuring(() => run(previewJob(headSha), "pulumi preview", "preview (first push)"));
      assert.equal(r.exitCode, 0, tail(r));
      assert.deepEqual(
        r.annotations.filter((a) => a.level !== "notice"),
        [],
        "no error or warning (an unknown input would be one)",
      );
      // No IMAGE_REGISTRY variable: the workflow's config-map is empty, which the action reads
      // as absent (actions-parsers' getYAMLInput: a trimmed empty input is undefined, and
      // src/main.ts sets config only when there is some), so the stack config is as committed:
      // no imageTag (the stack's default tag), no registry.
      assert.deepEqual(
        configKeys(),
        COMMITTED_KEYS,
        "the preview set stack config (an imageTag would be CI forcing the tag)",
      );
      assert.equal(r.inputs["config-map"].trim(), "", `config-map: ${JSON.stringify(r.inputs["config-map"])}`);

      assert.deepEqual(
        calls.map((c) => `${c.method} ${c.url}`),
        [`GET /repos/${REPOSITORY}/issues/${PR}/comments`, `POST /repos/${REPOSITORY}/issues/${PR}/comments`],
      );
      const comments = github.commentsOn(PR);
      assert.equal(comments.length, 1);
      const body = comments[0].body;
      assert.ok(body.startsWith(`#### :tropical_drink: \`preview\` on k8s-chain/${STACK}`), body.slice(0, 200));
      for (const name of Object.keys(devServices())) {
        assert.match(
          body,
          new RegExp(`\\+ .*kubernetes:apps/v1:Deployment +${name}-deployment +create`),
          `${name}'s Deployment in:\n${body}`,
        );
        assert.match(
          body,
          new RegExp(`\\+ .*kubernetes:core/v1:Service +${name}-service +create`),
          `${name}'s Service`,
        );
      }
      // The resource list and its total agree (the engine's own count of creates).
      const total = /\+ (\d+) to create/.exec(body);
      assert.ok(total, `no "N to create" in:\n${body}`);
      // One `+  <type> <name> create` progress line per resource (the stack's comes twice).
      const rows = new Set(body.split("\n").flatMap((l) => /^\+\s+(\S+ \S+) create\s*$/.exec(l)?.[1] ?? []));
      assert.ok(rows.has("pulumi:pulumi:Stack k8s-chain-engine"), body);
      assert.equal(rows.size, Number(total[1]), body);

      // The job summary (comment-on-summary: true) carries the same report.
      assert.match(r.summary, new RegExp(`<h1>Pulumi k8s-chain/${STACK} results</h1>`));
      assert.match(r.summary, /kubernetes:apps\/v1:Deployment +sample-app-deployment +create/);
      // A preview changes nothing.
      assert.deepEqual(laptop.exportState().deployment.resources ?? [], []);
      assert.deepEqual(laptop.rendered(), []);
    });

    it("a second run (a new push to the pull request) edits that comment instead of adding one", async () => {
      assert.equal(github.commentsOn(PR).length, 1, "needs the first preview's comment");
      const before = github.commentsOn(PR)[0];
      const createdAt = before.created_at;
      const headSha = sha("head-2");
      // Meanwhile the repository got an IMAGE_REGISTRY variable: the config-map now sets it.
      const withRegistry = { ...vars, IMAGE_REGISTRY: "ghcr.io/acme" };
      const [r, calls] = await callsDuring(() =>
        run(previewJob(headSha, withRegistry), "pulumi preview", "preview (second push, registry)"),
      );
      assert.equal(r.exitCode, 0, tail(r));
      assert.deepEqual(
        r.annotations.filter((a) => a.level !== "notice"),
        [],
      );
      assert.deepEqual(
        configKeys(),
        [...COMMITTED_KEYS, "k8s-chain:registry"].sort(),
        "the preview set the registry and nothing else (no imageTag)",
      );
      assert.equal(configValue("registry"), "ghcr.io/acme");
      assert.deepEqual(
        calls.map((c) => `${c.method} ${c.url}`),
        [`GET /repos/${REPOSITORY}/issues/${PR}/comments`, `PATCH /repos/${REPOSITORY}/issues/comments/${before.id}`],
      );
      const comments = github.commentsOn(PR);
      assert.equal(comments.length, 1);
      assert.equal(comments[0].created_at, createdAt);
      assert.ok(comments[0].body.startsWith(`#### :tropical_drink: \`preview\` on k8s-chain/${STACK}`));
      assert.match(comments[0].body, /\+ \d+ to create/);
    });

    it("a pull request that breaks the config fails the step with the program's validation error", async () => {
      const bad = devServices();
      (bad["service-a"] as { calls: string[] }).calls = ["service-x"];
      bad["sample-app"].nodePort = 20000;
      laptop.setConfig({ renderDir: laptop.renderDir, services: bad });
      const comment = structuredClone(github.commentsOn(PR));
      try {
        const [r, calls] = await callsDuring(() =>
          run(previewJob(sha("head-bad")), "pulumi preview", "preview (config broken)"),
        );
        assert.equal(r.exitCode, 1, tail(r));
        assert.equal(r.outcome, "failure");
        // v7.0.0 does not await its run (src/main.ts), so the failure ends node as an unhandled
        // rejection: no error annotation, but the log shows the engine's output, whose
        // diagnostics are the program's message.
        const log = [...r.log, ...r.annotations.map((a) => a.message)].join("\n");
        assert.match(log, /error: k8s-chain config has 2 problems; nothing was created:/);
        assert.match(
          log,
          /- services\.service-a\.calls: unknown service "service-x" \(known: sample-app, service-b, service-c\)/,
        );
        assert.match(log, /- services\.sample-app\.nodePort: 20000 is not in the NodePort range/);
        // The action stops before commenting: the PR keeps the last good preview's comment.
        assert.deepEqual(calls, []);
        assert.deepEqual(github.commentsOn(PR), comment);
      } finally {
        laptop.setConfig(goodConfig());
      }
    });
  });

  describe("deploy.yml on a push to main", () => {
    it("the up step applies the stack, and the outputs reach the job summary the way the workflow writes them", async () => {
      const commit = sha("main-1");
      vars = { ...vars, IMAGE_REGISTRY: "localhost:5001" };
      const deploy = job("deploy.yml", "deploy", pushEvent(commit), commit, "refs/heads/main");
      const [up, calls] = await callsDuring(() => run(deploy, "up", "up"));
      assert.equal(up.exitCode, 0, tail(up));
      assert.deepEqual(
        up.annotations.filter((a) => a.level !== "notice"),
        [],
      );
      assert.deepEqual(calls, [], "a deploy does not call GitHub");
      // The registry from the variable, and no imageTag: the stack's default tag, not the commit.
      assert.deepEqual(
        configKeys(),
        [...COMMITTED_KEYS, "k8s-chain:registry"].sort(),
        "the up step set the registry and nothing else (no imageTag)",
      );
      assert.equal(configValue("registry"), "localhost:5001");

      // Applied: the state has every resource and the provider rendered every object.
      const services = Object.keys(devServices());
      const state = laptop.exportState().deployment.resources ?? [];
      for (const name of services) {
        assert.ok(
          state.some((s) => s.type === "kubernetes:apps/v1:Deployment" && s.urn.endsWith(`::${name}-deployment`)),
          `${name} in the state`,
        );
      }
      const deployments = laptop.rendered().filter((o) => o.obj.kind === "Deployment");
      assert.deepEqual(deployments.map((d) => d.obj.metadata?.labels?.app).sort(), [...services].sort());

      // The action's outputs (steps.up.outputs), as the next step reads them.
      const urls: Record<string, string> = JSON.parse(up.outputs.urls);
      const nodePorts: Record<string, number> = JSON.parse(up.outputs.nodePorts);
      const images: Record<string, string> = JSON.parse(up.outputs.images);
      assert.equal(urls["sample-app"], "http://sample-app.default.svc.cluster.local:80");
      assert.deepEqual({ ...nodePorts }, { "sample-app": 30080, "service-a": 30081 });
      assert.equal(images["service-c"], pinned("service-c"));

      const summary = await run(deploy, "Stack outputs to the job summary", "job summary step");
      assert.equal(summary.exitCode, 0, tail(summary));
      const lines = deploy.summary.split("\n");
      assert.equal(lines[0], `### Stack \`${STACK}\` at \`${commit}\``);
      for (const name of services) {
        const port = nodePorts[name] ?? "";
        assert.ok(
          lines.includes(`| ${name} | ${urls[name]} | ${port} | \`${pinned(name)}\` |`),
          `${name}'s row in:\n${deploy.summary}`,
        );
      }
    });
  });

  describe("secrets", () => {
    it("the token goes to the GitHub stand-in only, and no secret appears in any log line or file", () => {
      assert.ok(results.length >= 4, "runs the tests above first");
      // The token reached the action only as its github-token input (action.yml's default,
      // ${{ github.token }}), and the stand-in saw it on every call, as GitHub would.
      for (const r of results.filter((s) => s.step.uses?.startsWith("pulumi/actions@"))) {
        assert.equal(r.inputs["github-token"], token);
        assert.deepEqual(
          Object.keys(r.env).filter((k) => r.env[k] === token),
          ["INPUT_GITHUB-TOKEN"],
        );
      }
      assert.ok(github.calls.length > 0, "no call reached the GitHub stand-in (the previews above comment)");
      for (const call of github.calls) {
        assert.equal(call.proxied, false, `a client tried to reach ${call.url} through the proxy`);
        assert.equal(call.authorization, `token ${token}`, `${call.method} ${call.url}`);
        assert.ok(
          !call.body.includes(token) && !call.body.includes(PASSPHRASE),
          `${call.method} ${call.url} body carries a secret`,
        );
      }
      // No log line, annotation, output or summary of any step carries a secret.
      for (const r of results) {
        for (const secret of [token, PASSPHRASE]) {
          const line = r.log.find((l) => l.includes(secret));
          assert.equal(line, undefined, `${r.step.name ?? r.step.id} printed a secret: ${line}`);
          for (const text of [...r.annotations.map((a) => a.message), ...Object.values(r.outputs), r.summary]) {
            assert.ok(
              !text.includes(secret),
              `${r.step.name ?? r.step.id} wrote a secret to an output, annotation or summary`,
            );
          }
        }
      }
      // Nor any file the runs left: state, stack config, Pulumi home, rendered YAML, runner files.
      for (const file of filesUnder(laptop.root)) {
        const content = fs.readFileSync(file);
        for (const secret of [token, PASSPHRASE]) {
          assert.ok(!content.includes(secret), `${path.relative(laptop.root, file)} holds a secret`);
        }
      }
    });
  });
});
