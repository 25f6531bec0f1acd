import assert from "node:assert/strict";
import { groupRows, type Row } from "./group.ts";
import type { PromptSpec } from "./spec.ts";

const row = (n: number, spec: Partial<PromptSpec>): Row => ({
  source: { label: `prompt at row ${n}` },
  spec: { id: "cube", prompt: "a rubix cube", extra: {}, ...spec },
});

Deno.test("groupRows() makes rows that share an id one prompt, their checks in order", () => {
  const { specs, problems } = groupRows("dsg.csv", [
    row(2, { checks: [{ question: "Is there a rubix cube?", kind: "entity" }] }),
    row(3, {
      id: "rocks",
      prompt: "rocks",
      checks: [{ question: "Are there rocks?", kind: "entity" }],
    }),
    row(4, { checks: [{ question: "Is the rubix cube purple?", kind: "attribute" }] }),
  ]);
  assert.deepEqual(problems, []);
  assert.deepEqual(specs.map((s) => s.id), ["cube", "rocks"]);
  assert.deepEqual(specs[0]!.checks!.map((c) => c.question), [
    "Is there a rubix cube?",
    "Is the rubix cube purple?",
  ]);
});

Deno.test("groupRows() leaves out of every prompt a context field that differs within one", () => {
  const { specs } = groupRows("dsg.csv", [
    row(2, { extra: { category_broad: "entity", source: "whoops" } }),
    row(3, { extra: { category_broad: "attribute", source: "whoops" } }),
    row(4, { id: "one", prompt: "one row", extra: { category_broad: "entity", source: "vrd" } }),
  ]);
  assert.deepEqual(specs.map((s) => s.extra), [{ source: "whoops" }, { source: "vrd" }]);
});

Deno.test("groupRows() refuses rows that share an id but not their prompt, as ids must be unique", () => {
  const { specs, problems } = groupRows("a.json", [
    row(1, {}),
    row(2, { prompt: "another" }),
    row(3, { id: "CUBE" }),
  ], { names: { id: "item_id", prompt: "text" } });
  assert.equal(specs.length, 1);
  assert.equal(problems.length, 2);
  assert.match(
    problems[0]!,
    /^Invalid prompt at row 2 \(id 'cube'\) in 'a\.json': field 'item_id' duplicates prompt at row 1; ids must be unique \(rows that share an id are one prompt, and these differ in 'text'\)$/,
  );
  assert.match(
    problems[1]!,
    /field 'item_id' duplicates prompt at row 1 \('cube', ids differ only by case\); ids must be unique$/,
  );
});

Deno.test("groupRows() refuses rows of one prompt whose context or settings differ", () => {
  const { problems } = groupRows("a.jsonl", [
    row(1, { mood: "calm" }),
    row(2, { mood: "wild" }),
    row(3, { mood: "calm", settings: { seed: 1 } }),
  ]);
  assert.equal(problems.length, 2);
  assert.match(
    problems[0]!,
    /row 2 .*field 'mood' differs from prompt at row 1, which has the same id/,
  );
  assert.match(problems[1]!, /row 3 .*its settings differ from prompt at row 1/);
});

Deno.test("groupRows() refuses a prompt with more checks than the limit", () => {
  const rows = Array.from(
    { length: 65 },
    (_, i) => row(i + 2, { checks: [{ question: `Is there thing ${i}?`, kind: "entity" }] }),
  );
  const { problems } = groupRows("big.csv", rows);
  assert.deepEqual(problems, [
    "Invalid prompt 'cube' in 'big.csv': it has 65 checks, the limit is 64; keep the most important",
  ]);
});
