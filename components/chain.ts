// Registers the plan of a validated catalog (plan.ts) as components, in call order. Kept out of
// index.ts so the whole stack can be built under Pulumi's mocks with any catalog.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import type { AppImage } from "./app-image";
import type { StackConfig } from "./catalog";
import { formatProblems } from "./problems";
import { BuildInputs, ImageVersion, imageVersion } from "./image-tag";
import { MicroService } from "./micro-service";
import { NodePorts } from "./node-ports";
import { AppBuild, planChain } from "./plan";
import { defaultDenyPolicySpec, namespaceSpec } from "./specs";

export interface ChainOptions {
  /** The folder `app` paths are relative to. */
  projectRoot: string;
  /**
   * The tag and revision of a built image; defaults to {@link imageVersion} of its build
   * inputs (a digest of them, or the configured `imageTag`).
   */
  versionFor?: (inputs: BuildInputs) => Promise<ImageVersion & { args?: Record<string, string> }>;
  /** The cluster and how to reach it; see {@link ChainCluster}. In render mode (`renderDir`) it may name no provider. */
  cluster?: ChainCluster;
}

/**
 * The cluster to deploy to, and how to reach it. The stack's own program passes what stack
 * config says (`kubernetes:*`, see config.ts) and no provider: the default kubernetes provider
 * reads the same keys. A program that creates its own cluster (pulumi-eks, GKE) passes its
 * provider and the kubeconfig (and context, cluster) it gave that provider: the rollout watch
 * talks to the cluster through them, as the provider does. Nothing set: the ambient kubeconfig.
 */
export interface ChainCluster {
  /** The kubernetes provider for every object; the default provider when absent. */
  provider?: k8s.Provider;
  /** The kubeconfig that provider uses: a path or the contents, as a string (pulumi-eks: `cluster.kubeconfigJson`); pass it as a secret. */
  kubeconfig?: pulumi.Input<string | undefined>;
  /** Its context; the kubeconfig's current context when absent. */
  context?: string;
  /** Its cluster, overriding the context's. */
  cluster?: string;
}

export interface ChainOutputs {
  /** name -> in-cluster URL. */
  urls: Record<string, string>;
  /** name -> node port, NodePort services only. */
  nodePorts: Record<string, pulumi.Output<number | undefined>>;
  /** name -> the image reference its Deployment runs. */
  images: Record<string, pulumi.Output<string>>;
  /** The components, by name. */
  services: Record<string, MicroService>;
  /** The component holding the pinned node ports (absent when no service pins one). */
  pinnedPorts?: NodePorts;
  /** The stack's default-deny NetworkPolicy (absent when `networkPolicies` is false). */
  defaultDeny?: k8s.networking.v1.NetworkPolicy;
}

