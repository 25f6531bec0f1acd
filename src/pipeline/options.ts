/**
 * The pipeline's options and the events it reports.
 *
 * @module
 */
import type { SchedulerLike } from "rxjs";
import type { AdaptiveLimiter, AdaptiveLimiterOptions } from "../async/adaptive.ts";
import type { Budget } from "../async/budget.ts";
import type { Criterion } from "../providers/critique.ts";
import type { RefineMode } from "./next_round.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type {
  ImageCritic,
  ImageFormat,
  ImageGenerator,
  PromptRefiner,
} from "../providers/provider.ts";
import type { PromptOutcome, StepName } from "../output/record.ts";
import type { RetryOptions } from "../async/retry.ts";
import type { PromptSink } from "../output/sink.ts";
import type { Steering } from "../steering/steering.ts";

/** Progress and log events, one per step boundary. */
export type PipelineEvent =
  | { type: "prompt-start"; id: string }
  | { type: "step-start"; id: string; step: StepName; iteration: number }
  | {
    type: "step-end";
    id: string;
    step: StepName;
    iteration: number;
    ok: boolean;
    durationMs: number;
    costUsd: number;
  }
  | { type: "retry"; id: string; step: StepName; attempt: number; delayMs: number }
  /**
   * Calls of `step` waiting for a server that runs one job at a time (a GPU on this machine),
   * all prompts' together, after prompt `id`'s call joined or left them.
   */
  | { type: "queue"; id: string; step: StepName; waiting: number }
  /** A step's files and `metadata.json` are on disk (`record`: the brief). */
  | {
    type: "saved";
    id: string;
    iteration: number;
    kind: "image" | "critique" | "refined" | "record";
  }
  | {
    type: "prompt-end";
    id: string;
    status: PromptOutcome["status"];
    costUsd: number;
    skipped: boolean;
  };

/** Everything the pipeline needs; time and randomness are injected for tests. */
export interface PipelineOptions {
  generator: ImageGenerator;
  critic: ImageCritic;
  refiner: PromptRefiner;
  sink: PromptSink;
  /** Images per prompt: the first plus refined ones; a prompt's own `iterations` wins. */
  iterations: number;
  /**
   * How many rounds of stages to build: the most iterations any prompt asks for (its own, or
   * `iterations`). Each prompt still stops at its own count. @default {iterations}
   */
  rounds?: number;
  /**
   * `refine` (the loop: each image from the refined prompt), or `sample`: every image from the
   * original prompt, each with its own seed (`seedFor` is asked per iteration), keeping the best
   * — the baseline that refinement must beat at equal spend (`retake eval`). @default {"refine"}
   */
  mode?: "refine" | "sample";
  /** Stop a prompt early once every check passes and a critique reaches this score. */
  targetScore?: number;
  /**
   * How refinements make the next image: `edit` the best image so far, `regenerate` from the
   * refined prompt, or `auto`: edit when only local checks failed (see `next_round.ts`).
   * @default {"auto"}
   */
  refineMode?: RefineMode;
  /**
   * Stop a prompt once its best round has not improved (checks passed, then score) for this
   * many rounds. @default {2}
   */
  patience?: number;
  /** Per-criterion minimums that must also be met to stop early. */
  targetCriteria?: Partial<Record<Criterion, number>>;
  /**
   * Calls in flight per stage, or `"auto"`: each provider gets one {@linkcode AdaptiveLimiter},
   * shared by all the stages that call it, which finds what the service takes; every stage then
   * has {@linkcode AUTO_CEILING} as its ceiling.
   */
  concurrency: Record<StepName, number> | "auto";
  /** Options for the limiters of `"auto"` concurrency (bounds, clock). */
  adaptive?: AdaptiveLimiterOptions;
  /**
   * The limiters of `"auto"` concurrency by provider name, shared with other pipelines that
   * call the same services (one per model in a comparison): a quota is the account's.
   */
  sharedLimiters?: Map<string, AdaptiveLimiter>;
  width: number;
  height: number;
  format: ImageFormat;
  /** Generation model id, resolved. */
  model: string;
  seedFor: (spec: PromptSpec, iteration: number) => number;
  retry: RetryOptions;
  /** Deadline for one provider call, in ms: the one the user set, and the one reported. */
  timeoutMs: number;
  /**
   * How much longer the pipeline waits before giving up on a call itself, for providers that
   * enforce `timeoutMs` on their own (and cancel the request at the service). @default {0}
   */
  timeoutSlackMs?: number;
  /**
   * Content hash of a prompt and every setting that changes its result; a previous attempt
   * with the same hash is resumed, one with another hash is moved aside.
   */
  hashFor: (spec: PromptSpec) => string;
  /** Redo every prompt, moving previous attempts aside. @default {false} */
  force?: boolean;
  /**
   * Aborted to drain: no new paid call starts (retries and calls waiting for a permit
   * included), calls in flight finish and are saved, and the prompts they belong to end as
   * `interrupted` (resumable).
   */
  stop?: AbortSignal;
  /**
   * This run's spending limit: each call reserves its provider's estimate before it starts, and
   * a call that cannot fit is not started; its prompt ends as `interrupted` (resumable).
   * @default {undefined} (no limit)
   */
  budget?: Budget;
  onEvent?: (event: PipelineEvent) => void;
  /**
   * The user's steering (the studio): no step starts while it is paused, a cancelled prompt's
   * remaining steps are not started, and a refinement takes the prompt's pending notes as its
   * first instructions.
   */
  steering?: Pick<Steering, "paused" | "resumed" | "cancelled" | "pendingNotes" | "markDone">;
  /**
   * Prompts to give one round more than they have, even when complete: each has a note
   * (a reject) the next refinement takes. @default {undefined} (none)
   */
  reopen?: (id: string) => boolean;
  /**
   * Calls wait in batch jobs (`--batch-api`): no service is probed one call at a time first, as
   * a job that cannot run is refused whole, at no cost, and one call alone would wait a job's
   * turnaround before the rest could start. @default {false}
   */
  batched?: boolean;
  /** Monotonic clock in ms. @default {performance.now} */
  now?: () => number;
  /** Wall clock as ISO text. */
  isoNow?: () => string;
  /** Scheduler for timeouts (retry has its own in `retry`). */
  scheduler?: SchedulerLike;
}
