// Image references as the container runtime parses them, and what counts as pinned. Pure.
import { show } from "./problems";

/**
 * The image reference grammar of the distribution project (`reference/regexp.go`), which
 * containerd and the kubelet parse every image with: `[host[:port]/]path[:tag][@digest]`,
 * path components lower-case.
 */
const REF_PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const REF_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const REF_HOST = `(?:${REF_DOMAIN_COMPONENT}(?:\\.${REF_DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])`;
const REF_DOMAIN = `${REF_HOST}(?::([0-9]+))?`;
const REF_NAME = `(?:(${REF_DOMAIN})/)?${REF_PATH_COMPONENT}(?:/${REF_PATH_COMPONENT})*`;
const IMAGE_REFERENCE = new RegExp(
  `^(${REF_NAME})(?::([\\w][\\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}))?$`,
);
/** One path component of a repository name: what an app folder's name becomes (plan.ts, imageName). */
export const REPOSITORY_COMPONENT = new RegExp(`^${REF_PATH_COMPONENT}$`);
/** A registry prefix: `host[:port]` and optional path components (what goes before `/<name>`). */
export const REGISTRY = new RegExp(`^(${REF_DOMAIN})(?:/${REF_PATH_COMPONENT})*$`);

/** Checks that an image reference is pinned: a `sha256` digest or an explicit tag other than `latest`. */
export function imagePinProblem(image: string): string | undefined {
  const at = image.indexOf("@");
  if (at >= 0) {
    return /^sha256:[a-f0-9]{64}$/.test(image.slice(at + 1))
      ? imageReferenceProblem(image)
      : `${show(image)} has a malformed digest; use "name@sha256:<64 hex digits>"`;
  }
  const lastSlash = image.lastIndexOf("/");
  const colon = image.indexOf(":", lastSlash + 1);
  if (colon < 0) {
    return `${show(image)} has no tag, so it means "latest" and is not pinned; add an explicit tag or an @sha256: digest`;
  }
  const tag = image.slice(colon + 1);
  if (tag === "latest") {
    return `${show(image)} is tagged "latest", which is not pinned; use an explicit version tag or an @sha256: digest`;
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) {
    return `${show(image)} has an invalid tag ${show(tag)}; tags are up to 128 letters, digits, \`_\`, \`.\` or \`-\``;
  }
  return imageReferenceProblem(image);
}

/** What the container runtime would refuse in an image reference (the distribution grammar), or undefined. */
export function imageReferenceProblem(image: string): string | undefined {
  const m = IMAGE_REFERENCE.exec(image);
  if (!m) {
    return (
      `${show(image)} is not a valid image reference; use [registry[:port]/]path[:tag][@sha256:digest] with a lower-case path ` +
      '(letters, digits, and `.`, `_`, `__` or `-` between them), e.g. "ghcr.io/org/app:1.2.3"'
    );
  }
  if (m[1].length > 255) {
    return `${show(image)} has a repository name of ${m[1].length} characters; the runtime allows at most 255`;
  }
  if (m[3] !== undefined && (Number(m[3]) < 1 || Number(m[3]) > 65535 || m[3].startsWith("0"))) {
    return `${show(image)} has registry port ${m[3]}; use a port from 1 to 65535`;
  }
  return undefined;
}
