// Parsing and validation of the stack config: pure functions, no Pulumi.
//
// The whole config is checked before any resource is registered, and every problem is
// reported at once (a user fixing a catalog should not have to run `pulumi preview` once
// per typo). Each problem names the field, the value and what would be valid. This file is
// the schema of each key and field; the rules that need the whole catalog are in
// catalog-rules.ts, the apps' env contract in app-contract.ts, image references in image-ref.ts.
import * as net from "net";
import * as path from "path";
import * as YAML from "yaml";
import { z } from "zod";
import { checkCatalog, NODE_PORT_MAX, NODE_PORT_MIN } from "./catalog-rules";
import { imagePinProblem, REGISTRY, REPOSITORY_COMPONENT } from "./image-ref";
import { ConfigError, show } from "./problems";

/** The Service types a catalog entry may ask for. */
const EXPOSE_TYPES = ["ClusterIP", "NodePort", "LoadBalancer"] as const;
export type ExposeType = (typeof EXPOSE_TYPES)[number];

/**
 * `rolloutTimeoutSeconds`: how long one rollout (and any Service's wait for endpoints or a
 * load-balancer address) may take before `pulumi up` fails. The provider's own default is
 * 10 minutes.
 */
export const ROLLOUT_TIMEOUT_SECONDS = { default: 120, min: 10, max: 3600 } as const;

/** Kubernetes' int32 fields (replicas, ports) stop here. */
const INT32_MAX = 2147483647;

