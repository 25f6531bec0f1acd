/**
 * An OpenAI-compatible critic and refiner, through the official `openai` SDK: OpenAI itself, or
 * any server speaking its Chat Completions protocol at `OPENAI_BASE_URL` (Ollama, vLLM, LM
 * Studio, OpenRouter). The critic sends a downscaled copy of the image as a data URL with the
 * prompt and its context and asks for a critique as structured JSON; the refiner sends the
 * critique and earlier rounds and asks for the next prompt. The instructions and texts are the
 * ones Gemini gets (`_llm_prompts.ts`), so the two judge alike.
 *
 * Transport failures are not retried here (the SDK's own retries are off): they are classified
 * as {@linkcode ProviderError} and the pipeline's backoff decides. Only answer-level failures a
 * second try can plausibly fix (a truncated answer, JSON that does not match the schema) are
 * tried once more inside a call.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type OpenAI from "openai";
import type {
  ChatCompletion,
  ChatCompletionCreateParamsNonStreaming,
} from "openai/resources/chat/completions";
import { z } from "zod";
import type { BatcherOptions } from "../../batch_api/batcher.ts";
import { ProviderError, StopRequested, withBilledCost } from "../../errors.ts";
import { tokenPriceTable, urlString } from "../../config/schema.ts";
import { redactor } from "../../util/redact.ts";
import {
  failedCall,
  parseBaseUrl,
  parseRetryAfter,
  positiveOption,
  serviceLatencyMs,
  waitFromMessage,
} from "../_http.ts";
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
import { clip } from "../_llm_prompts.ts";
import { answeredInBatch, OPENAI_BATCH_PRICE, OpenAIBatcher } from "./batch.ts";
import type { Rubric } from "../rubric.ts";
import type {
  CreateContext,
  ImageCritic,
  PromptRefiner,
  ProviderDescriptor,
  TokenUsage,
} from "../provider.ts";

const PROVIDER = "openai";
const log = getLogger(["retake", "openai"]);

/** Default model for critique and refinement: OpenAI's current small vision model. */
export const DEFAULT_OPENAI_MODEL = "gpt-5.4-mini";

/** OpenAI's API, where the SDK sends requests when no base URL is set. */
export const OPENAI_API_URL = "https://api.openai.com/v1";

/**
 * Sent as the bearer token to a server on this machine that needs no key (Ollama, LM Studio):
 * the SDK refuses to run without one, and this one is never a secret.
 */
export const NO_KEY = "retake-no-key";

/** Price of one model in USD per 1M tokens; output includes reasoning tokens. */
export interface OpenAITokenPrice {
  input: number;
  output: number;
}

/**
 * Standard-tier prices in USD per 1M tokens, as listed in 2026 (OpenAI's pricing page as quoted
 * by several independent price lists; the page itself was not reachable to confirm them).
 */
export const DEFAULT_OPENAI_PRICES: Readonly<Record<string, OpenAITokenPrice>> = {
  "gpt-5.4-mini": { input: 0.75, output: 4.5 },
  "gpt-5.4-nano": { input: 0.2, output: 1.25 },
  "gpt-5-mini": { input: 0.25, output: 2 },
  "gpt-5-nano": { input: 0.05, output: 0.4 },
  "gpt-4.1-mini": { input: 0.4, output: 1.6 },
  "gpt-4o-mini": { input: 0.15, output: 0.6 },
};

