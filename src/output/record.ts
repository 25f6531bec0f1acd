/**
 * What `metadata.json` holds for one prompt: its context, every iteration with timings, seeds,
 * models, request ids, attempts and costs, and the outcome.
 *
 * @module
 */
import { type Brief, checksPassed, type Critique } from "../providers/critique.ts";
import type { PromptSettings, PromptSpec } from "../prompts/mod.ts";
import type { PromptChange, TokenUsage } from "../providers/provider.ts";

/** The three kinds of step. */
export type StepName = "generate" | "critique" | "refine";

/** How one step went. */
export interface StepRecord {
  provider: string;
  model: string;
  /** The model that answered, where the service names it (Gemini routes deprecated ids). */
  modelVersion?: string;
  /** Wall time of the successful attempt plus waits, in ms. */
  durationMs: number;
  attempts: number;
  costUsd: number;
  /** No price was known for the model: `costUsd` is 0 for want of one, not because it was free. */
  costUnknown?: true;
  requestId?: string;
  usage?: TokenUsage;
  /** What of the service's answer was read leniently, where it did not fit as asked. */
  normalised?: string[];
  /** Made in a batch job (`--batch-api`): `costUsd` is the batch price. */
  batch?: true;
  startedAt: string;
}

/** How the next round is made: an edit of the best image so far, or a new drawing. */
export interface NextRound {
  action: "edit" | "redraw";
  reason: string;
  /** The edit instruction, for an edit. */
  instruction?: string;
  /** The user's note (a reject in the studio) the refinement took as its first instruction. */
  note?: string;
}

/** One round: image, critique, and (except on the last) the refined prompt. */
export interface IterationRecord {
  iteration: number;
  /** The text this round's image was generated from. */
  prompt: string;
  /** The seed the service used; absent when it reports none (Nano Banana, Imagen 4, Recraft). */
  seed?: number | undefined;
  model?: string;
  /** Image file name, relative to the prompt folder. */
  image?: string;
  width?: number;
  height?: number;
  queueMs?: number;
  inferenceMs?: number;
  nsfw?: boolean;
  critique?: Critique;
  /** The prompt for the next round; absent on the last. */
  refinedPrompt?: string;
  refineChanges?: PromptChange[];
  /** How the next round is made from this one, and why (`--refine`). */
  next?: NextRound;
  /** How this round was made: drawn anew, or an edit of round `editOf`. */
  action?: NextRound["action"];
  actionReason?: string;
  editOf?: number;
  /** The change asked of the edit. */
  instruction?: string;
  /** The user's note that asked for this round (a reject in the studio), as the refiner got it. */
  note?: string;
  /** Where the service keeps this image for a while (an edit can start from it). */
  imageUrl?: string;
  steps: Partial<Record<StepName, StepRecord>>;
}

/** Where a prompt failed. */
export interface FailureRecord {
  /** The step that failed, or `save`: writing its result to disk. */
  step: StepName | "save";
  /** The round it failed in, from 1. */
  iteration: number;
  /** Why, in one line for a person. */
  message: string;
  /** The provider whose call failed, where one did. */
  provider?: string;
  /** The HTTP status of the failed call, where there was one. */
  status?: number;
  /** The provider's id of the failed request, where it assigned one. */
  requestId?: string;
}

/** A call the service billed whose result was not saved (a flagged image, a lost request). */
export interface ChargeRecord {
  step: StepName;
  iteration: number;
  costUsd: number;
  requestId?: string;
  reason: string;
}

/**
 * Where a prompt stands: `running` while a run works on it, then `completed`, `failed`, or
 * `interrupted` (Ctrl-C or the budget; the next run resumes it).
 */
export type PromptStatus = "running" | "completed" | "failed" | "interrupted";

