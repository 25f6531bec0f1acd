/**
 * One stage of the pipeline: a bounded `mergeMap` that admits, limits, retries, times out and
 * saves each prompt's call.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  catchError,
  defer,
  finalize,
  from,
  map,
  mergeMap,
  type Observable,
  of,
  type OperatorFunction,
  switchMap,
  tap,
  throwError,
  timeout,
} from "rxjs";
import { fromAbortable } from "../async/abortable.ts";
import type { AdaptiveLimiter } from "../async/adaptive.ts";
import { BudgetRefusal } from "../async/budget.ts";
import {
  billedCost,
  isFatal,
  isOverload,
  messageOf,
  ProviderError,
  StopRequested,
} from "../errors.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { StepName } from "../output/record.ts";
import { retryWithBackoff } from "../async/retry.ts";
import {
  type Ctx,
  estimateFor,
  providerName,
  record,
  type State,
  type StepResult,
} from "./context.ts";
import { failPrompt, halt } from "./lifecycle.ts";
import { saveStep } from "./save_step.ts";
import { editSource } from "./steps.ts";

const log = getLogger(["retake", "pipeline"]);

/**
 * One stage: a bounded `mergeMap` whose inner observable makes the call with retry and a
 * deadline, saves the result, and turns a non-fatal failure into a recorded, stopped item.
 */
export function stage(
  ctx: Ctx,
  step: StepName,
  iteration: number,
  call: (state: State, signal: AbortSignal) => Promise<StepResult>,
): OperatorFunction<State, State> {
  const skipped = (state: State) => skippedStep(ctx, state, step, iteration);
  const run = (state: State) => runStep(ctx, state, step, iteration, call);
  // Paused (the studio): a step waits before anything of it starts, then is looked at anew.
  return mergeMap((state: State) =>
    skipped(state) ??
      (ctx.steering?.paused
        ? whilePaused(ctx).pipe(switchMap(() => skipped(state) ?? run(state)))
        : run(state)), ctx.ceilings[step]);
}

/** The item as it is, when its step is not to run: stopped, beyond its rounds, done, halted. */
function skippedStep(
  ctx: Ctx,
  state: State,
  step: StepName,
  iteration: number,
): Observable<State> | undefined {
  if (state.stopped) return of(state);
  if (state.lastRound !== undefined && iteration > state.lastRound) return of(state);
  if (alreadyDone(state, step, iteration) && !takesNotes(ctx, state, step, iteration)) {
    return of(state);
  }
  if (ctx.stop.aborted) return of(halt(state, "interrupt"));
  if (ctx.steering?.cancelled(state.spec.id)) return of(halt(state, "cancel"));
  return undefined;
}

/** One step of one prompt as the stage runs it: what it is, and its attempts so far. */
interface StepRun {
  ctx: Ctx;
  state: State;
  step: StepName;
  iteration: number;
  call: (state: State, signal: AbortSignal) => Promise<StepResult>;
  where: { promptId: string; step: StepName; iteration: number; provider: string };
  attempts: number;
  /** What failed attempts of this step were billed, for the step's cost on the progress line. */
  billed: { usd: number };
  started: number;
}

/** The step's call with retry, its result saved, and a failure turned into a stopped item. */
function runStep(
  ctx: Ctx,
  state: State,
  step: StepName,
  iteration: number,
  call: (state: State, signal: AbortSignal) => Promise<StepResult>,
): Observable<State> {
  const id = state.spec.id;
  const provider = providerName(ctx, step);
  const where = { promptId: id, step, iteration, provider };
  const started = ctx.now();
  const run: StepRun = {
    ctx,
    state,
    step,
    iteration,
    call,
    where,
    attempts: 0,
    billed: { usd: 0 },
    started,
  };
  ctx.emit({ type: "step-start", id, step, iteration });
  log.info("Started {step} {iteration} of {promptId} with {provider}", where);
  return attempts$(run).pipe(
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
    switchMap((result) => from(stepDone(run, result))),
    catchError((error: unknown) => stepFailed(run, error)),
  );
}

