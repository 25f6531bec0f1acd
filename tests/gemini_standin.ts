/**
 * A local stand-in for the Gemini Developer API's `generateContent`, speaking the same HTTP
 * protocol the `@google/genai` SDK uses (reference `gemini.md` §2 and §4.2), so the Gemini
 * provider, the CLI and benchmarks run without a key or a network.
 *
 * - `POST /v1beta/models/{model}:generateContent` (also `/v1/`), key in `x-goog-api-key`.
 * - `GET /v1beta/models/{model}` answers the model's metadata, as `models.get` in the SDK reads it
 *   (free on the real service), or 404 NOT_FOUND for a model it does not know; these calls are
 *   recorded in `modelGets`, not `requests`. Unknown models answer 404 to `generateContent` too.
 * - With `responseModalities` including `IMAGE` (an image model, e.g. `gemini-nano-banana-2.1`)
 *   it answers a real PNG drawn from the prompt and seed, sized from `imageConfig` (the aspect
 *   ratio at Gemini's 1K sizes, halved for `512`, doubled for `2K`, ×4 for `4K`), as base64
 *   `inlineData`, with the output image tokens in `usageMetadata`. A text model asked for an
 *   image answers 400, as Gemini does.
 * - With an inline image it answers a critique computed from the image's pixel statistics
 *   (deterministic, different for different images); text-only it answers a refined prompt.
 *   The answer is fitted to the request's `responseJsonSchema`.
 * - `modelVersion` names the model asked for, or the one a routed id goes to (`routes`).
 * - Every `generateContent` answer carries `server-timing: gfet4t7; dur=<ms>`, the time from the
 *   request's arrival to the answer, as Google's front end sends it.
 * - `usageMetadata` follows Gemini's image token rule: 2.x models 258 tokens for an image with
 *   both sides ≤ 384 px, else 258 per 768×768 tile; 3.x models by `mediaResolution` (LOW 280,
 *   MEDIUM 560, HIGH 1120 = default, ULTRA_HIGH 2240). Text costs ⌈chars / 4⌉ tokens.
 * - Faults are chosen per request by a token in the prompt text, e.g. `[gemini:429-once]`, or
 *   programmatically with {@linkcode GeminiStandIn.inject}. See {@linkcode GeminiFault}.
 *
 * Run as a script: `deno run --allow-net --allow-ffi --allow-env --allow-read --allow-sys
 * tests/gemini_standin.ts --port 8787 --key test-key [--latency-ms 50] [--rpm 60]`.
 *
 * @module
 */
import sharp, { type Stats } from "sharp";
import { randomFromSchema, seeded } from "./schema_answers.ts";

/**
 * Scripted failure modes. Those ending in `-once` fail only the first request for each distinct
 * content (model + contents + system instruction), so an identical retry, or the provider's own
 * retry with more output room, succeeds; the others fail every time.
 */
export const GEMINI_FAULTS = [
  /** 429 RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo details. */
  "429-once",
  "429",
  /** 429 with only the bare "Resource has been exhausted" message, no details. */
  "429-bare-once",
  /** 429 with RetryInfo for the first 5 requests of each distinct content, then normal answers. */
  "429x5",
  /** 503 UNAVAILABLE "The model is overloaded". */
  "503-once",
  "503",
  /** 500 INTERNAL. */
  "500-once",
  /** 502 with an HTML body, as a proxy or load balancer sends it. */
  "html-502-once",
  /** 200 with `promptFeedback.blockReason: PROHIBITED_CONTENT` and no candidates. */
  "block",
  /** 200 with `finishReason: SAFETY` and no content. */
  "safety",
  /** 200 with `finishReason: RECITATION` and no content. */
  "recitation",
  /** 200 with truncated JSON and `finishReason: MAX_TOKENS`. */
  "max-tokens-once",
  "max-tokens",
  /** 200 `STOP` with text that is not JSON. */
  "malformed-once",
  "malformed",
  /** 200 `STOP` with JSON that does not match the requested schema. */
  "invalid-once",
  /** Answer normally after `slowMs`. */
  "slow",
  /**
   * Never answer until the stand-in closes (Deno's `request.signal` does not report a client that
   * gave up on a kept-alive connection, so there is no earlier point to end it).
   */
  "hang",
  /** 400 INVALID_ARGUMENT API_KEY_INVALID whatever key was sent. */
  "bad-key",
  /** 403 PERMISSION_DENIED. */
  "permission-denied",
  /** 404 NOT_FOUND for the model. */
  "not-found",
  /** 400 INVALID_ARGUMENT about a `generation_config` field (a setting every call sends). */
  "400-setting",
  /** 400 INVALID_ARGUMENT about the request's image (this call's own content). */
  "400-image",
  /**
   * 401 UNAUTHENTICATED asking for OAuth (`ACCESS_TOKEN_TYPE_UNSUPPORTED`): how Gemini rejects
   * a standard `AIza…` key since 2026.
   */
  "standard-key",
  /** Image generation: 200 with `finishReason: IMAGE_SAFETY` and no image. */
  "image-safety",
  /** Image generation: 200 `STOP` with a text part and no image. */
  "no-image",
  /** Image generation: 200 `STOP` with `inlineData` that is not an image. */
  "bad-image",
] as const;

/** One scripted failure mode. */
export type GeminiFault = typeof GEMINI_FAULTS[number];