/** The content of `metadata.json`. */
export interface PromptRecord {
  id: string;
  folder: string;
  status: PromptStatus;
  /**
   * Why a completed prompt stopped: it ran every iteration asked for, reached the target (every
   * check passed and the score reached `--target-score`), converged (the refiner returned the
   * same prompt), or reached a plateau (no gain in `--patience` rounds).
   */
  endReason?: "iterations" | "target" | "converged" | "plateau";
  /**
   * Why an interrupted prompt stopped: the user (Ctrl-C, SIGTERM), `--max-cost`, or `cancel`: the
   * user cancelled it in the studio, and later runs leave it be unless `--force`.
   */
  stopCause?: "interrupt" | "budget" | "cancel";
  /** Hash of the prompt, its context and every setting that changes the result. */
  inputHash: string;
  error?: FailureRecord;
  title?: string;
  scene?: string;
  mood?: string;
  /** The original prompt text. */
  prompt: string;
  /** The prompt's own settings (size, seed, negativePrompt, model, …), over the batch's. */
  settings?: PromptSettings;
  extra: Record<string, unknown>;
  providers: { generator: string; critic: string; refiner: string };
  /** The checklist every round is judged by (also in `brief.json`), when the critic makes one. */
  brief?: Brief;
  /** How making the brief went. */
  briefStep?: StepRecord;
  iterations: IterationRecord[];
  /**
   * A generation the provider accepted whose result is not saved yet; a resumed run fetches
   * its result instead of paying again.
   */
  pending?: {
    iteration: number;
    model: string;
    requestId: string;
    acceptedAt: string;
    /** Its estimated cost: counted as spent until its result is saved. */
    costUsd?: number;
  };
  /** Billed calls whose results were not saved. */
  charges?: ChargeRecord[];
  /** Iteration number with the highest critic score. */
  bestIteration?: number;
  bestScore?: number;
  /** The iteration the user picked as their favourite; `bestImage` follows it. */
  chosen?: number;
  /** Copy of the chosen (else the best) iteration's image, e.g. `best.png`. */
  bestImage?: string;
  costUsd: number;
  durationMs: number;
  startedAt: string;
  finishedAt?: string;
}

/** A new record for a prompt about to start. */
export function newRecord(
  spec: PromptSpec,
  folder: string,
  providers: PromptRecord["providers"],
  startedAt: string,
  inputHash: string,
): PromptRecord {
  return {
    id: spec.id,
    folder,
    status: "running",
    inputHash,
    ...(spec.title !== undefined && { title: spec.title }),
    ...(spec.scene !== undefined && { scene: spec.scene }),
    ...(spec.mood !== undefined && { mood: spec.mood }),
    prompt: spec.prompt,
    ...(spec.settings !== undefined && { settings: spec.settings }),
    extra: spec.extra,
    providers,
    iterations: [],
    costUsd: 0,
    durationMs: 0,
    startedAt,
  };
}

/** Sum of every step's cost, billed failures and the pending request, in USD. */
export function totalCost(record: PromptRecord): number {
  let sum = (record.pending?.costUsd ?? 0) + (record.briefStep?.costUsd ?? 0);
  for (const it of record.iterations) {
    for (const step of Object.values(it.steps)) sum += step?.costUsd ?? 0;
  }
  for (const charge of record.charges ?? []) sum += charge.costUsd;
  return Math.round(sum * 1e6) / 1e6;
}

/**
 * The best iteration: most checks passed, then the highest score; a tie goes to the earlier,
 * cheaper round.
 */
export function bestIteration(record: PromptRecord): IterationRecord | undefined {
  let best: IterationRecord | undefined;
  for (const it of record.iterations) {
    if (it.critique && (!best || better(it.critique, best.critique!))) best = it;
  }
  return best;
}

/** The round `best.<ext>` shows: the user's favourite, else the critic's best. */
export function shownIteration(record: PromptRecord): IterationRecord | undefined {
  const chosen = record.chosen === undefined
    ? undefined
    : record.iterations.find((it) => it.iteration === record.chosen && it.image !== undefined);
  return chosen ?? bestIteration(record);
}

function better(a: Critique, b: Critique): boolean {
  const passed = (checksPassed(a) ?? 0) - (checksPassed(b) ?? 0);
  return passed !== 0 ? passed > 0 : a.score > b.score;
}

/** How a prompt ended. */
export interface PromptOutcome {
  /** The prompt's id. */
  id: string;
  /** The name of the prompt's folder, which holds its `metadata.json` and images. */
  folder: string;
  /** `interrupted`: the next run with the same command resumes it. */
  status: "completed" | "failed" | "interrupted";
  /** Why an interrupted prompt stopped: the user, the budget, or a cancel in the studio. */
  stopCause?: "interrupt" | "budget" | "cancel";
  /** True when a previous run had already completed it with the same inputs. */
  skipped: boolean;
  /** Generation model. */
  model: string;
  /** Time spent on the prompt, in ms. */
  durationMs: number;
  /** Where and why it failed, for a failed prompt. */
  error?: FailureRecord;
  /** The critique score of the best round, 0 to 10, once a round was critiqued. */
  bestScore?: number;
  /** The best round by the critic (most checks passed, then the highest score), from 1. */
  bestIteration?: number;
  /** What the prompt has cost, in USD, as its `metadata.json` counts it (earlier runs included). */
  costUsd: number;
  /** The rounds in its `metadata.json`. */
  iterations: number;
}
