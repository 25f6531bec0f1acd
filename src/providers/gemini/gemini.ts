/**
 * Google's Gemini as a retake provider: critic and refiner, and image generator with Gemini's
 * image models (`gemini_image.ts`), all through the official `@google/genai` SDK on one shared
 * connection (`gemini_api.ts`). The critic sends a downscaled copy of the image with the prompt
 * and its context and asks for a critique as structured JSON; the refiner sends the critique and
 * earlier rounds and asks for the next prompt. Gemini 3 and later get no sampling settings
 * (`temperature`, `topP`, `topK`): they ignore them.
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
  MediaResolution,
  ThinkingLevel,
} from "@google/genai/web";
import { getLogger } from "@logtape/logtape";
import { z } from "zod";
import { urlString } from "../../config/schema.ts";
import { ProviderError } from "../../errors.ts";
import { timedFetch } from "../_http.ts";
import { parseAnswer } from "../_llm_answers.ts";
import {
  answerOf,
  askJson,
  type AttemptResult,
  type JsonAsker,
  type JsonCall,
  mostTokens,
  spentSoFar,
} from "../_json_call.ts";
import {
  type JsonAnswer,
  type JsonClient,
  type JsonQuestion,
  llmCritic,
  llmRefiner,
} from "../_llm_roles.ts";
import type { Rubric } from "../rubric.ts";
import {
  BLOCKING_FINISH,
  type ChosenModel,
  connectGemini,
  type GeminiConnection,
  type GeminiConnectionOptions,
  positiveOption,
  serviceMsOf,
  usageOf,
  withCost,
} from "./api.ts";
import { answeredInBatch } from "./batch.ts";
import { geminiImageGenerator, resolveGeminiImageModel } from "./image.ts";
import {
  DEFAULT_GEMINI_IMAGE_MODEL,
  DEFAULT_GEMINI_MODEL,
  defaultGeminiPrices,
  GEMINI_IMAGE_MODELS,
  GEMINI_MODEL_CHANGES,
  geminiGeneration,
  type GeminiTokenPrice,
  inputCost,
  priceOf,
} from "./models.ts";
import type {
  CreateContext,
  ImageCritic,
  ModelEntry,
  PromptRefiner,
  ProviderDescriptor,
  ProviderParts,
  TokenUsage,
} from "../provider.ts";
import { failedCall } from "../_http.ts";

export { createGeminiGenerator, type GeminiImageOptions } from "./image.ts";
export {
  DEFAULT_GEMINI_IMAGE_MODEL,
  DEFAULT_GEMINI_MODEL,
  defaultGeminiPrices,
  type GeminiTokenPrice,
} from "./models.ts";

// The SDK's enum values, spelled out so that loading this module does not load the SDK.
const MEDIA_RESOLUTION_LOW = "MEDIA_RESOLUTION_LOW" as MediaResolution;
const THINKING_LOW = "LOW" as ThinkingLevel;
const PROVIDER = "gemini";
const log = getLogger(["retake", "gemini"]);

/** Options shared by {@linkcode createGeminiCritic} and {@linkcode createGeminiRefiner}. */
export interface GeminiOptions extends GeminiConnectionOptions {
  /** The user's rubric: text for the critic's instructions, weights for its score. */
  rubric?: Rubric | undefined;
  /** Model id. @default {"gemini-3.8-flash"} */
  model?: string | undefined;
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
  return llmCritic(new GeminiJsonClient(connectGemini(options), options), options.rubric);
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
  const client = new GeminiJsonClient(connectGemini(options), options);
  return { critic: llmCritic(client, options.rubric), refiner: llmRefiner(client) };
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
  return llmRefiner(new GeminiJsonClient(connectGemini(options), options));
}

