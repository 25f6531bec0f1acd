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
import sharp from "sharp";
import { ProviderError } from "../../errors.ts";
import { escapeControls } from "../../util/terminal_text.ts";
import { positiveOption } from "../_http.ts";
import type { GeneratedImage, GenerateRequest, ImageGenerator } from "../provider.ts";

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
  const owner = "AUTOMATIC1111 generator";
  const timeoutMs = positiveOption(owner, "timeoutMs", options.timeoutMs ?? 120_000);
  const pollIntervalMs = positiveOption(owner, "pollIntervalMs", options.pollIntervalMs ?? 1000);
  const maxConcurrency = positiveOption(owner, "maxConcurrency", options.maxConcurrency ?? 1);
  const strength = options.denoisingStrength ?? 0.55;
  if (!(strength >= 0 && strength <= 1)) {
    throw new RangeError(
      `Cannot create the ${owner} as 'denoisingStrength' must be between 0 and 1: current value is ${strength}`,
    );
  }
  const base = (options.baseUrl ?? DEFAULT_A1111_URL).replace(/\/+$/, "");
  const origin = new URL(base).origin;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.auth !== undefined) {
    headers.authorization = `Basic ${Buffer.from(options.auth, "utf8").toString("base64")}`;
  }

  return {
    name: PROVIDER,
    maxConcurrency,
    // img2img with the same checkpoint: the refined prompt, from the best image so far.
    editModel: (model) => model,
    check: (signal) => checkServer(signal),
    async generate(request: GenerateRequest): Promise<GeneratedImage> {
      if (request.signal.aborted) throw request.signal.reason;
      const deadline = new AbortController();
      const timer = setTimeout(
        () => deadline.abort(new DOMException(`timed out after ${timeoutMs} ms`, "TimeoutError")),
        timeoutMs,
      );
      const signal = AbortSignal.any([request.signal, deadline.signal]);
      const taskId = `retake-${crypto.randomUUID()}`;
      let sent = false;
      const started = performance.now();
      try {
        if (request.recoverRequestId !== undefined) {
          await stopOrphan(request.recoverRequestId, request.spec.id, signal);
        }
        const endpoint = request.edit === undefined ? "txt2img" : "img2img";
        const body = await bodyFor(request, taskId);
        await request.onSubmitting?.(taskId);
        if (signal.aborted) throw signal.reason;
        sent = true;
        const answer = await withProgress(
          () => call("POST", `/sdapi/v1/${endpoint}`, signal, body),
          taskId,
          signal,
        );
        return await imageOf(answer, request, taskId, performance.now() - started);
      } catch (error) {
        const aborted = request.signal.aborted;
        const timedOut = !aborted && deadline.signal.aborted;
        if (sent && (aborted || timedOut)) {
          await stopTask(taskId, aborted ? "stopped" : "timed out");
        }
        if (aborted) throw request.signal.reason ?? error;
        if (timedOut) {
          throw new ProviderError(
            `Cannot generate with AUTOMATIC1111 as the image took longer than ${timeoutMs} ms (--timeout); it was interrupted on the server: raise --timeout for a slow GPU`,
            { provider: PROVIDER, retryable: true, requestId: taskId, cause: error },
          );
        }
        if (error instanceof ProviderError && error.requestId === undefined && sent) {
          throw new ProviderError(error.message, {
            provider: PROVIDER,
            retryable: error.retryable,
            fatal: error.fatal,
            requestId: taskId,
            ...(error.status !== undefined && { status: error.status }),
            cause: error,
          });
        }
        throw error;
      } finally {
        clearTimeout(timer);
      }
    },
  };

  /** The txt2img or img2img request body, as `modules/api/models.py` names its fields. */
  async function bodyFor(
    request: GenerateRequest,
    taskId: string,
  ): Promise<Record<string, unknown>> {
    const steps = request.steps ?? options.steps;
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
      ...(options.sampler !== undefined && { sampler_name: options.sampler }),
      ...(options.scheduler !== undefined && { scheduler: options.scheduler }),
      ...(options.cfgScale !== undefined && { cfg_scale: options.cfgScale }),
      ...(request.model !== LOADED_MODEL && {
        override_settings: { sd_model_checkpoint: request.model },
      }),
    };
    if (request.edit !== undefined) {
      const bytes = await Deno.readFile(request.edit.imagePath);
      body.init_images = [Buffer.from(bytes).toString("base64")];
      body.denoising_strength = strength;
    }
    return body;
  }

  /** The answer's image, decoded and checked, with what its `info` says of it. */
  async function imageOf(
    answer: unknown,
    request: GenerateRequest,
    taskId: string,
    elapsedMs: number,
  ): Promise<GeneratedImage> {
    const images = (answer as { images?: unknown } | undefined)?.images;
    const first = Array.isArray(images) ? images[0] : undefined;
    if (typeof first !== "string" || first === "") {
      throw new ProviderError(
        `Cannot use AUTOMATIC1111's answer as it holds no image (task ${taskId})`,
        { provider: PROVIDER, retryable: false, requestId: taskId },
      );
    }
    let bytes: Uint8Array = Buffer.from(first.replace(/^data:image\/\w+;base64,/, ""), "base64");
    let meta;
    try {
      meta = await sharp(bytes).metadata();
    } catch (error) {
      throw new ProviderError(
        `Cannot use AUTOMATIC1111's image as it does not decode (task ${taskId}): ${
          (error as Error).message
        }`,
        { provider: PROVIDER, retryable: true, requestId: taskId, cause: error },
      );
    }
    let format = meta.format === "jpeg" ? "jpeg" as const : "png" as const;
    if (meta.format !== "png" && meta.format !== "jpeg") {
      // The server's own `samples_format` (webp, say): saved as what retake asks for.
      format = request.format;
      const converted = format === "png"
        ? sharp(bytes).png()
        : sharp(bytes).flatten({ background: "#ffffff" }).jpeg({ quality: 92 });
      bytes = new Uint8Array(await converted.toBuffer());
    }
    const info = _info((answer as { info?: unknown }).info);
    const seed = typeof info.seed === "number" ? info.seed : request.seed;
    const modelName = typeof info.sd_model_name === "string" ? info.sd_model_name : undefined;
    log.debug("AUTOMATIC1111 task {requestId} of {promptId} done in {durationMs} ms", {
      requestId: taskId,
      promptId: request.spec.id,
      durationMs: Math.round(elapsedMs),
      seed,
      model: modelName,
    });
    return {
      data: bytes,
      format,
      width: meta.width ?? request.width,
      height: meta.height ?? request.height,
      seed,
      model: request.model,
      ...(modelName !== undefined && { modelVersion: modelName }),
      requestId: taskId,
      costUsd: 0,
      inferenceMs: Math.round(elapsedMs),
    };
  }

  /** Runs `work` while polling `/sdapi/v1/progress` for the debug log; its faults do not count. */
  async function withProgress<T>(
    work: () => Promise<T>,
    taskId: string,
    signal: AbortSignal,
  ): Promise<T> {
    const done = new AbortController();
    const polling = (async () => {
      const both = AbortSignal.any([signal, done.signal]);
      while (!both.aborted) {
        await _sleep(pollIntervalMs, both);
        const progress = await call("GET", "/sdapi/v1/progress?skip_current_image=true", both)
          .catch(() => undefined) as
            | { progress?: unknown; state?: { sampling_step?: unknown; sampling_steps?: unknown } }
            | undefined;
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
  async function stopOrphan(taskId: string, promptId: string, signal: AbortSignal): Promise<void> {
    const state = await taskState(taskId, signal);
    if (state?.active) {
      await call("POST", "/sdapi/v1/interrupt", signal).catch(() => undefined);
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
  async function stopTask(taskId: string, why: string): Promise<void> {
    const signal = AbortSignal.timeout(Math.min(STOP_TIMEOUT_MS, timeoutMs));
    try {
      const state = await taskState(taskId, signal);
      // Without the task endpoint, the running job is ours: retake sends one at a time.
      if (state === undefined || state.active) {
        await call("POST", "/sdapi/v1/interrupt", signal);
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

  /** What `/internal/progress` says of a task; undefined where the server does not say. */
  async function taskState(
    taskId: string,
    signal: AbortSignal,
  ): Promise<{ active: boolean; queued: boolean } | undefined> {
    const answer = await call("POST", "/internal/progress", signal, {
      id_task: taskId,
      id_live_preview: -1,
      live_preview: false,
    }).catch(() => undefined) as { active?: unknown; queued?: unknown } | undefined;
    if (answer === undefined || typeof answer.active !== "boolean") return undefined;
    return { active: answer.active, queued: answer.queued === true };
  }

  /**
   * Free checks before the run: the server answers, takes the credentials, serves the API, and
   * has the checkpoints asked for with `--model`.
   */
  async function checkServer(signal: AbortSignal): Promise<void> {
    let answer: unknown;
    try {
      answer = await call("GET", "/sdapi/v1/sd-models", signal);
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      if (error instanceof ProviderError && !error.fatal) {
        throw new ProviderError(error.message, {
          provider: PROVIDER,
          retryable: false,
          fatal: true,
          ...(error.status !== undefined && { status: error.status }),
          cause: error,
        });
      }
      throw error;
    }
    const list = Array.isArray(answer) ? answer as Array<Record<string, unknown>> : [];
    const names = list.flatMap((m) =>
      [m.title, m.model_name].filter((v): v is string => typeof v === "string")
    );
    for (const model of options.models ?? []) {
      if (model === LOADED_MODEL || names.some((n) => _sameModel(n, model))) continue;
      throw new ProviderError(
        `Cannot generate with AUTOMATIC1111 as it has no checkpoint '${
          escapeControls(model)
        }' (--model): it has ${
          list.map((m) => `'${escapeControls(String(m.title ?? m.model_name))}'`).slice(0, 8)
            .join(", ") || "none"
        }; put the file in its models/Stable-diffusion folder, or choose one of these`,
        { provider: PROVIDER, retryable: false, fatal: true, status: 404 },
      );
    }
  }

  /** One API call; every fault a {@linkcode ProviderError}, the credentials in no message. */
  async function call(
    method: string,
    path: string,
    signal: AbortSignal,
    body?: unknown,
  ): Promise<unknown> {
    let response: Response;
    let text: string;
    const started = performance.now();
    try {
      response = await fetchImpl(`${base}${path}`, {
        method,
        headers,
        signal,
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      text = await response.text();
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      const message = error instanceof Error ? error.message : String(error);
      throw new ProviderError(
        `Cannot reach AUTOMATIC1111 at ${origin} (${
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
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (response.ok) {
      if (parsed === undefined && text !== "") {
        throw new ProviderError(
          `Cannot read AUTOMATIC1111's answer to ${method} ${route} as it is not JSON (${text.length} bytes): the connection may have been cut`,
          { provider: PROVIDER, retryable: true, status: response.status },
        );
      }
      return parsed;
    }
    throw _httpError(response.status, parsed, text, method, route, origin);
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

/** The `info` of an answer: a JSON text of the parameters the image was made with. */
function _info(info: unknown): Record<string, unknown> {
  if (typeof info !== "string") {
    return info !== null && typeof info === "object" ? info as Record<string, unknown> : {};
  }
  try {
    const parsed = JSON.parse(info);
    return parsed !== null && typeof parsed === "object" ? parsed : {};
  } catch {
    return {};
  }
}

/** A checkpoint title (`v1-5.safetensors [6ce0161689]`) or name matches what was asked. */
function _sameModel(name: string, asked: string): boolean {
  const bare = (s: string) =>
    s.replace(/\s*\[[0-9a-f]+\]$/i, "").replace(/\.(safetensors|ckpt)$/i, "");
  return name === asked || bare(name) === bare(asked);
}

function _clip(text: string, max = 300): string {
  const clean = escapeControls(text.replace(/\s+/g, " ").trim());
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
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
