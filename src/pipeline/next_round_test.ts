import assert from "node:assert/strict";
import type { CheckKind, Critique } from "../providers/critique.ts";
import { chooseNextRound } from "./next_round.ts";
import type { IterationRecord } from "../output/record.ts";
import { uniformCritique } from "../../tests/critique_fixture.ts";

const KINDS = new Map<string, CheckKind>([
  ["c1", "entity"],
  ["c2", "attribute"],
  ["c3", "lighting"],
  ["c4", "count"],
]);

function round(
  n: number,
  failed: string[],
  score = 7,
  action?: "edit" | "redraw",
): IterationRecord {
  const critique: Critique = {
    ...uniformCritique(score),
    checks: [...KINDS.keys()].map((id) => ({ id, passed: !failed.includes(id), reason: "r" })),
  };
  return { iteration: n, prompt: "p", seed: 1, critique, steps: {}, ...(action && { action }) };
}

Deno.test("chooseNextRound() edits when only local checks failed, redraws when an entity or a count did", () => {
  const local = chooseNextRound("auto", true, [round(1, ["c2", "c3"])], KINDS);
  assert.equal(local.action, "edit");
  assert.match(local.reason, /c2, c3/);
  const structural = chooseNextRound("auto", true, [round(1, ["c2", "c4"])], KINDS);
  assert.equal(structural.action, "redraw");
  assert.match(structural.reason, /c4 \(count\)/);
  assert.equal(chooseNextRound("auto", true, [round(1, ["c1"])], KINDS).action, "redraw");
});

Deno.test("chooseNextRound() redraws after two edits in a row unless the last one improved", () => {
  const flat = [round(1, ["c2"], 7), round(2, ["c2"], 7, "edit"), round(3, ["c2"], 7, "edit")];
  const choice = chooseNextRound("auto", true, flat, KINDS);
  assert.equal(choice.action, "redraw");
  assert.match(choice.reason, /2 edits in a row/);
  const better = [round(1, ["c2"], 7), round(2, ["c2"], 7, "edit"), round(3, [], 8, "edit")];
  assert.equal(chooseNextRound("auto", true, better, KINDS).action, "edit");
});

Deno.test("chooseNextRound() follows --refine, and never edits on a model without an edit endpoint", () => {
  const rounds = [round(1, ["c1"])];
  assert.equal(chooseNextRound("edit", true, rounds, KINDS).action, "edit");
  assert.equal(chooseNextRound("regenerate", true, [round(1, ["c2"])], KINDS).action, "redraw");
  const none = chooseNextRound("edit", false, [round(1, ["c2"])], KINDS);
  assert.equal(none.action, "redraw");
  assert.match(none.reason, /no edit endpoint/);
  // Without a checklist there is nothing to tell a local fix by.
  const bare = { ...round(1, []), critique: uniformCritique(5) };
  assert.equal(chooseNextRound("auto", true, [bare], KINDS).action, "redraw");
});