/** The model that answers `model`'s requests, where Gemini routes it to another one. */
function _answering(model: string): string {
  const change = GEMINI_MODEL_CHANGES[model.replace(/^models\//, "")];
  return change?.kind === "routed" && change.to !== undefined ? change.to : model;
}

/**
 * Thinking spends output tokens; a critique needs little of it. Gemini 3 takes a level (3.8 Flash
 * rejects MINIMAL), 2.5 Flash a budget where 0 turns it off.
 */
function _modelConfig(model: string): GenerateContentConfig {
  if (geminiGeneration(model) >= 3) return { thinkingConfig: { thinkingLevel: THINKING_LOW } };
  if (/^(?:models\/)?gemini-2\.5-flash/.test(model)) {
    return { thinkingConfig: { thinkingBudget: 0 } };
  }
  return {};
}

/**
 * Text tokens one call sends at most, for the cost estimate a budget reserves: the
 * instructions, a prompt at its 4,000-character limit (twice, when refined) and its context;
 * a refinement adds the critique and a few earlier rounds.
 */
const CRITIQUE_TEXT_TOKENS = 4_000;
const REFINE_TEXT_TOKENS = 8_000;

/**
 * One Gemini text model as a {@linkcode JsonClient} on a shared connection: the critic and the
 * refiner ask it for JSON.
 */
class GeminiJsonClient implements JsonClient {
  readonly provider = PROVIDER;
  readonly imageMaxSide: number;
  readonly #connection: GeminiConnection;
  readonly #model: string;
  readonly #chosen: ChosenModel;
  readonly #maxOutputTokens: number;
  readonly #prices: Record<string, GeminiTokenPrice>;
  readonly #price: GeminiTokenPrice | undefined;
  /** The answering model's generation (1, 2, 3…), which decides the request's fields. */
  readonly #generation: number;
  readonly #modelConfig: GenerateContentConfig;
  readonly #asker: JsonAsker;

  constructor(connection: GeminiConnection, options: GeminiOptions) {
    this.#connection = connection;
    const model = this.#model = options.model ?? DEFAULT_GEMINI_MODEL;
    this.#maxOutputTokens = positiveOption("maxOutputTokens", options.maxOutputTokens ?? 4096);
    this.imageMaxSide = positiveOption("imageMaxSide", options.imageMaxSide ?? 384);
    this.#prices = { ...defaultGeminiPrices(), ...options.prices };
    this.#price = priceOf(this.#prices, model);
    if (this.#price === undefined) {
      connection.warnAtStart(
        "No price known for Gemini model {model}: its calls are recorded at cost 0",
        { model },
      );
    }
    this.#chosen = { model, flag: "--critic-model" };
    this.#generation = geminiGeneration(_answering(model));
    this.#modelConfig = _modelConfig(_answering(model));
    this.#asker = {
      provider: PROVIDER,
      server: "Gemini",
      model,
      maxOutputTokens: this.#maxOutputTokens,
      attempt: (question, call, attempt) => this.#attempt(question, call, attempt),
    };
  }

  /** The free check of the model; shared (unbound) by the parts made on this client. */
  readonly check = async (signal: AbortSignal): Promise<void> => {
    await this.#connection.checkModel(this.#chosen, signal);
  };

  estimateCostUsd(operation: "critique" | "refine"): number | undefined {
    if (this.#price === undefined) return undefined;
    const input = (operation === "critique" ? CRITIQUE_TEXT_TOKENS : REFINE_TEXT_TOKENS) +
      (operation === "critique" ? _imageTokenBound(this.#generation, this.imageMaxSide) : 0);
    const tokens = mostTokens(input, this.#maxOutputTokens);
    // With --batch-api, reserved at the batch price.
    return Math.round(this.#costOf(tokens) * this.#connection.estimateShare * 1e6) / 1e6;
  }

  ask<T>(question: JsonQuestion<T>): Promise<JsonAnswer<T>> {
    return askJson(this.#asker, question);
  }

  /** One attempt: Gemini's half of {@linkcode askJson}. */
  async #attempt<T>(
    question: JsonQuestion<T>,
    call: JsonCall,
    attempt: number,
  ): Promise<AttemptResult<T>> {
    this.#connection.flushWarnings();
    const response = await this.#send(question as JsonQuestion<unknown>, call, attempt);
    return this.#read(question, response, call);
  }

  /** Billed at the rates of the model that answered, where Gemini routed the request. */
  #costOf(usage: TokenUsage, answeredBy?: string): number {
    const rates = (answeredBy !== undefined ? priceOf(this.#prices, answeredBy) : undefined) ??
      this.#price;
    return rates === undefined ? 0 : (inputCost(usage.inputTokens, usage.cachedTokens ?? 0, rates) +
      usage.outputTokens * rates.output) / 1e6;
  }

  /** The request's settings for `question`, its output limit aside. */
  #config(question: JsonQuestion<unknown>): GenerateContentConfig {
    const generation = this.#generation;
    return {
      systemInstruction: question.system,
      responseMimeType: "application/json",
      responseJsonSchema: question.schema,
      // Gemini 3.6 and later ignore sampling settings (and Vertex rejects them): only 1 and 2.
      ...(generation > 0 && generation < 3 && { temperature: question.temperature }),
      ...this.#modelConfig,
      ...(question.image !== undefined && generation >= 3 &&
        { mediaResolution: MEDIA_RESOLUTION_LOW }),
    };
  }

  /** Sends one attempt of `question`, adding what it used and cost to `call`. */
  async #send(
    question: JsonQuestion<unknown>,
    call: JsonCall,
    attempt: number,
  ): Promise<GenerateContentResponse> {
    const { operation, text, image, signal } = question;
    const model = this.#model;
    const contents: Content[] = [{
      role: "user",
      parts: [
        ...(image !== undefined ? [{ inlineData: { mimeType: "image/jpeg", data: image } }] : []),
        { text },
      ],
    }];
    const started = performance.now();
    const timed = timedFetch();
    let response: GenerateContentResponse;
    try {
      response = await this.#connection.generateContent({
        model,
        contents,
        config: {
          ...this.#config(question),
          maxOutputTokens: call.limit,
          abortSignal: signal,
          // Times this call's answer, for the adaptive limiter (a batch job's is not timed).
          httpOptions: { fetch: timed.fetch },
        },
      });
    } catch (error) {
      let classified = this.#connection.classify(error, signal, operation, this.#chosen);
      if (classified instanceof ProviderError && call.spent > 0) {
        classified = withCost(classified, call.spent);
      }
      log.debug("Gemini {operation} with {model} failed in {durationMs} ms: {status}", {
        operation,
        model,
        attempt,
        ...failedCall(started, classified),
      });
      throw classified;
    }
    const callUsage = this.#count(response, call);
    call.serviceMs = serviceMsOf(response, timed);
    const blockReason = response.promptFeedback?.blockReason;
    log.debug(
      "Gemini {operation} with {model}: {status} in {durationMs} ms, {inputTokens} in / {outputTokens} out tokens",
      {
        operation,
        model,
        modelVersion: call.modelVersion,
        attempt,
        status: blockReason ? `blocked ${blockReason}` : _finishOf(response) ?? "no candidates",
        durationMs: Math.round(performance.now() - started),
        serviceMs: call.serviceMs,
        inputTokens: callUsage.inputTokens,
        outputTokens: callUsage.outputTokens,
        imageTokens: callUsage.imageTokens,
        requestId: response.responseId,
      },
    );
    return response;
  }

  /** Adds `response`'s tokens, cost, model version and id to `call`; returns its own usage. */
  #count(response: GenerateContentResponse, call: JsonCall): TokenUsage {
    const callUsage = usageOf(response);
    const usage = call.usage;
    usage.inputTokens += callUsage.inputTokens;
    usage.outputTokens += callUsage.outputTokens;
    if (callUsage.cachedTokens !== undefined) {
      usage.cachedTokens = (usage.cachedTokens ?? 0) + callUsage.cachedTokens;
    }
    if (callUsage.imageTokens !== undefined) {
      usage.imageTokens = (usage.imageTokens ?? 0) + callUsage.imageTokens;
    }
    call.modelVersion = this.#connection.noteModelVersion(this.#model, response) ??
      call.modelVersion;
    call.spent += this.#costOf(callUsage, call.modelVersion) *
      this.#connection.priceShare(response);
    call.inBatch = answeredInBatch(response);
    call.requestId = response.responseId ?? call.requestId;
    return callUsage;
  }

  /**
   * The answer in `response`, or the problem a second attempt may fix (a cut-off answer gets
   * twice the room). Throws when Gemini blocked the question or stopped its answer: final.
   */
  #read<T>(
    question: JsonQuestion<T>,
    response: GenerateContentResponse,
    call: JsonCall,
  ): AttemptResult<T> {
    const { operation } = question;
    const finish = _finishOf(response);
    const blockReason = response.promptFeedback?.blockReason;
    if (blockReason) {
      throw new ProviderError(
        `Gemini blocked the ${operation} request (${blockReason})` +
          (response.promptFeedback?.blockReasonMessage
            ? `: ${response.promptFeedback.blockReasonMessage}`
            : "; rephrase the prompt"),
        { provider: PROVIDER, retryable: false, ...spentSoFar(call) },
      );
    }
    if (finish && BLOCKING_FINISH.has(finish)) {
      throw new ProviderError(
        `Gemini stopped the ${operation} answer (finishReason ${finish}); rephrase the prompt`,
        { provider: PROVIDER, retryable: false, ...spentSoFar(call) },
      );
    }
    if (finish === "MAX_TOKENS") {
      const problem =
        `the answer was cut off at ${call.limit} output tokens (finishReason MAX_TOKENS); raise maxOutputTokens`;
      call.limit *= 2;
      return { problem };
    }
    if (finish !== "STOP") {
      return {
        problem: finish === undefined
          ? "the answer had no candidates"
          : `the answer ended with finishReason ${finish}`,
      };
    }
    const checked = parseAnswer(response.text, question.reader);
    return answerOf(this.#asker, operation, checked, call);
  }
}

/** Why the answer ended; a candidate without a reason finished normally. */
function _finishOf(response: GenerateContentResponse): string | undefined {
  const candidate = response.candidates?.[0];
  return candidate?.finishReason ?? (candidate ? "STOP" : undefined);
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

/** The `gemini` section of the config file. */
const geminiSettings = z.strictObject({
  key: z.string().min(1).optional(),
  baseUrl: urlString.optional(),
  /**
   * USD per 1M tokens, by model id: `input`, `output` (text and thinking), and for image models
   * `image` (output image tokens).
   */
  prices: z.record(
    z.string(),
    z.strictObject({
      input: z.number().nonnegative(),
      output: z.number().nonnegative(),
      image: z.number().nonnegative().optional(),
      /** Input tokens read from Gemini's cache; a tenth of `input` when not given. */
      cached: z.number().nonnegative().optional(),
    }),
  ).optional(),
});

/** Gemini's settings, validated. */
export type GeminiSettings = z.output<typeof geminiSettings>;

/** The models `--help` and README list: the image models with their aliases, then the rest. */
function _catalog(): ModelEntry[] {
  const prices = defaultGeminiPrices();
  const images = GEMINI_IMAGE_MODELS.map((m): ModelEntry => {
    const price = prices[m.id];
    const perImage = price?.image !== undefined && m.tokens["1K"] !== undefined
      ? ` (about $${Math.round(m.tokens["1K"] * price.image / 1e2) / 1e4} per 1K image)`
      : "";
    return {
      id: m.id,
      aliases: m.aliases,
      roles: ["generate"],
      family: "nano-banana",
      ...(price?.image !== undefined &&
        { price: `$${price.image} per 1M image tokens${perImage}` }),
    };
  });
  const text = Object.entries(prices).filter(([, price]) => price.image === undefined).map((
    [id, price],
  ): ModelEntry => ({
    id,
    roles: ["critique", "refine"],
    price: `$${price.input} / $${price.output} per 1M tokens in / out`,
  }));
  return [...images, ...text];
}

/** Google's Gemini as a retake provider: image generation, critique and refinement. */
export const geminiProvider = {
  name: "gemini",
  title: "Gemini",
  summary: {
    generate: "`@google/genai` image models (Nano Banana), image inline in the answer",
    critique: "`@google/genai`, image inline, structured output",
    refine: "`@google/genai`, structured output",
  },
  roles: ["generate", "critique", "refine"],
  schema: geminiSettings,
  env: [
    {
      names: ["GEMINI_API_KEY", "GOOGLE_API_KEY"],
      setting: "key",
      secret: true,
      description: "Gemini key (an auth key, AQ.…, from aistudio.google.com/apikey)",
    },
    {
      names: ["GEMINI_BASE_URL"],
      setting: "baseUrl",
      description: "the Gemini SDK's base URL",
    },
  ],
  models: _catalog(),
  defaults: {
    generate: DEFAULT_GEMINI_IMAGE_MODEL,
    critique: DEFAULT_GEMINI_MODEL,
    refine: DEFAULT_GEMINI_MODEL,
  },
  available: (settings: GeminiSettings) => settings.key !== undefined,
  unavailable:
    "GEMINI_API_KEY is not set: export GEMINI_API_KEY (or GOOGLE_API_KEY), add it to .env or the config file, or choose another provider (--generator local, --critic local)",
  resolveModel: resolveGeminiImageModel,
  create(
    { settings, roles, models, size, criticModel, timeoutMs, rubric, batchApi }: CreateContext<
      GeminiSettings
    >,
  ) {
    // One connection for every part: one SDK client, one check before the run.
    const connection = connectGemini({
      apiKey: settings.key!,
      ...(settings.baseUrl !== undefined && { baseUrl: settings.baseUrl }),
      timeoutMs,
    });
    const checks: Array<(signal: AbortSignal) => Promise<void>> = [];
    const check = async (signal: AbortSignal) => {
      await Promise.all(checks.map((c) => c(signal)));
    };
    const parts: ProviderParts = {};
    // Every part's calls go through the connection, so one batch mode covers them all.
    if (batchApi !== undefined) parts.batch = connection.useBatchApi(batchApi);
    if (roles.has("critique") || roles.has("refine")) {
      const text = new GeminiJsonClient(connection, {
        apiKey: settings.key!,
        ...(criticModel !== undefined && { model: criticModel }),
        ...(settings.prices !== undefined && { prices: settings.prices }),
      });
      checks.push(text.check);
      if (roles.has("critique")) parts.critic = llmCritic(text, rubric, check);
      if (roles.has("refine")) parts.refiner = llmRefiner(text, check);
    }
    if (roles.has("generate")) {
      const generator = geminiImageGenerator(connection, {
        models: models.length > 0 ? models : [DEFAULT_GEMINI_IMAGE_MODEL],
        size,
        ...(settings.prices !== undefined && { prices: settings.prices }),
      });
      checks.push(generator.check!);
      parts.generator = { ...generator, check };
    }
    return Promise.resolve(parts);
  },
} as const satisfies ProviderDescriptor<GeminiSettings>;
