/**
 * The fal model families retake knows: for each endpoint its aliases, the input it takes (typed by
 * `@fal-ai/client`'s own `EndpointTypeMap`, so a field the endpoint does not have fails
 * `deno check`), the sizes it can make and its published price.
 *
 * Families differ in how a size is asked for: FLUX, Qwen-Image, Seedream, Ideogram, Recraft and
 * SD take `image_size` (pixels); Nano Banana and Imagen 4 take an `aspect_ratio` and a
 * `resolution` tier, so retake maps WIDTHxHEIGHT to the nearest of those and refuses a size none
 * comes close to. Some never report the seed they used (Nano Banana, Imagen 4, Recraft): their
 * images are recorded without one. Only Qwen-Image, Ideogram V3 and SD take a `negative_prompt`
 * (a prompt's `negativePrompt`); for the others the fal provider warns that it is not sent.
 *
 * Sources (2026): the input types of `@fal-ai/client` 1.10.1 (`types/endpoints.d.ts`), fal's
 * model pages (`fal.ai/models/<id>`, their `llms.txt` and playgrounds) for limits and prices. A
 * price no fal page was found for is left out: the cost is then recorded as unknown, and the
 * free check before the run asks fal's pricing API for it.
 *
 * @module
 */
import type { EndpointTypeMap } from "@fal-ai/client/endpoints";
import { InputError } from "../../errors.ts";
import { SIZE_PRESETS } from "../../config/sizes.ts";
import type { ImageFormat } from "../provider.ts";

/** The input type of one endpoint, as the fal client declares it. */
type In<Id extends keyof EndpointTypeMap> = EndpointTypeMap[Id]["input"];
/** The aspect ratios one endpoint takes, without `auto` (retake always asks for a shape). */
type Ratio<Id extends keyof EndpointTypeMap> = Exclude<
  NonNullable<In<Id> extends { aspect_ratio?: infer R } ? R : never>,
  "auto"
>;
/** The resolution tiers one endpoint takes. */
type Tier<Id extends keyof EndpointTypeMap> = NonNullable<
  In<Id> extends { resolution?: infer T } ? T : never
>;

/** What every input builder gets: one image of one size, with the run's settings. */
export interface FalInputRequest {
  prompt: string;
  width: number;
  height: number;
  seed: number;
  format: ImageFormat;
  /** `fal.safetyChecker`: run the endpoint's checker, or ask for its most permissive level. */
  safetyChecker: boolean;
  /** A prompt's `steps`, else `fal.steps`: sent to endpoints that take `num_inference_steps`. */
  steps: number | undefined;
  /** A prompt's `negativePrompt`: sent to endpoints that take `negative_prompt`. */
  negativePrompt?: string | undefined;
}

/** What fal charges for one endpoint, in USD. */
export interface FalPrice {
  usd: number;
  /** Per output image, or per started megapixel (2²⁰ px) of output. */
  unit: "image" | "megapixel";
  /** Each megapixel after the first, where fal charges it differently (FLUX.2 [pro]). */
  extraMegapixelUsd?: number;
  /** Multipliers of `usd` by the `resolution` tier asked for (Nano Banana 2: 4K ×2). */
  tierFactors?: Readonly<Record<string, number>>;
}

/** Sizes an `image_size` endpoint can make; absent limits are not documented. */
export interface PixelSizes {
  kind: "pixels";
  /** Each side, in px. */
  side?: { min: number; max: number };
  /** Width × height, in px, from the smallest to the largest size named. */
  area?: { min: Size; max: Size };
  /** With both: a size passes when either holds (Seedream 4.5's rule). @default {false} */
  either?: boolean;
}

/** Shapes and tiers an `aspect_ratio` + `resolution` endpoint can make. */
export interface AspectSizes<R extends string = string, T extends string = string> {
  kind: "aspect";
  ratios: readonly R[];
  /** Each tier with the side of its square image, in px (`1K` is 1024×1024). */
  tiers: readonly { name: T; side: number }[];
}

/** A width and a height, in px. */
export interface Size {
  width: number;
  height: number;
}

/** How an endpoint takes a size. */
export type FalSizes = PixelSizes | AspectSizes;

