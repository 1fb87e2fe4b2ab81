// Kubernetes objects for assertions, typed as `kubernetes-models` interfaces: the specs the stack
// builds (components/specs.ts, typed with `pulumi.Input<>` fields), the inputs the mocks record,
// and the objects a rendered file or kubectl shows.
import * as pulumi from "@pulumi/pulumi";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IEndpointSlice } from "kubernetes-models/discovery.k8s.io/v1/EndpointSlice";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { INamespace } from "kubernetes-models/v1/Namespace";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { IService } from "kubernetes-models/v1/Service";

/** Object metadata, as every Kubernetes object has it. */
export type ObjectMeta = NonNullable<IDeployment["metadata"]>;

/** Any Kubernetes object as a file or the API server shows it: its kind and metadata; the rest depends on the kind. */
export interface KubeObject {
  apiVersion?: string;
  kind: string;
  metadata?: ObjectMeta;
}

/** The `kubernetes-models` type of each kind of object the stack makes (and the EndpointSlices behind its Services). */
export interface ObjectsByKind {
  Deployment: IDeployment;
  Service: IService;
  Namespace: INamespace;
  NetworkPolicy: INetworkPolicy;
  PodDisruptionBudget: IPodDisruptionBudget;
  EndpointSlice: IEndpointSlice;
}

/** What `kubectl get -o json` prints for several objects: a `List` of them. */
export interface KubeList<T> {
  items: T[];
}

/** Whether `o` is of `kind` (then it has that kind's fields). */
export function isKind<K extends keyof ObjectsByKind>(o: KubeObject, kind: K): o is KubeObject & ObjectsByKind[K] {
  return o.kind === kind;
}

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
