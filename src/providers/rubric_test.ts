import assert from "node:assert/strict";
import type { Critique } from "./critique.ts";
import { CRITIC_INSTRUCTION, criticInstruction } from "./_llm_prompts.ts";
import {
  criterionShares,
  criterionWeightsSchema,
  rubricTextSchema,
  weightedScore,
} from "./rubric.ts";

const critique: Critique = {
  score: 9.5,
  criteria: { promptAdherence: 2, composition: 8, lighting: 6, mood: 10, technicalQuality: 4 },
  summary: "",
  strengths: [],
  problems: [],
  suggestions: [],
};

Deno.test("weightedScore() makes the overall score the weighted mean of the criteria", () => {
  // (4·2 + 8 + 6 + 10 + 0·4) / 7 = 4.57…
  const weighted = weightedScore(critique, { promptAdherence: 4, technicalQuality: 0 });
  assert.equal(weighted.score, 4.6);
  assert.deepEqual(weighted.criteria, critique.criteria);
  assert.equal(weightedScore(critique, undefined), critique, "no weights, the critic's score");
});

Deno.test("criterionShares() gives a criterion left out the weight 1", () => {
  const shares = criterionShares({ promptAdherence: 6 });
  assert.equal(shares.promptAdherence, 0.6);
  assert.equal(shares.mood, 0.1);
  assert.ok(Math.abs(Object.values(shares).reduce((a, b) => a + b) - 1) < 1e-9);
});

Deno.test("criterionWeightsSchema refuses unknown criteria, negative weights and all zeros", () => {
  assert.ok(criterionWeightsSchema.safeParse({ lighting: 2 }).success);
  const issue = (value: unknown) => criterionWeightsSchema.safeParse(value).error?.issues[0];
  assert.match(issue({ colour: 2 })!.message, /promptAdherence, composition/);
  assert.ok(issue({ lighting: -1 }));
  const zeros = {
    promptAdherence: 0,
    composition: 0,
    lighting: 0,
    mood: 0,
    technicalQuality: 0,
  };
  assert.match(issue(zeros)!.message, /at least one criterion a weight above 0/);
  assert.match(rubricTextSchema.safeParse("  ").error!.issues[0]!.message, /must not be empty/);
});

Deno.test("criticInstruction() adds the rubric's text and replaces the score line with its weights", () => {
  assert.equal(criticInstruction(undefined), CRITIC_INSTRUCTION);
  assert.equal(criticInstruction({}), CRITIC_INSTRUCTION);
  const text = criticInstruction({ text: "No watermarks." });
  assert.ok(text.startsWith(CRITIC_INSTRUCTION) && text.endsWith("No watermarks."), text);
  const weighted = criticInstruction({ weights: { lighting: 6 } });
  assert.doesNotMatch(weighted, /weighs promptAdherence most/);
  assert.match(weighted, /weighted mean of the criteria.*lighting 60%/);
});