/** Options for {@linkcode startGeminiStandIn}. */
export interface GeminiStandInOptions {
  /** The only API key accepted. @default {"test-gemini-key"} */
  key?: string;
  /** Port on 127.0.0.1; 0 picks a free one. @default {0} */
  port?: number;
  /** Delay before every answer, in ms. @default {0} */
  latencyMs?: number;
  /** Delay of the `slow` fault, in ms. @default {2000} */
  slowMs?: number;
  /** Requests accepted per quota window; beyond it, 429 with RetryInfo. @default {Infinity} */
  rpm?: number;
  /** Length of the quota window, in ms (shorten it to scale time in benchmarks). @default {60000} */
  quotaWindowMs?: number;
  /** `RetryInfo.retryDelay` sent with the `429` and `429-once` faults, in ms. @default {2000} */
  retryDelayMs?: number;
  /** Monotonic clock in ms, for the quota window. @default {performance.now} */
  now?: () => number;
  /**
   * The model ids that exist; others answer 404 NOT_FOUND.
   * @default {undefined} (every id of the form `gemini-…`)
   */
  models?: string[];
  /**
   * Ids Gemini routes to another model: their answers carry that model's `modelVersion`.
   * @default {{ "gemini-2.5-flash": "gemini-3.5-flash-lite" }}
   */
  routes?: Record<string, string>;
  /**
   * Text answers drawn at random from the request's `responseJsonSchema` (`schema_answers.ts`),
   * as a service that keeps only to the letter of the schema may answer; request n of the
   * stand-in uses seed `seed * 10007 + n`. @default {undefined} (answers computed from the image)
   */
  answers?: { seed: number };
}

/** What the stand-in saw of one `models.get` call. */
export interface RecordedModelGet {
  model: string;
  keyValid: boolean;
  /** HTTP status answered. */
  status: number;
}

/** An answer to replay as it stands: a status, a JSON body and headers. */
export interface RecordedAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** What the stand-in saw of one request. */
export interface RecordedRequest {
  /** Model id from the path, e.g. `gemini-3.8-flash`. */
  model: string;
  /**
   * An image generation, a critique (an inline image sent), a brief (text only, asking for
   * checks) or a refinement (text only).
   */
  kind: "generate" | "critique" | "brief" | "refine";
  /** `v1beta` or `v1`. */
  apiVersion: string;
  /** Whether the `x-goog-api-key` header matched. */
  keyValid: boolean;
  hasImage: boolean;
  /** Image tokens billed for this request under Gemini's rule (0 without an image). */
  imageTokens: number;
  /** Size of the first inline image, as decoded. */
  image?: { width: number; height: number; bytes: number; mimeType: string };
  /** The user text parts joined by newlines. */
  prompt: string;
  systemInstruction: string;
  /** `generationConfig` as sent. */
  generationConfig: Record<string, unknown>;
  /** The image answered, for an image generation that made one. */
  output?: { width: number; height: number; aspectRatio: string; imageSize: string };
  /** The fault applied, if any. */
  fault?: GeminiFault | "quota";
  /** HTTP status answered (0 while the answer is pending, e.g. `hang`). */
  status: number;
}

/** A running stand-in. */
export interface GeminiStandIn {
  /** Base URL for the SDK's `httpOptions.baseUrl`, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** The key it accepts. */
  key: string;
  /** Every `generateContent` request, in arrival order. */
  requests: RecordedRequest[];
  /** Every `models.get` call, in arrival order. */
  modelGets: RecordedModelGet[];
  /** Applies `fault` to the next `times` requests that carry a valid key. */
  inject(fault: GeminiFault, times?: number): void;
  /**
   * Answers the next `times` requests that carry a valid key with `answer` as it stands, e.g.
   * a response body recorded from the real service. @default {times: Infinity}
   */
  replay(answer: RecordedAnswer, times?: number): void;
  /** Forgets requests, injected faults, `-once` memory and the quota window. */
  reset(): void;
  /** Ends pending answers and stops the server; resolves once it is down. */
  close(): Promise<void>;
}

const FAULT_TOKEN = /\[gemini:([a-z0-9-]+)\]/g;

