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

const log = getLogger(["retake", "comfyui"]);

/** Longest wait for the WebSocket to open before following the prompt by polling, in ms. */
const SOCKET_OPEN_MS = 5_000;
/** Longest wait for the calls that stop a prompt after a timeout or a hard stop, in ms. */
const CANCEL_TIMEOUT_MS = 5_000;

/** One attempt's prompt on the server, as far as it got. */
export interface Job {
  /** The filled graph, as the key of the generator's unfinished prompts. */
  key?: string;
  /** The prompt id the server has it under. */
  id?: string | undefined;
  socket?: ComfySocket | undefined;
  /** When it was submitted, and when it began to run, by `performance.now()`. */
  submittedAt?: number | undefined;
  startedAt?: number | undefined;
  /** Its history entry arrived: nothing left to stop. */
  finished?: boolean;
}

/**
 * Chooses the prompt's id, has the pipeline record it, and queues it. The WebSocket opens
 * first, so no event of the prompt goes by unheard.
 */
export async function submit(
  api: ComfyApi,
  job: Job,
  graph: WorkflowGraph,
  request: GenerateRequest,
  signal: AbortSignal,
): Promise<void> {
  const promptId = crypto.randomUUID();
  const clientId = `retake-${crypto.randomUUID()}`;
  // On disk before the server has it: a run killed from here on finds it by this id.
  await request.onSubmitting?.(promptId);
  if (signal.aborted) throw signal.reason;
  job.socket?.close();
  job.socket = await ComfySocket.open(api.socketUrl(clientId), signal, SOCKET_OPEN_MS);
  if (job.socket === undefined) {
    log.debug("ComfyUI's WebSocket did not open: following prompt {requestId} by polling", {
      requestId: promptId,
    });
  }
  job.submittedAt = performance.now();
  // Set before the answer: a submit cut off midway may still have reached the queue.
  job.id = promptId;
  const taken = await api.submit(graph, { clientId, promptId }, signal);
  if (taken !== promptId) {
    // A server older than the `prompt_id` field: its own id is the one to record.
    log.debug("ComfyUI queued prompt {requestId} under its own id {takenId}", {
      requestId: promptId,
      takenId: taken,
    });
    job.id = taken;
  }
  log.debug("ComfyUI queued prompt {requestId} for {promptId}", {
    requestId: job.id,
    promptId: request.spec.id,
  });
  request.onAccepted?.(job.id);
}

/**
 * The prompt of an earlier run, if the server still has it (finished, running or waiting);
 * undefined when it does not, and a new one is queued.
 */
export async function recoverable(
  api: ComfyApi,
  requestId: string,
  promptId: string,
  signal: AbortSignal,
): Promise<string | undefined> {
  const entry = await api.history(requestId, signal);
  const state = entry !== undefined ? "finished" : await api.queueState(requestId, signal);
  if (state === "absent") {
    log.info(
      "ComfyUI no longer has prompt {requestId} of {promptId} from an interrupted run (restarted?): queueing it again",
      { requestId, promptId },
    );
    return undefined;
  }
  log.info(
    "Recovering ComfyUI prompt {requestId} of {promptId} from an interrupted run ({state})",
    {
      requestId,
      promptId,
      state,
    },
  );
  return requestId;
}

/**
 * Waits for the prompt's history entry: on the WebSocket while it is open, then by polling
 * (the socket's `done` comes before the history has the entry). Undefined when the server
 * has the prompt neither in its history nor in its queue.
 */
export async function finished(
  api: ComfyApi,
  job: Job,
  pollIntervalMs: number,
  signal: AbortSignal,
): Promise<ComfyHistoryEntry | undefined> {
  const id = job.id!;
  if (job.socket !== undefined) {
    const outcome = await job.socket.follow(id, signal, (progress) => {
      if (progress.kind === "started") job.startedAt ??= performance.now();
      else {
        log.debug("ComfyUI prompt {requestId}: step {value} of {max}", {
          requestId: id,
          value: progress.value,
          max: progress.max,
          node: progress.node,
        });
      }
    });
    job.socket.close();
    job.socket = undefined;
    if (outcome.kind === "dropped") {
      log.debug("ComfyUI's WebSocket closed before prompt {requestId} ended: polling", {
        requestId: id,
      });
    }
  }
  for (let absentOnce = false;;) {
    const entry = await api.history(id, signal);
    if (entry !== undefined) return entry;
    const state = await api.queueState(id, signal);
    if (state === "running") job.startedAt ??= performance.now();
    if (state === "absent") {
      // It may have ended between the two calls: gone only if the history still lacks it.
      if (absentOnce) return undefined;
      absentOnce = true;
      continue;
    }
    absentOnce = false;
    await _sleep(pollIntervalMs, signal);
  }
}

/** Takes the prompt out of the queue, or interrupts it if it runs; best effort. */
export async function stop(
  api: ComfyApi,
  requestId: string,
  why: string,
  timeoutMs: number,
): Promise<void> {
  const signal = AbortSignal.timeout(Math.min(CANCEL_TIMEOUT_MS, timeoutMs));
  try {
    await api.deleteQueued([requestId], signal);
    // An older server's interrupt stops whatever runs: only when the queue says it is ours.
    const state = await api.queueState(requestId, signal);
    if (state === "running") await api.interrupt(requestId, signal);
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

function _sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
