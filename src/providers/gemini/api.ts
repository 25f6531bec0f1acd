/**
 * The connection to the Gemini Developer API that the critic, the refiner and the image
 * generator share: the `@google/genai` SDK (its `/web` entry, which reads no environment) loaded
 * on the first call, the classification of every failure as a {@linkcode ProviderError}, and the
 * free `models.get` check with its warnings about retired and routed model ids.
 *
 * @module
 */
import type { GenerateContentResponse, GoogleGenAI, Model } from "@google/genai/web";
import { getLogger } from "@logtape/logtape";
import { ProviderError, StopRequested } from "../../errors.ts";
import { redactor } from "../../util/redact.ts";
import {
  NETWORK_FAULT,
  serverTimingMs,
  serviceLatencyMs,
  type TimedFetch,
  waitFromMessage,
} from "../_http.ts";
import { clip } from "../_llm_prompts.ts";
import {
  answeredInBatch,
  BATCH_PRICE,
  GeminiBatcher,
  type GeminiBatcherOptions,
  type GenerateParams,
} from "./batch.ts";
import { baseModelId, GEMINI_MODEL_CHANGES } from "./models.ts";
import type { TokenUsage } from "../provider.ts";

const PROVIDER = "gemini";
const log = getLogger(["retake", "gemini"]);

/** Where current Gemini keys are made; standard `AIza…` keys no longer work. */
const KEY_PAGE = "aistudio.google.com/apikey";

/** How to reach Gemini. */
export interface GeminiConnectionOptions {
  /** Gemini API key; sent only as the `x-goog-api-key` header, never logged. */
  apiKey: string;
  /**
   * Origin (plus optional path prefix, no version segment) to send requests to, for proxies and
   * stand-in servers. @default {"https://generativelanguage.googleapis.com"}
   */
  baseUrl?: string | undefined;
  /** Deadline for one HTTP call, in ms; a call that runs over fails as retryable. @default {60000} */
  timeoutMs?: number | undefined;
}

/** A model as the user chose it: its id and the flag that chose it, for error messages. */
export interface ChosenModel {
  model: string;
  /** `--critic-model` or `--model`. */
  flag: string;
}

/** One SDK client, shared by every part of the Gemini provider. */
export interface GeminiConnection {
  readonly timeoutMs: number;
  /** The SDK's `models` module, loading the SDK on first use. */
  models(): Promise<GoogleGenAI["models"]>;
  /**
   * `models.generateContent`, or with `--batch-api` (see {@linkcode GeminiConnection.batch})
   * the same call through the next batch job.
   */
  generateContent(params: GenerateParams): Promise<GenerateContentResponse>;
  /** The batch mode of this connection, once {@linkcode GeminiConnection.useBatchApi} made it. */
  readonly batch: GeminiBatcher | undefined;
  /** Sends every call through Gemini's Batch API once the session it returns is open. */
  useBatchApi(options: GeminiBatcherOptions): GeminiBatcher;
  /**
   * What an answer is billed as a share of its price at the interactive rates: half for an answer
   * from a batch job.
   */
  priceShare(response: GenerateContentResponse): number;
  /** The share a budget reserves for one call: the batch price with `--batch-api`. */
  readonly estimateShare: number;
  /** `text` with the key taken out. */
  redact(text: string): string;
  /**
   * `error` as a {@linkcode ProviderError}, or the abort reason when `signal` was aborted.
   */
  classify(error: unknown, signal: AbortSignal, operation: string, chosen: ChosenModel): unknown;
  /**
   * Asks `models.get` about a model, which Gemini does not bill: throws a fatal
   * `ProviderError` for a bad key or a model Gemini does not have, warns about an id Gemini
   * retired or routes to another model, and goes on (with a warning) when the answer says
   * nothing about either (a timeout, a 5xx).
   */
  checkModel(chosen: ChosenModel, signal: AbortSignal): Promise<Model | undefined>;
  /** Warns once per model when an answer came from another model than the one asked for. */
  noteModelVersion(model: string, response: GenerateContentResponse): string | undefined;
  /**
   * Keeps a warning for the start of the run: the checks run before the run's logging is set
   * up, so what they find is logged with the first paid call, before it is sent.
   */
  warnAtStart(message: string, properties: Record<string, unknown>): void;
  /** Logs the warnings kept for the start; call before each paid call. */
  flushWarnings(): void;
}