/** Options of {@linkcode createOpenAIProviders}. */
export interface OpenAIOptions {
  /** The user's rubric: text for the critic's instructions, weights for its score. */
  rubric?: Rubric | undefined;
  /**
   * API key, sent only as the bearer token, never logged; may be absent for a server on this
   * machine that needs none. @default {undefined}
   */
  apiKey?: string | undefined;
  /**
   * The API root, `/v1` included, e.g. `http://127.0.0.1:11434/v1` for Ollama.
   * @default {"https://api.openai.com/v1"}
   */
  baseUrl?: string | undefined;
  /** Model id as the server knows it. @default {"gpt-5.4-mini"} */
  model?: string | undefined;
  /** Deadline for one HTTP call, in ms; a call that runs over fails as retryable. @default {60000} */
  timeoutMs?: number | undefined;
  /**
   * USD per 1M input/output tokens by model id, merged over the built-in table. A model in
   * neither is recorded at cost 0 with a warning, except on a server on this machine, which
   * costs nothing. @default {DEFAULT_OPENAI_PRICES}
   */
  prices?: Record<string, OpenAITokenPrice> | undefined;
  /** Output token limit per call (reasoning included); doubled once when an answer is cut off. @default {4096} */
  maxOutputTokens?: number | undefined;
  /** Longest side of the copy of the image sent to the critic, in px. @default {384} */
  imageMaxSide?: number | undefined;
  /** Extra HTTP headers for every request (a proxy's or OpenRouter's). @default {{}} */
  headers?: Record<string, string> | undefined;
  /**
   * Whether the server runs on this machine and bills nothing (Ollama, LM Studio): a model
   * without a price then costs 0 without a warning, and the budget reserves 0 for it.
   * @default {whether baseUrl is a loopback URL}
   */
  local?: boolean | undefined;
  /**
   * `--batch-api`: the calls go through OpenAI's Batch API, at half the price, where the server
   * runs it (see `batchServer`); elsewhere at once, as the log says. @default {undefined}
   */
  batchApi?: BatcherOptions | undefined;
  /**
   * Whether the server at `baseUrl` runs OpenAI's Batch API and Files API (a proxy in front of
   * OpenAI). @default {whether baseUrl is api.openai.com}
   */
  batchServer?: boolean | undefined;
}

/**
 * Creates a critic and a refiner on one SDK client (one option check, one price warning, one
 * free check before the run).
 *
 * @example
 * ```ts ignore
 * const { critic, refiner } = createOpenAIProviders({
 *   baseUrl: "http://127.0.0.1:11434/v1",
 *   model: "qwen2.5vl",
 * });
 * const { critique, costUsd } = await critic.critique(request);
 * ```
 */
export function createOpenAIProviders(
  options: OpenAIOptions,
): { critic: ImageCritic; refiner: PromptRefiner; batch?: OpenAIBatcher } {
  const client = new OpenAIJsonClient(options);
  return {
    critic: llmCritic(client, options.rubric),
    refiner: llmRefiner(client),
    ...(client.batch !== undefined && { batch: client.batch }),
  };
}

/** Whether `url` points at this machine, where no network can read what is sent. */
export function isLoopbackUrl(url: string | undefined): boolean {
  if (url === undefined) return false;
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return false;
  }
  return host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Gemini's schemas in the form OpenAI's strict Structured Outputs accepts: every object closed
 * with `additionalProperties: false` and every property in `required` (strict mode requires
 * both; an optional one becomes nullable, and {@linkcode _withoutNulls} drops its null again),
 * and Gemini's own `propertyOrdering` dropped (OpenAI emits properties in declared order).
 */
export function strictJsonSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strictJsonSchema);
  if (schema === null || typeof schema !== "object") return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === "propertyOrdering") continue;
    out[key] = key === "properties"
      ? Object.fromEntries(
        Object.entries(value as object).map(([k, v]) => [k, strictJsonSchema(v)]),
      )
      : strictJsonSchema(value);
  }
  if (out.type === "object") {
    const properties = (out.properties ?? {}) as Record<string, Record<string, unknown>>;
    const required = new Set(Array.isArray(out.required) ? out.required as string[] : []);
    for (const [name, property] of Object.entries(properties)) {
      if (required.has(name)) continue;
      const type = property.type;
      properties[name] = {
        ...property,
        type: Array.isArray(type) ? [...new Set([...type, "null"])] : [type, "null"],
      };
    }
    out.properties = properties;
    out.required = Object.keys(properties);
    out.additionalProperties = false;
  }
  return out;
}

/** `value` without the null members strict mode sends for optional properties left out. */
function _withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(_withoutNulls);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, _withoutNulls(v)]),
  );
}

type JsonSchema = Record<string, unknown>;
/** Each schema `_llm_roles.ts` sends, in its strict form, made once. */
const STRICT = new Map<unknown, JsonSchema>();
const strictOf = (schema: unknown): JsonSchema => {
  let strict = STRICT.get(schema);
  if (strict === undefined) STRICT.set(schema, strict = strictJsonSchema(schema) as JsonSchema);
  return strict;
};

/**
 * Text tokens one call sends at most, for the cost estimate a budget reserves: the
 * instructions, a prompt at its 4,000-character limit (twice, when refined) and its context;
 * a refinement adds the critique and a few earlier rounds.
 */
const CRITIQUE_TEXT_TOKENS = 4_000;
const REFINE_TEXT_TOKENS = 8_000;

