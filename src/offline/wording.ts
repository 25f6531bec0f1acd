/**
 * How the offline critic and brief name a cue in a sentence. The cue vocabulary reads adjectives
 * ("rocky", "misty", "wooden", "calm") as well as nouns, and a sentence built by putting the
 * user's word where a noun goes reads badly ("make the wooden on the house"). Each phrase here
 * quotes the cue's word where it reads as English, and reads back (through `extractCues`) as the
 * same cue, so the refiner still knows what a critique asks it to strengthen.
 *
 * @module
 */
import type { Cue } from "./scene_cues.ts";

/** Adjectives and verb forms the vocabulary reads, and the noun a sentence uses for each. */
const NOUNS: Readonly<Record<string, string>> = {
  starry: "stars",
  cloudy: "clouds",
  overcast: "clouds",
  alpine: "mountains",
  sandy: "sand",
  rocky: "rocks",
  moonlit: "moon",
  reflected: "reflections",
  reflecting: "reflections",
  misty: "mist",
  foggy: "fog",
  hazy: "haze",
  rainy: "rain",
  raining: "rain",
  snowy: "snow",
  snowing: "snow",
  winter: "snow",
  stormy: "storm",
};

/** Nouns that take no article ("is there any sand?", not "a sand"). */
const MASS_NOUNS = new Set([
  "sand",
  "water",
  "sunlight",
  "sunshine",
  "moonlight",
  "starlight",
  "lightning",
  "shimmer",
  "surf",
  "pavement",
  "neon",
  "mist",
  "fog",
  "haze",
  "rain",
  "snow",
  "ground",
]);

/** The noun a sentence names the cue by, unquoted. */
export function cueNoun(cue: Cue): string {
  // Snow said of mountains is a subject of its own; only this phrase reads back as it.
  if (cue.kind === "subject" && cue.name === "snowcaps") return "snow-capped peaks";
  const word = cue.words[0] ?? cue.name;
  return NOUNS[word] ?? word;
}

/**
 * The cue as a quoted phrase that fits where a noun phrase goes: nouns as they are
 * (`'night'`, `'rocks'`), colours as `'wooden' colour`, moods as `a 'calm' mood`, a clear sky
 * as `a 'clear' sky`.
 */
export function cuePhrase(cue: Cue): string {
  const word = cue.words[0] ?? cue.name;
  if (cue.kind === "colour") return `${quote(word)} colour`;
  if (cue.kind === "mood") return `a ${quote(word)} mood`;
  if (cue.kind === "weather" && cue.name === "clear") return `a ${quote(word)} sky`;
  return quote(cueNoun(cue));
}

/** Several cues as one phrase: moods share one "mood", the rest are listed with "and". */
export function cueList(cues: readonly Cue[]): string {
  const moods = unique(cues.filter((c) => c.kind === "mood").map((c) => quote(c.words[0]!)));
  const others = unique(cues.filter((c) => c.kind !== "mood").map(cuePhrase));
  const parts = moods.length > 0 ? [...others, `a ${andList(moods)} mood`] : others;
  return andList(parts);
}

/** "a", "a and b", "a, b and c". */
export function andList(items: readonly string[]): string {
  if (items.length <= 1) return items[0] ?? "";
  return `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

/** Whether a noun (or noun phrase, by its last word) is plural. */
export function isPlural(noun: string): boolean {
  return /[^s]s$/.test(noun.trim().split(/[\s-]+/).at(-1) ?? "");
}

/** "is" or "are", agreeing with `noun`. */
export function be(noun: string): string {
  return isPlural(noun) ? "are" : "is";
}

/** The yes/no question asking whether the noun is in the picture. */
export function isThere(noun: string): string {
  if (isPlural(noun)) return `Are there any ${noun}?`;
  if (MASS_NOUNS.has(noun)) return `Is there any ${noun}?`;
  return `Is there ${/^[aeiou]/.test(noun) ? "an" : "a"} ${noun}?`;
}

/** A word in single quotes, as the refiner reads cues back from a critique. */
export function quote(word: string): string {
  return `'${word}'`;
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}
