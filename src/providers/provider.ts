/**
 * The seams every service plugs into: generate an image, critique an image, refine a prompt;
 * and the {@linkcode ProviderDescriptor} each service exports. A new service is one new file
 * exporting a descriptor, plus one line in `registry.ts`: its settings, environment variables,
 * secrets, models and `--help` text are all read from the descriptor.
 *
 * Providers do not retry: they classify failures as {@linkcode ProviderError} (retryable or
 * not, with the server's retry hint) and the pipeline's one backoff operator does the rest.
 *
 * @module
 */
import type { z } from "zod";
import type { Brief, Critique } from "./critique.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { Rubric } from "./rubric.ts";
import type { BatchApiSession, BatchApiSettings } from "../batch_api/session.ts";

/** Output image encodings retake can save. */
export type ImageFormat = "png" | "jpeg";

/** Token counts reported by an LLM call. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  /** Input tokens spent on images, where the service reports them separately. */
  imageTokens?: number;
  /** Input tokens the service read from its cache, billed at its cached rate (part of input). */
  cachedTokens?: number;
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
  /**
   * What the image must not show (a prompt's `negativePrompt`): sent where the model takes one;
   * a provider whose model takes none says so once, as a warning.
   */
  negativePrompt?: string;
  /** Denoising steps (a prompt's `steps`), where the model takes them; else the provider's own. */
  steps?: number;
  signal: AbortSignal;
  /**
   * Called as soon as the service has accepted the request (and may bill it), with its id, so
   * the pipeline can record it before the result arrives.
   */
  onAccepted?: (requestId: string) => void;
  /**
   * Called with the id of a request the client names itself (ComfyUI's `prompt_id`) before it is
   * sent; the pipeline records it in the prompt's folder and resolves once that is on disk, so a
   * run killed mid-generation finds the request by its id (see `recoverRequestId`) instead of
   * sending it again. A rejection means it could not be recorded: nothing is sent.
   */
  onSubmitting?: (requestId: string) => Promise<void>;
  /**
   * A request an earlier, interrupted run had sent: fetch its result instead of paying for a new
   * one, where the service still has it.
   */
  recoverRequestId?: string;
  /**
   * Edit this image instead of drawing a new one: `prompt` says what the result should show,
   * `instruction` what to change. Sent only to a generator whose `editModel` names an endpoint.
   */
  edit?: EditSource;
}

/** The image an edit starts from, and what to change in it. */
export interface EditSource {
  /** The saved image on disk. */
  imagePath: string;
  /** Where the service that made it still serves it, when it said (fal's result URL). */
  imageUrl?: string;
  /** The change to make, written by the refiner from the failed checks. */
  instruction: string;
}

