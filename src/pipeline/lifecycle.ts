/**
 * A prompt's start, its stop, its failure and its end: the functions that begin, decide, halt,
 * fail and finish a prompt's record.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { nextAction, type PromptRules } from "./next_action.ts";
import { messageOf, ProviderError } from "../errors.ts";
import { givenBrief, type PromptSpec } from "../prompts/mod.ts";
import {
  bestIteration,
  newRecord,
  type PromptOutcome,
  type PromptRecord,
  type StepName,
} from "../output/record.ts";
import { type Ctx, ownOf, record, type State } from "./context.ts";
import { transition } from "./state.ts";

const log = getLogger(["retake", "pipeline"]);

/**
 * Ends a prompt's run without failing it: the next run resumes it (a cancelled one only with
 * `--force`).
 */
export function halt(state: State, cause: "interrupt" | "budget" | "cancel"): State {
  state.stopped = true;
  state.interrupted = true;
  record(state, { type: "stopped", cause });
  return state;
}

export async function startPrompt(spec: PromptSpec, ctx: Ctx): Promise<State> {
  const folder = ctx.sink.folderFor(spec);
  const inputHash = ctx.hashFor(spec);
  const state = newState(ctx, spec, folder, inputHash);
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
    if (given !== undefined) record(state, { type: "brief-given", brief: given });
    await ctx.sink.start(spec, state.record);
    if (given !== undefined) await ctx.sink.saveBrief(state.record, given);
    state.begun = true;
  } catch (error) {
    return await failPrompt(ctx, state, "save", 0, error, 0, ctx.now());
  }
  return state;
}

/** A prompt's state before anything of it is known: a fresh record, its own prompt next. */
function newState(ctx: Ctx, spec: PromptSpec, folder: string, inputHash: string): State {
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
  return {
    spec,
    record: fresh,
    nextPrompt: spec.prompt,
    stopped: false,
    interrupted: false,
    skipped: false,
    begun: false,
    started: ctx.now(),
  };
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
  record(state, { type: "interrupted" });
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
export function decide(ctx: Ctx, state: State): State {
  if (state.stopped) return state;
  const next = nextAction(state.record, rulesOf(ctx, state.spec, state.lastRound));
  if (next.kind !== "stop") return state;
  state.stopped = true;
  if (next.reason === "iterations") return state;
  record(state, { type: "ended", reason: next.reason });
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
  state.record = transition(previous, { type: "resumed" });
  if (previous.pending !== undefined) state.recoverRequestId = previous.pending.requestId;
  const last = previous.iterations.at(-1);
  if (last?.refinedPrompt !== undefined) state.nextPrompt = last.refinedPrompt;
  else if (last) state.nextPrompt = last.prompt;
}

export async function finishPrompt(ctx: Ctx, state: State): Promise<PromptOutcome> {
  if (state.record.status === "running" && !state.interrupted) {
    try {
      const best = bestIteration(state.record);
      const bestImage = best?.image && await ctx.sink.saveBest(state.record, best.image);
      record(state, { type: "completed", at: ctx.isoNow(), ...(bestImage && { bestImage }) });
      await saveRecord(ctx, state);
    } catch (error) {
      const rounds = state.record.iterations.length;
      await failPrompt(ctx, state, "save", rounds, error, 0, ctx.now());
    }
  }
  if (state.interrupted) record(state, { type: "interrupted" });
  return outcomeOf(ctx, state);
}

/** The prompt's end as the batch reports it, from its final record. */
async function outcomeOf(ctx: Ctx, state: State): Promise<PromptOutcome> {
  const { record } = state;
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

export async function failPrompt(
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
  record(state, {
    type: "failed",
    at: ctx.isoNow(),
    error: {
      step,
      iteration,
      message,
      ...(error instanceof ProviderError && { provider: error.provider }),
      ...(error instanceof ProviderError && error.status !== undefined &&
        { status: error.status }),
      ...(error instanceof ProviderError && error.requestId !== undefined &&
        { requestId: error.requestId }),
    },
  });
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

/** Writes the prompt's `metadata.json`, its totals brought up to date. */
export function saveRecord(ctx: Ctx, state: State): Promise<void> {
  record(state, { type: "totals", durationMs: Math.round(ctx.now() - state.started) });
  return ctx.sink.saveRecord(state.record);
}
