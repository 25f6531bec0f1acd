/**
 * A local stand-in for an OpenAI-compatible Chat Completions server, speaking the HTTP protocol
 * the `openai` SDK uses, so the OpenAI provider, the CLI and benchmarks run without a key or a
 * network.
 *
 * - `POST /v1/chat/completions` with `Authorization: Bearer <key>`; anything else answers 401
 *   `invalid_api_key`, as OpenAI does. An unknown model answers 404 `model_not_found`.
 * - `GET /v1/models` lists the models (free on the real service), recorded in `modelLists`, not
 *   `requests`; `listModels: "empty"` lists none, `false` answers 404, as some local servers do.
 * - With an image it answers a critique derived from the prompt text and the image's size
 *   (deterministic: same request, same critique), answering the brief's checks when the
 *   `response_format` schema asks for `checks`. Text-only it answers a brief (the schema asks for
 *   checks with a `question`: one per comma-separated part of the prompt), or else a refinement
 *   that adds the critique's first suggestions to the round's prompt, with an edit
 *   `instruction` when the schema asks for one.
 * - `usage` counts ⌈chars / 4⌉ tokens for text, and 85 tokens per image at `detail: "low"`,
 *   else 85 + 170 per 512 px tile, as OpenAI's tile rule does.
 * - Every chat completion's answer carries `openai-processing-ms`, the time from the request's
 *   arrival to the answer, as OpenAI sends it.
 * - Faults are chosen per request by a token in the prompt text, e.g. `[openai:429-once]`, or
 *   programmatically with {@linkcode OpenAIStandIn.inject}. See {@linkcode OPENAI_FAULTS}.
 *
 * Run as a script: `deno run --allow-net --allow-ffi --allow-env --allow-read --allow-sys
 * tests/openai_standin.ts --port 8788 --key test-key`.
 *
 * @module
 */
import sharp from "sharp";
import { randomFromSchema, seeded } from "./schema_answers.ts";

/**
 * Scripted failure modes. Those ending in `-once` fail only the first request for each distinct
 * content (model + messages), so an identical retry, or the provider's own retry with more
 * output room, succeeds; the others fail every time.
 */
export const OPENAI_FAULTS = [
  /** 429 `rate_limit_exceeded` with `retry-after` (seconds) and `retry-after-ms`. */
  "429-once",
  "429",
  /** 429 `insufficient_quota`: the account has no credit; no retry helps. */
  "quota",
  /** 500 `server_error`. */
  "500-once",
  "500",
  /** 503 with an HTML body, as a proxy or load balancer sends it. */
  "html-503-once",
  /** 200 `stop` with text that is not JSON. */
  "bad-json-once",
  "bad-json",
  /** 200 with the answer cut in the middle, `finish_reason: "length"`, all output tokens billed. */
  "length-once",
  "length",
  /** 200 with no content and `finish_reason: "content_filter"`. */
  "content-filter",
  /** 200 with `message.refusal` set, as Structured Outputs reports a refusal. */
  "refusal",
  /** 400 `invalid_request_error` about `response_format` (a setting every call sends). */
  "400-setting",
  /** 400 `invalid_request_error` about this request's image. */
  "400-image",
  /**
   * Never answer until the stand-in closes (Deno's `request.signal` does not report a client that
   * gave up on a kept-alive connection, so there is no earlier point to end it).
   */
  "hang",
] as const;

/** One scripted failure mode. */
export type OpenAIFault = typeof OPENAI_FAULTS[number];

/** Options for {@linkcode startOpenAIStandIn}. */
export interface OpenAIStandInOptions {
  /** The only API key accepted. @default {"test-openai-key"} */
  key?: string;
  /** Port on 127.0.0.1; 0 picks a free one. @default {0} */
  port?: number;
  /** Delay before every chat answer, in ms. @default {0} */
  latencyMs?: number;
  /** `retry-after` sent with the 429 faults, in ms. @default {2000} */
  retryAfterMs?: number;
  /** The model ids that exist and are listed. @default {["gpt-5.4-mini", "gpt-4o-mini", "llava:latest"]} */
  models?: string[];
  /**
   * What `GET /v1/models` answers: the models (true), an empty list (`"empty"`), or 404 (false).
   * @default {true}
   */
  listModels?: boolean | "empty";
  /**
   * The `model` an answer names for the model asked for, as OpenAI names the snapshot that
   * answered. @default {the model asked for}
   */
  answerModel?: (model: string) => string;
  /**
   * Answers drawn at random from the request's `response_format` JSON Schema
   * (`schema_answers.ts`), as a server that keeps only to the letter of the schema may answer;
   * request n uses seed `seed * 10007 + n`. @default {undefined} (answers computed from the image)
   */
  answers?: { seed: number };
}