/** Starts a stand-in on 127.0.0.1. */
export function startGeminiStandIn(options: GeminiStandInOptions = {}): Promise<GeminiStandIn> {
  const key = options.key ?? "test-gemini-key";
  const latencyMs = options.latencyMs ?? 0;
  const slowMs = options.slowMs ?? 2000;
  const rpm = options.rpm ?? Infinity;
  const windowMs = options.quotaWindowMs ?? 60_000;
  const retryDelayMs = options.retryDelayMs ?? 2000;
  const now = options.now ?? (() => performance.now());
  const routes = options.routes ?? { "gemini-2.5-flash": "gemini-3.5-flash-lite" };

  const requests: RecordedRequest[] = [];
  const replays: Array<{ answer: RecordedAnswer; left: number }> = [];
  const modelGets: RecordedModelGet[] = [];
  const injected: GeminiFault[] = [];
  const failedOnce = new Set<string>();
  const refusals = new Map<string, number>();
  const known = (model: string) =>
    options.models === undefined ? /^gemini-[\w.-]+$/.test(model) : options.models.includes(model);
  const notFound = (model: string, apiVersion: string) =>
    _error(
      404,
      "NOT_FOUND",
      `models/${model} is not found for API version ${apiVersion}, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.`,
    );
  let accepted: number[] = [];
  let counter = 0;
  const closing = new AbortController();

  const handler = async (req: Request): Promise<Response> => {
    const arrived = performance.now();
    const url = new URL(req.url);
    const bodyText = await req.text();
    const get = /^\/(v1beta|v1)\/models\/([^/:]+)$/.exec(url.pathname);
    if (get && req.method === "GET") {
      const [, version = "v1beta", model = ""] = get;
      const sent = req.headers.get("x-goog-api-key") ?? url.searchParams.get("key");
      const entry: RecordedModelGet = { model, keyValid: sent === key, status: 0 };
      modelGets.push(entry);
      const response = sent === null || sent === ""
        ? _error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")
        : !entry.keyValid
        ? _badKey()
        : known(model)
        ? Response.json(_modelInfo(model))
        : _error(
          404,
          "NOT_FOUND",
          `Model is not found: models/${model} for api version ${version}`,
        );
      entry.status = response.status;
      return response;
    }
    // Model ids contain dots (gemini-2.5-flash), so match anything but / and :.
    const match = /^\/(v1beta|v1)\/models\/([^/:]+):generateContent$/.exec(url.pathname);
    if (!match || req.method !== "POST") {
      return _error(
        404,
        "NOT_FOUND",
        `Requested entity was not found: ${req.method} ${url.pathname}`,
      );
    }
    const [, apiVersion = "v1beta", model = ""] = match;
    const sentKey = req.headers.get("x-goog-api-key") ?? url.searchParams.get("key");
    if (sentKey === null || sentKey === "") {
      return _error(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
      );
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(bodyText) as Record<string, unknown>;
      if (body === null || typeof body !== "object") throw new TypeError("not an object");
    } catch {
      return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    }
    const parsed = await _parseBody(body, model);
    const record: RecordedRequest = {
      model,
      kind: parsed.imageOut
        ? "generate"
        : parsed.image
        ? "critique"
        : _asksForBrief(parsed.jsonSchema)
        ? "brief"
        : "refine",
      apiVersion,
      keyValid: sentKey === key,
      hasImage: parsed.image !== undefined,
      imageTokens: parsed.imageTokens,
      ...(parsed.image && { image: parsed.image }),
      prompt: parsed.prompt,
      systemInstruction: parsed.systemInstruction,
      generationConfig: parsed.config,
      status: 0,
    };
    requests.push(record);
    const answer = (response: Response) => {
      record.status = response.status;
      // As Google's front end times every answer: from the request's arrival to the answer.
      response.headers.set(
        "server-timing",
        `gfet4t7; dur=${Math.round(performance.now() - arrived)}`,
      );
      return response;
    };
    if (!record.keyValid) return answer(_badKey());
    const replayed = replays[0];
    if (replayed !== undefined) {
      if (--replayed.left <= 0) replays.shift();
      const { status, body: recorded, headers: recordedHeaders } = replayed.answer;
      return answer(Response.json(recorded, { status, headers: recordedHeaders ?? {} }));
    }
    if (!known(model)) return answer(notFound(model, apiVersion));
    if (parsed.invalid) return answer(_error(400, "INVALID_ARGUMENT", parsed.invalid));
    if (parsed.imageOut && !IMAGE_MODEL.test(model)) {
      return answer(
        _error(
          400,
          "INVALID_ARGUMENT",
          "* GenerateContentRequest.generation_config.response_modalities: Model does not support the requested response modalities: image",
        ),
      );
    }

    let fault = injected.shift() ?? _tokenFault(parsed, model, failedOnce);
    if (fault === "429x5") {
      const seen = refusals.get(parsed.contentKey) ?? 0;
      refusals.set(parsed.contentKey, seen + 1);
      if (seen >= 5) fault = undefined;
    }
    if (fault) record.fault = fault;

    if (
      fault !== "bad-key" && fault !== "permission-denied" && fault !== "not-found" &&
      fault !== "400-setting" && fault !== "400-image" && fault !== "standard-key"
    ) {
      const t = now();
      accepted = accepted.filter((at) => at > t - windowMs);
      if (accepted.length >= rpm) {
        record.fault = "quota";
        return answer(_quota(model, accepted[0]! + windowMs - t, rpm));
      }
      accepted.push(t);
    }

    const waitMs = latencyMs + (fault === "slow" ? slowMs : 0);
    if (fault === "hang") {
      await _until(Infinity, closing.signal);
      return answer(_error(503, "UNAVAILABLE", "The stand-in is shutting down."));
    }
    if (waitMs > 0 && !(await _until(waitMs, closing.signal))) {
      return answer(_error(503, "UNAVAILABLE", "The stand-in is shutting down."));
    }

    switch (fault) {
      case "bad-key":
        return answer(_badKey());
      case "standard-key":
        return answer(_standardKeyRejected());
      case "permission-denied":
        return answer(
          _error(
            403,
            "PERMISSION_DENIED",
            "Your project has been denied access. Please contact support.",
          ),
        );
      case "not-found":
        return answer(notFound(model, apiVersion));
      case "400-setting":
        return answer(
          _error(
            400,
            "INVALID_ARGUMENT",
            "* GenerateContentRequest.generation_config.thinking_config.thinking_level: Thinking level MINIMAL is not supported for this model.",
          ),
        );
      case "400-image":
        return answer(
          _error(
            400,
            "INVALID_ARGUMENT",
            "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
          ),
        );
      case "429":
      case "429-once":
      case "429x5":
        return answer(_quota(model, retryDelayMs, rpm === Infinity ? 10 : rpm));
      case "429-bare-once":
        return answer(
          _error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        );
      case "503":
      case "503-once":
        return answer(
          _error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        );
      case "500-once":
        return answer(
          _error(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
          ),
        );
      case "html-502-once":
        return answer(
          new Response(
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
            { status: 502, headers: { "content-type": "text/html; charset=UTF-8" } },
          ),
        );
    }

    const id = `standin-${(++counter).toString(36)}-${Date.now().toString(36)}`;
    const usage = (outputChars: number, thoughts: number) =>
      _usage(parsed.textTokens, parsed.imageTokens, Math.ceil(outputChars / 4), thoughts);
    const base = { modelVersion: routes[model] ?? model, responseId: id };

    if (fault === "block") {
      return answer(Response.json({
        promptFeedback: {
          blockReason: "PROHIBITED_CONTENT",
          safetyRatings: [],
        },
        usageMetadata: usage(0, 0),
        ...base,
      }));
    }
    if (fault === "safety" || fault === "recitation") {
      return answer(Response.json({
        candidates: [{
          finishReason: fault === "safety" ? "SAFETY" : "RECITATION",
          index: 0,
          safetyRatings: [
            { category: "HARM_CATEGORY_DANGEROUS_CONTENT", probability: "HIGH", blocked: true },
          ],
        }],
        usageMetadata: usage(0, 0),
        ...base,
      }));
    }

    if (parsed.imageOut) {
      const made = await _imageAnswer(parsed, model, fault);
      if (made.output) record.output = made.output;
      return answer(Response.json({ ...made.body, ...base }));
    }

    const value = parsed.image
      ? await _critique(parsed)
      : _asksForBrief(parsed.jsonSchema)
      ? _brief(parsed.prompt)
      : _refinement(parsed.prompt);
    const fitted = parsed.jsonSchema === undefined
      ? value
      : options.answers !== undefined
      ? randomFromSchema(
        parsed.jsonSchema,
        seeded(options.answers.seed * 10007 + requests.length),
      )
      : _fit(value, parsed.jsonSchema);
    let text = parsed.json ? JSON.stringify(fitted) : _prose(fitted);
    if (fault === "malformed" || fault === "malformed-once") {
      text = `Here is the evaluation you asked for:\n${text.slice(0, -1)}`;
    } else if (fault === "invalid-once" && parsed.json) {
      text = JSON.stringify({ verdict: "looks fine", score: "high" });
    }
    const thoughts = _thoughtTokens(model, parsed.config);
    const limit = Number(parsed.config.maxOutputTokens ?? 65_536);
    let finishReason = "STOP";
    let outputChars = text.length;
    if (fault === "max-tokens" || fault === "max-tokens-once") {
      text = text.slice(0, Math.floor(text.length / 3));
      outputChars = Math.max(0, limit - thoughts) * 4;
      finishReason = "MAX_TOKENS";
    } else if (thoughts + Math.ceil(text.length / 4) > limit) {
      // Thinking counts against maxOutputTokens too, as on the real service.
      text = text.slice(0, Math.max(0, limit - thoughts) * 4);
      outputChars = text.length;
      finishReason = "MAX_TOKENS";
    }
    return answer(Response.json({
      candidates: [{
        content: { role: "model", parts: text === "" ? [] : [{ text }] },
        finishReason,
        index: 0,
      }],
      usageMetadata: usage(outputChars, thoughts),
      ...base,
    }));
  };

  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      onListen: ({ port }) => {
        resolve({
          url: `http://127.0.0.1:${port}`,
          key,
          requests,
          modelGets,
          replay(recorded, times = Infinity) {
            replays.push({ answer: recorded, left: times });
          },
          inject(fault, times = 1) {
            for (let i = 0; i < times; i++) injected.push(fault);
          },
          reset() {
            replays.length = 0;
            requests.length = 0;
            modelGets.length = 0;
            injected.length = 0;
            failedOnce.clear();
            refusals.clear();
            accepted = [];
          },
          async close() {
            // Answer the waiting requests first: shutdown lets in-flight handlers finish.
            closing.abort();
            await server.shutdown();
          },
        });
      },
    }, handler);
  });
}

