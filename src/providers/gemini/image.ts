/**
 * Gemini as image generator, with its image models ("Nano Banana") through `generateContent`:
 * `responseModalities: ["IMAGE"]`, the size as `imageConfig` (an aspect ratio and a size tier:
 * Gemini makes fixed sizes, so `--size` picks the nearest), the image back inline as base64
 * `inlineData`. A seed is sent, but the answer names none, so none is recorded. Cost comes from the
 * answer's token counts (output image tokens at the model's image rate), or from the size's
 * published token count when an answer has none.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { GenerateContentConfig, GenerateContentResponse, Part } from "@google/genai/web";
import { getLogger } from "@logtape/logtape";
import sharp from "sharp";
import { InputError, ProviderError } from "../../errors.ts";
import { type TimedFetch, timedFetch } from "../_http.ts";
import { clip } from "../_llm_prompts.ts";
import {
  BLOCKING_FINISH,
  connectGemini,
  type GeminiConnection,
  type GeminiConnectionOptions,
  serviceMsOf,
} from "./api.ts";
import { answeredInBatch } from "./batch.ts";
import {
  DEFAULT_GEMINI_IMAGE_MODEL,
  defaultGeminiPrices,
  GEMINI_IMAGE_MODELS,
  type GeminiImageSize,
  type GeminiTokenPrice,
  imageModel,
  inputCost,
  priceOf,
} from "./models.ts";
import type { GeneratedImage, GenerateRequest, ImageFormat, ImageGenerator } from "../provider.ts";
import { failedCall } from "../_http.ts";

const PROVIDER = "gemini";
const log = getLogger(["retake", "gemini"]);

/** The aspect ratios every Gemini image model takes. */
const RATIOS: ReadonlyArray<readonly [number, number]> = [
  [1, 1],
  [2, 3],
  [3, 2],
  [3, 4],
  [4, 3],
  [4, 5],
  [5, 4],
  [9, 16],
  [16, 9],
  [21, 9],
];

/** About how many pixels each size tier has. */
const TIER_PIXELS: Record<GeminiImageSize, number> = {
  "512": 512 ** 2,
  "1K": 1024 ** 2,
  "2K": 2048 ** 2,
  "4K": 4096 ** 2,
};

/** Output image tokens per size for a model retake does not know (3.1 Flash Image's). */
const DEFAULT_TOKENS: Record<GeminiImageSize, number> = {
  "512": 747,
  "1K": 1120,
  "2K": 1680,
  "4K": 2520,
};

/**
 * Input and thinking tokens one generation may spend besides its image, for the estimate: a
 * prompt at its 4,000-character limit is about 1,000 tokens; image models think at most a few
 * hundred tokens by default.
 */
const PROMPT_TOKEN_BOUND = 2_000;
const THINKING_TOKEN_BOUND = 2_000;

/** Options for {@linkcode createGeminiGenerator}. */
export interface GeminiImageOptions extends GeminiConnectionOptions {
  /**
   * The image models this run uses, each checked with `models.get` before the run.
   * @default {["gemini-nano-banana-2.1"]}
   */
  models?: readonly string[] | undefined;
  /** The size asked for, to warn once when Gemini cannot make its aspect ratio. */
  size?: { width: number; height: number } | undefined;
  /**
   * USD per 1M tokens by model id (`image` for output image tokens), merged over the
   * built-in table. @default {defaultGeminiPrices()}
   */
  prices?: Record<string, GeminiTokenPrice> | undefined;
}

/**
 * Creates a generator that has Gemini's image models draw each prompt.
 *
 * @example
 * ```ts ignore
 * const generator = createGeminiGenerator({ apiKey: Deno.env.get("GEMINI_API_KEY")! });
 * const image = await generator.generate({ ...request, model: resolveGeminiImageModel() });
 * ```
 */
export function createGeminiGenerator(options: GeminiImageOptions): ImageGenerator {
  return geminiImageGenerator(connectGemini(options), options);
}

