/**
 * Runs an eval: each strategy as a normal batch in its own folder (`<out>/<batch>/eval/<name>/`,
 * so resume and the budget work as for any run), then the judge on every final image, then
 * `eval.json` and `eval.html`. `--max-cost` covers the whole eval: each strategy gets what is
 * left after the ones before it, less a reserve for the judge.
 *
 * @module
 */
import { ensureWritableDir, removeStaleTemps } from "../output/atomic_write.ts";
import { Budget } from "../async/budget.ts";
import { type Config, retryOptionsOf, secretsOf } from "../config.ts";
import type { Brief } from "../providers/critique.ts";
import { InputError, messageOf } from "../errors.ts";
import { lockBatch } from "../output/lock.ts";
import { setupLogging } from "../util/logging.ts";
import { checkProviders, createProviders, type Providers } from "../providers/registry.ts";
import { RetryBudget } from "../async/retry.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { batchName, EXIT, loadPrompts, runBatch, type RunIo, selectPrompts } from "../batch/run.ts";
import { escapeControls } from "../util/terminal_text.ts";
import {
  createJudge,
  type Judge,
  type JudgeChoice,
  judgeFinals,
  type JudgeRun,
  type JudgeTask,
} from "./judge.ts";
import { buildReport, type EvalReport, writeEvalJson } from "./report.ts";
import { readStrategyResults, type StrategyResults } from "./results.ts";
import { readRunFile } from "../output/run_file.ts";
import { writeEvalPage } from "./page.ts";
import {
  type Plan,
  planStrategies,
  type StepPrices,
  type StrategyName,
  type StrategyPlan,
} from "./strategies.ts";
import { formatEvalSummary } from "./summary.ts";

/** What `retake eval` asks for besides the run's settings. */
export interface EvalOptions {
  /** The strategies to compare, each run as a batch of its own (`--strategies`). */
  strategies: StrategyName[];
  /**
   * Who scores every strategy's final images (`--judge`).
   *
   * @default {the first critic with a key that is not the loop's, else the loop's critic}
   */
  judge?: JudgeChoice;
  /**
   * Refine's rounds.
   *
   * @default {the iterations setting, at least 2}
   */
  rounds?: number;
}

/** What an eval produced. */
export interface EvalResult {
  /** The process exit code: the most serious of the strategies' runs. */
  exitCode: number;
  /** The eval's batch folder, holding `eval.json`, `eval.html` and `eval/`. */
  root: string;
}

/** An {@linkcode EvalResult}, with the report written to `eval.json`. */
export interface ReportedEval extends EvalResult {
  /** The content of `eval.json`. */
  report: EvalReport;
}

// Sums of prices drift by far less than this; a budget this close to spent is spent.
const EPSILON = 1e-9;

/** The providers a strategy's batch runs with: the eval's, its notice said once. */
type BatchProviders = NonNullable<Parameters<typeof runBatch>[3]>["providers"];

/** Exit codes from the most to the least serious. */
const SEVERITY: number[] = [EXIT.interrupted, EXIT.stopped, EXIT.budget, EXIT.someFailed, EXIT.ok];

