/**
 * Ids for prompts a file gives none: readable, from the text, and stable, so resume and watch
 * find a prompt's folder again however the file's lines move.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Characters of the slug, at most; cut at a word. */
const SLUG_CHARS = 48;
/** Hex digits of the text's hash in an id. */
const HASH_DIGITS = 8;

/**
 * The id made from a prompt's text: a slug of its first words and 8 hex digits of its SHA-256
 * (`a-photo-of-a-bench-5f0c2a9e`). Equal texts give equal ids, different ones (even in case
 * alone) different ids, and nothing else goes in: adding, removing or moving other prompts
 * leaves it as it was.
 *
 * @example
 * ```ts
 * import { idFromText } from "./ids.ts";
 * const id = idFromText("A photo of a bench");
 * if (!/^a-photo-of-a-bench-[0-9a-f]{8}$/.test(id)) throw new Error(id);
 * ```
 */
export function idFromText(text: string, digits: number = HASH_DIGITS): string {
  const hash = createHash("sha256").update(text).digest("hex").slice(0, digits);
  const slug = slugOf(text);
  return slug === "" ? `prompt-${hash}` : `${slug}-${hash}`;
}

/**
 * Lower-case letters and digits of any script, runs of anything else as one `-`, accents
 * dropped, cut to {@linkcode SLUG_CHARS} at a word: what reads well as a folder name.
 */
export function slugOf(text: string): string {
  const words = text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase()
    .split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  let slug = "";
  for (const word of words) {
    const next = slug === "" ? word : `${slug}-${word}`;
    if (next.length > SLUG_CHARS) return slug === "" ? word.slice(0, SLUG_CHARS) : slug;
    slug = next;
  }
  return slug;
}

/**
 * Gives each text its id, unique in the batch: equal texts share one (they are one prompt), and
 * in the rare case two different texts' short hashes agree, the later text gets more digits.
 */
export class TextIds {
  readonly #texts = new Map<string, string>();

  /** The id of `text`. */
  idOf(text: string): string {
    for (let digits = HASH_DIGITS;; digits += 4) {
      const id = idFromText(text, digits);
      const key = id.toLowerCase();
      const owner = this.#texts.get(key);
      if (owner === undefined) this.#texts.set(key, text);
      if (owner === undefined || owner === text || digits >= 64) return id;
    }
  }
}
