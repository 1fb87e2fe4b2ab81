import * as pulumi from "@pulumi/pulumi";
import { type AccessInputs, rolloutProvider } from "./rollout";

/**
 * The stack's check, against a live cluster, that its user may do what the rollout watches do
 * in its namespace (get, list and patch Deployments; get and list ReplicaSets and pods). It
 * depends on nothing, so it runs as the `up` starts, and the Rollouts wait for it: a user the
 * cluster refuses gets one error naming every refused verb, not a watch's error per service.
 * The objects do not wait for it (the first level's may be applied when it fails, as they were
 * before a watch failed). It is checked again when the namespace or the cluster changes, not
 * on every `up`.
 *
 * It shares the Rollouts' dynamic provider, which it also gets started early: the engine starts
 * that provider's process (0.8 s on this project's machines, most of it loading
 * `@pulumi/pulumi`) for the first resource that uses it, and without this that is the first
 * Rollout, once the first Deployment has been applied.
 */
export class ClusterAccess extends pulumi.dynamic.Resource {
  /** The cluster checked, as errors name it. */
  public readonly cluster!: pulumi.Output<string>;
  /** `allowed`, or `not checked: <why>` when the cluster could not be asked (the provider reports that). */
  public readonly result!: pulumi.Output<string>;

  constructor(
    name: string,
    args: { [K in keyof Omit<AccessInputs, "kind">]: pulumi.Input<AccessInputs[K]> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(
      rolloutProvider,
      name,
      { ...args, kind: "access", cluster: undefined, result: undefined },
      opts,
      "k8s-chain",
      "ClusterAccess",
    );
  }
}
