import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync } from "child_process";
import { chooseImageTag, hashBuildContext, imageTagFor } from "../components/image-tag";

describe("image tags", () => {
    const hash = () => "f".repeat(64);

    it("prefers the configured tag, then GITHUB_SHA, then git, then the context hash", () => {
        assert.strictEqual(chooseImageTag({ configured: "v1", githubSha: "abc", gitHead: "def", contextHash: hash }), "v1");
        assert.strictEqual(chooseImageTag({ githubSha: "abc", gitHead: "def", contextHash: hash }), "abc");
        assert.strictEqual(chooseImageTag({ gitHead: "def", gitDirty: false, contextHash: hash }), "def");
        assert.strictEqual(chooseImageTag({ gitHead: "def", gitDirty: true, contextHash: hash }), `def-dirty-${"f".repeat(12)}`);
        assert.strictEqual(chooseImageTag({ contextHash: hash }), `ctx-${"f".repeat(32)}`);
    });

    it("hashes a build context by paths and contents, skipping node_modules and dist", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ctx-"));
        fs.mkdirSync(path.join(dir, "a", "node_modules"), { recursive: true });
        fs.writeFileSync(path.join(dir, "a", "server.ts"), "one");
        const h1 = hashBuildContext(dir);
        fs.writeFileSync(path.join(dir, "a", "node_modules", "junk.js"), "x");
        assert.strictEqual(hashBuildContext(dir), h1);
        fs.writeFileSync(path.join(dir, "a", "server.ts"), "two");
        assert.notStrictEqual(hashBuildContext(dir), h1);
        fs.rmSync(dir, { recursive: true });
    });

    it("reads git: the commit SHA when clean, SHA plus context hash when dirty, the hash outside git", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "repo-"));
        const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, encoding: "utf8" }).trim();
        fs.writeFileSync(path.join(dir, "Dockerfile"), "FROM scratch\n");
        assert.match(imageTagFor(dir, undefined, {}), /^ctx-[0-9a-f]{32}$/);
        git("init", "-q");
        git("add", ".");
        git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init");
        const sha = git("rev-parse", "HEAD");
        assert.strictEqual(imageTagFor(dir, undefined, {}), sha);
        assert.strictEqual(imageTagFor(dir, undefined, { GITHUB_SHA: "c1" }), "c1");
        fs.writeFileSync(path.join(dir, "Dockerfile"), "FROM scratch\nUSER 1000\n");
        assert.match(imageTagFor(dir, undefined, {}), new RegExp(`^${sha}-dirty-[0-9a-f]{12}$`));
        fs.rmSync(dir, { recursive: true });
    });
});
