/**
 * The evaluation shape every critic returns, local or remote, and its schema; and the brief: the
 * yes/no checks a prompt's images are judged by, made once per prompt from the prompt and its
 * context (the measure that question-based scores such as DSG, arXiv 2310.18235, use).
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

/** What a check is about. */
export const CHECK_KINDS = [
  "entity",
  "count",
  "attribute",
  "relation",
  "text",
  "lighting",
  "mood",
  "style",
  "composition",
] as const;

/** One kind of check. */
export type CheckKind = typeof CHECK_KINDS[number];

/**
 * Most checks a brief holds: a critic writes up to 12, a prompt file may give more (DSG-1k's
 * longest checklist has 52).
 */
export const BRIEF_MAX_CHECKS = 64;

/**
 * Schema of `brief.json`: yes/no checks, each with an id unique in the brief (`c1`, `c2`, … as
 * asked, though a service may name them otherwise); none when the service wrote no usable
 * check, and the images are then judged without a checklist.
 */
export const briefSchema = z.object({
  checks: z.array(z.object({
    id: z.string().min(1),
    /** A yes/no question about the image, e.g. "Is there a lighthouse?". */
    question: z.string().min(1),
    kind: z.enum(CHECK_KINDS),
  })).max(BRIEF_MAX_CHECKS),
});

/** The checklist a prompt's every image is judged by. */
export type Brief = z.infer<typeof briefSchema>;

/** A critique's answer to one check of the brief. */
export const checkAnswerSchema = z.object({
  id: z.string(),
  passed: z.boolean(),
  /** What in the image decided it. */
  reason: z.string(),
  /** For a failed check, one concrete change that would make it pass. */
  fix: z.string().optional(),
});

/** A critique's answer to one check. */
export type CheckAnswer = z.infer<typeof checkAnswerSchema>;

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
  /** One answer per check of the prompt's brief, when there is one. */
  checks: z.array(checkAnswerSchema).optional(),
});

/** A critique of one image. */
export type Critique = z.infer<typeof critiqueSchema>;

/** How many of a critique's checks passed, or undefined when it answered none. */
export function checksPassed(critique: Critique): number | undefined {
  return critique.checks === undefined ? undefined : critique.checks.filter((c) => c.passed).length;
}
