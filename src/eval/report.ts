/**
 * `eval.json`: per strategy, the mean judge score, checks passed, cost and time per prompt;
 * refine against best-of-n as a paired win rate with its bootstrap interval; who judged; and,
 * per prompt, every strategy's numbers. This module is the only one that builds and writes it.
 *
 * @module
 */
import { writeJsonAtomic } from "../output/atomic_write.ts";
import { VERSION } from "../output/run_file.ts";
import {
  BOOTSTRAP_RESAMPLES,
  BOOTSTRAP_SEED,
  bootstrapCi,
  type PairOutcome,
  pairOutcome,
  winRate,
} from "./bootstrap.ts";
import type { Judge, JudgeRun, Verdict } from "./judge.ts";
import type { StrategyResults } from "./results.ts";
import type { EqualSpend, StrategyName, StrategyPlan } from "./strategies.ts";

/** Said wherever offline numbers are shown. */
export const OFFLINE_CAVEAT =
  "Offline: the judge is the local critic, which is also the loop's critic: these numbers show the harness works, not that refining pays. That needs real models: run with keys and a --judge that is not the loop's critic.";

/** Said when a run with keys is judged by the loop's own critic. */
export const SAME_JUDGE_CAVEAT =
  "The judge is the loop's own critic: refine and best-of-n kept the images this critic liked best, so its scores favour them. Give --judge another provider or model for an independent verdict.";

/** One strategy's line of the report. */
export interface StrategySummary {
  /** The strategy's batch folder, relative to the eval's batch folder. */
  folder: string;
  mode: "refine" | "sample";
  /** Images per prompt asked for. */
  iterations: number;
  /** `run.json`'s status, or `not run`. */
  runStatus: string;
  prompts: number;
  /** Prompts with a final image. */
  completed: number;
  /** Prompts the judge scored. */
  judged: number;
  /** Mean over prompts the judge scored. */
  meanJudgeScore: number | null;
  /** Mean share of the brief's checks the judge found passed; null without briefs. */
  meanChecksPassedRate: number | null;
  /** The loop critic's own mean score of its final images. */
  meanCriticScore: number | null;
  /** Images made per completed prompt. */
  imagesPerPrompt: number | null;
  /** Mean cost of a completed prompt, in USD (the judge's cost not included). */
  costPerPromptUsd: number | null;
  /** Mean time of a completed prompt, in ms. */
  timePerPromptMs: number | null;
  /** Every prompt's cost in this strategy, in USD: the sum of its `metadata.json` costs. */
  totalCostUsd: number;
  /** The estimate the equal-spend rule used, per prompt, in USD; null when unknown. */
  estimatedUsdPerPrompt: number | null;
  /** What judging this strategy's images cost, in USD, cached verdicts included. */
  judgeCostUsd: number;
}

/** Refine's final image against best-of-n's, prompt by prompt. */
export interface Comparison {
  /** Share of prompts refine's final beats best-of-n's, ties counting half; null with none. */
  winRate: number | null;
  /** Percentile bootstrap 95% interval of the win rate; null with no prompts. */
  ci95: [number, number] | null;
  /** Prompts both strategies' finals were judged on. */
  prompts: number;
  wins: number;
  ties: number;
  losses: number;
  resamples: number;
  seed: number;
}

/** One prompt's numbers in one strategy. */
export interface PromptLine {
  status: string;
  judge: Verdict["status"];
  judgeScore: number | null;
  checksPassed: number | null;
  checksTotal: number | null;
  criticScore: number | null;
  images: number;
  costUsd: number;
  durationMs: number;
  error?: string;
}

/** The content of `eval.json`. */
export interface EvalReport {
  version: string;
  createdAt: string;
  promptFiles: string[];
  /** Whether it ran on the embedded local providers: then the caveat applies. */
  offline: boolean;
  /** What the numbers cannot show, in plain words; null when there is nothing to say. */
  caveat: string | null;
  equalSpend: EqualSpend;
  /** What this run spent, against `--max-cost`. */
  budget: {
    /** `--max-cost`; null without one. */
    maxCostUsd: number | null;
    /** Set aside for the judge before the strategies ran: its estimate for every final. */
    judgeReserveUsd: number;
    /** Spent by the strategies' runs this time. */
    strategiesUsd: number;
    /** Spent by the judge this time. */
    judgeUsd: number;
  };
  strategies: Partial<Record<StrategyName, StrategySummary>>;
  comparison: { refineVsBestOfN: Comparison | null };
  judge: {
    provider: string;
    model: string;
    independent: boolean;
    loopCritic: string;
    /** Every verdict's cost, cached ones included, in USD. */
    costUsd: number;
    thisRunCostUsd: number;
    judged: number;
    cached: number;
    failed: number;
    notJudged: number;
    stoppedBy: NonNullable<JudgeRun["stoppedBy"]> | null;
  };
  /** Per prompt id, per strategy. */
  prompts: Array<{ id: string } & Partial<Record<StrategyName, PromptLine>>>;
}

