import assert from "node:assert/strict";
import type { Critique } from "../providers/critique.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { localBrief } from "./brief.ts";
import { assess } from "./critic.ts";
import { pixelMap } from "./image_stats.ts";
import { refinePrompt } from "./refiner.ts";
import { COLOURS, cueVocabulary, extractCues, MOODS } from "./scene_cues.ts";
import { cueList, cuePhrase, isPlural } from "./wording.ts";
import { uniformCritique } from "../../tests/critique_fixture.ts";

/** Words that describe rather than name: each must be followed by what it describes. */
const ADJECTIVES = new Set([
  ...Object.keys(MOODS),
  "serene",
  "calm",
  "tranquil",
  "quiet",
  "still",
  "uplifting",
  "joyful",
  "happy",
  "melancholic",
  "somber",
  "eerie",
  "ominous",
  "scorching",
  "epic",
  "grand",
  "cosy",
  "ethereal",
  "starry",
  "cloudy",
  "overcast",
  "alpine",
  "sandy",
  "rocky",
  "moonlit",
  "reflected",
  "reflecting",
  "misty",
  "foggy",
  "hazy",
  "rainy",
  "raining",
  "snowy",
  "snowing",
  "stormy",
  "clear",
  "cloudless",
  "sunny",
  "wooden",
  "golden",
  "mossy",
  "dark",
]);

/** What may follow a quoted adjective: the noun it describes, or more of a list. */
const AFTER_ADJECTIVE = /^(colour|sky|mood|and|,)/;

function faults(message: string): string[] {
  const out: string[] = [];
  if (/\b(\w+) \1\b/i.test(message)) out.push(`doubled word: ${message}`);
  if (/\ba [aeiou]/i.test(message)) out.push(`'a' before a vowel: ${message}`);
  if (/\ban [b-df-hj-np-tv-z]/i.test(message)) out.push(`'an' before a consonant: ${message}`);
  if (/undefined|NaN|\[object/.test(message)) out.push(`broken value: ${message}`);
  for (const match of message.matchAll(/(word )?'([^']+)'\s*(,|\S+)?/g)) {
    const [mention, word, next] = [match[1] !== undefined, match[2]!, match[3] ?? ""];
    // "before the word 'golden'" names the word itself, as a noun.
    if (ADJECTIVES.has(word) && !mention && !AFTER_ADJECTIVE.test(next)) {
      out.push(`'${word}' used as a noun: ${message}`);
    }
    if (next === "is" && isPlural(word)) out.push(`'${word} is': ${message}`);
    if (next === "are" && !isPlural(word)) out.push(`'${word} are': ${message}`);
  }
  // The shape of the bug that started this: a colour word standing where its noun should be.
  const bare = /\bthe (\w+) (on|in|of|is|are|more)\b/gi;
  for (const match of message.matchAll(bare)) {
    if (ADJECTIVES.has(match[1]!.toLowerCase())) out.push(`bare adjective: ${message}`);
  }
  return out;
}

/** A flat image and a noisy one, so checks produce both their problem and strength texts. */
function maps() {
  const flat = new Uint8Array(64 * 48 * 3).fill(128);
  const noisy = new Uint8Array(64 * 48 * 3);
  let seed = 7;
  for (let i = 0; i < noisy.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    noisy[i] = seed >>> 24;
  }
  return [pixelMap(flat, 64, 48, 3), pixelMap(noisy, 64, 48, 3)];
}

function critique(problems: string[]): Critique {
  return uniformCritique(5, { summary: "test", problems });
}

/** Texts where each vocabulary word is met: alone, said of a subject, and as a context. */
function texts(word: string): string[] {
  return [
    word,
    `a ${word} house at dusk`,
    `${word} stars over the sea`,
    `snowy mountains and ${word} trees`,
  ];
}

Deno.test("every message the offline critic, brief and refiner build from any cue reads as English", () => {
  const found: string[] = [];
  let messages = 0;
  const signal = new AbortController().signal;
  for (const word of cueVocabulary()) {
    for (const text of texts(word).filter((t) => !/\b(\w+) \1\b/.test(t))) {
      const cues = extractCues(text);
      const spec: PromptSpec = { id: "t", prompt: text, mood: "calm", extra: {} };
      const all: string[] = [];
      for (const map of maps()) {
        for (const check of assess(map, cues)) {
          all.push(check.problem, check.strength, check.suggestion);
        }
      }
      all.push(...localBrief(spec).checks.map((c) => c.question));
      const problems = [...new Set(all)];
      const refined = refinePrompt({
        prompt: text,
        spec,
        critique: critique(problems),
        history: [],
        iteration: 1,
        signal,
      });
      all.push(refined.prompt, ...refined.changes.map((c) => c.change));
      for (const message of new Set(all)) {
        messages++;
        found.push(...faults(message));
      }
    }
  }
  assert.ok(messages > 2000, `only ${messages} messages`);
  assert.deepEqual([...new Set(found)], []);
});

Deno.test("the grammar checks catch the wording the critic used to write", () => {
  for (
    const bad of [
      "make the wooden on the house more vivid and let it fill more of the frame",
      "the image is too flat for 'calm': contrast 0.12, expected 0.14–0.25",
      "'stars' is weak: visible stars measures 120, expected at least 240",
      "the 'misty' barely shows: mid-ground contrast 0.15, expected at most 0.11",
      "deeply harsh and deeply deeply vast mood",
    ]
  ) {
    assert.notDeepEqual(faults(bad), [], bad);
  }
});

Deno.test("cuePhrase() and cueList() quote words that read back as the same cue", () => {
  for (const word of cueVocabulary()) {
    for (const cue of extractCues(word)) {
      const phrase = cuePhrase(cue);
      const quoted = [...phrase.matchAll(/'([^']+)'/g)].map((m) => m[1]!).join(" ");
      const back = extractCues(quoted).map((c) => `${c.kind}:${c.name}`);
      assert.ok(back.includes(`${cue.kind}:${cue.name}`), `${word} → ${phrase} → ${back}`);
    }
  }
  const cues = extractCues("stormy night, calm and majestic, clear");
  assert.equal(
    cueList(cues),
    "'storm', 'night', a 'clear' sky and a 'calm' and 'majestic' mood",
  );
  assert.ok(Object.keys(COLOURS).length > 0);
});
