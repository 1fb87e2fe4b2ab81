import { parseStackConfig, RawStackConfig, StackConfig } from "../../components/catalog";

/** A fake file system holding `apps/<name>/Dockerfile` for the given app folders. */
export function fakeFs(appFolders: string[], root = "/project") {
    const files = new Set(appFolders.map(a => `${root}/${a}/Dockerfile`));
    const dirs = new Set(appFolders.map(a => `${root}/${a}`));
    return {
        projectRoot: root,
        stat: (p: string) => (files.has(p) ? "file" : dirs.has(p) ? "dir" : undefined) as "file" | "dir" | undefined,
    };
}

/** Parses a raw config against a fake file system that has the usual four apps. */
export function parse(raw: RawStackConfig, apps = ["apps/sample-app", "apps/service-a", "apps/service-b", "apps/service-c"]): StackConfig {
    return parseStackConfig(raw, fakeFs(apps));
}

/** The message a bad config fails with (throws if it does not fail). */
export function problemsOf(raw: RawStackConfig, apps?: string[]): string[] {
    try {
        parse(raw, apps);
    } catch (e: any) {
        return e.problems;
    }
    throw new Error("expected the config to be refused");
}

/** The seed's system, as a raw catalog. */
export function seedServices(): Record<string, any> {
    return {
        "sample-app": { app: "apps/sample-app", expose: "NodePort", nodePort: 30080 },
        "service-a": { app: "apps/service-a", calls: ["service-b"], expose: "NodePort", nodePort: 30081 },
        "service-b": { app: "apps/service-b", calls: ["service-c"] },
        "service-c": { app: "apps/service-c" },
    };
}

/** A pinned image reference for tests. */
export const PINNED = "localhost:5001/x@sha256:" + "ab".repeat(32);