/** One endpoint retake knows. */
export interface FalModel {
  /** The endpoint id, e.g. `fal-ai/flux-2`. */
  readonly id: string;
  /** Short names for `--model`, e.g. `flux-2`. */
  readonly aliases: readonly string[];
  /** Its family, e.g. `FLUX.2`. */
  readonly family: string;
  /** Its name for people, in errors, e.g. `FLUX.2 [pro]`. */
  readonly label: string;
  readonly sizes: FalSizes;
  /** Its output says which seed it used; else no seed is recorded. */
  readonly reportsSeed: boolean;
  /** The published price; absent when unknown. */
  readonly price?: FalPrice;
  /** The input to submit, in the endpoint's own fields. */
  input(request: FalInputRequest): Record<string, unknown>;
}

/** Endpoint used when no model is chosen. */
export const DEFAULT_FAL_MODEL = "fal-ai/flux/schnell";

/** Largest share a ratio may be off the nearest one the endpoint makes. */
export const MAX_ASPECT_ERROR = 0.05;

/** fal's size presets, as its `image_size` type names them. */
type Preset = Extract<NonNullable<In<"fal-ai/flux/dev">["image_size"]>, string>;
const PRESETS = [
  "square_hd",
  "square",
  "portrait_4_3",
  "portrait_16_9",
  "landscape_4_3",
  "landscape_16_9",
] as const satisfies readonly Preset[];

/** The `image_size` fal takes: a preset name when the size is one, else the pixels. */
export function imageSize(r: FalInputRequest): NonNullable<In<"fal-ai/flux/dev">["image_size"]> {
  const preset = PRESETS.find((name) =>
    SIZE_PRESETS[name]?.width === r.width && SIZE_PRESETS[name]?.height === r.height
  );
  return preset ?? { width: r.width, height: r.height };
}

// --- Input builders, one per endpoint input type. Each builds a value of that type, and sets
// optional fields by assignment (a spread would escape the excess-property check), so a field
// the endpoint lacks, or a value it does not take, fails `deno check`.

/**
 * The fields FLUX.1, FLUX.2 [dev] (and Flash, Turbo) and Qwen-Image share: the literal satisfies
 * each endpoint's input, so a field one of them lacks fails `deno check`.
 */
function pixelInput(r: FalInputRequest) {
  return {
    prompt: r.prompt,
    image_size: imageSize(r),
    seed: r.seed,
    num_images: 1,
    output_format: r.format,
    enable_safety_checker: r.safetyChecker,
  } satisfies In<"fal-ai/flux/dev"> satisfies In<"fal-ai/flux-2"> satisfies In<
    "fal-ai/flux-2/flash"
  > satisfies In<"fal-ai/qwen-image">;
}

function fluxInput(r: FalInputRequest): In<"fal-ai/flux/dev"> & In<"fal-ai/flux-2"> {
  const input: In<"fal-ai/flux/dev"> & In<"fal-ai/flux-2"> = pixelInput(r);
  if (r.steps !== undefined) input.num_inference_steps = r.steps;
  return input;
}

function fluxProInput(r: FalInputRequest): In<"fal-ai/flux-pro/v1.1"> {
  const input: In<"fal-ai/flux-pro/v1.1"> = {
    prompt: r.prompt,
    image_size: imageSize(r),
    seed: r.seed,
    num_images: 1,
    output_format: r.format,
  };
  // FLUX1.1 [pro] has no checker switch, only a tolerance: "6" is its most permissive.
  if (!r.safetyChecker) input.safety_tolerance = "6";
  return input;
}

function flux2ProInput(r: FalInputRequest): In<"fal-ai/flux-2-pro"> {
  const input: In<"fal-ai/flux-2-pro"> = {
    prompt: r.prompt,
    image_size: imageSize(r),
    seed: r.seed,
    output_format: r.format,
    enable_safety_checker: r.safetyChecker,
  };
  if (!r.safetyChecker) input.safety_tolerance = "5";
  return input;
}

const flux2FlashInput: (r: FalInputRequest) => In<"fal-ai/flux-2/flash"> = pixelInput;

/** The endpoints that take a shape as an aspect ratio and a tier, and the same other fields. */
type AspectId = "fal-ai/nano-banana-2" | "fal-ai/nano-banana-pro" | "fal-ai/imagen4/preview";