/** What a generator hands back; the pipeline verifies and writes the bytes atomically. */
export interface GeneratedImage {
  /** Image bytes, whole or as a stream (streamed straight to disk, never buffered). */
  data: Uint8Array | ReadableStream<Uint8Array>;
  format: ImageFormat;
  width: number;
  height: number;
  /**
   * The seed the service actually used; undefined when it reports none (Nano Banana, Imagen 4,
   * Recraft), so no seed is recorded that would not reproduce the image.
   */
  seed?: number | undefined;
  model: string;
  /**
   * The model that answered, as the service names it, where it says (Gemini routes deprecated
   * ids to newer models); beside `model`, the id asked for.
   */
  modelVersion?: string;
  requestId?: string;
  /** Estimated cost in USD; 0 with {@linkcode GeneratedImage.costUnknown} when no price is known. */
  costUsd: number;
  /** No price is known for the model: `costUsd` is 0 only for want of one, not free. */
  costUnknown?: true;
  /** Time spent queued at the service, where known. */
  queueMs?: number;
  /** Time the service reports for inference, where known. */
  inferenceMs?: number;
  /** The call's latency at the service, for the adaptive limiter (see `AnswerMeta.serviceMs`). */
  serviceMs?: number;
  /** Safety flag from the service, where it reports one. */
  nsfw?: boolean;
  /** Where the service keeps the image for a while, for a later edit to start from. */
  url?: string;
  /** Made in a batch job (`--batch-api`), at the batch price. */
  batch?: true;
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
   * Generations the service runs at once (a GPU on the user's machine: one): the pipeline never
   * has more in flight, whatever `--concurrency` says, and shows the rest as queued.
   * @default {undefined} (no limit of its own)
   */
  readonly maxConcurrency?: number;
  /**
   * What besides the model decides its images (a ComfyUI workflow's content): part of each
   * prompt's input hash, so an edited workflow draws anew instead of resuming. @default {undefined}
   */
  readonly fingerprint?: string;
  /**
   * The endpoint that edits images made with `model`, or undefined when its family has none:
   * then every round is drawn anew. @default {undefined}
   */
  editModel?(model: string): string | undefined;
  /**
   * The most one generation of this size may cost, in USD, from the price table, for the
   * budget to reserve before starting it; undefined when the price is unknown. With `edit`, the
   * cost of one edit of an image of `model`, priced as the endpoint it goes to
   * ({@linkcode ImageGenerator.editModel}). Absent for providers that never cost anything (the
   * local ones).
   */
  estimateCostUsd?(
    request: { model: string; width: number; height: number; edit?: boolean },
  ): number | undefined;
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
  /**
   * The text this image was generated from. The image is judged against the original prompt
   * (`spec.prompt`), its context and the brief, never against a refined prompt.
   */
  prompt: string;
  /** The prompt's checklist: answer every check, when given. */
  brief?: Brief;
  spec: PromptSpec;
  iteration: number;
  signal: AbortSignal;
}

/** What a critic's or refiner's answer cost, and who gave it. */
export interface AnswerMeta {
  model: string;
  /**
   * The model that answered, as the service names it, where it says (Gemini routes deprecated
   * ids to newer models); beside `model`, the id asked for.
   */
  modelVersion?: string;
  costUsd: number;
  usage?: TokenUsage;
  requestId?: string;
  /** What of the answer had to be read leniently (a score as text, prose around the JSON). */
  normalised?: string[];
  /** Answered in a batch job (`--batch-api`), at the batch price. */
  batch?: true;
  /**
   * The answer's latency at the service, in ms, without the client's own work or delay: the
   * service's own timing where it reports one (Gemini's `server-timing`, OpenAI's
   * `openai-processing-ms`), else the time to its first byte. The adaptive limiter reads a
   * service's load from it, so a busy machine is not taken for a busy service.
   */
  serviceMs?: number;
}

/** A critique plus what it cost. */
export interface CritiqueResult extends AnswerMeta {
  critique: Critique;
}

/** Make a prompt's checklist, once, from the prompt and its context. */
export interface BriefRequest {
  spec: PromptSpec;
  signal: AbortSignal;
}

/** A brief plus what it cost. */
export interface BriefResult extends Omit<AnswerMeta, "modelVersion"> {
  brief: Brief;
}

/** Judges an image. */
export interface ImageCritic extends ProviderChecks {
  readonly name: string;
  critique(request: CritiqueRequest): Promise<CritiqueResult>;
  /**
   * Turns a prompt and its context into 4–12 yes/no checks (entities, counts, attributes,
   * relations, text, lighting, mood). Absent: the critic scores without a checklist.
   */
  brief?(request: BriefRequest): Promise<BriefResult>;
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
  /**
   * `edit`: the next image edits the best one so far, so also write `instruction`, the change
   * to make, from the failed checks. @default {"regenerate"}
   */
  mode?: "edit" | "regenerate";
  /**
   * The user's notes on the round (a reject in the studio), oldest first: the refiner's first
   * instructions, above the critique. @default {undefined} (none)
   */
  notes?: string[];
}

/** One edit the refiner made, and why. */
export interface PromptChange {
  change: string;
  reason: string;
}

/** The refined prompt plus what changed. */
export interface RefineResult extends AnswerMeta {
  prompt: string;
  changes: PromptChange[];
  /** In edit mode, the change to make to the image, e.g. "make the sky orange". */
  instruction?: string;
}

/** Writes the next prompt. */
export interface PromptRefiner extends ProviderChecks {
  readonly name: string;
  refine(request: RefineRequest): Promise<RefineResult>;
  /** A generous estimate of one refinement's cost in USD; undefined when the price is unknown. */
  estimateCostUsd?(): number | undefined;
}

/** What a service can do for retake. */
export type Role = "generate" | "critique" | "refine" | "edit";

/** One environment variable a provider reads. */
export interface EnvVar {
  /** Its names; the first one set wins (e.g. `FAL_KEY`, then `FAL_AI_API_KEY`). */
  readonly names: readonly string[];
  /** The setting of the provider's config section it sets, e.g. `key` or `baseUrl`. */
  readonly setting: string;
  /** A secret: redacted from every log, never written to a file. @default {false} */
  readonly secret?: boolean;
  /** One line for `--help` and README. */
  readonly description: string;
}

/** One model a provider knows by name. */
export interface ModelEntry {
  /** The id sent to the service, e.g. `fal-ai/flux/schnell`. */
  readonly id: string;
  /** Short names that stand for it, e.g. `flux-schnell`. */
  readonly aliases?: readonly string[];
  readonly roles: readonly Role[];
  /** The model family, where inputs differ by family (fal). */
  readonly family?: string;
  /** The published price, as a person reads it (`$0.003 per megapixel`); absent when unknown. */
  readonly price?: string;
}

/** The parts a provider built for a run: one per role it was asked for. */
export interface ProviderParts {
  generator?: ImageGenerator;
  critic?: ImageCritic;
  refiner?: PromptRefiner;
  /** Its batch mode, when the run asked for one (`--batch-api`) and it has one. */
  batch?: BatchApiSession;
}

/** What {@linkcode ProviderDescriptor.create} gets. */
export interface CreateContext<S> {
  /** The provider's own config section, validated by its schema. */
  settings: S;
  /** The roles this run asks of it. */
  roles: ReadonlySet<Role>;
  /**
   * The generation models this run uses, resolved by
   * {@linkcode ProviderDescriptor.resolveModel}: `--model`, then any other of `--models`.
   */
  models: readonly string[];
  /** The image size asked for. */
  size: { width: number; height: number };
  /**
   * Every model (resolved) and size the run will generate with, once each: the batch's, and
   * those of prompts that set their own `model` or `size` (with the first such prompt's id), so
   * the free checks at start cover them too. @default {every model at `size`}
   */
  sizes?: ReadonlyArray<{ model: string; width: number; height: number; prompt?: string }>;
  /** `--critic-model` (critique and refinement); undefined for the provider's default. */
  criticModel: string | undefined;
  /** The user's rubric (`criticRubric`, `criticWeights`), for the critics that take one. */
  rubric?: Rubric;
  /** Deadline for one call, in ms (`--timeout`). */
  timeoutMs: number;
  /**
   * `--batch-api`: send calls in batch jobs at the batch price, where the service sells them.
   * @default {undefined} (every call at once)
   */
  batchApi?: BatchApiSettings;
}

/**
 * Everything retake knows about one service. Config, `--help`, redaction, the permission set's
 * environment list and README's tables are derived from the registry's descriptors.
 */
export interface ProviderDescriptor<S extends Record<string, unknown> = Record<string, unknown>> {
  /** Its name in `--generator`/`--critic` and its config file section, e.g. `fal`. */
  readonly name: string;
  /** Its name for people, e.g. `fal.ai`. */
  readonly title: string;
  /** Per role, one line on what it does, for `--help` and README. */
  readonly summary: Partial<Record<Role, string>>;
  readonly roles: readonly Role[];
  /** Its config section (defaults included); `{}` must parse. */
  readonly schema: z.ZodType<S>;
  readonly env: readonly EnvVar[];
  readonly models: readonly ModelEntry[];
  /** The model per role when none is chosen. */
  readonly defaults: Partial<Record<Role, string>>;
  /**
   * Whether its settings let it run (its key is set, or it needs none): `auto` picks the
   * first available provider, in registry order, for each role.
   */
  available(settings: S): boolean;
  /**
   * Whether `auto` may pick it at all. False for a service whose key people set for other tools
   * (`OPENAI_API_KEY`): retake spends on it only when asked by name. @default {true}
   */
  readonly auto?: boolean;
  /** Why it cannot run and what to do, for a user who forced it: names the variable to set. */
  unavailable: string;
  /**
   * Resolves a generation model name or alias to the id sent; throws an `InputError` naming
   * what it accepts. @default {the name as given, or the generate default}
   */
  resolveModel?(name: string | undefined): string;
  /** Builds the parts asked for. Imports its SDK here, so unused services cost nothing. */
  create(context: CreateContext<S>): Promise<ProviderParts>;
}