interface ParsedBody {
  prompt: string;
  systemInstruction: string;
  config: Record<string, unknown>;
  json: boolean;
  jsonSchema?: unknown;
  image?: { width: number; height: number; bytes: number; mimeType: string };
  imageData?: Uint8Array;
  /** The first inline image's pixel statistics, as decoded. */
  imageStats?: Promise<Stats>;
  imageTokens: number;
  textTokens: number;
  /** Fingerprint of model + contents + system instruction, for `-once` faults. */
  contentKey: string;
  /** An image asked for (`responseModalities` has `IMAGE`): its shape. */
  imageOut?: { aspectRatio: string; imageSize: string; seed: number };
  /** Why the request is an INVALID_ARGUMENT, if it is. */
  invalid?: string;
}

/** Field `camel` of `obj`, or its snake_case spelling (Google's REST examples use both). */
function _get(obj: unknown, camel: string): unknown {
  if (obj === null || typeof obj !== "object") return undefined;
  const record = obj as Record<string, unknown>;
  return record[camel] ?? record[camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)];
}

function _texts(content: unknown): string[] {
  const parts = _get(content, "parts");
  if (!Array.isArray(parts)) return [];
  return parts.map((p) => _get(p, "text")).filter((t): t is string => typeof t === "string");
}

