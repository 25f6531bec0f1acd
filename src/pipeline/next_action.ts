/**
 * What a prompt does next, from its record alone: the one place that decides whether a prompt
 * goes on (draw, brief, critique, refine) or stops, and why. The pipeline asks it after every
 * step it saves, and a later run asks it of the saved record, so a prompt an earlier run stopped
 * for a reason that still holds (its rounds, its target, a plateau, a refiner that converged)
 * is not paid for again.
 *
 * @module
 */
import type { Criterion } from "../providers/critique.ts";
import type { IterationRecord, PromptRecord } from "../output/record.ts";
import { bestIteration } from "../output/record.ts";

/** Why a prompt stopped on its own: `endReason` in `metadata.json`. */
export type EndReason = NonNullable<PromptRecord["endReason"]>;

/** The settings that decide when a prompt stops: the batch's, under the prompt's own. */
export interface PromptRules {
  /** Rounds the prompt may run. */
  iterations: number;
  /**
   * Every check passes and the score reaches `targetScore`, and each criterion its minimum;
   * `checks`: the prompt's checks are its target, met once every one passes.
   */
  target: {
    targetScore?: number;
    targetCriteria?: Partial<Record<Criterion, number>>;
    checks?: boolean;
  };
  /** Rounds without a better one before the prompt stops (`--patience`). */
  patience: number;
  /** Whether the critic makes a brief, once, after the first image. */
  brief: boolean;
  /** Whether rounds are refined from the critique (not in `sample` mode). */
  refine: boolean;
  /** A round the user asked for beyond the prompt's own (a reject in the studio). */
  lastRound?: number | undefined;
}

/** The next step of a prompt, or why it stops. */
export type NextAction =
  | { kind: "generate"; iteration: number }
  | { kind: "brief" }
  | { kind: "critique"; iteration: number }
  | { kind: "refine"; iteration: number }
  | { kind: "stop"; reason: EndReason; iteration: number };

/**
 * The next step of the prompt whose record this is, under `rules`.
 *
 * @example
 * ```ts
 * import { nextAction } from "./next_action.ts";
 * const rules = { iterations: 2, target: {}, patience: 2, brief: false, refine: true };
 * const record = { iterations: [] } as unknown as import("../output/record.ts").PromptRecord;
 * if (nextAction(record, rules).kind !== "generate") throw new Error("a new prompt draws first");
 * ```
 */
export function nextAction(record: PromptRecord, rules: PromptRules): NextAction {
  const last = rules.lastRound ?? rules.iterations;
  const rounds = new Map(record.iterations.map((it) => [it.iteration, it]));
  for (let i = 1;; i++) {
    const round = rounds.get(i);
    if (round?.image === undefined) {
      return i > last ? { kind: "stop", reason: "iterations", iteration: i - 1 } : {
        kind: "generate",
        iteration: i,
      };
    }
    if (i === 1 && rules.brief && record.brief === undefined) return { kind: "brief" };
    if (round.critique === undefined) return { kind: "critique", iteration: i };
    const stop = stopAfterCritique(record, i, rules, last);
    if (stop !== undefined) return { kind: "stop", reason: stop, iteration: i };
    if (!rules.refine) continue;
    if (round.refinedPrompt === undefined) return { kind: "refine", iteration: i };
    if (converged(round)) return { kind: "stop", reason: "converged", iteration: i };
  }
}

/**
 * Whether a critique meets the target: every check of the brief passes, the score reaches the
 * target score, and every per-criterion minimum that is set is met. A prompt whose checks are
 * its target needs no score: its checks all passing is enough.
 */
export function reachedTarget(
  target: PromptRules["target"],
  critique: NonNullable<IterationRecord["critique"]>,
): boolean {
  const criteria = Object.entries(target.targetCriteria ?? {});
  if (target.targetScore === undefined && criteria.length === 0 && !target.checks) return false;
  if (target.checks && !critique.checks?.length) return false;
  if (critique.checks?.some((c) => !c.passed)) return false;
  if (target.targetScore !== undefined && critique.score < target.targetScore) return false;
  return criteria.every(([name, min]) => critique.criteria[name as Criterion] >= (min ?? 0));
}

function stopAfterCritique(
  record: PromptRecord,
  iteration: number,
  rules: PromptRules,
  last: number,
): EndReason | undefined {
  const critique = record.iterations.find((it) => it.iteration === iteration)!.critique!;
  if (reachedTarget(rules.target, critique)) return "target";
  if (iteration >= last) return "iterations";
  // The best of the rounds so far is `patience` rounds old: refining has stopped paying.
  const best = bestIteration({
    ...record,
    iterations: record.iterations.filter((it) => it.iteration <= iteration),
  });
  if (best !== undefined && iteration - best.iteration >= rules.patience) return "plateau";
  return undefined;
}

/** A refinement that asks to draw the same prompt anew: the same image would be bought again. */
function converged(round: IterationRecord): boolean {
  if (round.refinedPrompt === undefined || round.next?.action === "edit") return false;
  const norm = (text: string) => text.trim().replace(/\s+/g, " ");
  return norm(round.refinedPrompt) === norm(round.prompt);
}
