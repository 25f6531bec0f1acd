/**
 * fal.ai as image generator, through the official `@fal-ai/client` SDK's queue API: submit, wait
 * on the status stream (polling where the stream is not served), fetch the result, then stream the
 * image from its URL. Which input each endpoint takes, what sizes it makes and what it costs is
 * the catalogue's (`fal_models.ts`).
 *
 * fal's queue also retries a failed run on its own (up to 10 times on 503/504 or a lost runner,
 * reference `fal.md` §3.1), invisibly to the client; every submit therefore carries
 * `x-fal-no-retry: 1` (docs.fal.ai/model-apis/model-endpoints/reliability), so a run that failed
 * comes back as an error and the attempts recorded are the real ones.
 *
 * The SDK retries 429/5xx and transport failures on its own with real sleeps, and
 * `config.retry` cannot switch that off for queue calls (reference `fal.md` §3.4). The client
 * is therefore given a `fetch` that turns every such answer into a {@linkcode ProviderError}
 * after one attempt; the SDK does not recognise that error as retryable, so it reaches the
 * pipeline, whose single backoff operator decides. The same `fetch` redirects every call to
 * `baseUrl` (for a stand-in server) and logs it.
 *
 * The deadline is owned here too, not by the SDK's `timeout` (which can leave polling running,
 * §8): on expiry the in-flight call is aborted and the request cancelled on fal's side.
 *
 * @module
 */
import type { FalClient } from "@fal-ai/client";
import { getLogger } from "@logtape/logtape";
import { DEFAULT_MAX_DOWNLOAD_BYTES, downloadImage } from "../download.ts";
import { InputError, ProviderError } from "../../errors.ts";
import { escapeControls } from "../../util/terminal_text.ts";
import { redactor } from "../../util/redact.ts";
import { sleep } from "../../async/sleep.ts";
import { Buffer } from "node:buffer";
import { NETWORK_FAULT, originOf, parseRetryAfter, positiveOption } from "../_http.ts";

export { parseRetryAfter };
import { withImageSize } from "../_image_size.ts";
import { falEditFor } from "./edits.ts";
import {
  checkFalSize,
  DEFAULT_FAL_MODEL,
  DEFAULT_FAL_PRICES,
  describeFalPrice,
  estimateFalCost,
  FAL_MODELS,
  falInput,
  falModel,
  type FalPrice,
  falTier,
  resolveFalModel,
} from "./models.ts";
import { z } from "zod";
import { positiveInt, priceTable, urlString } from "../../config/schema.ts";
import type {
  CreateContext,
  GeneratedImage,
  GenerateRequest,
  ImageGenerator,
  ModelEntry,
  ProviderDescriptor,
} from "../provider.ts";

const PROVIDER = "fal";
const log = getLogger(["retake", "fal"]);

/**
 * An image fal's safety checker flagged, with `failOnNsfw` on: a failed step that a retry with
 * the same prompt would not fix. Carries what was spent, since fal bills flagged images too.
 */
export class FalNsfwError extends ProviderError {
  /** Always true: the flag to record. */
  readonly nsfw = true;

  constructor(message: string, options: { requestId?: string; costUsd: number }) {
    super(message, {
      provider: PROVIDER,
      retryable: false,
      costUsd: options.costUsd,
      ...(options.requestId !== undefined && { requestId: options.requestId }),
    });
    this.name = "FalNsfwError";
  }
}

/** Options for {@linkcode createFalGenerator}. */
export interface FalGeneratorOptions {
  /** fal API key (`FAL_KEY`); sent only in the `Authorization` header, never logged. */
  apiKey: string;
  /**
   * Origin (optionally with a path prefix) that receives every request instead of fal's hosts,
   * for a proxy or stand-in server. Images served from this origin may be downloaded over plain
   * http. @default {undefined} (fal's own hosts)
   */
  baseUrl?: string | undefined;
  /** The fetch every HTTP call goes through. @default {globalThis.fetch} */
  fetch?: typeof fetch | undefined;
  /**
   * Deadline for one generation (submit, queue, inference, result, download start), in ms. On
   * expiry the request is cancelled on fal and the step fails as retryable. Streaming the image
   * body afterwards gets a deadline of the same length. @default {120000}
   */
  timeoutMs?: number | undefined;
  /** Delay between status polls, where the status stream is not used, in ms. @default {500} */
  pollIntervalMs?: number | undefined;
  /**
   * How to learn that a request completed: `stream` holds one SSE connection open per request
   * (`…/status/stream`), falling back to polling for the rest of the run where it is not served;
   * `poll` asks `…/status` every `pollIntervalMs`. @default {"stream"}
   */
  statusUpdates?: "stream" | "poll" | undefined;
  /**
   * USD prices by endpoint id, merged over {@linkcode DEFAULT_FAL_PRICES}. A bare number keeps
   * the built-in unit (and resolution factors) for a known endpoint and means per image
   * otherwise. An endpoint without a price has its cost recorded as unknown, with a warning.
   * @default {DEFAULT_FAL_PRICES}
   */
  prices?: Record<string, number | FalPrice> | undefined;
  /**
   * Ask fal to run its safety checker (`enable_safety_checker`; off, the most permissive
   * `safety_tolerance` where an endpoint has only that). @default {true}
   */
  enableSafetyChecker?: boolean | undefined;
  /**
   * Fail the step (not retryable) when fal flags the image as NSFW; off, the image is kept and
   * the flag recorded. @default {true}
   */
  failOnNsfw?: boolean | undefined;
  /**
   * `num_inference_steps`, for endpoints that take it (FLUX.1 schnell/dev, FLUX.2 [dev],
   * Qwen-Image, SD). @default {undefined} (the endpoint's own default, e.g. 4 for flux schnell)
   */
  steps?: number | undefined;
  /** Largest image accepted, in bytes. @default {20971520} */
  maxDownloadBytes?: number | undefined;
  /**
   * Endpoints (ids or aliases) this run will use, for {@linkcode ImageGenerator.check} to
   * verify before any paid call. @default {[DEFAULT_FAL_MODEL]}
   */
  models?: string[] | undefined;
  /**
   * The run may edit images: {@linkcode ImageGenerator.check} verifies the edit endpoints of
   * `models` too, and asks fal their prices. @default {false}
   */
  edits?: boolean | undefined;
}

/** A saved image as a `data:` URI, which fal's image inputs take like a URL. */
async function _dataUri(path: string): Promise<string> {
  const bytes = await Deno.readFile(path);
  const type = /\.jpe?g$/i.test(path) ? "image/jpeg" : "image/png";
  return `data:${type};base64,${Buffer.from(bytes).toString("base64")}`;
}

/** Longest wait for the cancel call after a timeout or abort, in ms. */
const CANCEL_TIMEOUT_MS = 5_000;
/**
 * How long a submit already sent may still answer after the step was aborted or timed out, in
 * ms: fal may have accepted it, and a request whose id we never learn cannot be cancelled.
 */
const SUBMIT_GRACE_MS = 5_000;
/** Result fetches of one completed request: fal's result endpoint can fail for a moment. */
const RESULT_TRIES = 3;
/** Wait before the second result fetch, doubled for each later one, in ms. */
const RESULT_RETRY_MS = 250;
const FAL_HOSTS = /^https:\/\/(?:queue\.fal\.run|fal\.run|rest\.fal\.ai|api\.fal\.ai)(?=[/?]|$)/;
/** fal's Platform API, which answers metadata for free (docs.fal.ai/platform-apis/v1). */
const PLATFORM_API = "https://api.fal.ai/v1";
/**
 * Input fields that come from settings, not from the prompt: a 422 about one of them fails every
 * prompt alike, whether fal sends it at submit or, as its queue does, from the result call.
 */