async function _parseBody(body: Record<string, unknown>, model: string): Promise<ParsedBody> {
  const contents = _get(body, "contents");
  const system = _get(body, "systemInstruction");
  const rawConfig = _get(body, "generationConfig");
  const config: Record<string, unknown> = {};
  if (rawConfig && typeof rawConfig === "object") {
    for (const [k, v] of Object.entries(rawConfig)) {
      config[k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())] = v;
    }
  }
  const texts: string[] = [];
  const images: Array<{ data: string; mimeType: string; resolution: unknown }> = [];
  let invalid: string | undefined;
  if (!Array.isArray(contents) || contents.length === 0) {
    invalid = "* GenerateContentRequest.contents: contents is not specified";
  } else {
    for (const content of contents) {
      texts.push(..._texts(content));
      const parts = _get(content, "parts");
      for (const part of Array.isArray(parts) ? parts : []) {
        const inline = _get(part, "inlineData");
        if (inline) {
          images.push({
            data: String(_get(inline, "data") ?? ""),
            mimeType: String(_get(inline, "mimeType") ?? ""),
            resolution: _get(_get(part, "mediaResolution"), "level"),
          });
        }
      }
    }
  }
  const systemInstruction = (typeof system === "string" ? [system] : _texts(system)).join("\n");
  const json = config.responseMimeType === "application/json";
  const jsonSchema = config.responseJsonSchema ?? config.responseSchema;
  if (jsonSchema !== undefined && !json) {
    invalid ??=
      "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be application/json when response_schema is set.";
  }
  const prompt = texts.join("\n");
  const seed = config.seed;
  if (seed !== undefined && !(Number.isInteger(seed) && Math.abs(Number(seed)) < 2 ** 31)) {
    invalid ??= `Invalid value at 'generation_config.seed' (TYPE_INT32), ${JSON.stringify(seed)}`;
  }
  let imageOut: ParsedBody["imageOut"];
  const modalities = config.responseModalities;
  if (Array.isArray(modalities) && modalities.some((m) => String(m).toUpperCase() === "IMAGE")) {
    const imageConfig = _get(config, "imageConfig");
    const aspectRatio = String(_get(imageConfig, "aspectRatio") ?? "1:1");
    const imageSize = String(_get(imageConfig, "imageSize") ?? "1K");
    if (!(aspectRatio in BASE_SIZES)) {
      invalid ??=
        `* GenerateContentRequest.generation_config.image_config.aspect_ratio: unsupported aspect ratio ${aspectRatio}`;
    } else if (!(imageSize in TIER_SCALE)) {
      invalid ??=
        `* GenerateContentRequest.generation_config.image_config.image_size: unsupported image size ${imageSize}`;
    }
    imageOut = { aspectRatio, imageSize, seed: typeof seed === "number" ? seed : 0 };
  }
  let imageTokens = 0;
  let image: ParsedBody["image"];
  let imageData: Uint8Array | undefined;
  let imageStats: Promise<Stats> | undefined;
  for (const [i, img] of images.entries()) {
    let bytes: Uint8Array;
    let width = 0;
    let height = 0;
    try {
      ({ bytes, width, height } = await _decoded(img.data));
    } catch {
      invalid ??=
        "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting";
      continue;
    }
    if (i === 0) {
      image = { width, height, bytes: bytes.length, mimeType: img.mimeType };
      imageData = bytes;
      imageStats = (await _decoded(img.data)).stats;
    }
    imageTokens += _imageTokens(model, width, height, img.resolution ?? config.mediaResolution);
  }
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(JSON.stringify([model, contents, system])),
  );
  return {
    prompt,
    systemInstruction,
    config,
    json,
    ...(jsonSchema !== undefined && { jsonSchema }),
    ...(image && { image }),
    ...(imageData && { imageData }),
    ...(imageStats && { imageStats }),
    imageTokens,
    textTokens: Math.ceil((prompt.length + systemInstruction.length) / 4),
    contentKey: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join(""),
    ...(imageOut !== undefined && { imageOut }),
    ...(invalid !== undefined && { invalid }),
  };
}

/** Gemini's published rule for what one image costs in input tokens. */
export function geminiImageTokens(
  model: string,
  width: number,
  height: number,
  mediaResolution?: unknown,
): number {
  return _imageTokens(model, width, height, mediaResolution);
}

function _imageTokens(model: string, width: number, height: number, resolution: unknown): number {
  const generation = Number(/gemini-(\d+)/.exec(model)?.[1] ?? 2);
  if (generation >= 3) {
    switch (resolution) {
      case "MEDIA_RESOLUTION_LOW":
        return 280;
      case "MEDIA_RESOLUTION_MEDIUM":
        return 560;
      case "MEDIA_RESOLUTION_ULTRA_HIGH":
        return 2240;
      default:
        return 1120;
    }
  }
  if (width <= 384 && height <= 384) return 258;
  return Math.ceil(width / 768) * Math.ceil(height / 768) * 258;
}

function _thoughtTokens(model: string, config: Record<string, unknown>): number {
  const thinking = _get(config, "thinkingConfig");
  if (Number(/gemini-(\d+)/.exec(model)?.[1] ?? 2) >= 3) {
    const level = _get(thinking, "thinkingLevel");
    return level === "LOW" ? 64 : level === "HIGH" ? 1024 : 256;
  }
  const budget = _get(thinking, "thinkingBudget");
  return typeof budget === "number" && budget > 0 ? Math.min(budget, 128) : 0;
}

function _usage(textTokens: number, imageTokens: number, output: number, thoughts: number) {
  const prompt = textTokens + imageTokens;
  return {
    promptTokenCount: prompt,
    candidatesTokenCount: output,
    thoughtsTokenCount: thoughts,
    totalTokenCount: prompt + output + thoughts,
    promptTokensDetails: [
      { modality: "TEXT", tokenCount: textTokens },
      ...(imageTokens > 0 ? [{ modality: "IMAGE", tokenCount: imageTokens }] : []),
    ],
    ...(output > 0 && { candidatesTokensDetails: [{ modality: "TEXT", tokenCount: output }] }),
  };
}

function _tokenFault(
  parsed: ParsedBody,
  model: string,
  failedOnce: Set<string>,
): GeminiFault | undefined {
  for (const [, name] of parsed.prompt.matchAll(FAULT_TOKEN)) {
    if (!(GEMINI_FAULTS as readonly string[]).includes(name!)) continue;
    const fault = name as GeminiFault;
    if (!fault.endsWith("-once")) return fault;
    const key = `${fault}|${model}|${parsed.contentKey}`;
    if (failedOnce.has(key)) continue;
    failedOnce.add(key);
    return fault;
  }
  return undefined;
}

/** Resolves true after `ms`, or false as soon as either signal aborts. */
function _until(ms: number, ...signals: AbortSignal[]): Promise<boolean> {
  return new Promise((resolve) => {
    if (signals.some((s) => s.aborted)) return resolve(false);
    const done = (value: boolean) => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener("abort", onAbort);
      resolve(value);
    };
    const onAbort = () => done(false);
    const timer = Number.isFinite(ms) ? setTimeout(() => done(true), ms) : undefined;
    for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
  });
}

function _error(code: number, status: string, message: string, details?: unknown[]): Response {
  return Response.json(
    { error: { code, message, status, ...(details && { details }) } },
    { status: code },
  );
}

/** A model's metadata in the shape the Developer API answers `GET models/{model}` with. */
function _modelInfo(model: string): Record<string, unknown> {
  return {
    name: `models/${model}`,
    version: "001",
    displayName: model,
    description: "A model served by the retake Gemini stand-in.",
    inputTokenLimit: 1_048_576,
    outputTokenLimit: 65_536,
    supportedGenerationMethods: ["generateContent", "countTokens"],
    temperature: 1,
    topP: 0.95,
    topK: 64,
    maxTemperature: 2,
    thinking: true,
  };
}

