// Real image builds, run by `npm run test:images` (lab/scripts/images/test-images.sh), which
// starts the private dockerd and registry this suite talks to. Not part of `npm test`: the
// name does not match tests/**/*.test.ts.
//
// The one app image (apps/chain-service, which every dev-stack service runs): docker build
// (apps/ as context, the local base image as NODE_IMAGE, a REVISION build arg), push, read the
// pushed digest, remove every local copy, pull by digest, run by digest read-only as 10001:10001
// on the host network as each of the four services (SERVICE_NAME), GET /health and GET /.
// Across containers: A -> B -> C, all the same image, wired as the stack wires them; B stopped ->
// A answers 502; SIGTERM -> /health still 200 while draining, exit 0 within the drain delay + 1 s.
// And whether BuildKit still serves a cached Dockerfile of equal name, size and mtime from
// another folder (moby/buildkit#1368), the bug the four per-app Dockerfiles had to dodge.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { freePort, tempDir } from "../support/process";
import {
  build,
  checkDockerfile,
  docker,
  dockerOk,
  env,
  get,
  registryManifest,
  runContainer,
  waitHealthy,
} from "./docker";

/** The app folder every service is built from, and the services the dev stack runs from it. */
const IMAGE = "chain-service";
const APPS = ["sample-app", "service-a", "service-b", "service-c"] as const;
type App = (typeof APPS)[number];
const REVISION = "0123456789abcdef0123456789abcdef01234567";

interface Shipped {
  ref: string; // <registry>/<app>@sha256:...
  digest: string;
  sizeBytes: number; // docker image inspect .Size after the pull
  pushedBytes: number; // config + layers as stored in the registry (compressed)
  buildMs: number;
  startToHealthyMs: number;
  runToStartedMs: number; // docker run -> the daemon's State.StartedAt (engine's share)
  pid1: string;
}
const shipped = new Map<string, Shipped>();

function need(app: string): Shipped {
  const s = shipped.get(IMAGE);
  if (!s)
    throw new Error(`${app}: the ${IMAGE} image was not shipped (its own test failed above), so this test cannot run`);
  return s;
}

// Truncates, never rounds up.
/** A copy of the apps' build context (no installed or built files) in a new temp dir, to change. */
function contextCopy(prefix: string): string {
  const copy = tempDir(prefix, env.work);
  const tar = `${copy}.tar`;
  execFileSync("tar", ["-C", env.appsDir, "--exclude=node_modules", "--exclude=dist", "-cf", tar, "."]);
  execFileSync("tar", ["-C", copy, "-xf", tar]);
  return copy;
}

const mib = (bytes: number) => (Math.floor((bytes / 1048576) * 10) / 10).toFixed(1);

async function execIn(app: string, container: string, script: string): Promise<string> {
  return dockerOk(app, "docker exec", ["exec", container, "node", "-e", script]);
}

