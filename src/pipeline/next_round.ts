/**
 * Edit or redraw: how the next round is made from a critique (`--refine`). Critics spot errors
 * better than they write fixes, and an edit keeps what already works, so a round whose failed
 * checks are local (an attribute, text, the light, a detail) edits the best image so far; one
 * where the composition, a count, a relation or a whole entity failed is drawn anew.
 *
 * @module
 */
import { type CheckKind, checksPassed, type Critique } from "../providers/critique.ts";
import type { IterationRecord, NextRound } from "../output/record.ts";

/** `--refine`: edit, regenerate, or choose per round. */
export type RefineMode = "auto" | "edit" | "regenerate";

/** Failed checks of these kinds need a new composition: an edit cannot add or move things. */
const STRUCTURAL: ReadonlySet<CheckKind> = new Set(["entity", "count", "relation", "composition"]);

/** Edits in a row after which the next round is drawn anew unless the critique improved. */
const MAX_EDITS_IN_A_ROW = 2;

/**
 * How the round after `rounds.at(-1)` is made.
 *
 * @param canEdit whether the generation model has an edit endpoint
 * @param kinds the kind of each check of the brief, by id
 */
export function chooseNextRound(
  mode: RefineMode,
  canEdit: boolean,
  rounds: readonly IterationRecord[],
  kinds: ReadonlyMap<string, CheckKind>,
): NextRound {
  if (mode === "regenerate") return { action: "redraw", reason: "--refine regenerate" };
  if (!canEdit) {
    return { action: "redraw", reason: "the model's family has no edit endpoint" };
  }
  if (mode === "edit") return { action: "edit", reason: "--refine edit" };
  const last = rounds.at(-1)?.critique;
  if (last?.checks === undefined) {
    return { action: "redraw", reason: "no checklist tells a local fix from a new composition" };
  }
  const failed = last.checks.filter((c) => !c.passed);
  const structural = failed.filter((c) => STRUCTURAL.has(kinds.get(c.id) ?? "entity"));
  if (structural.length > 0) {
    return {
      action: "redraw",
      reason: `${structural.map((c) => `${c.id} (${kinds.get(c.id) ?? "entity"})`).join(", ")} ${
        structural.length === 1 ? "needs" : "need"
      } a new composition`,
    };
  }
  const edits = trailingEdits(rounds);
  if (edits >= MAX_EDITS_IN_A_ROW && !improved(rounds)) {
    return {
      action: "redraw",
      reason: `${edits} edits in a row without gain: edits pile up artefacts`,
    };
  }
  return {
    action: "edit",
    reason: failed.length === 0
      ? "every check passed: polishing the best image"
      : `only local checks failed: ${failed.map((c) => c.id).join(", ")}`,
  };
}

function trailingEdits(rounds: readonly IterationRecord[]): number {
  let n = 0;
  for (let i = rounds.length - 1; i >= 0 && rounds[i]!.action === "edit"; i--) n++;
  return n;
}

/** Whether the last round beat the one before it (checks passed, then score). */
function improved(rounds: readonly IterationRecord[]): boolean {
  const [before, last] = [rounds.at(-2)?.critique, rounds.at(-1)?.critique];
  if (!before || !last) return false;
  return rank(last) > rank(before);
}

function rank(critique: Critique): number {
  return (checksPassed(critique) ?? 0) * 100 + critique.score;
}
