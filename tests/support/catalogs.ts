import { parseStackConfig, RawStackConfig, StackConfig } from "../../components/catalog";
import { ConfigError } from "../../components/problems";
import { planChain, ServicePlan } from "../../components/plan";

/** A fake file system holding `apps/<name>/Dockerfile` for the given app folders. */
export function fakeFs(appFolders: string[], root = "/project") {
  const files = new Set(appFolders.map((a) => `${root}/${a}/Dockerfile`));
  const dirs = new Set(appFolders.map((a) => `${root}/${a}`));
  return {
    projectRoot: root,
    stat: (p: string) => (files.has(p) ? "file" : dirs.has(p) ? "dir" : undefined) as "file" | "dir" | undefined,
  };
}

/**
 * Parses a raw config against a fake file system that has the dev stack's app folder
 * (`apps/chain-service`) and, for validation tests that name a folder per service, `apps/<name>`
 * for the four seed services (the fake file system only; the repository has one folder).
 */
export function parse(
  raw: RawStackConfig,
  apps = ["apps/chain-service", "apps/sample-app", "apps/service-a", "apps/service-b", "apps/service-c"],
): StackConfig {
  return parseStackConfig(raw, fakeFs(apps));
}

/** The message a bad config fails with (throws if it does not fail). */
export function problemsOf(raw: RawStackConfig, apps?: string[]): string[] {
  try {
    parse(raw, apps);
  } catch (e) {
    if (e instanceof ConfigError) {
      return e.problems;
    }
    throw e;
  }
  throw new Error("expected the config to be refused");
}

/**
 * Raw catalog entries by service name, as config holds them before validation: any field may
 * be missing, unknown or of the wrong type (see `RawStackConfig`).
 */
export type RawServices = Record<string, Record<string, unknown>>;

/** The seed's system, as a raw catalog: four services built from the one app folder. */
export function seedServices(): RawServices {
  return {
    "sample-app": { app: "apps/chain-service", expose: "NodePort", nodePort: 30080 },
    "service-a": { app: "apps/chain-service", calls: ["service-b"], expose: "NodePort", nodePort: 30081 },
    "service-b": { app: "apps/chain-service", calls: ["service-c"] },
    "service-c": { app: "apps/chain-service" },
  };
}

/** One service's part of the plan of a parsed catalog (against the fake file system's root). */
export function planOf(cfg: StackConfig, name: string): ServicePlan {
  const planned = planChain(cfg, "/project").services.find((p) => p.service.name === name);
  if (planned === undefined) {
    throw new Error(`no service ${name} in the catalog`);
  }
  return planned;
}

/** A pinned image reference for tests. */
export const PINNED = "localhost:5001/x@sha256:" + "ab".repeat(32);
