/**
 * AUTOMATIC1111's HTTP API (and Forge's, which keeps it), as its `modules/api/api.py` serves it.
 * Every fault is a {@linkcode ProviderError} that says whether a retry can help; the server's
 * own words reach the message, the credentials never do: they go in the `Authorization` header
 * only.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { Buffer } from "node:buffer";
import { ProviderError } from "../../errors.ts";
import { escapeControls } from "../../util/terminal_text.ts";

const PROVIDER = "a1111";
const log = getLogger(["retake", "a1111"]);

/** What `/sdapi/v1/progress` says while an image is drawn. */
export interface A1111Progress {
  /** 0 to 1. */
  progress?: unknown;
  state?: { sampling_step?: unknown; sampling_steps?: unknown };
}

/** Where a task is, as `/internal/progress` says. */
export interface A1111TaskState {
  /** It is the one being drawn. */
  active: boolean;
  /** It waits behind another. */
  queued: boolean;
}

/**
 * A client of one AUTOMATIC1111 or Forge server.
 *
 * @example
 * ```ts ignore
 * const api = new A1111Api("http://127.0.0.1:7860", undefined);
 * const answer = await api.draw("txt2img", { prompt: "a red kite", force_task_id: id }, signal);
 * ```
 */
export class A1111Api {
  readonly baseUrl: string;
  readonly origin: string;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;

  /** `auth` is `user:password`, as the server's `--api-auth` has it. */
  constructor(
    baseUrl: string,
    auth: string | undefined,
    fetchImpl: typeof fetch = globalThis.fetch,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.origin = new URL(this.baseUrl).origin;
    this.#fetch = fetchImpl;
    this.#headers = { "content-type": "application/json" };
    if (auth !== undefined) {
      this.#headers.authorization = `Basic ${Buffer.from(auth, "utf8").toString("base64")}`;
    }
  }

  /** Draws one image (`txt2img`, or `img2img` for an edit); answers when it is done. */
  draw(endpoint: "txt2img" | "img2img", body: unknown, signal: AbortSignal): Promise<unknown> {
    return this.#call("POST", `/sdapi/v1/${endpoint}`, signal, body);
  }

  /** What the server is drawing now, without the preview image. */
  async progress(signal: AbortSignal): Promise<A1111Progress | undefined> {
    return await this.#call("GET", "/sdapi/v1/progress?skip_current_image=true", signal) as
      | A1111Progress
      | undefined;
  }

  /** Stops whatever the server is drawing: it takes no task id. */
  async interrupt(signal: AbortSignal): Promise<void> {
    await this.#call("POST", "/sdapi/v1/interrupt", signal);
  }

  /** What `/internal/progress` says of a task; undefined where the server does not say. */
  async taskState(taskId: string, signal: AbortSignal): Promise<A1111TaskState | undefined> {
    const answer = await this.#call("POST", "/internal/progress", signal, {
      id_task: taskId,
      id_live_preview: -1,
      live_preview: false,
    }).catch(() => undefined) as { active?: unknown; queued?: unknown } | undefined;
    if (answer === undefined || typeof answer.active !== "boolean") return undefined;
    return { active: answer.active, queued: answer.queued === true };
  }

  /** The checkpoints the server has (`/sdapi/v1/sd-models`), as it lists them. */
  sdModels(signal: AbortSignal): Promise<unknown> {
    return this.#call("GET", "/sdapi/v1/sd-models", signal);
  }

  /** One API call; every fault a {@linkcode ProviderError}, the credentials in no message. */
  async #call(
    method: string,
    path: string,
    signal: AbortSignal,
    body?: unknown,
  ): Promise<unknown> {
    let response: Response;
    let text: string;
    const started = performance.now();
    try {
      response = await this.#fetch(`${this.baseUrl}${path}`, {
        method,
        headers: this.#headers,
        signal,
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      text = await response.text();
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      const message = error instanceof Error ? error.message : String(error);
      throw new ProviderError(
        `Cannot reach AUTOMATIC1111 at ${this.origin} (${
          _clip(message)
        }): start the web UI with --api, or set A1111_BASE_URL to where it runs`,
        {
          provider: PROVIDER,
          retryable: true,
          cause: error,
        },
      );
    }
    const route = path.replace(/\?.*$/, "");
    log.debug("AUTOMATIC1111 {method} {path}: {status} in {durationMs} ms", {
      method,
      path: route,
      status: response.status,
      durationMs: Math.round(performance.now() - started),
    });
    const parsed = _parsed(text);
    if (response.ok) {
      if (parsed === undefined && text !== "") {
        throw new ProviderError(
          `Cannot read AUTOMATIC1111's answer to ${method} ${route} as it is not JSON (${text.length} bytes): the connection may have been cut`,
          { provider: PROVIDER, retryable: true, status: response.status },
        );
      }
      return parsed;
    }
    throw _httpError(response.status, parsed, text, method, route, this.origin);
  }
}

/** What a non-2xx answer means for the run. */
function _httpError(
  status: number,
  body: unknown,
  text: string,
  method: string,
  route: string,
  origin: string,
): ProviderError {
  const data = (body ?? {}) as Record<string, unknown>;
  const detail = Array.isArray(data.detail)
    ? data.detail.map((item) => {
      const entry = (item ?? {}) as { loc?: unknown; msg?: unknown };
      const loc = Array.isArray(entry.loc) ? entry.loc.filter((p) => p !== "body").join(".") : "";
      return `${loc === "" ? "" : `${loc}: `}${String(entry.msg ?? "invalid")}`;
    }).join("; ")
    : typeof data.errors === "string" && data.errors !== ""
    ? `${typeof data.error === "string" ? `${data.error}: ` : ""}${data.errors}`
    : typeof data.detail === "string"
    ? data.detail
    : text.trim();
  const said = detail === "" ? "" : `: ${_clip(detail)}`;
  const common = { provider: PROVIDER, status };
  if (status === 401) {
    return new ProviderError(
      `Cannot use AUTOMATIC1111 as it refused the credentials (HTTP 401${said}): check --api-auth (A1111_API_AUTH), which must match the server's --api-auth user:password`,
      { ...common, retryable: false, fatal: true },
    );
  }
  if (status === 404 && route.startsWith("/sdapi/")) {
    const model = /model|sampler|checkpoint/i.test(detail);
    return new ProviderError(
      model
        ? `Cannot generate with AUTOMATIC1111 as it has no such model or sampler (HTTP 404${said}): check --model and the a1111 settings`
        : `Cannot use AUTOMATIC1111 at ${origin} as it does not serve ${route} (HTTP 404): start the web UI with --api, or check A1111_BASE_URL`,
      { ...common, retryable: false, fatal: true },
    );
  }
  if (status === 422) {
    // A field of every request (its settings) was refused: every prompt would fail alike.
    return new ProviderError(
      `Cannot generate with AUTOMATIC1111 as it refused the request (HTTP 422${said}): every prompt would fail alike; check the a1111 settings`,
      { ...common, retryable: false, fatal: true },
    );
  }
  const retryable = status === 408 || status === 429 || status === 502 || status === 503 ||
    status === 504;
  return new ProviderError(
    `AUTOMATIC1111 failed ${method} ${route} (HTTP ${status}${said})`,
    { ...common, retryable },
  );
}

/** The answer's JSON; undefined for an empty answer or one that is not JSON. */
function _parsed(text: string): unknown {
  try {
    return text === "" ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

function _clip(text: string, max = 300): string {
  const clean = escapeControls(text.replace(/\s+/g, " ").trim());
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}
