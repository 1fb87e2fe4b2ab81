// Pulumi mocks that record every registered resource, with when its registration started and
// finished, so tests can observe ordering the way the engine would see it.
import * as pulumi from "@pulumi/pulumi";

export interface Recorded {
  type: string;
  name: string;
  inputs: any;
  state: any;
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
          state: undefined,
          started: ++clock,
          finished: 0,
        };
        recorded.push(rec);
        const state: any = { ...args.inputs };
        if (args.type === "docker:index/image:Image") {
          const repo = String(args.inputs.imageName).replace(/:[^:/]+$/, "");
          state.repoDigest = `${repo}@${fakeDigest(args.inputs.imageName)}`;
        }
        if (args.type === "kubernetes:core/v1:Service" && args.inputs.spec?.type === "NodePort") {
          state.spec = {
            ...args.inputs.spec,
            ports: args.inputs.spec.ports.map((p: any) => ({ ...p, nodePort: p.nodePort ?? 31999 })),
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

export function byType(recorded: Recorded[], type: string): Recorded[] {
  return recorded.filter((r) => r.type === type);
}

export function find(recorded: Recorded[], type: string, name: string): Recorded {
  const r = recorded.find((x) => x.type === type && x.name === name);
  if (!r) {
    throw new Error(`no ${type} named ${name}; have: ${recorded.map((x) => `${x.type}/${x.name}`).join(", ")}`);
  }
  return r;
}
