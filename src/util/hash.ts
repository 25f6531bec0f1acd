/**
 * The small, stable numbers retake uses where a value must never change between versions: the
 * string hash behind seeds derived from prompt ids, and the seeded random numbers of the offline
 * engine and of the eval's bootstrap.
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

/**
 * A seeded PRNG (mulberry32): the same seed always gives the same sequence in [0, 1).
 *
 * @example
 * ```ts
 * import { mulberry32 } from "./hash.ts";
 * const a = mulberry32(7);
 * const b = mulberry32(7);
 * if (a() !== b()) throw new Error("expected the same sequence");
 * ```
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
