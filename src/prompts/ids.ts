/**
 * Ids for prompts a file gives none: readable, from the text, and stable, so resume and watch
 * find a prompt's folder again however the file's lines move.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Characters of the slug, at most; cut at a word. */
const SLUG_CHARS = 48;
/**
 * Hex digits of the text's hash in an id: 7, as git shortens a commit. Not 8 or 16: an id that
 * ends in those is one the folder mapping (`safeFolderName`) must hash again, as it could be
 * another id's mapped name, and the folder would not be named as the prompt.
 */
export const HASH_DIGITS = 7;

/**
 * The id made from a prompt's text: a slug of its first words and 7 hex digits of its SHA-256
 * (`a-photo-of-a-bench-5f0c2a9`). Equal texts give equal ids, different ones (even in case
 * alone) different ids, and nothing else goes in: adding, removing or moving other prompts
 * leaves it as it was.
 *
 * @example
 * ```ts
 * import { idFromText } from "./ids.ts";
 * const id = idFromText("A photo of a bench");
 * if (!/^a-photo-of-a-bench-[0-9a-f]{7}$/.test(id)) throw new Error(id);
 * ```
 */
export function idFromText(text: string, digits: number = HASH_DIGITS): string {
  const hash = createHash("sha256").update(text).digest("hex").slice(0, digits);
  const slug = slugOf(text);
  // Joined, not concatenated: a flat string that keeps no piece of the text or the digest alive
  // (100,000 ids of a large file are held for the whole run).
  return [slug === "" ? "prompt" : slug, hash].join("-");
}

/**
 * Lower-case letters and digits of any script, runs of anything else as one `-`, accents
 * dropped, cut to {@linkcode SLUG_CHARS} at a word: what reads well as a folder name.
 */
export function slugOf(text: string): string {
  // Most prompts are ASCII: a loop over their characters costs a tenth of the general way.
  const ascii = !/[^\p{ASCII}]/u.test(text);
  const words = ascii ? asciiWords(text) : text.normalize("NFKD").replace(/\p{M}/gu, "")
    .toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  if (words.length === 0) return "";
  if (words[0]!.length >= SLUG_CHARS) return [words[0]!.slice(0, SLUG_CHARS)].join("");
  let count = 0;
  for (let length = -1; count < words.length; count++) {
    length += words[count]!.length + 1;
    if (length > SLUG_CHARS) break;
  }
  return words.slice(0, count).join("-");
}

/** The lower-case words of ASCII text, enough of them for a slug. */
function asciiWords(text: string): string[] {
  // The slug needs at most its length in letters; a word the cut splits is left out.
  const cut = 4 * SLUG_CHARS;
  const head = text.length > cut ? text.slice(0, cut) : text;
  const words = head.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
  if (head.length < text.length && /[a-z0-9]/i.test(text[cut]!)) words.pop();
  return words;
}
