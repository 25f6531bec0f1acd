import assert from "node:assert/strict";
import type { PromptOutcome } from "../output/record.ts";
import { jsonLine, jsonSummary } from "./json_summary.ts";

const outcome = (o: Partial<PromptOutcome> & { id: string }): PromptOutcome => ({
  folder: o.id,
  status: "completed",
  skipped: false,
  model: "m1",
  durationMs: 10,
  costUsd: 0.01,
  iterations: 2,
  ...o,
});

Deno.test("jsonSummary() lists every prompt in file order, a prompt without an outcome as not run", () => {
  const summary = jsonSummary({
    batchDir: "out/b",
    ids: ["a", "b", "c"],
    models: ["m1"],
    outcomes: [
      outcome({
        id: "c",
        status: "failed",
        error: { step: "generate", iteration: 1, message: "422" },
      }),
      outcome({ id: "a", bestScore: 7.5, bestIteration: 2 }),
    ],
    status: "interrupted",
    exitCode: 130,
    format: "jpeg",
    cost: { thisRunUsd: 0.02, batchUsd: 0.05 },
  });
  assert.deepEqual(summary.prompts.map((p) => [p.id, p.status]), [
    ["a", "completed"],
    ["b", "not run"],
    ["c", "failed"],
  ]);
  assert.equal(summary.prompts[0]!.bestImage, "out/b/a/iteration-2.jpg");
  assert.equal(summary.prompts[1]!.bestImage, null);
  assert.deepEqual(summary.prompts[2]!.error, { step: "generate", iteration: 1, message: "422" });
  assert.deepEqual(summary.totals, {
    prompts: 3,
    completed: 1,
    failed: 1,
    interrupted: 0,
    notRun: 1,
    skipped: 0,
    costUsd: 0.02,
    batchCostUsd: 0.05,
  });
  assert.equal(summary.exitCode, 130);
  const line = jsonLine(summary);
  assert.ok(line.endsWith("}\n") && !line.slice(0, -1).includes("\n"), "one line");
  assert.deepEqual(JSON.parse(line), summary);
});