/** A DNS-1035 label: the Service name other services resolve. */
const DNS_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
/** A DNS-1123 subdomain (at most 253 characters, checked apart): a cluster domain. */
const DNS_1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
/** Names of the Services that hold pinned node ports (`node-port-30080`): no catalog entry may take one. */
const RESERVED_NAME = /^node-port-[0-9]+$/;
/** Kubernetes' rule for env var names (C identifiers plus `-` and `.`). */
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
/** Label keys: optional DNS prefix (at most 253 characters, checked apart), then a name of at most 63 characters. */
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
/** An HTTP path the kubelet can probe: `/`, then RFC 3986 path characters; no query, no fragment. */
const HEALTH_PATH = /^\/([A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$/;

/** Namespaces the stack must not own: it would label them and delete them on `destroy`. */
const KUBE_NAMESPACE = /^kube-/;

/** One service of the catalog, with every default resolved. */
export interface ServiceConfig {
  /** The catalog key: names the Kubernetes Service, so it is the DNS name callers use. */
  name: string;
  /** Where its image comes from: an app folder built here, or a prebuilt image. */
  source: ImageSource;
  /** @default 2 */
  replicas: number;
  /** Container port. @default 8080 */
  port: number;
  /** Service port. @default 80 */
  servicePort: number;
  /** Service type. @default "ClusterIP" */
  expose: ExposeType;
  /** Pinned node port, only with `NodePort`. @default undefined (the cluster picks one) */
  nodePort?: number;
  /** Services this one calls, in order. @default [] */
  calls: string[];
  /** Extra container env, applied after the stack's own. @default {} */
  env: Record<string, string>;
  /** Extra labels on the service's objects and pod template, never in a selector. @default {} */
  labels: Record<string, string>;
  /** Extra egress allowed by its NetworkPolicy, beyond its callees and DNS. @default [] */
  egress: EgressRule[];
  /** Startup and readiness probe path. @default "/health" */
  healthPath: string;
  /** Liveness probe path: the apps' `/livez` (200 while the process runs); a prebuilt image that lacks it sets its own. @default "/livez" */
  livenessPath: string;
}

/**
 * Where a service's image comes from: exactly one of the catalog's `app` (a folder relative to
 * the project root, holding a `Dockerfile`, built here) or `image` (prebuilt and pinned).
 */
export type ImageSource = { kind: "app"; app: string } | { kind: "image"; image: string };

/** One extra egress destination: an address block and a port (for a prebuilt image that calls outside the chain). */
export interface EgressRule {
  /** IPv4 or IPv6 CIDR, e.g. `203.0.113.0/24`. */
  cidr: string;
  port: number;
  /** @default "TCP" */
  protocol: "TCP" | "UDP";
}

/** How the stack builds every app image, the same for each. */
export interface BuildSettings {
  /**
   * Build args for every image (`NODE_IMAGE` picks the apps' base image: a mirror, or a
   * locally tagged copy on a machine without Docker Hub). Part of each image's tag digest.
   * @default {}
   */
  args: Record<string, string>;
  /** The network of the builds' `RUN` steps (`host` where the Docker engine has no bridge network). Unset: Docker's default. */
  network?: "default" | "host" | "none";
  /** The platform the images are built for. @default `linux/` and the architecture of the machine running `pulumi` */
  platform: string;
}

/** `linux/amd64` or `linux/arm64`...: the platform of the machine running the program, the default `buildPlatform`. */
export function hostPlatform(arch: string = process.arch): string {
  const names: Record<string, string> = { x64: "amd64", ia32: "386", arm: "arm", ppc64: "ppc64le" };
  return `linux/${names[arch] ?? arch}`;
}

/** The stack config, validated, with defaults resolved. */
export interface StackConfig {
  /** @default "default" */
  namespace: string;
  /** Image repository prefix; unset means build into the local engine only. */
  registry?: string;
  /** Tag for built images; unset means a digest of each app's build inputs (image-tag.ts). */
  imageTag?: string;
  /** How app images are built (`buildArgs`, `buildNetwork`, `buildPlatform`). */
  build: BuildSettings;
  /** @default "cluster.local" */
  clusterDomain: string;
  /** Render manifests to this directory instead of talking to a cluster. */
  renderDir?: string;
  /**
   * Seconds a Deployment's rollout, or a Service's wait, may take before `up` fails.
   * @default 120
   */
  rolloutTimeoutSeconds: number;
  /** Create the NetworkPolicies derived from `calls`. @default true */
  networkPolicies: boolean;
  /** The services, in catalog order. */
  services: ServiceConfig[];
}

/** The keys of the `k8s-chain` config namespace. */
const CONFIG_KEYS = [
  "namespace",
  "registry",
  "imageTag",
  "buildArgs",
  "buildNetwork",
  "buildPlatform",
  "clusterDomain",
  "renderDir",
  "rolloutTimeoutSeconds",
  "networkPolicies",
  "services",
  "servicesFile",
] as const;

/**
 * The raw values as read from Pulumi config (the `k8s-chain:` prefix dropped): anything may be
 * wrong with them, including keys that are not ours (a typo such as `namspace` would otherwise
 * be ignored silently).
 */
export type RawStackConfig = { [K in (typeof CONFIG_KEYS)[number]]?: unknown } & Record<string, unknown>;

/** What the parser may ask of the file system (injected so parsing stays pure in tests). */
export interface ParseContext {
  /** The project root that `app` folders are relative to. */
  projectRoot: string;
  /** Whether a path exists, and whether it is a directory. */
  stat(p: string): "file" | "dir" | undefined;
  /** A file's text (`servicesFile`); absent where the catalog is always inline (tests). */
  readText?(p: string): string;
}

/**
 * The catalog from `servicesFile` (YAML or JSON, relative to the project root), or undefined
 * with the problem pushed. It exists because Pulumi hands the program its whole config in one
 * environment variable, which Linux caps at 128 KiB: about 800 services with digest-pinned
 * images in `services` make the engine fail before the program runs ("argument list too long").
 */
function readServicesFile(problems: string[], file: string, ctx: ParseContext): unknown {
  const where = path.resolve(ctx.projectRoot, file);
  if (ctx.stat(where) !== "file" || ctx.readText === undefined) {
    problems.push(
      `servicesFile: ${show(file)} is not a file (${where}); use a YAML or JSON file's path relative to the project root`,
    );
    return undefined;
  }
  const doc = YAML.parseDocument(ctx.readText(where));
  if (doc.errors.length > 0) {
    problems.push(
      `servicesFile: ${show(file)} is not valid YAML or JSON: ${doc.errors[0].message.split("\n")[0].replace(/:$/, "")}`,
    );
    return undefined;
  }
  return doc.toJS();
}

/** An integer field; every way of getting it wrong gets the same message, naming the value. */
function intField(what: string, min: number, max?: number) {
  const range = max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
  const error = (iss: { input?: unknown }) => `${show(iss.input)} is not ${what}; use an integer ${range}`;
  const atLeast = z.int({ error }).min(min, { error });
  return max === undefined ? atLeast : atLeast.max(max, { error });
}

/** A map of strings whose keys (and optionally values) follow a Kubernetes naming rule. */
function stringMap(what: string, key: RegExp, keyHint: string, value?: RegExp, valueHint?: string) {
  const str = z.string({ error: (iss) => `${show(iss.input)} is not a string; quote it ("${String(iss.input)}")` });
  return z.record(
    z.string().regex(key),
    value ? str.regex(value, { error: (iss) => `${show(iss.input)} is not a valid value; ${valueHint}` }) : str,
    {
      error: (iss) =>
        iss.code === "invalid_key"
          ? `${show(iss.input)} is not a valid key; ${keyHint}`
          : `${show(iss.input)} is not a map of ${what}; use {"KEY": "value"}`,
    },
  );
}

/** A path the kubelet probes: a plain path (no query or fragment) an HTTP request line can carry. */
function probePath(example: string) {
  return z
    .string({ error: (iss) => `${show(iss.input)} is not a string; use a path such as "${example}"` })
    .regex(/^\//, {
      abort: true,
      error: (iss) => `${show(iss.input)} is not a path; it must start with "/", e.g. "${example}"`,
    })
    .refine((p) => !/[?#]/.test(p), {
      abort: true,
      error: (iss) =>
        `${show(iss.input)} has a query or fragment, which the probe would not send as the app expects; use a plain path such as "${example}"`,
    })
    .regex(HEALTH_PATH, {
      error: (iss) =>
        `${show(iss.input)} has characters an HTTP path cannot carry unescaped; use letters, digits and -._~/ (or %XX escapes)`,
    })
    .max(1024, {
      error: (iss) => `${show(iss.input)} is longer than 1024 characters; use a short path such as "${example}"`,
    })
    .optional();
}

/**
 * One schema per field of a catalog entry. Each field is parsed on its own, so one bad field
 * does not hide the problems of the others; cross-field and cross-entry rules come after.
 */
const fieldSchemas = {
  app: z
    .string({ error: (iss) => `${show(iss.input)} is not a string; give the app folder, e.g. "apps/service-a"` })
    .min(1, { error: `"" is empty; give the app folder, e.g. "apps/service-a"` })
    .optional(),
  image: z
    .string({ error: (iss) => `${show(iss.input)} is not a string; give a pinned image such as "nginx:1.27.3"` })
    .optional(),
  replicas: intField("a valid replica count", 1, INT32_MAX).optional(),
  port: intField("a valid port", 1, 65535).optional(),
  servicePort: intField("a valid port", 1, 65535).optional(),
  expose: z
    .enum(EXPOSE_TYPES, {
      error: (iss) => `${show(iss.input)} is not a Service type; use one of ${EXPOSE_TYPES.join(", ")}`,
    })
    .optional(),
  nodePort: intField("in the NodePort range", NODE_PORT_MIN, NODE_PORT_MAX).optional(),
  calls: z
    .array(z.string({ error: (iss) => `${show(iss.input)} is not a service name` }), {
      error: (iss) => `${show(iss.input)} is not a list; use ["service-b"]`,
    })
    .optional(),
  env: stringMap(
    "env vars",
    ENV_NAME,
    "env var names use letters, digits, `_`, `-` and `.`, and do not start with a digit",
  ).optional(),
  labels: stringMap(
    "labels",
    LABEL_KEY,
    'use a Kubernetes label key such as "tier" or "example.com/tier"',
    LABEL_VALUE,
    "label values are at most 63 letters, digits, `-`, `_` or `.`, starting and ending alphanumeric",
  ).optional(),
  healthPath: probePath("/health"),
  livenessPath: probePath("/livez"),
  egress: z
    .array(
      z
        .object(
          {
            cidr: z
              .string({
                error: (iss) => `${show(iss.input)} is not a string; use an address block such as "203.0.113.0/24"`,
              })
              .refine((c) => cidrProblem(c) === undefined, {
                error: (iss) => `${show(iss.input)} is not a CIDR; ${cidrProblem(String(iss.input))}`,
              }),
            port: intField("a valid port", 1, 65535),
            protocol: z
              .enum(["TCP", "UDP"], { error: (iss) => `${show(iss.input)} is not a protocol; use TCP or UDP` })
              .optional(),
          },
          {
            error: (iss) =>
              iss.code === "unrecognized_keys"
                ? `unknown field ${iss.keys.map((k) => show(k)).join(", ")}; valid fields are cidr, port, protocol`
                : `${show(iss.input)} is not a map; use {"cidr": "203.0.113.0/24", "port": 443}`,
          },
        )
        .strict(),
      { error: (iss) => `${show(iss.input)} is not a list; use [{"cidr": "203.0.113.0/24", "port": 443}]` },
    )
    .optional(),
};

/**
 * What is wrong with a NetworkPolicy `ipBlock.cidr` (undefined when nothing): an IPv4 or IPv6
 * address, `/`, a prefix length in range; no leading zeros (the API server refuses them).
 */
function cidrProblem(cidr: string): string | undefined {
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(cidr);
  const hint = 'use an address block such as "203.0.113.0/24" or "2001:db8::/32" (a single host is "/32" or "/128")';
  if (!m) {
    return hint;
  }
  const family = net.isIP(m[1]);
  const bits = Number(m[2]);
  if (family === 0 || (family === 4 && m[1].split(".").some((o) => o.length > 1 && o.startsWith("0")))) {
    return `${show(m[1])} is not an IP address; ${hint}`;
  }
  const max = family === 4 ? 32 : 128;
  if (bits > max || (m[2].length > 1 && m[2].startsWith("0"))) {
    return `the prefix length ${m[2]} is not from 0 to ${max}; ${hint}`;
  }
  return undefined;
}

type Entry = { [K in keyof typeof fieldSchemas]?: z.infer<(typeof fieldSchemas)[K]> };

/**
 * A list without the items at `bad`, or a map without the keys in `bad`; undefined when a
 * problem is with the whole value (no index or key), which then counts as absent.
 */
function withoutElements(value: unknown, bad: (PropertyKey | undefined)[]): unknown {
  if (Array.isArray(value) && bad.every((k) => typeof k === "number")) {
    return value.filter((_, i) => !bad.includes(i));
  }
  if (typeof value === "object" && value !== null && bad.every((k) => typeof k === "string")) {
    return Object.fromEntries(Object.entries(value).filter(([k]) => !bad.includes(k)));
  }
  return undefined;
}

/** Turns a zod issue path into the user's dotted config path. */
function fieldPath(prefix: string, p: ReadonlyArray<PropertyKey>): string {
  return p.reduce<string>((acc, key) => (typeof key === "number" ? `${acc}[${key}]` : `${acc}.${String(key)}`), prefix);
}

function optionalString(problems: string[], key: string, v: unknown, hint: string, rule?: RegExp): string | undefined {
  if (v === undefined || v === null || v === "") {
    return undefined;
  }
  if (typeof v !== "string" || (rule && !rule.test(v))) {
    problems.push(`${key}: ${show(v)} is not valid; ${hint}`);
    return undefined;
  }
  return v;
}

/**
 * A flat integer key. Pulumi hands every flat value over as a string, so a string of digits
 * counts as the number it spells; anything else is reported with the field's own message.
 */
function optionalInt(problems: string[], key: string, v: unknown, schema: z.ZodType<number>): number | undefined {
  if (v === undefined || v === null || v === "") {
    return undefined;
  }
  const parsed = schema.safeParse(typeof v === "string" && /^-?[0-9]+$/.test(v) ? Number(v) : v);
  if (!parsed.success) {
    problems.push(`${key}: ${parsed.error.issues[0].message}`);
    return undefined;
  }
  return parsed.data;
}

/** A flat boolean key: Pulumi hands it over as the string "true" or "false". */
function optionalBoolean(problems: string[], key: string, v: unknown): boolean | undefined {
  if (v === undefined || v === null || v === "") {
    return undefined;
  }
  if (v === true || v === "true") {
    return true;
  }
  if (v === false || v === "false") {
    return false;
  }
  problems.push(`${key}: ${show(v)} is not a boolean; use true or false`);
  return undefined;
}

const rolloutTimeoutSchema = intField(
  "a valid rollout timeout in seconds",
  ROLLOUT_TIMEOUT_SECONDS.min,
  ROLLOUT_TIMEOUT_SECONDS.max,
);

/**
 * Validates the raw stack config and resolves every default.
 * @throws ConfigError listing every problem found, when there is at least one.
 */
export function parseStackConfig(raw: RawStackConfig, ctx: ParseContext): StackConfig {
  const problems: string[] = [];
  for (const key of Object.keys(raw)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      problems.push(`${key}: unknown config key \`k8s-chain:${key}\`; valid keys are ${CONFIG_KEYS.join(", ")}`);
    }
  }

  const namespace =
    optionalString(
      problems,
      "namespace",
      raw.namespace,
      'use a DNS-1123 label such as "k8s-chain" (lower-case letters, digits and `-`, at most 63)',
      /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
    ) ?? "default";
  if (KUBE_NAMESPACE.test(namespace)) {
    problems.push(
      `namespace: ${show(namespace)} is reserved for Kubernetes itself (\`kube-*\`); the stack would label it and delete it on destroy, so use a namespace of its own such as "k8s-chain"`,
    );
  }
  const registry = optionalString(
    problems,
    "registry",
    raw.registry,
    'use an image repository prefix such as "ghcr.io/org" or "localhost:5001" (no scheme, no trailing `/`, a lower-case path)',
    REGISTRY,
  );
  const registryPort = registry === undefined ? undefined : REGISTRY.exec(registry)?.[2];
  if (
    registryPort !== undefined &&
    (Number(registryPort) < 1 || Number(registryPort) > 65535 || registryPort.startsWith("0"))
  ) {
    problems.push(`registry: ${show(registry)} has port ${registryPort}; use a port from 1 to 65535`);
  }
  const imageTag = optionalString(
    problems,
    "imageTag",
    raw.imageTag,
    'use a Docker tag other than "latest": up to 128 letters, digits, `_`, `.` or `-`',
    /^(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/,
  );
  const build = parseBuildSettings(problems, raw);
  const clusterDomain =
    optionalString(
      problems,
      "clusterDomain",
      raw.clusterDomain,
      'use a DNS domain such as "cluster.local" (lower-case DNS labels of at most 63 characters, 253 in all)',
      DNS_1123_SUBDOMAIN,
    ) ?? "cluster.local";
  if (clusterDomain.length > 253) {
    problems.push(
      `clusterDomain: ${show(clusterDomain)} is ${clusterDomain.length} characters; a DNS name has at most 253`,
    );
  }
  const renderDir = optionalString(problems, "renderDir", raw.renderDir, "use a directory path");
  const rolloutTimeoutSeconds =
    optionalInt(problems, "rolloutTimeoutSeconds", raw.rolloutTimeoutSeconds, rolloutTimeoutSchema) ??
    ROLLOUT_TIMEOUT_SECONDS.default;
  const networkPolicies = optionalBoolean(problems, "networkPolicies", raw.networkPolicies) ?? true;

  const services: ServiceConfig[] = [];
  let rawServices = raw.services;
  const fileProblems = problems.length;
  const servicesFile = optionalString(problems, "servicesFile", raw.servicesFile, "use a file path");
  if (servicesFile !== undefined && rawServices !== undefined) {
    problems.push(`services and servicesFile are both set; keep one (servicesFile: ${show(servicesFile)})`);
  } else if (servicesFile !== undefined) {
    rawServices = readServicesFile(problems, servicesFile, ctx);
  }
  if (problems.length > fileProblems) {
    // Reported above: the catalog is not read.
  } else if (rawServices === undefined || rawServices === null) {
    problems.push(
      `services: missing; add at least one service under \`k8s-chain:services\` (see Pulumi.dev.yaml)${servicesFile === undefined ? "" : ` or in ${show(servicesFile)}`}`,
    );
  } else if (typeof rawServices !== "object" || Array.isArray(rawServices)) {
    problems.push(`services: ${show(rawServices)} is not a map; use {"<name>": {"app": "apps/<name>"}}`);
  } else if (Object.keys(rawServices).length === 0) {
    problems.push("services: empty; add at least one service under `k8s-chain:services`");
  } else {
    for (const [name, value] of Object.entries(rawServices as Record<string, unknown>)) {
      const svc = parseEntry(name, value, problems, ctx);
      if (svc) {
        services.push(svc);
      }
    }
    checkCatalog(services, problems, namespace);
  }

  if (problems.length > 0) {
    throw new ConfigError(problems);
  }
  return {
    namespace,
    registry,
    imageTag,
    build,
    clusterDomain,
    renderDir,
    rolloutTimeoutSeconds,
    networkPolicies,
    services,
  };
}

const buildArgsSchema = stringMap(
  "build args",
  /^[A-Za-z_][A-Za-z0-9_]*$/,
  "a build arg is a letter or `_`, then letters, digits or `_` (as a Dockerfile's ARG names it)",
);

/** `buildArgs`, `buildNetwork` and `buildPlatform`, with their defaults. */
function parseBuildSettings(problems: string[], raw: RawStackConfig): BuildSettings {
  let args: Record<string, string> = {};
  if (raw.buildArgs !== undefined && raw.buildArgs !== null && raw.buildArgs !== "") {
    const parsed = buildArgsSchema.safeParse(raw.buildArgs);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        problems.push(`${fieldPath("buildArgs", issue.path)}: ${issue.message}`);
      }
    } else {
      args = parsed.data;
      if ("REVISION" in args) {
        problems.push(
          "buildArgs.REVISION: set by the stack (the last commit that touched the app's build inputs); remove it, or set `imageTag` to name the images yourself",
        );
      }
    }
  }
  const network = optionalString(
    problems,
    "buildNetwork",
    raw.buildNetwork,
    'use "default", "host" (a Docker engine without a bridge network) or "none"',
    /^(default|host|none)$/,
  ) as BuildSettings["network"];
  const platform =
    optionalString(
      problems,
      "buildPlatform",
      raw.buildPlatform,
      'use an OS and architecture such as "linux/amd64" or "linux/arm64" (the cluster\'s nodes\')',
      /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/,
    ) ?? hostPlatform();
  return { args, network, platform };
}

