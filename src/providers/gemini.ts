/**
 * Gemini as critic and refiner, through the official `@google/genai` SDK (its `/web` entry, which
 * reads no environment). The critic sends a downscaled copy of the image with the prompt and its
 * context and asks for a critique as structured JSON; the refiner sends the critique and earlier
 * rounds and asks for the next prompt.
 *
 * Transport failures are not retried here: they are classified as {@linkcode ProviderError} and
 * the pipeline's backoff decides. Only answer-level failures that a second try can plausibly fix
 * (truncated output, JSON that does not match the schema) are retried once inside a call.
 *
 * @module
 */
import type {
  Content,
  GenerateContentConfig,
  GenerateContentResponse,
  GoogleGenAI,
  MediaResolution,
  Model,
  ThinkingLevel,
} from "@google/genai/web";
import { getLogger } from "@logtape/logtape";
import { z } from "zod";
import { tokenPriceTable, urlString } from "../schema.ts";
import { critiqueSchema } from "../critique.ts";
import { ProviderError } from "../errors.ts";
import { redactor } from "../redact.ts";
import { NETWORK_FAULT } from "./_http.ts";
import {
  clip,
  CRITIC_INSTRUCTION,
  critiqueText,
  parseAnswer,
  prepareImage,
  REFINER_INSTRUCTION,
  refineText,
} from "./_llm_prompts.ts";
import {
  CRITIQUE_JSON_SCHEMA,
  type Refinement,
  REFINEMENT_JSON_SCHEMA,
  refinementSchema,
} from "./gemini_schema.ts";
import type {
  CreateContext,
  CritiqueRequest,
  CritiqueResult,
  ImageCritic,
  PromptRefiner,
  ProviderDescriptor,
  RefineRequest,
  RefineResult,
  TokenUsage,
} from "./provider.ts";

// The SDK's enum values, spelled out so that loading this module does not load the SDK.
const MEDIA_RESOLUTION_LOW = "MEDIA_RESOLUTION_LOW" as MediaResolution;
const THINKING_LOW = "LOW" as ThinkingLevel;
const PROVIDER = "gemini";
const log = getLogger(["retake", "gemini"]);

/** Default model for critique and refinement: the current vision-capable Flash. */
export const DEFAULT_GEMINI_MODEL = "gemini-3.8-flash";

/** Price of one model in USD per 1M tokens; output includes thinking tokens. */
export interface GeminiTokenPrice {
  input: number;
  output: number;
}

/**
 * Paid-tier prices in USD per 1M tokens as published in late 2026, for the day `date`.
 * `gemini-3.8-flash` is discounted until 2026-12-31, so the table depends on the date.
 *
 * @example
 * ```ts
 * import { defaultGeminiPrices } from "./gemini.ts";
 * const prices = defaultGeminiPrices(new Date("2027-02-01"));
 * if (prices["gemini-3.8-flash"]?.input !== 1.5) throw new Error("expected the 2027 price");
 * ```
 */
export function defaultGeminiPrices(date: Date = new Date()): Record<string, GeminiTokenPrice> {
  const discounted = date < new Date("2027-01-01T00:00:00Z");
  return {
    "gemini-3.8-flash": discounted ? { input: 0.75, output: 3.75 } : { input: 1.5, output: 7.5 },
    "gemini-3.5-flash-lite": { input: 0.3, output: 2.5 },
    "gemini-2.5-flash-lite": { input: 0.1, output: 0.4 },
    "gemini-2.5-flash": { input: 0.3, output: 2.5 },
  };
}

