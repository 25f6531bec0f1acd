import assert from "node:assert/strict";
import {
  combineRanges,
  contextText,
  extractCues,
  findCue,
  lookSources,
  mergeCues,
  renderAmount,
  strengthOf,
} from "./scene_cues.ts";

Deno.test("extractCues() finds colours, time, weather, subjects and moods", () => {
  const cues = extractCues("Orange sand dunes at sunset, misty and calm, a lone camel");
  assert.equal(findCue(cues, "colour", "orange")?.subjects[0], "dunes");
  assert.equal(strengthOf(cues, "time", "sunset"), 1);
  assert.equal(strengthOf(cues, "weather", "mist"), 1);
  assert.equal(strengthOf(cues, "subject", "dunes"), 1.5);
  assert.equal(strengthOf(cues, "subject", "animal"), 1);
  assert.equal(strengthOf(cues, "mood", "peaceful"), 1);
});

Deno.test("extractCues() raises strength for emphasis words and repetition", () => {
  assert.equal(strengthOf(extractCues("an orange sky"), "colour", "orange"), 1);
  assert.equal(strengthOf(extractCues("a vivid orange sky"), "colour", "orange"), 2);
  assert.equal(strengthOf(extractCues("a very vivid orange sky"), "colour", "orange"), 2.5);
  assert.equal(strengthOf(extractCues("orange sky, orange sea"), "colour", "orange"), 1.5);
  // Emphasis does not reach across a clause or past a preposition.
  assert.equal(strengthOf(extractCues("vivid, orange sky"), "colour", "orange"), 1);
  assert.equal(strengthOf(extractCues("bright in the orange sky"), "colour", "orange"), 1);
});

Deno.test("extractCues() binds a colour to the subject after it, else before it", () => {
  const after = extractCues("neon pink and blue signs");
  assert.deepEqual(findCue(after, "colour", "pink")?.subjects, ["signs"]);
  assert.deepEqual(findCue(after, "colour", "blue")?.subjects, ["signs"]);
  const before = extractCues("mountains glowing purple");
  assert.deepEqual(findCue(before, "colour", "purple")?.subjects, ["mountains"]);
});

Deno.test("extractCues() reads snowy mountains as snow caps, not falling snow", () => {
  const cues = extractCues("snowy mountains over a lake");
  assert.equal(strengthOf(cues, "subject", "snowcaps"), 1);
  assert.equal(strengthOf(cues, "weather", "snow"), 0);
  assert.equal(strengthOf(extractCues("falling snow"), "weather", "snow"), 1);
});

Deno.test("extractCues() finds nothing in text without scene words", () => {
  assert.deepEqual(extractCues("lorem ipsum dolor"), []);
});

Deno.test("mergeCues() keeps the greatest strength and every word", () => {
  const merged = mergeCues(extractCues("misty lake"), extractCues("thick fog"));
  const mist = findCue(merged, "weather", "mist");
  assert.equal(mist?.strength, 2);
  assert.deepEqual(mist?.words, ["misty", "fog"]);
});

Deno.test("contextText() joins title, scene and mood", () => {
  assert.equal(
    contextText({ id: "a", prompt: "p", title: "T", mood: "calm", extra: {} }),
    "T. calm",
  );
});

Deno.test("renderAmount() grows with strength and stays below 1", () => {
  assert.equal(renderAmount(0), 0);
  assert.ok(renderAmount(1) < renderAmount(2));
  assert.ok(renderAmount(2) < renderAmount(3));
  assert.ok(renderAmount(4) < 1);
});

Deno.test("combineRanges() weights range centres by strength", () => {
  const sources = lookSources(extractCues("night, vivid dawn"));
  const even = combineRanges(sources.brightness)!;
  const weighted = combineRanges(sources.brightness, (c) => renderAmount(c.strength))!;
  // Dawn is emphasised, so the weighted target sits nearer dawn's brighter range.
  assert.ok((weighted.min + weighted.max) / 2 > (even.min + even.max) / 2);
  assert.equal(combineRanges([]), undefined);
});
