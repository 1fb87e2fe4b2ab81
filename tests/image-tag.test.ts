import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync } from "child_process";
import { contextFiles, dockerignoreMatcher, hashBuildInputs, imageVersion, tagOf } from "../components/image-tag";

const ROOT = path.resolve(__dirname, "..");

/** A temp folder with `files` (relative path -> contents); removed by the caller. */
function tree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-chain-tag-"));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

describe("image tags: a digest of the build inputs", () => {
  it("reads .dockerignore as Docker does: ** across folders, * within one, ! re-includes, last match wins, a folder takes its contents", () => {
    const ignored = dockerignoreMatcher("# comment\n**/node_modules\n/dist\n*.md\n!KEEP.md\ndocs/**\n**/*.test.ts\n");
    const cases: Record<string, boolean> = {
      "node_modules/x.js": true,
      "shared/node_modules/pino/index.js": true,
      "dist/server.js": true,
      "shared/dist/index.js": false,
      "README.md": true,
      "KEEP.md": false,
      "shared/README.md": false,
      "docs/a/b.txt": true,
      "shared/src/app.ts": false,
      "shared/src/app.test.ts": true,
    };
    for (const [rel, want] of Object.entries(cases)) assert.strictEqual(ignored(rel), want, rel);
  });

  it("lists what the apps/ context sends: sources and manifests, never node_modules, dist, tests, docs or a Dockerfile", async () => {
    const files = await contextFiles(path.join(ROOT, "apps"));
    assert.ok(files.includes("chain-service/src/server.ts") && files.includes("package-lock.json"), files.join(", "));
    for (const f of files) {
      assert.doesNotMatch(f, /(^|\/)(node_modules|dist|tests?|docs)\/|\.md$|Dockerfile$|\.tsbuildinfo$/, f);
    }
  });

  it("changes with a sent file, the Dockerfile or a build arg; not with an ignored file or an mtime", async () => {
    const dir = tree({
      ".dockerignore": "**/node_modules\n**/dist\n**/*.md\n",
      "app/Dockerfile": "FROM scratch\n",
      "app/src/server.ts": "one",
      "README.md": "docs",
    });
    try {
      const inputs = { context: dir, dockerfile: path.join(dir, "app/Dockerfile"), args: { NODE_IMAGE: "node:20" } };
      const h0 = await hashBuildInputs(inputs);
      fs.writeFileSync(path.join(dir, "README.md"), "other docs");
      fs.mkdirSync(path.join(dir, "app/node_modules"));
      fs.writeFileSync(path.join(dir, "app/node_modules/x.js"), "x");
      fs.utimesSync(path.join(dir, "app/src/server.ts"), new Date(0), new Date(0));
      assert.strictEqual(await hashBuildInputs(inputs), h0);
      assert.notStrictEqual(await hashBuildInputs({ ...inputs, args: { NODE_IMAGE: "node:22" } }), h0);
      fs.writeFileSync(path.join(dir, "app/Dockerfile"), "FROM scratch\nUSER 1\n");
      const h1 = await hashBuildInputs(inputs);
      assert.notStrictEqual(h1, h0);
      fs.writeFileSync(path.join(dir, "app/src/server.ts"), "two");
      assert.notStrictEqual(await hashBuildInputs(inputs), h1);
      assert.match(tagOf(h0), /^inputs-[0-9a-f]{32}$/);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });

  it("across two commits of a git repo: a commit outside the inputs keeps tag and revision; one inside changes both", async () => {
    const dir = tree({
      ".dockerignore": "**/node_modules\n**/*.md\n**/tests\n",
      "app/Dockerfile": "FROM scratch\n",
      "app/src/server.ts": "one",
      "README.md": "docs",
      "app/tests/a.test.ts": "t",
    });
    const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, encoding: "utf8" }).trim();
    const commit = (msg: string) => {
      git("add", "-A");
      git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", msg);
      return git("rev-parse", "HEAD");
    };
    try {
      const inputs = { context: dir, dockerfile: path.join(dir, "app/Dockerfile") };
      const outside = await imageVersion(inputs);
      assert.strictEqual(outside.revision, undefined, "no git: no revision");
      assert.match(outside.tag, /^inputs-[0-9a-f]{32}$/);
      git("init", "-q");
      const first = commit("first");
      const v1 = await imageVersion(inputs);
      assert.deepStrictEqual([v1.revision, v1.args], [first, { REVISION: first }]);

      fs.writeFileSync(path.join(dir, "README.md"), "more docs");
      fs.writeFileSync(path.join(dir, "app/tests/a.test.ts"), "more tests");
      const second = commit("docs and tests only");
      assert.notStrictEqual(second, first);
      assert.deepStrictEqual(await imageVersion(inputs), v1, "a commit that touches no build input");

      fs.writeFileSync(path.join(dir, "app/src/server.ts"), "two");
      const dirty = await imageVersion(inputs);
      assert.strictEqual(dirty.revision, `${first}-dirty`);
      assert.notStrictEqual(dirty.tag, v1.tag);
      const third = commit("source");
      const v3 = await imageVersion(inputs);
      assert.strictEqual(v3.revision, third);
      assert.notStrictEqual(v3.tag, v1.tag);
      assert.notStrictEqual(v3.tag, dirty.tag);

      assert.deepStrictEqual(
        await imageVersion(inputs, "v7"),
        { ...v3, tag: "v7" },
        "a configured imageTag is used as is",
      );
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });
});