const SETTING_FIELDS = new Set([
  "image_size",
  "aspect_ratio",
  "resolution",
  "num_images",
  "max_images",
  "num_inference_steps",
  "output_format",
  "format",
  "enable_safety_checker",
  "safety_tolerance",
  "expand_prompt",
]);
/** Submit headers: fal's queue must not rerun a failed request unseen (see the module doc). */
const SUBMIT_HEADERS = { "x-fal-no-retry": "1" };
/**
 * Answers to the status stream that mean it is not served there (a proxy without SSE, an old
 * gateway): polling follows, and if the status answers, the rest of the run polls.
 */
const STREAM_UNSERVED = new Set([400, 404, 405, 406, 501]);
/** Largest image head read to learn an image's size, in bytes. */
const SIZE_PEEK_BYTES = 1 << 20;

/**
 * Creates a generator that renders images with a fal.ai text-to-image endpoint: a
 * {@linkcode FalGenerator}.
 *
 * @example
 * ```ts ignore
 * const generator = createFalGenerator({ apiKey: Deno.env.get("FAL_KEY")! });
 * const image = await generator.generate({ ...request, model: resolveFalModel("flux-dev") });
 * ```
 */
export function createFalGenerator(options: FalGeneratorOptions): ImageGenerator {
  return new FalGenerator(options);
}

/**
 * Renders images with a fal.ai text-to-image endpoint (or its edit endpoint, for an edit).
 *
 * What fal bills, as read from its docs (docs.fal.ai/documentation/model-apis/pricing and the
 * FAQ, 2026): outputs, per image or megapixel; never queue time or server errors (5xx).
 * So a request that completed with an output costs its price even when that output is no use
 * to us (flagged NSFW, no image in it, the image unreadable or lost on the way), and is
 * recorded on the error as `costUsd`. A request cancelled before it ran, or one whose result is
 * a 5xx, costs nothing. A request cancelled while running is recorded at its price only when
 * fal answers that it had already completed; fal does not document billing a run it stopped.
 *
 * One instance serves a whole run: besides its settings it remembers, across prompts, what fal
 * answered (whether the status stream is served, prices fal gave, requests billed but not
 * delivered, requests it cancelled) and which warnings it already gave.
 */
export class FalGenerator implements ImageGenerator {
  readonly name = PROVIDER;
  readonly #apiKey: string;
  readonly #timeoutMs: number;
  readonly #pollIntervalMs: number;
  readonly #maxDownloadBytes: number;
  readonly #enableSafetyChecker: boolean;
  readonly #failOnNsfw: boolean;
  readonly #steps: number | undefined;
  readonly #models: string[] | undefined;
  readonly #edits: boolean;
  /** Prices from the built-in table and the config: never changed once made. */
  readonly #prices: Readonly<Record<string, FalPrice>>;
  /** Prices fal's pricing API gave in {@linkcode check} for endpoints `#prices` lacks. */
  readonly #falPrices = new Map<string, FalPrice>();
  /** The origin of `baseUrl`, whose images may come over plain http. */
  readonly #baseOrigin: string | undefined;
  readonly #innerFetch: typeof fetch;
  readonly #redact: (text: string) => string;
  /** The fetch the SDK and the Platform API calls go through (see {@linkcode _apiFetch}). */
  readonly #apiFetch: typeof fetch;
  /** Cleared for the rest of the run once the status stream turns out not to be served. */
  #streaming: boolean;
  /** The SDK's client, loaded on the first call: a run that never calls fal never loads it. */
  #client: Promise<FalClient> | undefined;
  readonly #warnedPrices = new Set<string>();
  readonly #warnedModels = new Set<string>();
  /** Prompt settings an endpoint has no field for, each said once per endpoint. */
  readonly #warnedUnsent = new Set<string>();
  /** Requests this generator cancelled: never worth recovering. */
  readonly #cancelledIds = new Set<string>();
  /** What fal answered to each cancel, by request id (the SDK drops the body). */
  readonly #cancelAnswers = new Map<string, string>();
  /** Why each request's status stream failed, as this generator classified it. */
  readonly #streamFailures = new Map<string, ProviderError>();
  /**
   * Requests fal completed (and billed) whose image this process did not get, by their input:
   * the next attempt with the same input fetches that result instead of paying again. `charged`
   * is what was already recorded for it on an earlier error.
   */
  readonly #undelivered = new Map<string, { requestId: string; charged: number }>();

