/**
 * Checks that a saved file really is an image of the promised type, before it replaces anything
 * and before the critic pays to look at it: a service or CDN can answer 200 with an error page,
 * and a transfer can end early without an error.
 *
 * @module
 */
import sharp, { type Metadata } from "sharp";
import type { ImageFormat } from "../providers/provider.ts";

/**
 * Reads the file at `path` with sharp, decoding every pixel so truncated data is caught, and
 * returns its size. Throws an `Error` that says what the bytes are when they are not an image of
 * type `expected`.
 *
 * @example
 * ```ts
 * import sharp from "sharp";
 * import { verifyImageFile } from "./image_check.ts";
 * const path = await Deno.makeTempFile({ suffix: ".png" });
 * await sharp({ create: { width: 4, height: 3, channels: 3, background: "red" } }).png().toFile(path);
 * const size = await verifyImageFile(path, "png");
 * await Deno.remove(path);
 * if (size.width !== 4 || size.height !== 3) throw new Error("expected 4×3");
 * ```
 */
export async function verifyImageFile(
  path: string,
  expected: ImageFormat,
): Promise<{ width: number; height: number }> {
  const label = expected === "png" ? "PNG" : "JPEG";
  let metadata: Metadata;
  try {
    metadata = await sharp(path).metadata();
  } catch (error) {
    throw new Error(
      `expected a ${label} image but the bytes are not an image ${await _describe(path)}`,
      { cause: error },
    );
  }
  if (metadata.format !== expected) {
    throw new Error(
      `expected a ${label} image but the bytes are ${
        String(metadata.format ?? "unknown").toUpperCase()
      }`,
    );
  }
  const { width, height } = metadata;
  if (!(width > 0) || !(height > 0)) {
    throw new Error(`expected a ${label} image but it has no size: ${width}×${height}`);
  }
  try {
    // Full decode; the header alone passes a file cut short mid-transfer.
    await sharp(path).raw().toBuffer();
  } catch (error) {
    throw new Error(
      `expected a complete ${label} image but it does not decode: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return { width, height };
}

/** A short, safe hint at what a non-image file holds (e.g. an HTML error page). */
async function _describe(path: string): Promise<string> {
  const file = await Deno.open(path, { read: true });
  try {
    const head = new Uint8Array(64);
    const n = (await file.read(head)) ?? 0;
    const text = new TextDecoder("utf-8", { fatal: false }).decode(head.subarray(0, n));
    if (n === 0) return "(the file is empty)";
    // deno-lint-ignore no-control-regex
    const printable = /^[\x09\x0a\x0d\x20-\x7e]*$/.test(text);
    return printable
      ? `(they start with ${JSON.stringify(text.trim().slice(0, 40))})`
      : `(${n === 64 ? "at least 64" : n} bytes of unrecognised binary data)`;
  } finally {
    file.close();
  }
}