/** What {@linkcode buildReport} reads. */
export interface ReportSource {
  promptFiles: string[];
  offline: boolean;
  plans: StrategyPlan[];
  equalSpend: EqualSpend;
  budget: { maxCostUsd: number | undefined; judgeReserveUsd: number; strategiesUsd: number };
  results: StrategyResults[];
  judge: Judge;
  judgeRun: JudgeRun;
  /** The eval's batch folder: strategy folders are given relative to it. */
  root: string;
  createdAt: string;
}

/** Builds the report from the strategies' folders and the judge's verdicts. */
export function buildReport(source: ReportSource): EvalReport {
  const { results, judgeRun } = source;
  const verdict = new Map(judgeRun.verdicts.map((v) => [`${v.strategy}\u0000${v.id}`, v]));
  const verdictOf: VerdictOf = (strategy, id) => verdict.get(`${strategy}\u0000${id}`);
  const strategies: Partial<Record<StrategyName, StrategySummary>> = {};
  for (const plan of source.plans) {
    const result = results.find((r) => r.name === plan.name);
    strategies[plan.name] = _strategySummary(plan, result, verdictOf, source.root);
  }
  const ids = results[0]?.prompts.map((p) => p.id) ?? [];
  const refineVsBestOfN = strategies.refine && strategies["best-of-n"]
    ? compare(ids.map((id) => [verdictOf("refine", id), verdictOf("best-of-n", id)]))
    : null;
  return {
    version: VERSION,
    createdAt: source.createdAt,
    promptFiles: source.promptFiles,
    offline: source.offline,
    caveat: source.offline ? OFFLINE_CAVEAT : source.judge.independent ? null : SAME_JUDGE_CAVEAT,
    equalSpend: source.equalSpend,
    budget: {
      maxCostUsd: source.budget.maxCostUsd ?? null,
      judgeReserveUsd: round(source.budget.judgeReserveUsd, 6),
      strategiesUsd: round(source.budget.strategiesUsd, 6),
      judgeUsd: judgeRun.spentUsd,
    },
    strategies,
    comparison: { refineVsBestOfN },
    judge: _judgeSummary(source.judge, judgeRun),
    prompts: ids.map((id) => _promptLine(id, results, verdictOf)),
  };
}

/** The judge's verdict on a strategy's final image of a prompt, if it gave one. */
type VerdictOf = (strategy: StrategyName, id: string) => Verdict | undefined;

/** One strategy's means and totals over its prompts (`result` undefined: it did not run). */
function _strategySummary(
  plan: StrategyPlan,
  result: StrategyResults | undefined,
  verdictOf: VerdictOf,
  root: string,
): StrategySummary {
  const prompts = result?.prompts ?? [];
  const done = prompts.filter((p) => p.finalImage !== undefined);
  const verdicts = prompts.map((p) => verdictOf(plan.name, p.id)).filter((v) => v !== undefined);
  const scored = verdicts.filter((v) => v.score !== undefined);
  const rates = scored.filter((v) => v.checksTotal !== undefined && v.checksTotal > 0)
    .map((v) => v.checksPassed! / v.checksTotal!);
  return {
    folder: result ? relative(root, result.dir) : `eval/${plan.name}`,
    mode: plan.mode,
    iterations: plan.iterations,
    runStatus: result?.runStatus ?? "not run",
    prompts: prompts.length,
    completed: done.length,
    judged: scored.length,
    meanJudgeScore: mean(scored.map((v) => v.score!), 2),
    meanChecksPassedRate: mean(rates, 3),
    meanCriticScore: mean(
      done.filter((p) => p.criticScore !== undefined).map((p) => p.criticScore!),
      2,
    ),
    imagesPerPrompt: mean(done.map((p) => p.images), 2),
    costPerPromptUsd: mean(done.map((p) => p.costUsd), 6),
    timePerPromptMs: mean(done.map((p) => p.durationMs), 0),
    totalCostUsd: round(prompts.reduce((sum, p) => sum + p.costUsd, 0), 6),
    estimatedUsdPerPrompt: plan.estimatedUsdPerPrompt === undefined
      ? null
      : round(plan.estimatedUsdPerPrompt, 6),
    judgeCostUsd: round(verdicts.reduce((sum, v) => sum + v.costUsd, 0), 6),
  };
}