/** Options shared by {@linkcode createGeminiCritic} and {@linkcode createGeminiRefiner}. */
export interface GeminiOptions {
  /** Gemini API key; sent only as the `x-goog-api-key` header, never logged. */
  apiKey: string;
  /**
   * Origin (plus optional path prefix, no version segment) to send requests to, for proxies and
   * stand-in servers. @default {"https://generativelanguage.googleapis.com"}
   */
  baseUrl?: string | undefined;
  /** Model id. @default {"gemini-3.8-flash"} */
  model?: string | undefined;
  /** Deadline for one HTTP call, in ms; a call that runs over fails as retryable. @default {60000} */
  timeoutMs?: number | undefined;
  /**
   * USD per 1M input/output tokens by model id, merged over the built-in table; a model in
   * neither is recorded at cost 0 with a warning. @default {defaultGeminiPrices()}
   */
  prices?: Record<string, GeminiTokenPrice> | undefined;
  /**
   * Output token limit per call (thinking included); doubled once when an answer is cut off.
   * @default {4096}
   */
  maxOutputTokens?: number | undefined;
  /**
   * Longest side of the copy of the image sent to the critic, in px; at 384 or less an image
   * costs 258 tokens on Gemini 2.x, and Gemini 3.x is asked for low media resolution (280).
   * @default {384}
   */
  imageMaxSide?: number | undefined;
}

/**
 * Creates a critic that has Gemini score an image against its prompt and context.
 *
 * @example
 * ```ts ignore
 * const critic = createGeminiCritic({ apiKey: Deno.env.get("GEMINI_API_KEY")! });
 * const { critique, costUsd } = await critic.critique(request);
 * ```
 */
export function createGeminiCritic(options: GeminiOptions): ImageCritic {
  return _critic(_createClient(options));
}

/**
 * Creates a critic and a refiner on one SDK client (one option check, one price warning).
 *
 * @example
 * ```ts ignore
 * const { critic, refiner } = createGeminiProviders({ apiKey, model: "gemini-3.5-flash-lite" });
 * ```
 */
export function createGeminiProviders(
  options: GeminiOptions,
): { critic: ImageCritic; refiner: PromptRefiner } {
  const client = _createClient(options);
  return { critic: _critic(client), refiner: _refiner(client) };
}

function _critic(client: Client): ImageCritic {
  return {
    name: PROVIDER,
    // The same function for the critic and the refiner of one client, so it is checked once.
    check: client.check,
    estimateCostUsd: () => client.estimateCostUsd("critique"),
    async critique(request: CritiqueRequest): Promise<CritiqueResult> {
      const image = await prepareImage(
        request.imagePath,
        client.imageMaxSide,
        request.signal,
        PROVIDER,
      );
      const config: GenerateContentConfig = {
        systemInstruction: CRITIC_INSTRUCTION,
        responseMimeType: "application/json",
        responseJsonSchema: CRITIQUE_JSON_SCHEMA,
        temperature: 0.2,
        ...client.modelConfig,
        ...(client.generation >= 3 && { mediaResolution: MEDIA_RESOLUTION_LOW }),
      };
      const contents: Content[] = [{
        role: "user",
        parts: [
          { inlineData: { mimeType: "image/jpeg", data: image } },
          { text: critiqueText(request) },
        ],
      }];
      const answer = await client.generateJson(
        "critique",
        contents,
        config,
        critiqueSchema,
        request,
      );
      return { critique: answer.value, ...answer.meta };
    },
  };
}

/**
 * Creates a refiner that has Gemini rewrite a prompt from a critique and the earlier rounds.
 *
 * @example
 * ```ts ignore
 * const refiner = createGeminiRefiner({ apiKey: Deno.env.get("GEMINI_API_KEY")! });
 * const { prompt, changes } = await refiner.refine(request);
 * ```
 */
export function createGeminiRefiner(options: GeminiOptions): PromptRefiner {
  return _refiner(_createClient(options));
}

function _refiner(client: Client): PromptRefiner {
  return {
    name: PROVIDER,
    check: client.check,
    estimateCostUsd: () => client.estimateCostUsd("refine"),
    async refine(request: RefineRequest): Promise<RefineResult> {
      const config: GenerateContentConfig = {
        systemInstruction: REFINER_INSTRUCTION,
        responseMimeType: "application/json",
        responseJsonSchema: REFINEMENT_JSON_SCHEMA,
        temperature: 0.7,
        ...client.modelConfig,
      };
      const contents: Content[] = [{ role: "user", parts: [{ text: refineText(request) }] }];
      const answer = await client.generateJson(
        "refine",
        contents,
        config,
        refinementSchema,
        request,
      );
      const value: Refinement = answer.value;
      return { prompt: value.prompt, changes: value.changes, ...answer.meta };
    },
  };
}

