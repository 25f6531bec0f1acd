/**
 * A prompt's record, changed only here: `transition(record, event)` returns the record after one
 * thing happened to the prompt (a request recorded, an image, a brief, a critique or a refinement
 * saved, a charge, a stop, a failure, its end). Steps make calls and return values; the stage
 * turns them into events; `nextAction` (next_action.ts) reads the record to decide what comes
 * next. Every function here is pure: the record passed in is never changed.
 *
 * @module
 */
import type { Brief } from "../providers/critique.ts";
import type {
  ChargeRecord,
  FailureRecord,
  IterationRecord,
  NextRound,
  PromptRecord,
  StepRecord,
} from "../output/record.ts";
import { bestIteration, totalCost } from "../output/record.ts";
import type { EndReason } from "./next_action.ts";

/** A generation's request on record while its call runs (`pending` in `metadata.json`). */
export type PendingRequest = NonNullable<PromptRecord["pending"]>;

/** Why a prompt stopped without failing: `stopCause` in `metadata.json`. */
export type StopCause = NonNullable<PromptRecord["stopCause"]>;

/** One thing that happened to a prompt. */
export type PromptEvent =
  /** An earlier run's record, taken up again: what ended it is cleared. */
  | { type: "resumed" }
  /** The prompt file's own checks, its brief without a call. */
  | { type: "brief-given"; brief: Brief }
  /** A generation's request is named or accepted: billed from now on at its estimate. */
  | { type: "request-recorded"; pending: PendingRequest }
  /** The recorded request `requestId` (any, if not given) came to nothing that is billed. */
  | { type: "request-dropped"; requestId?: string }
  /** The recorded request will never be saved: it counts as spent, at its estimate. */
  | { type: "request-charged"; reason: string }
  /** A failed attempt the service billed. */
  | { type: "attempt-charged"; charge: ChargeRecord }
  /** A round's image is saved: the round begins. */
  | { type: "image-saved"; round: IterationRecord }
  | { type: "brief-saved"; brief: Brief; step: StepRecord }
  | {
    type: "critique-saved";
    iteration: number;
    critique: NonNullable<IterationRecord["critique"]>;
    step: StepRecord;
  }
  | {
    type: "refined";
    iteration: number;
    prompt: string;
    changes: NonNullable<IterationRecord["refineChanges"]>;
    next: NextRound;
    step: StepRecord;
  }
  /** `nextAction` stopped the prompt for a reason of its own (not its rounds running out). */
  | { type: "ended"; reason: EndReason }
  /** Stopped from outside: Ctrl-C, the budget, or a cancel in the studio. */
  | { type: "stopped"; cause: StopCause }
  | { type: "failed"; error: FailureRecord; at: string }
  /** Every round it will make is saved; `bestImage` is the copy of the best one. */
  | { type: "completed"; at: string; bestImage?: string }
  /** A stopped prompt's record is saved as such. */
  | { type: "interrupted" }
  /** The totals kept on the record: its cost, its time so far (if given), its best round. */
  | { type: "totals"; durationMs?: number };

/**
 * The record after `event`. The record given is not changed.
 *
 * @example
 * ```ts
 * import { transition } from "./state.ts";
 * import { newRecord } from "../output/record.ts";
 * const spec = { id: "p1", prompt: "a red kite", extra: {} };
 * const before = newRecord(spec, "p1", { generator: "g", critic: "c", refiner: "r" }, "t0", "h");
 * const after = transition(before, { type: "stopped", cause: "interrupt" });
 * if (after.stopCause !== "interrupt" || before.stopCause !== undefined) throw new Error();
 * ```
 */
export function transition(record: PromptRecord, event: PromptEvent): PromptRecord {
  switch (event.type) {
    case "resumed": {
      const {
        error: _error,
        finishedAt: _finishedAt,
        endReason: _endReason,
        stopCause: _stopCause,
        bestImage: _bestImage,
        ...rest
      } = record;
      return { ...rest, status: "running" };
    }
    case "brief-given":
      return { ...record, brief: event.brief };
    case "request-recorded":
      return { ...record, pending: event.pending };
    case "request-dropped":
      return event.requestId === undefined || record.pending?.requestId === event.requestId
        ? withoutPending(record)
        : record;
    case "request-charged":
      return chargePending(record, event.reason);
    case "attempt-charged":
      return { ...record, charges: [...record.charges ?? [], event.charge] };
    case "image-saved":
      return withoutPending({ ...record, iterations: [...record.iterations, event.round] });
    case "brief-saved":
      return { ...record, brief: event.brief, briefStep: event.step };
    case "critique-saved":
      return withRound(record, event.iteration, (it) => ({
        ...it,
        critique: event.critique,
        steps: { ...it.steps, critique: event.step },
      }));
    case "refined":
      return withRound(record, event.iteration, (it) => ({
        ...it,
        refinedPrompt: event.prompt,
        refineChanges: event.changes,
        next: event.next,
        steps: { ...it.steps, refine: event.step },
      }));
    case "ended":
      return { ...record, endReason: event.reason };
    case "stopped":
      return { ...record, stopCause: event.cause };
    case "failed":
      return { ...record, status: "failed", finishedAt: event.at, error: event.error };
    case "completed": {
      const { stopCause: _stopCause, ...rest } = record;
      return {
        ...rest,
        status: "completed",
        endReason: record.endReason ?? "iterations",
        finishedAt: event.at,
        ...(event.bestImage !== undefined && { bestImage: event.bestImage }),
      };
    }
    case "interrupted":
      return record.status === "running" ? { ...record, status: "interrupted" } : record;
    case "totals":
      return withTotals(record, event.durationMs);
  }
}

function withoutPending(record: PromptRecord): PromptRecord {
  if (record.pending === undefined) return record;
  const { pending: _pending, ...rest } = record;
  return rest;
}

/**
 * An accepted request whose result will never be saved: the service took it, so it counts as
 * spent (at its estimate) though no image came of it.
 */
function chargePending(record: PromptRecord, reason: string): PromptRecord {
  const pending = record.pending;
  if (pending === undefined) return record;
  const rest = withoutPending(record);
  if (!(pending.costUsd && pending.costUsd > 0)) return rest;
  const charge: ChargeRecord = {
    step: "generate",
    iteration: pending.iteration,
    costUsd: pending.costUsd,
    requestId: pending.requestId,
    reason,
  };
  return { ...rest, charges: [...rest.charges ?? [], charge] };
}

function withRound(
  record: PromptRecord,
  iteration: number,
  change: (round: IterationRecord) => IterationRecord,
): PromptRecord {
  const at = record.iterations.findIndex((it) => it.iteration === iteration);
  if (at < 0) throw new Error(`Cannot find iteration ${iteration} of '${record.id}'`);
  const iterations = record.iterations.slice();
  iterations[at] = change(iterations[at]!);
  return { ...record, iterations };
}

function withTotals(record: PromptRecord, durationMs: number | undefined): PromptRecord {
  const best = bestIteration(record);
  return {
    ...record,
    costUsd: totalCost(record),
    ...(durationMs !== undefined && { durationMs }),
    ...(best !== undefined && { bestIteration: best.iteration, bestScore: best.critique!.score }),
  };
}
