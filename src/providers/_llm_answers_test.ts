import assert from "node:assert/strict";
import type { Brief } from "./critique.ts";
import { parseAnswer, readBrief, readCritique, readRefinement } from "./_llm_answers.ts";

const CRITERIA = {
  promptAdherence: 7,
  composition: 6,
  lighting: 8,
  mood: 7,
  technicalQuality: 9,
};
const CRITIQUE = {
  criteria: CRITERIA,
  problems: ["the boat is cropped"],
  strengths: ["warm light"],
  suggestions: ["show the whole boat"],
  score: 7,
  summary: "Good, the boat is cropped.",
};
const BRIEF: Brief = {
  checks: [
    { id: "check_subject_presence", question: "Is there a boat?", kind: "entity" },
    { id: "c2", question: "Is it dusk?", kind: "lighting" },
  ],
};

Deno.test("readBrief() keeps ids of any length and form, as the schema sent allows", () => {
  const parsed = parseAnswer(
    JSON.stringify({
      checks: [
        {
          id: "check_subject_presence_in_the_lower_left",
          question: "Is there a boat?",
          kind: "entity",
        },
        { id: "c2", question: "Is it dusk?", kind: "lighting", extra: "ignored" },
      ],
      note: "an extra field",
    }),
    readBrief,
  );
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value.checks.map((c) => c.id), [
    "check_subject_presence_in_the_lower_left",
    "c2",
  ]);
  assert.deepEqual(parsed.normalised, []);
});

Deno.test("readBrief() makes repeated ids unique, drops empty questions and keeps 12", () => {
  const checks = Array.from({ length: 14 }, (_, i) => ({
    id: i < 3 ? "same" : `c${i + 1}`,
    question: i === 5 ? "" : `Question ${i + 1}?`,
    kind: i === 4 ? "colour" : "entity",
  }));
  const parsed = parseAnswer(JSON.stringify({ checks }), readBrief);
  assert.ok(parsed.ok);
  const ids = parsed.value.checks.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(ids.length, 12);
  assert.ok(!parsed.value.checks.some((c) => c.question === ""));
  assert.equal(parsed.value.checks[4]?.kind, "attribute");
  assert.ok(parsed.normalised.length >= 3, parsed.normalised.join("; "));
});

Deno.test("readBrief() with no usable check is a brief of none, not an answer to pay for again", () => {
  const parsed = parseAnswer(JSON.stringify({ checks: [] }), readBrief);
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value.checks, []);
  assert.equal(parseAnswer(JSON.stringify({ list: [] }), readBrief).ok, false);
});

Deno.test("readCritique() reads scores as numeric strings and clamps scores just outside 0–10", () => {
  const parsed = parseAnswer(
    JSON.stringify({
      ...CRITIQUE,
      score: "7.5",
      criteria: { ...CRITERIA, lighting: 10.4, composition: -0.2, mood: "8/10" },
    }),
    readCritique(undefined),
  );
  assert.ok(parsed.ok);
  assert.equal(parsed.value.score, 7.5);
  assert.equal(parsed.value.criteria.lighting, 10);
  assert.equal(parsed.value.criteria.composition, 0);
  assert.equal(parsed.value.criteria.mood, 8);
  assert.ok(parsed.normalised.some((n) => n.includes("'score' was a string")));
  assert.ok(parsed.normalised.some((n) => n.includes("outside 0–10")));
});

Deno.test("readCritique() fills optional and missing parts, and asks again only without any score", () => {
  const parsed = parseAnswer(JSON.stringify({ criteria: CRITERIA }), readCritique(undefined));
  assert.ok(parsed.ok);
  assert.equal(parsed.value.score, 7.4);
  assert.deepEqual(parsed.value.problems, []);
  assert.equal(parsed.value.summary, "");
  const none = parseAnswer(
    JSON.stringify({ summary: "nice", score: "high" }),
    readCritique(undefined),
  );
  assert.equal(none.ok, false);
});

Deno.test("readCritique() takes the JSON out of text around it", () => {
  const text = "Here is my evaluation:\n```json\n" + JSON.stringify(CRITIQUE) +
    "\n```\nHope it helps.";
  const parsed = parseAnswer(text, readCritique(undefined));
  assert.ok(parsed.ok);
  assert.equal(parsed.value.score, 7);
  assert.deepEqual(parsed.normalised, ["the JSON was taken from text around it"]);
  assert.equal(parseAnswer("no JSON here", readCritique(undefined)).ok, false);
});

Deno.test("readCritique() lines the answers up with the brief: twice, not at all, unknown ids", () => {
  const parsed = parseAnswer(
    JSON.stringify({
      ...CRITIQUE,
      checks: [
        { id: "check_subject_presence", passed: true, reason: "a boat" },
        { id: "check_subject_presence", passed: false, reason: "second answer" },
        { id: "c9", passed: true, reason: "not asked" },
      ],
    }),
    readCritique(BRIEF),
  );
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value.checks, [
    { id: "check_subject_presence", passed: true, reason: "a boat" },
    { id: "c2", passed: false, reason: "the critic gave no answer" },
  ]);
  assert.equal(parsed.normalised.length, 3, parsed.normalised.join("; "));
});

Deno.test("readCritique() matches answers by loose id, then by position", () => {
  const loose = parseAnswer(
    JSON.stringify({
      ...CRITIQUE,
      checks: [
        { id: "C2", passed: "yes", reason: "dusk" },
        { id: "Check Subject Presence", passed: true, reason: "a boat" },
      ],
    }),
    readCritique(BRIEF),
  );
  assert.ok(loose.ok);
  assert.deepEqual(loose.value.checks?.map((c) => [c.id, c.passed]), [
    ["check_subject_presence", true],
    ["c2", true],
  ]);
  const byPosition = parseAnswer(
    JSON.stringify({
      ...CRITIQUE,
      checks: [
        { id: "1", passed: false, reason: "no boat", fix: "add a boat" },
        { id: "2", passed: true, reason: "dusk" },
      ],
    }),
    readCritique(BRIEF),
  );
  assert.ok(byPosition.ok);
  assert.deepEqual(byPosition.value.checks?.map((c) => [c.id, c.passed, c.fix]), [
    ["check_subject_presence", false, "add a boat"],
    ["c2", true, undefined],
  ]);
});

Deno.test("readRefinement() cuts an over-long prompt at a word and keeps the round's prompt for an empty one", () => {
  const long = Array.from({ length: 1200 }, (_, i) => `word${i}`).join(" ");
  const cut = parseAnswer(
    JSON.stringify({ prompt: long, changes: [] }),
    readRefinement(false, "x"),
  );
  assert.ok(cut.ok);
  assert.ok(cut.value.prompt.length <= 4000);
  assert.ok(long.startsWith(cut.value.prompt));
  assert.ok(!cut.value.prompt.endsWith(" "));
  const empty = parseAnswer(
    JSON.stringify({ prompt: "  ", changes: ["warmer light"] }),
    readRefinement(true, "a red boat at dusk"),
  );
  assert.ok(empty.ok);
  assert.equal(empty.value.prompt, "a red boat at dusk");
  assert.deepEqual(empty.value.changes, [{ change: "warmer light", reason: "" }]);
  assert.equal(empty.value.instruction, undefined);
  assert.equal(parseAnswer(JSON.stringify({ changes: [] }), readRefinement(false, "x")).ok, false);
});
