/**
 * ComfyUI's HTTP API, as its `server.py` serves it: `POST /prompt` (with the client's own
 * `prompt_id` and `client_id`), `GET /history/{prompt_id}`, `GET /queue`, `POST /queue`
 * (`{"delete": [...]}`), `POST /interrupt`, `POST /upload/image`, `GET /view`,
 * `GET /object_info/{class}`. Every fault is a {@linkcode ProviderError} that says whether a retry
 * can help; the server's own words reach the message, never a secret (ComfyUI takes none).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { ProviderError } from "../../errors.ts";
import { escapeControls } from "../../util/terminal_text.ts";
import type { WorkflowGraph } from "./workflow.ts";

const PROVIDER = "comfyui";
const log = getLogger(["retake", "comfyui"]);

/** One image a node saved, as `/history` lists it. */
export interface ComfyImageRef {
  filename: string;
  subfolder: string;
  /** `output` (SaveImage), `temp` (PreviewImage) or `input`. */
  type: string;
}

/** A finished prompt, from `/history/{prompt_id}`. */
export interface ComfyHistoryEntry {
  /** Images by the node that made them. */
  outputs: Record<string, ComfyImageRef[]>;
  /** `success` or `error`; undefined on servers that do not say. */
  status?: string;
  /** The `execution_error` it ended with, where it failed. */
  error?: ComfyExecutionError;
  /** It was interrupted (`execution_interrupted`). */
  interrupted?: boolean;
  /** When it started and ended, by the server's clock (ms), where its messages say. */
  startedAt?: number;
  endedAt?: number;
}

/** What `execution_error` says. */
export interface ComfyExecutionError {
  node?: string;
  nodeType?: string;
  message: string;
  exceptionType?: string;
}

/** Where a prompt is in ComfyUI's queue. */
export type QueueState = "running" | "pending" | "absent";

/**
 * A client of one ComfyUI server.
 *
 * @example
 * ```ts ignore
 * const api = new ComfyApi("http://127.0.0.1:8188");
 * await api.submit(graph, { clientId, promptId }, signal);
 * const entry = await api.history(promptId, signal);
 * ```
 */
export class ComfyApi {
  readonly baseUrl: string;
  readonly origin: string;
  readonly #fetch: typeof fetch;

