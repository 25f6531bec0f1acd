/**
 * The RxJS pipeline: prompts flow through generate → critique → refine → generate → … stages,
 * each a `mergeMap` with its own concurrency. Each stage handles its own item's failure, so one
 * bad prompt is recorded and never stops the others; only a fatal error (a bad key) ends the
 * run, and then unsubscribing aborts every call in flight.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  catchError,
  defer,
  finalize,
  from,
  fromEvent,
  map,
  mergeMap,
  Observable,
  of,
  type OperatorFunction,
  type SchedulerLike,
  type Subscriber,
  switchMap,
  takeUntil,
  tap,
  throwError,
  timeout,
} from "rxjs";
import { fromAbortable } from "../async/abortable.ts";
import { AdaptiveLimiter, type AdaptiveLimiterOptions } from "../async/adaptive.ts";
import { Budget, BudgetRefusal } from "../async/budget.ts";
import { type Brief, briefSchema, type Criterion, type Critique } from "../providers/critique.ts";
import { nextAction, type PromptRules } from "./next_action.ts";
import {
  billedCost,
  isFatal,
  isOverload,
  messageOf,
  ProviderError,
  StopRequested,
  withBilledCost,
} from "../errors.ts";
import { FirstSuccessGate } from "../async/first_success.ts";
import { chooseNextRound, type RefineMode } from "./next_round.ts";
import { givenBrief, type PromptSpec } from "../prompts/mod.ts";
import type {
  EditSource,
  GeneratedImage,
  ImageCritic,
  ImageFormat,
  ImageGenerator,
  PromptRefiner,
  TokenUsage,
} from "../providers/provider.ts";
import {
  bestIteration,
  type FailureRecord,
  type IterationRecord,
  newRecord,
  type NextRound,
  type PromptOutcome,
  type PromptRecord,
  type StepName,
  type StepRecord,
  totalCost,
} from "../output/record.ts";
import { type RetryOptions, retryWithBackoff } from "../async/retry.ts";
import type { PromptSink } from "../output/sink.ts";
import type { PromptQueue } from "../steering/queue.ts";
import type { Steering } from "../steering/steering.ts";

const log = getLogger(["retake", "pipeline"]);

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

interface State {
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

/**
 * Runs every prompt through the loop; emits one outcome per prompt as it finishes. From a
 * {@linkcode PromptQueue}, a prompt is taken only when a first generation can start, so the
 * queue's order (which the steering changes) is the order prompts start in.
 */
export function runPipeline(
  prompts: Observable<PromptSpec> | PromptQueue,
  options: PipelineOptions,
): Observable<PromptOutcome> {
  const now = options.now ?? (() => performance.now());
  const isoNow = options.isoNow ?? (() => new Date().toISOString());
  const emit = options.onEvent ?? (() => {});
  const budget = options.budget ?? new Budget();
  const stop = options.stop ?? new AbortController().signal;
  const ceilings = stageCeilings(options.concurrency);
  const limiters = options.concurrency === "auto"
    ? providerLimiters(options)
    : serverLimiters(options);
  const gates = providerGates(options);
  if (options.batched) { for (const gate of Object.values(gates)) gate.succeeded(); }
  const ctx: Ctx = {
    ...options,
    now,
    isoNow,
    emit,
    stop,
    budget,
    ceilings,
    limiters,
    gates,
    halt: {},
  };

  // Prompts between start and finish: enough to keep every stage busy, few enough that a
  // batch of any length holds a bounded number of records in memory.
  const window = new _Window(
    2 * Object.values(ceilings).reduce((a, b) => a + b) * options.iterations,
  );
  const pull = prompts instanceof Observable ? undefined : pulled(prompts, ceilings.generate);
  let stream: Observable<State> = (pull?.source ?? prompts as Observable<PromptSpec>).pipe(
    takeUntil(fromEvent(stop, "abort")),
    mergeMap(
      (spec) => defer(async () => (await window.enter(), await startPrompt(spec, ctx))),
      ceilings.generate,
    ),
  );
  const rounds = Math.max(options.rounds ?? options.iterations, options.iterations);
  for (let i = 1; i <= rounds; i++) {
    // A prompt that asked for fewer rounds than the chain has ends here.
    if (i > 1) stream = stream.pipe(map((s) => decide(ctx, s)));
    stream = stream.pipe(stage(ctx, "generate", i, (s, signal) => generateStep(ctx, s, i, signal)));
    // A first generation's slot is free: the queue's front prompt may start.
    if (i === 1 && pull) stream = stream.pipe(tap(pull.more));
    if (i === 1 && options.critic.brief) {
      // Once per prompt, before its first critique: the checklist every round is judged by. Made
      // after the first image, so a generator that cannot work costs the critic nothing.
      stream = stream.pipe(stage(ctx, "critique", 0, (s, signal) => briefStep(ctx, s, signal)));
    }
    stream = stream.pipe(stage(ctx, "critique", i, (s, signal) => critiqueStep(ctx, s, i, signal)));
    if (i < rounds && options.mode !== "sample") {
      // No refinement after a prompt's own last round: nothing would draw from it.
      stream = stream.pipe(map((s) => decide(ctx, s)));
      stream = stream.pipe(stage(ctx, "refine", i, (s, signal) => refineStep(ctx, s, i, signal)));
    }
  }
  return stream.pipe(
    mergeMap(
      (state) => defer(() => finishPrompt(ctx, state)).pipe(finalize(() => window.leave())),
      ceilings.generate,
    ),
    finalize(() => {
      if (!limiters || options.concurrency !== "auto") return;
      const steps = Object.entries(limiters) as Array<[StepName, AdaptiveLimiter]>;
      for (const limiter of new Set(Object.values(limiters))) {
        log.info("Adaptive concurrency for {provider} ended at {limit}", {
          provider: providerName(ctx, steps.find(([, l]) => l === limiter)![0]),
          steps: steps.filter(([, l]) => l === limiter).map(([step]) => step),
          ...limiter.stats(),
        });
      }
    }),
  );
}