  constructor(options: FalGeneratorOptions) {
    const apiKey = options.apiKey;
    if (typeof apiKey !== "string" || apiKey.trim() === "") {
      throw new TypeError(
        "Cannot create the fal generator as 'apiKey' is empty: set FAL_KEY, or run with --generator local",
      );
    }
    this.#apiKey = apiKey;
    this.#timeoutMs = positiveOption("fal generator", "timeoutMs", options.timeoutMs ?? 120_000);
    this.#pollIntervalMs = positiveOption(
      "fal generator",
      "pollIntervalMs",
      options.pollIntervalMs ?? 500,
    );
    this.#maxDownloadBytes = positiveOption(
      "fal generator",
      "maxDownloadBytes",
      options.maxDownloadBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES,
    );
    if (options.steps !== undefined) positiveOption("fal generator", "steps", options.steps);
    this.#steps = options.steps;
    this.#models = options.models;
    this.#edits = options.edits ?? false;
    this.#enableSafetyChecker = options.enableSafetyChecker ?? true;
    this.#failOnNsfw = options.failOnNsfw ?? true;
    this.#streaming = (options.statusUpdates ?? "stream") === "stream";
    this.#prices = _prices(options.prices);
    const base = options.baseUrl?.replace(/\/+$/, "");
    this.#baseOrigin = base === undefined ? undefined : originOf("fal generator", base);
    this.#innerFetch = options.fetch ?? globalThis.fetch;
    this.#redact = redactor([apiKey]);
    this.#apiFetch = _apiFetch({
      base,
      innerFetch: this.#innerFetch,
      redact: this.#redact,
      onCancelAnswer: (requestId, status) => this.#cancelAnswers.set(requestId, status),
      onStreamFailure: (requestId, error) => this.#streamFailures.set(requestId, error),
    });
  }

  editModel(model: string): string | undefined {
    return falEditFor(resolveFalModel(model))?.id;
  }

  estimateCostUsd(
    { model, width, height, edit }: {
      model: string;
      width: number;
      height: number;
      edit?: boolean;
    },
  ): number | undefined {
    const id = resolveFalModel(model);
    // An edit is billed as the endpoint it goes to, at the tier of the image it edits.
    const target = edit ? falEditFor(id)?.id ?? id : id;
    return this.#price(target, { width, height }, falTier(id, width, height));
  }

  async check(signal: AbortSignal): Promise<void> {
    const models = [...new Set((this.#models ?? [DEFAULT_FAL_MODEL]).map(resolveFalModel))];
    const edits = new Map<string, string>();
    for (const model of this.#edits ? models : []) {
      const edit = falEditFor(model)?.id;
      if (edit !== undefined && !edits.has(edit)) edits.set(edit, model);
    }
    await this.#checkKeyAndPrices([...models, ...edits.keys()], signal);
    await this.#checkCatalogue(models, edits, signal);
  }

  async generate(request: GenerateRequest): Promise<GeneratedImage> {
    const { drawn, editOf, model, input } = await this.#endpointInput(request);
    if (request.signal.aborted) throw request.signal.reason;
    const deadline = new AbortController();
    const timer = setTimeout(
      () =>
        deadline.abort(
          new DOMException(`fal timed out after ${this.#timeoutMs} ms`, "TimeoutError"),
        ),
      this.#timeoutMs,
    );
    const signal = AbortSignal.any([request.signal, deadline.signal]);
    // An edit asks for the tier its source was drawn at.
    const tier = falTier(drawn, request.width, request.height);
    const job: Job = {
      model,
      key: JSON.stringify([model, input]),
      tier,
      ...(typeof input.seed === "number" && { seedSent: input.seed }),
      completed: false,
      charged: 0,
      price: 0,
    };
    job.price = this.#price(model, request, tier) ?? 0;
    try {
      return await this.#attempt(job, input, request, signal);
    } catch (error) {
      throw _settingError(
        await this.#failure(job, request, deadline.signal, error),
        request,
        model,
        editOf,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** The SDK's queue API, loading the SDK on first use. */
  async #queue(): Promise<FalClient["queue"]> {
    this.#client ??= import("@fal-ai/client").then(({ createFalClient }) =>
      createFalClient({
        credentials: this.#apiKey,
        suppressLocalCredentialsWarning: true,
        fetch: this.#apiFetch,
      })
    );
    return (await this.#client).queue;
  }

  /**
   * The endpoint `request` goes to and its input: an edit goes to the family's edit endpoint
   * (`editOf` names the model it edits for), and is priced as that endpoint.
   */
  async #endpointInput(request: GenerateRequest): Promise<{
    drawn: string;
    editOf: string | undefined;
    model: string;
    input: Record<string, unknown>;
  }> {
    const drawn = resolveFalModel(request.model);
    const base = {
      prompt: request.prompt,
      width: request.width,
      height: request.height,
      seed: request.seed,
      format: request.format,
      safetyChecker: this.#enableSafetyChecker,
      // A prompt's own steps win over `fal.steps`.
      steps: request.steps ?? this.#steps,
      negativePrompt: request.negativePrompt,
    };
    const edit = request.edit === undefined ? undefined : falEditFor(drawn);
    const model = edit?.id ?? drawn;
    const input = edit === undefined ? falInput(drawn, base) : edit.input({
      ...base,
      imageUrl: request.edit!.imageUrl ?? await _dataUri(request.edit!.imagePath),
      instruction: request.edit!.instruction,
    });
    if (falModel(drawn) === undefined && !this.#warnedModels.has(drawn)) {
      this.#warnedModels.add(model);
      log.warn(
        "retake does not know fal endpoint {model}: sending FLUX.1-style input (image_size, seed, output_format); a 422 will name any field it rejects",
        { model },
      );
    }
    this.#warnUnsent(model, input, request);
    return { drawn, editOf: edit === undefined ? undefined : drawn, model, input };
  }

  /** Warns, once per endpoint, of a prompt setting `input` has no field for. */
  #warnUnsent(model: string, input: Record<string, unknown>, request: GenerateRequest): void {
    for (
      const [setting, field, value] of [
        ["negativePrompt", "negative_prompt", request.negativePrompt],
        ["steps", "num_inference_steps", request.steps],
      ] as const
    ) {
      if (value === undefined || field in input || this.#warnedUnsent.has(`${model}\0${setting}`)) {
        continue;
      }
      this.#warnedUnsent.add(`${model}\0${setting}`);
      log.warn(
        "fal endpoint {model} takes no {field}: the prompts' {setting} is not sent to it (prompt {promptId} is the first)",
        { model, field, setting, promptId: request.spec.id },
      );
    }
  }

  /**
   * One attempt at `job`: the result of a request sent before where fal still has it, else of a
   * new submit.
   */
  async #attempt(
    job: Job,
    input: Record<string, unknown>,
    request: GenerateRequest,
    signal: AbortSignal,
  ): Promise<GeneratedImage> {
    await this.#resume(job, request, signal);
    // One submit at most per attempt: only a request this attempt did not send may turn
    // out to be gone, and then one is sent instead.
    let submitted = false;
    for (;;) {
      if (job.id === undefined) {
        job.id = await this.#submit(job.model, input, signal, request.onAccepted);
        submitted = true;
      }
      try {
        return await this.#deliver(job, request, signal);
      } catch (error) {
        if (submitted || !_gone(error) || signal.aborted) throw error;
        log.info("fal no longer has request {requestId}: submitting a new one", {
          model: job.model,
          requestId: job.id,
        });
        Object.assign(job, {
          id: undefined,
          completed: false,
          resultFetched: false,
          charged: 0,
        });
      }
    }
  }

  /**
   * Points `job` at a request already sent for it, so its result is fetched instead of paying
   * again: one an earlier attempt left billed but undelivered, or one an interrupted run left.
   */
  async #resume(job: Job, request: GenerateRequest, signal: AbortSignal): Promise<void> {
    const earlier = this.#undelivered.get(job.key);
    this.#undelivered.delete(job.key);
    if (earlier !== undefined) {
      log.info("Fetching the result of fal request {requestId}, completed earlier", {
        model: job.model,
        requestId: earlier.requestId,
      });
      job.id = earlier.requestId;
      job.charged = earlier.charged;
    } else if (request.recoverRequestId !== undefined) {
      job.id = await this.#recoverable(job.model, request.recoverRequestId, signal);
    }
  }

  /** Submits `input`; what fal accepted is reported at once, so it can be recorded. */
  async #submit(
    model: string,
    input: Record<string, unknown>,
    signal: AbortSignal,
    onAccepted: ((requestId: string) => void) | undefined,
  ): Promise<string> {
    if (signal.aborted) throw signal.reason;
    const grace = new AbortController();
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      graceTimer = setTimeout(() => grace.abort(signal.reason), SUBMIT_GRACE_MS);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const submitted = await (await this.#queue()).submit(model, {
        input,
        headers: SUBMIT_HEADERS,
        abortSignal: grace.signal,
      });
      onAccepted?.(submitted.request_id);
      return submitted.request_id;
    } finally {
      signal.removeEventListener("abort", onAbort);
      clearTimeout(graceTimer);
    }
  }

  /** Waits for `job` to complete, fetches its result and starts the image download. */
  async #deliver(
    job: Job,
    request: GenerateRequest,
    signal: AbortSignal,
  ): Promise<GeneratedImage> {
    const { model } = job;
    const requestId = job.id!;
    const { queueMs, inferenceSeconds, elapsedMs } = await this.#completion(
      model,
      requestId,
      signal,
    );
    job.completed = true;
    const result = await this.#fetchResult(model, requestId, signal);
    job.resultFetched = true;
    const output = _output(result.data, requestId);
    const image = output.image;
    let width = image.width ?? request.width;
    let height = image.height ?? request.height;
    const entry = this.#priceOf(job.model);
    job.price = entry === undefined ? 0 : estimateFalCost(entry, [{ width, height }], job.tier);
    const inferenceMs = _ms(inferenceSeconds) ?? _ms(output.timings?.inference);
    // The request's time at fal, for the adaptive limiter: queued, then fal's own inference
    // time, not when this process got round to reading that it had finished.
    const serviceMs = inferenceMs !== undefined ? queueMs + inferenceMs : elapsedMs;
    // A seed the model did not report is recorded only where it was sent and is honoured.
    const seed = output.seed ??
      (falModel(model)?.reportsSeed !== false && job.seedSent !== undefined
        ? job.seedSent
        : undefined);
    log.debug(
      "fal {model} request {requestId} done: queued {queueMs} ms, inference {inferenceMs} ms",
      { model, requestId, queueMs, inferenceMs, seed, nsfw: output.nsfw, costUsd: this.#owed(job) },
    );
    this.#refuseFlagged(job, output);
    const download = await this.#download(job, image.url, signal);
    let data = download.data;
    if (entry?.unit === "megapixel" && (image.width === undefined || image.height === undefined)) {
      // Billed by the megapixel, and fal did not say how many: read them off the image itself.
      const head = await withImageSize(data, SIZE_PEEK_BYTES);
      data = head.data;
      if (head.size !== undefined) {
        ({ width, height } = head.size);
        job.price = estimateFalCost(entry, [head.size], job.tier);
      }
    }
    return {
      data,
      format: download.format,
      width,
      height,
      ...(seed !== undefined && { seed }),
      model,
      requestId,
      costUsd: this.#owed(job),
      ...(entry === undefined && { costUnknown: true }),
      queueMs,
      ...(inferenceMs !== undefined && { inferenceMs }),
      serviceMs,
      ...(output.nsfw !== undefined && { nsfw: output.nsfw }),
      // fal keeps its outputs a while: a later edit can start from this URL, not a re-upload.
      ...(/^https?:/.test(image.url) && { url: image.url }),
    };
  }

  /** Throws when fal flagged `output` as NSFW and flagged images are refused; still billed. */
  #refuseFlagged(job: Job, output: FalOutput): void {
    if (output.nsfw !== true || !this.#failOnNsfw) return;
    const requestId = job.id!;
    const costUsd = this.#owed(job);
    log.warn("fal flagged the image of request {requestId} as NSFW", {
      model: job.model,
      requestId,
      nsfw: true,
      costUsd,
    });
    throw new FalNsfwError(
      "Cannot use the image as fal's safety checker flagged it as NSFW: rephrase the prompt, or set failOnNsfw to false to keep flagged images",
      { requestId, costUsd },
    );
  }

  /**
   * Starts downloading `job`'s image. Its bytes may still break off on the way to disk, after
   * `generate` returned: that error says what fal billed, and the next attempt fetches the
   * result fal still has instead of paying again.
   */
  async #download(
    job: Job,
    url: string,
    signal: AbortSignal,
  ): Promise<{ data: GeneratedImage["data"]; format: GeneratedImage["format"] }> {
    const requestId = job.id!;
    const download = await downloadImage(url, {
      provider: PROVIDER,
      maxBytes: this.#maxDownloadBytes,
      allowedOrigins: this.#baseOrigin === undefined ? [] : [this.#baseOrigin],
      signal,
      timeoutMs: this.#timeoutMs,
      fetch: this.#innerFetch,
      logger: log,
    });
    // `job` is final by the time the bytes flow: what it owes then is what the image cost.
    const data = _billedStream(download.data, (error) => {
      if (!(error instanceof ProviderError)) return error;
      if (error.retryable) this.#undelivered.set(job.key, { requestId, charged: job.price });
      return _with(error, { requestId, costUsd: this.#owed(job) });
    });
    return { data, format: download.format };
  }

  /** The result of a completed request, fetched again a few times if the fetch fails. */
  async #fetchResult(model: string, requestId: string, signal: AbortSignal) {
    for (let attempt = 1;; attempt++) {
      try {
        return await (await this.#queue()).result(model, { requestId, abortSignal: signal });
      } catch (error) {
        const retryable = error instanceof ProviderError && error.retryable;
        if (signal.aborted || !retryable || attempt >= RESULT_TRIES) throw error;
        const waitMs = Math.max(RESULT_RETRY_MS * 2 ** (attempt - 1), error.retryAfterMs ?? 0);
        log.debug("Fetching the result of fal request {requestId} again in {delayMs} ms", {
          model,
          requestId,
          attempt,
          delayMs: waitMs,
          reason: this.#redact(error.message),
        });
        await sleep(waitMs, signal);
      }
    }
  }

  /**
   * The error a failed attempt ends with: cancels on fal what it left running, records what
   * fal billed, and remembers a billed result the next attempt can fetch for free.
   */
  async #failure(
    job: Job,
    request: GenerateRequest,
    deadline: AbortSignal,
    error: unknown,
  ): Promise<unknown> {
    const aborted = request.signal.aborted;
    const timedOut = !aborted && deadline.aborted;
    if ((aborted || timedOut) && job.id !== undefined && !job.completed) {
      const answer = await this.#cancel(job.model, job.id, aborted ? "aborted" : "timed out");
      if (answer === "ALREADY_COMPLETED") job.completed = true;
    }
    if (aborted) return request.signal.reason ?? error;
    const billed = job.id !== undefined && job.completed && _billed(job, error);
    const costUsd = billed ? this.#owed(job) : 0;
    if (billed && job.id !== undefined && _fetchable(error, timedOut)) {
      this.#undelivered.set(job.key, { requestId: job.id, charged: job.charged + costUsd });
    }
    if (timedOut && !(error instanceof ProviderError && !error.retryable)) {
      const what = job.id === undefined
        ? ""
        : job.completed
        ? "; fal had finished it, so the next attempt fetches its result instead of paying again"
        : "; it was cancelled on fal";
      return new ProviderError(
        `Cannot generate with fal as the request took longer than ${this.#timeoutMs} ms (timeoutMs)${what}`,
        {
          provider: PROVIDER,
          retryable: true,
          ...(job.id !== undefined && { requestId: job.id }),
          ...(costUsd > 0 && { costUsd }),
          cause: error,
        },
      );
    }
    const classified = _classify(error, job.id, this.#redact);
    return costUsd > 0 && classified.costUsd === undefined
      ? _with(classified, { costUsd })
      : classified;
  }

  /** What `job` costs beyond what earlier errors already recorded for it. */
  #owed(job: Job): number {
    return Math.max(0, Math.round((job.price - job.charged) * 1e6) / 1e6);
  }

  /** `model`'s price from the table, else from fal's pricing API; undefined when neither has one. */
  #knownPrice(model: string): FalPrice | undefined {
    return this.#prices[model] ?? this.#falPrices.get(model);
  }

  /** `model`'s price, warning once when it is unknown. */
  #priceOf(model: string): FalPrice | undefined {
    const entry = this.#knownPrice(model);
    if (entry === undefined && !this.#warnedPrices.has(model)) {
      this.#warnedPrices.add(model);
      log.warn(
        "No price known for fal endpoint {model}: its cost is recorded as unknown (set one in the config's fal.prices)",
        { model },
      );
    }
    return entry;
  }

  /** One image's price at this size; undefined when the endpoint's price is unknown. */
  #price(
    model: string,
    size: { width: number; height: number },
    tier: string | undefined,
  ): number | undefined {
    const entry = this.#priceOf(model);
    return entry === undefined ? undefined : estimateFalCost(entry, [size], tier);
  }

  /**
   * Waits until fal reports `requestId` COMPLETED, over its status stream where it is served,
   * else by polling. `queueMs` is the time from here until fal first reported the request
   * running: exact to an event's delivery when streamed, a lower bound when polled (the last
   * poll that still saw `IN_QUEUE`; polls `pollIntervalMs` apart bound the error), so inference
   * time never counts as queueing. A request fal never reported `IN_QUEUE` was running by the
   * time it was first asked: 0, streamed or polled, so the time this process took to ask (an
   * event loop busy elsewhere) is not read as fal's queue.
   */
  async #completion(
    model: string,
    requestId: string,
    signal: AbortSignal,
  ): Promise<Completion> {
    const since = performance.now();
    if (this.#streaming) {
      const streamed = await this.#followStream(model, requestId, since, signal);
      if (streamed.done) return streamed.done;
      if (streamed.unserved) {
        const polled = await this.#poll(model, requestId, since, signal);
        // The stream failed before saying anything, and the status answers: fal (or a proxy on
        // the way) does not serve the stream, so the rest of the run polls.
        this.#streaming = false;
        log.info(
          "fal's status stream did not answer ({reason}): polling every {pollIntervalMs} ms instead",
          {
            model,
            requestId,
            reason: streamed.unserved,
            pollIntervalMs: this.#pollIntervalMs,
          },
        );
        return polled;
      }
    }
    return await this.#poll(model, requestId, since, signal);
  }

  /**
   * Follows `…/status/stream` until it ends. `done` when it ended on COMPLETED; `unserved`
   * (why) when it failed before its first event; neither when it broke off midway.
   */
  async #followStream(
    model: string,
    requestId: string,
    since: number,
    signal: AbortSignal,
  ): Promise<{ done?: Completion; unserved?: string }> {
    if (signal.aborted) throw signal.reason;
    const stream = await (await this.#queue()).streamStatus(model, { requestId, logs: false });
    const onAbort = () => stream.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    let events = 0;
    let queued = false;
    let runningAt: number | undefined;
    stream.on("data", (status: unknown) => {
      const state = (status as { status?: unknown } | null)?.status;
      if (typeof state !== "string") return;
      events++;
      if (state === "IN_QUEUE") queued = true;
      else runningAt ??= performance.now();
    });
    let last: unknown;
    try {
      last = await stream.done();
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      return this.#streamBroke(model, requestId, error, events);
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#streamFailures.delete(requestId);
    }
    if (signal.aborted) throw signal.reason;
    const final = (last ?? {}) as { status?: unknown; metrics?: { inference_time?: unknown } };
    if (final.status !== "COMPLETED") {
      // A stream that ends early (a proxy's timeout, a restart) says nothing final.
      return events === 0 ? { unserved: "it ended without an event" } : {};
    }
    const completedAt = performance.now();
    return {
      done: {
        queueMs: queued ? Math.round((runningAt ?? completedAt) - since) : 0,
        inferenceSeconds: final.metrics?.inference_time,
        elapsedMs: Math.round(completedAt - since),
      },
    };
  }

  /**
   * What a failed status stream means. fal's own answer (a rate limit, a 5xx, the key) is this
   * attempt's, as a poll's would be, and is thrown; a path nobody serves, or a body that is no
   * stream, means polling instead: `unserved` when it failed before its first event.
   */
  #streamBroke(
    model: string,
    requestId: string,
    error: unknown,
    events: number,
  ): { unserved?: string } {
    const cause = this.#streamFailures.get(requestId);
    if (cause !== undefined && !STREAM_UNSERVED.has(cause.status ?? 0)) throw cause;
    const reason = this.#redact(
      cause?.message ?? (error instanceof Error ? error.message : String(error)),
    );
    if (events === 0) return { unserved: reason };
    log.debug("fal's status stream for {requestId} broke off: {reason}; polling", {
      model,
      requestId,
      reason,
    });
    return {};
  }

  /** Asks `…/status` every `pollIntervalMs` until COMPLETED. */
  async #poll(
    model: string,
    requestId: string,
    since: number,
    signal: AbortSignal,
  ): Promise<Completion> {
    let lastQueuedAt = since;
    for (;;) {
      const status = await (await this.#queue()).status(model, { requestId, abortSignal: signal });
      if (status.status === "IN_QUEUE") lastQueuedAt = performance.now();
      if (status.status === "COMPLETED") {
        return {
          queueMs: Math.round(lastQueuedAt - since),
          inferenceSeconds: status.metrics?.inference_time,
          elapsedMs: Math.round(performance.now() - since),
        };
      }
      await sleep(this.#pollIntervalMs, signal);
    }
  }

  /**
   * The key, through fal's pricing API: it needs a valid key and costs nothing. Learns the
   * price of an endpoint the table does not know, when fal gives one in a unit we can apply.
   */
  async #checkKeyAndPrices(models: string[], signal: AbortSignal): Promise<void> {
    const query = new URLSearchParams({ endpoint_id: models.join(",") });
    const answer = await this.#platform(`/models/pricing?${query}`, signal);
    const list = (answer as { prices?: unknown } | undefined)?.prices;
    for (const entry of Array.isArray(list) ? list : []) {
      const { endpoint_id: id, unit_price: usd, unit } = (entry ?? {}) as Record<string, unknown>;
      if (typeof id !== "string" || !models.includes(id) || this.#knownPrice(id) !== undefined) {
        continue;
      }
      if (typeof usd !== "number") continue;
      const perUnit = typeof unit === "string" ? _priceUnit(unit) : undefined;
      if (perUnit === undefined || !(usd >= 0)) continue;
      this.#falPrices.set(id, { usd, unit: perUnit });
      log.info("Using fal's price for {model}: ${usd} per {unit}", { model: id, usd, unit });
    }
  }

  /**
   * The endpoints, through fal's model catalogue. fal's own (`fal-ai/…`) endpoints are all
   * listed, so one missing is a typo; other owners' apps may be private, and are left to the
   * first submit (a 404 there is free, and stops the run). `edits` maps each edit endpoint the
   * run may use to the model it edits for: retake chose it, so one missing means fal dropped it.
   */
  async #checkCatalogue(
    models: string[],
    edits: ReadonlyMap<string, string>,
    signal: AbortSignal,
  ): Promise<void> {
    const ids = [...models, ...edits.keys()];
    const query = new URLSearchParams(ids.map((id) => ["endpoint_id", id]));
    const answer = await this.#platform(`/models?${query}`, signal);
    const list = (answer as { models?: unknown } | undefined)?.models;
    if (!Array.isArray(list)) return;
    const listed = new Set(list.map((m) => (m as { endpoint_id?: unknown } | null)?.endpoint_id));
    for (const model of models) {
      if (listed.has(model)) continue;
      if (model.startsWith("fal-ai/")) {
        throw new ProviderError(
          `Cannot generate with fal model '${model}' as fal has no such endpoint: check --model (fal's endpoints are listed at fal.ai/models)`,
          { provider: PROVIDER, retryable: false, fatal: true, status: 404 },
        );
      }
      log.warn("fal's catalogue does not list {model}: the first request will tell if it exists", {
        model,
      });
    }
    for (const [edit, model] of edits) {
      if (listed.has(edit)) continue;
      throw new ProviderError(
        `Cannot edit images of fal model '${model}' as fal has no endpoint '${edit}' (its edit endpoint): run with --refine regenerate to redraw instead`,
        { provider: PROVIDER, retryable: false, fatal: true, status: 404 },
      );
    }
  }

  /**
   * A GET on fal's Platform API. A fault that says nothing about the key or the model (the API
   * unreachable, a 5xx, a rate limit) is logged and skipped: the run does not depend on it.
   */
  async #platform(path: string, signal: AbortSignal): Promise<unknown> {
    let response: Response;
    try {
      response = await this.#apiFetch(`${PLATFORM_API}${path}`, {
        method: "GET",
        headers: { authorization: `Key ${this.#apiKey}`, accept: "application/json" },
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      if (error instanceof ProviderError && error.fatal) throw error;
      log.warn("Could not check the fal key and model before the run: {reason}", {
        reason: error instanceof Error ? this.#redact(error.message) : String(error),
      });
      return undefined;
    }
    try {
      return await response.json();
    } catch {
      return undefined;
    }
  }

  /**
   * The id of an earlier run's request if fal still has it (results are kept for a while), so
   * its result is fetched instead of paying again; undefined when it is gone.
   */
  async #recoverable(
    model: string,
    requestId: string,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    if (this.#cancelledIds.has(requestId)) return undefined;
    try {
      const status = await (await this.#queue()).status(model, { requestId, abortSignal: signal });
      log.info("Recovering fal request {requestId} from an interrupted run ({status})", {
        model,
        requestId,
        status: status.status,
      });
      return requestId;
    } catch (error) {
      if (!_gone(error)) throw error;
      log.info("fal no longer has request {requestId}: submitting a new one", {
        model,
        requestId,
      });
      return undefined;
    }
  }

  /**
   * Best effort, with its own deadline: the caller is failing regardless. Returns fal's answer
   * (`CANCELLATION_REQUESTED`, `ALREADY_COMPLETED`, …), or undefined when there was none.
   */
  async #cancel(
    model: string,
    requestId: string,
    why: string,
  ): Promise<string | undefined> {
    this.#cancelledIds.add(requestId);
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(),
      Math.min(CANCEL_TIMEOUT_MS, this.#timeoutMs),
    );
    try {
      await (await this.#queue()).cancel(model, { requestId, abortSignal: controller.signal });
      const answer = this.#cancelAnswers.get(requestId);
      log.debug("Cancelled fal request {requestId} ({why}): {answer}", {
        model,
        requestId,
        why,
        answer,
      });
      return answer;
    } catch (error) {
      log.warn("Could not cancel fal request {requestId} ({why}): {error}", {
        model,
        requestId,
        why,
        error: this.#redact(error instanceof Error ? error.message : String(error)),
      });
      return undefined;
    } finally {
      this.#cancelAnswers.delete(requestId);
      clearTimeout(timer);
    }
  }
}

