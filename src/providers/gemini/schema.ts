/**
 * What retake asks Gemini to return: the JSON Schemas sent as `responseJsonSchema` (and, in
 * their strict form, to OpenAI-compatible servers).
 *
 * The JSON Schemas are hand-written in the subset Gemini documents for `responseJsonSchema`
 * (`type`, `description`, `properties`, `required`, `items`, `minimum`, `maximum`, `minItems`,
 * `maxItems`, `propertyOrdering`). `additionalProperties` is left out on purpose: other Gemini
 * paths reject or drop it, and extra keys are ignored anyway.
 *
 * What comes back is read by `_llm_answers.ts`, which asks nothing these schemas do not say: an
 * answer that fits them is always used.
 *
 * @module
 */
import { CHECK_KINDS, CRITERIA, type Criterion } from "../critique.ts";
import { PROMPT_LIMITS } from "../../prompts/mod.ts";

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

/** JSON Schema of a brief: the yes/no checks every image of a prompt is judged by. */
export const BRIEF_JSON_SCHEMA = {
  type: "object",
  properties: {
    checks: {
      type: "array",
      description:
        "4 to 12 yes/no questions about the image, one fact each, covering what the prompt and its context ask for.",
      items: {
        type: "object",
        properties: {
          id: { type: "string", description: "c1, c2, … in order." },
          question: {
            type: "string",
            description: 'A yes/no question, e.g. "Is there a lighthouse?"',
          },
          kind: { type: "string", enum: [...CHECK_KINDS], description: "What the check is about." },
        },
        required: ["id", "question", "kind"],
        propertyOrdering: ["id", "question", "kind"],
      },
      minItems: 1,
      maxItems: 12,
    },
  },
  required: ["checks"],
} as const;

/** JSON Schema of a critique that also answers every check of a brief. */
export const CRITIQUE_WITH_CHECKS_JSON_SCHEMA = {
  ...CRITIQUE_JSON_SCHEMA,
  properties: {
    checks: {
      type: "array",
      description: "One answer per check of the brief, in its order.",
      items: {
        type: "object",
        properties: {
          id: { type: "string", description: "The check's id." },
          passed: { type: "boolean", description: "Whether the image answers the question yes." },
          reason: { type: "string", description: "What in the image decided it." },
          fix: {
            type: "string",
            description: "For a failed check: one concrete change that would make it pass.",
          },
        },
        required: ["id", "passed", "reason"],
        propertyOrdering: ["id", "passed", "reason", "fix"],
      },
      maxItems: 12,
    },
    ...CRITIQUE_JSON_SCHEMA.properties,
  },
  required: ["checks", ...CRITIQUE_ORDER],
  propertyOrdering: ["checks", ...CRITIQUE_ORDER],
} as const;

/**
 * {@linkcode CRITIQUE_WITH_CHECKS_JSON_SCHEMA} with room for an answer to each of `checks`: a
 * prompt file's own checklist may be longer than the 12 a critic writes (DSG-1k's has up to 52),
 * and a service that keeps to `maxItems` would leave the rest unanswered, so failed.
 */
export function critiqueWithChecksSchema(checks: number): Record<string, unknown> {
  const base = CRITIQUE_WITH_CHECKS_JSON_SCHEMA;
  if (checks <= base.properties.checks.maxItems) return base;
  return {
    ...base,
    properties: { ...base.properties, checks: { ...base.properties.checks, maxItems: checks } },
  };
}

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

/** JSON Schema of a refinement whose next image edits the best one: also the edit to make. */
export const REFINEMENT_EDIT_JSON_SCHEMA = {
  ...REFINEMENT_JSON_SCHEMA,
  properties: {
    ...REFINEMENT_JSON_SCHEMA.properties,
    instruction: {
      type: "string",
      description:
        "The edit to make to the image, as one short instruction for an image editor, from the failed checks.",
    },
  },
  required: ["changes", "prompt", "instruction"],
  propertyOrdering: ["changes", "prompt", "instruction"],
} as const;

/** A refinement answer: the next prompt, what changed, and for an edit the instruction. */
export interface Refinement {
  prompt: string;
  changes: Array<{ change: string; reason: string }>;
  instruction?: string;
}
