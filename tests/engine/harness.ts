// Drives the real Pulumi engine (CLI + nodejs language host + kubernetes provider, see
// lab/scripts/engine.sh) against a throwaway stack: local file backend and PULUMI_HOME in a temp
// dir, passphrase secrets, no plugin downloads, the kubernetes provider rendering YAML to a
// folder (`k8s-chain:renderDir`) so no cluster is needed.
import { spawnSync, type ChildProcess } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import type { RawServices } from "../support/catalogs";
import type { KubeObject } from "../support/objects";
import { run, tempDir } from "../support/process";

export const REPO = path.resolve(__dirname, "..", "..");

/** A pinned, made-up reference per service, for suites that never pull it (and run without the docker provider). */
export function pinned(name: string): string {
  return `localhost:5001/${name}@sha256:${createHash("sha256").update(name).digest("hex")}`;
}

/** The dev stack's catalog (`Pulumi.dev.yaml` in `dir`) with every `app:` swapped for `imageFor(name)`. */
export function devServices(imageFor: (name: string) => string = pinned, dir: string = REPO): RawServices {
  const dev = YAML.parse(fs.readFileSync(path.join(dir, "Pulumi.dev.yaml"), "utf8"));
  const services = structuredClone(dev.config["k8s-chain:services"]) as RawServices;
  for (const [name, svc] of Object.entries(services)) {
    delete svc.app;
    svc.image = imageFor(name);
  }
  return services;
}

/**
 * Finds or builds the engine (installed pieces as they are, the rest built once into a cache
 * outside the repo, see lab/scripts/engine.sh) and returns the folder linking its pieces
 * (`pulumi-language-nodejs`, `pulumi-resource-kubernetes`, `pulumi-resource-pulumi-nodejs`) and
 * the `pulumi` to run (an installed CLI or the built one, run from that folder when the nodejs
 * host chosen is not beside it).
 */
