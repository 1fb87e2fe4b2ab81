import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync } from "child_process";
import * as pulumi from "@pulumi/pulumi";
import { chooseImageTag, hashBuildContext, imageTagFor } from "../components/image-tag";
import { readStackConfig } from "../components/config";

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

describe("reading the stack config", () => {
    afterEach(() => pulumi.runtime.setAllConfig({}));

    it("fails with a RunError (printed without a stack trace) listing the problems", () => {
        pulumi.runtime.setAllConfig({
            "k8s-chain:services": JSON.stringify({ "service-a": { app: "apps/service-a", calls: ["service-x"] } }),
        });
        assert.throws(() => readStackConfig(path.resolve(__dirname, "..")), (e: Error) => {
            assert.ok(pulumi.RunError.isInstance(e));
            assert.strictEqual(e.message, [
                "k8s-chain config has 1 problem; nothing was created:",
                '  - services.service-a.calls: unknown service "service-x" (known: none)',
            ].join("\n"));
            return true;
        });
    });

    it("reads every key", () => {
        pulumi.runtime.setAllConfig({
            "k8s-chain:namespace": "chain",
            "k8s-chain:registry": "localhost:5001",
            "k8s-chain:imageTag": "v1",
            "k8s-chain:clusterDomain": "k8s.local",
            "k8s-chain:renderDir": "out",
            "k8s-chain:services": JSON.stringify({ "service-c": { app: "apps/service-c" } }),
        });
        const cfg = readStackConfig(path.resolve(__dirname, ".."));
        assert.deepStrictEqual([cfg.namespace, cfg.registry, cfg.imageTag, cfg.clusterDomain, cfg.renderDir], ["chain", "localhost:5001", "v1", "k8s.local", "out"]);
        assert.strictEqual(cfg.services[0].app, "apps/service-c");
    });
});