/** Registers every service of a validated catalog: images, then components in call order. */
export function deployChain(config: StackConfig, opts: ChainOptions): ChainOutputs {
  const plan = planChain(config, opts.projectRoot);
  // Checked here, not with the rest of the catalog, because it reads the Dockerfiles' sizes
  // and needs the plan's builds; still before any resource (the provider included) exists.
  if (plan.builds.length > 1) {
    const problem = sameSizeDockerfiles(
      plan.builds.map((b) => b.dockerfile),
      opts.projectRoot,
    );
    if (problem !== undefined) {
      throw new pulumi.RunError(formatProblems([problem]));
    }
  }

  // Render mode (`renderDir`): YAML files in a folder instead of a cluster (the engine tests,
  // and review), so nothing watches a rollout or keeps a port. It is a setting of its own: a
  // program's own provider talks to a live cluster.
  const render = config.renderDir !== undefined;
  if (render && opts.cluster?.provider !== undefined) {
    throw new Error(
      "deployChain: k8s-chain:renderDir is set and a kubernetes provider was passed; render mode makes its own provider, so pass one or the other",
    );
  }
  const provider = render
    ? new k8s.Provider("render", { renderYamlToDirectory: config.renderDir })
    : opts.cluster?.provider;
  const resourceOpts = provider ? { provider } : {};
  // What the rollout watch needs to reach the provider's cluster (secret: it may hold credentials).
  const connection = render
    ? undefined
    : pulumi.secret(
        pulumi.output(opts.cluster?.kubeconfig).apply((kubeconfig) => ({
          kubeconfig,
          context: opts.cluster?.context,
          cluster: opts.cluster?.cluster,
        })),
      );

  // The stack owns its namespace unless it is `default`, which every cluster already has;
  // it carries the Pod Security "restricted" labels.
  const namespace =
    plan.ownNamespace === undefined
      ? undefined
      : new k8s.core.v1.Namespace("namespace", namespaceSpec(plan.ownNamespace), resourceOpts);
  // Every pod of the stack denied in and out, before any pod exists; each service's own
  // policy opens what its calls need.
  const defaultDeny = plan.networkPolicies
    ? new k8s.networking.v1.NetworkPolicy("default-deny", defaultDenyPolicySpec(plan.placement), {
        ...resourceOpts,
        dependsOn: namespace ? [namespace] : [],
      })
    : undefined;

  // One AppImage per distinct app folder, shared by every service built from it; its tag
  // (a digest of the build inputs) and revision are worked out only here, asynchronously.
  const versionFor = opts.versionFor ?? ((inputs: BuildInputs) => imageVersion(inputs, config.imageTag));
  const images = new Map<AppBuild, { ref: pulumi.Output<string>; revision: pulumi.Output<string | undefined> }>();
  const imageOf = (build: AppBuild) => {
    let image = images.get(build);
    if (image === undefined) {
      const version = versionFor({
        context: build.context,
        dockerfile: build.dockerfile,
        args: config.build.args,
        platform: config.build.platform,
      });
      // Loaded here, not at the top: @pulumi/docker costs load time that a catalog of
      // prebuilt images never needs. A synchronous require, not import(): the resource must be
      // registered now, outside any callback, for previews to show it.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { AppImage: AppImageClass } = require("./app-image") as { AppImage: typeof AppImage };
      const built = new AppImageClass(build.name, {
        context: build.context,
        dockerfile: build.dockerfile,
        repository: build.name,
        registry: config.registry,
        network: config.build.network,
        platform: config.build.platform,
        tag: version.then((v) => v.tag),
        args: version.then((v) => v.args ?? {}),
      });
      image = { ref: built.ref, revision: pulumi.output(version.then((v) => v.revision)) };
      images.set(build, image);
    }
    return image;
  };

  const services: Record<string, MicroService> = {};
  const outputs: ChainOutputs = { urls: {}, nodePorts: {}, images: {}, services, defaultDeny };
  for (const planned of plan.services) {
    const name = planned.service.name;
    const source = planned.image;
    // A built image's Deployment also carries the build's revision (a prebuilt one has none).
    const { ref: image, revision } =
      source.kind === "app" ? imageOf(source) : { ref: pulumi.output(source.image), revision: undefined };
    const ms = new MicroService(
      name,
      {
        plan: planned,
        networkPolicy: plan.networkPolicies,
        placement: plan.placement,
        image,
        connection,
        revision,
        waitFor: namespace ? [namespace] : [],
        podsWaitFor: [...(defaultDeny ? [defaultDeny] : []), ...planned.callees.map((c) => services[c.name])],
      },
      resourceOpts,
    );
    services[name] = ms;
    outputs.urls[name] = ms.url;
    outputs.images[name] = image;
    if (ms.nodePort) {
      outputs.nodePorts[name] = ms.nodePort;
    }
  }

  // Pinned node ports, each a Service keyed by its port under one stable parent, created after
  // the service that owns it: a port moving between services keeps its URN (an update).
  if (plan.pinnedPorts.length > 0) {
    outputs.pinnedPorts = new NodePorts(
      "node-ports",
      { ports: plan.pinnedPorts, owners: services, placement: plan.placement },
      resourceOpts,
    );
    Object.assign(outputs.nodePorts, outputs.pinnedPorts.nodePorts);
  }
  return outputs;
}

/**
 * Two app folders whose Dockerfiles have the same size: BuildKit (still, measured by
 * `npm run test:images`) can build one of them from the other's cached Dockerfile when name,
 * size and mtime match, and a fresh clone gives them one mtime (moby/buildkit#1368). Returns the
 * message, or undefined. Only stats the files, and only for a catalog with two app folders or more.
 */
function sameSizeDockerfiles(dockerfiles: string[], projectRoot: string): string | undefined {
  const bySize = new Map<number, string>();
  for (const file of dockerfiles) {
    const size = fs.statSync(file, { throwIfNoEntry: false })?.size;
    if (size === undefined) {
      continue;
    }
    const other = bySize.get(size);
    if (other !== undefined) {
      const rel = (f: string) => path.relative(projectRoot, f);
      return (
        `${rel(other)} and ${rel(file)} are both ${size} bytes: BuildKit can build one from the other's cached Dockerfile ` +
        "(same name, size and mtime, which a fresh clone gives them; moby/buildkit#1368). Make their sizes differ, e.g. with a comment line."
      );
    }
    bySize.set(size, file);
  }
  return undefined;
}
