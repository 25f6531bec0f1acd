/**
 * The three seams every service plugs into: generate an image, critique an image, refine a
 * prompt. A new service is one new file implementing one of these, plus one line in
 * `registry.ts`.
 *
 * Providers do not retry: they classify failures as {@linkcode ProviderError} (retryable or
 * not, with the server's retry hint) and the pipeline's one backoff operator does the rest.
 *
 * @module
 */
import type { Critique } from "../critique.ts";
import type { PromptSpec } from "../prompts.ts";

/** Output image encodings retake can save. */
export type ImageFormat = "png" | "jpeg";

/** Token counts reported by an LLM call. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  /** Input tokens spent on images, where the service reports them separately. */
  imageTokens?: number;
}

/** One round of image generation. */
export interface GenerateRequest {
  /** The text to render this round (the original prompt, or a refined one). */
  prompt: string;
  /** The original prompt entry with its context (title, scene, mood, extra fields). */
  spec: PromptSpec;
  /** 1-based round number. */
  iteration: number;
  width: number;
  height: number;
  seed: number;
  /** Model or endpoint id, already resolved from aliases. */
  model: string;
  format: ImageFormat;
  signal: AbortSignal;
  /**
   * Called as soon as the service has accepted the request (and may bill it), with its id, so
   * the pipeline can record it before the result arrives.
   */
  onAccepted?: (requestId: string) => void;
  /**
   * A request an earlier, interrupted run had sent: fetch its result instead of paying for a new
   * one, where the service still has it.
   */
  recoverRequestId?: string;
}

/** What a generator hands back; the pipeline verifies and writes the bytes atomically. */
export interface GeneratedImage {
  /** Image bytes, whole or as a stream (streamed straight to disk, never buffered). */
  data: Uint8Array | ReadableStream<Uint8Array>;
  format: ImageFormat;
  width: number;
  height: number;
  /** The seed the service actually used. */
  seed: number;
  model: string;
  requestId?: string;
  /** Estimated cost in USD. */
  costUsd: number;
  /** Time spent queued at the service, where known. */
  queueMs?: number;
  /** Time the service reports for inference, where known. */
  inferenceMs?: number;
  /** Safety flag from the service, where it reports one. */
  nsfw?: boolean;
}

/** What every provider can say before any paid call. */
export interface ProviderChecks {
  /**
   * Checks the key and the model with calls that cost nothing; throws a fatal
   * `ProviderError` (bad key, unknown model) or an `InputError` (a setting that cannot work).
   * @default {undefined} (nothing to check, e.g. the local providers)
   */
  check?(signal: AbortSignal): Promise<void>;
}

/** Generates one image. */
export interface ImageGenerator extends ProviderChecks {
  /** Short provider name recorded in metadata, e.g. `local`, `fal`. */
  readonly name: string;
  generate(request: GenerateRequest): Promise<GeneratedImage>;
  /**
   * The most one generation of this size may cost, in USD, from the price table, for the
   * budget to reserve before starting it; undefined when the price is unknown. Absent for
   * providers that never cost anything (the local ones).
   */
  estimateCostUsd?(request: { model: string; width: number; height: number }): number | undefined;
}

/** An earlier round, so refinements do not undo their own fixes. */
export interface RoundHistory {
  iteration: number;
  prompt: string;
  critique: Critique;
}

/** Critique one saved image against the prompt and its context. */
export interface CritiqueRequest {
  /** Path of the saved image on disk. */
  imagePath: string;
  format: ImageFormat;
  /** The text this image was generated from. */
  prompt: string;
  spec: PromptSpec;
  iteration: number;
  signal: AbortSignal;
}

/** A critique plus what it cost. */
export interface CritiqueResult {
  critique: Critique;
  model: string;
  costUsd: number;
  usage?: TokenUsage;
  requestId?: string;
}

/** Judges an image. */
export interface ImageCritic extends ProviderChecks {
  readonly name: string;
  critique(request: CritiqueRequest): Promise<CritiqueResult>;
  /** A generous estimate of one critique's cost in USD; undefined when the price is unknown. */
  estimateCostUsd?(): number | undefined;
}

/** Write the next prompt from a critique. */
export interface RefineRequest {
  /** The text of the round just critiqued. */
  prompt: string;
  spec: PromptSpec;
  critique: Critique;
  /** Every earlier round including the one just critiqued, oldest first. */
  history: RoundHistory[];
  iteration: number;
  signal: AbortSignal;
}

/** One edit the refiner made, and why. */
export interface PromptChange {
  change: string;
  reason: string;
}

/** The refined prompt plus what changed. */
export interface RefineResult {
  prompt: string;
  changes: PromptChange[];
  model: string;
  costUsd: number;
  usage?: TokenUsage;
  requestId?: string;
}

/** Writes the next prompt. */
export interface PromptRefiner extends ProviderChecks {
  readonly name: string;
  refine(request: RefineRequest): Promise<RefineResult>;
  /** A generous estimate of one refinement's cost in USD; undefined when the price is unknown. */
  estimateCostUsd?(): number | undefined;
}