export function engineBin(): { bin: string; cli: string } {
  const r = spawnSync("bash", [path.join(REPO, "lab", "scripts", "engine.sh"), "build"], {
    cwd: REPO,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) {
    throw new Error(`lab/scripts/engine.sh build failed (exit ${r.status})`);
  }
  const [bin, cli] = r.stdout.trim().split("\n").slice(-2);
  return { bin, cli };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** One timed pulumi command, for the summary printed at the end. */
interface Timing {
  what: string;
  seconds: number;
  code: number;
}

/** A temporary stack of this repo's program, driven by the real `pulumi` CLI. */
export class EngineStack {
  readonly root: string;
  readonly projectDir: string;
  readonly renderDir: string;
  readonly stack = "engine";
  readonly timings: Timing[] = [];
  /** The `pulumi` executable. */
  readonly cli: string;
  private readonly providerBinary: string;
  /** The environment every `pulumi` command runs with; a scenario may change it (KUBECONFIG, PATH). */
  readonly env: NodeJS.ProcessEnv;
  private readonly configFile: string;

  /**
   * @param engine `bin`: the folder linking the engine's plugins (see {@link engineBin});
   *   `cli`: the `pulumi` to run
   * @param programDir the Pulumi project to run (default: the repo root)
   */
  constructor(
    engine: { bin: string; cli: string },
    programDir: string = REPO,
    /** Extra entries of the project folder: name -> what it links to (a program outside the repo's root needs `node_modules`). */
    links: Record<string, string> = {},
  ) {
    const bin = engine.bin;
    this.root = tempDir("k8s-chain-engine-");
    this.renderDir = path.join(this.root, "rendered");
    // The project is linked into a temp folder so the stack's config file
    // (Pulumi.engine.yaml) never lands in the work tree.
    this.projectDir = path.join(this.root, "project");
    fs.mkdirSync(this.projectDir);
    for (const entry of fs.readdirSync(programDir)) {
      if (entry === ".git" || /^Pulumi\..+\.yaml$/.test(entry)) {
        continue;
      }
      fs.symlinkSync(path.join(programDir, entry), path.join(this.projectDir, entry));
    }
    for (const [name, target] of Object.entries(links)) {
      fs.symlinkSync(target, path.join(this.projectDir, name));
    }
    this.configFile = path.join(this.projectDir, `Pulumi.${this.stack}.yaml`);
    const home = path.join(this.root, "pulumi-home");
    fs.mkdirSync(home);
    fs.mkdirSync(path.join(this.root, "state"));
    // The CLI is run by its path: the nodejs language host lab/scripts/engine.sh chose sits beside
    // it, where the CLI looks for bundled plugins.
    this.cli = engine.cli;
    this.providerBinary = path.join(bin, "pulumi-resource-kubernetes");
    this.env = {
      ...process.env,
      // Providers come from the plugin cache only, matched by version (see init()).
      PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
      PULUMI_HOME: home,
      PULUMI_CONFIG_PASSPHRASE: "k8s-chain-engine-tests",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_SKIP_CONFIRMATIONS: "true",
      PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "true",
      PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
      NO_COLOR: "1",
    };
    delete this.env.PULUMI_ACCESS_TOKEN;
    delete this.env.PULUMI_BACKEND_URL;
    // The language host built here (sdk v3.68.0, the newest the Go module proxy serves, see
    // lab/scripts/engine.sh) predates reading `runtime.options` from the CLI, so it would run
    // the program with ts-node's type-check whatever Pulumi.yaml says. A current host turns
    // `runtime.options.tsconfig` into PULUMI_NODEJS_TSCONFIG_PATH for the program's node
    // process; set it the same way, so the engine runs the program as Pulumi.yaml asks.
    const tsconfig = YAML.parse(fs.readFileSync(path.join(programDir, "Pulumi.yaml"), "utf8"))?.runtime?.options
      ?.tsconfig;
    if (typeof tsconfig === "string") {
      this.env.PULUMI_NODEJS_TSCONFIG_PATH = tsconfig;
    }
  }

  /** Runs `pulumi <args>` in the project folder; never throws on a non-zero exit. */
  pulumi(args: string[], what?: string): RunResult {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(this.cli, [...args, "--non-interactive", "--color", "never"], {
      cwd: this.projectDir,
      env: this.env,
      encoding: "utf8",
      maxBuffer: 1 << 26,
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.error) {
      throw r.error;
    }
    const res = { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, seconds };
    if (what) {
      this.timings.push({ what, seconds, code: res.code });
    }
    return res;
  }

  /**
   * Like {@link pulumi}, but without blocking the event loop, so that watches and load
   * generators in the same process keep their timing while the engine runs.
   */
  async pulumiAsync(args: string[], what?: string, onSpawn?: (child: ChildProcess) => void): Promise<RunResult> {
    const res = await run(this.cli, [...args, "--non-interactive", "--color", "never"], {
      cwd: this.projectDir,
      env: this.env,
      onSpawn,
    });
    if (what) {
      this.timings.push({ what, seconds: res.seconds, code: res.code });
    }
    return res;
  }

  /**
   * The processes this stack's pulumi runs started that are still alive (the CLI, language
   * host, program, providers): every process whose environment carries this stack's
   * PULUMI_HOME. Empty once a run has ended, however it ended, unless something was orphaned.
   */
  processes(): { pid: number; cmdline: string }[] {
    const mark = Buffer.from(`\0PULUMI_HOME=${this.env.PULUMI_HOME}\0`);
    const found: { pid: number; cmdline: string }[] = [];
    for (const entry of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) {
        continue;
      }
      try {
        const environ = Buffer.concat([Buffer.from([0]), fs.readFileSync(`/proc/${entry}/environ`)]);
        if (environ.includes(mark)) {
          const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ").trim();
          found.push({ pid: Number(entry), cmdline });
        }
      } catch {
        // Gone meanwhile, or not ours to read.
      }
    }
    return found;
  }

  /** Like {@link pulumi}, but throws with the output when the command fails. */
  ok(args: string[], what?: string): RunResult {
    const r = this.pulumi(args, what);
    if (r.code !== 0) {
      throw new Error(`pulumi ${args.join(" ")} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    }
    return r;
  }

  /** `pulumi login file://<temp>` and `pulumi stack init` with the passphrase provider. */
  init(config: Record<string, unknown>): void {
    this.ok(["login", `file://${path.join(this.root, "state")}`]);
    // Install the built provider into the temp PULUMI_HOME under the version the npm SDK
    // asks for (@pulumi/kubernetes' package.json), so the engine finds it by that version.
    const sdk: { version: string } = JSON.parse(
      fs.readFileSync(path.join(REPO, "node_modules", "@pulumi", "kubernetes", "package.json"), "utf8"),
    );
    const version = sdk.version;
    this.ok(["plugin", "install", "resource", "kubernetes", version, "--file", this.providerBinary]);
    // The docker provider, when the suite built it (lab/scripts/docker-provider.sh): the stack's
    // AppImage builds with it. Without it, only catalogs of prebuilt images run.
    const dockerProvider = process.env.K8S_CHAIN_DOCKER_PROVIDER;
    if (dockerProvider) {
      const docker: { version: string } = JSON.parse(
        fs.readFileSync(path.join(REPO, "node_modules", "@pulumi", "docker", "package.json"), "utf8"),
      );
      this.ok(["plugin", "install", "resource", "docker", docker.version, "--file", dockerProvider]);
    }
    this.ok(["stack", "init", this.stack, "--secrets-provider", "passphrase"]);
    this.setConfig(config);
  }

  /**
   * Replaces the stack's config (keeps the secrets salt Pulumi wrote): `config` as `k8s-chain:*`
   * keys, `other` as full keys of other namespaces (`kubernetes:kubeconfig`).
   */
  setConfig(config: Record<string, unknown>, other: Record<string, unknown> = {}): void {
    const doc = fs.existsSync(this.configFile) ? (YAML.parse(fs.readFileSync(this.configFile, "utf8")) ?? {}) : {};
    doc.config = { ...Object.fromEntries(Object.entries(config).map(([k, v]) => [`k8s-chain:${k}`, v])), ...other };
    fs.writeFileSync(this.configFile, YAML.stringify(doc));
  }

  /** `pulumi preview --json --show-replacement-steps`, parsed: a replacement is listed as
   * its steps in engine order (`create-replacement`, `replace`, `delete-replaced`, or
   * `delete-replaced` first when it is delete-before-replace). */
  previewJson(what: string): { result: RunResult; json: PreviewJson } {
    const result = this.pulumi(["preview", "--json", "--show-replacement-steps"], what);
    let json: PreviewJson;
    try {
      json = JSON.parse(result.stdout);
    } catch {
      throw new Error(
        `preview printed no JSON (exit ${result.code})\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
      );
    }
    return { result, json };
  }

  /** The stack's deployment (`pulumi stack export`), parsed. */
  exportState(): { deployment: { resources?: StateResource[] } } {
    return JSON.parse(this.ok(["stack", "export"]).stdout);
  }

  /** Every object rendered under renderDir, with the file it came from. */
  rendered(): RenderedObject[] {
    const out: RenderedObject[] = [];
    const walk = (dir: string): void => {
      if (!fs.existsSync(dir)) {
        return;
      }
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) {
          walk(p);
        } else if (/\.ya?ml$/.test(e.name)) {
          for (const d of YAML.parseAllDocuments(fs.readFileSync(p, "utf8"))) {
            const obj = d.toJS();
            if (obj) {
              out.push({ file: path.relative(this.renderDir, p), obj });
            }
          }
        }
      }
    };
    walk(this.renderDir);
    return out;
  }

  /** Removes the temp folder (state, home, rendered files). */
  dispose(): void {
    if (!process.env.K8S_CHAIN_ENGINE_KEEP) {
      fs.rmSync(this.root, { recursive: true, force: true });
    }
  }
}

export interface PreviewStep {
  op: string;
  urn: string;
  provider?: string;
  diffReasons?: string[];
  replaceReasons?: string[];
  detailedDiff?: Record<string, { kind: string; inputDiff?: boolean }>;
  newState?: { type?: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> };
  oldState?: { type?: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> };
}

export interface PreviewJson {
  steps?: PreviewStep[];
  diagnostics?: { message?: string; severity?: string; urn?: string }[];
  changeSummary?: Record<string, number>;
  duration?: number;
}

interface StateResource {
  urn: string;
  type: string;
  id?: string;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
}

export interface RenderedObject {
  file: string;
  /** The parsed object. */
  obj: KubeObject;
}

/** `urn:pulumi:stack::project::a$b$type::name` -> `type`. */
export function urnType(urn: string): string {
  const parts = urn.split("::");
  const chain = parts[2] ?? "";
  return chain.split("$").pop() ?? "";
}

/** `urn:...::name` -> `name`. */
export function urnName(urn: string): string {
  const parts = urn.split("::");
  return parts[parts.length - 1];
}
