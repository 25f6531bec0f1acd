import assert from "node:assert/strict";
import { parse } from "csv-parse/sync";
import type { PromptRecord } from "../output/record.ts";
import { exportCsv, exportRound, type ExportRow } from "./export.ts";

const row = (prompt: string): ExportRow => ({
  id: "a",
  model: "",
  prompt,
  iteration: 2,
  score: 7.5,
  costUsd: 0.04,
  file: "images/a.png",
  chosenBy: "critic",
});

Deno.test("exportCsv() quotes commas, quotes and newlines so each prompt stays one field", () => {
  const prompts = [`plain`, `with, comma`, `with "quotes"`, `two\nlines`, `cr\r\nlf`, `'single'`];
  const text = exportCsv(prompts.map(row));
  assert.ok(text.startsWith("id,model,prompt,iteration,score,costUsd,file,chosenBy\r\n"));
  const parsed: string[][] = parse(text);
  assert.equal(parsed.length, prompts.length + 1);
  assert.deepEqual(parsed.slice(1).map((r) => r[2]), prompts);
  assert.deepEqual(parsed[1], ["a", "", "plain", "2", "7.5", "0.04", "images/a.png", "critic"]);
});

function record(partial: Partial<PromptRecord>): PromptRecord {
  return {
    id: "a",
    folder: "a",
    status: "completed",
    inputHash: "",
    prompt: "p",
    extra: {},
    providers: { generator: "g", critic: "c", refiner: "r" },
    iterations: [
      { iteration: 1, prompt: "p", image: "iteration-1.png", steps: {} },
      { iteration: 2, prompt: "p", image: "iteration-2.png", steps: {} },
      { iteration: 3, prompt: "p", steps: {} },
    ],
    bestIteration: 2,
    costUsd: 0,
    durationMs: 0,
    startedAt: "",
    ...partial,
  };
}

Deno.test("exportRound() takes the user's pick over the critic's best, when it has an image", () => {
  assert.deepEqual(exportRound(record({})), {
    iteration: 2,
    image: "iteration-2.png",
    by: "critic",
  });
  assert.deepEqual(exportRound(record({ chosen: 1 })), {
    iteration: 1,
    image: "iteration-1.png",
    by: "user",
  });
  assert.equal(exportRound(record({ chosen: 3 }))?.iteration, 2, "a pick without an image");
  assert.equal(exportRound(record({ bestIteration: 3 })), undefined);
});

Deno.test("exportCsv() keeps a prompt that starts like a formula a string in a spreadsheet", () => {
  const base = {
    model: "m",
    iteration: 1,
    score: 8,
    costUsd: 0,
    file: "a.png",
    chosenBy: "critic" as const,
  };
  const text = exportCsv([
    { ...base, id: "=HYPERLINK(1)", prompt: "+cmd|' /C calc'!A0" },
    { ...base, id: "plain", prompt: "a calm lake - at dawn" },
  ]);
  const lines = text.split("\r\n");
  assert.ok(lines[1]!.startsWith("'=HYPERLINK(1),"), lines[1] ?? "");
  assert.ok(lines[1]!.includes("'+cmd|"), lines[1] ?? "");
  assert.ok(lines[2]!.startsWith("plain,m,a calm lake - at dawn,"), lines[2] ?? "");
});