/**
 * A queue's prompts as a stream that emits `credits` at first and one more per `more()`: the
 * rest wait in the queue, where the steering can still reorder them.
 */
function pulled(
  queue: PromptQueue,
  credits: number,
): { source: Observable<PromptSpec>; more: () => void } {
  let subscriber: Subscriber<PromptSpec> | undefined;
  let owed = credits;
  const drain = () => {
    while (subscriber && owed > 0) {
      const spec = queue.take();
      if (spec === undefined) {
        subscriber.complete();
        subscriber = undefined;
        return;
      }
      owed--;
      subscriber.next(spec);
    }
  };
  return {
    source: new Observable<PromptSpec>((s) => {
      subscriber = s;
      drain();
      return () => subscriber = undefined;
    }),
    more: () => {
      owed++;
      drain();
    },
  };
}

/** A counting semaphore: at most `size` holders at once, the rest wait in order. */
class _Window {
  #free: number;
  #waiting: Array<() => void> = [];
  constructor(size: number) {
    this.#free = size;
  }
  enter(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
  leave(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/** The ceiling of every stage under `"auto"` concurrency, and the highest adaptive limit. */
export const AUTO_CEILING = 64;

function stageCeilings(concurrency: PipelineOptions["concurrency"]): Record<StepName, number> {
  return concurrency === "auto"
    ? { generate: AUTO_CEILING, critique: AUTO_CEILING, refine: AUTO_CEILING }
    : concurrency;
}

/** One limiter per provider name, so a service's stages and iterations share its quota. */
function providerLimiters(options: PipelineOptions): Record<StepName, AdaptiveLimiter> {
  const byProvider = options.sharedLimiters ?? new Map<string, AdaptiveLimiter>();
  const limiterFor = (provider: string, most = AUTO_CEILING) => {
    let limiter = byProvider.get(provider);
    if (!limiter) {
      limiter = new AdaptiveLimiter({
        maxLimit: most,
        ...(options.now && { now: options.now }),
        // Said once, so a user who sees the batch slow down knows why and that nothing failed.
        onPace: (ratePerSecond) =>
          log.warn(
            "{provider} refused calls as over its rate quota: pacing calls to it at {ratePerSecond}/s",
            { provider, ratePerSecond },
          ),
        ...options.adaptive,
        // A server that runs one job at a time is never sent more, whatever it takes.
        ...(most < AUTO_CEILING && { maxLimit: most }),
      });
      byProvider.set(provider, limiter);
    }
    return limiter;
  };
  return {
    generate: limiterFor(options.generator.name, options.generator.maxConcurrency),
    critique: limiterFor(options.critic.name),
    refine: limiterFor(options.refiner.name),
  };
}

/**
 * With a fixed concurrency, a generator that runs one job at a time (a GPU on the user's machine)
 * still gets one limiter for all its stages: a stage's own ceiling would let every round send one.
 */
function serverLimiters(
  options: PipelineOptions,
): Partial<Record<StepName, AdaptiveLimiter>> | undefined {
  const most = options.generator.maxConcurrency;
  if (most === undefined) return undefined;
  const byProvider = options.sharedLimiters ?? new Map<string, AdaptiveLimiter>();
  let limiter = byProvider.get(options.generator.name);
  if (!limiter) {
    limiter = new AdaptiveLimiter({
      minLimit: most,
      maxLimit: most,
      initialLimit: most,
      probe: false,
    });
    byProvider.set(options.generator.name, limiter);
  }
  return { generate: limiter };
}

/** One gate per provider name: until its first success a service gets one call at a time. */
function providerGates(options: PipelineOptions): Record<StepName, FirstSuccessGate> {
  const byProvider = new Map<string, FirstSuccessGate>();
  const gateFor = (provider: string) => {
    let gate = byProvider.get(provider);
    if (!gate) byProvider.set(provider, gate = new FirstSuccessGate());
    return gate;
  };
  return {
    generate: gateFor(options.generator.name),
    critique: gateFor(options.critic.name),
    refine: gateFor(options.refiner.name),
  };
}

type Ctx = PipelineOptions & {
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

/** A step's record, how to save it, and the time the service reports it queued. */
type StepResult = { step: StepRecord; apply: () => Promise<void>; queueMs?: number };

/**
 * One stage: a bounded `mergeMap` whose inner observable makes the call with retry and a
 * deadline, saves the result, and turns a non-fatal failure into a recorded, stopped item.
 */
function stage(
  ctx: Ctx,
  step: StepName,
  iteration: number,
  call: (state: State, signal: AbortSignal) => Promise<StepResult>,
): OperatorFunction<State, State> {
  // Paused (the studio): a step waits before anything of it starts, then is looked at anew.
  return mergeMap((state: State) =>
    skipped(state) ??
      (ctx.steering?.paused
        ? whilePaused(ctx).pipe(switchMap(() => skipped(state) ?? run(state)))
        : run(state)), ctx.ceilings[step]);

  function skipped(state: State): Observable<State> | undefined {
    if (state.stopped) return of(state);
    if (state.lastRound !== undefined && iteration > state.lastRound) return of(state);
    if (alreadyDone(state, step, iteration) && !takesNotes(ctx, state, step, iteration)) {
      return of(state);
    }
    if (ctx.stop.aborted) return of(halt(state, "interrupt"));
    if (ctx.steering?.cancelled(state.spec.id)) return of(halt(state, "cancel"));
    return undefined;
  }

  function run(state: State): Observable<State> {
    const id = state.spec.id;
    const provider = providerName(ctx, step);
    const where = { promptId: id, step, iteration, provider };
    let attempts = 0;
    // What failed attempts of this step were billed, for the step's cost on the progress line.
    const billed = { usd: 0 };
    const started = ctx.now();
    ctx.emit({ type: "step-start", id, step, iteration });
    log.info("Started {step} {iteration} of {promptId} with {provider}", where);
    // A retry is a new paid call: it waits out a pause too.
    const attempt$ = defer(() => whilePaused(ctx)).pipe(switchMap(() => {
      // An edit is reserved at its own endpoint's price, not the drawing's.
      const edit = step === "generate" && editSource(ctx, state, iteration) !== undefined;
      const admitted$ = fromAbortable((signal) => admit(ctx, step, signal, state.spec, edit)).pipe(
        // A pause that came while the call waited for its turn holds it still.
        switchMap((ticket) => heldWhilePaused(ctx, state, ticket)),
        switchMap((ticket) => {
          attempts++;
          return attemptCall(ctx, state, step, iteration, ticket, attempts, call, billed);
        }),
      );
      const limiter = ctx.limiters?.[step];
      // The queue at a local server is shown on the progress line: it is the batch's pace.
      const onQueue = step === "generate" && ctx.generator.maxConcurrency !== undefined
        ? (waiting: number) => ctx.emit({ type: "queue", id, step, waiting })
        : undefined;
      return limiter
        ? limited(
          limiter,
          admitted$,
          ctx.now,
          ctx.retry.timeScale,
          priorityOf(step, iteration),
          onQueue,
        )
        : admitted$;
    }));
    return attempt$.pipe(
      retryWithBackoff({
        ...ctx.retry,
        stop: ctx.stop,
        onRetry: (error, attempt, delayMs) => {
          ctx.emit({ type: "retry", id, step, attempt, delayMs });
          log.info("Retrying {step} {iteration} of {promptId} in {delayMs} ms", {
            ...where,
            attempt,
            delayMs,
            reason: messageOf(error),
          });
          ctx.retry.onRetry?.(error, attempt, delayMs);
        },
      }),
      switchMap((result) =>
        from((async () => {
          result.step.attempts = attempts;
          result.step.durationMs = Math.round(ctx.now() - started);
          await result.apply();
          ctx.emit({ type: "saved", id, iteration, kind: savedKind(step, iteration) });
          const { durationMs } = result.step;
          const costUsd = result.step.costUsd + billed.usd;
          ctx.emit({ type: "step-end", id, step, iteration, ok: true, durationMs, costUsd });
          log.info(
            "Finished {step} {iteration} of {promptId} in {durationMs} ms after {attempt} attempt(s)",
            { ...where, operation: step, attempt: attempts, durationMs, costUsd, outcome: "ok" },
          );
          return state;
        })())
      ),
      catchError((error: unknown) => {
        if (error instanceof StopRequested || error instanceof BudgetRefusal) {
          const cause = error instanceof BudgetRefusal
            ? "budget"
            : ctx.steering?.cancelled(id)
            ? "cancel"
            : "interrupt";
          const durationMs = Math.round(ctx.now() - started);
          ctx.emit({ type: "step-end", id, step, iteration, ok: false, durationMs, costUsd: 0 });
          log.info("Did not start {step} {iteration} of {promptId}: {reason}", {
            ...where,
            outcome: cause,
            reason: error.message,
          });
          return of(halt(state, cause));
        }
        // A fatal error (bad key, full disk) stops every call that has not started yet, now:
        // not after this prompt's failure is saved.
        if (isFatal(error)) ctx.halt.error ??= error;
        return defer(() =>
          failPrompt(ctx, state, step, iteration, error, attempts, started, billed.usd)
        ).pipe(
          mergeMap((s) => isFatal(error) ? throwError(() => error) : of(s)),
        );
      }),
    );
  }
}

/** Waits while the steering pauses the queue; a stop (Ctrl-C) ends the wait. */
function whilePaused(ctx: Ctx): Observable<void> {
  const steering = ctx.steering;
  if (!steering?.paused) return of(undefined);
  return fromAbortable((signal) => steering.resumed(signal), ctx.stop);
}

/**
 * The ticket once no pause holds the call; given back unused when a stop or a cancel came
 * meanwhile.
 */
function heldWhilePaused(ctx: Ctx, state: State, ticket: Ticket): Observable<Ticket> {
  if (!ctx.steering?.paused) return of(ticket);
  return whilePaused(ctx).pipe(map(() => {
    if (ctx.stop.aborted || ctx.steering?.cancelled(state.spec.id)) {
      ticket.settle(false, 0);
      throw new StopRequested();
    }
    return ticket;
  }));
}

/**
 * Whether a saved refinement is done again: the last round of a reopened prompt, refined before
 * the user's note came, is refined anew so the note makes the next round.
 */
function takesNotes(ctx: Ctx, state: State, step: StepName, iteration: number): boolean {
  return step === "refine" && state.lastRound === iteration + 1 &&
    (ctx.steering?.pendingNotes(state.spec.id).length ?? 0) > 0;
}

function savedKind(step: StepName, iteration: number): "image" | "critique" | "refined" | "record" {
  return iteration === 0
    ? "record"
    : step === "generate"
    ? "image"
    : step === "critique"
    ? "critique"
    : "refined";
}

/**
 * Ends a prompt's run without failing it: the next run resumes it (a cancelled one only with
 * `--force`).
 */
function halt(state: State, cause: "interrupt" | "budget" | "cancel"): State {
  state.stopped = true;
  state.interrupted = true;
  state.record.stopCause = cause;
  return state;
}

/** Permission for one paid call: settle it with what the call cost. */
interface Ticket {
  estimateUsd: number;
  settle(ok: boolean, costUsd: number): void;
}

/**
 * Waits until a paid call may start: the service's first call has succeeded (or this is the one
 * call let through), the budget holds the step's estimate, and no stop was asked for meanwhile.
 */
async function admit(
  ctx: Ctx,
  step: StepName,
  signal: AbortSignal,
  spec: PromptSpec,
  edit: boolean,
): Promise<Ticket> {
  const gate = ctx.gates[step];
  await gate.enter(signal);
  const estimateUsd = estimateFor(ctx, step, spec, edit);
  let reservation;
  try {
    reservation = await ctx.budget.reserve(estimateUsd, signal);
  } catch (error) {
    gate.failed();
    throw error;
  }
  if (ctx.stop.aborted || ctx.halt.error !== undefined) {
    reservation.settle(0);
    gate.failed();
    // Its prompt is not at fault: it stops as interrupted, resumable once the cause is fixed.
    throw new StopRequested();
  }
  return {
    estimateUsd,
    settle: (ok, costUsd) => {
      reservation.settle(costUsd);
      if (ok) gate.succeeded();
      else gate.failed();
    },
  };
}

/**
 * A step's estimated cost for `spec` (its own model and size; for an `edit`, at the edit
 * endpoint's price); 0 for a provider with no price (the local ones).
 */
function estimateFor(ctx: Ctx, step: StepName, spec: PromptSpec, edit = false): number {
  const { model, width, height } = ownOf(ctx, spec);
  const estimate = step === "generate"
    ? ctx.generator.estimateCostUsd?.({ model, width, height, ...(edit && { edit }) })
    : step === "critique"
    ? ctx.critic.estimateCostUsd?.()
    : ctx.refiner.estimateCostUsd?.();
  // An unknown price with a budget set is refused before the run starts (see runBatch).
  return estimate ?? 0;
}

/** One attempt: the call under its deadline, its cost settled and any billed failure kept. */
function attemptCall(
  ctx: Ctx,
  state: State,
  step: StepName,
  iteration: number,
  ticket: Ticket,
  attempt: number,
  call: (state: State, signal: AbortSignal) => Promise<StepResult>,
  billedSoFar: { usd: number },
): Observable<StepResult> {
  const provider = providerName(ctx, step);
  const attemptStart = ctx.now();
  const where = { promptId: state.spec.id, step, iteration, provider, operation: step, attempt };
  log.debug("Calling {provider} for {step} {iteration} of {promptId}, attempt {attempt}", where);
  let settled = false;
  const settle = (ok: boolean, costUsd: number) => {
    settled = true;
    ticket.settle(ok, costUsd);
  };
  return fromAbortable((signal) => call(state, signal)).pipe(
    // The provider owns the deadline the user set (it cancels the request at the service); this
    // one, a little later, only catches a provider that never returns.
    timeout({
      first: ctx.timeoutMs + (ctx.timeoutSlackMs ?? 0),
      ...(ctx.scheduler && { scheduler: ctx.scheduler }),
      with: () =>
        throwError(() =>
          new ProviderError(`Timed out after ${ctx.timeoutMs} ms (--timeout)`, {
            provider,
            retryable: true,
          })
        ),
    }),
    tap({ next: (result) => settle(true, result.step.costUsd) }),
    catchError((error: unknown) => {
      const billed = billedCost(error);
      settle(false, billed);
      if (billed > 0) {
        billedSoFar.usd += billed;
        (state.record.charges ??= []).push({
          step,
          iteration,
          costUsd: billed,
          reason: messageOf(error),
          ...(error instanceof ProviderError && error.requestId !== undefined &&
            { requestId: error.requestId }),
        });
      }
      log.warn(
        "Call to {provider} for {step} {iteration} of {promptId} failed on attempt {attempt} after {durationMs} ms: {reason}",
        {
          ...where,
          durationMs: Math.round(ctx.now() - attemptStart),
          outcome: "error",
          reason: messageOf(error),
          status: error instanceof ProviderError ? error.status : undefined,
          ...(billed > 0 && { costUsd: billed }),
        },
      );
      return throwError(() => error);
    }),
    // Cut off (a hard stop): the service may bill what it was sent.
    finalize(() => settled || ticket.settle(false, ticket.estimateUsd)),
  );
}

/**
 * A step's place in its prompt's chain (the brief, as iteration 0, comes right after the first
 * image): a provider's permits go to the prompt furthest along first, so prompts under way
 * finish before new ones start and a batch's first results come within a few prompts' time.
 */
function priorityOf(step: StepName, iteration: number): number {
  if (iteration === 0) return 1.5;
  return 3 * iteration + (step === "generate" ? 0 : step === "critique" ? 1 : 2) - 2;
}

/**
 * Runs `call$` once `limiter` grants a permit (waiting does not count against the call's
 * deadline), tells it how the call went, and returns the permit however the call ends.
 */
function limited(
  limiter: AdaptiveLimiter,
  call$: Observable<StepResult>,
  now: () => number,
  timeScale = 1,
  priority = 0,
  onQueue?: (waiting: number) => void,
): Observable<StepResult> {
  return fromAbortable((signal) => {
    const permit = limiter.acquire(signal, priority);
    // Told after joining the queue, and after leaving it (granted, or given up on).
    onQueue?.(limiter.stats().waiting);
    if (onQueue) {
      void permit.then(
        () => onQueue(limiter.stats().waiting),
        () => onQueue(limiter.stats().waiting),
      );
    }
    return permit;
  }).pipe(
    switchMap((release) => {
      const started = now();
      return call$.pipe(
        tap({
          next: (result) => limiter.onSuccess(now() - started, result.queueMs),
          error: (error: unknown) => {
            if (!isOverload(error)) return;
            const hint = (error as ProviderError).retryAfterMs;
            // Scaled as the retry's own wait is, so both end together.
            limiter.onOverload(hint === undefined ? undefined : hint * timeScale);
          },
        }),
        finalize(release),
      );
    }),
  );
}

/** A prompt's own settings over the batch's: model, size, rounds and target. */
function ownOf(ctx: Ctx, spec: PromptSpec) {
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

async function startPrompt(spec: PromptSpec, ctx: Ctx): Promise<State> {
  const folder = ctx.sink.folderFor(spec);
  const inputHash = ctx.hashFor(spec);
  const fresh = newRecord(
    spec,
    folder,
    {
      generator: ctx.generator.name,
      critic: ctx.critic.name,
      refiner: ctx.refiner.name,
    },
    ctx.isoNow(),
    inputHash,
  );
  const state: State = {
    spec,
    record: fresh,
    nextPrompt: spec.prompt,
    stopped: false,
    interrupted: false,
    skipped: false,
    begun: false,
    started: ctx.now(),
  };
  try {
    const previous = await ctx.sink.load(folder);
    const redo = previous !== undefined && (ctx.force || previous.inputHash !== inputHash);
    if (
      !redo && previous?.status === "completed" && !continues(ctx, spec, previous) &&
      !ctx.reopen?.(spec.id)
    ) {
      log.info("Skipped {promptId}: completed by an earlier run with the same inputs", {
        promptId: spec.id,
      });
      return { ...state, record: previous, stopped: true, skipped: true };
    }
    // Stopped (Ctrl-C, a fatal error) or out of budget: what is left is not begun at all.
    if (ctx.stop.aborted || ctx.halt.error !== undefined) return halt(state, "interrupt");
    if (ctx.budget.refused) return halt(state, "budget");
    if (ctx.steering?.cancelled(spec.id)) {
      return await cancelled(ctx, state, previous);
    }
    ctx.emit({ type: "prompt-start", id: spec.id });
    if (redo) {
      const aside = await ctx.sink.moveAside(folder);
      log.info("Moved the previous attempt of {promptId} aside to {aside}: {reason}", {
        promptId: spec.id,
        aside,
        reason: ctx.force ? "--force" : "its prompt or settings changed",
      });
    } else if (previous) {
      resume(state, previous);
      log.info("Resuming {promptId} from iteration {iteration}", {
        promptId: spec.id,
        iteration: previous.iterations.length,
      });
    }
    if (ctx.reopen?.(spec.id)) state.lastRound = state.record.iterations.length + 1;
    log.info("Started prompt {promptId}", { promptId: spec.id, folder });
    // The prompt file's own checks are its brief: saved now, no call makes one.
    const given = state.record.brief === undefined ? givenBrief(spec) : undefined;
    if (given !== undefined) state.record.brief = given;
    await ctx.sink.start(spec, state.record);
    if (given !== undefined) await ctx.sink.saveBrief(state.record, given);
    state.begun = true;
  } catch (error) {
    return await failPrompt(ctx, state, "save", 0, error, 0, ctx.now());
  }
  return state;
}

/**
 * A prompt the user cancelled: nothing of it starts. Its folder says so, also when the cancel
 * came before it started; one an earlier run left is kept as it was.
 */
async function cancelled(
  ctx: Ctx,
  state: State,
  previous: PromptRecord | undefined,
): Promise<State> {
  log.info("Skipped {promptId}: cancelled in the studio (--force runs it again)", {
    promptId: state.spec.id,
  });
  if (previous !== undefined) return halt({ ...state, record: previous }, "cancel");
  halt(state, "cancel");
  state.record.status = "interrupted";
  await ctx.sink.start(state.spec, state.record);
  return state;
}

/**
 * Whether a completed prompt has steps left to run: the rules that stopped it (its rounds, its
 * target, a plateau, a converged refiner) no longer hold under today's settings.
 */
function continues(ctx: Ctx, spec: PromptSpec, previous: PromptRecord): boolean {
  // A brief it went without is not a reason to pay for the prompt again.
  const rules = { ...rulesOf(ctx, spec), brief: false };
  return nextAction(previous, rules).kind !== "stop";
}

/** The rules that decide when the prompt stops, as `nextAction` takes them. */
function rulesOf(ctx: Ctx, spec: PromptSpec, lastRound?: number): PromptRules {
  const own = ownOf(ctx, spec);
  return {
    iterations: own.iterations,
    target: own.target,
    patience: ctx.patience ?? 2,
    brief: ctx.critic.brief !== undefined,
    refine: ctx.mode !== "sample",
    lastRound,
  };
}

/**
 * Stops the prompt when `nextAction` says its record has nothing left to do, and records why:
 * asked after every saved critique and refinement, and before every round.
 */
function decide(ctx: Ctx, state: State): State {
  if (state.stopped) return state;
  const next = nextAction(state.record, rulesOf(ctx, state.spec, state.lastRound));
  if (next.kind !== "stop") return state;
  state.stopped = true;
  if (next.reason === "iterations") return state;
  state.record.endReason = next.reason;
  log.info("Prompt {promptId} stopped at iteration {iteration}: {reason}", {
    promptId: state.spec.id,
    iteration: next.iteration,
    reason: {
      target: "it reached the target",
      plateau: `no gain in ${ctx.patience ?? 2} rounds`,
      converged: "the refined prompt is unchanged",
    }[next.reason],
    endReason: next.reason,
  });
  return state;
}

/** Continues from the last saved step of an earlier attempt with the same inputs. */
function resume(state: State, previous: PromptRecord): void {
  const {
    error: _error,
    finishedAt: _finishedAt,
    endReason: _endReason,
    stopCause: _stopCause,
    bestImage: _bestImage,
    ...rest
  } = previous;
  state.record = { ...rest, status: "running" };
  if (previous.pending !== undefined) state.recoverRequestId = previous.pending.requestId;
  const last = previous.iterations.at(-1);
  if (last?.refinedPrompt !== undefined) state.nextPrompt = last.refinedPrompt;
  else if (last) state.nextPrompt = last.prompt;
}

/** Whether an earlier run already saved this step. */
function alreadyDone(state: State, step: StepName, iteration: number): boolean {
  if (iteration === 0) return state.record.brief !== undefined;
  const it = state.record.iterations.find((r) => r.iteration === iteration);
  if (!it) return false;
  if (step === "generate") return it.image !== undefined;
  if (step === "critique") return it.critique !== undefined;
  return it.refinedPrompt !== undefined;
}

async function generateStep(
  ctx: Ctx,
  state: State,
  iteration: number,
  signal: AbortSignal,
): Promise<StepResult> {
  const startedAt = ctx.isoNow();
  const seed = ctx.seedFor(state.spec, iteration);
  const prompt = state.nextPrompt;
  const own = ownOf(ctx, state.spec);
  const { negativePrompt, steps } = state.spec.settings ?? {};
  const edit = editSource(ctx, state, iteration);
  const pending = state.record.pending;
  const earlier = state.recoverRequestId;
  // Tried once: if it cannot be recovered, this run pays for a new request instead.
  delete state.recoverRequestId;
  const recoverRequestId = earlier !== undefined && pending?.iteration === iteration &&
      pending.model === own.model
    ? earlier
    : undefined;
  if (earlier !== undefined && recoverRequestId === undefined) chargePending(state, EARLIER_RUN);
  let pendingSave: Promise<void> = Promise.resolve();
  let accepted: string | undefined;
  let submitting: string | undefined;
  const pendingOf = (requestId: string) => ({
    iteration,
    model: own.model,
    requestId,
    acceptedAt: ctx.isoNow(),
    // Billed from here on even if this process dies before the result: the estimate counts.
    costUsd: estimateFor(ctx, "generate", state.spec, edit !== undefined),
  });
  const image = await ctx.generator.generate({
    prompt,
    spec: state.spec,
    iteration,
    width: own.width,
    height: own.height,
    seed,
    model: own.model,
    format: ctx.format,
    ...(negativePrompt !== undefined && { negativePrompt }),
    ...(steps !== undefined && { steps }),
    signal,
    ...(edit !== undefined && { edit: edit.source }),
    ...(recoverRequestId !== undefined && { recoverRequestId }),
    // A request the client names itself is on disk before it is sent (see `onSubmitting`).
    onSubmitting: async (requestId) => {
      submitting = requestId;
      state.record.pending = pendingOf(requestId);
      await saveRecord(ctx, state);
    },
    onAccepted: (requestId) => {
      accepted = requestId;
      // The service took the request, key and model included: others may go side by side.
      ctx.gates.generate.succeeded();
      state.record.pending = pendingOf(requestId);
      pendingSave = saveRecord(ctx, state).catch((error) =>
        log.warn("Could not record the accepted request {requestId} of {promptId}: {reason}", {
          promptId: state.spec.id,
          requestId,
          reason: messageOf(error),
        })
      );
    },
  }).catch((error: unknown) => {
    if (recoverRequestId !== undefined) {
      // What fal billed for it, the error says when it knows; else its estimate counts.
      if (billedCost(error) > 0) delete state.record.pending;
      else chargePending(state, EARLIER_RUN);
    } else if (accepted !== undefined && state.record.pending?.requestId === accepted) {
      // Cut off (a hard stop): fal may bill what it had started. Otherwise the request failed
      // on its own terms, and what it billed, the error carries.
      if (signal.aborted) chargePending(state, "cancelled by a hard stop after fal accepted it");
      else delete state.record.pending;
    } else if (submitting !== undefined && state.record.pending?.requestId === submitting) {
      // Recorded, then refused or never answered: a hard stop keeps it, as the service may have it.
      if (!signal.aborted) delete state.record.pending;
    }
    throw error;
  });
  // Saving is part of the attempt: a download that breaks mid-stream is retried like the call.
  const saved = await ctx.sink.saveImage(state.record, iteration, image).catch((error) => {
    if (state.record.pending?.requestId === image.requestId) delete state.record.pending;
    // The service billed the image even though it could not be saved.
    throw withBilledCost(error, image.costUsd);
  });
  const step: StepRecord = {
    provider: ctx.generator.name,
    model: image.model,
    durationMs: 0,
    attempts: 0,
    costUsd: image.costUsd,
    ...(image.costUnknown && { costUnknown: true }),
    startedAt,
    ...(image.requestId !== undefined && { requestId: image.requestId }),
    ...(image.modelVersion !== undefined && { modelVersion: image.modelVersion }),
    ...(image.batch && { batch: true }),
  };
  return {
    step,
    ...(image.queueMs !== undefined && { queueMs: image.queueMs }),
    apply: async () => {
      const it: IterationRecord = {
        iteration,
        prompt,
        ...(image.seed !== undefined && { seed: image.seed }),
        model: image.model,
        image: saved.file,
        width: saved.width,
        height: saved.height,
        ...(image.queueMs !== undefined && { queueMs: image.queueMs }),
        ...(image.inferenceMs !== undefined && { inferenceMs: image.inferenceMs }),
        ...(image.nsfw !== undefined && { nsfw: image.nsfw }),
        ...(image.url !== undefined && { imageUrl: image.url }),
        ...actionOf(state, iteration, edit),
        steps: { generate: step },
      };
      state.record.iterations.push(it);
      delete state.record.pending;
      await pendingSave;
      await saveRecord(ctx, state);
    },
  };
}

const EARLIER_RUN = "accepted before an earlier run stopped; its result could not be fetched";

/** What the round before `iteration` decided: the image this one edits, if it is an edit. */
function editSource(
  ctx: Ctx,
  state: State,
  iteration: number,
): { source: EditSource; of: number } | undefined {
  const next = state.record.iterations.find((r) => r.iteration === iteration - 1)?.next;
  if (next?.action !== "edit" || next.instruction === undefined) return undefined;
  // The best image so far, not just the last: an edit builds on what works best.
  const best = bestIteration(state.record);
  if (best?.image === undefined) return undefined;
  return {
    of: best.iteration,
    source: {
      imagePath: ctx.sink.imagePath(state.record, best.image),
      instruction: next.instruction,
      ...(best.imageUrl !== undefined && { imageUrl: best.imageUrl }),
    },
  };
}

/** The fields that say how a round was made. */
function actionOf(
  state: State,
  iteration: number,
  edit: { source: EditSource; of: number } | undefined,
): Partial<IterationRecord> {
  if (iteration === 1) return {};
  const next = state.record.iterations.find((r) => r.iteration === iteration - 1)?.next;
  const note = next?.note !== undefined && { note: next.note };
  if (edit !== undefined) {
    return {
      action: "edit",
      editOf: edit.of,
      instruction: edit.source.instruction,
      ...(next && { actionReason: next.reason }),
      ...note,
    };
  }
  return { action: "redraw", ...(next && { actionReason: next.reason }), ...note };
}

/**
 * An accepted request whose result will never be saved: fal took it, so it counts as spent (at
 * its estimate) though no image came of it.
 */
function chargePending(state: State, reason: string): void {
  const pending = state.record.pending;
  if (pending === undefined) return;
  delete state.record.pending;
  if (!(pending.costUsd && pending.costUsd > 0)) return;
  (state.record.charges ??= []).push({
    step: "generate",
    iteration: pending.iteration,
    costUsd: pending.costUsd,
    requestId: pending.requestId,
    reason,
  });
}

async function briefStep(ctx: Ctx, state: State, signal: AbortSignal): Promise<StepResult> {
  const startedAt = ctx.isoNow();
  const result = await ctx.critic.brief!({ spec: state.spec, signal });
  const brief = briefSchema.parse(result.brief);
  const step = stepRecord(ctx.critic.name, result, startedAt);
  return {
    step,
    apply: async () => {
      await ctx.sink.saveBrief(state.record, brief);
      state.record.brief = brief;
      state.record.briefStep = step;
      await saveRecord(ctx, state);
    },
  };
}

async function critiqueStep(
  ctx: Ctx,
  state: State,
  iteration: number,
  signal: AbortSignal,
): Promise<StepResult> {
  const startedAt = ctx.isoNow();
  const it = currentIteration(state, iteration);
  const result = await ctx.critic.critique({
    imagePath: ctx.sink.imagePath(state.record, it.image!),
    format: ctx.format,
    prompt: it.prompt,
    spec: state.spec,
    // A brief the service wrote no usable check for judges nothing: the critique goes without.
    ...(state.record.brief?.checks.length && { brief: state.record.brief }),
    iteration,
    signal,
  });
  const step = stepRecord(ctx.critic.name, result, startedAt);
  return {
    step,
    apply: async () => {
      await ctx.sink.saveCritique(state.record, iteration, result.critique);
      it.critique = result.critique;
      it.steps.critique = step;
      decide(ctx, state);
      await saveRecord(ctx, state);
    },
  };
}

async function refineStep(
  ctx: Ctx,
  state: State,
  iteration: number,
  signal: AbortSignal,
): Promise<StepResult> {
  const startedAt = ctx.isoNow();
  const it = currentIteration(state, iteration);
  const history = state.record.iterations
    .filter((r) => r.critique)
    .map((r) => ({ iteration: r.iteration, prompt: r.prompt, critique: r.critique! }));
  const kinds = new Map((state.record.brief?.checks ?? []).map((c) => [c.id, c.kind]));
  const canEdit = ctx.generator.editModel?.(ownOf(ctx, state.spec).model) !== undefined;
  const next = chooseNextRound(
    ctx.refineMode ?? "auto",
    canEdit,
    state.record.iterations.filter((r) => r.iteration <= iteration),
    kinds,
  );
  // The user's notes (rejects in the studio) come first: they say what the critic missed.
  const notes = ctx.steering?.pendingNotes(state.spec.id) ?? [];
  const noteTexts = notes.map((e) => e.action.type === "reject" ? e.action.note : "");
  const result = await ctx.refiner.refine({
    ...(notes.length > 0 && { notes: noteTexts }),
    prompt: it.prompt,
    spec: state.spec,
    critique: it.critique!,
    history,
    iteration,
    signal,
    mode: next.action === "edit" ? "edit" : "regenerate",
  });
  const step = stepRecord(ctx.refiner.name, result, startedAt);
  const instruction = result.instruction?.trim();
  // An edit without an instruction would only change the seed's noise: draw anew instead.
  const decided: NextRound = next.action === "edit" && !instruction
    ? { action: "redraw", reason: "the refiner wrote no edit instruction" }
    : { ...next, ...(next.action === "edit" && { instruction: instruction! }) };
  return {
    step,
    apply: async () => {
      await ctx.sink.saveRefinedPrompt(state.record, iteration, result.prompt);
      it.refinedPrompt = result.prompt;
      it.refineChanges = result.changes;
      it.next = notes.length > 0 ? { ...decided, note: noteTexts.join("\n") } : decided;
      it.steps.refine = step;
      state.nextPrompt = result.prompt;
      // The same prompt (and seed) drawn anew would only buy the same image again.
      decide(ctx, state);
      await saveRecord(ctx, state);
      // Only once the refinement that took them is saved: a crash before leaves them pending.
      if (notes.length > 0) await markNotesDone(ctx, state, notes.map((e) => e.seq));
    },
  };
}

async function markNotesDone(ctx: Ctx, state: State, seqs: number[]): Promise<void> {
  try {
    await ctx.steering!.markDone(seqs);
  } catch (error) {
    // The round has the note; at worst a later run gives the prompt one round more.
    log.warn("Could not mark the notes of {promptId} done in feedback.jsonl: {reason}", {
      promptId: state.spec.id,
      reason: messageOf(error),
    });
  }
}

async function finishPrompt(ctx: Ctx, state: State): Promise<PromptOutcome> {
  const { record } = state;
  if (record.status === "running" && !state.interrupted) {
    record.status = "completed";
    record.endReason ??= "iterations";
    delete record.stopCause;
    record.finishedAt = ctx.isoNow();
    try {
      const best = bestIteration(record);
      if (best?.image) record.bestImage = await ctx.sink.saveBest(record, best.image);
      await saveRecord(ctx, state);
    } catch (error) {
      await failPrompt(ctx, state, "save", record.iterations.length, error, 0, ctx.now());
    }
  }
  if (state.interrupted && record.status === "running") record.status = "interrupted";
  const status = record.status === "running" ? "failed" : record.status;
  if (status === "interrupted" && state.begun) {
    await saveRecord(ctx, state).catch((error) =>
      log.error("Could not save metadata for {promptId}: {reason}", {
        promptId: record.id,
        reason: messageOf(error),
      })
    );
  }
  ctx.emit({
    type: "prompt-end",
    id: record.id,
    status,
    costUsd: record.costUsd,
    skipped: state.skipped,
  });
  log.info("Finished prompt {promptId}: {status}, best score {bestScore}, ${costUsd}", {
    promptId: record.id,
    status: record.status,
    bestScore: record.bestScore,
    costUsd: record.costUsd,
    durationMs: record.durationMs,
  });
  return {
    id: record.id,
    folder: record.folder,
    status,
    skipped: state.skipped,
    model: ctx.model,
    durationMs: record.durationMs,
    ...(status === "interrupted" && record.stopCause !== undefined &&
      { stopCause: record.stopCause }),
    ...(record.error !== undefined && { error: record.error }),
    ...(record.bestScore !== undefined && { bestScore: record.bestScore }),
    ...(record.bestIteration !== undefined && { bestIteration: record.bestIteration }),
    costUsd: record.costUsd,
    iterations: record.iterations.length,
  };
}

async function failPrompt(
  ctx: Ctx,
  state: State,
  step: StepName | "save",
  iteration: number,
  error: unknown,
  attempts: number,
  started: number,
  billedUsd = 0,
): Promise<State> {
  const message = messageOf(error);
  state.stopped = true;
  state.record.status = "failed";
  state.record.finishedAt = ctx.isoNow();
  state.record.error = {
    step,
    iteration,
    message,
    ...(error instanceof ProviderError && { provider: error.provider }),
    ...(error instanceof ProviderError && error.status !== undefined &&
      { status: error.status }),
    ...(error instanceof ProviderError && error.requestId !== undefined &&
      { requestId: error.requestId }),
  };
  if (step !== "save") {
    ctx.emit({
      type: "step-end",
      id: state.spec.id,
      step,
      iteration,
      ok: false,
      durationMs: Math.round(ctx.now() - started),
      costUsd: billedUsd,
    });
  }
  log.error("Failed {step} {iteration} of {promptId} after {attempt} attempt(s): {reason}", {
    promptId: state.spec.id,
    step,
    iteration,
    attempt: attempts,
    outcome: "failed",
    reason: message,
    durationMs: Math.round(ctx.now() - started),
  });
  try {
    await saveRecord(ctx, state);
  } catch (saveError) {
    // The failure itself is already in the log and in the run summary; a second write error
    // (disk full, say) must not hide the first.
    log.error("Could not save metadata for {promptId}: {reason}", {
      promptId: state.spec.id,
      reason: messageOf(saveError),
    });
  }
  return state;
}

function saveRecord(ctx: Ctx, state: State): Promise<void> {
  const { record } = state;
  record.costUsd = totalCost(record);
  record.durationMs = Math.round(ctx.now() - state.started);
  const best = bestIteration(record);
  if (best) {
    record.bestIteration = best.iteration;
    record.bestScore = best.critique!.score;
  }
  return ctx.sink.saveRecord(record);
}

/** A step's record before the stage fills in attempts and duration. */
function stepRecord(
  provider: string,
  result: {
    model: string;
    modelVersion?: string;
    costUsd: number;
    requestId?: string;
    usage?: TokenUsage;
    normalised?: string[];
    batch?: true;
  },
  startedAt: string,
): StepRecord {
  return {
    provider,
    model: result.model,
    ...(result.modelVersion !== undefined && { modelVersion: result.modelVersion }),
    durationMs: 0,
    attempts: 0,
    costUsd: result.costUsd,
    startedAt,
    ...(result.requestId !== undefined && { requestId: result.requestId }),
    ...(result.usage !== undefined && { usage: result.usage }),
    ...(result.normalised !== undefined && { normalised: result.normalised }),
    ...(result.batch && { batch: true }),
  };
}

function currentIteration(state: State, iteration: number): IterationRecord {
  const it = state.record.iterations.find((r) => r.iteration === iteration);
  if (!it) throw new Error(`Cannot find iteration ${iteration} of '${state.spec.id}'`);
  return it;
}

function providerName(ctx: Ctx, step: StepName): string {
  return step === "generate"
    ? ctx.generator.name
    : step === "critique"
    ? ctx.critic.name
    : ctx.refiner.name;
}