/** Connects to Gemini (the SDK itself loads on the first call). */
export function connectGemini(options: GeminiConnectionOptions): GeminiConnection {
  return new GeminiApi(options);
}

/**
 * The Gemini Developer API through the SDK: besides the key and deadline it keeps the warnings
 * held for the start of the run and the models already warned about.
 */
class GeminiApi implements GeminiConnection {
  readonly timeoutMs: number;
  readonly #apiKey: string;
  readonly #baseUrl: string | undefined;
  readonly #redact: (text: string) => string;
  /** A standard (`AIza…`) key, which Gemini rejects since September 2026. */
  readonly #standardKey: boolean;
  /** Models already warned about: routed, renamed or retired. */
  readonly #noted = new Set<string>();
  readonly #pending: Array<[string, Record<string, unknown>]> = [];
  // Retries stay off (no retryOptions): the pipeline owns backoff and honours RetryInfo.
  #sdk: Promise<GoogleGenAI> | undefined;
  #batch: GeminiBatcher | undefined;

  constructor(options: GeminiConnectionOptions) {
    const apiKey = options.apiKey;
    if (typeof apiKey !== "string" || apiKey.trim() === "") {
      throw new TypeError(
        "Cannot create the Gemini client as 'apiKey' is empty: set GEMINI_API_KEY, or choose another provider",
      );
    }
    this.timeoutMs = positiveOption("timeoutMs", options.timeoutMs ?? 60_000);
    this.#apiKey = apiKey;
    this.#baseUrl = options.baseUrl;
    this.#redact = redactor([apiKey]);
    this.#standardKey = apiKey.startsWith("AIza");
  }

  redact(text: string): string {
    return this.#redact(text);
  }

