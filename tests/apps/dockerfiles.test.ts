// The four app Dockerfiles: one recipe that differs only in the app name, with the properties
// the stack and the cluster rely on.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./harness";

const APPS = ["sample-app", "service-a", "service-b", "service-c"];
const read = (app: string) => fs.readFileSync(path.join(ROOT, "apps", app, "Dockerfile"), "utf8");

describe("apps: Dockerfiles", function () {
  it("are the same recipe with the app name swapped, but for the first line", function () {
    const recipe = (app: string) => read(app).split("\n").slice(1).join("\n").split(app).join("<app>");
    for (const app of APPS.slice(1)) assert.equal(recipe(app), recipe(APPS[0]), app);
  });

  it("have sizes apart (BuildKit may serve another folder's Dockerfile of equal name, size and mtime)", function () {
    const sizes = APPS.map((app) => fs.statSync(path.join(ROOT, "apps", app, "Dockerfile")).size);
    assert.equal(new Set(sizes).size, APPS.length, `sizes ${sizes.join(", ")}`);
  });

  for (const app of APPS) {
    it(`${app}: NODE_IMAGE arg before the first FROM, pinned node 20; numeric user; exec-form CMD`, function () {
      const lines = read(app).split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
      assert.match(lines[0], /^ARG NODE_IMAGE=node:20\.\d+\.\d+-bookworm-slim$/);
      const froms = lines.filter((l) => l.startsWith("FROM "));
      assert.ok(froms.length >= 2, "multi-stage");
      for (const from of froms) assert.match(from, /^FROM \$\{NODE_IMAGE\}( AS [a-z-]+)?$/);
      assert.ok(lines.includes("USER 10001:10001"), "UID/GID 10000 or more, as the pod spec's runAsUser/runAsGroup");
      assert.equal(lines[lines.length - 1], `CMD ["node", "${app}/dist/server.js"]`);
      assert.ok(lines.includes("RUN npm ci --omit=dev --no-audit --no-fund"), "production dependencies only");
    });
  }

  it(".dockerignore keeps node_modules, dist and build info out of the apps/ context", function () {
    const ignored = fs.readFileSync(path.join(ROOT, "apps", ".dockerignore"), "utf8").split("\n");
    for (const entry of ["**/node_modules", "**/dist", "**/*.tsbuildinfo"]) assert.ok(ignored.includes(entry), entry);
  });
});
