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
  defer,
  finalize,
  fromEvent,
  map,
  mergeMap,
  Observable,
  type Subscriber,
  takeUntil,
  tap,
} from "rxjs";
import type { AdaptiveLimiter } from "../async/adaptive.ts";
import { Budget } from "../async/budget.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { PromptOutcome, StepName } from "../output/record.ts";
import type { PromptQueue } from "../steering/queue.ts";
import { type Ctx, providerName, type State } from "./context.ts";
import { decide, finishPrompt, startPrompt } from "./lifecycle.ts";
import { providerGates, providerLimiters, serverLimiters, stageCeilings } from "./limits.ts";
import type { PipelineOptions } from "./options.ts";
import { stage } from "./stage.ts";
import { briefStep, critiqueStep, generateStep, refineStep } from "./steps.ts";

export type { PipelineEvent, PipelineOptions } from "./options.ts";
export { AUTO_CEILING } from "./limits.ts";

const log = getLogger(["retake", "pipeline"]);

/**
 * Runs every prompt through the loop; emits one outcome per prompt as it finishes. From a
 * {@linkcode PromptQueue}, a prompt is taken only when a first generation can start, so the
 * queue's order (which the steering changes) is the order prompts start in.
 */
export function runPipeline(
  prompts: Observable<PromptSpec> | PromptQueue,
  options: PipelineOptions,
): Observable<PromptOutcome> {
  const ctx = contextOf(options);
  const { ceilings, stop } = ctx;
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
    finalize(() => logAdaptiveEnd(ctx)),
  );
}

/** The run's context: the options with their defaults, the stages' limits and gates. */
function contextOf(options: PipelineOptions): Ctx {
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
  return {
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
}

/** Where `"auto"` concurrency ended for each provider, said once the run is over. */
function logAdaptiveEnd(ctx: Ctx): void {
  const limiters = ctx.limiters;
  if (!limiters || ctx.concurrency !== "auto") return;
  const steps = Object.entries(limiters) as Array<[StepName, AdaptiveLimiter]>;
  for (const limiter of new Set(Object.values(limiters))) {
    log.info("Adaptive concurrency for {provider} ended at {limit}", {
      provider: providerName(ctx, steps.find(([, l]) => l === limiter)![0]),
      steps: steps.filter(([, l]) => l === limiter).map(([step]) => step),
      ...limiter.stats(),
    });
  }
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