  async models(): Promise<GoogleGenAI["models"]> {
    return (await this.#client()).models;
  }

  generateContent(params: GenerateParams): Promise<GenerateContentResponse> {
    return this.#batch?.active ? this.#batch.generateContent(params) : this.#interactive(params);
  }

  get batch(): GeminiBatcher | undefined {
    return this.#batch;
  }

  useBatchApi(options: GeminiBatcherOptions): GeminiBatcher {
    const never = new AbortController().signal;
    this.#batch ??= new GeminiBatcher({
      client: () => this.#client(),
      interactive: (params) => this.#interactive(params),
      classify: (error, operation, model) =>
        this.classify(error, never, operation, { model, flag: "--batch-api" }),
    }, options);
    return this.#batch;
  }

  priceShare(response: GenerateContentResponse): number {
    return answeredInBatch(response) ? BATCH_PRICE : 1;
  }

  get estimateShare(): number {
    return this.#batch !== undefined ? BATCH_PRICE : 1;
  }

  async #interactive(params: GenerateParams): Promise<GenerateContentResponse> {
    return await (await this.#client()).models.generateContent(params);
  }

  #client(): Promise<GoogleGenAI> {
    // The SDK loads on the first call: a run that never calls Gemini never loads it.
    return this.#sdk ??= import("@google/genai/web").then(({ GoogleGenAI }) =>
      new GoogleGenAI({
        apiKey: this.#apiKey,
        vertexai: false,
        apiVersion: "v1beta",
        httpOptions: {
          timeout: this.timeoutMs,
          ...(this.#baseUrl !== undefined && { baseUrl: this.#baseUrl }),
        },
      })
    );
  }

  classify(error: unknown, signal: AbortSignal, operation: string, chosen: ChosenModel): unknown {
    if (signal.aborted) return signal.reason ?? error;
    // A batch wait ended by Ctrl-C: the prompt stops as interrupted, not failed.
    if (error instanceof ProviderError || error instanceof StopRequested) return error;
    const redact = this.#redact;
    const e = error as { name?: unknown; status?: unknown; message?: unknown };
    if (e?.name === "ApiError" && typeof e.status === "number") {
      return classifyApiError(e.status, String(e.message ?? ""), {
        ...chosen,
        redact,
        standardKey: this.#standardKey,
        cause: error,
      });
    }
    if (e?.name === "AbortError" || e?.name === "TimeoutError") {
      return new ProviderError(`Gemini ${operation} timed out after ${this.timeoutMs} ms`, {
        provider: PROVIDER,
        retryable: true,
        cause: error,
      });
    }
    // Deno's fetch reports transport faults as TypeErrors; other TypeErrors are bugs, not outages.
    if (error instanceof TypeError && NETWORK_FAULT.test(error.message)) {
      return new ProviderError(
        `Cannot reach Gemini for ${operation}: ${
          redact(error.message)
        }; check the network or the base URL`,
        { provider: PROVIDER, retryable: true, cause: error },
      );
    }
    return new ProviderError(
      `Gemini ${operation} failed: ${
        redact(error instanceof Error ? error.message : String(error))
      }`,
      { provider: PROVIDER, retryable: false, cause: error },
    );
  }

  async checkModel(chosen: ChosenModel, signal: AbortSignal): Promise<Model | undefined> {
    const { model, flag } = chosen;
    let info: Model;
    try {
      info = await (await this.models()).get({ model, config: { abortSignal: signal } });
    } catch (error) {
      const classified = this.classify(error, signal, "model check", chosen);
      if (!(classified instanceof ProviderError) || classified.fatal) throw classified;
      // Says nothing about the key or the model (a timeout, a 5xx): the run does not need it.
      log.warn("Could not check the Gemini key and model before the run: {reason}", {
        model,
        reason: classified.message,
      });
      return undefined;
    }
    const actions = info.supportedActions;
    if (Array.isArray(actions) && actions.length > 0 && !actions.includes("generateContent")) {
      throw new ProviderError(
        `Cannot use Gemini model '${model}' as it does not support generateContent (it supports ${
          actions.join(", ")
        }): choose another ${flag}`,
        { provider: PROVIDER, retryable: false, fatal: true },
      );
    }
    const notice = changeNotice(model, flag, info);
    if (notice !== undefined) {
      this.#noted.add(model);
      this.warnAtStart(notice, { model });
    }
    return info;
  }

  warnAtStart(message: string, properties: Record<string, unknown>): void {
    this.#pending.push([message, properties]);
  }

  flushWarnings(): void {
    for (const [message, properties] of this.#pending.splice(0)) log.warn(message, properties);
  }

  noteModelVersion(model: string, response: GenerateContentResponse): string | undefined {
    const version = response.modelVersion;
    if (typeof version !== "string" || version === "") return undefined;
    if (baseModelId(version) !== baseModelId(model) && !this.#noted.has(model)) {
      this.#noted.add(model);
      log.warn(
        "Gemini answers requests for {model} with {modelVersion}: it is billed at that model's rates; choose it by name to know what you pay for",
        { model, modelVersion: version },
      );
    }
    return version;
  }
}

/**
 * What to tell the user at the start about a model id Gemini routed or shut down, from the
 * table of known changes and what `models.get` answered; undefined when nothing changed.
 */