/**
 * The most one 384 px image costs at `detail: "low"`: 85 tokens on gpt-4o, a few hundred on the
 * patch-priced models (gpt-4.1, gpt-5), 2,833 on gpt-4o-mini, which multiplies image tokens.
 */
const IMAGE_TOKEN_BOUND = 3_000;

/** Request fields that come from the settings: a 400 about one of them fails every call alike. */
const SETTING_PARAM =
  /^(?:model|response_format|max_(?:completion_)?tokens|temperature|reasoning_effort)\b/;
const SETTING_MESSAGE =
  /response_format|json_schema|max_(?:completion_)?tokens|temperature|reasoning_effort|unsupported (?:parameter|value)|image_url is only supported|does not support (?:image|vision)|not a multimodal model|image input is not supported/i;

type Sdk = typeof import("openai");

/**
 * One OpenAI-compatible server and model as a {@linkcode JsonClient}: the critic and the
 * refiner ask it for JSON. It keeps the notes its construction and check found (logged with the
 * first paid call) and the SDK, loaded on the first call.
 */
class OpenAIJsonClient implements JsonClient {
  readonly provider = PROVIDER;
  readonly imageMaxSide: number;
  /** With `--batch-api`, where the server runs OpenAI's Batch API: the calls go in its batches. */
  readonly batch: OpenAIBatcher | undefined;
  readonly #model: string;
  readonly #baseUrl: string;
  readonly #apiKey: string | undefined;
  readonly #headers: Record<string, string> | undefined;
  /** The server is OpenAI's own: it takes OpenAI's newer request fields. */
  readonly #official: boolean;
  /** What OpenAI's reasoning models need; other servers get the widely supported older fields. */
  readonly #reasoning: boolean;
  readonly #timeoutMs: number;
  readonly #maxOutputTokens: number;
  readonly #price: OpenAITokenPrice | undefined;
  /** No price, on a server on this machine: its calls cost nothing. */
  readonly #free: boolean;
  /** How messages name the server, and what they say about the key. */
  readonly #names: ClassifyContext;
  /**
   * Notes for the log. The client is made and checked before the run's logging is set up: what
   * they find is kept and logged with the first paid call, before it is sent.
   */
  readonly #pending: Array<["info" | "warn", string, Record<string, unknown>]> = [];
  readonly #asker: JsonAsker;
  #loaded: Promise<{ sdk: Sdk; client: OpenAI }> | undefined;
  /** The SDK's module once loaded, whose error classes {@linkcode #classify} tells apart. */
  #sdk: Sdk | undefined;
  /** When each answer's headers came, after its request was sent, in ms (the SDK's fetch). */
  readonly #firstBytes = new WeakMap<Response, number>();

