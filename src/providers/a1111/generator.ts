/**
 * AUTOMATIC1111's Stable Diffusion web UI (and Forge, which keeps its API) as image generator:
 * `POST /sdapi/v1/txt2img`, `img2img` for edits, `GET /sdapi/v1/progress` while it draws, and
 * `POST /sdapi/v1/interrupt` on a hard stop or past `--timeout`. Basic auth where the server was
 * started with `--api-auth`; the credentials go in the `Authorization` header only.
 *
 * The API answers only when the image is done, and keeps nothing for a client that went away.
 * So each request carries a task id retake records first (`force_task_id`), and a run killed
 * mid-generation has the next run stop that orphan (`/internal/progress` says whether it still
 * runs), instead of leaving the GPU to draw an image nobody will collect; the image itself is
 * drawn again. Images cost nothing; the time each took is recorded as `inferenceMs`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { Buffer } from "node:buffer";
import { ProviderError } from "../../errors.ts";
import { localServerTiming } from "../_http.ts";
import type { GeneratedImage, GenerateRequest, ImageGenerator } from "../provider.ts";
import { A1111Api } from "./api.ts";
import { imageOf } from "./answer.ts";
import { checkA1111Server } from "./server_check.ts";

const PROVIDER = "a1111";
const log = getLogger(["retake", "a1111"]);

/** The model id that means "the checkpoint the server has loaded". */
export const LOADED_MODEL = "loaded";
/** Where the web UI listens unless told otherwise. */
export const DEFAULT_A1111_URL = "http://127.0.0.1:7860";
/** Longest wait for the calls that stop a request after a timeout or a hard stop, in ms. */
const STOP_TIMEOUT_MS = 5_000;

/** Options for {@linkcode createA1111Generator}. */
export interface A1111GeneratorOptions {
  /** The server's root URL. @default {"http://127.0.0.1:7860"} */
  baseUrl?: string | undefined;
  /** `user:password`, as the server's `--api-auth` has it. @default {undefined} (no auth) */
  auth?: string | undefined;
  /** `steps` for prompts that set none. @default {undefined} (the server's own, 20) */
  steps?: number | undefined;
  /** `sampler_name`. @default {undefined} (the server's own) */
  sampler?: string | undefined;
  /** `scheduler` (web UI 1.9 and later). @default {undefined} (the server's own) */
  scheduler?: string | undefined;
  /** `cfg_scale`. @default {undefined} (the server's own, 7) */
  cfgScale?: number | undefined;
  /** How far an edit (img2img) may move from its source image, 0 to 1. @default {0.55} */
  denoisingStrength?: number | undefined;
  /** Deadline for one generation, in ms. @default {120000} */
  timeoutMs?: number | undefined;
  /** Delay between progress polls while an image is drawn, in ms. @default {1000} */
  pollIntervalMs?: number | undefined;
  /** Generations sent at once: one GPU runs one at a time. @default {1} */
  maxConcurrency?: number | undefined;
  /** Checkpoints this run asks for (`--model`), checked before the run. */
  models?: readonly string[] | undefined;
  /** The fetch every HTTP call goes through. @default {globalThis.fetch} */
  fetch?: typeof fetch | undefined;
}

/**
 * Creates a generator that draws with an AUTOMATIC1111 or Forge server.
 *
 * @example
 * ```ts ignore
 * const generator = createA1111Generator({ baseUrl: "http://127.0.0.1:7860" });
 * const image = await generator.generate(request);
 * ```
 */
export function createA1111Generator(options: A1111GeneratorOptions = {}): ImageGenerator {
  return new A1111Generator(options);
}

/** Draws with an AUTOMATIC1111 or Forge server: its settings are all it keeps across prompts. */
export class A1111Generator implements ImageGenerator {
  readonly name = PROVIDER;
  readonly maxConcurrency: number;
  readonly #api: A1111Api;
  readonly #timeoutMs: number;
  readonly #pollIntervalMs: number;
  readonly #strength: number;
  readonly #steps: number | undefined;
  readonly #sampler: string | undefined;
  readonly #scheduler: string | undefined;
  readonly #cfgScale: number | undefined;
  /** The checkpoints `--model` names, checked against the server's list before the run. */
  readonly #models: readonly string[];

