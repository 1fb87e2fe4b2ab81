// The smallest Pulumi program this project's benches compare the stack with: one ConfigMap, in
// TypeScript, with the same Pulumi.yaml runtime options, in a temp folder.
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { REPO } from "../../tests/engine/harness";
import { tempDir } from "../../tests/support/process";

/**
 * Writes the one-ConfigMap program and returns its folder. `render`: through a provider that
 * writes YAML to the `k8s-chain:renderDir` folder (no cluster); otherwise to the cluster of the
 * ambient kubeconfig, in `default`, its data `k8s-chain:value` (default "a"), so an `up` with
 * another value is one change.
 */
export function baselineProgram(render: boolean): string {
  const dir = tempDir("k8s-chain-baseline-");
  const project = YAML.parse(fs.readFileSync(path.join(REPO, "Pulumi.yaml"), "utf8"));
  // The project's own runtime (and its options), without its config schema.
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), YAML.stringify({ name: project.name, runtime: project.runtime }));
  for (const f of fs.readdirSync(REPO).filter((f) => /^tsconfig.*\.json$/.test(f))) {
    fs.copyFileSync(path.join(REPO, f), path.join(dir, f));
  }
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "baseline", main: "index.ts" }));
  fs.symlinkSync(path.join(REPO, "node_modules"), path.join(dir, "node_modules"));
  const config = 'const config = new pulumi.Config("k8s-chain");';
  const program = render
    ? [
        'const provider = new k8s.Provider("render", { renderYamlToDirectory: config.require("renderDir") });',
        'export const name = new k8s.core.v1.ConfigMap("one", { data: { a: "b" } }, { provider }).metadata.name;',
      ]
    : [
        'const data = { a: config.get("value") ?? "a" };',
        'export const name = new k8s.core.v1.ConfigMap("one", { metadata: { namespace: "default" }, data }).metadata.name;',
      ];
  fs.writeFileSync(
    path.join(dir, "index.ts"),
    [
      'import * as k8s from "@pulumi/kubernetes";',
      'import * as pulumi from "@pulumi/pulumi";',
      config,
      ...program,
      "",
    ].join("\n"),
  );
  return dir;
}
