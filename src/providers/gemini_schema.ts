/**
 * What retake asks Gemini to return: the JSON Schemas sent as `responseJsonSchema` and the zod
 * schemas every answer is checked against before anyone trusts it.
 *
 * The JSON Schemas are hand-written in the subset Gemini documents for `responseJsonSchema`
 * (`type`, `description`, `properties`, `required`, `items`, `minimum`, `maximum`, `maxItems`,
 * `propertyOrdering`). `additionalProperties` is left out on purpose: other Gemini paths reject
 * or drop it, and zod strips unknown keys anyway.
 *
 * @module
 */
import { z } from "zod";
import { CRITERIA, type Criterion } from "../critique.ts";
import { PROMPT_LIMITS } from "../prompts.ts";

const SCORE = { type: "number", minimum: 0, maximum: 10 } as const;

const CRITERION_HELP: Record<Criterion, string> = {
  promptAdherence: "How faithfully the image shows what the prompt and its context ask for.",
  composition: "Framing, balance, focal point, use of space.",
  lighting: "Direction, quality and consistency of light; exposure.",
  mood: "Whether the atmosphere matches the requested mood and scene.",
  technicalQuality: "Artifacts, anatomy, distorted objects, noise, blur, garbled text.",
};

/**
 * Gemini emits required properties in the order `required` lists them, so the per-criterion
 * scores and the problems come before the overall score and summary that should follow from them.
 */
const CRITIQUE_ORDER = ["criteria", "problems", "strengths", "suggestions", "score", "summary"];

/** JSON Schema of a critique, matching `critiqueSchema` in `critique.ts`. */
export const CRITIQUE_JSON_SCHEMA = {
  type: "object",
  properties: {
    criteria: {
      type: "object",
      description: "Per-criterion scores from 0 (fails) to 10 (flawless).",
      properties: Object.fromEntries(
        CRITERIA.map((c) => [c, { ...SCORE, description: CRITERION_HELP[c] }]),
      ),
      required: [...CRITERIA],
      propertyOrdering: [...CRITERIA],
    },
    problems: {
      type: "array",
      description:
        "Concrete problems, each naming what is wrong and where in the image. Empty if none.",
      items: { type: "string" },
      maxItems: 8,
    },
    strengths: {
      type: "array",
      description: "What works in the image and should be kept.",
      items: { type: "string" },
      maxItems: 6,
    },
    suggestions: {
      type: "array",
      description: "Concrete changes to the prompt that would fix the problems.",
      items: { type: "string" },
      maxItems: 8,
    },
    score: { ...SCORE, description: "Overall score from 0 to 10." },
    summary: {
      type: "string",
      description: "One or two sentences a person can read at a glance.",
    },
  },
  required: CRITIQUE_ORDER,
  propertyOrdering: CRITIQUE_ORDER,
} as const;

/** JSON Schema of a refinement: the next prompt and what changed. */
export const REFINEMENT_JSON_SCHEMA = {
  type: "object",
  properties: {
    changes: {
      type: "array",
      description: "Each edit made to the prompt and the critique point it addresses.",
      items: {
        type: "object",
        properties: {
          change: { type: "string", description: "What was changed in the prompt." },
          reason: { type: "string", description: "Which problem this fixes, and why." },
        },
        required: ["change", "reason"],
        propertyOrdering: ["change", "reason"],
      },
      maxItems: 10,
    },
    prompt: {
      type: "string",
      description: `The complete new prompt, at most ${PROMPT_LIMITS.promptChars} characters.`,
    },
  },
  required: ["changes", "prompt"],
  propertyOrdering: ["changes", "prompt"],
} as const;

/** Schema of a refinement answer; rejects an empty or over-long prompt. */
export const refinementSchema = z.object({
  prompt: z.string().trim().min(1, "must not be empty").max(
    PROMPT_LIMITS.promptChars,
    `must be at most ${PROMPT_LIMITS.promptChars} characters`,
  ),
  changes: z.array(z.object({ change: z.string(), reason: z.string() })),
});

/** A refinement answer. */
export type Refinement = z.infer<typeof refinementSchema>;