/** Runs the eval end to end. Input errors throw {@linkcode InputError} before any write. */
export async function runEval(
  config: Config,
  promptFiles: string[],
  options: EvalOptions,
  io: RunIo,
): Promise<ReportedEval> {
  if (new Set(config.models ?? []).size > 1) {
    throw new InputError(
      "Cannot run an eval with --models: an eval compares strategies on one model; run one eval per model with --model (and --name)",
    );
  }
  const rounds = options.rounds ?? Math.max(2, config.iterations);
  const specs = selectPrompts(await loadPrompts(promptFiles, config), config.only);
  const providers = await createProviders(config);
  const judge = await createJudge(config, options.judge);
  const { prices, judgePrice } = _prices(config, providers, judge);
  const plan = planStrategies(options.strategies, rounds, prices);
  const root = `${config.out}/${batchName(config, promptFiles)}`;
  const say = (text: string) => {
    if (!config.quiet) io.writeErr(`${escapeControls(text)}\n`);
  };

  const signal = io.signal ?? new AbortController().signal;
  await checkProviders(providers, signal);
  await judge.critic.check?.(signal);

  // The judge's share is set aside first, so the strategies cannot leave it nothing.
  const judgeReserve = (judgePrice ?? 0) * specs.length * plan.strategies.length;
  _warnOverBudget(config, plan, specs.length, judgeReserve, say);

  const evalDir = `${root}/eval`;
  await ensureWritableDir(root);
  await ensureWritableDir(evalDir);
  const lock = await lockBatch(evalDir);
  try {
    const { notice, ...loopProviders } = providers;
    if (notice) say(notice);
    say(
      `Judge: ${judge.id}${
        judge.independent
          ? ` (the loop's critic is ${judge.loopCritic})`
          : ", which is also the loop's critic"
      }`,
    );
    const evalRun: EvalRun = {
      config,
      promptFiles,
      io,
      say,
      signal,
      specs,
      root,
      evalDir,
      judgeReserve,
    };
    const ran = await _runStrategies(evalRun, plan, loopProviders);
    const results = await Promise.all(
      plan.strategies.map((s) => readStrategyResults(s.name, `${evalDir}/${s.name}`, specs, root)),
    );
    const judgeRun = await _judge(evalRun, judge, results, ran);
    const report = buildReport({
      promptFiles,
      offline: config.offline ||
        [providers.generator.name, providers.critic.name, judge.provider].every((n) =>
          n === "local"
        ),
      plans: plan.strategies,
      equalSpend: plan.equalSpend,
      budget: {
        maxCostUsd: config.maxCost,
        judgeReserveUsd: judgeReserve,
        strategiesUsd: ran.spent,
      },
      results,
      judge,
      judgeRun,
      root,
      createdAt: new Date().toISOString(),
    });
    const json = await writeEvalJson(root, report);
    const page = await writeEvalPage(root, report);
    io.writeOut(formatEvalSummary(report, { json, page }));
    const exitCode = SEVERITY.find((code) => ran.codes.includes(code)) ?? EXIT.ok;
    return { exitCode, root, report };
  } finally {
    await lock.release();
  }
}

/** One eval under way: what its strategies and its judge share. */
interface EvalRun {
  config: Config;
  promptFiles: string[];
  io: RunIo;
  /** Writes a line to stderr, unless `--quiet`. */
  say: (text: string) => void;
  signal: AbortSignal;
  specs: PromptSpec[];
  /** The eval's batch folder. */
  root: string;
  /** `<root>/eval`, holding a folder per strategy and the judge's cache. */
  evalDir: string;
  /** The part of `--max-cost` set aside for the judge, in USD. */
  judgeReserve: number;
}

/** What the strategies' runs did: their exit codes, what they spent, and whether one halted. */
interface StrategyRuns {
  codes: number[];
  spent: number;
  halted: boolean;
}

/**
 * Each step's price and the judge's, for the plan and the budget. A provider without an
 * estimate never costs anything (the local ones); one that returns undefined has no known
 * price, which `--max-cost` cannot keep to.
 */
function _prices(
  config: Config,
  providers: Providers,
  judge: Judge,
): { prices: StepPrices; judgePrice: number | undefined } {
  const { generator, critic, refiner } = providers;
  const prices: StepPrices = {
    generate: generator.estimateCostUsd
      ? generator.estimateCostUsd({ model: providers.model, ...config.size })
      : 0,
    critique: critic.estimateCostUsd ? critic.estimateCostUsd() : 0,
    refine: refiner.estimateCostUsd ? refiner.estimateCostUsd() : 0,
  };
  const judgePrice = judge.critic.estimateCostUsd ? judge.critic.estimateCostUsd() : 0;
  if (config.maxCost !== undefined) {
    const unknown = [
      prices.generate === undefined && `${generator.name} model '${providers.model}'`,
      prices.critique === undefined && `${critic.name} critic`,
      prices.refine === undefined && `${refiner.name} refiner`,
      judgePrice === undefined && `judge ${judge.id}`,
    ].filter((x) => typeof x === "string");
    if (unknown.length > 0) {
      throw new InputError(
        `Cannot keep to --max-cost as the price of ${
          unknown.join(" and ")
        } is unknown: add it to the prices in the config file (see README, Costs), or run without --max-cost`,
      );
    }
  }
  return { prices, judgePrice };
}

/** Says so when the eval's estimate is over `--max-cost`: it then stops where the money ends. */
function _warnOverBudget(
  config: Config,
  plan: Plan,
  prompts: number,
  judgeReserve: number,
  say: (text: string) => void,
): void {
  if (config.maxCost === undefined) return;
  const estimate = plan.strategies.reduce(
    (sum, p) => sum + (p.estimatedUsdPerPrompt ?? 0) * prompts,
    judgeReserve,
  );
  if (estimate > config.maxCost + EPSILON) {
    say(
      `The eval is estimated at up to $${estimate.toFixed(4)} ($${
        judgeReserve.toFixed(4)
      } of it the judge), more than --max-cost $${config.maxCost}: it stops where the budget runs out; run again with more to resume.`,
    );
  }
}

/**
 * Runs each strategy as a batch of its own, one after another, each with what is left of the
 * budget; stops at an interrupt or a fatal stop.
 */
async function _runStrategies(
  evalRun: EvalRun,
  plan: Plan,
  providers: BatchProviders,
): Promise<StrategyRuns> {
  const { config, say, evalDir, judgeReserve } = evalRun;
  const ran: StrategyRuns = { codes: [], spent: 0, halted: false };
  for (const strategy of plan.strategies) {
    if (evalRun.signal.aborted) {
      ran.codes.push(EXIT.interrupted);
      ran.halted = true;
      break;
    }
    const left = config.maxCost === undefined
      ? undefined
      : config.maxCost - judgeReserve - ran.spent;
    if (left !== undefined && left <= EPSILON && (strategy.estimatedUsdPerPrompt ?? 0) > 0) {
      say(`eval: ${strategy.name} not started: --max-cost is spent`);
      ran.codes.push(EXIT.budget);
      continue;
    }
    say(
      `eval: ${strategy.name}: ${strategy.iterations} image(s) per prompt${
        strategy.mode === "sample" ? ", each from the original prompt" : ""
      } → ${evalDir}/${strategy.name}`,
    );
    const result = await runBatch(
      _strategyConfig(config, evalDir, strategy, left),
      evalRun.promptFiles,
      evalRun.io,
      {
        specs: evalRun.specs,
        providers,
        mode: strategy.mode,
      },
    );
    ran.spent += await thisRunCost(`${evalDir}/${strategy.name}`, evalRun.root, result.outcomes);
    ran.codes.push(result.exitCode);
    if (result.exitCode === EXIT.interrupted || result.exitCode === EXIT.stopped) {
      ran.halted = true;
      break;
    }
  }
  return ran;
}

/** The settings `strategy` runs with: its folder, rounds and seeds, and what is left to spend. */
function _strategyConfig(
  config: Config,
  evalDir: string,
  strategy: StrategyPlan,
  left: number | undefined,
): Config {
  return {
    ...config,
    out: evalDir,
    name: strategy.name,
    iterations: strategy.iterations,
    ...(strategy.varySeed && { varySeed: true }),
    // Independent samples have no plateau: best-of-n draws all N unless a target is met.
    ...(strategy.mode === "sample" && { patience: strategy.iterations }),
    ...(left !== undefined && { maxCost: Math.max(0, left) }),
  };
}

/**
 * Judges every strategy's final image of every prompt, with what the strategies left of the
 * budget, and adds the judge's outcome to `ran.codes`. After a halt only the judge's cache is
 * read, so the report shows what was judged before.
 */
async function _judge(
  evalRun: EvalRun,
  judge: Judge,
  results: StrategyResults[],
  ran: StrategyRuns,
): Promise<JudgeRun> {
  const { config, io, evalDir, say } = evalRun;
  await removeStaleTemps(`${evalDir}/judge`);
  // Each strategy's run closed its own log; the judge's calls log to the eval's.
  const closeLogs = await setupLogging({
    level: config.verbose ? "debug" : "warning",
    writeErr: io.writeErr,
    jsonlPath: `${evalDir}/log.jsonl`,
    secrets: secretsOf(config),
  });
  const judgeRun = await judgeFinals(judge, _judgeTasks(results, evalRun.specs), {
    cacheDir: `${evalDir}/judge`,
    within: evalRun.root,
    budget: new Budget(
      config.maxCost === undefined ? undefined : Math.max(0, config.maxCost - ran.spent),
    ),
    retry: { ...retryOptionsOf(config), budget: new RetryBudget(config.retry.budget) },
    stop: ran.halted ? AbortSignal.abort() : evalRun.signal,
    ...(io.abortNow && { abort: io.abortNow }),
    concurrency: config.concurrency === "auto" ? 4 : config.concurrency.critique,
  }).finally(closeLogs);
  if (!ran.halted) {
    if (judgeRun.stoppedBy === "fatal") ran.codes.push(EXIT.stopped);
    else if (judgeRun.stoppedBy === "budget") ran.codes.push(EXIT.budget);
    else if (judgeRun.stoppedBy === "interrupt") ran.codes.push(EXIT.interrupted);
    if (judgeRun.verdicts.some((v) => v.status === "failed")) ran.codes.push(EXIT.someFailed);
  }
  for (const v of judgeRun.verdicts) {
    if (v.status === "failed") say(`judge: ${v.strategy}/${v.id} failed: ${v.error}`);
  }
  if (judgeRun.fatal !== undefined) {
    say(`error: the judge stopped: ${messageOf(judgeRun.fatal)}`);
  }
  return judgeRun;
}

/**
 * One judging per strategy and prompt, of its final image. One brief per prompt for every
 * strategy's image: the first strategy's that has one.
 */
function _judgeTasks(results: StrategyResults[], specs: PromptSpec[]): JudgeTask[] {
  const briefs = new Map<string, Brief>();
  for (const result of results) {
    for (const p of result.prompts) {
      if (p.brief !== undefined && !briefs.has(p.id)) briefs.set(p.id, p.brief);
    }
  }
  return results.flatMap((result) =>
    result.prompts.map((p, i) => ({
      strategy: result.name,
      spec: specs[i]!,
      image: p.finalImage,
      iteration: p.finalIteration ?? 1,
      brief: briefs.get(p.id),
    }))
  );
}

/**
 * What a strategy's run spent: `run.json`'s `thisRunCostUsd`; when that cannot be read, every
 * outcome's cost that this run worked on, which is never less.
 */
async function thisRunCost(
  dir: string,
  within: string,
  outcomes: Array<{ costUsd: number; skipped: boolean }>,
): Promise<number> {
  const cost: unknown = (await readRunFile(dir, within)).value?.totals?.thisRunCostUsd;
  if (typeof cost === "number" && Number.isFinite(cost)) return cost;
  return outcomes.filter((o) => !o.skipped).reduce((sum, o) => sum + o.costUsd, 0);
}