/** A completed request's timings, as its status told them. */
interface Completion {
  queueMs: number;
  inferenceSeconds: unknown;
  /** From the submit's answer until this process saw the request completed, in ms. */
  elapsedMs: number;
}

/** One attempt's request on fal, as far as it got. */
interface Job {
  /** The endpoint called (an edit endpoint, for an edit), whose price applies. */
  model: string;
  /** The `resolution` tier asked for, for prices that depend on it. */
  tier: string | undefined;
  /** The seed in the submitted input, if the endpoint takes one. */
  seedSent?: number;
  /** The submitted input, as the key of {@linkcode FalGenerator}'s undelivered results. */
  key: string;
  id?: string | undefined;
  /** fal reported it COMPLETED: it ran, and its output (if any) is billed. */
  completed: boolean;
  /** Its result was fetched (the output exists). */
  resultFetched?: boolean;
  /** Its price at the size asked for, or fal's returned size once known. */
  price: number;
  /** What earlier attempts already recorded for it. */
  charged: number;
}

/**
 * Whether a completed request failed in a way fal bills: it produced an output (or we could
 * not see that it did not), as opposed to a result that is an HTTP error, which is the model's
 * own failure (fal bills no 5xx; a 4xx there is a rejection, not an output).
 */
function _billed(job: Job, error: unknown): boolean {
  if (job.resultFetched) return true;
  return !(error instanceof ProviderError && error.status !== undefined && error.status >= 400);
}

