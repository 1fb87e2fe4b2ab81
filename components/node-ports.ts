import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { PinnedPort } from "./plan";
import { nodePortServiceName, nodePortServiceSpec, Placement } from "./specs";

export interface NodePortsArgs {
  /** The pinned ports and the services that own them (the plan's `pinnedPorts`). */
  ports: ReadonlyArray<PinnedPort>;
  /**
   * Each service's component, by name: a port's Service waits for its owner (Deployment
   * rolled out, Service created), so it sends traffic only to ready pods.
   */
  owners: Readonly<Record<string, pulumi.Resource>>;
  /** Namespace, cluster domain and rollout timeout. */
  placement: Placement;
}

/**
 * The pinned node ports of the catalog: one Service per port, `node-port-<port>` both in
 * Pulumi and in Kubernetes, selecting the pods of the service that pins it.
 *
 * Neither the name nor the parent of a port's Service depends on which service owns the port:
 * they are children of this component, never of the owning `MicroService`. So a move or a
 * swap keeps every URN and every parent, and the engine carries it out as an in-place update
 * of a selector; a URN that changed with the owner (a name such as `<service>-node-port`, or
 * a parent whose type chain differs) would be a delete and a create, and the create would
 * find the port still allocated. A namespace change still replaces each of them,
 * delete-before-replace: node ports are cluster-wide, so the old Service must release its
 * port before the new one claims it.
 */
export class NodePorts extends pulumi.ComponentResource {
  /** port -> the Service holding it. */
  public readonly services: Record<number, k8s.core.v1.Service> = {};
  /** service name -> its pinned node port, as the Service holding it reports it. */
  public readonly nodePorts: Record<string, pulumi.Output<number | undefined>> = {};

  /**
   * @param name The component's name; its Services are named by port, not from it.
   * @param args The pinned ports, their owners' components and the placement.
   * @param opts Resource options (a provider for rendering, for example).
   */
  constructor(name: string, args: NodePortsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("k8s-chain:components:NodePorts", name, {}, opts);
    const orphans = args.ports.filter((p) => args.owners[p.service.name] === undefined).map((p) => p.service.name);
    if (orphans.length > 0) {
      throw new Error(`NodePorts: no component for ${orphans.join(", ")}; create each service's MicroService first`);
    }

    for (const pinned of args.ports) {
      const { port, service: svc } = pinned;
      const service = new k8s.core.v1.Service(nodePortServiceName(port), nodePortServiceSpec(pinned, args.placement), {
        parent: this,
        dependsOn: [args.owners[svc.name]],
        deleteBeforeReplace: true,
      });
      this.services[port] = service;
      this.nodePorts[svc.name] = service.spec.ports.apply((ports) => ports?.[0]?.nodePort);
    }

    this.registerOutputs({ services: this.services, nodePorts: this.nodePorts });
  }
}
