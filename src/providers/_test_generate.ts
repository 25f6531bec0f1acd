/**
 * What the image generators' tests share: a request to draw one prompt, and the bytes of the
 * image it made.
 *
 * @module
 */
import type { PromptSpec } from "../prompts/mod.ts";
import type { GeneratedImage, GenerateRequest } from "./provider.ts";

/**
 * Requests for round-1 PNGs of `spec`'s prompt, of the size, seed and model in `defaults` (and
 * any other field), each overridden where the test says.
 */
export function generateRequests(
  spec: PromptSpec,
  defaults: Pick<GenerateRequest, "width" | "height" | "seed" | "model"> & Partial<GenerateRequest>,
): (overrides?: Partial<GenerateRequest>) => GenerateRequest {
  return (overrides = {}) => ({
    prompt: spec.prompt,
    spec,
    iteration: 1,
    format: "png",
    signal: new AbortController().signal,
    ...defaults,
    ...overrides,
  });
}

/** The bytes of `image`, read whole when they come as a stream. */
export async function bytesOf(image: Pick<GeneratedImage, "data">): Promise<Uint8Array> {
  return image.data instanceof Uint8Array
    ? image.data
    : new Uint8Array(await new Response(image.data).arrayBuffer());
}
