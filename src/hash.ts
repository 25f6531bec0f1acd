/**
 * The small, stable string hash retake uses where a value must never change between versions:
 * seeds derived from prompt ids, and the offline engine's choices.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * FNV-1a, 32 bits, of the text's UTF-8 bytes.
 *
 * @example
 * ```ts
 * import { fnv1a32 } from "./hash.ts";
 * if (fnv1a32("a") !== 0xe40c292c) throw new Error("FNV-1a of 'a'");
 * ```
 */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of encoder.encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
