/**
 * What every part of the pipeline shares: the run's context, a prompt's state while it runs,
 * and the prompt's own settings over the batch's.
 *
 * @module
 */
import type { AdaptiveLimiter } from "../async/adaptive.ts";
import type { Budget } from "../async/budget.ts";
import type { FirstSuccessGate } from "../async/first_success.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type {
  IterationRecord,
  NextRound,
  PromptRecord,
  StepName,
  StepRecord,
} from "../output/record.ts";
import type { Brief } from "../providers/critique.ts";
import type { PipelineEvent, PipelineOptions } from "./options.ts";
import { type PromptEvent, transition } from "./state.ts";

export interface State {
  spec: PromptSpec;
  record: PromptRecord;
  /**
   * A request an earlier process recorded as accepted: its result is fetched, not paid for
   * again. Only ever an earlier run's: a request of this run that failed was cancelled.
   */
  recoverRequestId?: string;
  /** Text for the next generation. */
  nextPrompt: string;
  /** No further step runs: failed, reached its target, drained, or already complete. */
  stopped: boolean;
  interrupted: boolean;
  skipped: boolean;
  /** Whether the prompt's folder was set up (so there is a record to save). */
  begun: boolean;
  started: number;
  /** The last round this run makes of a reopened prompt (see `reopen`). */
  lastRound?: number;
}

export type Ctx = PipelineOptions & {
  now: () => number;
  isoNow: () => string;
  emit: (event: PipelineEvent) => void;
  stop: AbortSignal;
  budget: Budget;
  ceilings: Record<StepName, number>;
  limiters: Partial<Record<StepName, AdaptiveLimiter>> | undefined;
  gates: Record<StepName, FirstSuccessGate>;
  /** The fatal error that ends the run, once there is one: no call starts after it. */
  halt: { error?: unknown };
};

/**
 * What a step's call returned, as a value: the stage saves it (see `saveStep` in
 * `save_step.ts`), and only then does it change the prompt's record.
 */
export type StepOutcome =
  /** A round's image, saved as part of the call; its `steps` are filled in when it is kept. */
  | { kind: "image"; round: IterationRecord }
  | { kind: "brief"; brief: Brief }
  | { kind: "critique"; iteration: number; critique: NonNullable<IterationRecord["critique"]> }
  | {
    kind: "refinement";
    iteration: number;
    prompt: string;
    changes: NonNullable<IterationRecord["refineChanges"]>;
    next: NextRound;
    /** The user's notes it took (their `seq` in `feedback.jsonl`), marked done once saved. */
    notes: number[];
  };

/**
 * A step's record, what it returned, and what the service said of its call: the time it queued,
 * and the call's latency at the service (see `ServiceTiming`), for the adaptive limiter.
 */
export type StepResult = {
  step: StepRecord;
  outcome: StepOutcome;
  queueMs?: number;
  serviceMs?: number;
};

/** Records `event` on the prompt: its record becomes the one `transition` returns. */
export function record(state: State, event: PromptEvent): void {
  state.record = transition(state.record, event);
}

/** A prompt's own settings over the batch's: model, size, rounds and target. */
export function ownOf(ctx: Ctx, spec: PromptSpec) {
  const own = spec.settings ?? {};
  const targetScore = own.targetScore ?? ctx.targetScore;
  return {
    model: own.model ?? ctx.model,
    width: own.size?.width ?? ctx.width,
    height: own.size?.height ?? ctx.height,
    iterations: own.iterations ?? ctx.iterations,
    target: {
      ...(targetScore !== undefined && { targetScore }),
      ...(ctx.targetCriteria !== undefined && { targetCriteria: ctx.targetCriteria }),
      // Checks the prompt file gives are its target: every one passing is enough.
      ...(spec.checks?.length && { checks: true }),
    },
  };
}

/**
 * A step's estimated cost for `spec` (its own model and size; for an `edit`, at the edit
 * endpoint's price); 0 for a provider with no price (the local ones).
 */
export function estimateFor(ctx: Ctx, step: StepName, spec: PromptSpec, edit = false): number {
  const { model, width, height } = ownOf(ctx, spec);
  const estimate = step === "generate"
    ? ctx.generator.estimateCostUsd?.({ model, width, height, ...(edit && { edit }) })
    : step === "critique"
    ? ctx.critic.estimateCostUsd?.()
    : ctx.refiner.estimateCostUsd?.();
  // An unknown price with a budget set is refused before the run starts (see runBatch).
  return estimate ?? 0;
}

export function providerName(ctx: Ctx, step: StepName): string {
  return step === "generate"
    ? ctx.generator.name
    : step === "critique"
    ? ctx.critic.name
    : ctx.refiner.name;
}
