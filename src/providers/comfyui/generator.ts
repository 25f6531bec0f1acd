/**
 * ComfyUI as image generator: the user's own workflow, filled in for each round, queued on the
 * user's own server, followed on its WebSocket, and fetched from its history.
 *
 * A generation is a prompt in ComfyUI's queue, and retake names it itself: it chooses the
 * `prompt_id`, has the pipeline record it in the prompt's folder, and only then submits. A run
 * killed mid-generation (`kill -9`, a power cut) leaves that id on disk, and the next run asks
 * `/history/{id}` and `/queue` for it — fetching its image, or waiting for it to finish — rather
 * than queueing the same work twice. Only a server that forgot it (restarted) gets it again.
 *
 * On Ctrl-C (a hard stop) or past `--timeout`, the prompt is taken out of ComfyUI's queue, or
 * interrupted if it already runs, so the GPU does not go on with work nobody will collect.
 *
 * Images cost nothing; the time the GPU spent on each is recorded as `inferenceMs`, the time it
 * waited in ComfyUI's queue as `queueMs`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { DEFAULT_MAX_DOWNLOAD_BYTES } from "../download.ts";
import { InputError, ProviderError } from "../../errors.ts";
import { positiveOption } from "../_http.ts";
import type { GeneratedImage, GenerateRequest, ImageGenerator } from "../provider.ts";
import { ComfyApi, unreachable } from "./api.ts";
import { finished, type Job, recoverable, stop, submit } from "./job.ts";
import { deliver, type ResultSource } from "./result.ts";
import { checkComfyServer } from "./server_check.ts";
import { valuesFor, type ValueSources, warnUnsent } from "./values.ts";
import { fillWorkflow, type Workflow, WORKFLOW_MODEL } from "./workflow.ts";

const PROVIDER = "comfyui";
const log = getLogger(["retake", "comfyui"]);

// Defined with the workflow it stands for; the provider and its callers import it from here.
export { WORKFLOW_MODEL };
/** Where ComfyUI listens unless told otherwise. */
export const DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188";

/** Options for {@linkcode createComfyGenerator}. */
export interface ComfyGeneratorOptions {
  /** The workflow each image is drawn with (`--workflow`). */
  workflow: Workflow;
  /**
   * The workflow an edit goes through (an image-to-image graph with `{{image}}` in a LoadImage).
   * @default {undefined} (every round is drawn anew)
   */
  editWorkflow?: Workflow | undefined;
  /** The server's root URL. @default {"http://127.0.0.1:8188"} */
  baseUrl?: string | undefined;
  /** `{{steps}}` for prompts that set none. @default {undefined} */
  steps?: number | undefined;
  /**
   * The node whose images are the result. @default {undefined} (the first node that saved an
   * image to ComfyUI's output folder, e.g. SaveImage)
   */
  outputNode?: string | undefined;
  /** Deadline for one generation, queue time included, in ms. @default {120000} */
  timeoutMs?: number | undefined;
  /** Delay between `/history` polls where the WebSocket is not used, in ms. @default {1000} */
  pollIntervalMs?: number | undefined;
  /** Generations sent to the server at once: one GPU runs one at a time. @default {1} */
  maxConcurrency?: number | undefined;
  /** Model names this run asks for (`--model`), checked against the server before the run. */
  models?: readonly string[] | undefined;
  /** Largest image accepted, in bytes. @default {20971520} */
  maxDownloadBytes?: number | undefined;
  /** The fetch every HTTP call goes through. @default {globalThis.fetch} */
  fetch?: typeof fetch | undefined;
}

/**
 * Creates a generator that draws with the user's ComfyUI workflow.
 *
 * @example
 * ```ts ignore
 * const workflow = await readWorkflow("flux.json");
 * const generator = createComfyGenerator({ workflow });
 * const image = await generator.generate(request);
 * ```
 */
