// Pulumi mocks that record every registered resource, with when its registration started and
// finished, so tests can observe ordering the way the engine would see it.
import * as pulumi from "@pulumi/pulumi";
import type * as docker from "@pulumi/docker";
import type * as k8s from "@pulumi/kubernetes";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { INamespace } from "kubernetes-models/v1/Namespace";
import type { IService } from "kubernetes-models/v1/Service";
import type { IServicePort } from "kubernetes-models/v1/ServicePort";
import type { RolloutInputs } from "../../components/rollout";

/** The inputs a registration carries, by resource type: plain values (the SDK resolved every `Input`). */
interface InputsByType {
  "kubernetes:apps/v1:Deployment": IDeployment;
  "kubernetes:core/v1:Service": IService;
  "kubernetes:core/v1:Namespace": INamespace;
  "kubernetes:policy/v1:PodDisruptionBudget": IPodDisruptionBudget;
  "kubernetes:networking.k8s.io/v1:NetworkPolicy": INetworkPolicy;
  "docker:index/image:Image": pulumi.Unwrap<docker.ImageArgs>;
  "pulumi-nodejs:dynamic/k8s-chain:Rollout": RolloutInputs;
  "pulumi:providers:kubernetes": pulumi.Unwrap<k8s.ProviderArgs>;
}

/** The inputs of a resource of type `T`: its Kubernetes object or SDK args when known, else a plain map. */
export type InputsOf<T extends string> = T extends keyof InputsByType ? InputsByType[T] : Record<string, unknown>;

export interface Recorded<I = Record<string, unknown>> {
  type: string;
  name: string;
  inputs: I;
  /** The provider reference it was registered with (`urn::id`), when not the default. */
  provider?: string;
  /** The state the mock answered with (empty until answered). */
  state: Record<string, unknown>;
  /** Order numbers: registration seen by the mock, and answered. */
  started: number;
  finished: number;
}

/** Fake digest for a pushed image, derived from its name so it is stable in tests. */
export function fakeDigest(imageName: string): string {
  let h = 0;
  for (const c of imageName) {
    h = (h * 31 + c.charCodeAt(0)) >>> 0;
  }
  return `sha256:${h.toString(16).padStart(8, "0").repeat(8)}`;
}

/**
 * Installs fresh mocks. Deployments and Services take `readyDelayMs` to answer, standing in
 * for the provider's wait for rollout and endpoints.
 */
export function installMocks(opts: { readyDelayMs?: number; preview?: boolean } = {}): Recorded[] {
  const recorded: Recorded[] = [];
  let clock = 0;
  pulumi.runtime.setMocks(
    {
      newResource: async (args: pulumi.runtime.MockResourceArgs) => {
        const rec: Recorded = {
          type: args.type,
          name: args.name,
          inputs: args.inputs,
          provider: args.provider,
          state: {},
          started: ++clock,
          finished: 0,
        };
        recorded.push(rec);
        const state: Record<string, unknown> = { ...args.inputs };
        if (args.type === "docker:index/image:Image") {
          const repo = String(args.inputs.imageName).replace(/:[^:/]+$/, "");
          state.repoDigest = `${repo}@${fakeDigest(args.inputs.imageName)}`;
        }
        if (args.type === "kubernetes:core/v1:Service" && args.inputs.spec?.type === "NodePort") {
          state.spec = {
            ...args.inputs.spec,
            ports: args.inputs.spec.ports.map((p: IServicePort) => ({ ...p, nodePort: p.nodePort ?? 31999 })),
          };
        }
        if (/^kubernetes:(apps\/v1:Deployment|core\/v1:Service)$/.test(args.type) && opts.readyDelayMs) {
          await new Promise((r) => setTimeout(r, opts.readyDelayMs));
        }
        rec.finished = ++clock;
        rec.state = state;
        return { id: `${args.name}-id`, state };
      },
      call: (args: pulumi.runtime.MockCallArgs) => args.inputs,
    },
    "k8s-chain",
    "test",
    opts.preview ?? false,
  );
  return recorded;
}

/**
 * The URN the engine gives a child of the resource at `parentUrn`: the parent's type chain, `$`,
 * the child's type, then its name. So a URN says which type of parent a resource has (a
 * different parent type would make it another resource).
 */
export function childUrn(parentUrn: string, type: string, name: string): string {
  return `${parentUrn.slice(0, parentUrn.lastIndexOf("::"))}$${type}::${name}`;
}

/** The value of an output, once known. */
export function valueOf<T>(o: pulumi.Input<T>): Promise<T> {
  return new Promise((resolve) =>
    pulumi.output(o).apply((v) => {
      resolve(v as T);
      return v;
    }),
  );
}

/** Waits until every registration the program started has been answered. */
export async function settle(recorded: Recorded[], expected: number, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (recorded.filter((r) => r.finished > 0).length < expected) {
    if (Date.now() > deadline) {
      throw new Error(`only ${recorded.filter((r) => r.finished > 0).length} of ${expected} resources registered`);
    }
    await new Promise((r) => setImmediate(r));
  }
}

/** Whether a registration is of type `T` (its inputs then have that type's shape). */
function isOfType<T extends string>(r: Recorded, type: T): r is Recorded & Recorded<InputsOf<T>> {
  return r.type === type;
}

export function byType<T extends string>(recorded: Recorded[], type: T): Recorded<InputsOf<T>>[] {
  return recorded.filter((r) => isOfType(r, type));
}

export function find<T extends string>(recorded: Recorded[], type: T, name: string): Recorded<InputsOf<T>> {
  const r = recorded.find((x): x is Recorded & Recorded<InputsOf<T>> => isOfType(x, type) && x.name === name);
  if (!r) {
    throw new Error(`no ${type} named ${name}; have: ${recorded.map((x) => `${x.type}/${x.name}`).join(", ")}`);
  }
  return r;
}