function _standardKeyRejected(): Response {
  return _error(
    401,
    "UNAUTHENTICATED",
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    [{
      "@type": "type.googleapis.com/google.rpc.ErrorInfo",
      reason: "ACCESS_TOKEN_TYPE_UNSUPPORTED",
      domain: "googleapis.com",
      metadata: { service: "generativelanguage.googleapis.com", method: "GenerateContent" },
    }],
  );
}

function _badKey(): Response {
  return _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
    {
      "@type": "type.googleapis.com/google.rpc.ErrorInfo",
      reason: "API_KEY_INVALID",
      domain: "googleapis.com",
      metadata: { service: "generativelanguage.googleapis.com" },
    },
    {
      "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
      locale: "en-US",
      message: "API key not valid. Please pass a valid API key.",
    },
  ]);
}

function _quota(model: string, delayMs: number, limit: number): Response {
  const seconds = Math.max(0, delayMs) / 1000;
  const retryDelay = Number.isInteger(seconds) ? `${seconds}s` : `${seconds.toFixed(3)}s`;
  return _error(
    429,
    "RESOURCE_EXHAUSTED",
    `You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. Please retry in ${
      seconds.toFixed(1)
    }s.`,
    [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        violations: [{
          quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_requests",
          quotaId: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
          quotaDimensions: { location: "global", model },
          quotaValue: String(limit),
        }],
      },
      {
        "@type": "type.googleapis.com/google.rpc.Help",
        links: [{
          description: "Learn more about Gemini API quotas",
          url: "https://ai.google.dev/gemini-api/docs/rate-limits",
        }],
      },
      { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay },
    ],
  );
}

/** Models that can answer with images. */
const IMAGE_MODEL = /image|banana/;

/** Gemini's image sizes at 1K, by aspect ratio. */
const BASE_SIZES: Record<string, [number, number]> = {
  "1:1": [1024, 1024],
  "2:3": [832, 1248],
  "3:2": [1248, 832],
  "3:4": [864, 1184],
  "4:3": [1184, 864],
  "4:5": [896, 1152],
  "5:4": [1152, 896],
  "9:16": [768, 1344],
  "16:9": [1344, 768],
  "21:9": [1536, 672],
};

const TIER_SCALE: Record<string, number> = { "512": 0.5, "1K": 1, "2K": 2, "4K": 4 };

/** Output image tokens of one image: 3 Pro Image's schedule, or 3.1 Flash Image's. */
export function geminiImageOutputTokens(model: string, imageSize: string): number {
  const pro: Record<string, number> = { "1K": 1120, "2K": 1120, "4K": 2000 };
  const flash: Record<string, number> = { "512": 747, "1K": 1120, "2K": 1680, "4K": 2520 };
  return (/pro-image/.test(model) ? pro : flash)[imageSize] ?? 1120;
}

/** The answer to an image generation: a PNG drawn from the prompt and seed, or the fault. */
async function _imageAnswer(
  parsed: ParsedBody,
  model: string,
  fault: GeminiFault | undefined,
): Promise<{ body: Record<string, unknown>; output?: RecordedRequest["output"] }> {
  const { aspectRatio, imageSize, seed } = parsed.imageOut!;
  const thoughts = /lite/.test(model) ? 0 : 128;
  const usage = (imageTokens: number, text = 0) => ({
    promptTokenCount: parsed.textTokens,
    candidatesTokenCount: imageTokens + text,
    thoughtsTokenCount: thoughts,
    totalTokenCount: parsed.textTokens + imageTokens + text + thoughts,
    promptTokensDetails: [{ modality: "TEXT", tokenCount: parsed.textTokens }],
    candidatesTokensDetails: [
      ...(imageTokens > 0 ? [{ modality: "IMAGE", tokenCount: imageTokens }] : []),
      ...(text > 0 ? [{ modality: "TEXT", tokenCount: text }] : []),
    ],
  });
  if (fault === "image-safety") {
    return {
      body: {
        candidates: [{
          finishReason: "IMAGE_SAFETY",
          finishMessage: "Unable to show the generated image: it may violate the usage policy.",
          index: 0,
        }],
        usageMetadata: usage(0),
      },
    };
  }
  if (fault === "no-image") {
    const text = "I can't create an image of that. Can I help with something else?";
    return {
      body: {
        candidates: [{
          content: { role: "model", parts: [{ text }] },
          finishReason: "STOP",
          index: 0,
        }],
        usageMetadata: usage(0, Math.ceil(text.length / 4)),
      },
    };
  }
  const [w1, h1] = BASE_SIZES[aspectRatio]!;
  const scale = TIER_SCALE[imageSize]!;
  const width = Math.round(w1 * scale);
  const height = Math.round(h1 * scale);
  const data = fault === "bad-image"
    ? btoa("<html><body>not an image</body></html>")
    : _base64(await _drawImage(parsed.prompt, seed, width, height));
  return {
    body: {
      candidates: [{
        content: { role: "model", parts: [{ inlineData: { mimeType: "image/png", data } }] },
        finishReason: "STOP",
        index: 0,
      }],
      usageMetadata: usage(geminiImageOutputTokens(model, imageSize)),
    },
    ...(fault !== "bad-image" && { output: { width, height, aspectRatio, imageSize } }),
  };
}

/** Deterministic pixels from prompt + seed, so the critic sees different images. */
async function _drawImage(
  prompt: string,
  seed: number,
  width: number,
  height: number,
): Promise<Uint8Array> {
  let hash = seed >>> 0;
  for (const c of prompt) hash = Math.imul(hash ^ c.charCodeAt(0), 16777619) >>> 0;
  const r = hash & 0xff, g = (hash >>> 8) & 0xff, b = (hash >>> 16) & 0xff;
  const pixels = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      pixels[i] = (r + (x * 255) / width) & 0xff;
      pixels[i + 1] = (g + (y * 255) / height) & 0xff;
      pixels[i + 2] = (b + ((x + y) % 64)) & 0xff;
    }
  }
  const png = await sharp(pixels, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 1 })
    .toBuffer();
  return new Uint8Array(png);
}