type AspectInput<R, T> =
  & Pick<In<AspectId>, "prompt" | "seed" | "num_images" | "output_format" | "safety_tolerance">
  & { aspect_ratio: R; resolution: T };

/**
 * Nano Banana's and Imagen 4's input, with the ratio and tier of `sizes` nearest the size asked
 * for. `Pick` fails `deno check` on a field one of the endpoints lacks; the sizes' `satisfies`
 * and each builder's declared type check the ratio and tier against its own endpoint.
 */
function aspectInput<R extends string, T extends string>(
  sizes: AspectSizes<R, T>,
): (r: FalInputRequest) => AspectInput<R, T> {
  return (r) => {
    const { ratio, tier } = aspectOf(sizes, r.width, r.height);
    const input: AspectInput<R, T> = {
      prompt: r.prompt,
      aspect_ratio: ratio,
      resolution: tier,
      seed: r.seed,
      num_images: 1,
      output_format: r.format,
    };
    if (!r.safetyChecker) input.safety_tolerance = "6";
    return input;
  };
}

const NANO_BANANA_2_SIZES = {
  kind: "aspect",
  ratios: [
    "21:9",
    "16:9",
    "3:2",
    "4:3",
    "5:4",
    "1:1",
    "4:5",
    "3:4",
    "2:3",
    "9:16",
    "4:1",
    "1:4",
    "8:1",
    "1:8",
  ] as const satisfies readonly Ratio<"fal-ai/nano-banana-2">[],
  tiers: [
    { name: "0.5K", side: 512 },
    { name: "1K", side: 1024 },
    { name: "2K", side: 2048 },
    { name: "4K", side: 4096 },
  ] as const satisfies readonly { name: Tier<"fal-ai/nano-banana-2">; side: number }[],
} as const satisfies AspectSizes;

const nanoBanana2Input: (r: FalInputRequest) => In<"fal-ai/nano-banana-2"> = aspectInput(
  NANO_BANANA_2_SIZES,
);

const NANO_BANANA_PRO_SIZES = {
  kind: "aspect",
  ratios: [
    "21:9",
    "16:9",
    "3:2",
    "4:3",
    "5:4",
    "1:1",
    "4:5",
    "3:4",
    "2:3",
    "9:16",
  ] as const satisfies readonly Ratio<"fal-ai/nano-banana-pro">[],
  tiers: [
    { name: "1K", side: 1024 },
    { name: "2K", side: 2048 },
    { name: "4K", side: 4096 },
  ] as const satisfies readonly { name: Tier<"fal-ai/nano-banana-pro">; side: number }[],
} as const satisfies AspectSizes;

const nanoBananaProInput: (r: FalInputRequest) => In<"fal-ai/nano-banana-pro"> = aspectInput(
  NANO_BANANA_PRO_SIZES,
);

const IMAGEN_4_SIZES = {
  kind: "aspect",
  ratios: ["1:1", "16:9", "9:16", "4:3", "3:4"] as const satisfies readonly Ratio<
    "fal-ai/imagen4/preview"
  >[],
  tiers: [
    { name: "1K", side: 1024 },
    { name: "2K", side: 2048 },
  ] as const satisfies readonly { name: Tier<"fal-ai/imagen4/preview">; side: number }[],
} as const satisfies AspectSizes;

const imagen4Input: (r: FalInputRequest) => In<"fal-ai/imagen4/preview"> = aspectInput(
  IMAGEN_4_SIZES,
);

// Seedream has no output format field: it answers PNG, which the download reads as it comes.
function seedream45Input(r: FalInputRequest): In<"fal-ai/bytedance/seedream/v4.5/text-to-image"> {
  return {
    prompt: r.prompt,
    image_size: imageSize(r),
    seed: r.seed,
    num_images: 1,
    max_images: 1,
    enable_safety_checker: r.safetyChecker,
  };
}

// Seedream 5 Lite takes no seed.
function seedream5LiteInput(
  r: FalInputRequest,
): In<"fal-ai/bytedance/seedream/v5/lite/text-to-image"> {
  return {
    prompt: r.prompt,
    image_size: imageSize(r),
    num_images: 1,
    max_images: 1,
    enable_safety_checker: r.safetyChecker,
  };
}

