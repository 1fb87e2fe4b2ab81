// Helpers for tests/images/images.e2e.ts: the docker CLI against the private Docker engine that
// lab/scripts/images/test-images.sh started, the private registry's HTTP API, and plain HTTP
// probes of the running containers. Every error a helper throws starts with the app's name.
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { run, type Ran } from "../support/process";

function required(name: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(
      `${name} is not set: run this suite through \`npm run test:images\` (lab/scripts/images/test-images.sh)`,
    );
  }
  return v;
}

export const env = {
  docker: process.env.K8S_CHAIN_DOCKER || "docker",
  registry: required("K8S_CHAIN_REGISTRY"),
  baseImage: required("K8S_CHAIN_BASE_IMAGE"),
  appsDir: required("K8S_CHAIN_APPS_DIR"),
  work: required("K8S_CHAIN_IMAGES_WORK"),
};

/** Runs the docker CLI; never throws on a non-zero exit (a timeout's is -1). */
export function docker(args: string[], timeoutMs = 600_000): Promise<Ran> {
  return run(env.docker, args, { timeoutMs });
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** Runs the docker CLI and throws `<app>: <what> failed ...` on a non-zero exit. */
export async function dockerOk(app: string, what: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await docker(args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(`${app}: ${what} failed (docker ${args[0]} exit ${r.code}):\n${tail(r.stderr || r.stdout, 15)}`);
  }
  return r.stdout.trim();
}

interface Reply {
  status: number;
  text: string;
  json: unknown;
}

export function get(url: string, timeoutMs = 5000, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers, timeout: timeoutMs }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls GET <url>/health every 20 ms until it answers 200 {"status":"ok"}; returns the ms
 * since `since`. Fails naming the app if the container exits or the deadline passes.
 */
export async function waitHealthy(
  app: string,
  container: string,
  url: string,
  since: number,
  deadlineMs = 30_000,
): Promise<number> {
  let last = "no answer yet";
  for (;;) {
    try {
      const r = await get(`${url}/health`, 1000);
      if (r.status === 200) {
        const body = r.json as { status?: unknown } | undefined;
        if (body?.status !== "ok")
          throw new Error(`${app}: GET /health answered 200 with ${r.text}, expected {"status":"ok"}`);
        return Date.now() - since;
      }
      last = `HTTP ${r.status} ${r.text}`;
    } catch (e) {
      if ((e as Error).message.startsWith(`${app}:`)) throw e;
      last = (e as Error).message;
    }
    const running = await docker(["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", container]);
    if (running.stdout.startsWith("false")) {
      const logs = await docker(["logs", "--tail", "20", container]);
      throw new Error(
        `${app}: container exited (${running.stdout.trim()}) before /health answered 200:\n${tail(logs.stdout + logs.stderr, 20)}`,
      );
    }
    if (Date.now() - since > deadlineMs) {
      const logs = await docker(["logs", "--tail", "20", container]);
      throw new Error(
        `${app}: /health not 200 within ${deadlineMs} ms (last: ${last}):\n${tail(logs.stdout + logs.stderr, 20)}`,
      );
    }
    await sleep(20);
  }
}

/** The registry's manifest for `repo` at a tag or digest: its digest and summed blob sizes. */
export async function registryManifest(
  app: string,
  reference: string,
): Promise<{ digest: string; compressedBytes: number }> {
  const url = `http://${env.registry}/v2/${app}/manifests/${reference}`;
  const res = await fetch(url, {
    headers: {
      accept: [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
      ].join(", "),
    },
  });
  if (res.status !== 200) throw new Error(`${app}: registry GET ${url} answered ${res.status}: ${await res.text()}`);
  const digest = res.headers.get("docker-content-digest") ?? "";
  const m = (await res.json()) as { config?: { size: number }; layers?: { size: number }[] };
  if (!m.layers) throw new Error(`${app}: registry manifest ${reference} has no layers (a manifest list?)`);
  const compressedBytes = (m.config?.size ?? 0) + m.layers.reduce((n, l) => n + l.size, 0);
  return { digest, compressedBytes };
}

/** Checks the Dockerfile keeps the contract the harness relies on: `ARG NODE_IMAGE` before the first FROM. */
export function checkDockerfile(app: string, appsDir: string): string {
  const file = path.join(appsDir, app, "Dockerfile");
  if (!fs.existsSync(file)) throw new Error(`${app}: no Dockerfile at ${file}`);
  const lines = fs
    .readFileSync(file, "utf8")
    .split("\n")
    .map((l) => l.trim());
  const firstFrom = lines.findIndex((l) => /^FROM\s/i.test(l));
  const arg = lines.findIndex((l) => /^ARG\s+NODE_IMAGE(=|\s|$)/i.test(l));
  if (firstFrom < 0) throw new Error(`${app}: ${file} has no FROM`);
  if (arg < 0 || arg > firstFrom) {
    throw new Error(
      `${app}: ${file} must declare ARG NODE_IMAGE before its first FROM (the harness overrides it with the local base image)`,
    );
  }
  return file;
}

/**
 * docker build with the apps/ folder as context and the local base image, logging to the
 * temp dir; throws `<app>: docker build failed ...` with the log's last lines. It reads the
 * app's own Dockerfile: there is one (apps/chain-service), so no other folder's Dockerfile of the
 * same name, size and mtime can be served from BuildKit's cache in its place (moby/buildkit#1368,
 * which the suite checks directly).
 */
export async function build(
  app: string,
  tag: string,
  appsDir = env.appsDir,
  args: Record<string, string> = {},
): Promise<number> {
  const file = checkDockerfile(app, appsDir);
  const t0 = Date.now();
  const r = await docker([
    "build",
    "--network",
    "host",
    "--progress",
    "plain",
    "--build-arg",
    `NODE_IMAGE=${env.baseImage}`,
    ...Object.entries(args).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]),
    "-f",
    file,
    "-t",
    tag,
    appsDir,
  ]);
  const log = path.join(env.work, `build-${app}-${t0}.log`);
  fs.writeFileSync(log, r.stdout + r.stderr);
  if (r.code !== 0) {
    const out = r.stdout + r.stderr;
    const cause = out.trimEnd().split("\n").pop() ?? "";
    throw new Error(
      `${app}: docker build failed (exit ${r.code}, Dockerfile ${file}): ${cause}\nlast lines of the build log (whole log: ${log}):\n${tail(out, 12)}`,
    );
  }
  return Date.now() - t0;
}

interface RunOpts {
  name: string;
  ref: string;
  port: number;
  env: Record<string, string>;
}

/** docker run -d by reference, read-only, as 10001:10001, on the host's network. */
export async function runContainer(app: string, o: RunOpts): Promise<{ started: number; url: string }> {
  const envArgs = Object.entries({ PORT: String(o.port), ...o.env }).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
  const started = Date.now();
  await dockerOk(app, `docker run ${o.name}`, [
    "run",
    "-d",
    "--name",
    o.name,
    "--read-only",
    "--user",
    "10001:10001",
    "--network",
    "host",
    ...envArgs,
    o.ref,
  ]);
  return { started, url: `http://127.0.0.1:${o.port}` };
}
