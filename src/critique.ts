/**
 * The evaluation shape every critic returns, local or remote, and its schema.
 *
 * @module
 */
import { z } from "zod";

/** The criteria every critic scores, 0–10 each. */
export const CRITERIA = [
  "promptAdherence",
  "composition",
  "lighting",
  "mood",
  "technicalQuality",
] as const;

/** One criterion name. */
export type Criterion = typeof CRITERIA[number];

const score = z.number().min(0).max(10);

/** Schema of a critique; remote answers are validated against it. */
export const critiqueSchema = z.object({
  /** Overall score 0–10. */
  score,
  /** Per-criterion scores 0–10. */
  criteria: z.object({
    promptAdherence: score,
    composition: score,
    lighting: score,
    mood: score,
    technicalQuality: score,
  }),
  /** One or two sentences a person can read at a glance. */
  summary: z.string(),
  strengths: z.array(z.string()),
  /** Concrete problems, each naming what is wrong in the image. */
  problems: z.array(z.string()),
  /** Concrete changes that would fix the problems. */
  suggestions: z.array(z.string()),
});

/** A critique of one image. */
export type Critique = z.infer<typeof critiqueSchema>;
