import assert from "node:assert/strict";
import type { Critique } from "../providers/critique.ts";
import { reachedTarget } from "./next_action.ts";

function critique(score: number, passed?: boolean[]): Critique {
  return {
    score,
    criteria: { promptAdherence: 5, composition: 5, lighting: 5, mood: 5, technicalQuality: 5 },
    summary: "",
    strengths: [],
    problems: [],
    suggestions: [],
    ...(passed && { checks: passed.map((p, i) => ({ id: `c${i + 1}`, passed: p, reason: "" })) }),
  };
}

Deno.test("reachedTarget() takes a prompt's own checks all passing as its target, with no score", () => {
  assert.equal(reachedTarget({ checks: true }, critique(2, [true, true, true])), true);
  assert.equal(reachedTarget({ checks: true }, critique(9, [true, false, true])), false);
  // A critique that answered none has not shown they pass.
  assert.equal(reachedTarget({ checks: true }, critique(9)), false);
  // A score set as well must be reached as well.
  assert.equal(reachedTarget({ checks: true, targetScore: 8 }, critique(7, [true])), false);
  // Without checks of its own and without a target, a prompt has none to reach.
  assert.equal(reachedTarget({}, critique(10, [true])), false);
});