function qwenImageInput(r: FalInputRequest): In<"fal-ai/qwen-image"> {
  const input: In<"fal-ai/qwen-image"> = pixelInput(r);
  if (r.steps !== undefined) input.num_inference_steps = r.steps;
  if (r.negativePrompt !== undefined) input.negative_prompt = r.negativePrompt;
  return input;
}

function ideogramV3Input(r: FalInputRequest): In<"fal-ai/ideogram/v3"> {
  const input: In<"fal-ai/ideogram/v3"> = {
    prompt: r.prompt,
    image_size: imageSize(r),
    seed: r.seed,
    num_images: 1,
    // MagicPrompt (on by default) rewrites the prompt: the critic would judge an image of a
    // prompt retake never wrote, and the refiner would refine the wrong text.
    expand_prompt: false,
  };
  if (r.negativePrompt !== undefined) input.negative_prompt = r.negativePrompt;
  return input;
}

// Recraft takes no seed, no count and no format; its checker switch only.
function recraftV3Input(r: FalInputRequest): In<"fal-ai/recraft/v3/text-to-image"> {
  return { prompt: r.prompt, image_size: imageSize(r), enable_safety_checker: r.safetyChecker };
}

function recraftV4Input(r: FalInputRequest): In<"fal-ai/recraft/v4/text-to-image"> {
  return { prompt: r.prompt, image_size: imageSize(r), enable_safety_checker: r.safetyChecker };
}

// fast-sdxl and SD 1.5 name the output format `format`.
function sdInput(r: FalInputRequest): In<"fal-ai/fast-sdxl"> {
  const input: In<"fal-ai/fast-sdxl"> = {
    prompt: r.prompt,
    image_size: imageSize(r),
    seed: r.seed,
    num_images: 1,
    format: r.format,
    enable_safety_checker: r.safetyChecker,
  };
  if (r.steps !== undefined) input.num_inference_steps = r.steps;
  if (r.negativePrompt !== undefined) input.negative_prompt = r.negativePrompt;
  return input;
}

const ANY_SIZE: PixelSizes = { kind: "pixels" };
const FLUX_2_SIZES: PixelSizes = { kind: "pixels", side: { min: 512, max: 2048 } };

/**
 * Every endpoint retake knows, default first. Prices: FLUX.1 schnell/dev and FLUX.2 [dev] Flash
 * per megapixel, Nano Banana 2 and Seedream 4.5 per image from their fal pages; FLUX1.1 [pro]'s
 * sources disagree between $0.04 per image and per megapixel (the same up to 1 MP); FLUX.2
 * [pro]'s is from a third-party price list that matches Black Forest Labs' "from $0.03"; Recraft
 * V3's from resellers that pass fal's price through; fast-sdxl and SD 1.5 are estimates.
 */
