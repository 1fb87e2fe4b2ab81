import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { ServicePlan } from "./plan";
import { ClusterConnection, Rollout } from "./rollout";
import {
  deploymentSpec,
  drainNeeds,
  networkPolicySpec,
  Placement,
  podDisruptionBudgetSpec,
  servicePortKeeperSpec,
  serviceSpec,
} from "./specs";

export interface MicroServiceArgs {
  /** Its part of the chain's plan: entry, callers, callees, URL, env (see plan.ts). */
  plan: ServicePlan;
  /** Create its NetworkPolicy (the stack's `networkPolicies`). */
  networkPolicy: boolean;
  /** Namespace, cluster domain and rollout timeout. */
  placement: Placement;
  /** The image reference the Deployment runs: a pushed digest or an immutable tag. */
  image: pulumi.Input<string>;
  /** Resources every child waits for: the namespace. */
  waitFor: pulumi.Resource[];
  /**
   * What its Deployment also waits for: the default-deny policy (no pod of the stack runs
   * before it) and the callees' components (a caller's pods start only once its callees are
   * rolled out and ready). Its Service, policy and budget do not wait for them, so they are in
   * place before a level's pods can start, and a level of the chain costs only its rollout.
   */
  podsWaitFor: pulumi.Resource[];
  /**
   * How to reach the live cluster the provider deploys to (absent in render mode, when the
   * provider writes YAML to a folder): the stack then watches each rollout itself
   * ({@link Rollout}) through it and keeps a changed port's predecessor until the callers
   * have moved ({@link servicePortKeeperSpec}); neither means anything for files.
   */
  connection?: pulumi.Input<ClusterConnection>;
  /** The built image's revision, annotated on the Deployment (absent for a prebuilt image). */
  revision?: pulumi.Input<string | undefined>;
}

/**
 * One service of the chain: a Deployment, a Service in front of it, its NetworkPolicy (unless
 * policies are off), and a PodDisruptionBudget when it runs two or more replicas. A pinned node port is not here: the
 * `NodePorts` component holds it, so it can move between services (see node-ports.ts).
 */
export class MicroService extends pulumi.ComponentResource {
  public readonly deployment: k8s.apps.v1.Deployment;
  public readonly service: k8s.core.v1.Service;
  public readonly podDisruptionBudget?: k8s.policy.v1.PodDisruptionBudget;
  public readonly networkPolicy?: k8s.networking.v1.NetworkPolicy;
  /** The stack's own watch of the Deployment's rollout (live clusters only). */
  public readonly rollout?: Rollout;
  /** The patch that co-owns the Service's current port (live clusters only). */
  public readonly portKeeper?: k8s.core.v1.ServicePatch;
  /** The in-cluster URL callers use. */
  public readonly url: string;
  /**
   * The node port the cluster picked, for a `NodePort` service without a pinned `nodePort`
   * (a pinned one is held by the `NodePorts` component's Service, not by this one).
   */
  public readonly nodePort?: pulumi.Output<number | undefined>;

  /**
   * @param name The service's catalog key; children are named from it.
   * @param args Its plan, placement and image.
   * @param opts Resource options (a provider for rendering, for example).
   */
  constructor(name: string, args: MicroServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("k8s-chain:components:MicroService", name, {}, opts);
    const { plan, placement, image, waitFor, podsWaitFor, connection } = args;
    const live = connection !== undefined;
    const svc = plan.service;

    // The Service goes first and the provider does not wait for it (it would add a fixed
    // 10 s settle per level): it sends traffic only to Ready pods anyway. The Deployment
    // comes after it, and its rollout (every new pod Ready, which the stack's Rollout watch
    // waits for) is what the callers wait for; by then the Ready pods are the Service's endpoints.
    // A fixed name, but no pinned node port (NodePorts holds those), so Pulumi's default
    // replacement order is right: a replacement in the same namespace can only be
    // delete-before-replace, and the provider says so itself for a named object; a
    // namespace move creates the new Service first, so callers still in the old namespace
    // keep resolving the old one until the move is done.
    this.service = new k8s.core.v1.Service(`${name}-service`, serviceSpec(svc, placement), {
      parent: this,
      dependsOn: waitFor,
    });

    // Its policy is in place before its pods start, so they never run with only the
    // default deny (no DNS, no callees). The provider does not wait on a NetworkPolicy.
    // Named after what it allows (see networkPolicySpec): a change creates the new one here
    // and Pulumi deletes the old one when the `up` ends, after the old pods are gone.
    const policy = args.networkPolicy ? networkPolicySpec(svc, plan.callers, plan.callees, placement) : undefined;
    if (policy) {
      this.networkPolicy = new k8s.networking.v1.NetworkPolicy(
        `${name}-network-policy-${policy.metadata.name.slice(-8)}`,
        policy,
        { parent: this, dependsOn: waitFor },
      );
    }

    if (live) {
      // Co-owns the Service's current port, so a changed servicePort keeps the old one
      // until this `up` ends (see servicePortKeeperSpec). Keyed by the port: a change
      // creates a new keeper and drops the old one.
      this.portKeeper = new k8s.core.v1.ServicePatch(
        `${name}-port-${svc.servicePort}`,
        servicePortKeeperSpec(svc, placement),
        { parent: this, dependsOn: [this.service] },
      );
    }

    // Against a cluster the Rollout below does the waiting: the provider's await can neither
    // roll a failed release back nor be trusted to wait for Ready pods (see rollout.ts).
    const spec = deploymentSpec(plan, placement, image, {
      wait: live ? "watched" : "bounded",
      revision: args.revision,
    });
    this.deployment = new k8s.apps.v1.Deployment(`${name}-deployment`, spec, {
      parent: this,
      dependsOn: [...waitFor, ...podsWaitFor, this.service, ...(this.networkPolicy ? [this.networkPolicy] : [])],
    });
    if (live) {
      this.rollout = new Rollout(
        `${name}-rollout`,
        {
          service: name,
          namespace: placement.namespace,
          deployment: this.deployment.metadata.name,
          generation: this.deployment.metadata.generation,
          timeoutSeconds: placement.rolloutTimeoutSeconds,
          needs: drainNeeds(plan.env, policy?.metadata.name),
          connection,
        },
        { parent: this, dependsOn: [this.deployment] },
      );
    }

    const pdb = podDisruptionBudgetSpec(svc, placement);
    if (pdb) {
      this.podDisruptionBudget = new k8s.policy.v1.PodDisruptionBudget(`${name}-pdb`, pdb, {
        parent: this,
        dependsOn: waitFor,
      });
    }

    this.url = plan.url;
    if (plan.pickedNodePort) {
      this.nodePort = this.service.spec.ports.apply((ports) => ports?.[0]?.nodePort);
    }

    this.registerOutputs({
      deployment: this.deployment,
      service: this.service,
      podDisruptionBudget: this.podDisruptionBudget,
      networkPolicy: this.networkPolicy,
      rollout: this.rollout,
      url: this.url,
      nodePort: this.nodePort,
    });
  }
}