  constructor(options: OpenAIOptions) {
    this.#baseUrl = (options.baseUrl ?? OPENAI_API_URL).replace(/\/+$/, "");
    const url = parseBaseUrl("OpenAI client", this.#baseUrl);
    this.#official = url.hostname === "api.openai.com";
    // As people see it in messages and logs: no user name, password or query.
    const shown = `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
    const local = options.local ?? isLoopbackUrl(this.#baseUrl);
    this.#apiKey = options.apiKey?.trim() ? options.apiKey : undefined;
    if (this.#apiKey === undefined && !isLoopbackUrl(this.#baseUrl)) {
      throw new TypeError(
        `Cannot create the OpenAI client as 'apiKey' is empty and '${shown}' is not on this machine: set OPENAI_API_KEY, or choose another critic`,
      );
    }
    this.#headers = options.headers;
    const model = this.#model = options.model ?? DEFAULT_OPENAI_MODEL;
    this.#timeoutMs = positiveOption("OpenAI client", "timeoutMs", options.timeoutMs ?? 60_000);
    this.#maxOutputTokens = positiveOption(
      "OpenAI client",
      "maxOutputTokens",
      options.maxOutputTokens ?? 4096,
    );
    this.imageMaxSide = positiveOption(
      "OpenAI client",
      "imageMaxSide",
      options.imageMaxSide ?? 384,
    );
    this.#price = { ...DEFAULT_OPENAI_PRICES, ...options.prices }[model];
    // A server on this machine bills nothing; elsewhere an unknown price is a hole in the budget.
    this.#free = this.#price === undefined && local;
    this.#notePrice(shown);
    this.#names = _serverNames(
      model,
      shown,
      this.#official,
      redactor(
        this.#apiKey === undefined ? [] : [this.#apiKey],
      ),
    );
    this.#reasoning = /^(?:openai\/)?(?:o\d|gpt-5)/.test(model);
    this.batch = this.#batchOf(options, shown);
    this.#asker = {
      provider: PROVIDER,
      server: this.#names.Server,
      model,
      maxOutputTokens: this.#maxOutputTokens,
      attempt: (question, call, attempt) => this.#attempt(question, call, attempt),
    };
  }

  /** The batch mode, where `--batch-api` asks for it and the server runs OpenAI's Batch API. */
  #batchOf(options: OpenAIOptions, shown: string): OpenAIBatcher | undefined {
    if (options.batchApi === undefined) return undefined;
    if (!(options.batchServer ?? this.#official)) {
      this.#note(
        "warn",
        "OpenAI's Batch API runs at api.openai.com only: the calls to {server} go at once, at the interactive price",
        { server: shown },
      );
      return undefined;
    }
    const never = new AbortController().signal;
    return new OpenAIBatcher({
      client: () => this.#client(),
      toFile: async (bytes, name) => {
        await this.#client();
        return await this.#sdk!.toFile(bytes, name);
      },
      classify: (error, operation) => this.#classify(error, never, operation),
    }, options.batchApi);
  }

  /** The free check of the key and the model; shared (unbound) by the critic and the refiner. */
  readonly check = (signal: AbortSignal): Promise<void> => this.#check(signal);

  estimateCostUsd(operation: "critique" | "refine"): number | undefined {
    if (this.#free) return 0;
    if (this.#price === undefined) return undefined;
    const input = operation === "critique"
      ? CRITIQUE_TEXT_TOKENS + IMAGE_TOKEN_BOUND
      : REFINE_TEXT_TOKENS;
    const tokens = mostTokens(input, this.#maxOutputTokens);
    // With --batch-api, reserved at the batch price.
    const reserved = this.#costOf(tokens) * (this.batch !== undefined ? OPENAI_BATCH_PRICE : 1);
    return Math.round(reserved * 1e6) / 1e6;
  }

  ask<T>(question: JsonQuestion<T>): Promise<JsonAnswer<T>> {
    this.#flushNotes();
    return askJson(this.#asker, question);
  }

  /** One attempt: this server's half of {@linkcode askJson}. */
  async #attempt<T>(
    question: JsonQuestion<T>,
    call: JsonCall,
    attempt: number,
  ): Promise<AttemptResult<T>> {
    const response = await this.#send(question as JsonQuestion<unknown>, call, attempt);
    return this.#read(question, response, call);
  }

  /** Notes a model without a price: free on this machine, a hole in the budget elsewhere. */
  #notePrice(shown: string): void {
    const model = this.#model;
    if (this.#free) {
      this.#note(
        "info",
        "No price known for model {model} at {server}, a server on this machine: its calls are recorded at cost 0 (add openai.prices to the config file if it bills)",
        { model, server: shown },
      );
    } else if (this.#price === undefined) {
      this.#note(
        "warn",
        "No price known for model {model} at {server}: its calls are recorded at cost 0",
        { model, server: shown },
      );
    }
  }

  #note(level: "info" | "warn", message: string, properties: Record<string, unknown>): void {
    this.#pending.push([level, message, properties]);
  }

  #flushNotes(): void {
    for (const [level, message, properties] of this.#pending.splice(0)) {
      log[level](message, properties);
    }
  }

  /**
   * The SDK's client, the SDK loaded on the first call: a run that never calls OpenAI never
   * loads it. Every value it would read from the environment is given, so it reads none it was
   * not granted (only OPENAI_CUSTOM_HEADERS, which the descriptor declares).
   */
  async #client(): Promise<OpenAI> {
    this.#loaded ??= import("openai").then((sdk) => ({
      sdk,
      client: new sdk.OpenAI({
        apiKey: this.#apiKey ?? NO_KEY,
        adminAPIKey: null,
        organization: null,
        project: null,
        webhookSecret: null,
        baseURL: this.#baseUrl,
        timeout: this.#timeoutMs,
        // The pipeline owns backoff and honours Retry-After: every attempt is a real one.
        maxRetries: 0,
        logLevel: "off",
        ...(this.#headers !== undefined && { defaultHeaders: this.#headers }),
        // Times each answer's first byte, for the adaptive limiter.
        fetch: async (input: string | URL | Request, init?: RequestInit) => {
          const sent = performance.now();
          const response = await fetch(input, init);
          this.#firstBytes.set(response, performance.now() - sent);
          return response;
        },
      }),
    }));
    const { sdk, client } = await this.#loaded;
    this.#sdk = sdk;
    return client;
  }

  async #check(signal: AbortSignal): Promise<void> {
    const { model, server, Server } = this.#names;
    let ids: string[];
    try {
      const page = await (await this.#client()).models.list({ signal });
      ids = page.data.map((entry) => entry.id);
    } catch (error) {
      this.#checkFailed(error, signal);
      return;
    }
    if (ids.length === 0) {
      this.#note("warn", "{server} lists no models: model {model} is not checked before the run", {
        server: Server,
        model,
      });
      return;
    }
    // Ollama lists `llava:latest` and answers to `llava`.
    if (!ids.includes(model) && !ids.includes(`${model}:latest`)) {
      const listed = ids.slice(0, 12).join(", ") + (ids.length > 12 ? ", …" : "");
      throw new ProviderError(
        `Cannot critique with model '${model}' as ${server} does not list it: choose one it serves with --critic-model (it lists ${listed})`,
        { provider: PROVIDER, retryable: false, fatal: true },
      );
    }
  }

  /** Throws when the model list's failure says the run cannot work; otherwise notes it. */
  #checkFailed(error: unknown, signal: AbortSignal): void {
    const { model, Server } = this.#names;
    const classified = this.#classify(error, signal, "model check");
    if (!(classified instanceof ProviderError)) throw classified;
    if (classified.status === 404) {
      this.#note(
        "warn",
        "{server} has no model list (HTTP 404): the model is not checked before the run",
        { server: Server, model },
      );
      return;
    }
    // A 401 or 403 says the key is wrong: every paid call would be refused too.
    if (classified.status === 401 || classified.status === 403 || classified.fatal) {
      throw classified;
    }
    // Says nothing about the key or the model (a timeout, a 5xx): the run does not need it.
    this.#note("warn", "Could not check the OpenAI key and model before the run: {reason}", {
      model,
      reason: classified.message,
    });
  }

  /** A failed call as the pipeline acts on it; an abort stays the abort's reason. */
  #classify(error: unknown, signal: AbortSignal, operation: string): unknown {
    if (signal.aborted) return signal.reason ?? error;
    // A batch wait ended by Ctrl-C: the prompt stops as interrupted, not failed.
    if (error instanceof ProviderError || error instanceof StopRequested) return error;
    const { server, redact } = this.#names;
    const sdk = this.#sdk;
    if (sdk !== undefined && error instanceof sdk.APIConnectionTimeoutError) {
      return new ProviderError(`OpenAI ${operation} timed out after ${this.#timeoutMs} ms`, {
        provider: PROVIDER,
        retryable: true,
        cause: error,
      });
    }
    if (sdk !== undefined && error instanceof sdk.APIConnectionError) {
      const cause = error.cause instanceof Error ? `: ${redact(error.cause.message)}` : "";
      return new ProviderError(
        `Cannot reach ${server} for ${operation}${cause}; check the network or OPENAI_BASE_URL`,
        { provider: PROVIDER, retryable: true, cause: error },
      );
    }
    if (sdk !== undefined && error instanceof sdk.APIError && typeof error.status === "number") {
      return _classifyApiError(error, this.#names);
    }
    return new ProviderError(
      `OpenAI ${operation} failed: ${
        redact(error instanceof Error ? error.message : String(error))
      }`,
      { provider: PROVIDER, retryable: false, cause: error },
    );
  }