function _base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

const PALETTE: Array<[string, number, number, number]> = [
  ["black", 20, 20, 20],
  ["white", 240, 240, 240],
  ["grey", 128, 128, 128],
  ["red", 200, 40, 40],
  ["orange", 230, 130, 40],
  ["yellow", 230, 210, 60],
  ["green", 60, 160, 70],
  ["teal", 40, 150, 150],
  ["blue", 50, 80, 200],
  ["purple", 130, 60, 170],
  ["pink", 230, 140, 180],
  ["brown", 120, 80, 50],
];

function _colourName(r: number, g: number, b: number): string {
  let best = PALETTE[0]!;
  let bestDistance = Infinity;
  for (const entry of PALETTE) {
    const d = (entry[1] - r) ** 2 + (entry[2] - g) ** 2 + (entry[3] - b) ** 2;
    if (d < bestDistance) [best, bestDistance] = [entry, d];
  }
  return best[0];
}

const round1 = (n: number) => Math.round(Math.min(10, Math.max(0, n)) * 10) / 10;

/**
 * An inline image decoded, with its size and pixel statistics, kept for the next request that
 * sends the same bytes: a long benchmark sends few distinct images, and the stand-in's own work
 * shares the cores with the retake it measures.
 */
const decodedImages = new Map<string, Promise<DecodedImage>>();

interface DecodedImage {
  bytes: Uint8Array;
  width: number;
  height: number;
  stats: Promise<Stats>;
}

function _decoded(base64: string): Promise<DecodedImage> {
  let decoded = decodedImages.get(base64);
  if (decoded === undefined) {
    decoded = (async () => {
      const bytes = (Uint8Array as unknown as { fromBase64(text: string): Uint8Array })
        .fromBase64(base64);
      const meta = await sharp(bytes).metadata();
      const stats = sharp(bytes).stats();
      // A stats failure is the critique's to report, when it asks.
      stats.catch(() => {});
      return { bytes, width: meta.width ?? 0, height: meta.height ?? 0, stats };
    })();
    decodedImages.set(base64, decoded);
    decoded.catch(() => decodedImages.delete(base64));
    if (decodedImages.size > 64) decodedImages.delete(decodedImages.keys().next().value!);
  }
  return decoded;
}

/** A critique computed from pixel statistics: same image and prompt, same critique. */
async function _critique(parsed: ParsedBody): Promise<Record<string, unknown>> {
  const stats = await (parsed.imageStats ?? sharp(parsed.imageData!).stats());
  const [r, g, b] = [0, 1, 2].map((i) => stats.channels[i] ?? stats.channels[0]!);
  const brightness = (r!.mean + g!.mean + b!.mean) / 3;
  const contrast = (r!.stdev + g!.stdev + b!.stdev) / 3;
  const { r: dr, g: dg, b: db } = stats.dominant;
  const colour = _colourName(dr, dg, db);
  const image = parsed.image!;
  const text = parsed.prompt.toLowerCase();
  const colourMentioned = text.includes(colour);
  let hash = 0;
  for (const c of parsed.prompt) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;

  const criteria = {
    promptAdherence: round1(4 + (hash % 30) / 10 + (colourMentioned ? 2 : 0)),
    composition: round1(2 + stats.entropy * 0.9),
    lighting: round1(9.5 - Math.abs(brightness - 128) / 128 * 8),
    mood: round1(3 + Math.min(contrast, 80) / 80 * 6),
    technicalQuality: round1(3 + Math.min(stats.sharpness, 3) * 2 - (image.width < 256 ? 1 : 0)),
  };
  const score = round1(
    criteria.promptAdherence * 0.4 + criteria.composition * 0.15 + criteria.lighting * 0.15 +
      criteria.mood * 0.15 + criteria.technicalQuality * 0.15,
  );
  const problems: string[] = [];
  const suggestions: string[] = [];
  const strengths: string[] = [];
  if (brightness < 70) {
    problems.push(
      `The image is underexposed: mean brightness ${
        Math.round(brightness)
      }/255 leaves the subject murky`,
    );
    suggestions.push("bright, even lighting on the subject");
  } else if (brightness > 200) {
    problems.push(
      `The image is overexposed: mean brightness ${
        Math.round(brightness)
      }/255 washes out the highlights`,
    );
    suggestions.push("softer light with preserved highlight detail");
  } else strengths.push("Balanced exposure");
  if (contrast < 25) {
    problems.push(
      `Contrast is flat (spread ${
        Math.round(contrast)
      }), so the subject does not stand out from the background`,
    );
    suggestions.push("strong contrast between subject and background");
  } else strengths.push("Clear tonal separation");
  if (stats.entropy < 3) {
    problems.push(
      `The frame is nearly empty (entropy ${
        stats.entropy.toFixed(2)
      } bits): there is no clear focal point`,
    );
    suggestions.push("a clear focal point with detailed foreground elements");
  }
  if (!colourMentioned) {
    problems.push(`The dominant colour is ${colour}, which the prompt never asks for`);
    suggestions.push(`a colour palette that matches the prompt rather than ${colour} tones`);
  } else strengths.push(`The ${colour} palette matches the prompt`);
  // Checks of a brief, as "c1 (entity): question" lines: each passes or fails by the image, so
  // different images answer differently and the same image always alike.
  const checks = [...parsed.prompt.matchAll(/^(c\d+) \((\w+)\): (.*)$/gm)].map(([, id, , q]) => {
    let h = Math.round(brightness);
    for (const c of q!) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    const passed = h % 3 !== 0;
    return {
      id,
      passed,
      reason: passed ? `yes: the image shows it` : `no: the image does not show it clearly`,
      ...(!passed && { fix: `make it clear that the answer to "${q}" is yes` }),
    };
  });
  return {
    score,
    criteria,
    summary: `A ${image.width}×${image.height} image dominated by ${colour}; overall ${score}/10.`,
    strengths,
    problems,
    suggestions,
    ...(checks.length > 0 && { checks }),
  };
}

