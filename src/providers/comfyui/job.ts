/**
 * One attempt's prompt on a ComfyUI server: queued under an id retake chose and recorded first,
 * followed on the WebSocket or by polling until its history entry arrives, and stopped when
 * nobody will collect it.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { GenerateRequest } from "../provider.ts";
import type { ComfyApi, ComfyHistoryEntry } from "./api.ts";
import { ComfySocket } from "./events.ts";
import type { WorkflowGraph } from "./workflow.ts";
import { sleep } from "../../async/sleep.ts";

const log = getLogger(["retake", "comfyui"]);

/** Longest wait for the WebSocket to open before following the prompt by polling, in ms. */
const SOCKET_OPEN_MS = 5_000;
/** Longest wait for the calls that stop a prompt after a timeout or a hard stop, in ms. */
const CANCEL_TIMEOUT_MS = 5_000;

/**
 * One attempt's prompt on the server, as far as it got: its id, the socket that follows it, and
 * when it was queued, began and ended, for the times recorded with its image.
 */
export class ComfyJob {
  /** The filled graph, as the key of the generator's unfinished prompts. */
  key: string | undefined;
  /** The prompt id the server has it under. */
  id: string | undefined;
  /** Its history entry arrived: nothing left to stop. */
  finished = false;
  readonly #api: ComfyApi;
  readonly #pollIntervalMs: number;
  #socket: ComfySocket | undefined;
  /** When it was submitted, began to run, and its entry arrived, by `performance.now()`. */
  #submittedAt: number | undefined;
  #startedAt: number | undefined;
  #endedAt: number | undefined;

  constructor(api: ComfyApi, pollIntervalMs: number) {
    this.#api = api;
    this.#pollIntervalMs = pollIntervalMs;
  }

  /**
   * Takes up the prompt of an earlier run if the server still has it (finished, running or
   * waiting); leaves the job without an id when it does not, and a new one is queued.
   */
  async recover(requestId: string, promptId: string, signal: AbortSignal): Promise<void> {
    const entry = await this.#api.history(requestId, signal);
    const state = entry !== undefined ? "finished" : await this.#api.queueState(requestId, signal);
    if (state === "absent") {
      log.info(
        "ComfyUI no longer has prompt {requestId} of {promptId} from an interrupted run (restarted?): queueing it again",
        { requestId, promptId },
      );
      this.id = undefined;
      return;
    }
    log.info(
      "Recovering ComfyUI prompt {requestId} of {promptId} from an interrupted run ({state})",
      { requestId, promptId, state },
    );
    this.id = requestId;
  }

  /**
   * Chooses the prompt's id, has the pipeline record it, and queues it. The WebSocket opens
   * first, so no event of the prompt goes by unheard.
   */
  async submit(graph: WorkflowGraph, request: GenerateRequest, signal: AbortSignal): Promise<void> {
    const promptId = crypto.randomUUID();
    const clientId = `retake-${crypto.randomUUID()}`;
    // On disk before the server has it: a run killed from here on finds it by this id.
    await request.onSubmitting?.(promptId);
    if (signal.aborted) throw signal.reason;
    this.#socket?.close();
    this.#socket = await ComfySocket.open(this.#api.socketUrl(clientId), signal, SOCKET_OPEN_MS);
    if (this.#socket === undefined) {
      log.debug("ComfyUI's WebSocket did not open: following prompt {requestId} by polling", {
        requestId: promptId,
      });
    }
    this.#submittedAt = performance.now();
    // Set before the answer: a submit cut off midway may still have reached the queue.
    this.id = promptId;
    const taken = await this.#api.submit(graph, { clientId, promptId }, signal);
    if (taken !== promptId) {
      // A server older than the `prompt_id` field: its own id is the one to record.
      log.debug("ComfyUI queued prompt {requestId} under its own id {takenId}", {
        requestId: promptId,
        takenId: taken,
      });
      this.id = taken;
    }
    log.debug("ComfyUI queued prompt {requestId} for {promptId}", {
      requestId: this.id,
      promptId: request.spec.id,
    });
    request.onAccepted?.(this.id);
  }