export const FAL_MODELS: readonly FalModel[] = [
  {
    id: "fal-ai/flux/schnell",
    aliases: ["flux-schnell"],
    family: "FLUX.1",
    label: "FLUX.1 [schnell]",
    sizes: ANY_SIZE,
    reportsSeed: true,
    price: { usd: 0.003, unit: "megapixel" },
    input: fluxInput,
  },
  {
    id: "fal-ai/flux/dev",
    aliases: ["flux-dev"],
    family: "FLUX.1",
    label: "FLUX.1 [dev]",
    sizes: ANY_SIZE,
    reportsSeed: true,
    price: { usd: 0.025, unit: "megapixel" },
    input: fluxInput,
  },
  {
    id: "fal-ai/flux-pro/v1.1",
    aliases: ["flux-pro"],
    family: "FLUX.1",
    // Black Forest Labs documents 256–1440 px a side.
    label: "FLUX1.1 [pro]",
    sizes: { kind: "pixels", side: { min: 256, max: 1440 } },
    reportsSeed: true,
    price: { usd: 0.04, unit: "megapixel" },
    input: fluxProInput,
  },
  {
    id: "fal-ai/flux-2",
    aliases: ["flux-2"],
    family: "FLUX.2",
    label: "FLUX.2 [dev]",
    sizes: FLUX_2_SIZES,
    reportsSeed: true,
    input: fluxInput,
  },
  {
    id: "fal-ai/flux-2-pro",
    aliases: ["flux-2-pro"],
    family: "FLUX.2",
    label: "FLUX.2 [pro]",
    sizes: FLUX_2_SIZES,
    reportsSeed: true,
    price: { usd: 0.03, unit: "megapixel", extraMegapixelUsd: 0.015 },
    input: flux2ProInput,
  },
  {
    id: "fal-ai/flux-2-max",
    aliases: ["flux-2-max"],
    family: "FLUX.2",
    label: "FLUX.2 [max]",
    sizes: FLUX_2_SIZES,
    reportsSeed: true,
    input: flux2ProInput,
  },
  {
    id: "fal-ai/flux-2/flash",
    aliases: ["flux-2-flash"],
    family: "FLUX.2",
    label: "FLUX.2 [dev] Flash",
    sizes: FLUX_2_SIZES,
    reportsSeed: true,
    price: { usd: 0.005, unit: "megapixel" },
    input: flux2FlashInput,
  },
  {
    id: "fal-ai/flux-2/turbo",
    aliases: ["flux-2-turbo"],
    family: "FLUX.2",
    label: "FLUX.2 [dev] Turbo",
    sizes: FLUX_2_SIZES,
    reportsSeed: true,
    input: flux2FlashInput,
  },
  {
    id: "fal-ai/nano-banana-2",
    aliases: ["nano-banana-2"],
    family: "Nano Banana",
    label: "Nano Banana 2",
    sizes: NANO_BANANA_2_SIZES,
    reportsSeed: false,
    price: {
      usd: 0.08,
      unit: "image",
      tierFactors: { "0.5K": 0.75, "1K": 1, "2K": 1.5, "4K": 2 },
    },
    input: nanoBanana2Input,
  },
  {
    id: "fal-ai/nano-banana-pro",
    aliases: ["nano-banana-pro"],
    family: "Nano Banana",
    label: "Nano Banana Pro",
    sizes: NANO_BANANA_PRO_SIZES,
    reportsSeed: false,
    input: nanoBananaProInput,
  },
  {
    id: "fal-ai/bytedance/seedream/v4.5/text-to-image",
    aliases: ["seedream-4.5"],
    family: "Seedream",
    label: "Seedream 4.5",
    sizes: {
      kind: "pixels",
      side: { min: 1920, max: 4096 },
      area: { min: { width: 2560, height: 1440 }, max: { width: 4096, height: 4096 } },
      either: true,
    },
    reportsSeed: true,
    price: { usd: 0.04, unit: "image" },
    input: seedream45Input,
  },
  {
    id: "fal-ai/bytedance/seedream/v5/lite/text-to-image",
    aliases: ["seedream-5-lite"],
    family: "Seedream",
    label: "Seedream 5 Lite",
    // fal rescales other sizes into this range; retake refuses them instead of recording a size
    // nobody asked for.
    sizes: {
      kind: "pixels",
      area: { min: { width: 2560, height: 1440 }, max: { width: 3072, height: 3072 } },
    },
    reportsSeed: true,
    input: seedream5LiteInput,
  },
  {
    id: "fal-ai/imagen4/preview",
    aliases: ["imagen-4"],
    family: "Imagen 4",
    label: "Imagen 4",
    sizes: IMAGEN_4_SIZES,
    reportsSeed: false,
    input: imagen4Input,
  },
  {
    id: "fal-ai/qwen-image",
    aliases: ["qwen-image"],
    family: "Qwen-Image",
    label: "Qwen-Image",
    sizes: ANY_SIZE,
    reportsSeed: true,
    input: qwenImageInput,
  },
  {
    id: "fal-ai/ideogram/v3",
    aliases: ["ideogram-v3"],
    family: "Ideogram v3",
    label: "Ideogram v3",
    sizes: ANY_SIZE,
    reportsSeed: true,
    input: ideogramV3Input,
  },
  {
    id: "fal-ai/recraft/v3/text-to-image",
    aliases: ["recraft-v3"],
    family: "Recraft",
    label: "Recraft V3",
    sizes: ANY_SIZE,
    reportsSeed: false,
    price: { usd: 0.04, unit: "image" },
    input: recraftV3Input,
  },
  {
    id: "fal-ai/recraft/v4/text-to-image",
    aliases: ["recraft-v4"],
    family: "Recraft",
    label: "Recraft V4",
    sizes: ANY_SIZE,
    reportsSeed: false,
    input: recraftV4Input,
  },
  {
    id: "fal-ai/fast-sdxl",
    aliases: ["sdxl"],
    family: "Stable Diffusion",
    label: "SDXL",
    sizes: ANY_SIZE,
    reportsSeed: true,
    price: { usd: 0.003, unit: "image" },
    input: sdInput,
  },
  {
    id: "fal-ai/stable-diffusion-v15",
    aliases: ["sd-1.5"],
    family: "Stable Diffusion",
    label: "SD 1.5",
    sizes: ANY_SIZE,
    reportsSeed: true,
    price: { usd: 0.002, unit: "image" },
    input: sdInput,
  },
];

