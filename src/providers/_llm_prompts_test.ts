import assert from "node:assert/strict";
import { uniformCritique } from "../../tests/critique_fixture.ts";
import { createLocalRefiner } from "../offline/refiner.ts";
import { refineText } from "./_llm_prompts.ts";
import type { RefineRequest } from "./provider.ts";

function request(notes?: string[], mode?: "edit"): RefineRequest {
  const critique = uniformCritique(6, { summary: "fine", problems: ["the sky is dull"] });
  return {
    prompt: "a lake at dusk",
    spec: { id: "lake", prompt: "a lake at dusk", extra: {} },
    critique,
    history: [{ iteration: 1, prompt: "a lake at dusk", critique }],
    iteration: 1,
    signal: new AbortController().signal,
    ...(notes && { notes }),
    ...(mode && { mode }),
  };
}

Deno.test("refineText() puts the user's notes before everything else", () => {
  const text = refineText(request(["add a red boat", "no people"]));
  assert.ok(text.startsWith("The user rejected the image from round 1 with these notes"), text);
  assert.ok(text.indexOf("- add a red boat\n- no people") < text.indexOf("Original prompt:"));
  assert.ok(refineText(request()).startsWith("Original prompt:"), "no notes, no preamble");
});

Deno.test("the offline refiner leads the prompt and the edit instruction with the note", async () => {
  const refiner = createLocalRefiner();
  const drawn = await refiner.refine(request(["add a red boat"]));
  assert.ok(drawn.prompt.startsWith("add a red boat, "), drawn.prompt);
  assert.deepEqual(drawn.changes[0], {
    change: "put first 'add a red boat'",
    reason: "the user's note",
  });
  const edit = await refiner.refine(request(["add a red boat"], "edit"));
  assert.ok(edit.instruction?.startsWith("add a red boat"), String(edit.instruction));
});