/** What generation the model id belongs to (2 for `gemini-2.5-flash`), 0 when unknown. */
function _generation(model: string): number {
  const match = /^(?:models\/)?gemini-(\d+)/.exec(model);
  return match ? Number(match[1]) : 0;
}

/**
 * Thinking spends output tokens; a critique needs little of it. Gemini 3 takes a level (3.8 Flash
 * rejects MINIMAL), 2.5 Flash a budget where 0 turns it off.
 */
function _modelConfig(model: string): GenerateContentConfig {
  if (_generation(model) >= 3) return { thinkingConfig: { thinkingLevel: THINKING_LOW } };
  if (/^(?:models\/)?gemini-2\.5-flash/.test(model)) {
    return { thinkingConfig: { thinkingBudget: 0 } };
  }
  return {};
}

interface JsonAnswer<T> {
  value: T;
  meta: { model: string; costUsd: number; usage: TokenUsage; requestId?: string };
}

interface Client {
  generation: number;
  imageMaxSide: number;
  modelConfig: GenerateContentConfig;
  /** Checks the key and the model with `models.get`, which Gemini does not bill. */
  check(signal: AbortSignal): Promise<void>;
  /** The most one call of `operation` may cost, in USD; undefined when the price is unknown. */
  estimateCostUsd(operation: "critique" | "refine"): number | undefined;
  generateJson<T>(
    operation: string,
    contents: Content[],
    config: GenerateContentConfig,
    schema: z.ZodType<T>,
    request: { signal: AbortSignal },
  ): Promise<JsonAnswer<T>>;
}