const BY_ID = new Map(FAL_MODELS.map((m) => [m.id, m]));
const BY_ALIAS = new Map(FAL_MODELS.flatMap((m) => m.aliases.map((a) => [a, m.id] as const)));

/**
 * The catalogue's entry for an endpoint id; undefined for one retake does not know, which gets
 * FLUX.1-style input ({@linkcode falInput}).
 */
export function falModel(id: string): FalModel | undefined {
  return BY_ID.get(id);
}

/** Friendly model names and the fal endpoint ids they stand for. */
export const FAL_MODEL_ALIASES: Readonly<Record<string, string>> = Object.fromEntries(BY_ALIAS);

/**
 * Published prices of the edit endpoints (`fal_edits.ts`): an edit is billed as the endpoint it
 * goes to, which may cost far more than a drawing of the model it edits for (Kontext [pro]'s
 * $0.04 an image against FLUX.1 [schnell]'s $0.003 a megapixel). Sources (2026): FLUX.1 Kontext
 * [pro] and Nano Banana 2 edit from their fal pages
 * (fal.ai/models/fal-ai/flux-pro/kontext/llms.txt: "$0.04 per images";
 * fal.ai/models/fal-ai/nano-banana-2/edit/llms.txt: "$0.08 per image … 2K and 4K outputs … 1.5
 * times and 2 times …, 0.5K … 0.75 times"); Seedream 4.5 edit from a reseller that passes fal's
 * page through (infr.sh: fal, $0.04 per image), the same as its drawings. FLUX.2's, Nano Banana
 * Pro's, Qwen-Image 2's and Seedream 5 Lite's edit prices were not found: fal's pricing API is
 * asked for them before a run that may edit.
 */
export const FAL_EDIT_PRICES: Readonly<Record<string, FalPrice>> = {
  "fal-ai/flux-pro/kontext": { usd: 0.04, unit: "image" },
  "fal-ai/nano-banana-2/edit": {
    usd: 0.08,
    unit: "image",
    tierFactors: { "0.5K": 0.75, "1K": 1, "2K": 1.5, "4K": 2 },
  },
  "fal-ai/bytedance/seedream/v4.5/edit": { usd: 0.04, unit: "image" },
};

/** Published prices by endpoint id: every drawing and edit endpoint priced as itself. */
export const DEFAULT_FAL_PRICES: Readonly<Record<string, FalPrice>> = {
  ...Object.fromEntries(
    FAL_MODELS.flatMap((m) => m.price === undefined ? [] : [[m.id, m.price]]),
  ),
  ...FAL_EDIT_PRICES,
};

/**
 * Turns a model alias into a fal endpoint id; a full id (`owner/app[/path]`) passes through.
 *
 * @example
 * ```ts
 * import { resolveFalModel } from "./models.ts";
 * if (resolveFalModel("flux-2") !== "fal-ai/flux-2") throw new Error("alias");
 * if (resolveFalModel("fal-ai/recraft-v3") !== "fal-ai/recraft-v3") throw new Error("id");
 * if (resolveFalModel() !== "fal-ai/flux/schnell") throw new Error("default");
 * ```
 */
export function resolveFalModel(alias?: string): string {
  const name = alias?.trim() ?? "";
  if (name === "") return DEFAULT_FAL_MODEL;
  const resolved = BY_ALIAS.get(name.toLowerCase());
  if (resolved !== undefined) return resolved;
  if (/^[\w.-]+(\/[\w.-]+)+$/.test(name)) return name;
  throw new InputError(
    `Cannot use model '${name}' with fal: expected one of ${
      [...BY_ALIAS.keys()].join(", ")
    } or a fal endpoint id such as fal-ai/flux/dev`,
  );
}