/** Whether a billed result may still be fetched, so the next attempt should not pay again. */
function _fetchable(error: unknown, timedOut: boolean): boolean {
  return timedOut || (error instanceof ProviderError && error.retryable);
}

/** fal does not have the request (any more): expired, never there, or cancelled. */
function _gone(error: unknown): boolean {
  const status = (error as { status?: unknown } | null)?.status;
  return status === 404 || status === 410 || status === 499;
}

/** A fal pricing unit as retake applies it; undefined for units of other kinds of output. */
function _priceUnit(unit: string): FalPrice["unit"] | undefined {
  const name = unit.trim().toLowerCase();
  if (name === "image" || name === "images") return "image";
  if (/^(megapixels?|mp)$/.test(name)) return "megapixel";
  return undefined;
}

/**
 * `source` with its failure replaced by `onError(reason)`, so a transfer that breaks after the
 * call returned still says what it cost.
 */
function _billedStream(
  source: ReadableStream<Uint8Array>,
  onError: (error: unknown) => unknown,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(onError(error));
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** A copy of `error` with more fields set (they are read-only on the original). */
function _with(
  error: ProviderError,
  extra: { requestId?: string; costUsd?: number; fatal?: boolean },
): ProviderError {
  const requestId = extra.requestId ?? error.requestId;
  const costUsd = extra.costUsd ?? error.costUsd;
  const copy = new ProviderError(error.message, {
    provider: error.provider,
    retryable: error.retryable,
    fatal: extra.fatal ?? error.fatal,
    ...(requestId !== undefined && { requestId }),
    ...(costUsd !== undefined && { costUsd }),
    ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }),
    ...(error.status !== undefined && { status: error.status }),
    ...(error.cause !== undefined && { cause: error.cause }),
  });
  copy.name = error.name;
  return copy;
}

