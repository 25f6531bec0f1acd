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
import { localServerTiming } from "../_http.ts";
import type { GeneratedImage, GenerateRequest, ImageGenerator } from "../provider.ts";
import { ComfyApi, unreachable } from "./api.ts";
import { ComfyJob } from "./job.ts";
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
  return new ComfyGenerator(options);
}

/**
 * Draws with the user's ComfyUI workflow. One instance serves a whole run: besides its settings
 * it remembers, across prompts, the prompts failed attempts left on the server and the warnings
 * it already gave.
 */
export class ComfyGenerator implements ImageGenerator {
  readonly name = PROVIDER;
  readonly maxConcurrency: number;
  readonly fingerprint: string;
  readonly #main: Workflow;
  readonly #edit: Workflow | undefined;
  readonly #api: ComfyApi;
  readonly #timeoutMs: number;
  readonly #pollIntervalMs: number;
  /** The models `--model` names, checked against the server's list inputs. */
  readonly #models: readonly string[];
  readonly #values: ValueSources;
  readonly #results: ResultSource;
  /**
   * Prompts an attempt left on the server when it failed on the way (a network fault, a dropped
   * answer), by the graph they draw: the next attempt at the same graph asks for that prompt
   * instead of queueing the same work again.
   */
  readonly #unfinished = new Map<string, string>();
  /** What the workflows have no place for, said once each. */
  readonly #warned = new Set<string>();

  constructor(options: ComfyGeneratorOptions) {
    const timing = localServerTiming("ComfyUI generator", options);
    this.#timeoutMs = timing.timeoutMs;
    this.#pollIntervalMs = timing.pollIntervalMs;
    this.maxConcurrency = timing.maxConcurrency;
    const fetchImpl = options.fetch ?? globalThis.fetch;
    this.#api = new ComfyApi(options.baseUrl ?? DEFAULT_COMFYUI_URL, fetchImpl);
    this.#main = options.workflow;
    this.#edit = options.editWorkflow;
    this.fingerprint = this.#edit === undefined
      ? this.#main.fingerprint
      : `${this.#main.fingerprint}+${this.#edit.fingerprint}`;
    this.#models = (options.models ?? []).filter((m) => m !== WORKFLOW_MODEL);
    this.#values = { api: this.#api, steps: options.steps, editWorkflow: this.#edit };
    this.#results = {
      api: this.#api,
      outputNode: options.outputNode,
      maxBytes: options.maxDownloadBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES,
      timeoutMs: this.#timeoutMs,
      fetch: fetchImpl,
    };
  }

  editModel(model: string): string | undefined {
    return this.#edit === undefined ? undefined : model;
  }

  /** A property, not a method: callers pass it around on its own (the registry's checks). */
  readonly check = (signal: AbortSignal): Promise<void> =>
    checkComfyServer(
      this.#api,
      this.#edit === undefined ? [this.#main] : [this.#main, this.#edit],
      this.#models,
      signal,
    );

  async generate(request: GenerateRequest): Promise<GeneratedImage> {
    if (request.signal.aborted) throw request.signal.reason;
    const edit = this.#edit;
    const workflow = request.edit !== undefined && edit !== undefined ? edit : this.#main;
    const timeoutMs = this.#timeoutMs;
    const deadline = new AbortController();
    const timer = setTimeout(
      () =>
        deadline.abort(
          new DOMException(`ComfyUI timed out after ${timeoutMs} ms`, "TimeoutError"),
        ),
      timeoutMs,
    );
    const signal = AbortSignal.any([request.signal, deadline.signal]);
    const job = new ComfyJob(this.#api, this.#pollIntervalMs);
    try {
      return await this.#attempt(job, workflow, request, signal);
    } catch (error) {
      throw await this.#failure(job, request, deadline.signal, error);
    } finally {
      clearTimeout(timer);
      job.close();
    }
  }

  /** Fills the workflow, takes up the prompt an earlier attempt left, else queues it, and waits. */
  async #attempt(
    job: ComfyJob,
    workflow: Workflow,
    request: GenerateRequest,
    signal: AbortSignal,
  ): Promise<GeneratedImage> {
    warnUnsent(workflow, request, this.#warned);
    const graph = fillWorkflow(workflow, await valuesFor(this.#values, workflow, request, signal));
    job.key = JSON.stringify(graph);
    const earlier = this.#unfinished.get(job.key) ?? request.recoverRequestId;
    this.#unfinished.delete(job.key);
    if (earlier !== undefined) await job.recover(earlier, request.spec.id, signal);
    // One resubmit at most per attempt: for a server that forgot the prompt (restarted).
    for (let resubmits = 0;; resubmits++) {
      if (job.id === undefined) await job.submit(graph, request, signal);
      const entry = await job.entry(signal);
      if (entry !== undefined) {
        return await deliver(this.#results, job, entry, workflow, graph, request, signal);
      }
      if (resubmits >= 1) {
        throw new ProviderError(
          `Cannot generate with ComfyUI as it lost prompt ${job.id} twice (the server restarted?)`,
          { provider: PROVIDER, retryable: true, requestId: job.id! },
        );
      }
      log.info(
        "ComfyUI no longer has prompt {requestId} of {promptId} (restarted?): queueing it again",
        { requestId: job.id, promptId: request.spec.id },
      );
      job.forget();
    }
  }

  /**
   * The error an attempt ends with. A prompt cut off by a hard stop or the deadline is taken out
   * of ComfyUI's queue, or interrupted if it runs, so the GPU is free for the next one.
   */
  async #failure(
    job: ComfyJob,
    request: GenerateRequest,
    deadline: AbortSignal,
    error: unknown,
  ): Promise<unknown> {
    const aborted = request.signal.aborted;
    const timedOut = !aborted && deadline.aborted;
    if ((aborted || timedOut) && job.id !== undefined && !job.finished) {
      await job.stop(aborted ? "stopped" : "timed out", this.#timeoutMs);
    }
    if (aborted) return request.signal.reason ?? error;
    if (
      !timedOut && job.id !== undefined && !job.finished && job.key !== undefined &&
      error instanceof ProviderError && error.retryable
    ) {
      // Still queued or running on the server, as far as we know: the retry collects it.
      this.#unfinished.set(job.key, job.id);
    }
    if (timedOut) {
      return new ProviderError(
        `Cannot generate with ComfyUI as prompt ${
          job.id ?? "(not queued)"
        } took longer than ${this.#timeoutMs} ms (--timeout)${
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
    if (error instanceof TypeError) return unreachable(this.#api.origin, error);
    return new ProviderError(
      `Cannot generate with ComfyUI: ${error instanceof Error ? error.message : String(error)}`,
      { provider: PROVIDER, retryable: false, cause: error },
    );
  }
}