/** An answer to replay as it stands: a status, a JSON body and headers. */
export interface RecordedAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** What the stand-in saw of one chat request. */
export interface RecordedRequest {
  model: string;
  /** Whether the bearer token matched. */
  keyValid: boolean;
  /** The `Authorization` header as sent, or null. */
  authorization: string | null;
  /** The system message. */
  system: string;
  /** The user text parts joined by newlines. */
  prompt: string;
  hasImage: boolean;
  /** The first image: its data URL's media type, decoded size, and `detail`. */
  image?: { mimeType: string; width: number; height: number; bytes: number; detail?: string };
  /** The first image's URL up to the first comma, e.g. `data:image/jpeg;base64`. */
  imageUrlPrefix?: string;
  /** `response_format` as sent. */
  responseFormat?: unknown;
  /** `max_completion_tokens` or `max_tokens`, whichever was sent. */
  maxTokens?: number;
  /** The request body as sent, with image data replaced by its length. */
  body: Record<string, unknown>;
  /** Request headers as sent (Authorization included). */
  headers: Record<string, string>;
  fault?: OpenAIFault;
  /** HTTP status answered (0 while the answer is pending, e.g. `hang`). */
  status: number;
}

/** What the stand-in saw of one `GET /v1/models`. */
export interface RecordedModelList {
  keyValid: boolean;
  status: number;
}

/** A running stand-in. */
export interface OpenAIStandIn {
  /** API root for the SDK's `baseURL`, e.g. `http://127.0.0.1:41234/v1`. */
  url: string;
  /** The key it accepts. */
  key: string;
  /** Every chat request, in arrival order. */
  requests: RecordedRequest[];
  /** Every model list call, in arrival order. */
  modelLists: RecordedModelList[];
  /** Applies `fault` to the next `times` chat requests that carry a valid key. */
  inject(fault: OpenAIFault, times?: number): void;
  /**
   * Answers the next `times` requests that carry a valid key with `answer` as it stands, e.g.
   * a response body recorded from the real service. @default {times: Infinity}
   */
  replay(answer: RecordedAnswer, times?: number): void;
  /** Forgets requests, injected faults and `-once` memory. */
  reset(): void;
  /** Ends pending answers and stops the server; resolves once it is down. */
  close(): Promise<void>;
}

const FAULT_TOKEN = /\[openai:([a-z0-9-]+)\]/g;