interface FalOutput {
  image: { url: string; width?: number; height?: number };
  seed?: number;
  nsfw?: boolean;
  timings?: { inference?: unknown };
}

/** Checks the parts of fal's output this provider relies on; the SDK passes it through untyped. */
function _output(data: unknown, requestId: string): FalOutput {
  const d = (data !== null && typeof data === "object" ? data : {}) as Record<string, unknown>;
  const first = Array.isArray(d.images) ? d.images[0] as Record<string, unknown> : undefined;
  if (!first || typeof first.url !== "string" || first.url === "") {
    throw new ProviderError(
      `Cannot use fal's answer for request ${requestId} as it holds no image URL`,
      { provider: PROVIDER, retryable: false, requestId },
    );
  }
  const dimension = (v: unknown) => typeof v === "number" && v > 0 ? v : undefined;
  const width = dimension(first.width);
  const height = dimension(first.height);
  const flags = d.has_nsfw_concepts;
  const nsfw = Array.isArray(flags) && typeof flags[0] === "boolean" ? flags[0] : undefined;
  const timings = d.timings !== null && typeof d.timings === "object"
    ? d.timings as { inference?: unknown }
    : undefined;
  return {
    image: {
      url: first.url,
      ...(width !== undefined && { width }),
      ...(height !== undefined && { height }),
    },
    ...(typeof d.seed === "number" && { seed: d.seed }),
    ...(nsfw !== undefined && { nsfw }),
    ...(timings !== undefined && { timings }),
  };
}

function _ms(seconds: unknown): number | undefined {
  return typeof seconds === "number" && Number.isFinite(seconds) && seconds >= 0
    ? Math.round(seconds * 1000)
    : undefined;
}

interface ApiFetchOptions {
  base: string | undefined;
  innerFetch: typeof fetch;
  redact: (text: string) => string;
  /** Told fal's answer to a cancel (its `status`), which the SDK does not return. */
  onCancelAnswer?: (requestId: string, status: string) => void;
  /**
   * Told why a status stream call failed: the SDK hands its listener only an `ApiError` with
   * status 500 in place of it.
   */
  onStreamFailure?: (requestId: string, error: ProviderError) => void;
}

/**
 * The fetch given to the SDK: redirects to `base`, logs, reads the whole (small, JSON) body so a
 * connection that breaks mid-body surfaces here, and throws a {@linkcode ProviderError} for
 * every failure so the SDK's own retry loop never fires.
 */
function _apiFetch(
  options: ApiFetchOptions,
): typeof fetch {
  const call = _apiCall(options);
  const onStreamFailure = options.onStreamFailure;
  return async (input, init) => {
    try {
      return await call(input, init);
    } catch (error) {
      const path = String(input instanceof Request ? input.url : input);
      const requestId = /\/requests\/([^/]+)\/status\/stream(?:\?|$)/.exec(path)?.[1];
      if (requestId !== undefined && error instanceof ProviderError) {
        onStreamFailure?.(requestId, error);
      }
      throw error;
    }
  };
}

