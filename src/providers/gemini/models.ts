/**
 * What retake knows about Gemini's models: prices, the image models and their sizes, and the ids
 * Gemini has retired or routes to another model. Facts as of 2026-12-01; each says where it
 * comes from, `[3p]` where only third parties confirm it.
 *
 * @module
 */

/**
 * Price of one model in USD per 1M tokens; output includes thinking tokens. Image models bill
 * their output images as tokens at `image`.
 */
export interface GeminiTokenPrice {
  input: number;
  output: number;
  /** USD per 1M output image tokens, for image models. */
  image?: number | undefined;
  /**
   * USD per 1M input tokens Gemini read from its cache (`cachedContentTokenCount`).
   * @default {a tenth of `input`, as Google's pricing page lists context caching}
   */
  cached?: number | undefined;
}

/**
 * What `prompt` input tokens cost at `rates`, `cached` of them read from Gemini's cache (part of
 * the prompt's count, billed at the cached rate), in USD × 1e6.
 */
export function inputCost(prompt: number, cached: number, rates: GeminiTokenPrice): number {
  const fromCache = Math.min(Math.max(0, cached), prompt);
  return (prompt - fromCache) * rates.input + fromCache * (rates.cached ?? rates.input / 10);
}

/** Default model for critique and refinement: the current vision-capable Flash. */
export const DEFAULT_GEMINI_MODEL = "gemini-3.8-flash";

/** Default image model: Nano Banana 2.1, Google's recommended image model since 2026-10-07. */
export const DEFAULT_GEMINI_IMAGE_MODEL = "gemini-nano-banana-2.1";

/**
 * Paid-tier prices in USD per 1M tokens for the day `date` (text prompts up to 200k tokens).
 * The 3.6 to 3.8 Flash models are at half price until 2026-12-31, so the table depends on the
 * date.
 *
 * - 3.8 Flash: Google's pricing page as transcribed 2026-09-20 and 2026-10-07.
 * - 3.6 Flash: $1.50 / $7.50 on Google's "what's new in 3.6" page; the half-price promotion for
 *   3.6–3.8 through 2026 [3p: release notes of PromptLab v2.5.1 and agent-telemetry v1.6.6].
 * - 3.5 Flash-Lite: pricing transcription 2026-10-07. 2.5 Flash-Lite: transcription 2026-09-20.
 * - 3.1 Flash-Lite $0.25 / $1.50 and 3.1 Pro Preview $2 / $12 [3p: Vercel AI Gateway, apiyi,
 *   inference.sh listings, which agree].
 * - Image models bill output images at `image` per 1M tokens: 3.1 Flash Image $60 (about
 *   $0.067 per 1K image), 3 Pro Image $120, Nano Banana 2.1 $30 ($0.0336 per 1K image, text
 *   $1.50 / $7.50) [3p: LiteLLM's and aifreeapi's transcriptions of Google's page]; 3.1 Flash
 *   Lite Image is an estimate (announced as half the cost of Nano Banana 2).
 *
 * @example
 * ```ts
 * import { defaultGeminiPrices } from "./models.ts";
 * const prices = defaultGeminiPrices(new Date("2027-02-01"));
 * if (prices["gemini-3.8-flash"]?.input !== 1.5) throw new Error("expected the 2027 price");
 * ```
 */
export function defaultGeminiPrices(date: Date = new Date()): Record<string, GeminiTokenPrice> {
  const promotion = date < new Date("2027-01-01T00:00:00Z");
  const flash = promotion ? { input: 0.75, output: 3.75 } : { input: 1.5, output: 7.5 };
  return {
    "gemini-3.8-flash": flash,
    "gemini-3.6-flash": { ...flash },
    "gemini-3.5-flash-lite": { input: 0.3, output: 2.5 },
    "gemini-3.1-flash-lite": { input: 0.25, output: 1.5 },
    "gemini-3.1-pro-preview": { input: 2, output: 12 },
    "gemini-2.5-flash-lite": { input: 0.1, output: 0.4 },
    "gemini-nano-banana-2.1": { input: 1.5, output: 7.5, image: 30 },
    "gemini-3.1-flash-image": { input: 0.5, output: 3, image: 60 },
    "gemini-3.1-flash-lite-image": { input: 0.25, output: 1.5, image: 30 },
    "gemini-3-pro-image": { input: 2, output: 12, image: 120 },
  };
}

/** An output size Gemini's image models take as `imageConfig.imageSize`. */
export type GeminiImageSize = "512" | "1K" | "2K" | "4K";

/** One image model. */
export interface GeminiImageModel {
  id: string;
  aliases: readonly string[];
  /** The sizes it makes, smallest first. */
  sizes: readonly GeminiImageSize[];
  /** Output image tokens one image of each size is billed. */
  tokens: Readonly<Partial<Record<GeminiImageSize, number>>>;
}

/**
 * The image models ("Nano Banana"). Token counts per size: 3.1 Flash Image per Google's model
 * page (747, 1120, 1680, 2520); 3 Pro Image 1120 up to 2K and 2000 at 4K [3p]; Nano Banana 2.1
 * and 3.1 Flash Lite Image are assumed to follow 3.1 Flash Image (estimates). Nano Banana 2.1
 * makes no 512 px images; 3.1 Flash Lite Image only 1K.
 */