/**
 * The input for `model` in its family's fields. An endpoint retake does not know gets FLUX.1's
 * (`image_size`, `seed`, `output_format`, …); a field it lacks comes back as a 422 naming it.
 *
 * @example
 * ```ts
 * import { falInput } from "./models.ts";
 * const r = { prompt: "a fox", width: 1024, height: 576, seed: 1, format: "png", safetyChecker: true, steps: undefined } as const;
 * const input = falInput("fal-ai/nano-banana-2", r);
 * if (input.aspect_ratio !== "16:9" || input.resolution !== "1K" || "image_size" in input) {
 *   throw new Error("Nano Banana takes an aspect ratio and a tier");
 * }
 * ```
 */
export function falInput(model: string, request: FalInputRequest): Record<string, unknown> {
  return (falModel(model)?.input ?? fluxInput)(request);
}

/** The `resolution` tier `model` is asked for at this size; undefined for pixel endpoints. */
export function falTier(model: string, width: number, height: number): string | undefined {
  const sizes = falModel(model)?.sizes;
  return sizes?.kind === "aspect" ? _nearestTier(sizes, width, height).name : undefined;
}

/**
 * Refuses a size the endpoint's model cannot make, before anything is paid for, with an
 * {@linkcode InputError} naming what it makes. Aspect-ratio endpoints take the nearest ratio
 * within {@linkcode MAX_ASPECT_ERROR} and the nearest tier within a factor of two a side.
 *
 * @example
 * ```ts
 * import { checkFalSize } from "./models.ts";
 * checkFalSize("fal-ai/flux/dev", 2048, 2048);
 * checkFalSize("fal-ai/nano-banana-2", 1024, 576);
 * let refused = false;
 * try {
 *   checkFalSize("fal-ai/flux-2", 4096, 4096);
 * } catch {
 *   refused = true;
 * }
 * if (!refused) throw new Error("FLUX.2 makes at most 2048 px a side");
 * ```
 */
export function checkFalSize(model: string, width: number, height: number): void {
  const entry = falModel(model);
  if (entry === undefined) return;
  const sizes = entry.sizes;
  const asked =
    `Cannot generate ${width}x${height} images with fal endpoint '${model}' as ${entry.label}`;
  if (sizes.kind === "aspect") {
    aspectOf(sizes, width, height, asked);
    return;
  }
  const sideOk = (v: number) =>
    sizes.side === undefined || (v >= sizes.side.min && v <= sizes.side.max);
  const area = width * height;
  const pixels = (size: Size) => size.width * size.height;
  const areaOk = sizes.area === undefined ||
    (area >= pixels(sizes.area.min) && area <= pixels(sizes.area.max));
  const sidesOk = sideOk(width) && sideOk(height);
  const ok = sizes.either && sizes.side !== undefined && sizes.area !== undefined
    ? sidesOk || areaOk
    : sidesOk && areaOk;
  if (ok) return;
  const makes = [
    sizes.side && `${sizes.side.min} to ${sizes.side.max} px a side`,
    sizes.area &&
    `${_dims(sizes.area.min)} to ${_dims(sizes.area.max)} px in all (${
      _mp(pixels(sizes.area.min))
    } to ${_mp(pixels(sizes.area.max))} MP)`,
  ].filter(Boolean).join(sizes.either ? ", or " : " and ");
  const current = !sidesOk && (!sizes.either || sizes.area === undefined)
    ? (() => {
      const [side, value] = sideOk(width) ? ["height", height] : ["width", width];
      return `current ${side} is ${value}`;
    })()
    : `current size is ${width}x${height} (${_mp(area)} MP)`;
  throw new InputError(`${asked} makes ${makes}: ${current}; choose another --size`);
}

/**
 * The ratio and tier nearest to `width`×`height`; throws an {@linkcode InputError} (starting
 * with `asked`) when the nearest ratio is more than {@linkcode MAX_ASPECT_ERROR} off, or the
 * nearest tier more than twice a side off.
 */