/**
 * A Gemini image model id from an alias (`nano-banana-2.1`) or an id; the default for none.
 * Throws an `InputError` for a name that cannot be a Gemini model or is a text-only model.
 *
 * @example
 * ```ts
 * import { resolveGeminiImageModel } from "./image.ts";
 * if (resolveGeminiImageModel("nano-banana-pro") !== "gemini-3-pro-image") throw new Error("alias");
 * if (resolveGeminiImageModel() !== "gemini-nano-banana-2.1") throw new Error("default");
 * ```
 */
export function resolveGeminiImageModel(name?: string): string {
  const given = name?.trim() ?? "";
  if (given === "") return DEFAULT_GEMINI_IMAGE_MODEL;
  const byAlias = GEMINI_IMAGE_MODELS.find((m) => m.aliases.includes(given.toLowerCase()));
  if (byAlias !== undefined) return byAlias.id;
  const id = given.replace(/^models\//, "");
  const aliases = GEMINI_IMAGE_MODELS.flatMap((m) => m.aliases).join(", ");
  if (!/^[\w][\w.-]*$/.test(id)) {
    throw new InputError(
      `Cannot use model '${given}' with Gemini: expected one of ${aliases} or a Gemini image model id such as ${DEFAULT_GEMINI_IMAGE_MODEL}`,
    );
  }
  const price = defaultGeminiPrices()[id];
  if (price !== undefined && price.image === undefined) {
    throw new InputError(
      `Cannot generate images with Gemini model '${id}' as it answers only in text: choose an image model (${aliases}) with --model`,
    );
  }
  return id;
}

/** What Gemini is asked to make for a size. */
export interface GeminiImageShape {
  /** `imageConfig.aspectRatio`, e.g. `4:3`. */
  aspectRatio: string;
  /** `imageConfig.imageSize`, e.g. `1K`. */
  imageSize: GeminiImageSize;
}

/**
 * The aspect ratio nearest to `width`×`height` and the smallest size tier of `model` that has
 * about as many pixels (the largest it makes, for bigger sizes).
 *
 * @example
 * ```ts
 * import { geminiImageShape } from "./image.ts";
 * const shape = geminiImageShape("gemini-nano-banana-2.1", 1024, 768);
 * if (shape.aspectRatio !== "4:3" || shape.imageSize !== "1K") throw new Error("4:3 at 1K");
 * ```
 */
export function geminiImageShape(model: string, width: number, height: number): GeminiImageShape {
  const target = Math.log(width / height);
  let best = RATIOS[0]!;
  for (const ratio of RATIOS) {
    if (
      Math.abs(Math.log(ratio[0] / ratio[1]) - target) <
        Math.abs(Math.log(best[0] / best[1]) - target)
    ) {
      best = ratio;
    }
  }
  const sizes = imageModel(model)?.sizes ?? ["1K", "2K", "4K"];
  const pixels = width * height;
  const imageSize = sizes.find((s) => TIER_PIXELS[s] * 1.1 >= pixels) ?? sizes.at(-1)!;
  return { aspectRatio: `${best[0]}:${best[1]}`, imageSize };
}

/** Output image tokens one image of `size` costs on `model`. */
function _imageTokens(model: string, size: GeminiImageSize): number {
  return imageModel(model)?.tokens[size] ?? DEFAULT_TOKENS[size];
}

/**
 * A generator on an existing connection (the descriptor shares one with the critic).
 * `settings.models` are checked by its `check()`.
 */
export function geminiImageGenerator(
  connection: GeminiConnection,
  settings: Pick<GeminiImageOptions, "models" | "size" | "prices">,
): ImageGenerator {
  const models = [...(settings.models ?? [DEFAULT_GEMINI_IMAGE_MODEL])];
  const drawer: Drawer = {
    connection,
    prices: { ...defaultGeminiPrices(), ...settings.prices },
    warnedNegative: new Set<string>(),
  };
  _warnAtStart(drawer, models, settings.size);
  // A plain object (the Gemini descriptor copies it with its own check): its functions hold
  // `drawer`, the generator's state.
  return {
    name: PROVIDER,
    // Gemini's image models take an image as input and change it as told: they edit themselves.
    editModel: (model) => model,
    async check(signal) {
      await Promise.all(
        models.map((model) => connection.checkModel({ model, flag: "--model" }, signal)),
      );
    },
    estimateCostUsd({ model, width, height }) {
      const rates = priceOf(drawer.prices, model);
      if (rates?.image === undefined) return undefined;
      const { imageSize } = geminiImageShape(model, width, height);
      const usd = (_imageTokens(model, imageSize) * rates.image +
        PROMPT_TOKEN_BOUND * rates.input + THINKING_TOKEN_BOUND * rates.output) /
        1e6 *
        connection.estimateShare;
      return Math.round(usd * 1e6) / 1e6;
    },
    generate: (request) => _generate(drawer, request),
  };
}

/** What a Gemini image generator keeps across calls. */
interface Drawer {
  connection: GeminiConnection;
  prices: Record<string, GeminiTokenPrice>;
  /** Models already warned that the prompts' negativePrompt is not sent. */
  warnedNegative: Set<string>;
}

/**
 * Warnings for the start of the run: a model without an image price, and a size Gemini cannot
 * draw exactly (it makes images in fixed shapes).
 */
function _warnAtStart(
  { connection, prices }: Drawer,
  models: readonly string[],
  size: { width: number; height: number } | undefined,
): void {
  for (const model of models) {
    const price = priceOf(prices, model);
    if (price?.image === undefined) {
      connection.warnAtStart(
        "No image price known for Gemini model {model}: its images are recorded at their token cost, or 0",
        { model },
      );
    }
    if (size === undefined) continue;
    const { width, height } = size;
    const shape = geminiImageShape(model, width, height);
    const [a, b] = shape.aspectRatio.split(":").map(Number) as [number, number];
    if (Math.abs(Math.log(width / height / (a / b))) > 0.02) {
      connection.warnAtStart(
        "Gemini makes images in fixed shapes: {model} draws {aspectRatio} at {imageSize} for {width}×{height}, and the saved images keep Gemini's size",
        { model, width, height, ...shape },
      );
    }
  }
}

/**
 * What an answer cost: by its token counts at the rates of the model that answered (else the
 * one asked), or, without counts, the size's published image token count.
 */
function _costOf(
  prices: Record<string, GeminiTokenPrice>,
  model: string,
  response: GenerateContentResponse,
  size: GeminiImageSize,
  answeredBy: string | undefined,
  gotImage: boolean,
): number {
  const rates = (answeredBy !== undefined ? priceOf(prices, answeredBy) : undefined) ??
    priceOf(prices, model);
  if (rates === undefined) return 0;
  const meta = response.usageMetadata;
  if (meta === undefined) {
    // No token counts (a proxy may strip them): the size's published count.
    return gotImage && rates.image !== undefined
      ? _imageTokens(model, size) * rates.image / 1e6
      : 0;
  }
  const candidates = meta.candidatesTokenCount ?? 0;
  const imageOut = meta.candidatesTokensDetails?.find((d) => d.modality === "IMAGE")
    ?.tokenCount ?? (gotImage ? candidates : 0);
  const textOut = Math.max(0, candidates - imageOut) + (meta.thoughtsTokenCount ?? 0);
  return (inputCost(meta.promptTokenCount ?? 0, meta.cachedContentTokenCount ?? 0, rates) +
    textOut * rates.output +
    imageOut * (rates.image ?? rates.output)) / 1e6;
}

/** One image: asks Gemini, checks its answer, and converts the image to the format asked for. */
async function _generate(drawer: Drawer, request: GenerateRequest): Promise<GeneratedImage> {
  const { connection, prices } = drawer;
  const { model, signal } = request;
  if (signal.aborted) throw signal.reason;
  const shape = geminiImageShape(model, request.width, request.height);
  connection.flushWarnings();
  _warnNegative(drawer, request);
  const started = performance.now();
  const timed = timedFetch();
  const response = await _send(connection, request, shape, started, timed);
  const serviceMs = serviceMsOf(response, timed);
  const modelVersion = connection.noteModelVersion(model, response);
  const requestId = response.responseId;
  const candidate = response.candidates?.[0];
  const part = _imagePart(candidate?.content?.parts);
  const costUsd = _costOf(
    prices,
    model,
    response,
    shape.imageSize,
    modelVersion,
    part !== undefined,
  ) * connection.priceShare(response);
  const batch = answeredInBatch(response);
  log.debug(
    "Gemini image generation with {model}: {status} in {durationMs} ms, {aspectRatio} at {imageSize}",
    {
      model,
      modelVersion,
      ...shape,
      status: response.promptFeedback?.blockReason
        ? `blocked ${response.promptFeedback.blockReason}`
        : candidate?.finishReason ?? "no finish reason",
      durationMs: Math.round(performance.now() - started),
      serviceMs,
      costUsd,
      requestId,
    },
  );
  // What the answer was billed, on an error that ends the call.
  const failure: ImageFailure = {
    provider: PROVIDER,
    retryable: false,
    ...(requestId !== undefined && { requestId }),
    ...(costUsd > 0 && { costUsd }),
  };
  const image = await _decode(_answerImage(connection, response, part, failure), request, failure);
  return {
    data: image.data,
    format: request.format,
    width: image.width,
    height: image.height,
    // The answer names no seed: one is sent, but Gemini does not say it reproduces the image.
    model,
    ...(modelVersion !== undefined && { modelVersion }),
    ...(requestId !== undefined && { requestId }),
    costUsd,
    ...(priceOf(prices, model)?.image === undefined && costUsd === 0 &&
      { costUnknown: true as const }),
    ...(batch && { batch: true as const }),
    ...(serviceMs !== undefined && { serviceMs }),
  };
}

/** The fields of every error that ends a call whose answer came back (and may be billed). */
interface ImageFailure {
  provider: string;
  retryable: false;
  requestId?: string;
  costUsd?: number;
}

/** Warns once per model that the prompts' negativePrompt is not sent. */
function _warnNegative({ warnedNegative }: Drawer, request: GenerateRequest): void {
  const model = request.model;
  if (request.negativePrompt === undefined || warnedNegative.has(model)) return;
  // Gemini takes no negative prompt, and "no X" written into the text tends to draw X.
  warnedNegative.add(model);
  log.warn(
    "Gemini takes no negative prompt: the prompts' negativePrompt is not sent to {model} (prompt {promptId} is the first)",
    { model, promptId: request.spec.id },
  );
}

/** Asks Gemini for the image; a failure is classified, and logged with how long it took. */
async function _send(
  connection: GeminiConnection,
  request: GenerateRequest,
  shape: GeminiImageShape,
  started: number,
  timed: TimedFetch,
): Promise<GenerateContentResponse> {
  const { model, signal } = request;
  const config: GenerateContentConfig = {
    responseModalities: ["IMAGE"],
    imageConfig: { aspectRatio: shape.aspectRatio, imageSize: shape.imageSize },
    // Gemini's seed is an int32; retake's seeds are uint32.
    seed: request.seed % 2 ** 31,
    abortSignal: signal,
    // Times the answer, for the adaptive limiter (a batch job's is not timed).
    httpOptions: { fetch: timed.fetch },
  };
  try {
    return await connection.generateContent({
      model,
      contents: [{ role: "user", parts: await _parts(request) }],
      config,
    });
  } catch (error) {
    const classified = connection.classify(error, signal, "image generation", {
      model,
      flag: "--model",
    });
    log.debug("Gemini image generation with {model} failed in {durationMs} ms: {status}", {
      model,
      ...failedCall(started, classified),
    });
    throw classified;
  }
}

/**
 * The answer's image `part`, or the error that ends the call: Gemini blocked the prompt,
 * refused to draw, or answered in words only.
 */
function _answerImage(
  connection: GeminiConnection,
  response: GenerateContentResponse,
  part: { data: string; mimeType: string } | undefined,
  failure: ImageFailure,
): { data: string; mimeType: string } {
  const candidate = response.candidates?.[0];
  const finish = candidate?.finishReason;
  const blockReason = response.promptFeedback?.blockReason;
  if (blockReason) {
    const why = response.promptFeedback?.blockReasonMessage;
    throw new ProviderError(
      `Gemini blocked the prompt (${blockReason})${
        why ? `: ${connection.redact(clip(why, 200))}` : ""
      }; rephrase the prompt`,
      failure,
    );
  }
  if (finish !== undefined && BLOCKING_FINISH.has(finish)) {
    const why = candidate?.finishMessage;
    throw new ProviderError(
      `Gemini refused to make the image (finishReason ${finish})${
        why ? `: ${connection.redact(clip(why, 200))}` : ""
      }; rephrase the prompt`,
      failure,
    );
  }
  if (part === undefined) {
    const text = (candidate?.content?.parts ?? [])
      .filter((p) => typeof p.text === "string" && p.thought !== true)
      .map((p) => p.text!.trim()).join(" ").trim();
    throw new ProviderError(
      `Gemini answered without an image (finishReason ${finish ?? "none"})${
        text !== "" ? `: '${connection.redact(clip(text, 200))}'` : ""
      }; rephrase the prompt, or choose an image model with --model`,
      failure,
    );
  }
  return part;
}

/** The answer's image in the format asked for; an unreadable one ends the call, billed. */
async function _decode(
  part: { data: string; mimeType: string },
  request: GenerateRequest,
  failure: ImageFailure,
): Promise<{ data: Uint8Array; width: number; height: number }> {
  try {
    return await _asFormat(Buffer.from(part.data, "base64"), request.format);
  } catch (error) {
    throw new ProviderError(
      `Gemini's image (${part.mimeType}) is not a usable image: ${(error as Error).message}`,
      { ...failure, cause: error },
    );
  }
}

/** The request's parts: the prompt, or for an edit the source image and what to change. */
async function _parts(request: GenerateRequest): Promise<Part[]> {
  if (request.edit === undefined) return [{ text: request.prompt }];
  const bytes = await Deno.readFile(request.edit.imagePath);
  const mimeType = /\.jpe?g$/i.test(request.edit.imagePath) ? "image/jpeg" : "image/png";
  return [
    { inlineData: { mimeType, data: Buffer.from(bytes).toString("base64") } },
    {
      text: `Edit this image: ${request.edit.instruction}\nKeep everything else as it is. ` +
        `The result should show: ${request.prompt}`,
    },
  ];
}

/**
 * The answer's image: the last inline image that is not a thought (Pro models show drafts
 * while they think).
 */
function _imagePart(parts: Part[] | undefined): { data: string; mimeType: string } | undefined {
  const images = (parts ?? []).filter((p) =>
    p.thought !== true && typeof p.inlineData?.data === "string" &&
    (p.inlineData.mimeType ?? "").startsWith("image/")
  );
  const last = images.at(-1)?.inlineData;
  return last === undefined ? undefined : { data: last.data!, mimeType: last.mimeType! };
}

/** The image in the format asked for: Gemini chooses its own (PNG, as a rule). */
async function _asFormat(
  bytes: Uint8Array,
  format: ImageFormat,
): Promise<{ data: Uint8Array; width: number; height: number }> {
  const meta = await sharp(bytes).metadata();
  if (!(meta.width > 0) || !(meta.height > 0)) throw new Error("it has no size");
  if (meta.format === format) return { data: bytes, width: meta.width, height: meta.height };
  const converted = format === "png"
    ? await sharp(bytes).png().toBuffer()
    : await sharp(bytes).flatten({ background: "#ffffff" }).jpeg({ quality: 92 }).toBuffer();
  return { data: new Uint8Array(converted), width: meta.width, height: meta.height };
}