  constructor(baseUrl: string, fetchImpl: typeof fetch = globalThis.fetch) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.origin = new URL(this.baseUrl).origin;
    this.#fetch = fetchImpl;
  }

  /** The WebSocket URL for one client id. */
  socketUrl(clientId: string): string {
    const url = new URL(`${this.baseUrl}/ws`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("clientId", clientId);
    return url.href;
  }

  /** Where a saved image is served. */
  viewUrl(image: ComfyImageRef): string {
    const query = new URLSearchParams({
      filename: image.filename,
      subfolder: image.subfolder,
      type: image.type,
    });
    return `${this.baseUrl}/view?${query}`;
  }

  /**
   * Queues `graph` under `promptId`. Returns the id the server took it under: servers older than
   * the `prompt_id` field choose their own. A 400 is a {@linkcode ComfyRefusal}.
   */
  async submit(
    graph: WorkflowGraph,
    ids: { clientId: string; promptId: string },
    signal: AbortSignal,
  ): Promise<string> {
    const body = { prompt: graph, client_id: ids.clientId, prompt_id: ids.promptId };
    const answer = await this.#json("POST", "/prompt", signal, body);
    const taken = (answer as { prompt_id?: unknown } | undefined)?.prompt_id;
    return typeof taken === "string" && taken !== "" ? taken : ids.promptId;
  }

  /** The prompt's entry in the history, once it ended; undefined while it has none. */
  async history(promptId: string, signal: AbortSignal): Promise<ComfyHistoryEntry | undefined> {
    const answer = await this.#json("GET", `/history/${encodeURIComponent(promptId)}`, signal);
    const entry = _isObject(answer) ? answer[promptId] : undefined;
    return _isObject(entry) ? _historyEntry(entry) : undefined;
  }

  /** Whether the prompt is running, waiting, or in neither list. */
  async queueState(promptId: string, signal: AbortSignal): Promise<QueueState> {
    const answer = await this.#json("GET", "/queue", signal);
    const has = (list: unknown) =>
      Array.isArray(list) && list.some((item) => Array.isArray(item) && item[1] === promptId);
    const queue = _isObject(answer) ? answer : {};
    return has(queue.queue_running) ? "running" : has(queue.queue_pending) ? "pending" : "absent";
  }

  /** How many prompts the server has running or waiting, all clients' together. */
  async queueLength(signal: AbortSignal): Promise<number> {
    const answer = await this.#json("GET", "/queue", signal);
    const queue = _isObject(answer) ? answer : {};
    const count = (list: unknown) => Array.isArray(list) ? list.length : 0;
    return count(queue.queue_running) + count(queue.queue_pending);
  }

  /**
   * Stops the running prompt. Servers that read the body stop it only if it is `promptId`;
   * older ones stop whatever runs, so call this only when the queue says it is ours.
   */
  async interrupt(promptId: string, signal: AbortSignal): Promise<void> {
    await this.#json("POST", "/interrupt", signal, { prompt_id: promptId });
  }

  /** Takes waiting prompts out of the queue. */
  async deleteQueued(promptIds: string[], signal: AbortSignal): Promise<void> {
    await this.#json("POST", "/queue", signal, { delete: promptIds });
  }

  /**
   * Uploads an image to the server's input folder, as `POST /upload/image` takes it (multipart,
   * `overwrite`), and returns the name a LoadImage node takes.
   */
  async upload(bytes: Uint8Array, filename: string, signal: AbortSignal): Promise<string> {
    const form = new FormData();
    const type = /\.jpe?g$/i.test(filename) ? "image/jpeg" : "image/png";
    form.append("image", new Blob([bytes as BlobPart], { type }), filename);
    form.append("overwrite", "true");
    form.append("type", "input");
    const answer = await this.#json("POST", "/upload/image", signal, form);
    const { name, subfolder } = (_isObject(answer) ? answer : {}) as {
      name?: unknown;
      subfolder?: unknown;
    };
    if (typeof name !== "string" || name === "") {
      throw new ProviderError(
        "Cannot use ComfyUI's answer to the image upload as it names no file: check that the server is ComfyUI",
        { provider: PROVIDER, retryable: false },
      );
    }
    return typeof subfolder === "string" && subfolder !== "" ? `${subfolder}/${name}` : name;
  }

  /** What the server says of a node type; undefined when it has no such type. */
  async objectInfo(
    classType: string,
    signal: AbortSignal,
  ): Promise<Record<string, unknown> | undefined> {
    const answer = await this.#json(
      "GET",
      `/object_info/${encodeURIComponent(classType)}`,
      signal,
    );
    const info = _isObject(answer) ? answer[classType] : undefined;
    return _isObject(info) ? info : undefined;
  }

  /** One call whose answer is JSON (or empty); every failure a {@linkcode ProviderError}. */
  async #json(
    method: string,
    path: string,
    signal: AbortSignal,
    body?: unknown,
  ): Promise<unknown> {
    const started = performance.now();
    const init: RequestInit = { method, signal };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { "content-type": "application/json" };
    }
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(`${this.baseUrl}${path}`, init);
      text = await response.text();
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      throw unreachable(this.origin, error);
    }
    log.debug("ComfyUI {method} {path}: {status} in {durationMs} ms", {
      method,
      path,
      status: response.status,
      durationMs: Math.round(performance.now() - started),
    });
    const parsed = _parsed(text);
    if (response.ok) {
      if (parsed === undefined && text.trim() !== "") {
        throw new ProviderError(
          `Cannot read ComfyUI's answer to ${method} ${path} as it is not JSON (${text.length} bytes): check that ${this.origin} is ComfyUI`,
          { provider: PROVIDER, retryable: true, status: response.status },
        );
      }
      return parsed;
    }
    if (method === "POST" && path === "/prompt" && response.status === 400) {
      throw new ComfyRefusal(parsed, text);
    }
    const detail = _clip(
      _isObject(parsed)
        ? JSON.stringify(parsed.error ?? parsed)
        : text.trim() || response.statusText,
    );
    const retryable = response.status >= 500 || response.status === 408 || response.status === 429;
    throw new ProviderError(
      `ComfyUI answered ${method} ${path} with HTTP ${response.status}${
        detail ? `: ${detail}` : ""
      }${
        response.status === 404 ? `; check that ${this.origin} is ComfyUI (COMFYUI_BASE_URL)` : ""
      }`,
      { provider: PROVIDER, retryable, status: response.status },
    );
  }
}

/**
 * ComfyUI refused a workflow (`POST /prompt` answered 400): its `error` and the `node_errors`,
 * node by node. Every prompt would get the same answer, so it stops the run.
 */
export class ComfyRefusal extends ProviderError {
  /** Each refused node's id, type and what is wrong with which input. */
  readonly nodes: ReadonlyArray<{ node: string; classType?: string; problems: string[] }>;

  constructor(body: unknown, text: string) {
    const { summary, nodes } = _refusal(body, text);
    super(summary, { provider: PROVIDER, retryable: false, fatal: true, status: 400 });
    this.name = "ComfyRefusal";
    this.nodes = nodes;
  }
}

/** A connection that failed: the server is down, restarting, or elsewhere. */
export function unreachable(origin: string, error: unknown): ProviderError {
  const message = error instanceof Error ? error.message : String(error);
  return new ProviderError(
    `Cannot reach ComfyUI at ${origin} (${
      _clip(message)
    }): start ComfyUI, or set COMFYUI_BASE_URL to where it runs`,
    {
      provider: PROVIDER,
      retryable: true,
      cause: error,
    },
  );
}