function changeNotice(model: string, flag: string, info: Model): string | undefined {
  const change = GEMINI_MODEL_CHANGES[model.replace(/^models\//, "")];
  const answered = typeof info.name === "string" ? baseModelId(info.name) : undefined;
  if (change?.kind === "routed") {
    const to = change.to ?? (answered !== undefined && answered !== model ? answered : undefined);
    return `Gemini routes '${model}' to ${to === undefined ? "a newer model" : `'${to}'`}${
      change.since !== undefined ? ` since ${change.since}` : ""
    }: the answers are billed at that model's rates and recorded with its modelVersion; choose ${
      to ?? "a current model"
    } with ${flag} to say what you pay for`;
  }
  if (change?.kind === "shutdown") {
    const past = change.on <= new Date().toISOString().slice(0, 10);
    return `Gemini ${past ? "scheduled" : "shuts down"} '${model}'${
      past ? " to shut down" : ""
    } on ${change.on}${
      past ? " (it still answers)" : ""
    }: choose ${change.use} with ${flag} before it stops answering`;
  }
  if (answered !== undefined && answered !== baseModelId(model)) {
    return `Gemini answers '${model}' with '${answered}': choose '${answered}' with ${flag} to say what you pay for`;
  }
  return undefined;
}

/**
 * The answer's latency at Gemini, for the adaptive limiter (see `AnswerMeta.serviceMs`): its
 * front end's `server-timing`, else the first byte as `timed` (the call's `httpOptions.fetch`)
 * saw it; undefined for an answer from a batch job, which no fetch of the call's timed.
 */
export function serviceMsOf(
  response: GenerateContentResponse,
  timed: TimedFetch,
): number | undefined {
  if (answeredInBatch(response)) return undefined;
  return serviceLatencyMs(
    serverTimingMs(response.sdkHttpResponse?.headers?.["server-timing"]),
    timed.firstByteMs(),
  );
}

/** The token counts `usageMetadata` reports. */
export function usageOf(response: GenerateContentResponse): TokenUsage {
  const meta = response.usageMetadata;
  const image = meta?.promptTokensDetails?.find((d) => d.modality === "IMAGE")?.tokenCount;
  const cached = meta?.cachedContentTokenCount;
  return {
    inputTokens: meta?.promptTokenCount ?? 0,
    outputTokens: (meta?.candidatesTokenCount ?? 0) + (meta?.thoughtsTokenCount ?? 0),
    ...(image !== undefined && { imageTokens: image }),
    ...(cached !== undefined && cached > 0 && { cachedTokens: cached }),
  };
}

/** A copy of `error` that records what the failed call was billed (fields are read-only). */
export function withCost(error: ProviderError, costUsd: number): ProviderError {
  return new ProviderError(error.message, {
    provider: error.provider,
    retryable: error.retryable,
    fatal: error.fatal,
    costUsd,
    ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }),
    ...(error.status !== undefined && { status: error.status }),
    ...(error.requestId !== undefined && { requestId: error.requestId }),
    ...(error.cause !== undefined && { cause: error.cause }),
  });
}

/** Finish reasons that mean Gemini refused or stopped the answer for its content. */
export const BLOCKING_FINISH: ReadonlySet<string> = new Set([
  "SAFETY",
  "RECITATION",
  "LANGUAGE",
  "BLOCKLIST",
  "PROHIBITED_CONTENT",
  "SPII",
  "IMAGE_SAFETY",
  "IMAGE_PROHIBITED_CONTENT",
  "IMAGE_RECITATION",
]);

/** A positive number option, or a RangeError naming it. */
export function positiveOption(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `Cannot create the Gemini client as '${name}' must be a positive number: current value is ${value}`,
    );
  }
  return value;
}

/**
 * A 400 INVALID_ARGUMENT about one of these parts of the request is about a setting, not the
 * prompt or the image: every call would get it.
 */
const SETTING_ERROR =
  /generation_?config|thinking|response_?(?:mime_?type|schema|json_?schema|modalities)|media_?resolution|system_?instruction|max_?output_?tokens|temperature|image_?config|aspect_?ratio|image_?size/i;

interface ApiErrorBody {
  code?: number;
  message?: string;
  status?: string;
  details?: Array<Record<string, unknown>>;
}

