import assert from "node:assert/strict";
import type { PromptOutcome } from "../output/record.ts";
import { FAILURES_SHOWN, formatSummary } from "./summary.ts";

const COST = { thisRunUsd: 1.5, batchUsd: 2.25 };

function outcome(i: number, overrides: Partial<PromptOutcome> = {}): PromptOutcome {
  return {
    id: `p${String(i).padStart(4, "0")}`,
    folder: `p${i}`,
    status: "completed",
    skipped: false,
    model: "m",
    durationMs: 1000,
    costUsd: 0.01,
    iterations: 2,
    bestScore: 8,
    bestIteration: 2,
    ...overrides,
  };
}

function failure(i: number, message = `boom ${i}`): PromptOutcome {
  return outcome(i, {
    status: "failed",
    error: { step: "generate", iteration: 1, message },
  });
}

/** 1,000 outcomes: most completed (some from an earlier run), 30 failed, 15 paused. */
function thousand(): PromptOutcome[] {
  return Array.from(
    { length: 1000 },
    (_, i) =>
      i % 33 === 5 && i < 1000
        ? failure(i)
        : i % 60 === 7
        ? outcome(i, { status: "interrupted", ...(i % 120 === 7 && { stopCause: "budget" }) })
        : outcome(i, { skipped: i < 100 }),
  );
}

Deno.test("formatSummary() lists every prompt of a small batch", () => {
  const text = formatSummary(
    "out/b",
    4,
    [
      outcome(1),
      outcome(2, { skipped: true }),
      failure(3),
      outcome(4, { status: "interrupted", stopCause: "budget", iterations: 1 }),
    ],
    "stopped at the cost budget",
    COST,
  );
  assert.equal(
    text,
    [
      "retake: 2/4 prompts completed, 1 failed — stopped at the cost budget",
      "  cost: $1.5000 this run, $2.2500 batch total",
      "  ok      p0001: best score 8.0 (iteration 2 of 2)",
      "  done    p0002: best score 8.0 (iteration 2 of 2), unchanged since the last run",
      "  FAILED  p0003: generate 1: boom 3",
      "  paused  p0004: saved after 1 iteration(s) (--max-cost); run again to resume",
      "Output: out/b (open out/b/index.html to see the images)",
      "",
    ].join("\n"),
  );
});

Deno.test("formatSummary() keeps 1,000 outcomes to a screenful: counts, cost, 20 failures, where the rest are", () => {
  const outcomes = thousand();
  const failed = outcomes.filter((o) => o.status === "failed").length;
  const paused = outcomes.filter((o) => o.status === "interrupted");
  const text = formatSummary("out/big", 1000, outcomes, "completed with failures", COST);
  const lines = text.trimEnd().split("\n");
  assert.ok(lines.length <= 25, `${lines.length} lines:\n${text}`);
  const completed = outcomes.filter((o) => o.status === "completed").length;
  const unchanged = outcomes.filter((o) => o.status === "completed" && o.skipped).length;
  assert.ok(unchanged > 50);
  assert.equal(
    lines[0],
    `retake: ${completed}/1000 prompts completed (${unchanged} unchanged since the last run), ${failed} failed — completed with failures`,
  );
  assert.equal(lines[1], "  cost: $1.5000 this run, $2.2500 batch total");
  const shown = lines.filter((l) => l.startsWith("  FAILED  "));
  assert.equal(shown.length, FAILURES_SHOWN);
  // The first ones, in the order given (the prompt files' order).
  assert.equal(shown[0], "  FAILED  p0005: generate 1: boom 5");
  assert.ok(
    lines.includes(
      `  … and ${failed - FAILURES_SHOWN} more failed: see out/big/run.json`,
    ),
    text,
  );
  const atBudget = paused.filter((o) => o.stopCause === "budget").length;
  assert.ok(
    lines.includes(
      `  paused  ${paused.length} prompts (${atBudget} at --max-cost): saved steps are kept; run again to resume`,
    ),
    text,
  );
  assert.equal(lines.at(-1), "Output: out/big (open out/big/index.html to see the images)");
  assert.ok(!text.includes("  ok      "), "no line per completed prompt");
});

Deno.test("formatSummary() says how many prompts are paused or never started, on one line", () => {
  const text = formatSummary("out/b", 1000, thousand().slice(0, 400), "interrupted", COST);
  assert.match(
    text,
    /\n {2}paused {2}\d+ prompts \(\d+ at --max-cost\), 600 not started: saved steps are kept; run again to resume\n/,
  );
  assert.ok(text.trimEnd().split("\n").length <= 25, text);
});

Deno.test("formatSummary() of a large batch with few failures points to run.json for the rest", () => {
  const outcomes = Array.from({ length: 50 }, (_, i) => i === 3 ? failure(i) : outcome(i));
  const text = formatSummary("out/b", 50, outcomes, "completed with failures", COST);
  assert.equal(
    text,
    [
      "retake: 49/50 prompts completed, 1 failed — completed with failures",
      "  cost: $1.5000 this run, $2.2500 batch total",
      "  FAILED  p0003: generate 1: boom 3",
      "  every prompt's outcome: out/b/run.json",
      "Output: out/b (open out/b/index.html to see the images)",
      "",
    ].join("\n"),
  );
});

Deno.test("formatSummary() cuts a long error message: the whole of it is in metadata.json", () => {
  const outcomes = [
    failure(1, "x".repeat(5000)),
    ...Array.from({ length: 20 }, (_, i) => outcome(i + 2)),
  ];
  const text = formatSummary("out/b", 21, outcomes, "completed with failures", COST);
  const line = text.split("\n").find((l) => l.startsWith("  FAILED"))!;
  assert.ok(line.length < 250, `${line.length}`);
  assert.ok(line.endsWith("x…"), line.slice(-10));
});

Deno.test("formatSummary() names the model beside the id when models are compared", () => {
  const text = formatSummary(
    "out/b",
    2,
    [outcome(1, { model: "a" }), outcome(1, { model: "b" })],
    "completed",
    COST,
  );
  assert.match(text, /p0001 \[a\]: best score/);
  assert.match(text, /p0001 \[b\]: best score/);
});

Deno.test("formatSummary() of a large batch counts prompts cancelled in the studio apart from paused ones", () => {
  const outcomes = Array.from(
    { length: 50 },
    (_, i) =>
      i < 3
        ? outcome(i, { status: "interrupted", stopCause: "cancel" })
        : i < 5
        ? outcome(i, { status: "interrupted" })
        : outcome(i),
  );
  const text = formatSummary("out/b", 50, outcomes, "completed", COST);
  assert.match(text, /\n {2}paused {2}2 prompts: saved steps are kept; run again to resume\n/);
  assert.match(text, /\n {2}cancel {2}3 prompts cancelled in the studio; --force runs them anew\n/);
});