/** What a 400 says: its `error`, then each node with the inputs it names. */
function _refusal(
  body: unknown,
  text: string,
): { summary: string; nodes: Array<{ node: string; classType?: string; problems: string[] }> } {
  const nodes: Array<{ node: string; classType?: string; problems: string[] }> = [];
  const data = _isObject(body) ? body : {};
  const nodeErrors = _isObject(data.node_errors) ? data.node_errors : {};
  for (const [node, entry] of Object.entries(nodeErrors)) {
    if (!_isObject(entry)) continue;
    const problems = (Array.isArray(entry.errors) ? entry.errors : []).map(_problem);
    nodes.push({
      node,
      ...(typeof entry.class_type === "string" && { classType: entry.class_type }),
      problems,
    });
  }
  const error = _isObject(data.error) ? data.error : undefined;
  const extra = _isObject(error?.extra_info) ? error.extra_info : {};
  if (nodes.length === 0 && typeof extra.node_id === "string") {
    // `missing_node_type` names its node in `extra_info`, with no `node_errors`.
    nodes.push({
      node: extra.node_id,
      ...(typeof extra.class_type === "string" && { classType: extra.class_type }),
      problems: [_problem(error)],
    });
  }
  const kind = typeof error?.type === "string" ? error.type : undefined;
  const said = typeof error?.message === "string"
    ? error.message
    : typeof data.error === "string"
    ? data.error
    : undefined;
  const head = [kind, said].filter((part) => part !== undefined && part !== "").join(": ");
  const where = nodes.map((n) =>
    `node '${escapeControls(n.node)}'${n.classType ? ` (${escapeControls(n.classType)})` : ""}: ${
      n.problems.join("; ") || "refused"
    }`
  ).join("; ");
  const summary = `ComfyUI refused the workflow (HTTP 400${head ? ` ${_clip(head)}` : ""})${
    where ? `: ${_clip(where, 600)}` : text.trim() && !head ? `: ${_clip(text.trim())}` : ""
  }`;
  return { summary, nodes };
}

/** One entry of a node's `errors`: its input, what is wrong, and ComfyUI's details. */
function _problem(item: unknown): string {
  const entry = _isObject(item) ? item : {};
  const extra = _isObject(entry.extra_info) ? entry.extra_info : {};
  const input = typeof extra.input_name === "string"
    ? `input '${escapeControls(extra.input_name)}': `
    : "";
  const message = typeof entry.message === "string" ? entry.message : "refused";
  const details = typeof entry.details === "string" && entry.details !== ""
    ? ` (${escapeControls(entry.details)})`
    : "";
  return `${input}${escapeControls(message)}${details}`;
}

/** A history entry's parts retake reads. */
function _historyEntry(entry: Record<string, unknown>): ComfyHistoryEntry {
  const outputs: Record<string, ComfyImageRef[]> = {};
  for (const [node, output] of Object.entries(_isObject(entry.outputs) ? entry.outputs : {})) {
    const images = _isObject(output) && Array.isArray(output.images) ? output.images : [];
    const refs = images.filter(_isObject).filter((i) => typeof i.filename === "string").map((
      i,
    ) => ({
      filename: String(i.filename),
      subfolder: typeof i.subfolder === "string" ? i.subfolder : "",
      type: typeof i.type === "string" ? i.type : "output",
    }));
    if (refs.length > 0) outputs[node] = refs;
  }
  const status = _isObject(entry.status) ? entry.status : {};
  const result: ComfyHistoryEntry = { outputs };
  if (typeof status.status_str === "string") result.status = status.status_str;
  for (const message of Array.isArray(status.messages) ? status.messages : []) {
    if (!Array.isArray(message) || typeof message[0] !== "string") continue;
    const data = _isObject(message[1]) ? message[1] : {};
    const at = typeof data.timestamp === "number" ? data.timestamp : undefined;
    if (message[0] === "execution_start" && at !== undefined) result.startedAt = at;
    if (message[0] === "execution_success" && at !== undefined) result.endedAt = at;
    if (message[0] === "execution_error") result.error = executionError(data);
    if (message[0] === "execution_interrupted") result.interrupted = true;
  }
  return result;
}

/** The parts of an `execution_error` message retake reports. */
export function executionError(data: Record<string, unknown>): ComfyExecutionError {
  return {
    ...(typeof data.node_id === "string" && { node: data.node_id }),
    ...(typeof data.node_type === "string" && { nodeType: data.node_type }),
    message: typeof data.exception_message === "string" && data.exception_message.trim() !== ""
      ? data.exception_message.trim()
      : "it failed",
    ...(typeof data.exception_type === "string" && { exceptionType: data.exception_type }),
  };
}

/** The answer's JSON; undefined for an empty answer or one that is not JSON. */
function _parsed(text: string): unknown {
  try {
    return text.trim() === "" ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

function _clip(text: string, max = 300): string {
  const clean = escapeControls(text.replace(/\s+/g, " ").trim());
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

function _isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