  /**
   * Waits for the prompt's history entry: on the WebSocket while it is open, then by polling
   * (the socket's `done` comes before the history has the entry). Undefined when the server
   * has the prompt neither in its history nor in its queue.
   */
  async entry(signal: AbortSignal): Promise<ComfyHistoryEntry | undefined> {
    if (this.#socket !== undefined) await this.#follow(this.#socket, signal);
    const entry = await this.#poll(signal);
    if (entry !== undefined) {
      this.finished = true;
      this.#endedAt = performance.now();
    }
    return entry;
  }

  /** The server lost the prompt (restarted): the next submit queues it anew. */
  forget(): void {
    this.id = undefined;
    this.#startedAt = undefined;
    this.#submittedAt = undefined;
  }

  /**
   * The time the prompt waited in the queue and the time the GPU spent on it, in ms, where
   * known: the server's own clock for the GPU where its history says, else ours.
   */
  timings(entry: ComfyHistoryEntry): { queueMs?: number; gpuMs?: number } {
    const started = this.#startedAt;
    const gpuMs = entry.startedAt !== undefined && entry.endedAt !== undefined
      ? entry.endedAt - entry.startedAt
      : started !== undefined && this.#endedAt !== undefined
      ? this.#endedAt - started
      : undefined;
    const queueMs = this.#submittedAt !== undefined && started !== undefined
      ? Math.max(0, started - this.#submittedAt)
      : undefined;
    return { ...(queueMs !== undefined && { queueMs }), ...(gpuMs !== undefined && { gpuMs }) };
  }

  /** Takes the prompt out of the queue, or interrupts it if it runs; best effort. */
  async stop(why: string, timeoutMs: number): Promise<void> {
    const requestId = this.id!;
    const signal = AbortSignal.timeout(Math.min(CANCEL_TIMEOUT_MS, timeoutMs));
    try {
      await this.#api.deleteQueued([requestId], signal);
      // An older server's interrupt stops whatever runs: only when the queue says it is ours.
      const state = await this.#api.queueState(requestId, signal);
      if (state === "running") await this.#api.interrupt(requestId, signal);
      log.info("Stopped ComfyUI prompt {requestId} ({why}): {how}", {
        requestId,
        why,
        how: state === "running" ? "interrupted" : "taken out of the queue",
      });
    } catch (error) {
      log.warn("Could not stop ComfyUI prompt {requestId} ({why}): {reason}", {
        requestId,
        why,
        reason: error instanceof Error ? error.message : String(error),
      });
    }
  }

  close(): void {
    this.#socket?.close();
  }

  /** Hears the prompt's events until it ends or the socket drops; the socket is then closed. */
  async #follow(socket: ComfySocket, signal: AbortSignal): Promise<void> {
    const id = this.id!;
    const outcome = await socket.follow(id, signal, (progress) => {
      if (progress.kind === "started") this.#startedAt ??= performance.now();
      else {
        log.debug("ComfyUI prompt {requestId}: step {value} of {max}", {
          requestId: id,
          value: progress.value,
          max: progress.max,
          node: progress.node,
        });
      }
    });
    socket.close();
    this.#socket = undefined;
    if (outcome.kind === "dropped") {
      log.debug("ComfyUI's WebSocket closed before prompt {requestId} ended: polling", {
        requestId: id,
      });
    }
  }

  /** Asks `/history`, then `/queue`, until the entry is there or the prompt is gone. */
  async #poll(signal: AbortSignal): Promise<ComfyHistoryEntry | undefined> {
    const id = this.id!;
    for (let absentOnce = false;;) {
      const entry = await this.#api.history(id, signal);
      if (entry !== undefined) return entry;
      const state = await this.#api.queueState(id, signal);
      if (state === "running") this.#startedAt ??= performance.now();
      if (state === "absent") {
        // It may have ended between the two calls: gone only if the history still lacks it.
        if (absentOnce) return undefined;
        absentOnce = true;
        continue;
      }
      absentOnce = false;
      await sleep(this.#pollIntervalMs, signal);
    }
  }
}