  #costOf(usage: TokenUsage): number {
    const price = this.#price;
    return price === undefined
      ? 0
      : (usage.inputTokens * price.input + usage.outputTokens * price.output) / 1e6;
  }

  /** Sends one attempt of `question`, adding what it used to `call`. */
  async #send(
    question: JsonQuestion<unknown>,
    call: JsonCall,
    attempt: number,
  ): Promise<ChatCompletion & { _request_id?: string | null }> {
    const { operation, signal } = question;
    const model = this.#model;
    const started = performance.now();
    let response: ChatCompletion & { _request_id?: string | null };
    try {
      const request = this.#body(question, call.limit);
      if (this.batch?.active) {
        response = await this.batch.call({ body: request, signal });
        call.serviceMs = undefined;
      } else {
        const answer = await (await this.#client()).chat.completions.create(request, { signal })
          .withResponse();
        response = answer.data;
        // The server's own time where it says (OpenAI's `openai-processing-ms`), else the
        // first byte's.
        const processing = answer.response.headers.get("openai-processing-ms")?.trim();
        call.serviceMs = serviceLatencyMs(
          processing ? Number(processing) : undefined,
          this.#firstBytes.get(answer.response),
        );
      }
    } catch (error) {
      const classified = this.#classify(error, signal, operation);
      log.debug("OpenAI {operation} with {model} failed in {durationMs} ms: {status}", {
        operation,
        model,
        attempt,
        ...failedCall(started, classified),
      });
      throw classified instanceof ProviderError
        ? withBilledCost(classified, call.spent)
        : classified;
    }
    const usage = {
      inputTokens: response.usage?.prompt_tokens ?? 0,
      outputTokens: response.usage?.completion_tokens ?? 0,
    };
    call.usage.inputTokens += usage.inputTokens;
    call.usage.outputTokens += usage.outputTokens;
    call.inBatch = answeredInBatch(response);
    call.spent += this.#costOf(usage) * (call.inBatch ? OPENAI_BATCH_PRICE : 1);
    call.requestId = response._request_id ?? response.id ?? call.requestId;
    // OpenAI names the snapshot that answered (`gpt-4o-mini-2024-07-18`).
    if (typeof response.model === "string" && response.model !== "" && response.model !== model) {
      call.modelVersion = response.model;
    }
    log.debug(
      "OpenAI {operation} with {model}: {status} in {durationMs} ms, {inputTokens} in / {outputTokens} out tokens",
      {
        operation,
        model,
        attempt,
        status: response.choices?.[0]?.finish_reason ?? "no choices",
        durationMs: Math.round(performance.now() - started),
        serviceMs: call.serviceMs,
        inputTokens: response.usage?.prompt_tokens,
        outputTokens: response.usage?.completion_tokens,
        requestId: call.requestId,
      },
    );
    return response;
  }

  /**
   * The answer in `response`, or the problem a second attempt may fix (a cut-off answer gets
   * twice the room). Throws when the server refused or filtered the question: final.
   */
  #read<T>(
    question: JsonQuestion<T>,
    response: ChatCompletion,
    call: JsonCall,
  ): AttemptResult<T> {
    const { operation } = question;
    const { Server } = this.#names;
    const choice = response.choices?.[0];
    const finish = choice?.finish_reason ?? undefined;
    const refusal = choice?.message?.refusal;
    if (typeof refusal === "string" && refusal !== "") {
      throw new ProviderError(
        `${Server} refused the ${operation}: ${clip(refusal, 300)}; rephrase the prompt`,
        { provider: PROVIDER, retryable: false, ...spentSoFar(call) },
      );
    }
    if (finish === "content_filter") {
      throw new ProviderError(
        `${Server} stopped the ${operation} answer (finish_reason content_filter); rephrase the prompt`,
        { provider: PROVIDER, retryable: false, ...spentSoFar(call) },
      );
    }
    if (finish === "length") {
      const problem =
        `the answer was cut off at ${call.limit} output tokens (finish_reason length); raise maxOutputTokens or choose a model that thinks less`;
      call.limit *= 2;
      return { problem };
    }
    if (choice === undefined) return { problem: "the answer had no choices" };
    if (finish !== "stop") {
      return { problem: `the answer ended with finish_reason ${String(finish)}` };
    }
    const checked = parseAnswer(
      choice.message?.content,
      (data, note) => question.reader(_withoutNulls(data), note),
    );
    return answerOf(this.#asker, operation, checked, call);
  }

  /** The Chat Completions request for `question`, with room for `limit` output tokens. */
  #body(question: JsonQuestion<unknown>, limit: number): ChatCompletionCreateParamsNonStreaming {
    return {
      model: this.#model,
      messages: [
        { role: "system", content: question.system },
        {
          role: "user",
          content: question.image === undefined ? question.text : [
            // The copy is already small: "low" keeps OpenAI's tile-priced models at their minimum.
            {
              type: "image_url",
              image_url: { url: `data:image/jpeg;base64,${question.image}`, detail: "low" },
            },
            { type: "text", text: question.text },
          ],
        },
      ],
      response_format: {
        type: "json_schema",
        json_schema: { name: question.name, schema: strictOf(question.schema), strict: true },
      },
      ...(this.#official ? { max_completion_tokens: limit } : { max_tokens: limit }),
      // Reasoning models take only the default temperature, and spend output tokens thinking.
      ...(this.#reasoning ? {} : { temperature: question.temperature }),
      ...(this.#reasoning && this.#official && { reasoning_effort: "low" as const }),
    };
  }
}

/** How messages name the server at `shown`, and what they say to check about the key. */
function _serverNames(
  model: string,
  shown: string,
  official: boolean,
  redact: (text: string) => string,
): ClassifyContext {
  const server = official ? "OpenAI" : `the server at ${shown}`;
  return {
    model,
    server,
    Server: official ? "OpenAI" : `The server at ${shown}`,
    keyHint: official
      ? "check OPENAI_API_KEY (create a key at platform.openai.com/api-keys)"
      : `check OPENAI_API_KEY: it must be a key ${server} accepts (for OpenAI itself, create one at platform.openai.com/api-keys)`,
    redact,
  };
}

interface ClassifyContext {
  model: string;
  /** `OpenAI` or `the server at …`, in a sentence. */
  server: string;
  /** The same, at the start of one. */
  Server: string;
  keyHint: string;
  redact: (text: string) => string;
}

/** An HTTP error answer of the server's, as {@linkcode _classifyApiError} reads it. */
interface ApiErrorAnswer {
  status: number;
  code: string | undefined;
  /** The server's message, clipped and redacted. */
  apiMessage: string;
  /** `HTTP <status> <code>`, for the message. */
  label: string;
  /** The fields every error for this answer carries. */
  base: { provider: string; status: number; cause: unknown; requestId?: string };
}

function _classifyApiError(
  error: InstanceType<Sdk["APIError"]>,
  context: ClassifyContext,
): ProviderError {
  const status = error.status as number;
  const body = (error.error ?? {}) as { message?: unknown };
  const code = typeof error.code === "string" ? error.code : undefined;
  const answer: ApiErrorAnswer = {
    status,
    code,
    apiMessage: context.redact(clip(String(body.message ?? "").trim(), 300)) || "(no message)",
    label: `HTTP ${status}${code ? ` ${code}` : ""}`,
    base: {
      provider: PROVIDER,
      status,
      cause: error,
      ...(typeof error.requestID === "string" && { requestId: error.requestID }),
    },
  };
  if (status === 429 || status === 408 || status === 409 || status >= 500) {
    const quota = _quotaError(answer, context);
    if (quota) return quota;
    // OpenAI states the wait in the message ("Please try again in 114h18m0s") as often as in a
    // header; the header wins where both are sent.
    const retryAfterMs = _retryAfterMs(error.headers) ??
      (status === 429 ? waitFromMessage(String(body.message ?? "")) : undefined);
    return new ProviderError(
      status === 429
        ? `${context.Server} rate limit reached (${answer.label}): ${answer.apiMessage}`
        : `${context.Server} is unavailable (${answer.label}): ${answer.apiMessage}`,
      { ...answer.base, retryable: true, ...(retryAfterMs !== undefined && { retryAfterMs }) },
    );
  }
  const param = typeof error.param === "string" ? error.param : "";
  return _refusalError(answer, param, context);
}

/** A 429 that is no rate limit: the account has no quota left, which waiting does not fix. */
function _quotaError(
  { status, code, apiMessage, label, base }: ApiErrorAnswer,
  { Server }: ClassifyContext,
): ProviderError | undefined {
  if (status !== 429 || code !== "insufficient_quota") return undefined;
  return new ProviderError(
    `${Server} has no quota left (${label}): ${apiMessage}; add credit to the account, or choose another critic`,
    { ...base, retryable: false, fatal: true },
  );
}

/** A 4xx the same request would get again: fatal when every call would get it alike. */
function _refusalError(
  { status, apiMessage, label, base }: ApiErrorAnswer,
  param: string,
  { model, server, Server, keyHint }: ClassifyContext,
): ProviderError {
  if (status === 401) {
    return new ProviderError(
      `Cannot use ${server} as it rejected the API key (${label}): ${keyHint}`,
      { ...base, retryable: false, fatal: true },
    );
  }
  if (status === 403) {
    return new ProviderError(
      `${Server} denied access (${label}): ${apiMessage}; ${keyHint}, and that it may use model '${model}'`,
      { ...base, retryable: false, fatal: true },
    );
  }
  if (status === 404) {
    return new ProviderError(
      `Cannot use model '${model}' as ${server} could not find it (${label}): ${apiMessage}; check --critic-model, and that OPENAI_BASE_URL ends in the API root (e.g. /v1)`,
      { ...base, retryable: false, fatal: true },
    );
  }
  // Every call would get the same answer when the request's settings, not its prompt or image,
  // are what the server refuses.
  const setting = status === 400 && (SETTING_PARAM.test(param) || SETTING_MESSAGE.test(apiMessage));
  return new ProviderError(
    `${Server} refused the request (${label}): ${apiMessage}${
      setting ? `; every call with model '${model}' would fail alike, so the run stops` : ""
    }`,
    { ...base, retryable: false, fatal: setting },
  );
}

/** `retry-after-ms`, or `retry-after` in seconds or as an HTTP date. */
function _retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = Number(headers?.get("retry-after-ms") ?? NaN);
  if (Number.isFinite(ms) && ms >= 0) return Math.round(ms);
  return parseRetryAfter(headers?.get("retry-after"));
}

/**
 * `OPENAI_CUSTOM_HEADERS` as the SDK reads it: one `Name: value` a line. The SDK reads the
 * variable itself; this turns the same setting from the config file into headers.
 */
export function parseHeaders(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined) return undefined;
  const headers: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** The `openai` section of the config file. */
const openaiSettings = z.strictObject({
  key: z.string().min(1).optional(),
  baseUrl: urlString.optional(),
  /** Extra request headers, one `Name: value` a line. */
  headers: z.string().optional(),
  /** USD per 1M tokens, by model id. */
  prices: tokenPriceTable.optional(),
  /**
   * Whether the server at `baseUrl` runs OpenAI's Batch API (`--batch-api`), as a proxy in
   * front of OpenAI may; unset, only api.openai.com does.
   */
  batchApi: z.boolean().optional(),
});

/** The OpenAI provider's settings, validated. */
export type OpenAISettings = z.output<typeof openaiSettings>;

/** OpenAI, or any server speaking its API, as a retake provider: the critic and the refiner. */
export const openaiProvider = {
  name: "openai",
  title: "OpenAI-compatible",
  summary: {
    critique:
      "`openai` SDK: OpenAI, Ollama, vLLM, LM Studio, OpenRouter; image as a data URL, structured output",
    refine: "`openai` SDK, structured output",
  },
  roles: ["critique", "refine"],
  schema: openaiSettings,
  env: [
    {
      names: ["OPENAI_API_KEY"],
      setting: "key",
      secret: true,
      description: "OpenAI key (or the key of the server at OPENAI_BASE_URL)",
    },
    {
      names: ["OPENAI_BASE_URL"],
      setting: "baseUrl",
      description:
        "an OpenAI-compatible API root, e.g. http://127.0.0.1:11434/v1 for Ollama (no key needed on this machine)",
    },
    {
      names: ["OPENAI_CUSTOM_HEADERS"],
      setting: "headers",
      // Proxies take their own credentials in a header.
      secret: true,
      description: "extra request headers for the OpenAI SDK, one 'Name: value' a line",
    },
  ],
  models: Object.entries(DEFAULT_OPENAI_PRICES).map(([id, price]) => ({
    id,
    roles: ["critique", "refine"] as const,
    price: `$${price.input} / $${price.output} per 1M tokens in / out`,
  })),
  defaults: { critique: DEFAULT_OPENAI_MODEL, refine: DEFAULT_OPENAI_MODEL },
  // People set OPENAI_API_KEY for other tools: retake spends on it only with --critic openai.
  auto: false,
  available: (settings: OpenAISettings) =>
    settings.key !== undefined || isLoopbackUrl(settings.baseUrl),
  unavailable:
    "OPENAI_API_KEY is not set: export OPENAI_API_KEY (create one at platform.openai.com/api-keys), or point OPENAI_BASE_URL at a server on this machine such as Ollama (http://127.0.0.1:11434/v1), or run with --critic local",
  create({ settings, criticModel, timeoutMs, rubric, batchApi }: CreateContext<OpenAISettings>) {
    const headers = parseHeaders(settings.headers);
    // One client for both: one price warning, and one check before the run.
    return Promise.resolve(createOpenAIProviders({
      apiKey: settings.key,
      baseUrl: settings.baseUrl,
      model: criticModel,
      prices: settings.prices,
      timeoutMs,
      ...(headers !== undefined && { headers }),
      ...(rubric !== undefined && { rubric }),
      batchApi,
      batchServer: settings.batchApi,
    }));
  },
} as const satisfies ProviderDescriptor<OpenAISettings>;
