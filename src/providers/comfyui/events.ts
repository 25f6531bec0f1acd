/**
 * Following one prompt on ComfyUI's WebSocket (`/ws?clientId=…`), as ComfyUI's own
 * `script_examples/websockets_api_example.py` does: the server sends each client the events of
 * the prompts it submitted — `execution_start`, `progress` (`value` of `max` sampler steps),
 * `executing` (the node now running; `node: null` when the prompt is done), `execution_success`,
 * `execution_error`, `execution_interrupted` — as JSON text frames, and previews as binary ones.
 *
 * A socket that fails to open or closes midway is not an error: the caller polls `/history`
 * instead, which always has the final word.
 *
 * @module
 */
import { type ComfyExecutionError, executionError } from "./api.ts";

/** How a prompt's run ended, as the socket told it. */
export type SocketOutcome =
  | { kind: "done" }
  | { kind: "error"; error: ComfyExecutionError }
  | { kind: "interrupted" }
  /** The socket closed before the prompt ended: poll instead. */
  | { kind: "dropped" };

/** What the socket says while a prompt runs. */
export type PromptProgress =
  | { kind: "started" }
  | { kind: "progress"; value: number; max: number; node?: string };

/** One open WebSocket for one client id; its messages are kept until a prompt is followed. */
export class ComfySocket {
  readonly #socket: WebSocket;
  readonly #messages: Array<{ type: string; data: Record<string, unknown> }> = [];
  #closed = false;
  #wake: (() => void) | undefined;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => {
      // Binary frames are previews of the image being made: nothing retake needs.
      if (typeof event.data !== "string") return;
      let message: unknown;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      const { type, data } = (message ?? {}) as { type?: unknown; data?: unknown };
      if (typeof type !== "string") return;
      this.#messages.push({
        type,
        data: data !== null && typeof data === "object" ? data as Record<string, unknown> : {},
      });
      this.#wake?.();
    });
    const onClose = () => {
      this.#closed = true;
      this.#wake?.();
    };
    socket.addEventListener("close", onClose);
    socket.addEventListener("error", onClose);
  }

  /**
   * Opens a socket; undefined when it cannot within `timeoutMs` (a proxy without WebSockets, a
   * server that is restarting): the caller then polls.
   */
  static open(
    url: string,
    signal: AbortSignal,
    timeoutMs: number,
  ): Promise<ComfySocket | undefined> {
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      let socket: WebSocket;
      try {
        socket = new WebSocket(url);
      } catch {
        return resolve(undefined);
      }
      const done = (result: ComfySocket | undefined, error?: unknown) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        socket.removeEventListener("open", onOpen);
        socket.removeEventListener("error", onFail);
        socket.removeEventListener("close", onFail);
        if (error !== undefined) {
          _close(socket);
          reject(error);
        } else resolve(result);
      };
      const wrapped = new ComfySocket(socket);
      const onOpen = () => done(wrapped);
      const onFail = () => {
        _close(socket);
        done(undefined);
      };
      const onAbort = () => done(undefined, signal.reason);
      const timer = setTimeout(onFail, timeoutMs);
      socket.addEventListener("open", onOpen);
      socket.addEventListener("error", onFail);
      socket.addEventListener("close", onFail);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Waits until `promptId` ends, telling `onProgress` what it hears on the way. Resolves with the
   * end, or `dropped` when the socket closes first; rejects only when `signal` aborts.
   */
  async follow(
    promptId: string,
    signal: AbortSignal,
    onProgress: (progress: PromptProgress) => void,
  ): Promise<SocketOutcome> {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const message = this.#messages.shift();
      if (message !== undefined) {
        const outcome = _read(message, promptId, onProgress);
        if (outcome !== undefined) return outcome;
        continue;
      }
      if (this.#closed) return { kind: "dropped" };
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        this.#wake = () => {
          this.#wake = undefined;
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  /** Closes the socket; safe to call twice. */
  close(): void {
    this.#closed = true;
    _close(this.#socket);
  }
}

/** One message for `promptId`: its end, or progress told on the way. */
function _read(
  message: { type: string; data: Record<string, unknown> },
  promptId: string,
  onProgress: (progress: PromptProgress) => void,
): SocketOutcome | undefined {
  const { type, data } = message;
  // Messages without a prompt id are about the server (`status`, the queue's length).
  if (data.prompt_id !== promptId) return undefined;
  switch (type) {
    case "execution_start":
      onProgress({ kind: "started" });
      return undefined;
    case "progress":
      if (typeof data.value === "number" && typeof data.max === "number") {
        onProgress({
          kind: "progress",
          value: data.value,
          max: data.max,
          ...(typeof data.node === "string" && { node: data.node }),
        });
      }
      return undefined;
    case "executing":
      return data.node === null ? { kind: "done" } : undefined;
    case "execution_success":
      return { kind: "done" };
    case "execution_error":
      return { kind: "error", error: executionError(data) };
    case "execution_interrupted":
      return { kind: "interrupted" };
    default:
      return undefined;
  }
}

function _close(socket: WebSocket): void {
  try {
    socket.close();
  } catch {
    // Already closing or closed: nothing left to release.
  }
}
