/**
 * Runs an eval: each strategy as a normal batch in its own folder (`<out>/<batch>/eval/<name>/`,
 * so resume and the budget work as for any run), then the judge on every final image, then
 * `eval.json` and `eval.html`. `--max-cost` covers the whole eval: each strategy gets what is
 * left after the ones before it, less a reserve for the judge.
 *
 * @module
 */
import { ensureWritableDir, removeStaleTemps } from "../artifacts.ts";
import { Budget } from "../budget.ts";
import { type Config, retryOptionsOf, secretsOf } from "../config.ts";
import type { Brief } from "../critique.ts";
import { InputError, messageOf } from "../errors.ts";
import { lockBatch } from "../lock.ts";
import { setupLogging } from "../logging.ts";
import { checkProviders, createProviders } from "../providers/registry.ts";
import { RetryBudget } from "../retry.ts";
import { batchName, EXIT, loadPrompts, runBatch, type RunIo, selectPrompts } from "../run.ts";
import { escapeControls } from "../terminal_text.ts";
import { createJudge, type JudgeChoice, judgeFinals, type JudgeTask } from "./judge.ts";
import { buildReport, type EvalReport, writeEvalJson } from "./report.ts";
import { readJson, readStrategyResults } from "./results.ts";
import { writeEvalPage } from "./page.ts";
import { planStrategies, type StepPrices, type StrategyName } from "./strategies.ts";
import { formatEvalSummary } from "./summary.ts";

/** What `retake eval` asks for besides the run's settings. */
export interface EvalOptions {
  strategies: StrategyName[];
  judge?: JudgeChoice;
  /** Refine's rounds. @default {the iterations setting, at least 2} */
  rounds?: number;
}

/** What an eval produced. */
export interface EvalResult {
  exitCode: number;
  /** The eval's batch folder, holding `eval.json`, `eval.html` and `eval/`. */
  root: string;
  report?: EvalReport;
}

// Sums of prices drift by far less than this; a budget this close to spent is spent.
const EPSILON = 1e-9;

/** Exit codes from the most to the least serious. */
const SEVERITY: number[] = [EXIT.interrupted, EXIT.stopped, EXIT.budget, EXIT.someFailed, EXIT.ok];