/** An error answer of Gemini's, as {@linkcode classifyApiError} reads it. */
interface ApiErrorAnswer {
  status: number;
  body: ApiErrorBody;
  /** The `google.rpc.ErrorInfo` reason, if any. */
  reason: unknown;
  /** ` <rpc status>`, for the message, or empty. */
  rpc: string;
  /** Gemini's message, clipped and redacted. */
  apiMessage: string;
  /** The fields every error for this answer carries. */
  base: { provider: string; status: number; cause: unknown };
  /** The detail of type `type` (`google.rpc.RetryInfo`, …), if the answer has one. */
  detail(type: string): Record<string, unknown> | undefined;
}

interface ApiErrorContext extends ChosenModel {
  redact: (text: string) => string;
  standardKey: boolean;
  cause: unknown;
}

function classifyApiError(
  status: number,
  message: string,
  context: ApiErrorContext,
): ProviderError {
  let body: ApiErrorBody = {};
  try {
    body = (JSON.parse(message) as { error?: ApiErrorBody }).error ?? {};
  } catch {
    // The SDK always serialises the body, but a proxy in between may not have sent one.
    body = { message };
  }
  const details = Array.isArray(body.details) ? body.details : [];
  const detail = (type: string) =>
    details.find((d) => typeof d["@type"] === "string" && d["@type"].endsWith(type));
  const answer: ApiErrorAnswer = {
    status,
    body,
    reason: detail("google.rpc.ErrorInfo")?.reason,
    rpc: body.status ? ` ${body.status}` : "",
    apiMessage: context.redact(clip(String(body.message ?? "").trim(), 300)) || "(no message)",
    base: { provider: PROVIDER, status, cause: context.cause },
    detail,
  };
  const keyError = _keyError(answer, context);
  if (keyError) return keyError;
  if (status === 429) return _quotaError(answer, context);
  if (status === 408 || status >= 500) {
    return new ProviderError(
      `Gemini is unavailable (HTTP ${status}${answer.rpc}): ${answer.apiMessage}`,
      { ...answer.base, retryable: true },
    );
  }
  return _refusalError(answer, context);
}

/** The error for a key or project Gemini does not accept (fatal), or undefined. */
function _keyError(
  { status, reason, rpc, apiMessage, base }: ApiErrorAnswer,
  { standardKey }: ApiErrorContext,
): ProviderError | undefined {
  // Standard keys were rejected from September 2026 (unrestricted ones since 2026-06-19): a 401
  // asking for OAuth, or API_KEY_INVALID for a leftover AIza key.
  const oldKey = reason === "ACCESS_TOKEN_TYPE_UNSUPPORTED" ||
    (status === 401 && /Expected OAuth 2 access token/i.test(apiMessage));
  if (oldKey || reason === "API_KEY_INVALID" || /API key not valid/i.test(apiMessage)) {
    const why = oldKey || standardKey
      ? `; Gemini rejects standard API keys (AIza…) since September 2026: create an auth key (AQ.…) at ${KEY_PAGE} and set GEMINI_API_KEY to it`
      : ` (create a key at ${KEY_PAGE})`;
    return new ProviderError(
      `Cannot use Gemini as it rejected the API key (${
        reason ?? (status === 401 ? "UNAUTHENTICATED" : "API_KEY_INVALID")
      }): check GEMINI_API_KEY${why}`,
      { ...base, retryable: false, fatal: true },
    );
  }
  if (status === 401 || status === 403) {
    return new ProviderError(
      `Gemini denied access (HTTP ${status}${rpc}): ${apiMessage}; check that GEMINI_API_KEY belongs to a project with the Gemini API enabled`,
      { ...base, retryable: false, fatal: true },
    );
  }
  return undefined;
}

