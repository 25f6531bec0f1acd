/**
 * The critic, the brief and the refiner, written once over any service that answers a question
 * with JSON: what to ask (instructions, text, the downscaled image, the schema) and how to read
 * the answer are the same for Gemini and for OpenAI-compatible servers; only how the question
 * travels differs, and each provider gives that as a {@linkcode JsonClient}.
 *
 * @module
 */
import { type Rubric, weightedScore } from "./rubric.ts";
import { type AnswerReader, readBrief, readCritique, readRefinement } from "./_llm_answers.ts";
import {
  BRIEF_INSTRUCTION,
  briefText,
  criticInstruction,
  critiqueText,
  prepareImage,
  REFINER_INSTRUCTION,
  refineText,
} from "./_llm_prompts.ts";
import {
  BRIEF_JSON_SCHEMA,
  CRITIQUE_JSON_SCHEMA,
  critiqueWithChecksSchema,
  REFINEMENT_EDIT_JSON_SCHEMA,
  REFINEMENT_JSON_SCHEMA,
} from "./gemini/schema.ts";
import type {
  BriefRequest,
  BriefResult,
  CritiqueRequest,
  CritiqueResult,
  ImageCritic,
  PromptRefiner,
  RefineRequest,
  RefineResult,
  TokenUsage,
} from "./provider.ts";

/** One question to a JSON-answering service. */
export interface JsonQuestion<T> {
  operation: "critique" | "brief" | "refine";
  /** The schema's name, where the service wants one (OpenAI's `json_schema.name`). */
  name: string;
  system: string;
  text: string;
  /** A downscaled JPEG, base64, sent before the text. */
  image?: string;
  /** The JSON Schema the answer must fit (`gemini_schema.ts`; OpenAI gets its strict form). */
  schema: Record<string, unknown>;
  temperature: number;
  reader: AnswerReader<T>;
  signal: AbortSignal;
}

/** A usable answer and what the call cost. */
export interface JsonAnswer<T> {
  value: T;
  meta: {
    model: string;
    modelVersion?: string;
    costUsd: number;
    usage: TokenUsage;
    requestId?: string;
    /** What of the answer had to be read leniently; absent when it fitted as sent. */
    normalised?: string[];
    /** Answered in a batch job, at the batch price. */
    batch?: true;
    /** The last attempt's latency at the service (see `AnswerMeta.serviceMs`). */
    serviceMs?: number;
  };
}

/** How one provider asks its service: the only part of the LLM roles that differs by service. */
export interface JsonClient {
  /** Provider name for errors and records, e.g. `gemini`. */
  readonly provider: string;
  /** Longest side of the copy of the image sent to the critic, in px. */
  readonly imageMaxSide: number;
  /** The free check of the key and the model before the run. */
  check(signal: AbortSignal): Promise<void>;
  /** The most one call of `operation` may cost, in USD; undefined when the price is unknown. */
  estimateCostUsd(operation: "critique" | "refine"): number | undefined;
  ask<T>(question: JsonQuestion<T>): Promise<JsonAnswer<T>>;
}

/**
 * The critic (and its brief) on `client`. `check` is shared by every part made from one client,
 * so the run checks it once.
 */
export function llmCritic(
  client: JsonClient,
  rubric: Rubric | undefined,
  check: (signal: AbortSignal) => Promise<void> = client.check,
): ImageCritic {
  return {
    name: client.provider,
    check,
    estimateCostUsd: () => client.estimateCostUsd("critique"),
    async critique(request: CritiqueRequest): Promise<CritiqueResult> {
      const image = await prepareImage(
        request.imagePath,
        client.imageMaxSide,
        request.signal,
        client.provider,
      );
      const answer = await client.ask({
        operation: "critique",
        name: "critique",
        system: criticInstruction(rubric),
        text: critiqueText(request),
        image,
        schema: request.brief
          ? critiqueWithChecksSchema(request.brief.checks.length)
          : CRITIQUE_JSON_SCHEMA,
        temperature: 0.2,
        reader: readCritique(request.brief),
        signal: request.signal,
      });
      // The user's weights decide the overall score, whatever the model made of them.
      return { critique: weightedScore(answer.value, rubric?.weights), ...answer.meta };
    },
    async brief(request: BriefRequest): Promise<BriefResult> {
      const answer = await client.ask({
        operation: "brief",
        name: "brief",
        system: BRIEF_INSTRUCTION,
        text: briefText(request.spec),
        schema: BRIEF_JSON_SCHEMA,
        temperature: 0.2,
        reader: readBrief,
        signal: request.signal,
      });
      return { brief: answer.value, ...answer.meta };
    },
  };
}

/** The refiner on `client`. */
export function llmRefiner(
  client: JsonClient,
  check: (signal: AbortSignal) => Promise<void> = client.check,
): PromptRefiner {
  return {
    name: client.provider,
    check,
    estimateCostUsd: () => client.estimateCostUsd("refine"),
    async refine(request: RefineRequest): Promise<RefineResult> {
      const edit = request.mode === "edit";
      const answer = await client.ask({
        operation: "refine",
        name: "refinement",
        system: REFINER_INSTRUCTION,
        text: refineText(request),
        schema: edit ? REFINEMENT_EDIT_JSON_SCHEMA : REFINEMENT_JSON_SCHEMA,
        temperature: 0.7,
        reader: readRefinement(edit, request.prompt),
        signal: request.signal,
      });
      const { prompt, changes, instruction } = answer.value;
      return {
        prompt,
        changes,
        ...(instruction !== undefined && { instruction }),
        ...answer.meta,
      };
    },
  };
}
