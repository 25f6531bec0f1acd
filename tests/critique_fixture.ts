/**
 * A critique with the same score on every criterion, for tests and the benchmark's fakes.
 *
 * @module
 */
import type { Critique } from "../src/providers/critique.ts";

/** A critique scoring `score` overall and on every criterion; `parts` overrides the lists. */
export function uniformCritique(score: number, parts: Partial<Critique> = {}): Critique {
  return {
    score,
    criteria: {
      promptAdherence: score,
      composition: score,
      lighting: score,
      mood: score,
      technicalQuality: score,
    },
    summary: `Scores ${score}`,
    strengths: [],
    problems: [],
    suggestions: [],
    ...parts,
  };
}
