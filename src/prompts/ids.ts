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
  return slug === "" ? `prompt-${hash}` : `${slug}-${hash}`;
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
  let slug = "";
  for (const word of words) {
    const next = slug === "" ? word : `${slug}-${word}`;
    if (next.length > SLUG_CHARS) return slug === "" ? word.slice(0, SLUG_CHARS) : slug;
    slug = next;
  }
  return slug;
}

/** The lower-case words of ASCII text, up to a little past the slug's length. */
function asciiWords(text: string): string[] {
  const words: string[] = [];
  let word = "";
  let length = 0;
  for (let i = 0; i < text.length && length <= SLUG_CHARS + 1; i++) {
    const code = text.charCodeAt(i);
    const lower = code >= 0x41 && code <= 0x5a ? code | 0x20 : code;
    if ((lower >= 0x61 && lower <= 0x7a) || (lower >= 0x30 && lower <= 0x39)) {
      word += String.fromCharCode(lower);
    } else if (word !== "") {
      words.push(word);
      length += word.length + 1;
      word = "";
    }
  }
  if (word !== "") words.push(word);
  return words;
}
