import assert from "node:assert/strict";
import type { Critique } from "../providers/critique.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { createLocalRefiner, flaggedCues, keepsWords, MAX_LENGTH_RATIO } from "./refiner.ts";
import type { RefineRequest, RoundHistory } from "../providers/provider.ts";
import { EMPHASIS_WORDS, extractCues, strengthOf, tokenize } from "./scene_cues.ts";
import { uniformCritique } from "../../tests/critique_fixture.ts";

const signal = new AbortController().signal;

function critique(problems: string[]): Critique {
  return uniformCritique(6, { summary: "test", problems });
}

function refine(
  prompt: string,
  spec: PromptSpec,
  problems: string[],
  history: RoundHistory[] = [],
) {
  const c = critique(problems);
  const request: RefineRequest = {
    prompt,
    spec,
    critique: c,
    history: [...history, { iteration: history.length + 1, prompt, critique: c }],
    iteration: history.length + 1,
    signal,
  };
  return createLocalRefiner().refine(request);
}

const desert: PromptSpec = {
  id: "desert",
  prompt: "orange sand dunes under a midday sun",
  scene: "wide dunes with a camel",
  mood: "harsh",
  extra: {},
};

Deno.test("localRefiner() strengthens a colour the critique found missing", async () => {
  const result = await refine(desert.prompt, desert, [
    "little of the requested 'orange' on the dunes: 4% of pixels, expected at least 50%",
  ]);
  const before = strengthOf(extractCues(desert.prompt), "colour", "orange");
  const after = strengthOf(extractCues(result.prompt), "colour", "orange");
  assert.ok(after > before, result.prompt);
  assert.ok(result.changes.some((c) => c.reason.includes("'orange'")));
  assert.equal(result.costUsd, 0);
});

Deno.test("localRefiner() adds cues from the scene and mood that the prompt lacks", async () => {
  const result = await refine(desert.prompt, desert, []);
  const cues = extractCues(result.prompt);
  assert.equal(strengthOf(cues, "subject", "animal"), 1, result.prompt);
  assert.ok(strengthOf(cues, "mood", "harsh") >= 1, result.prompt);
  assert.ok(result.prompt.startsWith("orange sand dunes under a midday sun"));
});

Deno.test("localRefiner() emphasises added cues the critique flagged", async () => {
  const result = await refine(desert.prompt, desert, [
    "the image is too flat for 'harsh': contrast 0.08, expected 0.16–0.30",
  ]);
  assert.ok(strengthOf(extractCues(result.prompt), "mood", "harsh") >= 2, result.prompt);
});

Deno.test("localRefiner() keeps what earlier rounds strengthened", async () => {
  const earlier: RoundHistory = {
    iteration: 1,
    prompt: "vivid orange sand dunes under a midday sun",
    critique: critique([]),
  };
  // The prompt passed in has lost the emphasis, as a hand edit or another refiner might do.
  const result = await refine(desert.prompt, desert, [], [earlier]);
  assert.ok(strengthOf(extractCues(result.prompt), "colour", "orange") >= 2, result.prompt);
});

Deno.test("localRefiner() adds more emphasis to a cue flagged again after emphasis", async () => {
  const problem = "little of the requested 'orange' on the dunes: 10% of pixels, expected 50%";
  const earlier: RoundHistory = {
    iteration: 1,
    prompt: desert.prompt,
    critique: critique([problem]),
  };
  const prompt = "vivid orange sand dunes under a midday sun";
  const result = await refine(prompt, desert, [problem], [earlier]);
  assert.ok(strengthOf(extractCues(result.prompt), "colour", "orange") >= 3, result.prompt);
});

Deno.test("localRefiner() leaves a prompt alone when nothing is missing", async () => {
  const spec: PromptSpec = { id: "x", prompt: "a red boat", extra: {} };
  const result = await refine(spec.prompt, spec, []);
  assert.equal(result.prompt, "a red boat");
  assert.deepEqual(result.changes, []);
});

Deno.test("flaggedCues() maps quoted words in problems to cue keys", () => {
  const flagged = flaggedCues(["the image is too dark for 'midday' and 'misty': brightness 0.3"]);
  assert.deepEqual([...flagged.keys()].sort(), ["time:noon", "weather:mist"]);
});

Deno.test("localRefiner() rewrites the original rather than appending to an overgrown prompt", async () => {
  const cabin: PromptSpec = {
    id: "cabin",
    prompt: "A small wooden house with warm yellow windows in falling snow at dusk",
    mood: "cozy, warm",
    extra: {},
  };
  // What the refiner used to hand back by round 4.
  const overgrown = "A small saturated vivid prominent wooden house with saturated intense vivid " +
    "warm yellow windows in falling snow at dusk, deeply warm, bright brilliant lit windows, " +
    "strong dusk light, deeply cozy mood, deeply intensely warm, deeply intensely cozy";
  const result = await refine(overgrown, cabin, [
    "the house shows little of the requested 'wooden' colour: 2% of pixels, expected at least 4.0%",
    "the windows show little of the requested 'yellow' colour: 0.4% of pixels, expected at least 0.8%",
  ]);
  const words = result.prompt.split(/\s+/);
  assert.ok(words.length <= MAX_LENGTH_RATIO * cabin.prompt.split(/\s+/).length, result.prompt);
  assert.ok(keepsWords(cabin.prompt, result.prompt), result.prompt);
  const modifiers = tokenize(result.prompt).flat().filter((w) => w in EMPHASIS_WORDS);
  assert.deepEqual(modifiers, [...new Set(modifiers)], result.prompt);
  assert.doesNotMatch(result.prompt, /small (large|big)/, result.prompt);
  for (const colour of ["brown", "yellow"]) {
    assert.ok(strengthOf(extractCues(result.prompt), "colour", colour) >= 2, result.prompt);
  }
});

Deno.test("localRefiner() keeps a prompt word for word when a rewrite would add nothing", async () => {
  const first = await refine(desert.prompt, desert, [
    "the dunes show little of the requested 'orange' colour: 4% of pixels, expected at least 50%",
  ]);
  const earlier: RoundHistory = { iteration: 1, prompt: desert.prompt, critique: critique([]) };
  const second = await refine(first.prompt, desert, [], [earlier]);
  assert.equal(second.prompt, first.prompt);
  assert.deepEqual(second.changes, []);
});

Deno.test("localRefiner() fits the article to the word it puts after it", async () => {
  const spec: PromptSpec = { id: "x", prompt: "a storm over a lighthouse", extra: {} };
  const result = await refine(spec.prompt, spec, [
    "the sky is too light for the requested 'storm': mean brightness 0.5, expected at most 0.32",
  ]);
  assert.match(result.prompt, /^an intense storm over a lighthouse/, result.prompt);
});
