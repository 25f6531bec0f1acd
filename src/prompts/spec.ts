/**
 * What one prompt of a prompt file is, once read and checked, and the limits every file is held
 * to.
 *
 * @module
 */

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
  /** Fields beyond the known ones, kept and passed through to metadata. */
  extra: Record<string, unknown>;
}

/** Limits that keep a typo (or a hostile file) from costing money or memory. */
export const PROMPT_LIMITS = {
  /** Largest prompt file read, in bytes. */
  fileBytes: 10 * 1024 * 1024,
  /** Most prompts in one file. */
  prompts: 10_000,
  /** Longest prompt text, in characters. */
  promptChars: 4_000,
  /** Longest id, in characters. */
  idChars: 200,
  /**
   * Deepest nesting of objects and arrays in a field: the hash, the copies and the JSON written
   * for a prompt all walk its fields, and a field thousands of levels deep would overflow the
   * stack half-way through the batch.
   */
  depth: 32,
  /** Most problems listed for invalid files; the rest are counted. */
  problems: 20,
} as const;
