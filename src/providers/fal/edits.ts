/**
 * fal's edit endpoints: for each model family that has one, the endpoint that changes an image
 * as told, and its input (typed by `@fal-ai/client`'s `EndpointTypeMap`, so a field the endpoint
 * does not have fails `deno check`). A model without an entry here is always redrawn.
 *
 * The source image goes as a URL fal can fetch: the result URL fal returned for it, or a
 * `data:` URI of the saved file, which fal's image inputs take.
 *
 * @module
 */
import type { EndpointTypeMap } from "@fal-ai/client/endpoints";
import { aspectOf, type FalInputRequest, falModel, imageSize } from "./models.ts";

type In<Id extends keyof EndpointTypeMap> = EndpointTypeMap[Id]["input"];

/** What an edit's input builder gets: the run's settings, the source and the change to make. */
export interface FalEditRequest extends FalInputRequest {
  /** The source image, as a URL fal can fetch. */
  imageUrl: string;
  /** What to change. */
  instruction: string;
}

/** One edit endpoint. */
export interface FalEdit {
  readonly id: string;
  input(request: FalEditRequest): Record<string, unknown>;
}

/** Nano Banana's edit endpoints take the shape as the drawing endpoint does. */
function nanoBananaEdit(
  drawn: "fal-ai/nano-banana-2" | "fal-ai/nano-banana-pro",
  id: "fal-ai/nano-banana-2/edit" | "fal-ai/nano-banana-pro/edit",
): FalEdit {
  type Input = In<"fal-ai/nano-banana-2/edit"> & In<"fal-ai/nano-banana-pro/edit">;
  return {
    id,
    input(r): Input {
      const { ratio, tier } = aspectOf(
        falModel(drawn)!.sizes as Parameters<typeof aspectOf<string, string>>[0],
        r.width,
        r.height,
      );
      return {
        prompt: r.instruction,
        image_urls: [r.imageUrl],
        aspect_ratio: ratio as NonNullable<Input["aspect_ratio"]>,
        resolution: tier as NonNullable<Input["resolution"]>,
        seed: r.seed,
        num_images: 1,
        output_format: r.format,
        ...(!r.safetyChecker && { safety_tolerance: "6" as const }),
      };
    },
  };
}

/**
 * The fields of the edit endpoints that take the source in `image_urls` and the size as
 * `image_size`: the literal satisfies each endpoint's input.
 */
function imageUrlsInput(r: FalEditRequest) {
  return {
    prompt: r.instruction,
    image_urls: [r.imageUrl],
    image_size: imageSize(r),
    seed: r.seed,
    num_images: 1,
    enable_safety_checker: r.safetyChecker,
  } satisfies In<"fal-ai/flux-2/edit"> satisfies In<"fal-ai/qwen-image-2/edit"> satisfies In<
    "fal-ai/bytedance/seedream/v4.5/edit"
  >;
}

/** Endpoints that take the source in `image_urls`, the size as `image_size` and a format. */
function imageUrlsEdit(id: "fal-ai/flux-2/edit" | "fal-ai/qwen-image-2/edit"): FalEdit {
  return {
    id,
    input(r): In<"fal-ai/flux-2/edit"> & In<"fal-ai/qwen-image-2/edit"> {
      const input: In<"fal-ai/flux-2/edit"> & In<"fal-ai/qwen-image-2/edit"> = imageUrlsInput(r);
      input.output_format = r.format;
      return input;
    },
  };
}

const FLUX_2_EDIT = imageUrlsEdit("fal-ai/flux-2/edit");

const KONTEXT: FalEdit = {
  id: "fal-ai/flux-pro/kontext",
  input(r): In<"fal-ai/flux-pro/kontext"> {
    return {
      prompt: r.instruction,
      image_url: r.imageUrl,
      seed: r.seed,
      num_images: 1,
      output_format: r.format,
      ...(!r.safetyChecker && { safety_tolerance: "6" as const }),
    };
  },
};

// Seedream has no output format field, as in its drawings.
function seedreamEdit(
  id: "fal-ai/bytedance/seedream/v4.5/edit" | "fal-ai/bytedance/seedream/v5/lite/edit",
): FalEdit {
  return { id, input: (r): In<"fal-ai/bytedance/seedream/v4.5/edit"> => imageUrlsInput(r) };
}

/** The edit endpoint of each model family that has one, by generation model. */
const EDITS: Readonly<Record<string, FalEdit>> = {
  "fal-ai/nano-banana-2": nanoBananaEdit("fal-ai/nano-banana-2", "fal-ai/nano-banana-2/edit"),
  "fal-ai/nano-banana-pro": nanoBananaEdit("fal-ai/nano-banana-pro", "fal-ai/nano-banana-pro/edit"),
  "fal-ai/flux-2": FLUX_2_EDIT,
  "fal-ai/flux-2-pro": FLUX_2_EDIT,
  "fal-ai/flux-2/flash": FLUX_2_EDIT,
  "fal-ai/flux-2/turbo": FLUX_2_EDIT,
  // FLUX.1 has no edit endpoint of its own: Kontext is the FLUX family's.
  "fal-ai/flux/schnell": KONTEXT,
  "fal-ai/flux/dev": KONTEXT,
  "fal-ai/flux-pro/v1.1": KONTEXT,
  "fal-ai/qwen-image": imageUrlsEdit("fal-ai/qwen-image-2/edit"),
  "fal-ai/bytedance/seedream/v4.5/text-to-image": seedreamEdit(
    "fal-ai/bytedance/seedream/v4.5/edit",
  ),
  "fal-ai/bytedance/seedream/v5/lite/text-to-image": seedreamEdit(
    "fal-ai/bytedance/seedream/v5/lite/edit",
  ),
};

/** The edit endpoint for images of `model`, or undefined when its family has none. */
export function falEditFor(model: string): FalEdit | undefined {
  return EDITS[model];
}