/** A 429: a rate limit to wait out, or a quota no wait within the run refills (fatal). */
function _quotaError(
  { body, rpc, apiMessage, base, detail }: ApiErrorAnswer,
  { model, flag }: ApiErrorContext,
): ProviderError {
  const never = quotaThatNeverRefills(
    detail("google.rpc.QuotaFailure"),
    String(body.message ?? ""),
  );
  if (never !== undefined) {
    return new ProviderError(
      `Cannot use Gemini model '${model}' as ${never} (HTTP 429${rpc}): enable billing for the key's project at ${KEY_PAGE}, use another key, or choose another model with ${flag}`,
      { ...base, retryable: false, fatal: true },
    );
  }
  const retryAfterMs = durationMs(detail("google.rpc.RetryInfo")?.retryDelay) ??
    waitFromMessage(apiMessage);
  return new ProviderError(`Gemini rate limit reached (HTTP 429${rpc}): ${apiMessage}`, {
    ...base,
    retryable: true,
    ...(retryAfterMs !== undefined && { retryAfterMs }),
  });
}

/** A 4xx the same request would get again: fatal when every call would get it alike. */
function _refusalError(
  { status, body, rpc, apiMessage, base }: ApiErrorAnswer,
  { model, flag }: ApiErrorContext,
): ProviderError {
  if (status === 404) {
    const change = GEMINI_MODEL_CHANGES[model.replace(/^models\//, "")];
    const retired = change?.kind === "shutdown"
      ? `; Gemini shut it down on ${change.on}: choose ${change.use} with ${flag}`
      : `; check ${flag} (models are listed at ai.google.dev/gemini-api/docs/models)`;
    return new ProviderError(
      `Cannot use Gemini model '${model}' as Gemini could not find it (HTTP 404${rpc}): ${apiMessage}${retired}`,
      { ...base, retryable: false, fatal: true },
    );
  }
  // Every call would get the same answer: billing or region (FAILED_PRECONDITION), or a part of
  // the request that comes from the settings rather than the prompt.
  const setting = body.status === "FAILED_PRECONDITION" ||
    (status === 400 && SETTING_ERROR.test(apiMessage));
  return new ProviderError(
    `Gemini refused the request (HTTP ${status}${rpc}): ${apiMessage}${
      setting ? `; every call with model '${model}' would fail alike, so the run stops` : ""
    }`,
    { ...base, retryable: false, fatal: setting },
  );
}

/**
 * What a 429 says of a quota no retry within the run can get past, or undefined for a rate
 * limit that refills in seconds: a quota of 0 (`limit: 0`, as the free tier gives models it does
 * not cover), or a per-day quota used up (a `QuotaFailure` violation whose id says `PerDay`), which
 * refills at midnight Pacific time. Each comes with a retry hint of seconds that would only
 * be refused again.
 */
function quotaThatNeverRefills(
  failure: Record<string, unknown> | undefined,
  message: string,
): string | undefined {
  const violations = Array.isArray(failure?.violations)
    ? failure.violations as Array<Record<string, unknown>>
    : [];
  const ids = violations.map((v) => String(v.quotaId ?? v.quotaMetric ?? ""));
  const zero = /\blimit:\s*0\b/.test(message) ||
    violations.some((v) => v.quotaValue === "0" || v.quotaValue === 0);
  if (zero) {
    const named = ids.find((id) => id !== "") ?? "its quota";
    return `this key's quota for it is 0 (${named}${
      /free_?tier/i.test(message + ids.join(" ")) ? ", free tier" : ""
    })`;
  }
  const daily = ids.find((id) => /PerDay/i.test(id));
  if (daily !== undefined) {
    return `its daily quota is used up (${daily}); it refills at midnight Pacific time`;
  }
  return undefined;
}

/** `"53s"`, `"1.5s"`, `"0.250s"` → ms. */
function durationMs(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const match = /^(\d+(?:\.\d+)?)s$/.exec(value.trim());
  return match ? Math.round(Number(match[1]) * 1000) : undefined;
}
