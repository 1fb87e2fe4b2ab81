// The default tag for built images. The seed's third pitfall was a tag that did not match
// what CI built; a tag derived from the source makes every build's tag unique and traceable.
import { execFileSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";

/** What the tag can be derived from. */
export interface TagSources {
    /** `k8s-chain:imageTag`, when set: used as is. */
    configured?: string;
    /** `GITHUB_SHA` in GitHub Actions. */
    githubSha?: string;
    /** `git rev-parse HEAD`, when the project is a git checkout. */
    gitHead?: string;
    /** Whether the build context has uncommitted changes. */
    gitDirty?: boolean;
    /** A hash of the build context's files. */
    contextHash: () => string;
}

/**
 * The tag to build with: the configured tag; else the commit SHA (from CI, else git), with
 * the context hash appended when the tree is dirty so two different builds never share a
 * tag; else the context hash. Never `latest`.
 */
export function chooseImageTag(src: TagSources): string {
    if (src.configured) {
        return src.configured;
    }
    if (src.githubSha) {
        return src.githubSha;
    }
    if (src.gitHead) {
        return src.gitDirty ? `${src.gitHead}-dirty-${src.contextHash().slice(0, 12)}` : src.gitHead;
    }
    return `ctx-${src.contextHash().slice(0, 32)}`;
}

/** Folders never sent to the build (see `apps/.dockerignore`), so they do not change the hash. */
const SKIPPED = new Set(["node_modules", "dist", ".git"]);

/** A sha256 over the relative paths and contents of every file in a build context. */
export function hashBuildContext(dir: string): string {
    const hash = createHash("sha256");
    const walk = (rel: string): void => {
        const entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true })
            .sort((a, b) => a.name.localeCompare(b.name));
        for (const e of entries) {
            if (SKIPPED.has(e.name)) {
                continue;
            }
            const child = path.posix.join(rel, e.name);
            if (e.isDirectory()) {
                walk(child);
            } else if (e.isFile()) {
                hash.update(child).update("\0").update(fs.readFileSync(path.join(dir, child))).update("\0");
            }
        }
    };
    walk("");
    return hash.digest("hex");
}

function git(cwd: string, args: string[]): string | undefined {
    try {
        return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
        return undefined;
    }
}

/** Reads the tag sources from the environment and git, for a build context folder. */
export function imageTagFor(contextDir: string, configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
    const gitHead = git(contextDir, ["rev-parse", "HEAD"]);
    return chooseImageTag({
        configured,
        githubSha: env.GITHUB_SHA || undefined,
        gitHead,
        gitDirty: gitHead !== undefined && (git(contextDir, ["status", "--porcelain", "--", "."]) ?? "") !== "",
        contextHash: () => hashBuildContext(contextDir),
    });
}