/** Who judged, what it cost, and how many verdicts of each kind it gave. */
function _judgeSummary(judge: Judge, judgeRun: JudgeRun): EvalReport["judge"] {
  const all = judgeRun.verdicts;
  return {
    provider: judge.provider,
    model: judge.model,
    independent: judge.independent,
    loopCritic: judge.loopCritic,
    costUsd: round(all.reduce((sum, v) => sum + v.costUsd, 0), 6),
    thisRunCostUsd: judgeRun.spentUsd,
    judged: all.filter((v) => v.status === "judged").length,
    cached: all.filter((v) => v.status === "cached").length,
    failed: all.filter((v) => v.status === "failed").length,
    notJudged: all.filter((v) => v.status === "not judged").length,
    stoppedBy: judgeRun.stoppedBy ?? null,
  };
}

/** Prompt `id` as each strategy left it, with the judge's verdict. */
function _promptLine(
  id: string,
  results: StrategyResults[],
  verdictOf: VerdictOf,
): { id: string } & Partial<Record<StrategyName, PromptLine>> {
  const line: { id: string } & Partial<Record<StrategyName, PromptLine>> = { id };
  for (const result of results) {
    const p = result.prompts.find((x) => x.id === id)!;
    const v = verdictOf(result.name, id);
    line[result.name] = {
      status: p.status,
      judge: v?.status ?? "not judged",
      judgeScore: v?.score ?? null,
      checksPassed: v?.checksPassed ?? null,
      checksTotal: v?.checksTotal ?? null,
      criticScore: p.criticScore ?? null,
      images: p.images,
      costUsd: p.costUsd,
      durationMs: p.durationMs,
      ...(v?.error !== undefined
        ? { error: v.error }
        : p.problem !== undefined && { error: p.problem }),
    };
  }
  return line;
}

/** The paired comparison over prompts where both finals have a judge score. */
function compare(pairs: Array<[Verdict | undefined, Verdict | undefined]>): Comparison {
  const outcomes: PairOutcome[] = [];
  for (const [a, b] of pairs) {
    if (a?.score !== undefined && b?.score !== undefined) {
      outcomes.push(pairOutcome(a.score, b.score));
    }
  }
  const base = {
    prompts: outcomes.length,
    wins: outcomes.filter((o) => o === 1).length,
    ties: outcomes.filter((o) => o === 0.5).length,
    losses: outcomes.filter((o) => o === 0).length,
    resamples: BOOTSTRAP_RESAMPLES,
    seed: BOOTSTRAP_SEED,
  };
  if (outcomes.length === 0) return { winRate: null, ci95: null, ...base };
  return {
    winRate: round(winRate(outcomes), 4),
    ci95: bootstrapCi(outcomes, { resamples: BOOTSTRAP_RESAMPLES, seed: BOOTSTRAP_SEED })
      .map((x) => round(x, 4)) as [number, number],
    ...base,
  };
}

/**
 * Best-of-n's actual cost per prompt over refine's: how close the estimates brought the spends;
 * null unless both cost something.
 */
export function actualSpendRatio(report: EvalReport): number | null {
  const bestOfN = report.strategies["best-of-n"]?.costPerPromptUsd ?? null;
  const refine = report.strategies.refine?.costPerPromptUsd ?? null;
  return bestOfN !== null && refine !== null && bestOfN > 0 && refine > 0 ? bestOfN / refine : null;
}

/** Writes `<root>/eval.json` atomically, never through a link below `root`. */
export function writeEvalJson(root: string, report: EvalReport): Promise<string> {
  const path = `${root}/eval.json`;
  return writeJsonAtomic(path, report, { within: root }).then(() => path);
}

function mean(values: number[], digits: number): number | null {
  return values.length === 0
    ? null
    : round(values.reduce((sum, v) => sum + v, 0) / values.length, digits);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function relative(root: string, dir: string): string {
  return dir.startsWith(`${root}/`) ? dir.slice(root.length + 1) : dir;
}
