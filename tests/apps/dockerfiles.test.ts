// The one app Dockerfile (apps/chain-service, which every dev-stack service is built from), with
// the properties the stack and the cluster rely on. There is one Dockerfile, so the same-size
// workaround for moby/buildkit#1368 (another folder's cached Dockerfile of equal name, size and
// mtime) has nothing left to keep apart.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./harness";

const read = (app: string) => fs.readFileSync(path.join(ROOT, "apps", app, "Dockerfile"), "utf8");

describe("apps: Dockerfiles", function () {
  it("one app folder with a Dockerfile: chain-service (every dev-stack service runs it)", function () {
    const withDockerfile = fs
      .readdirSync(path.join(ROOT, "apps"))
      .filter((d) => fs.existsSync(path.join(ROOT, "apps", d, "Dockerfile")));
    assert.deepEqual(withDockerfile, ["chain-service"]);
  });

  it("chain-service: NODE_IMAGE arg before the first FROM, pinned node 20; numeric user; revision label; exec-form CMD", function () {
    const lines = read("chain-service")
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("#"));
    assert.match(lines[0], /^ARG NODE_IMAGE=node:20\.\d+\.\d+-bookworm-slim$/);
    const froms = lines.filter((l) => l.startsWith("FROM "));
    assert.ok(froms.length >= 2, "multi-stage");
    for (const from of froms) assert.match(from, /^FROM \$\{NODE_IMAGE\}( AS [a-z-]+)?$/);
    assert.ok(lines.includes("USER 10001:10001"), "UID/GID 10000 or more, as the pod spec's runAsUser/runAsGroup");
    assert.ok(lines.includes("RUN npm ci --omit=dev --no-audit --no-fund"), "production dependencies only");
    // The final stage turns the REVISION build arg (components/image-tag.ts) into the OCI label.
    const final = lines.slice(lines.lastIndexOf(froms[froms.length - 1]));
    assert.ok(final.includes('ARG REVISION=""'), "REVISION declared in the final stage");
    assert.ok(final.includes('LABEL org.opencontainers.image.revision="${REVISION}"'), "revision label");
    assert.equal(lines[lines.length - 1], 'CMD ["node", "chain-service/dist/server.js"]');
  });

  it(".dockerignore keeps node_modules, dist, build info, tests and docs out of the apps/ context", function () {
    const ignored = fs.readFileSync(path.join(ROOT, "apps", ".dockerignore"), "utf8").split("\n");
    for (const entry of [
      "**/node_modules",
      "**/dist",
      "**/*.tsbuildinfo",
      "**/tests",
      "**/*.test.ts",
      "**/docs",
      "**/*.md",
    ]) {
      assert.ok(ignored.includes(entry), entry);
    }
  });
});
