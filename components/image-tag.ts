// The default tag for built images: a digest of what the build reads (the files the context
// sends after `.dockerignore`, the Dockerfile, the build args), so a commit that touches none of
// them changes no tag, rebuilds nothing and rolls no pod. The commit is recorded beside it (the
// image's `org.opencontainers.image.revision` label and a Deployment annotation) as the last
// commit that touched those inputs, which an unrelated commit does not change either.
//
// Everything here is asynchronous and runs only when a stack builds an image: a catalog of
// prebuilt images never walks a folder or starts git.
import { execFile } from "child_process";
import { createHash } from "crypto";
import { promises as fsp } from "fs";
import * as path from "path";

/** The build arg the Dockerfiles turn into the `org.opencontainers.image.revision` label. */
const REVISION_BUILD_ARG = "REVISION";

/** What one image build reads. */
export interface BuildInputs {
  /** The build context folder (absolute). */
  context: string;
  /** The Dockerfile (absolute; it may lie inside the context or not). */
  dockerfile: string;
  /** Build args, revision included. @default {} */
  args?: Record<string, string>;
  /** The platform built for (`linux/amd64`): another platform is another image. */
  platform?: string;
}

/**
 * A matcher for a `.dockerignore` file's patterns: `true` for a path (relative to the context,
 * `/`-separated) the build does not send. Docker's rules: blank lines and `#` comments are
 * skipped, a leading `/` is dropped, `*` and `?` stay within one path segment, `**` spans any
 * number of them, `!` re-includes, the last matching pattern wins, and a pattern that matches a
 * folder excludes everything under it.
 */
export function dockerignoreMatcher(text: string): (rel: string) => boolean {
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const pattern = path.posix
        .normalize((negate ? l.slice(1) : l).trim())
        .replace(/^\/+/, "")
        .replace(/\/+$/, "");
      return { negate, re: globToRegExp(pattern) };
    });
  return (rel: string) => {
    const parts = rel.split("/");
    let excluded = false;
    for (const { negate, re } of rules) {
      // The path itself or any folder above it.
      for (let n = parts.length; n >= 1; n--) {
        if (re.test(parts.slice(0, n).join("/"))) {
          excluded = !negate;
          break;
        }
      }
    }
    return excluded;
  };
}

function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*" && pattern[i + 1] === "*") {
      // `**/` matches zero or more folders; a trailing `**` anything.
      if (pattern[i + 2] === "/") {
        re += "(?:.*/)?";
        i += 2;
      } else {
        re += ".*";
        i += 1;
      }
    } else if (c === "*") {
      re += "[^/]*";
    } else if (c === "?") {
      re += "[^/]";
    } else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) {
        re += "\\[";
      } else {
        re +=
          "[" +
          pattern
            .slice(i + 1, end)
            .replace(/^!/, "^")
            .replace(/\\/g, "\\\\") +
          "]";
        i = end;
      }
    } else if (c === "\\" && i + 1 < pattern.length) {
      re += "\\" + pattern[++i];
    } else {
      re += c.replace(/[.+^${}()|\]\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${re}$`);
}

/** The files a build of `context` sends, relative and sorted (after its `.dockerignore`). */
export async function contextFiles(context: string): Promise<string[]> {
  const ignore = await fsp.readFile(path.join(context, ".dockerignore"), "utf8").catch(() => "");
  const excluded = dockerignoreMatcher(ignore);
  // A folder is skipped whole only when no `!` rule could bring something back under it.
  const canSkipFolders = !/^\s*!/m.test(ignore);
  const files: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await fsp.readdir(path.join(context, rel), { withFileTypes: true });
    await Promise.all(
      entries.map(async (e) => {
        const child = rel === "" ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) {
          if (e.name === ".git" || (canSkipFolders && excluded(child))) {
            return;
          }
          await walk(child);
        } else if ((e.isFile() || e.isSymbolicLink()) && !excluded(child)) {
          files.push(child);
        }
      }),
    );
  };
  await walk("");
  return files.sort();
}

/**
 * A sha256 over the build's inputs: each sent file's path and contents, the Dockerfile's
 * contents and the build args (sorted by name). Nothing else: not mtimes, not git.
 */
export async function hashBuildInputs(inputs: BuildInputs, files?: string[]): Promise<string> {
  const sent = files ?? (await contextFiles(inputs.context));
  const contents = await Promise.all(sent.map((f) => fsp.readFile(path.join(inputs.context, f))));
  const hash = createHash("sha256");
  sent.forEach((f, i) => hash.update(`file ${f} ${contents[i].length}\0`).update(contents[i]));
  const dockerfile = await fsp.readFile(inputs.dockerfile);
  hash.update(`dockerfile ${dockerfile.length}\0`).update(dockerfile);
  for (const [k, v] of Object.entries(inputs.args ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    hash.update(`arg ${k}=${v}\0`);
  }
  if (inputs.platform !== undefined) {
    hash.update(`platform ${inputs.platform}\0`);
  }
  return hash.digest("hex");
}

/** The tag for a digest of build inputs: `inputs-` and its first 32 hex digits. */
export function tagOf(digest: string): string {
  return `inputs-${digest.slice(0, 32)}`;
}

function git(cwd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile("git", args, { cwd, encoding: "utf8", maxBuffer: 1 << 24 }, (err, stdout) => {
      resolve(err ? undefined : stdout.trim());
    });
  });
}

/**
 * The revision of a build's inputs: the last commit that touched any of them, with `-dirty`
 * when one differs from it (uncommitted or untracked). Undefined outside a git checkout or when
 * git is missing. In CI the checkout needs its history (`fetch-depth: 0`): a shallow clone of
 * one commit would name that commit.
 */
async function inputsRevision(inputs: BuildInputs, files: string[]): Promise<string | undefined> {
  const top = await git(inputs.context, ["rev-parse", "--show-toplevel"]);
  if (top === undefined || top === "") {
    return undefined;
  }
  const paths = [...files.map((f) => path.join(inputs.context, f)), inputs.dockerfile]
    .map((p) => path.relative(top, p))
    .filter((p) => !p.startsWith(".."));
  if (paths.length === 0) {
    return undefined;
  }
  const [sha, status] = await Promise.all([
    git(top, ["log", "-1", "--format=%H", "--", ...paths]),
    git(top, ["status", "--porcelain", "--untracked-files=all", "--", ...paths]),
  ]);
  if (!sha) {
    return undefined;
  }
  return status ? `${sha}-dirty` : sha;
}

/** A build's tag and revision, as the stack uses them. */
export interface ImageVersion {
  /** The image tag: the configured `imageTag`, else {@link tagOf} the inputs' digest. */
  tag: string;
  /** {@link inputsRevision}, when known. */
  revision?: string;
}

/**
 * The tag and revision of one build. The revision goes into the build args (so into the digest
 * too: a commit that changes no input keeps the revision, so the tag; a revert gets a new tag
 * rather than a second image under an old one).
 */
export async function imageVersion(
  inputs: BuildInputs,
  configured?: string,
): Promise<ImageVersion & { args: Record<string, string> }> {
  const files = await contextFiles(inputs.context);
  const revision = await inputsRevision(inputs, files);
  const args = { ...inputs.args, ...(revision ? { [REVISION_BUILD_ARG]: revision } : {}) };
  const tag = configured ?? tagOf(await hashBuildInputs({ ...inputs, args }, files));
  return { tag, revision, args };
}