const BLOCKING_FINISH = new Set([
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

/**
 * Text tokens one call sends at most, for the cost estimate a budget reserves: the
 * instructions, a prompt at its 4,000-character limit (twice, when refined) and its context;
 * a refinement adds the critique and a few earlier rounds.
 */
const CRITIQUE_TEXT_TOKENS = 4_000;
const REFINE_TEXT_TOKENS = 8_000;

/**
 * A 400 INVALID_ARGUMENT about one of these parts of the request is about a setting, not the
 * prompt or the image: every call would get it.
 */
const SETTING_ERROR =
  /generation_?config|thinking|response_?(?:mime_?type|schema|json_?schema)|media_?resolution|system_?instruction|max_?output_?tokens|temperature/i;

function _createClient(options: GeminiOptions): Client {
  const apiKey = options.apiKey;
  if (typeof apiKey !== "string" || apiKey.trim() === "") {
    throw new TypeError(
      "Cannot create the Gemini client as 'apiKey' is empty: set GEMINI_API_KEY, or choose another critic",
    );
  }
  const model = options.model ?? DEFAULT_GEMINI_MODEL;
  const timeoutMs = _positive("timeoutMs", options.timeoutMs ?? 60_000);
  const maxOutputTokens = _positive("maxOutputTokens", options.maxOutputTokens ?? 4096);
  const imageMaxSide = _positive("imageMaxSide", options.imageMaxSide ?? 384);
  const price = { ...defaultGeminiPrices(), ...options.prices }[model];
  if (price === undefined) {
    log.warn("No price known for Gemini model {model}: its calls are recorded at cost 0", {
      model,
    });
  }
  // Retries stay off (no retryOptions): the pipeline owns backoff and honours RetryInfo. The
  // SDK loads on the first call: a run that never calls Gemini never loads it.
  let sdk: Promise<GoogleGenAI> | undefined;
  const models = async () =>
    (await (sdk ??= import("@google/genai/web").then(({ GoogleGenAI }) =>
      new GoogleGenAI({
        apiKey,
        vertexai: false,
        apiVersion: "v1beta",
        httpOptions: {
          timeout: timeoutMs,
          ...(options.baseUrl !== undefined && { baseUrl: options.baseUrl }),
        },
      })
    ))).models;
  const redact = redactor([apiKey]);

  const classify = (error: unknown, signal: AbortSignal, operation: string): unknown => {
    if (signal.aborted) return signal.reason ?? error;
    if (error instanceof ProviderError) return error;
    const e = error as { name?: unknown; status?: unknown; message?: unknown };
    if (e?.name === "ApiError" && typeof e.status === "number") {
      return _classifyApiError(e.status, String(e.message ?? ""), model, redact, error);
    }
    if (e?.name === "AbortError" || e?.name === "TimeoutError") {
      return new ProviderError(`Gemini ${operation} timed out after ${timeoutMs} ms`, {
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
  };

  const generation = _generation(model);
  const costOf = (usage: TokenUsage) =>
    price === undefined
      ? 0
      : (usage.inputTokens * price.input + usage.outputTokens * price.output) / 1e6;

  return {
    generation,
    imageMaxSide,
    modelConfig: _modelConfig(model),
    async check(signal) {
      let info: Model;
      try {
        info = await (await models()).get({ model, config: { abortSignal: signal } });
      } catch (error) {
        const classified = classify(error, signal, "model check");
        if (!(classified instanceof ProviderError) || classified.fatal) throw classified;
        // Says nothing about the key or the model (a timeout, a 5xx): the run does not need it.
        log.warn("Could not check the Gemini key and model before the run: {reason}", {
          model,
          reason: classified.message,
        });
        return;
      }
      const actions = info.supportedActions;
      if (Array.isArray(actions) && actions.length > 0 && !actions.includes("generateContent")) {
        throw new ProviderError(
          `Cannot critique with Gemini model '${model}' as it does not support generateContent (it supports ${
            actions.join(", ")
          }): choose another --critic-model`,
          { provider: PROVIDER, retryable: false, fatal: true },
        );
      }
    },
    estimateCostUsd(operation) {
      if (price === undefined) return undefined;
      const input = (operation === "critique" ? CRITIQUE_TEXT_TOKENS : REFINE_TEXT_TOKENS) +
        (operation === "critique" ? _imageTokenBound(generation, imageMaxSide) : 0);
      // A call may send twice: once more with double the room after MAX_TOKENS or a bad answer.
      const tokens = {
        inputTokens: 2 * input,
        outputTokens: maxOutputTokens + 2 * maxOutputTokens,
      };
      return Math.round(costOf(tokens) * 1e6) / 1e6;
    },
    async generateJson(operation, contents, config, schema, { signal }) {
      const usage: TokenUsage = { inputTokens: 0, outputTokens: 0 };
      let requestId: string | undefined;
      let limit = maxOutputTokens;
      let problem = "";
      const withId = () => requestId !== undefined ? { requestId } : {};
      // What the answers so far were billed, for an error that ends the call: Gemini bills
      // every answer by its tokens, blocked, cut off or malformed ones included.
      const billed = () => {
        const costUsd = costOf(usage);
        return costUsd > 0 ? { costUsd } : {};
      };
      // Two attempts: a cut-off or malformed answer gets one more try, anything else is final.
      for (let attempt = 1; attempt <= 2; attempt++) {
        if (signal.aborted) throw signal.reason;
        const started = performance.now();
        let response: GenerateContentResponse;
        try {
          response = await (await models()).generateContent({
            model,
            contents,
            config: { ...config, maxOutputTokens: limit, abortSignal: signal },
          });
        } catch (error) {
          let classified = classify(error, signal, operation);
          if (classified instanceof ProviderError && costOf(usage) > 0) {
            classified = _withCost(classified, costOf(usage));
          }
          log.debug("Gemini {operation} with {model} failed in {durationMs} ms: {status}", {
            operation,
            model,
            attempt,
            durationMs: Math.round(performance.now() - started),
            status: classified instanceof ProviderError
              ? classified.status ?? classified.message
              : "aborted",
          });
          throw classified;
        }
        const callUsage = _usage(response);
        usage.inputTokens += callUsage.inputTokens;
        usage.outputTokens += callUsage.outputTokens;
        if (callUsage.imageTokens !== undefined) {
          usage.imageTokens = (usage.imageTokens ?? 0) + callUsage.imageTokens;
        }
        requestId = response.responseId ?? requestId;
        const candidate = response.candidates?.[0];
        const finish = candidate?.finishReason ?? (candidate ? "STOP" : undefined);
        const blockReason = response.promptFeedback?.blockReason;
        log.debug(
          "Gemini {operation} with {model}: {status} in {durationMs} ms, {inputTokens} in / {outputTokens} out tokens",
          {
            operation,
            model,
            attempt,
            status: blockReason ? `blocked ${blockReason}` : finish ?? "no candidates",
            durationMs: Math.round(performance.now() - started),
            inputTokens: callUsage.inputTokens,
            outputTokens: callUsage.outputTokens,
            imageTokens: callUsage.imageTokens,
            requestId: response.responseId,
          },
        );
        if (blockReason) {
          throw new ProviderError(
            `Gemini blocked the ${operation} request (${blockReason})` +
              (response.promptFeedback?.blockReasonMessage
                ? `: ${response.promptFeedback.blockReasonMessage}`
                : "; rephrase the prompt"),
            { provider: PROVIDER, retryable: false, ...withId(), ...billed() },
          );
        }
        if (finish && BLOCKING_FINISH.has(finish)) {
          throw new ProviderError(
            `Gemini stopped the ${operation} answer (finishReason ${finish}); rephrase the prompt`,
            { provider: PROVIDER, retryable: false, ...withId(), ...billed() },
          );
        }
        if (finish === "MAX_TOKENS") {
          problem =
            `the answer was cut off at ${limit} output tokens (finishReason MAX_TOKENS); raise maxOutputTokens`;
          limit *= 2;
          continue;
        }
        if (finish !== "STOP") {
          problem = finish === undefined
            ? "the answer had no candidates"
            : `the answer ended with finishReason ${finish}`;
          continue;
        }
        const checked = parseAnswer(response.text, schema);
        if (checked.ok) {
          return {
            value: checked.value,
            meta: { model, costUsd: costOf(usage), usage, ...withId() },
          };
        }
        problem = checked.problem;
      }
      throw new ProviderError(`Gemini gave no usable ${operation} in 2 attempts: ${problem}`, {
        provider: PROVIDER,
        retryable: false,
        ...withId(),
        ...billed(),
      });
    },
  };
}

function _positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `Cannot create the Gemini client as '${name}' must be a positive number: current value is ${value}`,
    );
  }
  return value;
}

function _usage(response: GenerateContentResponse): TokenUsage {
  const meta = response.usageMetadata;
  const image = meta?.promptTokensDetails?.find((d) => d.modality === "IMAGE")?.tokenCount;
  return {
    inputTokens: meta?.promptTokenCount ?? 0,
    outputTokens: (meta?.candidatesTokenCount ?? 0) + (meta?.thoughtsTokenCount ?? 0),
    ...(image !== undefined && { imageTokens: image }),
  };
}

/** `"53s"`, `"1.5s"`, `"0.250s"` → ms. */
function _durationMs(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const match = /^(\d+(?:\.\d+)?)s$/.exec(value.trim());
  return match ? Math.round(Number(match[1]) * 1000) : undefined;
}

interface ApiErrorBody {
  code?: number;
  message?: string;
  status?: string;
  details?: Array<Record<string, unknown>>;
}

function _classifyApiError(
  status: number,
  message: string,
  model: string,
  redact: (text: string) => string,
  cause: unknown,
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
  const reason = detail("google.rpc.ErrorInfo")?.reason;
  const rpc = body.status ? ` ${body.status}` : "";
  const apiMessage = redact(clip(String(body.message ?? "").trim(), 300)) || "(no message)";
  const base = { provider: PROVIDER, status, cause };

  if (reason === "API_KEY_INVALID" || /API key not valid/i.test(apiMessage)) {
    return new ProviderError(
      "Cannot use Gemini as it rejected the API key (API_KEY_INVALID): check GEMINI_API_KEY (create a key at aistudio.google.com/apikey)",
      { ...base, retryable: false, fatal: true },
    );
  }
  if (status === 401 || status === 403) {
    return new ProviderError(
      `Gemini denied access (HTTP ${status}${rpc}): ${apiMessage}; check that GEMINI_API_KEY belongs to a project with the Gemini API enabled`,
      { ...base, retryable: false, fatal: true },
    );
  }
  if (status === 429) {
    const retryAfterMs = _durationMs(detail("google.rpc.RetryInfo")?.retryDelay) ??
      _retryHintFromMessage(apiMessage);
    return new ProviderError(`Gemini rate limit reached (HTTP 429${rpc}): ${apiMessage}`, {
      ...base,
      retryable: true,
      ...(retryAfterMs !== undefined && { retryAfterMs }),
    });
  }
  if (status === 408 || status >= 500) {
    return new ProviderError(`Gemini is unavailable (HTTP ${status}${rpc}): ${apiMessage}`, {
      ...base,
      retryable: true,
    });
  }
  if (status === 404) {
    return new ProviderError(
      `Cannot use Gemini model '${model}' as Gemini could not find it (HTTP 404${rpc}): ${apiMessage}; check --critic-model (models are listed at ai.google.dev/gemini-api/docs/models)`,
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
 * The most tokens the critic's image can cost: Gemini 3 is asked for low media resolution
 * (280); Gemini 2 bills 258 per started 768 px tile, one tile at 384 px or less.
 */
function _imageTokenBound(generation: number, maxSide: number): number {
  if (generation >= 3) return 280;
  if (generation === 2) return maxSide <= 384 ? 258 : Math.ceil(maxSide / 768) ** 2 * 258;
  return 1120;
}

/** A copy of `error` that records what the failed call was billed (fields are read-only). */
function _withCost(error: ProviderError, costUsd: number): ProviderError {
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

/** Bare 429s sometimes only say "Please retry in 53.0s." in the message. */
function _retryHintFromMessage(message: string): number | undefined {
  const match = /retry in (\d+(?:\.\d+)?)\s*s/i.exec(message);
  return match ? Math.round(Number(match[1]) * 1000) : undefined;
}

/** The `gemini` section of the config file. */
const geminiSettings = z.strictObject({
  key: z.string().min(1).optional(),
  baseUrl: urlString.optional(),
  /** USD per 1M tokens, by model id. */
  prices: tokenPriceTable.optional(),
});

/** Gemini's settings, validated. */
export type GeminiSettings = z.output<typeof geminiSettings>;

/** Google's Gemini as a retake provider: the critic and the refiner. */
export const geminiProvider = {
  name: "gemini",
  title: "Gemini",
  summary: {
    critique: "`@google/genai`, image inline, structured output",
    refine: "`@google/genai`, structured output",
  },
  roles: ["critique", "refine"],
  schema: geminiSettings,
  env: [
    {
      names: ["GEMINI_API_KEY", "GOOGLE_API_KEY"],
      setting: "key",
      secret: true,
      description: "Gemini key",
    },
    {
      names: ["GEMINI_BASE_URL"],
      setting: "baseUrl",
      description: "the Gemini SDK's base URL",
    },
  ],
  models: Object.entries(defaultGeminiPrices()).map(([id, price]) => ({
    id,
    roles: ["critique", "refine"] as const,
    price: `$${price.input} / $${price.output} per 1M tokens in / out`,
  })),
  defaults: { critique: DEFAULT_GEMINI_MODEL, refine: DEFAULT_GEMINI_MODEL },
  available: (settings: GeminiSettings) => settings.key !== undefined,
  unavailable:
    "GEMINI_API_KEY is not set: export GEMINI_API_KEY (or GOOGLE_API_KEY), add it to .env or the config file, or run with --critic local",
  create({ settings, criticModel, timeoutMs }: CreateContext<GeminiSettings>) {
    // One client for both: one price warning, and one check before the run.
    return Promise.resolve(createGeminiProviders({
      apiKey: settings.key!,
      ...(settings.baseUrl !== undefined && { baseUrl: settings.baseUrl }),
      ...(criticModel !== undefined && { model: criticModel }),
      ...(settings.prices !== undefined && { prices: settings.prices }),
      timeoutMs,
    }));
  },
} as const satisfies ProviderDescriptor<GeminiSettings>;
