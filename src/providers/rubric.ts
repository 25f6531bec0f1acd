/**
 * The user's own rubric for the critic: text added to its instructions (`criticRubric`), and a
 * weight per criterion (`criticWeights`) that makes the overall score their weighted mean, so
 * every critic — Gemini, OpenAI-compatible, offline — ranks rounds by what the user values.
 *
 * @module
 */
import { z } from "zod";
import { CRITERIA, type Criterion, type Critique } from "./critique.ts";

/** Weights by criterion; a criterion left out weighs 1. */
export type CriterionWeights = Partial<Record<Criterion, number | undefined>>;

/** What the user asks of the critic beyond retake's own instructions. */
export interface Rubric {
  /** Added to the critic's instructions. */
  text?: string;
  /** Makes the overall score the weighted mean of the criteria. */
  weights?: CriterionWeights;
}

/** Longest rubric text, in characters: it is sent with every critique. */
export const RUBRIC_CHARS = 4_000;

/** `criticRubric` in the config file. */
export const rubricTextSchema = z.string({ error: "expected a string" }).trim()
  .min(1, "must not be empty; leave it out for retake's own rubric")
  .max(RUBRIC_CHARS, `must be at most ${RUBRIC_CHARS} characters`);

/** `criticWeights` in the config file: 0 to 100 per criterion, not all 0. */
export const criterionWeightsSchema = z.strictObject(
  Object.fromEntries(
    CRITERIA.map((
      c,
    ) => [c, z.number({ error: "expected a number from 0 to 100" }).min(0).max(100).optional()]),
  ) as Record<Criterion, z.ZodOptional<z.ZodNumber>>,
  {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? `expected only criteria (${CRITERIA.join(", ")}): current keys include '${issue.keys[0]}'`
        : undefined,
  },
).refine(
  (weights) => CRITERIA.some((c) => (weights[c] ?? 1) > 0),
  "must give at least one criterion a weight above 0",
);

/** Every criterion's weight as a share of their sum (a missing one weighs 1). */
export function criterionShares(weights: CriterionWeights): Record<Criterion, number> {
  const total = CRITERIA.reduce((sum, c) => sum + (weights[c] ?? 1), 0);
  return Object.fromEntries(CRITERIA.map((c) => [c, (weights[c] ?? 1) / total])) as Record<
    Criterion,
    number
  >;
}

/**
 * The critique with its overall score replaced by the weighted mean of its criteria, rounded to
 * a tenth; unchanged without weights.
 *
 * @example
 * ```ts
 * import { weightedScore } from "./rubric.ts";
 * const critique = {
 *   score: 9,
 *   criteria: { promptAdherence: 4, composition: 8, lighting: 8, mood: 8, technicalQuality: 8 },
 *   summary: "",
 *   strengths: [],
 *   problems: [],
 *   suggestions: [],
 * };
 * const weighted = weightedScore(critique, { promptAdherence: 3 });
 * if (weighted.score !== 6.3) throw new Error(`got ${weighted.score}`);
 * ```
 */
export function weightedScore(critique: Critique, weights: CriterionWeights | undefined): Critique {
  if (weights === undefined) return critique;
  const shares = criterionShares(weights);
  const score = CRITERIA.reduce((sum, c) => sum + shares[c] * critique.criteria[c], 0);
  return { ...critique, score: Math.round(score * 10) / 10 };
}

/** The instruction lines a rubric adds for an LLM critic; empty without one. */
export function rubricInstruction(rubric: Rubric | undefined): string {
  const lines: string[] = [];
  if (rubric?.weights !== undefined) {
    const shares = criterionShares(rubric.weights);
    lines.push(
      `The overall score is the weighted mean of the criteria, with these weights: ${
        CRITERIA.map((c) => `${c} ${Math.round(shares[c] * 100)}%`).join(", ")
      }.`,
    );
  }
  if (rubric?.text !== undefined) {
    lines.push(
      `The user's own rubric follows; apply it too, and where it differs from the above, it wins:\n${rubric.text}`,
    );
  }
  return lines.join("\n");
}
