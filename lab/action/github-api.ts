/**
 * A loopback stand-in for the part of GitHub's REST API that the Pulumi action calls: the
 * comments of a pull request (GitHub's issue comments). It keeps them in memory, answers as
 * api.github.com does (status codes, JSON shapes the action reads), checks the token, and
 * records every call it receives, known or not.
 *
 * It also answers as an HTTP proxy (set as HTTP_PROXY/HTTPS_PROXY for the step): a client that
 * tries to reach any other host through the proxy is recorded and refused, so the test can
 * show that nothing went anywhere but here.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";

/** One request received, as the test sees it. */
interface RecordedCall {
  method: string;
  /** The path and query, or for a proxied request the absolute URL / `host:port` asked for. */
  url: string;
  /** The `Authorization` header as sent (undefined when absent). */
  authorization?: string;
  body: string;
  status: number;
  /** true when the request came in as a proxy request for another host. */
  proxied: boolean;
}

interface Comment {
  id: number;
  body: string;
  user: { login: string; type: string };
  created_at: string;
  updated_at: string;
  html_url: string;
}

export class GitHubStandIn {
  readonly calls: RecordedCall[] = [];
  /** Comments per issue (pull request) number, in creation order. */
  readonly comments = new Map<number, Comment[]>();
  private nextId = 1000;

  private constructor(
    private readonly server: http.Server,
    /** The repository it serves, `owner/name`; any other is a 404. */
    readonly repository: string,
    private readonly token: string,
  ) {}

  /** Starts listening on 127.0.0.1 on a free port. */
  static async start(repository: string, token: string): Promise<GitHubStandIn> {
    const server = http.createServer();
    const standIn = new GitHubStandIn(server, repository, token);
    server.on("request", (req, res) => standIn.handle(req, res));
    server.on("connect", (req, socket) => {
      // A proxy tunnel (HTTPS to some other host): record it and refuse.
      standIn.calls.push({
        method: "CONNECT",
        url: req.url ?? "",
        authorization: req.headers.authorization,
        body: "",
        status: 403,
        proxied: true,
      });
      socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return standIn;
  }

  /** `http://127.0.0.1:<port>`: GITHUB_API_URL (and the proxy URL). */
  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** All comments on the given pull request. */
  commentsOn(issue: number): Comment[] {
    return this.comments.get(issue) ?? [];
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const url = req.url ?? "";
      const call: RecordedCall = {
        method: req.method ?? "",
        url,
        authorization: req.headers.authorization,
        body,
        status: 0,
        proxied: !url.startsWith("/"),
      };
      this.calls.push(call);
      const [status, payload] = call.proxied
        ? [403, { message: "the test's network stand-in refuses other hosts" }]
        : this.route(call);
      call.status = status;
      res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
      res.end(payload === undefined ? "" : JSON.stringify(payload));
    });
  }

  private route(call: RecordedCall): [number, unknown] {
    const auth = call.authorization ?? "";
    if (auth !== `token ${this.token}` && auth !== `Bearer ${this.token}`) {
      return [401, { message: "Bad credentials", documentation_url: "https://docs.github.com/rest" }];
    }
    const path = call.url.split("?")[0];
    const repo = `/repos/${this.repository}`;
    const list = new RegExp(`^${repo}/issues/(\\d+)/comments$`).exec(path);
    const one = new RegExp(`^${repo}/issues/comments/(\\d+)$`).exec(path);
    if (list && call.method === "GET") {
      return [200, this.commentsOn(Number(list[1]))];
    }
    if (list && call.method === "POST") {
      const issue = Number(list[1]);
      const now = new Date().toISOString();
      const id = this.nextId++;
      const comment: Comment = {
        id,
        body: String(JSON.parse(call.body).body),
        user: { login: "github-actions[bot]", type: "Bot" },
        created_at: now,
        updated_at: now,
        html_url: `https://github.com/${this.repository}/pull/${issue}#issuecomment-${id}`,
      };
      this.comments.set(issue, [...this.commentsOn(issue), comment]);
      return [201, comment];
    }
    if (one && call.method === "PATCH") {
      const comment = [...this.comments.values()].flat().find((c) => c.id === Number(one[1]));
      if (!comment) return [404, { message: "Not Found" }];
      comment.body = String(JSON.parse(call.body).body);
      comment.updated_at = new Date().toISOString();
      return [200, comment];
    }
    return [404, { message: "Not Found (not served by the test's GitHub stand-in)" }];
  }
}