export function createComfyGenerator(options: ComfyGeneratorOptions): ImageGenerator {
  const owner = "ComfyUI generator";
  const timeoutMs = positiveOption(owner, "timeoutMs", options.timeoutMs ?? 120_000);
  const pollIntervalMs = positiveOption(owner, "pollIntervalMs", options.pollIntervalMs ?? 1000);
  const maxConcurrency = positiveOption(owner, "maxConcurrency", options.maxConcurrency ?? 1);
  const maxBytes = options.maxDownloadBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const api = new ComfyApi(options.baseUrl ?? DEFAULT_COMFYUI_URL, fetchImpl);
  const main = options.workflow;
  const edit = options.editWorkflow;
  /**
   * Prompts an attempt left on the server when it failed on the way (a network fault, a dropped
   * answer), by the graph they draw: the next attempt at the same graph asks for that prompt
   * instead of queueing the same work again.
   */
  const unfinished = new Map<string, string>();
  const warned = new Set<string>();
  const sources: ValueSources = { api, steps: options.steps, editWorkflow: edit };
  const results: ResultSource = {
    api,
    outputNode: options.outputNode,
    maxBytes,
    timeoutMs,
    fetch: fetchImpl,
  };
  const models = (options.models ?? []).filter((m) => m !== WORKFLOW_MODEL);

  return {
    name: PROVIDER,
    maxConcurrency,
    fingerprint: edit === undefined ? main.fingerprint : `${main.fingerprint}+${edit.fingerprint}`,
    editModel: (model) => edit === undefined ? undefined : model,
    check: (signal) =>
      checkComfyServer(api, edit === undefined ? [main] : [main, edit], models, signal),
    async generate(request: GenerateRequest): Promise<GeneratedImage> {
      if (request.signal.aborted) throw request.signal.reason;
      const workflow = request.edit !== undefined && edit !== undefined ? edit : main;
      const deadline = new AbortController();
      const timer = setTimeout(
        () =>
          deadline.abort(
            new DOMException(`ComfyUI timed out after ${timeoutMs} ms`, "TimeoutError"),
          ),
        timeoutMs,
      );
      const signal = AbortSignal.any([request.signal, deadline.signal]);
      const job: Job = {};
      try {
        warnUnsent(workflow, request, warned);
        const graph = fillWorkflow(workflow, await valuesFor(sources, workflow, request, signal));
        job.key = JSON.stringify(graph);
        const earlier = unfinished.get(job.key) ?? request.recoverRequestId;
        unfinished.delete(job.key);
        if (earlier !== undefined) {
          job.id = await recoverable(api, earlier, request.spec.id, signal);
        }
        // One resubmit at most per attempt: for a server that forgot the prompt (restarted).
        for (let resubmits = 0;; resubmits++) {
          if (job.id === undefined) await submit(api, job, graph, request, signal);
          const entry = await finished(api, job, pollIntervalMs, signal);
          if (entry !== undefined) {
            return await deliver(results, job, entry, workflow, graph, request, signal);
          }
          if (resubmits >= 1) {
            throw new ProviderError(
              `Cannot generate with ComfyUI as it lost prompt ${job.id} twice (the server restarted?)`,
              { provider: PROVIDER, retryable: true, requestId: job.id! },
            );
          }
          log.info(
            "ComfyUI no longer has prompt {requestId} of {promptId} (restarted?): queueing it again",
            {
              requestId: job.id,
              promptId: request.spec.id,
            },
          );
          Object.assign(job, { id: undefined, startedAt: undefined, submittedAt: undefined });
        }
      } catch (error) {
        throw await failure(job, request, deadline.signal, error);
      } finally {
        clearTimeout(timer);
        job.socket?.close();
      }
    },
  };

  /**
   * The error an attempt ends with. A prompt cut off by a hard stop or the deadline is taken out
   * of ComfyUI's queue, or interrupted if it runs, so the GPU is free for the next one.
   */
  async function failure(
    job: Job,
    request: GenerateRequest,
    deadline: AbortSignal,
    error: unknown,
  ): Promise<unknown> {
    const aborted = request.signal.aborted;
    const timedOut = !aborted && deadline.aborted;
    if ((aborted || timedOut) && job.id !== undefined && !job.finished) {
      await stop(api, job.id, aborted ? "stopped" : "timed out", timeoutMs);
    }
    if (aborted) return request.signal.reason ?? error;
    if (
      !timedOut && job.id !== undefined && !job.finished && job.key !== undefined &&
      error instanceof ProviderError && error.retryable
    ) {
      // Still queued or running on the server, as far as we know: the retry collects it.
      unfinished.set(job.key, job.id);
    }
    if (timedOut) {
      return new ProviderError(
        `Cannot generate with ComfyUI as prompt ${
          job.id ?? "(not queued)"
        } took longer than ${timeoutMs} ms (--timeout)${
          job.id === undefined ? "" : "; it was stopped on the server"
        }: raise --timeout for a slow GPU or a long queue`,
        {
          provider: PROVIDER,
          retryable: true,
          ...(job.id !== undefined && { requestId: job.id }),
          cause: error,
        },
      );
    }
    if (error instanceof ProviderError) {
      if (error.requestId !== undefined || job.id === undefined) return error;
      return new ProviderError(error.message, {
        provider: error.provider,
        retryable: error.retryable,
        fatal: error.fatal,
        requestId: job.id,
        ...(error.status !== undefined && { status: error.status }),
        cause: error,
      });
    }
    if (error instanceof InputError) return error;
    if (error instanceof TypeError) return unreachable(api.origin, error);
    return new ProviderError(
      `Cannot generate with ComfyUI: ${error instanceof Error ? error.message : String(error)}`,
      { provider: PROVIDER, retryable: false, cause: error },
    );
  }
}