describe("app images on a private Docker engine and registry", function () {
  after(function () {
    const rows = [IMAGE]
      .filter((a) => shipped.has(a))
      .map((a) => {
        const s = shipped.get(a)!;
        return `| ${a} | ${mib(s.sizeBytes)} MiB (${s.sizeBytes} B) | ${mib(s.pushedBytes)} MiB | ${s.buildMs} ms | ${s.startToHealthyMs} ms | ${s.runToStartedMs} ms | ${s.digest.slice(0, 19)}... |`;
      });
    console.log(
      "\n| image | size (docker image inspect) | pushed, compressed | build | docker run -> first 200 /health | of which docker run -> container started | digest |",
    );
    console.log("|---|---|---|---|---|---|---|");
    for (const r of rows) console.log(r);
    console.log(`base image: ${env.baseImage}; registry: ${env.registry}`);
  });

  {
    const app = IMAGE;
    it(`${app}: builds once, pushes, pulls back by digest, runs --read-only as 10001:10001, answers /health, carries the revision label`, async function () {
      const tag = `${env.registry}/${app}:test`;
      const buildMs = await build(app, tag, env.appsDir, { REVISION });
      const labels = JSON.parse(
        await dockerOk(app, "docker image inspect", ["image", "inspect", "-f", "{{json .Config.Labels}}", tag]),
      ) as Record<string, string>;
      assert.strictEqual(
        labels["org.opencontainers.image.revision"],
        REVISION,
        `${app}: labels ${JSON.stringify(labels)}`,
      );

      const imageId = await dockerOk(app, "docker image inspect", ["image", "inspect", "-f", "{{.Id}}", tag]);
      const push = await dockerOk(app, "docker push", ["push", tag]);
      const m = /digest: (sha256:[0-9a-f]{64})/.exec(push);
      assert.ok(m, `${app}: docker push printed no digest:\n${push}`);
      const digest = m[1];
      const served = await registryManifest(app, "test");
      assert.strictEqual(
        served.digest,
        digest,
        `${app}: the registry serves ${served.digest} for the tag, docker push said ${digest}`,
      );

      // Remove every local copy, then prove it is gone.
      await dockerOk(app, "docker rmi", ["rmi", "-f", tag, imageId]);
      const gone = await docker(["image", "inspect", imageId]);
      assert.notStrictEqual(gone.code, 0, `${app}: image ${imageId} still present locally after docker rmi`);

      const ref = `${env.registry}/${app}@${digest}`;
      const pulled = await dockerOk(app, "docker pull by digest", ["pull", ref]);
      assert.match(pulled, /Downloaded newer image/, `${app}: docker pull did not download the image:\n${pulled}`);
      const inspected = JSON.parse(await dockerOk(app, "docker image inspect", ["image", "inspect", ref]))[0] as {
        Id: string;
        Size: number;
        RepoDigests: string[];
        Config: { User?: string };
      };
      assert.ok(
        inspected.RepoDigests.includes(ref),
        `${app}: pulled image's RepoDigests ${JSON.stringify(inspected.RepoDigests)} lack ${ref}`,
      );
      assert.strictEqual(
        inspected.Id,
        imageId,
        `${app}: pulled image id ${inspected.Id} differs from the built ${imageId}`,
      );

      const name = `${app}-solo`;
      const port = await freePort();
      const { started, url } = await runContainer(app, { name, ref, port, env: { SERVICE_NAME: "sample-app" } });
      const startToHealthyMs = await waitHealthy(app, name, url, started);

      const c = JSON.parse(await dockerOk(app, "docker inspect", ["inspect", name]))[0] as {
        Image: string;
        Config: { Image: string; User: string };
        HostConfig: { ReadonlyRootfs: boolean; NetworkMode: string };
        State: { StartedAt: string };
      };
      const runToStartedMs = Date.parse(c.State.StartedAt) - started;
      assert.strictEqual(c.Config.Image, ref, `${app}: container runs ${c.Config.Image}, not the digest ${ref}`);
      assert.strictEqual(c.HostConfig.ReadonlyRootfs, true, `${app}: root filesystem is not read-only`);
      // Seen from inside: the uid/gid node runs as, and that the root filesystem refuses writes.
      const ids = await execIn(app, name, "console.log(process.getuid() + ':' + process.getgid())");
      assert.strictEqual(ids, "10001:10001", `${app}: node runs as ${ids}, expected 10001:10001`);
      const write = await execIn(
        app,
        name,
        "const fs=require('fs');for(const p of ['/probe',process.cwd()+'/probe','/tmp/probe']){try{fs.writeFileSync(p,'x');console.log('wrote '+p)}catch(e){console.log(e.code)}}",
      );
      assert.ok(!write.includes("wrote"), `${app}: a write succeeded on the read-only root filesystem: ${write}`);
      const pid1 = (await dockerOk(app, "docker exec", ["exec", name, "cat", "/proc/1/cmdline"]))
        .split("\0")
        .filter(Boolean)
        .join(" ");
      // The image must run this app (node as PID 1, so SIGTERM reaches it), not a neighbour's.
      assert.match(
        pid1,
        new RegExp(`^(\\S*/)?node .*\\b${app}/dist/server\\.js$`),
        `${app}: PID 1 is \`${pid1}\`, expected node running ${app}/dist/server.js`,
      );

      const root = await get(`${url}/`);
      assert.strictEqual(root.status, 200, `${app}: GET / with no downstream answered ${root.status} ${root.text}`);
      assert.strictEqual(
        (root.json as { service?: string }).service,
        "sample-app",
        `${app}: GET / answered ${root.text}`,
      );

      await dockerOk(app, "docker rm -f", ["rm", "-f", name]);
      shipped.set(app, {
        ref,
        digest,
        sizeBytes: inspected.Size,
        pushedBytes: served.compressedBytes,
        buildMs,
        startToHealthyMs,
        runToStartedMs,
        pid1,
      });
      console.log(
        `      ${app}: ${ref}\n      ${app}: PID 1 is \`${pid1}\`, build ${buildMs} ms, docker run -> 200 /health ${startToHealthyMs} ms`,
      );
    });
  }

  for (const svc of APPS) {
    it(`the one image runs as ${svc} (SERVICE_NAME) and answers as ${svc}`, async function () {
      const s = need(svc);
      const name = `${svc}-as`;
      const { started, url } = await runContainer(svc, {
        name,
        ref: s.ref,
        port: await freePort(),
        env: { SERVICE_NAME: svc },
      });
      await waitHealthy(svc, name, url, started);
      const root = await get(`${url}/`);
      assert.strictEqual(root.status, 200, `${svc}: GET / answered ${root.status} ${root.text}`);
      assert.strictEqual((root.json as { service?: string }).service, svc, `${svc}: GET / answered ${root.text}`);
      await dockerOk(svc, "docker rm -f", ["rm", "-f", name]);
    });
  }

  describe("across containers, wired as the stack wires them (loopback instead of cluster DNS)", function () {
    const urls: Partial<Record<App, string>> = {};

    before(async function () {
      const ports = { "service-c": await freePort(), "service-b": await freePort(), "service-a": await freePort() };
      const calls: Record<"service-a" | "service-b" | "service-c", App[]> = {
        "service-a": ["service-b"],
        "service-b": ["service-c"],
        "service-c": [],
      };
      for (const app of ["service-c", "service-b", "service-a"] as const) {
        const s = need(app);
        const wiring: Record<string, string> = { SERVICE_NAME: app, DOWNSTREAM_TIMEOUT_MS: "2000" };
        for (const callee of calls[app]) wiring[`${callee.toUpperCase().replace(/-/g, "_")}_URL`] = urls[callee]!;
        wiring.DOWNSTREAM_URLS = calls[app].map((x) => urls[x]!).join(",");
        const { started, url } = await runContainer(app, {
          name: `${app}-chain`,
          ref: s.ref,
          port: ports[app],
          env: wiring,
        });
        await waitHealthy(app, `${app}-chain`, url, started);
        urls[app] = url;
      }
    });

    it("service-a answers the nested A -> B -> C body, and the request id reaches C", async function () {
      const id = `images-e2e-${Date.now()}`;
      const r = await get(`${urls["service-a"]}/`, 10_000, { "x-request-id": id });
      assert.strictEqual(r.status, 200, `service-a: GET / answered ${r.status} ${r.text}`);
      const a = r.json as {
        service: string;
        downstream: { service: string; downstream: { service: string; downstream: unknown[] }[] }[];
      };
      assert.strictEqual(a.service, "service-a", `service-a: body ${r.text}`);
      assert.strictEqual(a.downstream?.length, 1, `service-a: expected one downstream answer, got ${r.text}`);
      assert.strictEqual(a.downstream[0].service, "service-b", `service-b: missing from A's answer ${r.text}`);
      assert.strictEqual(
        a.downstream[0].downstream?.[0]?.service,
        "service-c",
        `service-c: missing from A's answer ${r.text}`,
      );
      assert.deepStrictEqual(
        a.downstream[0].downstream[0].downstream,
        [],
        `service-c: has no downstream, got ${r.text}`,
      );
      console.log(`      A answered: ${r.text}`);
      for (const app of ["service-a", "service-b", "service-c"]) {
        const logs = await docker(["logs", `${app}-chain`]);
        assert.ok((logs.stdout + logs.stderr).includes(id), `${app}: request id ${id} not in its logs`);
      }
    });

    it("with service-b stopped, service-a answers 502 naming B's URL", async function () {
      await dockerOk("service-b", "docker stop", ["stop", "-t", "10", "service-b-chain"]);
      const r = await get(`${urls["service-a"]}/`, 10_000);
      assert.strictEqual(r.status, 502, `service-a: with B down GET / answered ${r.status} ${r.text}, expected 502`);
      const body = r.json as { service?: string; failed?: string; error?: string };
      assert.strictEqual(body.service, "service-a", `service-a: 502 body ${r.text}`);
      assert.ok(
        body.failed?.startsWith(urls["service-b"]!),
        `service-a: 502 body should name ${urls["service-b"]} in "failed": ${r.text}`,
      );
      console.log(`      A answered ${r.status}: ${r.text}`);
    });
  });

  describe("SIGTERM: /health still 200 while draining, then exit 0 within SHUTDOWN_DELAY_MS + 1 s", function () {
    const DELAY = 1500;
    for (const app of ["service-a"] as const) {
      it(`${app}: drains for ${DELAY} ms and exits 0`, async function () {
        const s = need(app);
        const name = `${app}-sigterm`;
        const { started, url } = await runContainer(app, {
          name,
          ref: s.ref,
          port: await freePort(),
          env: { SERVICE_NAME: app, SHUTDOWN_DELAY_MS: String(DELAY) },
        });
        await waitHealthy(app, name, url, started);
        const waited = docker(["wait", name], 30_000);
        const t0 = Date.now();
        await dockerOk(app, "docker kill -s TERM", ["kill", "-s", "TERM", name]);
        // The spec: every route answers normally for SHUTDOWN_DELAY_MS (Kubernetes already takes
        // a terminating pod out of its endpoints; a 503 only reaches clients that health-check
        // through the Service).
        const during: number[] = [];
        while (Date.now() - t0 < DELAY - 300) {
          const h = await get(`${url}/health`, 500).catch(() => undefined);
          during.push(h?.status ?? 0);
          await new Promise((r) => setTimeout(r, 50));
        }
        const w = await waited;
        const waitMs = Date.now() - t0;
        // When the daemon saw the process exit (same clock), not when `docker wait` got round to
        // telling us: on a loaded machine the CLI round trips alone can take hundreds of ms.
        // t0 was taken before `docker kill` started, so the signal left later: conservative.
        const finishedAt = (
          await dockerOk(app, "docker inspect", ["inspect", "-f", "{{.State.FinishedAt}}", name])
        ).trim();
        const ms = Date.parse(finishedAt) - t0;
        assert.ok(Number.isFinite(ms), `${app}: unreadable FinishedAt ${finishedAt}`);
        assert.strictEqual(w.code, 0, `${app}: docker wait failed: ${w.stderr}`);
        const exit = w.stdout.trim();
        const logs = await docker(["logs", "--tail", "10", name]);
        assert.strictEqual(
          exit,
          "0",
          `${app}: exited ${exit} after SIGTERM, expected 0:\n${logs.stdout}${logs.stderr}`,
        );
        assert.ok(
          during.length > 0 && during.every((c) => c === 200),
          `${app}: /health while draining answered ${during.join(",")}`,
        );
        assert.ok(ms <= DELAY + 1000, `${app}: took ${ms} ms to exit after SIGTERM, limit ${DELAY + 1000} ms`);
        assert.ok(ms >= DELAY - 100, `${app}: exited after ${ms} ms, before its ${DELAY} ms drain delay`);
        console.log(`      ${app}: exit 0 ${ms} ms after SIGTERM (docker wait returned after ${waitMs} ms)`);
      });
    }
  });

  describe("moby/buildkit#1368 on this engine (a probe: it reports, the repo no longer depends on it)", function () {
    it("builds a second folder's Dockerfile of the same name, size and mtime from the same context, and says which one BuildKit read", async function () {
      // The shape the four per-app Dockerfiles had: one context, two folders, Dockerfiles of equal
      // name, size and mtime. The second differs only in its USER (same length).
      const copy = contextCopy("buildkit-1368-");
      const first = path.join(copy, IMAGE, "Dockerfile");
      const text = fs.readFileSync(first, "utf8");
      const other = text.replace("USER 10001:10001", "USER 10002:10002");
      assert.notStrictEqual(other, text);
      fs.mkdirSync(path.join(copy, "other-app"));
      const second = path.join(copy, "other-app", "Dockerfile");
      fs.writeFileSync(second, other);
      const when = fs.statSync(first).mtime;
      fs.utimesSync(first, when, when);
      fs.utimesSync(second, when, when);
      assert.strictEqual(fs.statSync(second).size, fs.statSync(first).size);
      await build(IMAGE, `${env.registry}/bk1368:first`, copy);
      await build("other-app", `${env.registry}/bk1368:second`, copy);
      const user = await dockerOk("other-app", "docker image inspect", [
        "image",
        "inspect",
        "-f",
        "{{.Config.User}}",
        `${env.registry}/bk1368:second`,
      ]);
      const bites = user !== "10002:10002";
      console.log(
        `      moby/buildkit#1368 ${bites ? "STILL BITES" : "does not bite"} here: the second folder's image runs as ${user} (its Dockerfile says 10002:10002); the repo has one Dockerfile, so it has nothing to confuse either way`,
      );
    });
  });

  describe("a broken Dockerfile", function () {
    it("fails the build with a message that names the app", async function () {
      const copy = contextCopy("broken-apps-");
      // Break one Dockerfile of the copy.
      const app = IMAGE;
      const file = checkDockerfile(app, copy);
      fs.appendFileSync(file, '\nRUN echo "deliberately broken by tests/images" && exit 3\n');
      await assert.rejects(build(app, `${env.registry}/${app}:broken`, copy), (e: Error) => {
        assert.match(
          e.message,
          /^chain-service: docker build failed/,
          `the error does not name the app first: ${e.message}`,
        );
        console.log(
          e.message
            .split("\n")
            .map((l) => `      | ${l}`)
            .join("\n"),
        );
        return true;
      });
    });
  });
});