/** One call of {@linkcode _apiFetch}. */
function _apiCall(options: ApiFetchOptions): typeof fetch {
  const { base, innerFetch, redact, onCancelAnswer } = options;
  return async (input, init) => {
    const call = _callOf(input, init, base);
    let response: Response;
    try {
      response = await innerFetch(call.url, init);
    } catch (error) {
      if (init?.signal?.aborted || _isAbort(error)) throw error;
      throw _unreachable(call, error, "the connection failed", options);
    }
    const answerId = response.headers.get("x-fal-request-id") || call.requestId;
    if (
      response.ok && (response.headers.get("content-type") ?? "").startsWith("text/event-stream")
    ) {
      // The status stream: handed over as it comes (the SDK reads the events as they arrive).
      _logAnswer(call, response.status, answerId, "{status} stream opened in {durationMs} ms");
      return response;
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (init?.signal?.aborted || _isAbort(error)) throw error;
      throw _unreachable(call, error, "the connection broke off mid-answer", options);
    }
    _logAnswer(call, response.status, answerId, "{status} in {durationMs} ms");
    if (!response.ok) throw _httpError(response, text, call.method, call.path, answerId, redact);
    if ((response.headers.get("content-type") ?? "").includes("application/json")) {
      _readJson(call, text, answerId, onCancelAnswer);
    }
    const nullBody = [101, 204, 205, 304].includes(response.status);
    return new Response(nullBody ? null : text, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}

/** One HTTP call to fal, as {@linkcode _apiCall} logs and describes it. */
interface FalCall {
  /** Where it goes: fal's URL, or the same path under `base`. */
  url: string;
  method: string;
  origin: string;
  path: string;
  /** The request the path names, if it names one. */
  requestId: string | undefined;
  /** When it was sent (`performance.now()`). */
  started: number;
}

function _callOf(
  input: string | URL | Request,
  init: RequestInit | undefined,
  base: string | undefined,
): FalCall {
  const original = typeof input === "string"
    ? input
    : input instanceof URL
    ? input.href
    : input.url;
  const url = base === undefined ? original : original.replace(FAL_HOSTS, base);
  const parsed = new URL(url);
  return {
    url,
    method: (init?.method ?? "GET").toUpperCase(),
    origin: parsed.origin,
    path: parsed.pathname,
    requestId: /\/requests\/([^/]+)/.exec(parsed.pathname)?.[1],
    started: performance.now(),
  };
}

function _elapsed(call: FalCall): number {
  return Math.round(performance.now() - call.started);
}

/** Logs fal's answer to `call`; `what` is the message after the method and path. */
function _logAnswer(
  call: FalCall,
  status: number,
  answerId: string | undefined,
  what: string,
): void {
  log.debug(`fal {method} {path}: ${what}`, {
    method: call.method,
    path: call.path,
    status,
    durationMs: _elapsed(call),
    ...(answerId !== undefined && { requestId: answerId }),
  });
}

/** The error for a call that got no (whole) answer: retryable, as the network may come back. */
function _unreachable(
  call: FalCall,
  error: unknown,
  what: string,
  { base, redact }: ApiFetchOptions,
): ProviderError {
  log.debug("fal {method} {path}: {error} after {durationMs} ms", {
    method: call.method,
    path: call.path,
    error: what,
    durationMs: _elapsed(call),
  });
  return new ProviderError(
    `Cannot reach fal at ${call.origin} as ${what}: ${
      redact(error instanceof Error ? error.message : String(error))
    }; check the network${base === undefined ? "" : " or the base URL"}`,
    {
      provider: PROVIDER,
      retryable: true,
      ...(call.requestId !== undefined && { requestId: call.requestId }),
      // A copy without the original's cause chain: the SDK retries errors carrying ECONN* codes.
      cause: _detached(error),
    },
  );
}

/**
 * Checks that a JSON answer is whole, and hands on fal's answer to a cancel, which the SDK
 * does not return.
 */
function _readJson(
  call: FalCall,
  text: string,
  answerId: string | undefined,
  onCancelAnswer: ApiFetchOptions["onCancelAnswer"],
): void {
  const { method, path, requestId } = call;
  try {
    const body = JSON.parse(text);
    const status = (body as { status?: unknown } | null)?.status;
    if (requestId !== undefined && path.endsWith("/cancel") && typeof status === "string") {
      onCancelAnswer?.(requestId, status);
    }
  } catch (error) {
    // No status on the error: it says nothing about the request, only about the transfer.
    throw new ProviderError(
      `Cannot read fal's answer to ${method} ${path} as it is not valid JSON (${text.length} bytes): the connection may have been cut`,
      {
        provider: PROVIDER,
        retryable: true,
        ...(answerId !== undefined && { requestId: answerId }),
        cause: error,
      },
    );
  }
}

/** Maps a non-2xx answer to what the pipeline should do about it. */
function _httpError(
  response: Response,
  text: string,
  method: string,
  path: string,
  requestId: string | undefined,
  redact: (text: string) => string,
): ProviderError {
  const status = response.status;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined; // HTML from a proxy, or empty: the status says enough.
  }
  const detail = redact(_detailText(body) ?? (text.trim().slice(0, 200) || response.statusText));
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
  const answer: HttpAnswer = {
    method,
    path,
    status,
    body,
    suffix: detail === "" ? "" : `: ${detail}`,
    common: {
      provider: PROVIDER,
      status,
      ...(requestId !== undefined && { requestId }),
      ...(retryAfterMs !== undefined && { retryAfterMs }),
    },
  };
  return _fatalHttpError(answer) ?? _attemptHttpError(answer, response.headers);
}

/** A non-2xx answer of fal's, as {@linkcode _httpError} reads it. */
interface HttpAnswer {
  method: string;
  path: string;
  status: number;
  /** The body as JSON, if it is. */
  body: unknown;
  /** fal's detail, as the end of a message (`: …`), or empty. */
  suffix: string;
  /** The fields every error for this answer carries. */
  common: { provider: string; status: number; requestId?: string; retryAfterMs?: number };
}

/**
 * The error for an answer every prompt would get alike (the key, the account, an endpoint or a
 * setting fal does not take): fatal, so the run stops. Undefined for any other answer.
 */
function _fatalHttpError(
  { method, path, status, body, suffix, common }: HttpAnswer,
): ProviderError | undefined {
  const fatal = { ...common, retryable: false, fatal: true };
  if (status === 401) {
    return new ProviderError(
      `Cannot use fal as it rejected the API key (HTTP 401${suffix}): check FAL_KEY (create a key at fal.ai/dashboard/keys)`,
      fatal,
    );
  }
  if (status === 403) {
    return new ProviderError(
      `Cannot use fal as it refused the account (HTTP 403${suffix}): top up the balance at fal.ai/dashboard/billing, or check that FAL_KEY may use this endpoint`,
      fatal,
    );
  }
  const submit = method === "POST" && !path.includes("/requests/");
  if (submit && status === 404) {
    // No endpoint by that id (nothing was accepted).
    return new ProviderError(
      `Cannot generate with fal as it has no endpoint '${
        path.slice(1)
      }' (HTTP 404${suffix}): check --model (fal's endpoints are listed at fal.ai/models)`,
      fatal,
    );
  }
  // fal's queue takes any input and refuses it once the request ran, from the result call
  // (reference `fal.md` §3.3); a gateway may refuse it at submit. Either way it is the same answer.
  const result = method === "GET" && /\/requests\/[^/]+$/.test(path);
  const settings = (submit || result) && status === 422 ? _settingFields(body) : [];
  if (settings.length === 0) return undefined;
  return new ProviderError(
    `Cannot generate with fal as it rejected the setting ${
      settings.map((f) => `'${f}'`).join(", ")
    } (HTTP 422${suffix}): every prompt would fail alike; change it in the config or on the command line`,
    fatal,
  );
}

/** The error for an answer about this attempt alone: retryable as fal hints, or by its status. */
function _attemptHttpError(
  { method, path, status, body, suffix, common }: HttpAnswer,
  headers: Headers,
): ProviderError {
  const errorType = headers.get("x-fal-error-type") ??
    (body as { error_type?: unknown } | undefined)?.error_type;
  const typeNote = typeof errorType === "string" && errorType !== "" ? ` ${errorType}` : "";
  const hinted = headers.get("x-fal-retryable");
  const retryable = hinted === "true" ? true : hinted === "false"
    ? false
    // A request fal does not know (any more) can be sent again; an endpoint it lacks cannot.
    : status === 408 || status === 429 || status >= 500 || status === 404;
  const message = status === 422
    ? `Cannot generate with fal as it rejected the input (HTTP 422)${suffix}`
    : status === 429
    ? `Cannot generate with fal now as it is rate limiting requests (HTTP 429${suffix})`
    : status === 404
    ? `Cannot generate with fal as ${method} ${path} was not found (HTTP 404${suffix}): fal no longer has that request`
    : `Cannot generate with fal as ${method} ${path} failed (HTTP ${status}${typeNote}${suffix})`;
  return new ProviderError(message, { ...common, retryable });
}

/**
 * A 422 on a setting fails every prompt alike, so it stops the run, naming the endpoint (`model`;
 * for an edit, `editOf` is the model it edits for) — unless the setting is this prompt's own
 * (`steps`, `size`): then only this prompt fails, and the message says where to change it.
 */
function _settingError(
  error: unknown,
  request: GenerateRequest,
  model: string,
  editOf: string | undefined,
): unknown {
  if (!(error instanceof ProviderError) || !error.fatal || error.status !== 422) return error;
  const own = request.spec.settings ?? {};
  const fields = [
    ...(request.steps !== undefined ? ["num_inference_steps"] : []),
    ...(own.size !== undefined ? ["image_size", "aspect_ratio", "resolution"] : []),
  ];
  const prompts = fields.some((field) => error.message.includes(`'${field}'`));
  const endpoint = `fal endpoint '${model}'${
    editOf === undefined ? "" : ` (the edit endpoint of '${editOf}')`
  }`;
  const message = error.message
    .replace(/^Cannot generate with fal as/, `Cannot generate with ${endpoint} as`)
    .replace(
      /every prompt would fail alike; change it in the config or on the command line$/,
      prompts
        ? `it is a setting of prompt '${
          escapeControls(request.spec.id)
        }' alone; change it in the prompt file`
        : editOf === undefined
        ? "$&"
        : "$&, or redraw instead of editing (--refine regenerate)",
    );
  return new ProviderError(message, {
    provider: error.provider,
    retryable: false,
    fatal: !prompts,
    status: error.status,
    ...(error.requestId !== undefined && { requestId: error.requestId }),
    cause: error,
  });
}

/**
 * The settings fields a 422 names, when it names only those (not the prompt): fal's FastAPI
 * `detail` list of `{loc: ["body", field], …}`.
 */
function _settingFields(body: unknown): string[] {
  const detail = (body as { detail?: unknown } | undefined)?.detail;
  if (!Array.isArray(detail) || detail.length === 0) return [];
  const fields = detail.map((item) => {
    const loc = (item as { loc?: unknown } | null)?.loc;
    return Array.isArray(loc) ? String(loc[loc.length - 1]) : "";
  });
  return fields.every((f) => SETTING_FIELDS.has(f)) ? [...new Set(fields)] : [];
}

/** fal's `detail`: a string, or a FastAPI list of `{loc, msg, type}`. */
function _detailText(body: unknown): string | undefined {
  if (body === null || typeof body !== "object") return undefined;
  const detail = (body as { detail?: unknown; message?: unknown }).detail ??
    (body as { message?: unknown }).message;
  if (typeof detail === "string") return detail;
  if (!Array.isArray(detail)) return undefined;
  return detail.map((item) => {
    const entry = (item ?? {}) as { loc?: unknown; msg?: unknown; type?: unknown };
    const loc = Array.isArray(entry.loc)
      ? entry.loc.filter((part) => part !== "body").join(".")
      : "";
    const msg = typeof entry.msg === "string" ? entry.msg : JSON.stringify(item);
    const type = typeof entry.type === "string" ? ` (${entry.type})` : "";
    return `${loc === "" ? "" : `${loc}: `}${msg}${type}`;
  }).join("; ");
}

/** Errors from the SDK or the network that did not come through {@linkcode _apiFetch} as ours. */
function _classify(
  error: unknown,
  requestId: string | undefined,
  redact: (text: string) => string,
): ProviderError {
  const withId = requestId !== undefined ? { requestId } : {};
  if (error instanceof ProviderError) {
    if (error.requestId !== undefined || requestId === undefined) return error;
    return _with(error, { requestId });
  }
  const message = redact(error instanceof Error ? error.message : String(error));
  if (error instanceof SyntaxError) {
    return new ProviderError(`Cannot read fal's answer as it is not valid JSON: ${message}`, {
      provider: PROVIDER,
      retryable: true,
      ...withId,
      cause: error,
    });
  }
  if (error instanceof TypeError && NETWORK_FAULT.test(error.message)) {
    return new ProviderError(`Cannot reach fal: ${message}; check the network`, {
      provider: PROVIDER,
      retryable: true,
      ...withId,
      cause: error,
    });
  }
  return new ProviderError(`Cannot generate with fal: ${message}`, {
    provider: PROVIDER,
    retryable: false,
    ...withId,
    cause: error,
  });
}

function _isAbort(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === "AbortError" || name === "TimeoutError";
}

function _detached(error: unknown): Error {
  const copy = new Error(error instanceof Error ? error.message : String(error));
  copy.name = error instanceof Error ? error.name : "Error";
  return copy;
}

function _prices(overrides: FalGeneratorOptions["prices"]): Record<string, FalPrice> {
  const table: Record<string, FalPrice> = { ...DEFAULT_FAL_PRICES };
  for (const [id, value] of Object.entries(overrides ?? {})) {
    const usd = typeof value === "number" ? value : value.usd;
    if (!Number.isFinite(usd) || usd < 0) {
      throw new RangeError(
        `Cannot create the fal generator as the price of '${id}' must be a number >= 0: current value is ${usd}`,
      );
    }
    const known = DEFAULT_FAL_PRICES[id];
    table[id] = typeof value === "number"
      ? {
        usd,
        unit: known?.unit ?? "image",
        ...(known?.tierFactors !== undefined && { tierFactors: known.tierFactors }),
      }
      : value;
  }
  return table;
}

/** The `fal` section of the config file. */
const falSettings = z.strictObject({
  key: z.string().min(1).optional(),
  baseUrl: urlString.optional(),
  safetyChecker: z.boolean().default(true),
  failOnNsfw: z.boolean().default(true),
  steps: positiveInt.optional(),
  /** USD per megapixel or per image, by endpoint id. */
  prices: priceTable.optional(),
  pollIntervalMs: positiveInt.default(500),
});

/** fal's settings, validated. */
export type FalSettings = z.output<typeof falSettings>;

/** The models retake knows by name, from the catalogue. */
function _catalog(): ModelEntry[] {
  return FAL_MODELS.map((model) => ({
    id: model.id,
    roles: ["generate"],
    aliases: model.aliases,
    family: model.family,
    ...(model.price !== undefined && { price: describeFalPrice(model.price) }),
  }));
}

/** fal.ai as a retake provider: image generation through its queue API. */
export const falProvider = {
  name: "fal",
  title: "fal.ai",
  summary: { generate: "fal.ai queue API via `@fal-ai/client`" },
  roles: ["generate"],
  schema: falSettings,
  env: [
    {
      names: ["FAL_KEY", "FAL_AI_API_KEY"],
      setting: "key",
      secret: true,
      description: "fal.ai key",
    },
    {
      names: ["FAL_BASE_URL"],
      setting: "baseUrl",
      description: "send every fal request to this origin",
    },
  ],
  models: _catalog(),
  defaults: { generate: DEFAULT_FAL_MODEL },
  available: (settings: FalSettings) => settings.key !== undefined,
  unavailable:
    "FAL_KEY is not set: export FAL_KEY (or FAL_AI_API_KEY), add it to .env or the config file, or run with --generator local",
  resolveModel: resolveFalModel,
  // deno-lint-ignore require-await -- async, so a refused size rejects like every other fault
  async create({ settings, models, size, timeoutMs, sizes, roles }: CreateContext<FalSettings>) {
    // A size the model cannot make would fail every prompt, after paying for nothing: say so now.
    const asks: NonNullable<typeof sizes> = sizes ?? models.map((model) => ({ model, ...size }));
    for (const asked of asks) {
      try {
        checkFalSize(asked.model, asked.width, asked.height);
      } catch (error) {
        if (!(error instanceof InputError) || asked.prompt === undefined) throw error;
        throw new InputError(
          `Invalid prompt '${escapeControls(asked.prompt)}': ${
            error.message.replace(/; choose another --size$/, "")
          }; change the prompt's 'size' or 'model'`,
        );
      }
    }
    return {
      generator: createFalGenerator({
        models: [...models],
        apiKey: settings.key!,
        ...(settings.baseUrl !== undefined && { baseUrl: settings.baseUrl }),
        timeoutMs,
        pollIntervalMs: settings.pollIntervalMs,
        enableSafetyChecker: settings.safetyChecker,
        failOnNsfw: settings.failOnNsfw,
        ...(settings.steps !== undefined && { steps: settings.steps }),
        ...(settings.prices !== undefined && { prices: settings.prices }),
        edits: roles.has("edit"),
      }),
    };
  },
} as const satisfies ProviderDescriptor<FalSettings>;