function parseEntry(name: string, value: unknown, problems: string[], ctx: ParseContext): ServiceConfig | undefined {
  const at = `services.${name}`;
  if (!DNS_1035.test(name) || name.length > 63) {
    problems.push(
      `${at}: ${show(name)} is not a valid service name; use a DNS-1035 label: ` +
        "lower-case letters, digits and `-`, starting with a letter, ending alphanumeric, at most 63 characters",
    );
  }
  if (RESERVED_NAME.test(name)) {
    problems.push(
      `${at}: ${show(name)} is reserved: the stack names the Service holding a pinned node port ` +
        "`node-port-<port>`; rename the service",
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    problems.push(`${at}: ${show(value)} is not a map; use {"app": "apps/${name}"} or {"image": "<image>:<tag>"}`);
    return undefined;
  }
  const e: Entry = {};
  const fields = Object.keys(fieldSchemas) as (keyof typeof fieldSchemas)[];
  for (const [key, fieldValue] of Object.entries(value)) {
    const field = fields.find((f) => f === key);
    if (field === undefined) {
      problems.push(`${at}.${key}: unknown field; valid fields are ${fields.join(", ")}`);
      continue;
    }
    const parsed = fieldSchemas[field].safeParse(fieldValue);
    if (parsed.success) {
      (e as Record<string, unknown>)[field] = parsed.data;
    } else {
      for (const issue of parsed.error.issues) {
        problems.push(`${fieldPath(`${at}.${field}`, issue.path)}: ${issue.message}`);
      }
      // A list or map keeps its good elements, so the rules that look across the catalog (an
      // unknown callee, an env var the stack sets) report theirs in this same run, not the next.
      const rest = withoutElements(
        fieldValue,
        parsed.error.issues.map((issue) => issue.path[0]),
      );
      const reparsed = rest === undefined ? undefined : fieldSchemas[field].safeParse(rest);
      if (reparsed?.success) {
        (e as Record<string, unknown>)[field] = reparsed.data;
      }
    }
  }

  if (e.app !== undefined && e.image !== undefined) {
    problems.push(
      `${at}: only one of \`app\` or \`image\` can be set (app ${show(e.app)}, image ${show(e.image)}); ` +
        "keep `app` to build from source or `image` to run a prebuilt image",
    );
  } else if (e.app === undefined && e.image === undefined) {
    problems.push(
      `${at}: one of \`app\` or \`image\` is required; set \`app\` to a folder with a Dockerfile (e.g. "apps/${name}") or \`image\` to a pinned image`,
    );
  }
  if (e.image !== undefined) {
    const pin = imagePinProblem(e.image);
    if (pin) {
      problems.push(`${at}.image: ${pin}`);
    }
  }
  if (e.app !== undefined) {
    const dir = path.resolve(ctx.projectRoot, e.app);
    const rel = path.relative(ctx.projectRoot, dir);
    if (path.isAbsolute(e.app) || rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) {
      problems.push(
        `${at}.app: ${show(e.app)} is not inside the project (${ctx.projectRoot}); give a folder under it, relative to it, e.g. "apps/${name}"`,
      );
    } else if (ctx.stat(dir) !== "dir") {
      problems.push(
        `${at}.app: ${show(e.app)} is not a folder under ${ctx.projectRoot}; give the app's folder relative to the project root`,
      );
    } else if (ctx.stat(path.join(dir, "Dockerfile")) !== "file") {
      problems.push(`${at}.app: ${show(e.app)} has no Dockerfile; add ${path.join(e.app, "Dockerfile")}`);
    } else {
      // The image is named after the folder, lower-cased (after the whole path, `-`-joined, when
      // two folders share a name), so every folder on the path must make a repository name
      // that the registry and containerd accept; otherwise `docker build` refuses it mid-`up`.
      const bad = rel.split(/[\\/]+/).find((segment) => !REPOSITORY_COMPONENT.test(segment.toLowerCase()));
      if (bad !== undefined) {
        problems.push(
          `${at}.app: ${show(e.app)} cannot name an image: the folder name ${show(bad)} is not a repository name; ` +
            "rename it to letters and digits, optionally joined by `.`, `_`, `__` or `-` (the image name is the folder's, lower-cased)",
        );
      }
    }
  }
  const expose = e.expose ?? "ClusterIP";
  if (e.nodePort !== undefined && expose !== "NodePort") {
    problems.push(
      `${at}.nodePort: ${e.nodePort} is set but \`expose\` is ${show(expose)}; set \`expose: NodePort\` or remove \`nodePort\``,
    );
  }
  const calls = e.calls ?? [];
  const healthPath = e.healthPath ?? "/health";
  if (healthPath.split("?")[0] === "/" && calls.length > 0) {
    problems.push(
      `${at}.healthPath: "/" is refused for a service with \`calls\` (its \`/\` calls ${calls.join(", ")}, so probes would follow the chain); use a route that touches no downstream, e.g. "/health"`,
    );
  }
  const livenessPath = e.livenessPath ?? "/livez";
  if (livenessPath === "/" && calls.length > 0) {
    problems.push(
      `${at}.livenessPath: "/" is refused for a service with \`calls\` (its \`/\` calls ${calls.join(", ")}, so the liveness probe would follow the chain and restart the pod when a callee is slow); use a route that touches no downstream, e.g. "/livez"`,
    );
  }
  const seen = new Set<string>();
  calls.forEach((callee, i) => {
    if (seen.has(callee)) {
      problems.push(`${at}.calls[${i}]: ${show(callee)} is listed twice; list each callee once`);
    }
    seen.add(callee);
  });
  return {
    name,
    // With both or neither set, a problem is already reported and the config is refused;
    // `app` first keeps the app env checks of an entry that set both.
    source: e.app !== undefined ? { kind: "app", app: e.app } : { kind: "image", image: e.image ?? "" },
    replicas: e.replicas ?? 2,
    port: e.port ?? 8080,
    servicePort: e.servicePort ?? 80,
    expose,
    nodePort: e.nodePort,
    calls,
    env: e.env ?? {},
    labels: e.labels ?? {},
    egress: (e.egress ?? []).map((r) => ({ cidr: r.cidr, port: r.port, protocol: r.protocol ?? "TCP" })),
    healthPath,
    livenessPath,
  };
}
