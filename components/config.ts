// Reads the stack config from Pulumi and the file system, then hands it to the pure parser.
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import { parseStackConfig, RawStackConfig, StackConfig } from "./catalog";
import { ConfigError } from "./problems";
import type { ChainCluster } from "./chain";

/** The keys whose values are objects (Pulumi hands them over as JSON); every other key is flat. */
const OBJECT_KEYS = new Set(["services", "buildArgs"]);

/** Reads and validates `k8s-chain:*`; throws a RunError listing every problem. */
export function readStackConfig(projectRoot: string): StackConfig {
  const cfg = new pulumi.Config("k8s-chain");
  const raw: RawStackConfig = {};
  // Every key of our namespace, so that a misspelt one is reported rather than ignored.
  for (const fullKey of Object.keys(pulumi.runtime.allConfig())) {
    if (fullKey.startsWith("k8s-chain:")) {
      const key = fullKey.slice("k8s-chain:".length);
      raw[key] = OBJECT_KEYS.has(key) ? objectOrText(cfg, key) : cfg.get(key);
    }
  }
  try {
    return parseStackConfig(raw, {
      projectRoot,
      stat: (p) => {
        const st = fs.statSync(p, { throwIfNoEntry: false });
        return st?.isDirectory() ? "dir" : st?.isFile() ? "file" : undefined;
      },
      readText: (p) => fs.readFileSync(p, "utf8"),
    });
  } catch (e) {
    // A RunError is printed without a stack trace: the user sees only the problems.
    throw e instanceof ConfigError ? new pulumi.RunError(e.message) : e;
  }
}

/**
 * An object key's value; a value that is not JSON (`pulumi config set services foo`) is
 * returned as the text it is, so the parser reports it with every other problem of the config
 * (Pulumi's getObject would throw alone).
 */
function objectOrText(cfg: pulumi.Config, key: string): unknown {
  try {
    return cfg.getObject<unknown>(key);
  } catch {
    return cfg.get(key);
  }
}

/**
 * The cluster the stack's default kubernetes provider uses, as stack config names it
 * (`kubernetes:kubeconfig`, a path or the contents, kept secret; `kubernetes:context`;
 * `kubernetes:cluster`); unset keys fall back to the ambient kubeconfig, as they do for the
 * provider. The rollout watch reads and writes the cluster through this.
 */
export function readClusterConnection(): ChainCluster {
  const cfg = new pulumi.Config("kubernetes");
  return {
    kubeconfig: cfg.getSecret("kubeconfig"),
    context: cfg.get("context"),
    cluster: cfg.get("cluster"),
  };
}