/** Whether a text-only request asks for a brief: its schema has checks with questions. */
function _asksForBrief(schema: unknown): boolean {
  const checks = (schema as { properties?: { checks?: { items?: { properties?: unknown } } } })
    ?.properties?.checks?.items?.properties;
  return typeof checks === "object" && checks !== null && "question" in checks;
}

/** A brief from the prompt's nouns: "Is there a <word>?" for its longest words, at least 4. */
function _brief(text: string): Record<string, unknown> {
  const prompt = /^Prompt: (.*)$/m.exec(text)?.[1] ?? text;
  const words = [...new Set(prompt.toLowerCase().match(/[a-z]{5,}/g) ?? [])].slice(0, 6);
  while (words.length < 4) words.push(["colour", "light", "mood", "detail"][words.length]!);
  return {
    checks: words.map((word, i) => ({
      id: `c${i + 1}`,
      question: `Is there ${word} in the image?`,
      kind: i === 0 ? "entity" : "attribute",
    })),
  };
}

/** A refinement that appends the critique's first suggestions to the round's prompt. */
function _refinement(text: string): Record<string, unknown> {
  const current = /^Prompt of round \d+: (.*)$/m.exec(text)?.[1] ??
    /^(?:Current prompt|Prompt):\s*(.*)$/im.exec(text)?.[1] ??
    text.split("\n").find((line) => line.trim() !== "") ?? "an image";
  const critique = _embeddedJson(text);
  const suggestions = Array.isArray(critique?.suggestions)
    ? critique.suggestions.filter((s): s is string => typeof s === "string")
    : [];
  const problems = Array.isArray(critique?.problems)
    ? critique.problems.filter((s): s is string => typeof s === "string")
    : [];
  const additions = (suggestions.length > 0 ? suggestions : ["a clear focal point"])
    .filter((s) => !current.includes(s))
    .slice(0, 2);
  const prompt = [current.trim(), ...additions].join(", ").slice(0, 1500);
  return {
    prompt,
    instruction: additions[0] ?? "sharpen the details",
    changes: additions.map((s, i) => ({
      change: `Added "${s}"`,
      reason: problems[i] ?? "The critique asked for it",
    })),
  };
}

/** The first JSON object embedded in `text` (the refine request quotes the critique as JSON). */
function _embeddedJson(text: string): Record<string, unknown> | undefined {
  const start = text.indexOf("{");
  if (start < 0) return undefined;
  for (let end = text.indexOf("}", start); end >= 0; end = text.indexOf("}", end + 1)) {
    try {
      const value = JSON.parse(text.slice(start, end + 1));
      if (value && typeof value === "object") return value as Record<string, unknown>;
    } catch {
      // Not closed yet: keep extending to the next brace.
    }
  }
  return undefined;
}

function _prose(value: unknown): string {
  const v = value as { summary?: unknown; prompt?: unknown };
  return String(v.summary ?? v.prompt ?? "Done.");
}

/**
 * Fits `value` to a JSON Schema (object/array/string/number/integer/boolean, with `required`,
 * `minimum`, `maximum`, `minItems`, `maxItems`, `enum`): unknown keys dropped, missing ones
 * filled, numbers clamped, so the answer conforms to whatever schema was requested.
 */
function _fit(value: unknown, schema: unknown): unknown {
  if (schema === null || typeof schema !== "object") return value;
  const s = schema as Record<string, unknown>;
  const rawType = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type;
  const type = typeof rawType === "string" ? rawType.toLowerCase() : undefined;
  switch (type) {
    case "object": {
      const properties = (s.properties ?? {}) as Record<string, unknown>;
      const source = value && typeof value === "object" ? value as Record<string, unknown> : {};
      return Object.fromEntries(
        Object.entries(properties).map(([k, sub]) => [k, _fit(source[k], sub)]),
      );
    }
    case "array": {
      let items = Array.isArray(value) ? value : [];
      if (typeof s.maxItems === "number") items = items.slice(0, s.maxItems);
      while (typeof s.minItems === "number" && items.length < s.minItems) {
        items = [...items, undefined];
      }
      return items.map((item) => _fit(item, s.items));
    }
    case "number":
    case "integer": {
      const min = typeof s.minimum === "number" ? s.minimum : -Infinity;
      const max = typeof s.maximum === "number" ? s.maximum : Infinity;
      let n = typeof value === "number" ? value : Number.isFinite(min + max) ? (min + max) / 2 : 0;
      n = Math.min(max, Math.max(min, n));
      return type === "integer" ? Math.round(n) : n;
    }
    case "string": {
      if (Array.isArray(s.enum)) return s.enum.includes(value) ? value : s.enum[0];
      return typeof value === "string" ? value : "";
    }
    case "boolean":
      return typeof value === "boolean" ? value : false;
    default:
      return value;
  }
}

if (import.meta.main) {
  const flag = (name: string) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Deno.args[i + 1] : undefined;
  };
  const number = (name: string) => {
    const v = flag(name);
    return v === undefined ? undefined : Number(v);
  };
  const options: GeminiStandInOptions = {};
  const port = number("port");
  const key = flag("key");
  const latencyMs = number("latency-ms");
  const rpm = number("rpm");
  if (port !== undefined) options.port = port;
  if (key !== undefined) options.key = key;
  if (latencyMs !== undefined) options.latencyMs = latencyMs;
  if (rpm !== undefined) options.rpm = rpm;
  const standIn = await startGeminiStandIn(options);
  // deno-lint-ignore no-console
  console.log(standIn.url);
  Deno.addSignalListener("SIGINT", () => void standIn.close().then(() => Deno.exit(0)));
}