export function aspectOf<R extends string, T extends string>(
  sizes: AspectSizes<R, T>,
  width: number,
  height: number,
  asked = `Cannot generate ${width}x${height} images`,
): { ratio: R; tier: T } {
  const wanted = Math.log(width / height);
  let best = sizes.ratios[0]!;
  let bestError = Infinity;
  for (const ratio of sizes.ratios) {
    const error = Math.abs(wanted - Math.log(_ratio(ratio)));
    if (error < bestError) [best, bestError] = [ratio, error];
  }
  const off = Math.exp(bestError) - 1;
  if (off > MAX_ASPECT_ERROR) {
    throw new InputError(
      `${asked} makes only the aspect ratios ${sizes.ratios.join(", ")}: the nearest to ${
        (width / height).toFixed(3)
      } is ${best}, ${(off * 100).toFixed(1)}% off (at most ${
        MAX_ASPECT_ERROR * 100
      }%); choose another --size, e.g. ${_example(best, Math.sqrt(width * height))}`,
    );
  }
  const tier = _nearestTier(sizes, width, height);
  const side = Math.sqrt(width * height);
  if (Math.abs(Math.log(side / tier.side)) > Math.log(2) + 1e-9) {
    throw new InputError(
      `${asked} makes the sizes ${
        sizes.tiers.map((t) => `${t.name} (${t.side}x${t.side} at 1:1)`).join(", ")
      }: ${width}x${height} is more than twice a side off the nearest, ${tier.name}; choose another --size, e.g. ${
        _example(best, tier.side)
      }`,
    );
  }
  return { ratio: best, tier: tier.name };
}

/**
 * Estimated cost of `images` from one endpoint. Megapixels are rounded up per image, as fal
 * bills them; a megapixel is taken as 2²⁰ px so the 1024×1024 preset counts as one. `tier` is
 * the `resolution` asked for, for prices that depend on it.
 *
 * @example
 * ```ts
 * import { estimateFalCost } from "./models.ts";
 * const usd = estimateFalCost({ usd: 0.025, unit: "megapixel" }, [{ width: 1440, height: 1440 }]);
 * if (usd !== 0.05) throw new Error(`expected 2 MP at $0.025, got ${usd}`);
 * ```
 */
export function estimateFalCost(
  price: FalPrice,
  images: ReadonlyArray<{ width: number; height: number }>,
  tier?: string,
): number {
  const factor = tier === undefined ? 1 : price.tierFactors?.[tier] ?? 1;
  let usd = 0;
  for (const { width, height } of images) {
    if (price.unit === "image") {
      usd += price.usd;
      continue;
    }
    const megapixels = Math.max(1, Math.ceil((width * height) / 2 ** 20));
    usd += price.usd + (megapixels - 1) * (price.extraMegapixelUsd ?? price.usd);
  }
  return Math.round(usd * factor * 1e6) / 1e6;
}

/** A price as a person reads it, e.g. `$0.03 per megapixel ($0.015 each after the first)`. */
export function describeFalPrice(price: FalPrice): string {
  const extra = price.extraMegapixelUsd === undefined
    ? ""
    : ` ($${price.extraMegapixelUsd} each after the first)`;
  const tiers = price.tierFactors === undefined
    ? ""
    : ` (${
      Object.entries(price.tierFactors).filter(([, f]) => f !== 1).map(([t, f]) => `${t} ×${f}`)
        .join(", ")
    })`;
  return `$${price.usd} per ${price.unit}${extra}${tiers}`;
}

function _nearestTier<T extends string>(
  sizes: AspectSizes<string, T>,
  width: number,
  height: number,
): { name: T; side: number } {
  const side = Math.sqrt(width * height);
  let best = sizes.tiers[0]!;
  for (const tier of sizes.tiers) {
    if (Math.abs(Math.log(side / tier.side)) < Math.abs(Math.log(side / best.side))) best = tier;
  }
  return best;
}

function _ratio(ratio: string): number {
  const [w, h] = ratio.split(":").map(Number);
  return w! / h!;
}

/** A WIDTHxHEIGHT of `ratio` with about `side`² pixels, in multiples of 8 within 64–4096. */
function _example(ratio: string, side: number): string {
  const r = _ratio(ratio);
  const fit = (v: number) => Math.min(4096, Math.max(64, Math.round(v / 8) * 8));
  return `${fit(side * Math.sqrt(r))}x${fit(side / Math.sqrt(r))}`;
}

function _mp(pixels: number): string {
  return (pixels / 1e6).toFixed(2).replace(/\.?0+$/, "");
}

function _dims(size: Size): string {
  return `${size.width}x${size.height}`;
}