  constructor(options: A1111GeneratorOptions) {
    const owner = "AUTOMATIC1111 generator";
    const timing = localServerTiming(owner, options);
    this.#timeoutMs = timing.timeoutMs;
    this.#pollIntervalMs = timing.pollIntervalMs;
    this.maxConcurrency = timing.maxConcurrency;
    const strength = options.denoisingStrength ?? 0.55;
    if (!(strength >= 0 && strength <= 1)) {
      throw new RangeError(
        `Cannot create the ${owner} as 'denoisingStrength' must be between 0 and 1: current value is ${strength}`,
      );
    }
    this.#strength = strength;
    this.#api = new A1111Api(options.baseUrl ?? DEFAULT_A1111_URL, options.auth, options.fetch);
    this.#steps = options.steps;
    this.#sampler = options.sampler;
    this.#scheduler = options.scheduler;
    this.#cfgScale = options.cfgScale;
    this.#models = (options.models ?? []).filter((m) => m !== LOADED_MODEL);
  }

  // img2img with the same checkpoint: the refined prompt, from the best image so far.
  editModel(model: string): string | undefined {
    return model;
  }

  /** A property, not a method: callers pass it around on its own (the registry's checks). */
  readonly check = (signal: AbortSignal): Promise<void> =>
    checkA1111Server(this.#api, this.#models, signal);

  async generate(request: GenerateRequest): Promise<GeneratedImage> {
    if (request.signal.aborted) throw request.signal.reason;
    const timeoutMs = this.#timeoutMs;
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new DOMException(`timed out after ${timeoutMs} ms`, "TimeoutError")),
      timeoutMs,
    );
    const signal = AbortSignal.any([request.signal, deadline.signal]);
    const task = { id: `retake-${crypto.randomUUID()}`, sent: false };
    const started = performance.now();
    try {
      if (request.recoverRequestId !== undefined) {
        await this.#stopOrphan(request.recoverRequestId, request.spec.id, signal);
      }
      const endpoint = request.edit === undefined ? "txt2img" : "img2img";
      const body = await this.#bodyFor(request, task.id);
      await request.onSubmitting?.(task.id);
      if (signal.aborted) throw signal.reason;
      task.sent = true;
      const answer = await this.#withProgress(
        () => this.#api.draw(endpoint, body, signal),
        task.id,
        signal,
      );
      return await imageOf(answer, request, task.id, performance.now() - started);
    } catch (error) {
      throw await this.#failure(error, task, request, deadline.signal);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The error an attempt ends with. A task cut off by a hard stop or the deadline is interrupted
   * on the server, so the GPU is free for the next one.
   */
  async #failure(
    error: unknown,
    task: { id: string; sent: boolean },
    request: GenerateRequest,
    deadline: AbortSignal,
  ): Promise<unknown> {
    const aborted = request.signal.aborted;
    const timedOut = !aborted && deadline.aborted;
    if (task.sent && (aborted || timedOut)) {
      await this.#stopTask(task.id, aborted ? "stopped" : "timed out");
    }
    if (aborted) return request.signal.reason ?? error;
    if (timedOut) {
      return new ProviderError(
        `Cannot generate with AUTOMATIC1111 as the image took longer than ${this.#timeoutMs} ms (--timeout); it was interrupted on the server: raise --timeout for a slow GPU`,
        { provider: PROVIDER, retryable: true, requestId: task.id, cause: error },
      );
    }
    if (error instanceof ProviderError && error.requestId === undefined && task.sent) {
      return new ProviderError(error.message, {
        provider: PROVIDER,
        retryable: error.retryable,
        fatal: error.fatal,
        requestId: task.id,
        ...(error.status !== undefined && { status: error.status }),
        cause: error,
      });
    }
    return error;
  }

  /** The txt2img or img2img request body, as `modules/api/models.py` names its fields. */
  async #bodyFor(request: GenerateRequest, taskId: string): Promise<Record<string, unknown>> {
    const steps = request.steps ?? this.#steps;
    const body: Record<string, unknown> = {
      prompt: request.prompt,
      negative_prompt: request.negativePrompt ?? "",
      seed: request.seed,
      width: request.width,
      height: request.height,
      batch_size: 1,
      n_iter: 1,
      send_images: true,
      save_images: false,
      force_task_id: taskId,
      ...(steps !== undefined && { steps }),
      ...(this.#sampler !== undefined && { sampler_name: this.#sampler }),
      ...(this.#scheduler !== undefined && { scheduler: this.#scheduler }),
      ...(this.#cfgScale !== undefined && { cfg_scale: this.#cfgScale }),
      ...(request.model !== LOADED_MODEL && {
        override_settings: { sd_model_checkpoint: request.model },
      }),
    };
    if (request.edit !== undefined) {
      const bytes = await Deno.readFile(request.edit.imagePath);
      body.init_images = [Buffer.from(bytes).toString("base64")];
      body.denoising_strength = this.#strength;
    }
    return body;
  }

  /** Runs `work` while polling `/sdapi/v1/progress` for the debug log; its faults do not count. */
  async #withProgress<T>(
    work: () => Promise<T>,
    taskId: string,
    signal: AbortSignal,
  ): Promise<T> {
    const done = new AbortController();
    const polling = (async () => {
      const both = AbortSignal.any([signal, done.signal]);
      while (!both.aborted) {
        await _sleep(this.#pollIntervalMs, both);
        const progress = await this.#api.progress(both).catch(() => undefined);
        if (progress === undefined || both.aborted) continue;
        log.debug("AUTOMATIC1111 task {requestId}: step {value} of {max}", {
          requestId: taskId,
          value: progress.state?.sampling_step,
          max: progress.state?.sampling_steps,
          progress: progress.progress,
        });
      }
    })().catch(() => {});
    try {
      return await work();
    } finally {
      done.abort();
      await polling;
    }
  }

  /**
   * Stops what an earlier, killed run left drawing: its task id is the one that run recorded.
   * Nothing to fetch (the API keeps no result), so only the GPU time is saved.
   */
  async #stopOrphan(taskId: string, promptId: string, signal: AbortSignal): Promise<void> {
    const state = await this.#api.taskState(taskId, signal);
    if (state?.active) {
      await this.#api.interrupt(signal).catch(() => undefined);
      log.info(
        "Interrupted AUTOMATIC1111 task {requestId} of {promptId}, left running by an interrupted run: its image cannot be fetched, so it is drawn again",
        { requestId: taskId, promptId },
      );
    } else {
      log.info(
        "AUTOMATIC1111 keeps no image of task {requestId} of {promptId} from an interrupted run: drawing it again",
        { requestId: taskId, promptId, queued: state?.queued },
      );
    }
  }

  /** Interrupts our task on a hard stop or timeout, if it is the one running; best effort. */
  async #stopTask(taskId: string, why: string): Promise<void> {
    const signal = AbortSignal.timeout(Math.min(STOP_TIMEOUT_MS, this.#timeoutMs));
    try {
      const state = await this.#api.taskState(taskId, signal);
      // Without the task endpoint, the running job is ours: retake sends one at a time.
      if (state === undefined || state.active) {
        await this.#api.interrupt(signal);
        log.info("Interrupted AUTOMATIC1111 task {requestId} ({why})", { requestId: taskId, why });
      }
    } catch (error) {
      log.warn("Could not interrupt AUTOMATIC1111 task {requestId} ({why}): {reason}", {
        requestId: taskId,
        why,
        reason: error instanceof Error ? error.message : String(error),
      });
    }
  }
}

function _sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
