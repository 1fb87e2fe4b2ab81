import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

export interface AppImageArgs {
  /** The build context folder (absolute). */
  context: string;
  /** The Dockerfile (absolute). */
  dockerfile: string;
  /** The repository name, e.g. `chain-service`. */
  repository: string;
  /** The tag to build with; never `latest` (by default a digest of the build inputs, see image-tag.ts). */
  tag: pulumi.Input<string>;
  /**
   * Build args (`REVISION`, which the Dockerfile writes as the image's
   * `org.opencontainers.image.revision` label).
   * @default {}
   */
  args?: pulumi.Input<Record<string, string>>;
  /**
   * Image repository prefix (`ghcr.io/org`, `localhost:5001`). Set: push, and run the pushed
   * digest. Unset: build into the local engine only and run the tag.
   * @default undefined
   */
  registry?: string;
  /**
   * The network of the build's `RUN` steps (`host` for a Docker engine with no bridge network).
   * @default Docker's default
   */
  network?: "default" | "host" | "none";
  /**
   * The platform to build for, e.g. `linux/amd64`: the cluster's nodes'.
   * @default the Docker engine's own (the provider warns that it is unset)
   */
  platform?: string;
  /**
   * Build during `pulumi preview` too. Off by default so previews stay fast; the preview
   * then shows the image reference as unknown until `pulumi up`.
   * @default false
   */
  buildOnPreview?: boolean;
}

/**
 * An app's Docker image, built from its folder with `@pulumi/docker`: one per distinct app
 * folder, shared by every service built from it.
 */
export class AppImage extends pulumi.ComponentResource {
  public readonly image: docker.Image;
  /**
   * What a Deployment should run: `<registry>/<repo>@sha256:...` when pushed, else the local
   * `<repo>:<tag>` (immutable, since the tag is derived from the source).
   */
  public readonly ref: pulumi.Output<string>;

  /**
   * @param name The app's name (its folder's); the child is named `${name}-image`.
   * @param args Context, Dockerfile, repository, tag and registry.
   * @param opts Resource options.
   */
  constructor(name: string, args: AppImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("k8s-chain:components:AppImage", name, {}, opts);
    const pushed = args.registry !== undefined;
    const imageName = pushed
      ? pulumi.interpolate`${args.registry}/${args.repository}:${args.tag}`
      : pulumi.interpolate`${args.repository}:${args.tag}`;

    this.image = new docker.Image(
      `${name}-image`,
      {
        imageName,
        build: {
          context: args.context,
          dockerfile: args.dockerfile,
          args: args.args ?? {},
          network: args.network,
          platform: args.platform,
        },
        skipPush: !pushed,
        buildOnPreview: args.buildOnPreview ?? false,
      },
      { parent: this },
    );

    // `repoDigest` exists only for pushed images; a local-only image is run by its tag.
    this.ref = pushed ? this.image.repoDigest : this.image.imageName;

    this.registerOutputs({ image: this.image, ref: this.ref });
  }
}
