// Reads the stack config from Pulumi and the file system, then hands it to the pure parser.
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import { ConfigError, parseStackConfig, RawStackConfig, StackConfig } from "./catalog";

/** Reads and validates `k8s-chain:*`; throws a RunError listing every problem. */
export function readStackConfig(projectRoot: string): StackConfig {
  const cfg = new pulumi.Config("k8s-chain");
  const raw: RawStackConfig = {};
  // Every key of our namespace, so that a misspelt one is reported rather than ignored.
  for (const fullKey of Object.keys(pulumi.runtime.allConfig())) {
    if (fullKey.startsWith("k8s-chain:")) {
      const key = fullKey.slice("k8s-chain:".length);
      raw[key] = key === "services" ? cfg.getObject<unknown>(key) : cfg.get(key);
    }
  }
  try {
    return parseStackConfig(raw, {
      projectRoot,
      stat: (p) => {
        const st = fs.statSync(p, { throwIfNoEntry: false });
        return st?.isDirectory() ? "dir" : st?.isFile() ? "file" : undefined;
      },
    });
  } catch (e) {
    // A RunError is printed without a stack trace: the user sees only the problems.
    throw e instanceof ConfigError ? new pulumi.RunError(e.message) : e;
  }
}