export const GEMINI_IMAGE_MODELS: readonly GeminiImageModel[] = [
  {
    id: "gemini-nano-banana-2.1",
    aliases: ["nano-banana-2.1"],
    sizes: ["1K", "2K", "4K"],
    tokens: { "1K": 1120, "2K": 1680, "4K": 2520 },
  },
  {
    id: "gemini-3.1-flash-image",
    aliases: ["nano-banana-2"],
    sizes: ["512", "1K", "2K", "4K"],
    tokens: { "512": 747, "1K": 1120, "2K": 1680, "4K": 2520 },
  },
  {
    id: "gemini-3.1-flash-lite-image",
    aliases: ["nano-banana-2-lite"],
    sizes: ["1K"],
    tokens: { "1K": 1120 },
  },
  {
    id: "gemini-3-pro-image",
    aliases: ["nano-banana-pro"],
    sizes: ["1K", "2K", "4K"],
    tokens: { "1K": 1120, "2K": 1120, "4K": 2000 },
  },
];

/** What happened to a model id: Gemini routes it to another model, or shut it down. */
export type GeminiModelChange =
  | { kind: "routed"; since?: string; to?: string }
  | { kind: "shutdown"; on: string; use: string };

/**
 * Ids Gemini has retired or routes elsewhere (Google's deprecations page unless marked). Routed
 * ids still answer, billed at the rates of the model that answers.
 */
export const GEMINI_MODEL_CHANGES: Readonly<Record<string, GeminiModelChange>> = {
  // Retired 2026-12-01; its requests go to 3.5 Flash-Lite at its rates [3p, citing Google].
  "gemini-2.5-flash": { kind: "routed", since: "2026-12-01", to: "gemini-3.5-flash-lite" },
  // Deprecated aliases that answer with a newer Flash (Google's model pages).
  "gemini-3.5-flash": { kind: "routed" },
  "gemini-3.7-flash": { kind: "routed" },
  "gemini-2.0-flash": { kind: "shutdown", on: "2026-06-01", use: "gemini-3.1-flash-lite" },
  "gemini-2.0-flash-lite": { kind: "shutdown", on: "2026-06-01", use: "gemini-3.1-flash-lite" },
  "gemini-3-pro-preview": { kind: "shutdown", on: "2026-03-09", use: "gemini-3.1-pro-preview" },
  "gemini-3.1-flash-lite-preview": {
    kind: "shutdown",
    on: "2026-05-25",
    use: "gemini-3.1-flash-lite",
  },
  "gemini-3.1-flash-image-preview": {
    kind: "shutdown",
    on: "2026-06-25",
    use: DEFAULT_GEMINI_IMAGE_MODEL,
  },
  "gemini-3-pro-image-preview": { kind: "shutdown", on: "2026-06-25", use: "gemini-3-pro-image" },
  "gemini-2.5-flash-image": {
    kind: "shutdown",
    on: "2026-10-02",
    use: DEFAULT_GEMINI_IMAGE_MODEL,
  },
  // Announced with Nano Banana 2.1 [3p: LiteLLM's release note].
  "gemini-3.1-flash-image": {
    kind: "shutdown",
    on: "2026-10-29",
    use: DEFAULT_GEMINI_IMAGE_MODEL,
  },
};

/**
 * `models/gemini-3.8-flash-001` → `gemini-3.8-flash`: the id a model version belongs to, without
 * the version or date Gemini appends (`-001`, `-01-21`, `-09-2025`, `-1206`).
 *
 * @example
 * ```ts
 * import { baseModelId } from "./models.ts";
 * const base = baseModelId("gemini-2.0-flash-thinking-exp-01-21");
 * if (base !== "gemini-2.0-flash-thinking-exp") throw new Error(base);
 * ```
 */
export function baseModelId(version: string): string {
  return version.replace(/^models\//, "").replace(/(?:-\d{2}-\d{2,4}|-\d{3,4})$/, "");
}

/**
 * The price of `model` in `prices`: its own, else that of the model it is routed to, else that
 * of its base id (a dated version). Undefined when none is known.
 */
export function priceOf(
  prices: Readonly<Record<string, GeminiTokenPrice>>,
  model: string,
): GeminiTokenPrice | undefined {
  const id = model.replace(/^models\//, "");
  const change = GEMINI_MODEL_CHANGES[id];
  const routed = change?.kind === "routed" && change.to !== undefined ? change.to : undefined;
  return prices[id] ?? (routed !== undefined ? prices[routed] : undefined) ??
    prices[baseModelId(id)];
}

/** What generation the model id belongs to (2 for `gemini-2.5-flash`), 0 when unknown. */
export function geminiGeneration(model: string): number {
  const match = /^(?:models\/)?gemini-(\d+)/.exec(model);
  return match ? Number(match[1]) : 0;
}

/** The image model of that id, if retake knows it. */
export function imageModel(id: string): GeminiImageModel | undefined {
  return GEMINI_IMAGE_MODELS.find((m) => m.id === id.replace(/^models\//, ""));
}
