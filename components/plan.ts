// The plan of the chain: what every service gets, worked out once from the validated catalog.
// A pure function, no Pulumi: the components only register what it says.
import * as path from "path";
import { ServiceConfig, StackConfig } from "./catalog";
import { creationOrder } from "./graph";
import { containerEnv, EnvVar, Placement, serviceUrl } from "./specs";

/**
 * An app folder to build: the build context is its parent folder (e.g. `apps/`), because the
 * apps share code that lives beside them; the Dockerfile stays in the app's own folder.
 */
export interface AppBuild {
  kind: "app";
  /** The folder as the catalog gives it, relative to the project root. */
  app: string;
  /** The build context (absolute). */
  context: string;
  /** The Dockerfile (absolute): what tells two builds apart (`apps/x` and `./apps/x/` are one). */
  dockerfile: string;
  /** The image repository and AppImage name (see {@link imageName}). */
  name: string;
}

/** Where a service's image comes from: one of the plan's builds, or a prebuilt image. */
export type PlannedImage = AppBuild | { kind: "image"; image: string };

/** One service: its entry and everything derived from the rest of the catalog. */
export interface ServicePlan {
  /** The validated catalog entry. */
  service: ServiceConfig;
  /** The entries it calls, in `calls` order (its env and its egress). */
  callees: ServiceConfig[];
  /** The entries that call it (its NetworkPolicy's ingress). */
  callers: ServiceConfig[];
  /** The in-cluster URL its callers use. */
  url: string;
  /** Its container env (see {@link containerEnv}). */
  env: EnvVar[];
  /** Its image: a build shared with every service of the same app folder, or a prebuilt image. */
  image: PlannedImage;
  /** The cluster picks its node port (`NodePort` without a pinned `nodePort`), which the stack then reports. */
  pickedNodePort: boolean;
}

/** A pinned node port and the service that owns it. */
export interface PinnedPort {
  port: number;
  service: ServiceConfig;
}

/** The whole chain. */
export interface ChainPlan {
  placement: Placement;
  /** The stack's namespace, when the stack owns it (every namespace but `default`). */
  ownNamespace?: string;
  /** Create the default-deny policy and one NetworkPolicy per service. */
  networkPolicies: boolean;
  /** Every service, in creation order: each after all the services it calls. */
  services: ServicePlan[];
  /** One build per distinct app folder (Dockerfile), in catalog order (see chain.ts's same-size Dockerfile check). */
  builds: AppBuild[];
  /** The pinned node ports, in catalog order. */
  pinnedPorts: PinnedPort[];
}

/** Plans a validated catalog; `projectRoot` is the folder `app` paths are relative to. */
export function planChain(config: StackConfig, projectRoot: string): ChainPlan {
  const placement: Placement = {
    namespace: config.namespace,
    clusterDomain: config.clusterDomain,
    rolloutTimeoutSeconds: config.rolloutTimeoutSeconds,
  };
  const byName = new Map(config.services.map((s) => [s.name, s]));
  const entry = (name: string): ServiceConfig => {
    const svc = byName.get(name);
    if (svc === undefined) {
      throw new Error(`no service ${JSON.stringify(name)} in the catalog; plan only what parseStackConfig accepted`);
    }
    return svc;
  };
  const order = creationOrder(new Map(config.services.map((s) => [s.name, s.calls])));

  // One build per Dockerfile; names are given in creation order, so the first service
  // created from a folder decides which of two same-named folders keeps the short name.
  const builds = new Map<string, AppBuild>();
  const taken = new Set<string>();
  const buildOf = (app: string): AppBuild => {
    const dir = path.resolve(projectRoot, app);
    const dockerfile = path.join(dir, "Dockerfile");
    let build = builds.get(dockerfile);
    if (build === undefined) {
      build = {
        kind: "app",
        app,
        context: path.dirname(dir),
        dockerfile,
        name: imageName(path.relative(projectRoot, dir), taken),
      };
      taken.add(build.name);
      builds.set(dockerfile, build);
    }
    return build;
  };

  const services = order.map((name): ServicePlan => {
    const svc = entry(name);
    const callees = svc.calls.map(entry);
    const image: PlannedImage = svc.source.kind === "app" ? buildOf(svc.source.app) : svc.source;
    return {
      service: svc,
      callees,
      callers: config.services.filter((s) => s.calls.includes(name)),
      url: serviceUrl(svc, placement),
      env: containerEnv(svc, callees, placement),
      image,
      pickedNodePort: svc.expose === "NodePort" && svc.nodePort === undefined,
    };
  });
  return {
    placement,
    ownNamespace: config.namespace === "default" ? undefined : config.namespace,
    networkPolicies: config.networkPolicies,
    services,
    // Every build exists by now; listed again in catalog order.
    builds: [...new Set(config.services.flatMap((s) => (s.source.kind === "app" ? [buildOf(s.source.app)] : [])))],
    pinnedPorts: config.services.flatMap((s) => (s.nodePort !== undefined ? [{ port: s.nodePort, service: s }] : [])),
  };
}

/**
 * The image repository (and AppImage name) of an app folder (relative to the project root,
 * normalised): its last segment, lower-cased; the whole path, `-`-joined, when another folder
 * already took that name. Validation (catalog.ts) has checked each segment makes a valid name.
 */
function imageName(app: string, taken: ReadonlySet<string>): string {
  const segments = app.split(/[\\/]+/);
  const short = segments[segments.length - 1].toLowerCase();
  return taken.has(short) ? segments.join("-").toLowerCase() : short;
}
