// Kubernetes objects for assertions, typed as `kubernetes-models` interfaces: the specs the stack
// builds (components/specs.ts, typed with `pulumi.Input<>` fields), the inputs the mocks record,
// and the objects a rendered file or kubectl shows.
import * as pulumi from "@pulumi/pulumi";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";

/**
 * `x` as the plain object type `T` (e.g. `IDeployment`), once checked to be plain: no value in
 * it is an Output or a Promise (a spec given an Output would not be; then `T` would not hold).
 */
export function plain<T>(x: unknown): T {
  const walk = (v: unknown, at: string): void => {
    if (pulumi.Output.isInstance(v) || v instanceof Promise) {
      throw new Error(`${at} is not a plain value`);
    }
    if (Array.isArray(v)) {
      v.forEach((e, i) => walk(e, `${at}[${i}]`));
    } else if (v !== null && typeof v === "object") {
      for (const [k, e] of Object.entries(v)) {
        walk(e, `${at}.${k}`);
      }
    }
  };
  walk(x, "$");
  return x as T;
}

/** The pod spec of a Deployment's template (throws when it has none). */
export function podSpecOf(dep: IDeployment): IPodSpec {
  const pod = dep.spec?.template.spec;
  if (pod === undefined) {
    throw new Error(`Deployment ${dep.metadata?.name ?? "(unnamed)"} has no pod template spec`);
  }
  return pod;
}

/** The first container of a Deployment's pods. */
export function containerOf(dep: IDeployment): IContainer {
  return podSpecOf(dep).containers[0];
}