/** Runs the eval end to end. Input errors throw {@linkcode InputError} before any write. */
export async function runEval(
  config: Config,
  promptFiles: string[],
  options: EvalOptions,
  io: RunIo,
): Promise<EvalResult> {
  if (new Set(config.models ?? []).size > 1) {
    throw new InputError(
      "Cannot run an eval with --models: an eval compares strategies on one model; run one eval per model with --model (and --name)",
    );
  }
  const rounds = options.rounds ?? Math.max(2, config.iterations);
  const specs = selectPrompts(await loadPrompts(promptFiles, config), config.only);
  const providers = await createProviders(config);
  const judge = await createJudge(config, options.judge);
  const { generator, critic, refiner } = providers;
  // A provider without an estimate never costs anything (the local ones); one that returns
  // undefined has no known price.
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
  const plan = planStrategies(options.strategies, rounds, prices);
  const root = `${config.out}/${batchName(config, promptFiles)}`;
  const evalDir = `${root}/eval`;
  const say = (text: string) => {
    if (!config.quiet) io.writeErr(`${escapeControls(text)}\n`);
  };

  const signal = io.signal ?? new AbortController().signal;
  await checkProviders(providers, signal);
  await judge.critic.check?.(signal);

  // The judge's share is set aside first, so the strategies cannot leave it nothing.
  const judgeReserve = (judgePrice ?? 0) * specs.length * plan.strategies.length;
  if (config.maxCost !== undefined) {
    const estimate = plan.strategies.reduce(
      (sum, p) => sum + (p.estimatedUsdPerPrompt ?? 0) * specs.length,
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
    const codes: number[] = [];
    let spent = 0;
    let halted = false;
    for (const strategy of plan.strategies) {
      if (signal.aborted) {
        codes.push(EXIT.interrupted);
        halted = true;
        break;
      }
      const left = config.maxCost === undefined ? undefined : config.maxCost - judgeReserve - spent;
      if (left !== undefined && left <= EPSILON && (strategy.estimatedUsdPerPrompt ?? 0) > 0) {
        say(`eval: ${strategy.name} not started: --max-cost is spent`);
        codes.push(EXIT.budget);
        continue;
      }
      say(
        `eval: ${strategy.name}: ${strategy.iterations} image(s) per prompt${
          strategy.mode === "sample" ? ", each from the original prompt" : ""
        } → ${evalDir}/${strategy.name}`,
      );
      const strategyConfig: Config = {
        ...config,
        out: evalDir,
        name: strategy.name,
        iterations: strategy.iterations,
        ...(strategy.varySeed && { varySeed: true }),
        // Independent samples have no plateau: best-of-n draws all N unless a target is met.
        ...(strategy.mode === "sample" && { patience: strategy.iterations }),
        ...(left !== undefined && { maxCost: Math.max(0, left) }),
      };
      const result = await runBatch(strategyConfig, promptFiles, io, {
        specs,
        providers: loopProviders,
        mode: strategy.mode,
      });
      spent += await thisRunCost(`${evalDir}/${strategy.name}`, root, result.outcomes);
      codes.push(result.exitCode);
      if (result.exitCode === EXIT.interrupted || result.exitCode === EXIT.stopped) {
        halted = true;
        break;
      }
    }

    const results = await Promise.all(
      plan.strategies.map((s) => readStrategyResults(s.name, `${evalDir}/${s.name}`, specs, root)),
    );
    // One brief per prompt for every strategy's image: the first strategy's that has one.
    const briefs = new Map<string, Brief>();
    for (const result of results) {
      for (const p of result.prompts) {
        if (p.brief !== undefined && !briefs.has(p.id)) briefs.set(p.id, p.brief);
      }
    }
    const tasks: JudgeTask[] = results.flatMap((result) =>
      result.prompts.map((p, i) => ({
        strategy: result.name,
        spec: specs[i]!,
        image: p.finalImage,
        iteration: p.finalIteration ?? 1,
        brief: briefs.get(p.id),
      }))
    );
    await removeStaleTemps(`${evalDir}/judge`);
    // Each strategy's run closed its own log; the judge's calls log to the eval's.
    const closeLogs = await setupLogging({
      level: config.verbose ? "debug" : "warning",
      writeErr: io.writeErr,
      jsonlPath: `${evalDir}/log.jsonl`,
      secrets: secretsOf(config),
    });
    // After a stop the cache is still read: the report shows what was judged before.
    const stopJudging = halted ? AbortSignal.abort() : signal;
    const concurrency = config.concurrency === "auto" ? 4 : config.concurrency.critique;
    const judgeRun = await judgeFinals(judge, tasks, {
      cacheDir: `${evalDir}/judge`,
      within: root,
      budget: new Budget(
        config.maxCost === undefined ? undefined : Math.max(0, config.maxCost - spent),
      ),
      retry: { ...retryOptionsOf(config), budget: new RetryBudget(config.retry.budget) },
      stop: stopJudging,
      ...(io.abortNow && { abort: io.abortNow }),
      concurrency,
    }).finally(closeLogs);
    if (!halted) {
      if (judgeRun.stoppedBy === "fatal") codes.push(EXIT.stopped);
      else if (judgeRun.stoppedBy === "budget") codes.push(EXIT.budget);
      else if (judgeRun.stoppedBy === "interrupt") codes.push(EXIT.interrupted);
      if (judgeRun.verdicts.some((v) => v.status === "failed")) codes.push(EXIT.someFailed);
    }
    for (const v of judgeRun.verdicts) {
      if (v.status === "failed") say(`judge: ${v.strategy}/${v.id} failed: ${v.error}`);
    }
    if (judgeRun.fatal !== undefined) {
      say(`error: the judge stopped: ${messageOf(judgeRun.fatal)}`);
    }

    const report = buildReport({
      promptFiles,
      offline: config.offline ||
        [generator.name, critic.name, judge.provider].every((n) => n === "local"),
      plans: plan.strategies,
      equalSpend: plan.equalSpend,
      budget: { maxCostUsd: config.maxCost, judgeReserveUsd: judgeReserve, strategiesUsd: spent },
      results,
      judge,
      judgeRun,
      root,
      createdAt: new Date().toISOString(),
    });
    const json = await writeEvalJson(root, report);
    const page = await writeEvalPage(root, report);
    io.writeOut(formatEvalSummary(report, { json, page }));
    const exitCode = SEVERITY.find((code) => codes.includes(code)) ?? EXIT.ok;
    return { exitCode, root, report };
  } finally {
    await lock.release();
  }
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
  const run = await readJson(`${dir}/run.json`, within).catch(() => undefined) as
    | { totals?: { thisRunCostUsd?: unknown } }
    | undefined;
  const cost = run?.totals?.thisRunCostUsd;
  if (typeof cost === "number" && Number.isFinite(cost)) return cost;
  return outcomes.filter((o) => !o.skipped).reduce((sum, o) => sum + o.costUsd, 0);
}
