import assert from "node:assert/strict";
import type { Judge, JudgeRun, Verdict } from "./judge.ts";
import { buildReport, OFFLINE_CAVEAT, type ReportSource, SAME_JUDGE_CAVEAT } from "./report.ts";
import type { PromptResult, StrategyResults } from "./results.ts";
import { planStrategies, type StrategyName } from "./strategies.ts";

const ROOT = "out/batch";

function prompt(id: string, parts: Partial<PromptResult> = {}): PromptResult {
  return {
    id,
    folder: id,
    status: "completed",
    finalImage: `${ROOT}/eval/x/${id}/best.png`,
    images: 1,
    costUsd: 0.01,
    durationMs: 1000,
    criticScore: 7,
    ...parts,
  };
}

function results(name: StrategyName, prompts: PromptResult[]): StrategyResults {
  return { name, dir: `${ROOT}/eval/${name}`, runStatus: "completed", prompts };
}

function verdict(strategy: StrategyName, id: string, score: number, checks?: [number, number]) {
  return {
    strategy,
    id,
    status: "judged",
    score,
    costUsd: 0.001,
    ...(checks && { checksPassed: checks[0], checksTotal: checks[1] }),
  } satisfies Verdict;
}

const JUDGE = {
  critic: { name: "x", critique: () => Promise.reject(new Error("unused")) },
  provider: "openai",
  model: "gpt-x",
  id: "openai:gpt-x",
  independent: true,
  loopCritic: "gemini:flash",
} satisfies Judge;

function source(run: JudgeRun, parts: Partial<ReportSource> = {}): ReportSource {
  const plan = planStrategies(["single", "best-of-n", "refine"], 3, {
    generate: 0.003,
    critique: 0.001,
    refine: 0.001,
  });
  return {
    promptFiles: ["p.json"],
    offline: false,
    plans: plan.strategies,
    equalSpend: plan.equalSpend,
    budget: { maxCostUsd: undefined, judgeReserveUsd: 0, strategiesUsd: 0 },
    results: [
      results("single", [prompt("a"), prompt("b"), prompt("c")]),
      results("best-of-n", [
        prompt("a", { images: 4, costUsd: 0.016, durationMs: 4000 }),
        prompt("b", { images: 4, costUsd: 0.016, durationMs: 2000 }),
        prompt("c", { images: 4, costUsd: 0.016, durationMs: 3000 }),
      ]),
      results("refine", [
        prompt("a", { images: 3, costUsd: 0.014, criticScore: 9 }),
        prompt("b", { images: 3, costUsd: 0.014, criticScore: 8 }),
        { id: "c", folder: "c", status: "failed", images: 1, costUsd: 0.004, durationMs: 1000 },
      ]),
    ],
    judge: JUDGE,
    judgeRun: run,
    root: ROOT,
    createdAt: "2026-01-01T00:00:00.000Z",
    ...parts,
  };
}

Deno.test("buildReport() gives each strategy's means over its completed prompts", () => {
  const run: JudgeRun = {
    spentUsd: 0.008,
    verdicts: [
      verdict("single", "a", 6, [2, 4]),
      verdict("single", "b", 7, [3, 4]),
      verdict("single", "c", 5, [1, 4]),
      verdict("best-of-n", "a", 8, [4, 4]),
      verdict("best-of-n", "b", 7),
      verdict("best-of-n", "c", 6),
      verdict("refine", "a", 9),
      verdict("refine", "b", 7),
      { strategy: "refine", id: "c", status: "no final image", costUsd: 0 },
    ],
  };
  const report = buildReport(source(run));
  const { single, "best-of-n": bestOfN, refine } = report.strategies;
  assert.equal(single!.meanJudgeScore, 6);
  assert.equal(single!.meanChecksPassedRate, 0.5);
  assert.equal(bestOfN!.meanChecksPassedRate, 1, "only prompts whose verdict has checks count");
  assert.equal(refine!.meanChecksPassedRate, null, "no brief, no rate");
  assert.equal(refine!.meanJudgeScore, 8);
  assert.equal(refine!.completed, 2);
  assert.equal(refine!.judged, 2);
  assert.equal(refine!.imagesPerPrompt, 3);
  assert.equal(refine!.costPerPromptUsd, 0.014);
  assert.equal(refine!.totalCostUsd, 0.032, "the failed prompt's spend counts in the total");
  assert.equal(refine!.meanCriticScore, 8.5);
  assert.equal(bestOfN!.timePerPromptMs, 3000);
  assert.equal(bestOfN!.iterations, 4, "3 rounds at these prices buy 4 images");
  assert.equal(bestOfN!.judgeCostUsd, 0.003);
  assert.equal(report.judge.costUsd, 0.008);
  assert.equal(report.judge.judged, 8);
  assert.equal(report.caveat, null);
  assert.deepEqual(report.prompts[2]!.refine, {
    status: "failed",
    judge: "no final image",
    judgeScore: null,
    checksPassed: null,
    checksTotal: null,
    criticScore: null,
    images: 1,
    costUsd: 0.004,
    durationMs: 1000,
  });
});

Deno.test("buildReport() compares refine with best-of-n over prompts where both were judged", () => {
  const run: JudgeRun = {
    spentUsd: 0,
    verdicts: [
      verdict("best-of-n", "a", 8),
      verdict("best-of-n", "b", 7),
      verdict("best-of-n", "c", 6),
      verdict("refine", "a", 9),
      verdict("refine", "b", 7),
    ],
  };
  const c = buildReport(source(run)).comparison.refineVsBestOfN!;
  assert.deepEqual(
    { winRate: c.winRate, prompts: c.prompts, wins: c.wins, ties: c.ties, losses: c.losses },
    { winRate: 0.75, prompts: 2, wins: 1, ties: 1, losses: 0 },
  );
  assert.ok(c.ci95![0] <= 0.75 && 0.75 <= c.ci95![1]);
  assert.equal(c.resamples, 2000);

  const none = buildReport(source({ spentUsd: 0, verdicts: [] })).comparison.refineVsBestOfN!;
  assert.equal(none.winRate, null);
  assert.equal(none.ci95, null);

  const plan = planStrategies(["single", "refine"], 2, { generate: 0, critique: 0, refine: 0 });
  const without = buildReport(source(run, { plans: plan.strategies }));
  assert.equal(without.comparison.refineVsBestOfN, null);
  assert.deepEqual(Object.keys(without.strategies), ["single", "refine"]);
});

Deno.test("buildReport() says plainly when the numbers cannot show that refining pays", () => {
  const run: JudgeRun = { spentUsd: 0, verdicts: [] };
  assert.equal(buildReport(source(run, { offline: true })).caveat, OFFLINE_CAVEAT);
  assert.match(OFFLINE_CAVEAT, /the harness works, not that refining pays/);
  const same = buildReport(source(run, { judge: { ...JUDGE, independent: false } }));
  assert.equal(same.caveat, SAME_JUDGE_CAVEAT);
});
