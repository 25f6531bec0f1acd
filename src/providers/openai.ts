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
import type { BatcherOptions } from "../batch_api/batcher.ts";
import { ProviderError, withBilledCost } from "../errors.ts";
import { StopRequested } from "../pipeline.ts";
import { tokenPriceTable, urlString } from "../schema.ts";
import { redactor } from "../redact.ts";
import { parseBaseUrl, parseRetryAfter, positiveOption, waitFromMessage } from "./_http.ts";
import { parseAnswer } from "./_llm_answers.ts";
import { type JsonClient, type JsonQuestion, llmCritic, llmRefiner } from "./_llm_roles.ts";
import { clip } from "./_llm_prompts.ts";
import { answeredInBatch, OPENAI_BATCH_PRICE, OpenAIBatcher } from "./openai_batch.ts";
import type { Rubric } from "../rubric.ts";
import type {
  CreateContext,
  ImageCritic,
  PromptRefiner,
  ProviderDescriptor,
  TokenUsage,
} from "./provider.ts";

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
  const client = _createClient(options);
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

function _createClient(options: OpenAIOptions): JsonClient & { batch?: OpenAIBatcher } {
  const baseUrl = (options.baseUrl ?? OPENAI_API_URL).replace(/\/+$/, "");
  const url = parseBaseUrl("OpenAI client", baseUrl);
  const official = url.hostname === "api.openai.com";
  // As people see it in messages and logs: no user name, password or query.
  const shown = `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
  const local = options.local ?? isLoopbackUrl(baseUrl);
  const apiKey = options.apiKey?.trim() ? options.apiKey : undefined;
  if (apiKey === undefined && !isLoopbackUrl(baseUrl)) {
    throw new TypeError(
      `Cannot create the OpenAI client as 'apiKey' is empty and '${shown}' is not on this machine: set OPENAI_API_KEY, or choose another critic`,
    );
  }
  const model = options.model ?? DEFAULT_OPENAI_MODEL;
  const timeoutMs = positiveOption("OpenAI client", "timeoutMs", options.timeoutMs ?? 60_000);
  const maxOutputTokens = positiveOption(
    "OpenAI client",
    "maxOutputTokens",
    options.maxOutputTokens ?? 4096,
  );
  const imageMaxSide = positiveOption("OpenAI client", "imageMaxSide", options.imageMaxSide ?? 384);
  const price = { ...DEFAULT_OPENAI_PRICES, ...options.prices }[model];
  // The client is made and checked before the run's logging is set up: what they find is kept
  // and logged with the first paid call, before it is sent.
  const pending: Array<["info" | "warn", string, Record<string, unknown>]> = [];
  const later = {
    info: (message: string, properties: Record<string, unknown>) =>
      void pending.push(["info", message, properties]),
    warn: (message: string, properties: Record<string, unknown>) =>
      void pending.push(["warn", message, properties]),
  };
  const flushWarnings = () => {
    for (const [level, message, properties] of pending.splice(0)) log[level](message, properties);
  };
  // A server on this machine bills nothing; elsewhere an unknown price is a hole in the budget.
  const free = price === undefined && local;
  if (free) {
    later.info(
      "No price known for model {model} at {server}, a server on this machine: its calls are recorded at cost 0 (add openai.prices to the config file if it bills)",
      { model, server: shown },
    );
  } else if (price === undefined) {
    later.warn("No price known for model {model} at {server}: its calls are recorded at cost 0", {
      model,
      server: shown,
    });
  }
  const server = official ? "OpenAI" : `the server at ${shown}`;
  const Server = official ? "OpenAI" : `The server at ${shown}`;
  const keyHint = official
    ? "check OPENAI_API_KEY (create a key at platform.openai.com/api-keys)"
    : `check OPENAI_API_KEY: it must be a key ${server} accepts (for OpenAI itself, create one at platform.openai.com/api-keys)`;
  // What OpenAI's reasoning models need; other servers get the widely supported older fields.
  const reasoning = /^(?:openai\/)?(?:o\d|gpt-5)/.test(model);
  const redact = redactor(apiKey === undefined ? [] : [apiKey]);

  // The SDK loads on the first call: a run that never calls OpenAI never loads it. Every value
  // it would read from the environment is given, so it reads none it was not granted (only
  // OPENAI_CUSTOM_HEADERS, which the descriptor declares).
  let loaded: Promise<{ sdk: Sdk; client: OpenAI }> | undefined;
  const load = () =>
    loaded ??= import("openai").then((sdk) => ({
      sdk,
      client: new sdk.OpenAI({
        apiKey: apiKey ?? NO_KEY,
        adminAPIKey: null,
        organization: null,
        project: null,
        webhookSecret: null,
        baseURL: baseUrl,
        timeout: timeoutMs,
        // The pipeline owns backoff and honours Retry-After: every attempt is a real one.
        maxRetries: 0,
        logLevel: "off",
        ...(options.headers !== undefined && { defaultHeaders: options.headers }),
      }),
    }));
  let sdkModule: Sdk | undefined;
  const client = async () => {
    const { sdk, client } = await load();
    sdkModule = sdk;
    return client;
  };

  const classify = (error: unknown, signal: AbortSignal, operation: string): unknown => {
    if (signal.aborted) return signal.reason ?? error;
    // A batch wait ended by Ctrl-C: the prompt stops as interrupted, not failed.
    if (error instanceof ProviderError || error instanceof StopRequested) return error;
    const sdk = sdkModule;
    if (sdk !== undefined && error instanceof sdk.APIConnectionTimeoutError) {
      return new ProviderError(`OpenAI ${operation} timed out after ${timeoutMs} ms`, {
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
      return _classifyApiError(error, { model, server, Server, keyHint, redact });
    }
    return new ProviderError(
      `OpenAI ${operation} failed: ${
        redact(error instanceof Error ? error.message : String(error))
      }`,
      { provider: PROVIDER, retryable: false, cause: error },
    );
  };

  // With --batch-api, the calls go in OpenAI's batches where the server runs them.
  let batch: OpenAIBatcher | undefined;
  if (options.batchApi !== undefined && (options.batchServer ?? official)) {
    const never = new AbortController().signal;
    batch = new OpenAIBatcher({
      client,
      toFile: async (bytes, name) => (await load()).sdk.toFile(bytes, name),
      classify: (error, operation) => classify(error, never, operation),
    }, options.batchApi);
  } else if (options.batchApi !== undefined) {
    later.warn(
      "OpenAI's Batch API runs at api.openai.com only: the calls to {server} go at once, at the interactive price",
      { server: shown },
    );
  }
  const share = (response: ChatCompletion) => answeredInBatch(response) ? OPENAI_BATCH_PRICE : 1;

  const costOf = (usage: TokenUsage) =>
    price === undefined
      ? 0
      : (usage.inputTokens * price.input + usage.outputTokens * price.output) / 1e6;

  const body = (
    question: JsonQuestion<unknown>,
    limit: number,
  ): ChatCompletionCreateParamsNonStreaming => ({
    model,
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
    ...(official ? { max_completion_tokens: limit } : { max_tokens: limit }),
    // Reasoning models take only the default temperature, and spend output tokens thinking.
    ...(reasoning ? {} : { temperature: question.temperature }),
    ...(reasoning && official && { reasoning_effort: "low" as const }),
  });

  return {
    provider: PROVIDER,
    imageMaxSide,
    ...(batch !== undefined && { batch }),
    async check(signal) {
      let ids: string[];
      try {
        const page = await (await client()).models.list({ signal });
        ids = page.data.map((entry) => entry.id);
      } catch (error) {
        const classified = classify(error, signal, "model check");
        if (!(classified instanceof ProviderError)) throw classified;
        if (classified.status === 404) {
          later.warn(
            "{server} has no model list (HTTP 404): the model is not checked before the run",
            {
              server: Server,
              model,
            },
          );
          return;
        }
        // A 401 or 403 says the key is wrong: every paid call would be refused too.
        if (classified.status === 401 || classified.status === 403 || classified.fatal) {
          throw classified;
        }
        // Says nothing about the key or the model (a timeout, a 5xx): the run does not need it.
        later.warn("Could not check the OpenAI key and model before the run: {reason}", {
          model,
          reason: classified.message,
        });
        return;
      }
      if (ids.length === 0) {
        later.warn("{server} lists no models: model {model} is not checked before the run", {
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
    },
    estimateCostUsd(operation) {
      if (free) return 0;
      if (price === undefined) return undefined;
      const input = operation === "critique"
        ? CRITIQUE_TEXT_TOKENS + IMAGE_TOKEN_BOUND
        : REFINE_TEXT_TOKENS;
      // A call may send twice: once more with double the room after a cut-off or bad answer.
      const tokens = {
        inputTokens: 2 * input,
        outputTokens: maxOutputTokens + 2 * maxOutputTokens,
      };
      // With --batch-api, reserved at the batch price.
      const reserved = costOf(tokens) * (batch !== undefined ? OPENAI_BATCH_PRICE : 1);
      return Math.round(reserved * 1e6) / 1e6;
    },
    async ask<T>(question: JsonQuestion<T>) {
      const { operation, reader, signal } = question;
      flushWarnings();
      const usage: TokenUsage = { inputTokens: 0, outputTokens: 0 };
      let requestId: string | undefined;
      let modelVersion: string | undefined;
      let limit = maxOutputTokens;
      let problem = "";
      let spent = 0;
      let inBatch = false;
      const withId = () => requestId !== undefined ? { requestId } : {};
      // What the answers so far were billed, for an error that ends the call: every answer is
      // billed by its tokens, cut-off, filtered or malformed ones included.
      const billed = () => spent > 0 ? { costUsd: spent } : {};
      // Two attempts: a cut-off or malformed answer gets one more try, anything else is final.
      for (let attempt = 1; attempt <= 2; attempt++) {
        if (signal.aborted) throw signal.reason;
        const started = performance.now();
        let response: ChatCompletion & { _request_id?: string | null };
        try {
          const request = body(question as JsonQuestion<unknown>, limit);
          response = batch?.active
            ? await batch.call({ body: request, signal })
            : await (await client()).chat.completions.create(request, { signal });
        } catch (error) {
          const classified = classify(error, signal, operation);
          log.debug("OpenAI {operation} with {model} failed in {durationMs} ms: {status}", {
            operation,
            model,
            attempt,
            durationMs: Math.round(performance.now() - started),
            status: classified instanceof ProviderError
              ? classified.status ?? classified.message
              : "aborted",
          });
          throw classified instanceof ProviderError
            ? withBilledCost(classified, spent)
            : classified;
        }
        const callUsage = {
          inputTokens: response.usage?.prompt_tokens ?? 0,
          outputTokens: response.usage?.completion_tokens ?? 0,
        };
        usage.inputTokens += callUsage.inputTokens;
        usage.outputTokens += callUsage.outputTokens;
        spent += costOf(callUsage) * share(response);
        inBatch = answeredInBatch(response);
        requestId = response._request_id ?? response.id ?? requestId;
        // OpenAI names the snapshot that answered (`gpt-4o-mini-2024-07-18`).
        if (
          typeof response.model === "string" && response.model !== "" && response.model !== model
        ) {
          modelVersion = response.model;
        }
        const choice = response.choices?.[0];
        const finish = choice?.finish_reason ?? undefined;
        log.debug(
          "OpenAI {operation} with {model}: {status} in {durationMs} ms, {inputTokens} in / {outputTokens} out tokens",
          {
            operation,
            model,
            attempt,
            status: finish ?? "no choices",
            durationMs: Math.round(performance.now() - started),
            inputTokens: response.usage?.prompt_tokens,
            outputTokens: response.usage?.completion_tokens,
            requestId,
          },
        );
        const refusal = choice?.message?.refusal;
        if (typeof refusal === "string" && refusal !== "") {
          throw new ProviderError(
            `${Server} refused the ${operation}: ${clip(refusal, 300)}; rephrase the prompt`,
            { provider: PROVIDER, retryable: false, ...withId(), ...billed() },
          );
        }
        if (finish === "content_filter") {
          throw new ProviderError(
            `${Server} stopped the ${operation} answer (finish_reason content_filter); rephrase the prompt`,
            { provider: PROVIDER, retryable: false, ...withId(), ...billed() },
          );
        }
        if (finish === "length") {
          problem =
            `the answer was cut off at ${limit} output tokens (finish_reason length); raise maxOutputTokens or choose a model that thinks less`;
          limit *= 2;
          continue;
        }
        if (choice === undefined) {
          problem = "the answer had no choices";
          continue;
        }
        if (finish !== "stop") {
          problem = `the answer ended with finish_reason ${String(finish)}`;
          continue;
        }
        const checked = parseAnswer(
          choice.message?.content,
          (data, note) => reader(_withoutNulls(data), note),
        );
        if (checked.ok) {
          if (checked.normalised.length > 0) {
            log.warn("{server}'s {operation} answer was read leniently: {normalised}", {
              server: Server,
              operation,
              model,
              normalised: checked.normalised.join("; "),
              requestId,
            });
          }
          return {
            value: checked.value,
            meta: {
              model,
              ...(modelVersion !== undefined && { modelVersion }),
              costUsd: spent,
              usage,
              ...withId(),
              ...(inBatch && { batch: true as const }),
              ...(checked.normalised.length > 0 && { normalised: checked.normalised }),
            },
          };
        }
        problem = checked.problem;
      }
      throw new ProviderError(`OpenAI gave no usable ${operation} in 2 attempts: ${problem}`, {
        provider: PROVIDER,
        retryable: false,
        ...withId(),
        ...billed(),
      });
    },
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

function _classifyApiError(
  error: InstanceType<Sdk["APIError"]>,
  { model, server, Server, keyHint, redact }: ClassifyContext,
): ProviderError {
  const status = error.status as number;
  const body = (error.error ?? {}) as { message?: unknown };
  const apiMessage = redact(clip(String(body.message ?? "").trim(), 300)) || "(no message)";
  const code = typeof error.code === "string" ? error.code : undefined;
  const param = typeof error.param === "string" ? error.param : "";
  const label = `HTTP ${status}${code ? ` ${code}` : ""}`;
  const base = {
    provider: PROVIDER,
    status,
    cause: error,
    ...(typeof error.requestID === "string" && { requestId: error.requestID }),
  };

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
  if (status === 429 && code === "insufficient_quota") {
    return new ProviderError(
      `${Server} has no quota left (${label}): ${apiMessage}; add credit to the account, or choose another critic`,
      { ...base, retryable: false, fatal: true },
    );
  }
  if (status === 429) {
    // OpenAI states the wait in the message ("Please try again in 114h18m0s") as often as in a
    // header; the header wins where both are sent.
    const retryAfterMs = _retryAfterMs(error.headers) ??
      waitFromMessage(String(body.message ?? ""));
    return new ProviderError(`${Server} rate limit reached (${label}): ${apiMessage}`, {
      ...base,
      retryable: true,
      ...(retryAfterMs !== undefined && { retryAfterMs }),
    });
  }
  if (status === 408 || status === 409 || status >= 500) {
    const retryAfterMs = _retryAfterMs(error.headers);
    return new ProviderError(`${Server} is unavailable (${label}): ${apiMessage}`, {
      ...base,
      retryable: true,
      ...(retryAfterMs !== undefined && { retryAfterMs }),
    });
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