/** Starts a stand-in on 127.0.0.1. */
export function startOpenAIStandIn(options: OpenAIStandInOptions = {}): Promise<OpenAIStandIn> {
  const key = options.key ?? "test-openai-key";
  const latencyMs = options.latencyMs ?? 0;
  const retryAfterMs = options.retryAfterMs ?? 2000;
  const models = options.models ?? ["gpt-5.4-mini", "gpt-4o-mini", "llava:latest"];
  const known = (model: string) => models.includes(model) || models.includes(`${model}:latest`);
  const requests: RecordedRequest[] = [];
  const replays: Array<{ answer: RecordedAnswer; left: number }> = [];
  const modelLists: RecordedModelList[] = [];
  const injected: OpenAIFault[] = [];
  const failedOnce = new Set<string>();
  const closing = new AbortController();
  let counter = 0;

  const handler = async (req: Request): Promise<Response> => {
    const arrived = performance.now();
    const url = new URL(req.url);
    const text = await req.text();
    const authorization = req.headers.get("authorization");
    const keyValid = authorization === `Bearer ${key}`;
    const id = `${(++counter).toString(36)}${Date.now().toString(36)}`;
    const headers = { "x-request-id": `req_standin_${id}` };

    if (url.pathname === "/v1/models" && req.method === "GET") {
      const entry: RecordedModelList = { keyValid, status: 0 };
      modelLists.push(entry);
      const response = !keyValid
        ? _badKey(authorization)
        : options.listModels === false
        ? _error(404, "Not Found", "invalid_request_error", null, "unknown_url")
        : Response.json({
          object: "list",
          data: (options.listModels === "empty" ? [] : models).map((m) => ({
            id: m,
            object: "model",
            created: 1767225600,
            owned_by: "standin",
          })),
        }, { headers });
      entry.status = response.status;
      return response;
    }
    if (url.pathname !== "/v1/chat/completions" || req.method !== "POST") {
      return _error(
        404,
        `Invalid URL (${req.method} ${url.pathname})`,
        "invalid_request_error",
        null,
        "unknown_url",
      );
    }

    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text);
      if (body === null || typeof body !== "object") throw new TypeError("not an object");
    } catch {
      return _error(
        400,
        "We could not parse the JSON body of your request.",
        "invalid_request_error",
      );
    }
    const parsed = await _parseBody(body);
    const record: RecordedRequest = {
      model: parsed.model,
      keyValid,
      authorization,
      system: parsed.system,
      prompt: parsed.prompt,
      hasImage: parsed.image !== undefined,
      ...(parsed.image && { image: parsed.image }),
      ...(parsed.imageUrlPrefix !== undefined && { imageUrlPrefix: parsed.imageUrlPrefix }),
      ...(body.response_format !== undefined && { responseFormat: body.response_format }),
      ...(parsed.maxTokens !== undefined && { maxTokens: parsed.maxTokens }),
      body: parsed.redactedBody,
      headers: Object.fromEntries(req.headers),
      status: 0,
    };
    requests.push(record);
    const answer = (response: Response) => {
      record.status = response.status;
      // As OpenAI times its answers: from the request's arrival to the answer.
      response.headers.set("openai-processing-ms", String(Math.round(performance.now() - arrived)));
      return response;
    };
    if (!keyValid) return answer(_badKey(authorization));
    const replayed = replays[0];
    if (replayed !== undefined) {
      if (--replayed.left <= 0) replays.shift();
      const { status, body: recorded, headers: recordedHeaders } = replayed.answer;
      return answer(Response.json(recorded, { status, headers: recordedHeaders ?? {} }));
    }
    if (!known(parsed.model)) {
      return answer(_error(
        404,
        `The model \`${parsed.model}\` does not exist or you do not have access to it.`,
        "invalid_request_error",
        null,
        "model_not_found",
      ));
    }
    if (parsed.invalid) {
      return answer(_error(400, parsed.invalid, "invalid_request_error", "messages"));
    }

    const fault = injected.shift() ?? _tokenFault(parsed, failedOnce);
    if (fault) record.fault = fault;
    if (fault === "hang") {
      await _until(Infinity, closing.signal);
      return answer(_error(503, "The stand-in is shutting down.", "server_error"));
    }
    if (latencyMs > 0 && !(await _until(latencyMs, closing.signal))) {
      return answer(_error(503, "The stand-in is shutting down.", "server_error"));
    }

    const retryHeaders = {
      "retry-after": String(Math.ceil(retryAfterMs / 1000)),
      "retry-after-ms": String(retryAfterMs),
    };
    switch (fault) {
      case "429":
      case "429-once":
        return answer(_error(
          429,
          `Rate limit reached for ${parsed.model} on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in ${
            retryAfterMs / 1000
          }s.`,
          "requests",
          null,
          "rate_limit_exceeded",
          retryHeaders,
        ));
      case "quota":
        return answer(_error(
          429,
          "You exceeded your current quota, please check your plan and billing details.",
          "insufficient_quota",
          null,
          "insufficient_quota",
        ));
      case "500":
      case "500-once":
        return answer(_error(
          500,
          "The server had an error while processing your request. Sorry about that!",
          "server_error",
        ));
      case "html-503-once":
        return answer(
          new Response(
            "<html><head><title>503 Service Temporarily Unavailable</title></head><body><h1>503</h1></body></html>",
            { status: 503, headers: { "content-type": "text/html; charset=UTF-8" } },
          ),
        );
      case "400-setting":
        return answer(_error(
          400,
          "Invalid schema for response_format 'critique': In context=(), 'additionalProperties' is required to be supplied and to be false.",
          "invalid_request_error",
          "response_format",
          "invalid_json_schema",
        ));
      case "400-image":
        return answer(_error(
          400,
          "You uploaded an unsupported image. Please make sure your image is valid.",
          "invalid_request_error",
          null,
          "invalid_image_format",
        ));
    }

    const asked = _askedProperties(body.response_format);
    const sentSchema = (body.response_format as { json_schema?: { schema?: unknown } } | undefined)
      ?.json_schema?.schema;
    const value = options.answers !== undefined && sentSchema !== undefined
      ? randomFromSchema(sentSchema, seeded(options.answers.seed * 10007 + requests.length))
      : parsed.image
      ? _critique(parsed, asked.has("checks"))
      : asked.has("question")
      ? _brief(parsed.prompt)
      : _refinement(parsed.prompt, asked.has("instruction"));
    let content: string | null = JSON.stringify(value);
    let finish = "stop";
    let refusal: string | null = null;
    let outputTokens = Math.ceil(content.length / 4);
    const limit = parsed.maxTokens ?? 16_384;
    if (fault === "bad-json" || fault === "bad-json-once") {
      content = `Here is the evaluation you asked for:\n${content.slice(0, -1)}`;
      outputTokens = Math.ceil(content.length / 4);
    } else if (fault === "length" || fault === "length-once" || outputTokens > limit) {
      content = content.slice(0, Math.floor(content.length / 3));
      outputTokens = limit;
      finish = "length";
    } else if (fault === "content-filter") {
      content = null;
      outputTokens = 0;
      finish = "content_filter";
    } else if (fault === "refusal") {
      refusal = "I'm sorry, I can't help with that request.";
      content = null;
      outputTokens = Math.ceil(refusal.length / 4);
    }
    return answer(Response.json({
      id: `chatcmpl-standin${id}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: options.answerModel?.(parsed.model) ?? parsed.model,
      choices: [{
        index: 0,
        message: { role: "assistant", content, refusal },
        logprobs: null,
        finish_reason: finish,
      }],
      usage: {
        prompt_tokens: parsed.promptTokens,
        completion_tokens: outputTokens,
        total_tokens: parsed.promptTokens + outputTokens,
      },
    }, { headers }));
  };

  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      onListen: ({ port }) => {
        resolve({
          url: `http://127.0.0.1:${port}/v1`,
          key,
          requests,
          modelLists,
          replay(recorded, times = Infinity) {
            replays.push({ answer: recorded, left: times });
          },
          inject(fault, times = 1) {
            for (let i = 0; i < times; i++) injected.push(fault);
          },
          reset() {
            replays.length = 0;
            requests.length = 0;
            modelLists.length = 0;
            injected.length = 0;
            failedOnce.clear();
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
  model: string;
  system: string;
  prompt: string;
  image?: { mimeType: string; width: number; height: number; bytes: number; detail?: string };
  imageUrlPrefix?: string;
  maxTokens?: number;
  promptTokens: number;
  redactedBody: Record<string, unknown>;
  /** Fingerprint of model + messages, for `-once` faults. */
  contentKey: string;
  /** Why the request is a 400, if it is. */
  invalid?: string;
}

async function _parseBody(body: Record<string, unknown>): Promise<ParsedBody> {
  const model = typeof body.model === "string" ? body.model : "";
  const messages = Array.isArray(body.messages) ? body.messages as unknown[] : [];
  const system: string[] = [];
  const prompt: string[] = [];
  let image: ParsedBody["image"];
  let imageUrlPrefix: string | undefined;
  let imageTokens = 0;
  let invalid: string | undefined;
  const redactedMessages: unknown[] = [];
  for (const message of messages) {
    const m = (message ?? {}) as { role?: unknown; content?: unknown };
    const texts = m.role === "system" || m.role === "developer" ? system : prompt;
    if (typeof m.content === "string") {
      texts.push(m.content);
      redactedMessages.push(m);
      continue;
    }
    const parts = Array.isArray(m.content) ? m.content as Array<Record<string, unknown>> : [];
    const redactedParts: unknown[] = [];
    for (const part of parts) {
      if (part.type === "text" && typeof part.text === "string") {
        texts.push(part.text);
        redactedParts.push(part);
        continue;
      }
      if (part.type !== "image_url") {
        redactedParts.push(part);
        continue;
      }
      const imageUrl = (part.image_url ?? {}) as { url?: unknown; detail?: unknown };
      const url = typeof imageUrl.url === "string" ? imageUrl.url : "";
      const detail = typeof imageUrl.detail === "string" ? imageUrl.detail : undefined;
      redactedParts.push({
        ...part,
        image_url: {
          ...imageUrl,
          url: `${url.slice(0, Math.min(40, url.indexOf(",") + 1))}…(${url.length} chars)`,
        },
      });
      const data = /^data:([^;,]+);base64,(.*)$/s.exec(url);
      if (!data) {
        invalid ??= "Invalid image URL: this stand-in accepts only data: URLs.";
        continue;
      }
      const bytes = Uint8Array.from(atob(data[2]!), (c) => c.charCodeAt(0));
      let width = 0;
      let height = 0;
      try {
        const meta = await sharp(bytes).metadata();
        width = meta.width ?? 0;
        height = meta.height ?? 0;
      } catch {
        invalid ??= "You uploaded an unsupported image. Please make sure your image is valid.";
        continue;
      }
      if (image === undefined) {
        image = {
          mimeType: data[1]!,
          width,
          height,
          bytes: bytes.length,
          ...(detail !== undefined && { detail }),
        };
        imageUrlPrefix = url.slice(0, url.indexOf(","));
      }
      imageTokens += openaiImageTokens(width, height, detail);
    }
    redactedMessages.push({ ...m, content: redactedParts });
  }
  const max = body.max_completion_tokens ?? body.max_tokens;
  const systemText = system.join("\n");
  const promptText = prompt.join("\n");
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(JSON.stringify([model, body.messages])),
  );
  return {
    model,
    system: systemText,
    prompt: promptText,
    ...(image && { image }),
    ...(imageUrlPrefix !== undefined && { imageUrlPrefix }),
    ...(typeof max === "number" && { maxTokens: max }),
    promptTokens: Math.ceil((systemText.length + promptText.length) / 4) + imageTokens,
    redactedBody: { ...body, messages: redactedMessages },
    contentKey: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join(""),
    ...(invalid !== undefined && { invalid }),
  };
}

/**
 * OpenAI's tile rule for what one image costs in input tokens: 85 at `detail: "low"`, else 85
 * plus 170 per 512 px tile after fitting in 2048 px and scaling the short side to 768 px.
 */
export function openaiImageTokens(width: number, height: number, detail?: string): number {
  if (detail === "low") return 85;
  let w = width;
  let h = height;
  const fit = Math.min(1, 2048 / Math.max(w, h));
  w *= fit;
  h *= fit;
  const shrink = Math.min(1, 768 / Math.min(w, h));
  w *= shrink;
  h *= shrink;
  return 85 + 170 * Math.ceil(w / 512) * Math.ceil(h / 512);
}

function _tokenFault(parsed: ParsedBody, failedOnce: Set<string>): OpenAIFault | undefined {
  for (const [, name] of parsed.prompt.matchAll(FAULT_TOKEN)) {
    if (!(OPENAI_FAULTS as readonly string[]).includes(name!)) continue;
    const fault = name as OpenAIFault;
    if (!fault.endsWith("-once")) return fault;
    const key = `${fault}|${parsed.contentKey}`;
    if (failedOnce.has(key)) continue;
    failedOnce.add(key);
    return fault;
  }
  return undefined;
}

const round1 = (n: number) => Math.round(Math.min(10, Math.max(0, n)) * 10) / 10;

/** A critique derived from the prompt text and the image's size: same request, same critique. */
function _critique(parsed: ParsedBody, withChecks: boolean): Record<string, unknown> {
  let hash = 0;
  for (const c of parsed.prompt) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  const pick = (shift: number) => ((hash >>> shift) % 40) / 10;
  const image = parsed.image!;
  const criteria = {
    promptAdherence: round1(5 + pick(0)),
    composition: round1(4.5 + pick(3)),
    lighting: round1(5 + pick(6)),
    mood: round1(4 + pick(9)),
    technicalQuality: round1(5.5 + pick(12) - (image.width < 256 ? 1 : 0)),
  };
  const score = round1(
    criteria.promptAdherence * 0.4 + criteria.composition * 0.15 + criteria.lighting * 0.15 +
      criteria.mood * 0.15 + criteria.technicalQuality * 0.15,
  );
  const problems: string[] = [];
  const suggestions: string[] = [];
  if (criteria.lighting < 7) {
    problems.push("The light on the main subject is flat and comes from no clear direction");
    suggestions.push("warm directional side light on the main subject");
  }
  if (criteria.composition < 7) {
    problems.push("The subject sits dead centre with empty space on both sides");
    suggestions.push("rule-of-thirds framing with a foreground element");
  }
  if (criteria.mood < 7) {
    problems.push("The atmosphere reads neutral rather than the mood the prompt asks for");
    suggestions.push("atmospheric haze and a colour palette that carries the mood");
  }
  // The brief's checks as the critique text lists them: `c1 (entity): Is there a kite?`.
  const checks = withChecks
    ? [...parsed.prompt.matchAll(/^(c\d+) \(([a-z]+)\): (.*)$/gm)].map(([, id, , question], i) => {
      const passed = ((hash >>> i) & 3) !== 0;
      return {
        id,
        passed,
        reason: passed ? `Yes: ${question}` : `No: the image does not show it (${question})`,
        fix: passed ? null : `make it unmistakable: ${question!.replace(/\?$/, "")}`,
      };
    })
    : undefined;
  return {
    ...(checks !== undefined && { checks }),
    criteria,
    problems,
    strengths: ["The subject the prompt names is present"],
    suggestions,
    score,
    summary: `A ${image.width}×${image.height} image; overall ${score}/10.`,
  };
}

/** A brief: one entity check per comma-separated part of the prompt, at most 6. */
function _brief(text: string): Record<string, unknown> {
  const prompt = /^Prompt: (.*)$/m.exec(text)?.[1] ?? text;
  const parts = prompt.replace(/\[openai:[a-z0-9-]+\]/g, "").split(/,| and /)
    .map((part) => part.trim()).filter((part) => part !== "").slice(0, 6);
  return {
    checks: (parts.length > 0 ? parts : ["the subject"]).map((part, i) => ({
      id: `c${i + 1}`,
      question: `Does the image show ${part}?`,
      kind: "entity",
    })),
  };
}

/** The property names anywhere in the `response_format` JSON Schema. */
function _askedProperties(format: unknown): Set<string> {
  const names = new Set<string>();
  const walk = (node: unknown) => {
    if (node === null || typeof node !== "object") return;
    const properties = (node as { properties?: unknown }).properties;
    if (properties && typeof properties === "object") {
      for (const name of Object.keys(properties)) names.add(name);
    }
    for (const child of Object.values(node)) walk(child);
  };
  walk(format);
  return names;
}

/** A refinement that appends the critique's first suggestions to the round's prompt. */
function _refinement(text: string, withInstruction: boolean): Record<string, unknown> {
  const current = /^Prompt of round \d+: (.*)$/m.exec(text)?.[1] ??
    text.split("\n").find((line) => line.trim() !== "") ?? "an image";
  const critique = _embeddedJson(text);
  const strings = (value: unknown) =>
    Array.isArray(value) ? value.filter((s): s is string => typeof s === "string") : [];
  const suggestions = strings(critique?.suggestions);
  const problems = strings(critique?.problems);
  const additions = (suggestions.length > 0 ? suggestions : ["a clear focal point"])
    .filter((s) => !current.includes(s))
    .slice(0, 2);
  return {
    changes: additions.map((s, i) => ({
      change: `Added "${s}"`,
      reason: problems[i] ?? "The critique asked for it",
    })),
    prompt: [current.trim(), ...additions].join(", ").slice(0, 1500),
    ...(withInstruction && { instruction: `add ${additions[0] ?? "a clear focal point"}` }),
  };
}

/** The first JSON object embedded in `text` (the refine request quotes the critique as JSON). */
function _embeddedJson(text: string): Record<string, unknown> | undefined {
  // After the critique's heading: the context before it may quote extra fields as JSON too.
  const start = text.indexOf("{", Math.max(0, text.indexOf("Critique of the image")));
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

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function _until(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = Number.isFinite(ms)
      ? setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms)
      : undefined;
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function _error(
  status: number,
  message: string,
  type: string,
  param: string | null = null,
  code: string | null = null,
  headers: Record<string, string> = {},
): Response {
  return Response.json({ error: { message, type, param, code } }, { status, headers });
}

function _badKey(authorization: string | null): Response {
  if (authorization === null || !authorization.startsWith("Bearer ")) {
    return _error(
      401,
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      "invalid_request_error",
    );
  }
  const sent = authorization.slice("Bearer ".length);
  const shown = sent.length > 8 ? `${sent.slice(0, 3)}*****${sent.slice(-4)}` : "*****";
  return _error(
    401,
    `Incorrect API key provided: ${shown}. You can find your API key at https://platform.openai.com/account/api-keys.`,
    "invalid_request_error",
    null,
    "invalid_api_key",
  );
}

if (import.meta.main) {
  const flag = (name: string) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Deno.args[i + 1] : undefined;
  };
  const options: OpenAIStandInOptions = {};
  const port = flag("port");
  const key = flag("key");
  const latency = flag("latency-ms");
  if (port !== undefined) options.port = Number(port);
  if (key !== undefined) options.key = key;
  if (latency !== undefined) options.latencyMs = Number(latency);
  const standIn = await startOpenAIStandIn(options);
  // deno-lint-ignore no-console
  console.log(standIn.url);
  Deno.addSignalListener("SIGINT", () => void standIn.close().then(() => Deno.exit(0)));
}