/** Each attempt: admitted, held while paused, under its provider's limiter, then called. */
function attempts$(run: StepRun): Observable<StepResult> {
  const { ctx, state, step, iteration } = run;
  // A retry is a new paid call: it waits out a pause too.
  return defer(() => whilePaused(ctx)).pipe(switchMap(() => {
    // An edit is reserved at its own endpoint's price, not the drawing's.
    const edit = step === "generate" && editSource(ctx, state, iteration) !== undefined;
    const admitted$ = fromAbortable((signal) => admit(ctx, step, signal, state.spec, edit)).pipe(
      // A pause that came while the call waited for its turn holds it still.
      switchMap((ticket) => heldWhilePaused(ctx, state, ticket)),
      switchMap((ticket) => {
        run.attempts++;
        return attemptCall(ctx, state, step, iteration, ticket, run.attempts, run.call, run.billed);
      }),
    );
    const limiter = ctx.limiters?.[step];
    // The queue at a local server is shown on the progress line: it is the batch's pace.
    const onQueue = step === "generate" && ctx.generator.maxConcurrency !== undefined
      ? (waiting: number) => ctx.emit({ type: "queue", id: state.spec.id, step, waiting })
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
}

/** Saves the step's outcome and reports the step's end. */
async function stepDone(run: StepRun, result: StepResult): Promise<State> {
  const { ctx, state, step, iteration, where, attempts } = run;
  const id = state.spec.id;
  const durationMs = Math.round(ctx.now() - run.started);
  await saveStep(ctx, state, result.outcome, { ...result.step, attempts, durationMs });
  ctx.emit({ type: "saved", id, iteration, kind: savedKind(step, iteration) });
  const costUsd = result.step.costUsd + run.billed.usd;
  ctx.emit({ type: "step-end", id, step, iteration, ok: true, durationMs, costUsd });
  log.info(
    "Finished {step} {iteration} of {promptId} in {durationMs} ms after {attempt} attempt(s)",
    { ...where, operation: step, attempt: attempts, durationMs, costUsd, outcome: "ok" },
  );
  return state;
}

/**
 * A step that did not start (a stop, the budget, a cancel) halts its prompt, resumable; any
 * other failure fails it, and a fatal one ends the run.
 */
function stepFailed(run: StepRun, error: unknown): Observable<State> {
  const { ctx, state, step, iteration, where } = run;
  const id = state.spec.id;
  if (error instanceof StopRequested || error instanceof BudgetRefusal) {
    const cause = error instanceof BudgetRefusal
      ? "budget"
      : ctx.steering?.cancelled(id)
      ? "cancel"
      : "interrupt";
    const durationMs = Math.round(ctx.now() - run.started);
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
    failPrompt(ctx, state, step, iteration, error, run.attempts, run.started, run.billed.usd)
  ).pipe(
    mergeMap((s) => isFatal(error) ? throwError(() => error) : of(s)),
  );
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
        chargeFailedAttempt(state, step, iteration, error, billed);
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

/** What a failed attempt was billed, kept on the record: spent, though nothing was saved. */
function chargeFailedAttempt(
  state: State,
  step: StepName,
  iteration: number,
  error: unknown,
  costUsd: number,
): void {
  record(state, {
    type: "attempt-charged",
    charge: {
      step,
      iteration,
      costUsd,
      reason: messageOf(error),
      ...(error instanceof ProviderError && error.requestId !== undefined &&
        { requestId: error.requestId }),
    },
  });
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
          next: ({ queueMs, serviceMs }) =>
            limiter.onSuccess(now() - started, { queueMs, serviceMs }),
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

/** Whether an earlier run already saved this step. */
function alreadyDone(state: State, step: StepName, iteration: number): boolean {
  if (iteration === 0) return state.record.brief !== undefined;
  const it = state.record.iterations.find((r) => r.iteration === iteration);
  if (!it) return false;
  if (step === "generate") return it.image !== undefined;
  if (step === "critique") return it.critique !== undefined;
  return it.refinedPrompt !== undefined;
}
