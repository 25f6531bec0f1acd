/**
 * What one prompt of a prompt file is, once read and checked, and the limits every file is held
 * to.
 *
 * @module
 */
import { BRIEF_MAX_CHECKS, type CheckKind } from "../providers/critique.ts";

/**
 * Settings a prompt may set for itself; each overrides the batch's value for this prompt only.
 * Sizes are resolved to pixels; a model is as written (an alias is resolved by the run).
 */
export interface PromptSettings {
  size?: { width: number; height: number };
  seed?: number;
  /** What the image must not show: sent where the model takes a negative prompt. */
  negativePrompt?: string;
  model?: string;
  iterations?: number;
  targetScore?: number;
  /** Denoising steps (`num_inference_steps`), where the model takes them. */
  steps?: number;
}

/** The names of {@linkcode PromptSettings}, as a prompt file spells them. */
export const SETTING_NAMES = [
  "size",
  "seed",
  "negativePrompt",
  "model",
  "iterations",
  "targetScore",
  "steps",
] as const satisfies ReadonlyArray<keyof PromptSettings>;

/** One prompt entry with its context. */
export interface PromptSpec {
  id: string;
  prompt: string;
  title?: string;
  scene?: string;
  mood?: string;
  /** Its own settings, when it sets any. */
  settings?: PromptSettings;
  /**
   * The checks the file gives it (a `checks` list, a question column): they are its brief, in
   * this order, and no call makes one.
   */
  checks?: GivenCheck[];
  /** Fields beyond the known ones, kept and passed through to metadata. */
  extra: Record<string, unknown>;
}

/** One yes/no question a prompt file asks of the prompt's every image. */
export interface GivenCheck {
  question: string;
  /** What it is about; `entity` when the file does not say. */
  kind: CheckKind;
}

/**
 * Which field of a prompt file holds what, when it is not the usual name: the prompt text
 * (`prompt`, `Prompt`, `text`, `caption`, `description` are found), the id (`id`, `item_id`,
 * `prompt_id`), and the checks (`checks`, `question`, `question_natural_language`).
 */
export interface PromptFields {
  /** The field (column) that holds the prompt text. */
  promptField?: string | undefined;
  /** The field (column) that holds the id; without one, ids are made from the text. */
  idField?: string | undefined;
  /** The field (column) that holds the checks: a list, or one question a row. */
  checksField?: string | undefined;
}

/** Limits that keep a typo (or a hostile file) from costing money or memory. */
export const PROMPT_LIMITS = {
  /** Largest prompt file read, in bytes. */
  fileBytes: 64 * 1024 * 1024,
  /** Most prompts in one file. */
  prompts: 100_000,
  /** Longest prompt text, in characters. */
  promptChars: 4_000,
  /** Longest id, in characters. */
  idChars: 200,
  /** Most checks one prompt gives (DSG-1k's longest checklist has 52). */
  checks: BRIEF_MAX_CHECKS,
  /** Longest check question, in characters. */
  checkChars: 500,
  /**
   * Deepest nesting of objects and arrays in a field: the hash, the copies and the JSON written
   * for a prompt all walk its fields, and a field thousands of levels deep would overflow the
   * stack half-way through the batch.
   */
  depth: 32,
  /** Most problems listed for invalid files; the rest are counted. */
  problems: 20,
} as const;
