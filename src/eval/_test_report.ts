/**
 * A small eval report for the page's and the summary's tests.
 *
 * @module
 */
import type { Judge, Verdict } from "./judge.ts";
import { buildReport, type EvalReport } from "./report.ts";
import type { StrategyResults } from "./results.ts";
import { planStrategies, STRATEGIES } from "./strategies.ts";

const JUDGE = {
  critic: { name: "x", critique: () => Promise.reject(new Error("unused")) },
  provider: "local",
  model: "local-metrics-v1",
  id: "local:local-metrics-v1",
  independent: false,
  loopCritic: "local:local-metrics-v1",
} satisfies Judge;

/** A report of two prompts; `cost` per image, 0 for an offline one. */
export function report(cost: number, ids = ["a", "b"]): EvalReport {
  const prices = { generate: cost, critique: 0, refine: 0 };
  const plan = planStrategies([...STRATEGIES], 2, prices);
  const results: StrategyResults[] = plan.strategies.map((s) => ({
    name: s.name,
    dir: `out/x/eval/${s.name}`,
    runStatus: "completed",
    prompts: ids.map((id) => ({
      id,
      folder: id,
      status: "completed",
      finalImage: `out/x/eval/${s.name}/${id}/best.png`,
      images: s.iterations,
      costUsd: cost * s.iterations,
      durationMs: 500 * s.iterations,
      criticScore: 7,
    })),
  }));
  const scores = { single: 6, "best-of-n": 7, refine: 8 };
  const verdicts: Verdict[] = plan.strategies.flatMap((s) =>
    ids.map((id) => ({ strategy: s.name, id, status: "judged", score: scores[s.name], costUsd: 0 }))
  );
  return buildReport({
    promptFiles: ["prompts/example.json"],
    offline: cost === 0,
    plans: plan.strategies,
    equalSpend: plan.equalSpend,
    budget: { maxCostUsd: undefined, judgeReserveUsd: 0, strategiesUsd: 0 },
    results,
    judge: JUDGE,
    judgeRun: { verdicts, spentUsd: 0 },
    root: "out/x",
    createdAt: "2026-01-01T00:00:00.000Z",
  });
}
