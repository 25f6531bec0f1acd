/**
 * `deno task bench [--quick] [--out FILE]`: proves retake runs at the speed the providers allow,
 * in flat memory, at the lowest cost — against the stand-in servers with set latencies and
 * quotas, side by side in one run. Prints one table of ratios (no absolute time is a claim),
 * saves it as JSON, and exits 1 when any ratio misses its target.
 *
 * Time is scaled down about tenfold so a run takes minutes: fal takes 300 ms ± 60 ms per image
 * with a concurrency quota, Gemini 200 ms per call with a requests-per-window quota whose window
 * is 6 s instead of a minute, and fal is polled every 50 ms instead of 500 ms. `--only
 * throughput,rate,cost,memory,overhead,money,fal,studio,prompts,batch` runs some parts.
 *
 * @module
 */
import sharp from "sharp";
import { createFalGenerator } from "../src/providers/fal/fal.ts";
import { createGeminiCritic } from "../src/providers/gemini/gemini.ts";
import type { PromptSpec } from "../src/prompts/mod.ts";
import { makeBatch } from "../src/studio/_test_batch.ts";
import { startStudio } from "../src/studio/server.ts";
import { runBaseline } from "./bench/baseline.ts";
import { benchPrompts, writeMemoryBatch } from "./bench/child.ts";
import { promptFile } from "./bench/prompt_file.ts";
import { cliCommand, ROOT, RUN_ENV, runCli } from "./cli.ts";
import { type FalStandIn, startFalStandIn } from "./fal_standin.ts";
import { type GeminiStandIn, startGeminiStandIn } from "./gemini_standin.ts";
import { startGeminiBatchStandIn } from "./gemini_batch_standin.ts";

const FAL_KEY = "bench-fal-key";
const GEMINI_KEY = "bench-gemini-key";

/** The knobs of one bench run. */
interface Settings {
  /** Prompts in each throughput run. */
  prompts: number;
  /** Prompts the sequential baseline runs (its rate does not depend on the count). */
  baselinePrompts: number;
  /** fal's concurrency quota C. */
  falConcurrency: number;
  /**
   * `--concurrency` of the fixed run. At small quotas one request over the quota keeps fal's
   * slots busy while retake polls, fetches and saves the previous image (fal queues the extra).
   */
  fixedConcurrency: number;
  falLatencyMs: number;
  falJitterMs: number;
  geminiLatencyMs: number;
  /** Gemini requests allowed per quota window. */
  geminiQuota: number;
  quotaWindowMs: number;
  pollIntervalMs: number;
  /**
   * Image size. Small, because the stand-ins draw and decode images on the same two cores as
   * retake: at 512×384 the run is CPU-bound (about 1.7 cores busy) and the throughput ratio
   * measures the machine, not the scheduling (0.79–0.95 across five runs, against 0.99 here).
   */
  width: number;
  height: number;
  /** Prompts in the large throughput runs (`--only large`); none in the quick bench. */
  largePrompts: number;
  /** Prompts in the run where Gemini's rate quota binds instead of fal's concurrency. */
  ratePrompts: number;
  /** Gemini requests per window in that run. */
  rateGeminiQuota: number;
  memorySmall: number;
  memoryLarge: number;
  overheadPrompts: number;
  /** Generations in each run of the fal status comparison. */
  statusGenerations: number;
  /** Prompts of the Gemini-only run compared with and without `--batch-api` (`-n 3`). */
  batchPrompts: number;
}

const FULL: Settings = {
  prompts: 1000,
  baselinePrompts: 20,
  falConcurrency: 8,
  fixedConcurrency: 8,
  falLatencyMs: 300,
  falJitterMs: 60,
  geminiLatencyMs: 200,
  // 4 calls a prompt (the brief, two critiques, a refinement) stay at 2/3 of the quota, as 3 did
  // at 360: fal binds in the throughput runs, and the scheduling is what they measure.
  geminiQuota: 480,
  quotaWindowMs: 6000,
  pollIntervalMs: 50,
  width: 256,
  height: 192,
  ratePrompts: 400,
  rateGeminiQuota: 120,
  largePrompts: 10_000,
  memorySmall: 100,
  memoryLarge: 10_000,
  overheadPrompts: 10_000,
  statusGenerations: 64,
  batchPrompts: 200,
};

/**
 * Small enough for CI. A batch's last prompt must still run its whole chain after the
 * others, which costs a fixed ~1 s, so the quick runs keep prompts ÷ quota as large as the
 * full ones by scaling time down threefold more, instead of cutting prompts alone.
 */
const QUICK: Settings = {
  ...FULL,
  prompts: 400,
  largePrompts: 0,
  baselinePrompts: 4,
  ratePrompts: 200,
  falConcurrency: 2,
  fixedConcurrency: 3,
  falLatencyMs: 100,
  falJitterMs: 20,
  geminiLatencyMs: 60,
  pollIntervalMs: 20,
  memoryLarge: 2000,
  overheadPrompts: 1000,
  statusGenerations: 24,
  batchPrompts: 40,
};

/** One line of the table. */
interface Row {
  metric: string;
  value: number;
  /** `>= x` or `<= x`; absent when the row only informs. */
  target?: { op: ">=" | "<="; value: number };
  /**
   * Why a miss of the target does not fail the bench here (a ratio this machine decides more
   * than retake does); the table says so beside the row's result.
   */
  informational?: string;
  unit: string;
  detail: string;
}

function passes(row: Row): boolean {
  if (!row.target) return true;
  return row.target.op === ">=" ? row.value >= row.target.value : row.value <= row.target.value;
}

function log(text: string): void {
  // deno-lint-ignore no-console
  console.error(`bench: ${text}`);
}

/** Gemini calls per prompt of two rounds: the brief, two critiques and a refinement. */
const GEMINI_CALLS = 4;

/**
 * The fastest a batch can finish: all work at the binding quota, plus what must follow it.
 * `falLatencyMs` is the mean latency fal's stand-in really served (its timers fire late when the
 * shared cores are busy), by default the set one.
 */
function bound(
  s: Settings,
  n: number,
  falLatencyMs = s.falLatencyMs,
): { promptsPerSecond: number; steady: number } {
  const falPerSecond = s.falConcurrency / (falLatencyMs / 1000);
  const geminiPerSecond = s.geminiQuota / (s.quotaWindowMs / 1000);
  const steady = Math.min(falPerSecond / 2, geminiPerSecond / GEMINI_CALLS);
  // The last image still needs its critique; the first critique needs an image.
  const seconds = Math.max(
    (2 * n) / falPerSecond + s.geminiLatencyMs / 1000,
    (GEMINI_CALLS * n) / geminiPerSecond + falLatencyMs / 1000,
  );
  return { promptsPerSecond: n / seconds, steady };
}

interface Servers {
  fal: FalStandIn;
  gemini: GeminiStandIn;
  env: Record<string, string>;
  paidCalls(): number;
  overloads(): number;
  close(): Promise<void>;
}

async function servers(s: Settings): Promise<Servers> {
  const fal = await startFalStandIn({
    key: FAL_KEY,
    latencyMs: s.falLatencyMs,
    jitterMs: s.falJitterMs,
    concurrency: s.falConcurrency,
    // The stand-ins share the cores with the retake they measure: fal's draws a few images and
    // serves them again, so the cores go to the client, as with the real, remote service.
    imageVariants: 16,
  });
  const gemini = await startGeminiStandIn({
    key: GEMINI_KEY,
    latencyMs: s.geminiLatencyMs,
    rpm: s.geminiQuota,
    quotaWindowMs: s.quotaWindowMs,
  });
  return {
    fal,
    gemini,
    env: {
      FAL_KEY,
      GEMINI_API_KEY: GEMINI_KEY,
      FAL_BASE_URL: fal.url,
      GEMINI_BASE_URL: gemini.url,
    },
    paidCalls: () => fal.calls("submit").length + gemini.requests.length,
    overloads: () =>
      fal.calls("submit").filter((r) => r.status === 429).length +
      gemini.requests.filter((r) => r.status === 429).length,
    close: async () => {
      await fal.close();
      await gemini.close();
    },
  };
}

interface BatchRun {
  code: number;
  completed: number;
  durationMs: number;
  paidCalls: number;
  overloads: number;
  /** The adaptive limit each provider ended at, from the run's log. */
  limits: Record<string, number>;
  /** The pace each provider ended at, calls/s, where it was paced (from the run's log). */
  rates: Record<string, number>;
  /** Mean time a generation spent `IN_PROGRESS` at fal's stand-in during the run. */
  falLatencyMs: number;
  stderr: string;
}

/** Runs the CLI on the batch in `cwd` and reads its own timing from `run.json`. */
async function cliBatch(
  cwd: string,
  name: string,
  args: string[],
  srv: Servers,
): Promise<BatchRun> {
  const paidBefore = srv.paidCalls();
  const overloadsBefore = srv.overloads();
  const falBefore = srv.fal.stats();
  const result = await runCli(["--out", "out", "--name", name, "--quiet", ...args, "batch.json"], {
    cwd,
    env: srv.env,
  });
  const run = JSON.parse(await Deno.readTextFile(`${cwd}/out/${name}/run.json`));
  const limits: Record<string, number> = {};
  const rates: Record<string, number> = {};
  for (const line of (await Deno.readTextFile(`${cwd}/out/${name}/log.jsonl`)).split("\n")) {
    if (!line.includes("Adaptive concurrency")) continue;
    const entry = JSON.parse(line);
    const props = entry.properties ?? entry;
    limits[String(props.provider)] = Number(props.limit);
    if (props.ratePerSecond !== undefined) rates[String(props.provider)] = props.ratePerSecond;
  }
  const falAfter = srv.fal.stats();
  const generations = falAfter.completed - falBefore.completed;
  return {
    code: result.code,
    completed: run.totals.completed,
    falLatencyMs: generations > 0 ? (falAfter.busyMs - falBefore.busyMs) / generations : 0,
    durationMs: run.durationMs,
    paidCalls: srv.paidCalls() - paidBefore,
    overloads: srv.overloads() - overloadsBefore,
    limits,
    rates,
    stderr: result.stderr,
  };
}

/**
 * Time from the run's start (`run.json`) until its first prompt finished (the earliest
 * `finishedAt` in a prompt's `metadata.json`), in ms.
 */
async function firstFinishedMs(batchDir: string): Promise<number> {
  const run = JSON.parse(await Deno.readTextFile(`${batchDir}/run.json`));
  let first = Infinity;
  for await (const entry of Deno.readDir(batchDir)) {
    if (!entry.isDirectory) continue;
    const meta = await Deno.readTextFile(`${batchDir}/${entry.name}/metadata.json`).catch(() => "");
    const finishedAt = meta ? JSON.parse(meta).finishedAt : undefined;
    if (finishedAt) first = Math.min(first, Date.parse(finishedAt));
  }
  return first - Date.parse(run.startedAt);
}

/** Writes `s.prompts` prompts to `dir/batch.json` and the run's settings to its config file. */
async function writeBatch(dir: string, s: Settings, tag = ""): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const prompts = benchPrompts(s.prompts, tag).map(({ extra: _extra, ...rest }) => rest);
  await Deno.writeTextFile(`${dir}/batch.json`, JSON.stringify({ prompts }));
  await Deno.writeTextFile(
    `${dir}/retake.config.json`,
    JSON.stringify({
      size: `${s.width}x${s.height}`,
      fal: { pollIntervalMs: s.pollIntervalMs },
      // A 1,000-prompt batch near its quota retries more than the default budget of 200.
      retry: { budget: 100_000 },
    }),
  );
  return dir;
}

/**
 * The throughput rows: told the quota and adaptive, then (unless `large`, where only those two
 * are measured at `s.prompts`) beside a CPU hog, the first result, a resume and the baseline.
 */
async function throughput(
  s: Settings,
  rows: Row[],
  work: string,
  large = false,
): Promise<void> {
  const cwd = await writeBatch(`${work}/${large ? "large" : "batches"}`, s, large ? " large" : "");
  // The bound uses the latency fal's stand-in really served in that run; the set one is shown too.
  const measure = (run: BatchRun) => {
    const rate = run.completed / (run.durationMs / 1000);
    const served = bound(s, s.prompts, run.falLatencyMs);
    const nominal = bound(s, s.prompts);
    return {
      rate,
      ratio: rate / served.promptsPerSecond,
      boundText: `bound ${
        served.promptsPerSecond.toFixed(2)
      } prompts/s (fal C=${s.falConcurrency} ÷ ${
        run.falLatencyMs.toFixed(1)
      } ms served (${s.falLatencyMs}±${s.falJitterMs} set) ÷ 2 images; Gemini ${s.geminiQuota}/${
        s.quotaWindowMs / 1000
      } s ÷ ${GEMINI_CALLS} calls); ${
        (rate / nominal.promptsPerSecond).toFixed(3)
      }× the bound at the set latency`,
    };
  };

  const fixedMetric =
    `Throughput ÷ bound, --concurrency ${s.fixedConcurrency}, fal quota ${s.falConcurrency} (${s.prompts} prompts)`;
  const fixed = await retried(fixedMetric, async (attempt) => {
    log(`fixed concurrency ${s.fixedConcurrency}, ${s.prompts} prompts…`);
    const srv = await servers(s);
    const name = attempt === 1 ? "fixed" : `fixed-${attempt}`;
    const run = await cliBatch(cwd, name, ["--concurrency", String(s.fixedConcurrency)], srv)
      .finally(() => srv.close());
    check(run, s.prompts, "fixed");
    const { rate, ratio, boundText } = measure(run);
    return {
      run,
      row: {
        metric: fixedMetric,
        value: ratio,
        target: { op: ">=", value: 0.97 },
        unit: "×",
        detail: `${rate.toFixed(2)} prompts/s; ${boundText}`,
      } satisfies Row,
    };
  });
  rows.push(fixed.row);
  const fixedRate = measure(fixed.run).rate;

  const limitsText = (run: BatchRun) =>
    Object.entries(run.limits).map(([p, l]) => `${p} ${l}`).join(", ") || "?";
  const adaptiveRow = (metric: string, run: BatchRun): Row => {
    const { rate, ratio, boundText } = measure(run);
    return {
      metric,
      value: ratio,
      // Issue 21: 0.93 in the full bench; the quick one's smaller quotas leave less slack.
      target: { op: ">=", value: s === QUICK ? 0.9 : 0.93 },
      unit: "×",
      detail: `${rate.toFixed(2)} prompts/s; limits found: ${
        limitsText(run)
      } (fal quota ${s.falConcurrency}); ${boundText}`,
    };
  };

  const autoMetric = `Throughput ÷ bound, adaptive (${s.prompts} prompts)`;
  const auto = await retried(autoMetric, async (attempt) => {
    log(`adaptive concurrency (quota unknown to retake), ${s.prompts} prompts…`);
    const srv = await servers(s);
    const name = attempt === 1 ? "auto" : `auto-${attempt}`;
    const run = await cliBatch(cwd, name, [], srv).finally(() => srv.close());
    check(run, s.prompts, "auto");
    return { run, name, row: adaptiveRow(autoMetric, run) };
  });
  const autoRate = measure(auto.run).rate;
  rows.push(auto.row);
  rows.push(refusedRow(`Calls answered 429, adaptive (${s.prompts} prompts)`, auto.run));
  if (large) return;
  // Read before the resume below rewrites run.json's start time.
  const firstMs = await firstFinishedMs(`${cwd}/out/${auto.name}`);

  // The machine doing something else: a busy loop on every core beside the run. The stand-ins
  // share the cores too, so fal's served latency (the bound's) rises with them; what must not
  // happen is that retake reads its own slow timers as an overloaded service.
  const cores = navigator.hardwareConcurrency;
  const hogged = `CPU hog on ${cores === 2 ? "both" : `all ${cores}`} cores`;
  const hogMetric = `Throughput ÷ bound, adaptive, ${hogged} (${s.prompts} prompts)`;
  const hog = await retried(hogMetric, async (attempt) => {
    log(`adaptive concurrency with ${cores} busy loops beside it, ${s.prompts} prompts…`);
    const srv = await servers(s);
    const hogs = cpuHogs(cores);
    const run = await cliBatch(cwd, `hog-${attempt}`, [], srv).finally(async () => {
      await hogs.stop();
      await srv.close();
    });
    check(run, s.prompts, "CPU hog");
    const row = adaptiveRow(hogMetric, run);
    return {
      run,
      row: {
        ...row,
        // Issue 21: 0.90× beside the hog.
        target: { op: ">=", value: 0.9 },
        detail: `${row.detail}; ${cores} busy loops (\`deno eval\`) ran beside it`,
        // What the hog leaves of the machine decides this ratio as much as the limiter does
        // (on a shared machine a run told the quota misses alike): CI gates on the limits below.
        ...(s === QUICK && {
          informational: "what the hog leaves of the machine decides it as much as retake does",
        }),
      },
    };
  }, s === QUICK ? 1 : 2);
  rows.push(hog.row);
  // What the limiter decides, which the machine's speed must not change: a slow machine needs
  // as many calls at once as a fast one or more, so no limit may fall far below the quiet run's.
  // Reading whole calls' time, the limiter took a loaded machine for an overloaded service
  // (issue 21; here Gemini's limit was 4 with the hog, 16 without).
  const lowest = Object.entries(auto.run.limits).map(([provider, quiet]) => ({
    provider,
    ratio: (hog.run.limits[provider] ?? 0) / quiet,
  })).sort((a, b) => a.ratio - b.ratio)[0];
  rows.push({
    metric: `Lowest limit found with a ${hogged} ÷ without, adaptive`,
    value: lowest?.ratio ?? 0,
    target: { op: ">=", value: 0.5 },
    unit: "×",
    detail: `${lowest?.provider ?? "?"}; with the hog: ${limitsText(hog.run)}; without: ${
      limitsText(auto.run)
    }`,
  });

  log("one prompt alone, for its own latency…");
  const oneCwd = await writeBatch(`${work}/one`, { ...s, prompts: 1 }, " one");
  const oneSrv = await servers(s);
  const one = await cliBatch(oneCwd, "one", [], oneSrv);
  await oneSrv.close();
  check(one, 1, "one");
  const oneMs = await firstFinishedMs(`${oneCwd}/out/one`);
  rows.push({
    metric: `Time to first finished prompt ÷ one prompt's latency, adaptive (${s.prompts} prompts)`,
    value: firstMs / oneMs,
    target: { op: "<=", value: 2 },
    unit: "×",
    detail: `first of ${s.prompts} finished ${
      (firstMs / 1000).toFixed(2)
    } s after the run started; one prompt alone took ${(oneMs / 1000).toFixed(2)} s`,
  });

  log("resume: the finished adaptive batch again…");
  let srv = await servers(s);
  const again = await cliBatch(cwd, auto.name, [], srv);
  await srv.close();
  rows.push({
    metric: "Paid calls repeated on re-running a finished batch",
    value: again.paidCalls,
    target: { op: "<=", value: 0 },
    unit: "calls",
    detail: `exit code ${again.code}; ${auto.run.paidCalls} paid calls in the first run`,
  });

  log(`sequential baseline, ${s.baselinePrompts} prompts…`);
  srv = await servers(s);
  const baselineDir = `${work}/baseline`;
  await Deno.mkdir(baselineDir, { recursive: true });
  const baselineRate = await runBaseline(benchPrompts(s.baselinePrompts, " base"), {
    falUrl: srv.fal.url,
    falKey: FAL_KEY,
    geminiUrl: srv.gemini.url,
    geminiKey: GEMINI_KEY,
    width: s.width,
    height: s.height,
    pollIntervalMs: s.pollIntervalMs,
    dir: baselineDir,
  });
  await srv.close();
  rows.push({
    metric: "Speed-up over a sequential loop, adaptive",
    value: autoRate / baselineRate,
    unit: "×",
    detail: `loop ${
      baselineRate.toFixed(2)
    } prompts/s (same SDKs, each call awaited); --concurrency ${s.fixedConcurrency}: ${
      (fixedRate / baselineRate).toFixed(1)
    }×`,
  });
}

/**
 * Adaptive concurrency against a rate quota: Gemini allows fewer calls per window than fal's
 * concurrency could feed, so what retake must find is Gemini's rate, from its 429s.
 */
async function rateBound(s: Settings, rows: Row[], work: string): Promise<void> {
  const r: Settings = { ...s, prompts: s.ratePrompts, geminiQuota: s.rateGeminiQuota };
  const cwd = await writeBatch(`${work}/rate`, r, " rate");
  log(
    `adaptive concurrency, Gemini's rate quota binds (${r.rateGeminiQuota} per ${
      r.quotaWindowMs / 1000
    } s), ${r.prompts} prompts…`,
  );
  const srv = await servers(r);
  const run = await cliBatch(cwd, "rate", [], srv);
  await srv.close();
  check(run, r.prompts, "rate-bound");
  const rate = run.completed / (run.durationMs / 1000);
  const b = bound(r, r.prompts, run.falLatencyMs);
  // A client told the window could send a whole window's quota at once, every window.
  const windows = Math.floor((3 * r.prompts - 1) / r.geminiQuota);
  const knownWindow = r.prompts /
    ((windows * r.quotaWindowMs + r.falLatencyMs + r.geminiLatencyMs) / 1000);
  rows.push({
    metric: `Throughput ÷ bound, adaptive, Gemini's rate quota binds (${r.prompts} prompts)`,
    value: rate / b.promptsPerSecond,
    target: { op: ">=", value: 0.9 },
    unit: "×",
    detail: `${rate.toFixed(2)} prompts/s; bound ${
      b.promptsPerSecond.toFixed(2)
    } prompts/s (Gemini ${r.geminiQuota}/${
      r.quotaWindowMs / 1000
    } s ÷ ${GEMINI_CALLS} calls; fal C=${r.falConcurrency} is not binding); paced at ${
      run.rates.gemini ?? "?"
    } calls/s; ${
      (rate / knownWindow).toFixed(3)
    }× what a client told the window could reach by sending a whole window's quota at once`,
  });
  rows.push(refusedRow("Calls answered 429, adaptive, Gemini's rate quota binds", run));
}

/**
 * A row whose ratio a loaded machine can push below its target (the run shares its cores with
 * the stand-ins and whatever else runs): measured again when it misses, up to `tries` times in
 * all, and the last reading stands, with the earlier ones in its detail.
 */
async function retried<T extends { row: Row }>(
  metric: string,
  measure: (attempt: number) => Promise<T>,
  tries = 2,
): Promise<T> {
  const missed: string[] = [];
  for (let attempt = 1;; attempt++) {
    const result = await measure(attempt);
    const row = result.row;
    if (passes(row) || attempt >= tries) {
      if (missed.length === 0) return result;
      return {
        ...result,
        row: {
          ...row,
          detail:
            `${row.detail}; try ${attempt} of ${tries} (a miss on a loaded machine is measured again): the first read ${
              missed.join(", then ")
            }`,
        },
      };
    }
    missed.push(format(row.value, row.unit));
    log(`${metric}: ${format(row.value, row.unit)} missed its target; measuring again`);
  }
}

/**
 * One part's rows; a part other than throughput (which retries run by run) whose row missed is
 * measured once more in a fresh folder, and its rows say so: the cores are shared with the
 * stand-ins and whatever else runs, so one slow moment is not yet a miss.
 */
async function measuredPart(
  name: string,
  part: (rows: Row[], work: string) => Promise<unknown>,
  work: string,
): Promise<Row[]> {
  const first: Row[] = [];
  await Deno.mkdir(`${work}/${name}`, { recursive: true });
  await part(first, `${work}/${name}`);
  const missed = first.filter((row) => !passes(row));
  if (missed.length === 0 || name === "throughput" || name === "large") return first;
  log(`${missed.map((r) => r.metric).join("; ")} missed; measuring ${name} again`);
  const again: Row[] = [];
  await Deno.mkdir(`${work}/${name}-again`, { recursive: true });
  await part(again, `${work}/${name}-again`);
  const before = new Map(first.map((row) => [row.metric, row]));
  return again.map((row) => {
    const earlier = before.get(row.metric);
    if (!earlier || passes(earlier)) return row;
    return {
      ...row,
      detail:
        `${row.detail}; measured twice (a miss on a loaded machine is measured again): the first read ${
          format(earlier.value, earlier.unit)
        }`,
    };
  });
}

/**
 * `n` busy loops in child processes, for a machine that is doing something else; `stop` ends
 * them. Each ends by itself after `maxMs`, should the bench die without stopping it.
 */
function cpuHogs(n: number, maxMs = 15 * 60_000): { stop(): Promise<void> } {
  const children = Array.from({ length: n }, () =>
    new Deno.Command(Deno.execPath(), {
      args: ["eval", `const end = Date.now() + ${maxMs}; while (Date.now() < end);`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn());
  return {
    stop: async () => {
      for (const child of children) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already ended.
        }
      }
      await Promise.all(children.map((child) => child.status));
    },
  };
}

/** The share of a run's paid calls the stand-ins refused as over quota. */
function refusedRow(metric: string, run: BatchRun): Row {
  return {
    metric,
    value: run.overloads / run.paidCalls,
    target: { op: "<=", value: 0.05 },
    unit: "share",
    detail: `${run.overloads} of ${run.paidCalls} paid calls`,
  };
}

function check(run: BatchRun, prompts: number, name: string): void {
  if (run.code !== 0 || run.completed !== prompts) {
    throw new Error(
      `Cannot measure the ${name} run as it completed ${run.completed} of ${prompts} prompts (exit code ${run.code}): ${
        run.stderr.slice(-2000)
      }`,
    );
  }
}

/** Image tokens per critique: retake's downscaled copy vs the original, per model generation. */
async function critiqueCost(rows: Row[], work: string): Promise<void> {
  log("critique cost…");
  const width = 1024;
  const height = 768;
  const pixels = new Uint8Array(width * height * 3).map((_, i) => (i * 31 + (i >> 11)) & 255);
  const path = `${work}/critique.png`;
  await sharp(pixels, { raw: { width, height, channels: 3 } }).png().toFile(path);
  const original = await Deno.readFile(path);
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  const { GoogleGenAI } = await import("@google/genai/web");
  const ai = new GoogleGenAI({
    apiKey: GEMINI_KEY,
    vertexai: false,
    apiVersion: "v1beta",
    httpOptions: { baseUrl: gemini.url },
  });
  const spec: PromptSpec = { id: "c", prompt: "a harbour at dawn", extra: {} };
  try {
    for (
      const [model, target] of [["gemini-3.8-flash", 4], ["gemini-2.5-flash", undefined]] as const
    ) {
      const critic = createGeminiCritic({ apiKey: GEMINI_KEY, baseUrl: gemini.url, model });
      await critic.critique({
        imagePath: path,
        format: "png",
        prompt: spec.prompt,
        spec,
        iteration: 1,
        signal: new AbortController().signal,
      });
      const ours = gemini.requests.at(-1)!;
      await ai.models.generateContent({
        model,
        contents: [{
          role: "user",
          parts: [
            { inlineData: { mimeType: "image/png", data: btoa(_binary(original)) } },
            { text: `Critique this image. Prompt: ${spec.prompt}` },
          ],
        }],
      });
      const theirs = gemini.requests.at(-1)!;
      rows.push({
        metric: `Critique image tokens, original ÷ retake (${model}, ${width}×${height})`,
        value: theirs.imageTokens / ours.imageTokens,
        ...(target !== undefined && { target: { op: ">=" as const, value: target } }),
        unit: "×",
        detail: `${theirs.imageTokens} tokens for the original ${
          model.startsWith("gemini-3") ? "at the default media resolution" : "(768 px tiles)"
        } vs ${ours.imageTokens} for retake's ${ours.image?.width}×${ours.image?.height} JPEG${
          model.startsWith("gemini-3") ? " at LOW" : ""
        }`,
      });
    }
  } finally {
    await gemini.close();
  }
}

function _binary(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    out += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return out;
}

/** Runs `tests/bench/child.ts` in a fresh process; returns its JSON line. */
async function child(args: string[]): Promise<Record<string, number>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      // The run task's V8 flags, so the numbers are the ones users get.
      "--v8-flags=--expose-gc,--optimize-for-size",
      `${ROOT}tests/bench/child.ts`,
      ...args,
    ],
    // The run task's environment (its malloc arena cap) for the same reason.
    env: RUN_ENV,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  if (output.code !== 0) {
    throw new Error(
      `Cannot measure ${args[0]}: the child exited with ${output.code}: ${
        new TextDecoder().decode(output.stderr).slice(-2000)
      }`,
    );
  }
  return JSON.parse(text.split("\n").at(-1)!);
}

async function memory(s: Settings, rows: Row[], work: string): Promise<void> {
  const peaks: Record<number, Record<string, number>> = {};
  for (const n of [s.memorySmall, s.memoryLarge]) {
    log(`memory, ${n} prompts (instant providers, folder output)…`);
    await writeMemoryBatch(n, `${work}/memory-${n}`);
    peaks[n] = await child(["memory", "--prompts", String(n), "--dir", `${work}/memory-${n}`]);
    await Deno.remove(`${work}/memory-${n}`, { recursive: true });
  }
  const small = peaks[s.memorySmall]!;
  const large = peaks[s.memoryLarge]!;
  rows.push({
    metric: `Peak RSS growth, ${s.memorySmall} → ${s.memoryLarge} prompts`,
    value: large.peakRssMb! - small.peakRssMb!,
    target: { op: "<=", value: 30 },
    unit: "MB",
    detail: `sampled peak RSS ${small.peakRssMb!.toFixed(0)} MB → ${
      large.peakRssMb!.toFixed(0)
    } MB; JS heap allocated at the end ${small.heapTotalMb!.toFixed(0)} → ${
      large.heapTotalMb!.toFixed(0)
    } MB (whole batch: prompt file, run.json, log, folders, gallery; instant providers)`,
  });
  rows.push({
    metric: `Retained JS heap growth after GC, ${s.memorySmall} → ${s.memoryLarge} prompts`,
    value: large.retainedHeapMb! - small.retainedHeapMb!,
    target: { op: "<=", value: 30 },
    unit: "MB",
    detail: `${small.retainedHeapMb!.toFixed(0)} MB → ${large.retainedHeapMb!.toFixed(0)} MB`,
  });
}

async function overhead(s: Settings, rows: Row[]): Promise<void> {
  log(`orchestration overhead, ${s.overheadPrompts} prompts…`);
  const result = await child(["overhead", "--prompts", String(s.overheadPrompts)]);
  rows.push({
    metric: `Orchestration CPU per prompt (${s.overheadPrompts} prompts)`,
    value: result.cpuMsPerPrompt!,
    // Issue 21's 1.2 ms in the full run; the quick run's 1,000 prompts include more warm-up.
    target: { op: "<=", value: s === QUICK ? 2 : 1.2 },
    unit: "ms",
    detail: `${result.cpuMs} ms CPU for ${result.prompts} prompts × 5 calls, instant providers`,
  });
}

/**
 * Money at the edges: paid calls that start after one Ctrl-C (retake's own log orders the
 * interrupt and every call), and what a run spends over `--max-cost`, against the most one step
 * can be estimated at.
 */
async function money(s: Settings, rows: Row[], work: string): Promise<void> {
  const srv = await servers({ ...s, falLatencyMs: 1500, falConcurrency: 4 });
  try {
    const cwd = await writeBatch(`${work}/money`, { ...s, prompts: 24 });
    const child = cliCommand(["--out", "out", "--name", "ctrl-c", "-q", "batch.json"], {
      cwd,
      env: srv.env,
      output: "null",
    }).spawn();
    while (srv.fal.calls("submit").length < 4) await new Promise((r) => setTimeout(r, 2));
    child.kill("SIGINT");
    await child.status;
    const lines = (await Deno.readTextFile(`${cwd}/out/ctrl-c/log.jsonl`)).split("\n")
      .filter(Boolean).map((line) => JSON.parse(line));
    const at = lines.findIndex((l) => /^Interrupted by the user/.test(String(l.message)));
    const after = lines.slice(at).filter((l) => /^Calling /.test(String(l.message))).length;
    rows.push({
      metric: "Paid calls started after one Ctrl-C",
      value: at < 0 ? Infinity : after,
      unit: "",
      target: { op: "<=", value: 0 },
      detail: `24 prompts, fal 1.5 s with a quota of 4; Ctrl-C once 4 generations were submitted`,
    });

    const limit = 0.02;
    const run = await cliBatch(cwd, "max-cost", ["--max-cost", String(limit)], srv);
    const spent = JSON.parse(await Deno.readTextFile(`${cwd}/out/max-cost/run.json`)).totals
      .thisRunCostUsd;
    // The dearest single step: one image at the bench's size (flux schnell, 1 MP at most).
    const step = 0.003;
    rows.push({
      metric: "Spend over --max-cost",
      value: Math.max(0, spent - limit),
      unit: "USD",
      target: { op: "<=", value: step },
      detail:
        `--max-cost ${limit}: spent $${spent} in ${run.paidCalls} paid calls, exit ${run.code}`,
    });
  } finally {
    await srv.close();
  }
}

/**
 * Gemini's Batch API: the same Gemini-only batch (`-n 3`, Gemini draws and judges) run
 * interactively and with `--batch-api`, against one batch stand-in that answers each job's lines
 * as the interactive stand-in answers calls. The cost per prompt halves; the files are the same.
 */
async function batchApiCost(s: Settings, rows: Row[], work: string): Promise<void> {
  const key = "AQ.bench-batch-key";
  const standIn = await startGeminiBatchStandIn({ key });
  try {
    const cwd = `${work}/batch-api`;
    await Deno.mkdir(cwd, { recursive: true });
    await Deno.writeTextFile(
      `${cwd}/batch.json`,
      JSON.stringify({ prompts: benchPrompts(s.batchPrompts) }),
    );
    await Deno.writeTextFile(
      `${cwd}/retake.config.json`,
      JSON.stringify({ batchPollMs: 50, batchGatherMs: 1000 }),
    );
    const env = { GEMINI_API_KEY: key, GEMINI_BASE_URL: standIn.url };
    const args = (name: string, extra: string[]) => [
      "--out",
      "out",
      "--name",
      name,
      "-q",
      "--generator",
      "gemini",
      "--critic",
      "gemini",
      "--model",
      "nano-banana-2",
      "--size",
      "512x512",
      "-n",
      "3",
      ...extra,
      "batch.json",
    ];
    const totals: Record<string, { cost: number; files: string[]; ms: number }> = {};
    for (const [name, extra] of [["interactive", []], ["batch", ["--batch-api"]]] as const) {
      const started = performance.now();
      const result = await runCli(args(name, [...extra]), { cwd, env });
      if (result.code !== 0) throw new Error(`${name} run: exit ${result.code}\n${result.stderr}`);
      const run = JSON.parse(await Deno.readTextFile(`${cwd}/out/${name}/run.json`));
      const files: string[] = [];
      for await (const entry of Deno.readDir(`${cwd}/out/${name}`)) {
        if (!entry.isDirectory || entry.name.startsWith("_")) continue;
        for await (const file of Deno.readDir(`${cwd}/out/${name}/${entry.name}`)) {
          if (file.name !== "metadata.json") files.push(`${entry.name}/${file.name}`);
        }
      }
      totals[name] = {
        cost: run.totals.costUsd,
        files: files.sort(),
        ms: performance.now() - started,
      };
    }
    const live = totals.interactive!;
    const batch = totals.batch!;
    const same = JSON.stringify(live.files) === JSON.stringify(batch.files);
    rows.push({
      metric: "Cost per prompt, batch ÷ interactive",
      value: Math.round(batch.cost / live.cost * 1e4) / 1e4,
      unit: "×",
      target: { op: "<=", value: 0.51 },
      detail: `${s.batchPrompts} prompts -n 3, Gemini only: $${
        (batch.cost / s.batchPrompts).toFixed(5)
      } against $${
        (live.cost / s.batchPrompts).toFixed(5)
      } a prompt; ${standIn.jobs.length} jobs; ${
        same ? "the same" : "**different**"
      } ${batch.files.length} files`,
    });
    const keys = standIn.jobs.flatMap((j) => j.lines.map((l) => l.key));
    rows.push({
      metric: "Requests sent in two batch jobs",
      value: keys.length - new Set(keys).size + (same ? 0 : 1),
      unit: "",
      target: { op: "<=", value: 0 },
      detail: `${keys.length} requests in ${standIn.jobs.length} jobs (and the files the same)`,
    });
  } finally {
    await standIn.close();
  }
}

/**
 * How a request's completion reaches retake: polling `…/status` every `pollIntervalMs` against
 * following `…/status/stream`, side by side on one stand-in, `falConcurrency` generations at a
 * time. Counts the status requests per generation, and the delay from fal completing a request
 * to retake asking for its result (the latency the wait adds).
 */
async function falStatus(s: Settings, rows: Row[]): Promise<void> {
  const fal = await startFalStandIn({
    key: FAL_KEY,
    latencyMs: s.falLatencyMs,
    jitterMs: s.falJitterMs,
    concurrency: s.falConcurrency,
  });
  const spec: PromptSpec = { id: "status", prompt: "a lighthouse at dusk", extra: {} };
  const measure = async (statusUpdates: "poll" | "stream") => {
    fal.reset();
    const generator = createFalGenerator({
      apiKey: FAL_KEY,
      baseUrl: fal.url,
      pollIntervalMs: s.pollIntervalMs,
      statusUpdates,
      timeoutMs: 60_000,
    });
    let next = 0;
    const worker = async () => {
      while (next < s.statusGenerations) {
        const seed = next++;
        const image = await generator.generate({
          prompt: `${spec.prompt} ${seed}`,
          spec,
          iteration: 1,
          width: s.width,
          height: s.height,
          seed,
          model: "fal-ai/flux/schnell",
          format: "png",
          signal: new AbortController().signal,
        });
        if (!(image.data instanceof Uint8Array)) await new Response(image.data).arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: s.falConcurrency }, worker));
    const waits = fal.calls("status").length + fal.calls("stream").length;
    const delays = fal.calls("result").map((r) => r.at - fal.job(r.requestId!)!.completedAt!);
    return {
      perGeneration: Math.round((waits / s.statusGenerations) * 100) / 100,
      delayMs: delays.reduce((a, b) => a + b, 0) / delays.length,
    };
  };
  try {
    log(`fal status: polling vs the status stream, ${s.statusGenerations} generations each…`);
    const polled = await measure("poll");
    const streamed = await measure("stream");
    const setting =
      `${s.statusGenerations} generations of ${s.falLatencyMs} ms ± ${s.falJitterMs}, ${s.falConcurrency} at a time`;
    rows.push({
      metric: `fal status requests per generation, polling every ${s.pollIntervalMs} ms`,
      value: polled.perGeneration,
      unit: "",
      detail: `before: \`statusUpdates: "poll"\`; ${setting}`,
    });
    rows.push({
      metric: "fal status requests per generation, status stream",
      value: streamed.perGeneration,
      target: { op: "<=", value: 1 },
      unit: "",
      detail: `after: one SSE connection per request; ${setting}`,
    });
    rows.push({
      metric: "fal completion to result fetch, polling",
      value: polled.delayMs,
      unit: "ms",
      detail: `the latency polling adds per generation (about half of ${s.pollIntervalMs} ms)`,
    });
    rows.push({
      metric: "fal completion to result fetch, status stream",
      value: streamed.delayMs,
      target: { op: "<=", value: Math.round(polled.delayMs / 2 * 100) / 100 },
      unit: "ms",
      detail: "the latency the stream adds: the event's delivery; target half of polling's",
    });
  } finally {
    await fal.close();
  }
}

/** The studio's batch page of a 10,000-prompt batch: its first render, and a filtered one. */
async function studioPage(rows: Row[], work: string): Promise<void> {
  const prompts = 10_000;
  log(`studio batch page, ${prompts} prompts…`);
  await makeBatch(`${work}/studio`, "big", prompts, { images: false });
  const studio = await startStudio({
    out: `${work}/studio`,
    secrets: { token: "a".repeat(64), csrf: "c".repeat(64), session: "e".repeat(32) },
  });
  const get = async (path: string) => {
    const started = performance.now();
    const response = await fetch(
      `http://127.0.0.1:${studio.port}${studio.auth.base}${path.slice(1)}`,
      {
        headers: { cookie: `retake_studio_${studio.port}=${"a".repeat(64)}` },
      },
    );
    const html = await response.text();
    if (!response.ok || !html.includes("</html>")) {
      throw new Error(`GET ${path}: ${response.status}`);
    }
    return performance.now() - started;
  };
  try {
    const first = await get("/b/big/");
    rows.push({
      metric: `Studio: first render of a ${prompts.toLocaleString("en")}-prompt batch page`,
      value: first,
      target: { op: "<=", value: 1000 },
      unit: "ms",
      detail: "GET of page 1 (50 prompts, every round) from a cold server",
    });
    const filtered = await get("/b/big/?filter=failed");
    rows.push({
      metric: `Studio: first filtered page (failed) of ${prompts.toLocaleString("en")} prompts`,
      value: filtered,
      unit: "ms",
      detail: "reads every record once; later filters reuse what is unchanged",
    });
  } finally {
    await studio.close();
  }
}

function format(value: number, unit: string): string {
  if (unit === "share") return `${(value * 100).toFixed(1)}%`;
  if (unit === "×") return `${value.toFixed(value >= 10 ? 1 : 3)}×`;
  if (unit === "ms") return `${value.toFixed(2)} ms`;
  if (unit === "MB") return `${value.toFixed(1)} MB`;
  if (unit === "USD") return `$${value.toFixed(4)}`;
  return `${value}`;
}

function targetText(row: Row): string {
  if (!row.target) return "—";
  const t = row.target;
  return `${t.op === ">=" ? "≥" : "≤"} ${format(t.value, row.unit)}`;
}

/** A Markdown table: readable on a terminal, pasteable into the README. */
export function formatTable(rows: Row[]): string {
  const lines = [
    "| Measure | Result | Target | Met | Detail |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.metric} | ${format(row.value, row.unit)} | ${targetText(row)} | ${
        row.target ? (passes(row) ? "yes" : row.informational ? "no" : "**no**") : ""
      } | ${row.informational ? `informational here: ${row.informational}; ` : ""}${row.detail} |`,
    );
  }
  return lines.join("\n");
}

async function main(args: string[]): Promise<number> {
  const quick = args.includes("--quick");
  const outIndex = args.indexOf("--out");
  const out = outIndex >= 0
    ? args[outIndex + 1]!
    : `${ROOT}outputs/${quick ? "bench-quick" : "bench"}.json`;
  const s = quick ? QUICK : FULL;
  const work = await Deno.makeTempDir({ prefix: "retake-bench-" });
  const rows: Row[] = [];
  const started = performance.now();
  // `--only throughput,memory` runs some parts, for working on one of them.
  const onlyIndex = args.indexOf("--only");
  const only = onlyIndex >= 0 ? args[onlyIndex + 1]!.split(",") : undefined;
  const wanted = (part: string) => !only || only.includes(part);
  try {
    const parts: Array<[string, (rows: Row[], work: string) => Promise<unknown>]> = [
      // Throughput measures a missed run again itself, run by run.
      ["throughput", (rows, work) => throughput(s, rows, work)],
      [
        "large",
        (rows, work) =>
          s.largePrompts > 0
            ? throughput({ ...s, prompts: s.largePrompts }, rows, work, true)
            : Promise.resolve(),
      ],
      ["rate", (rows, work) => rateBound(s, rows, work)],
      ["cost", (rows, work) => critiqueCost(rows, work)],
      ["memory", (rows, work) => memory(s, rows, work)],
      ["overhead", (rows) => overhead(s, rows)],
      ["money", (rows, work) => money(s, rows, work)],
      ["fal", (rows) => falStatus(s, rows)],
      ["studio", (rows, work) => studioPage(rows, work)],
      ["prompts", async (rows, work) => rows.push(...await promptFile(child, work))],
      ["batch", (rows, work) => batchApiCost(s, rows, work)],
    ];
    for (const [name, part] of parts) {
      if (wanted(name)) rows.push(...await measuredPart(name, part, work));
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  const table = formatTable(rows);
  // deno-lint-ignore no-console
  console.log(table);
  const failed = rows.filter((r) => !passes(r) && !r.informational);
  await Deno.mkdir(out.replace(/\/[^/]*$/, "") || ".", { recursive: true });
  await Deno.writeTextFile(
    out,
    JSON.stringify(
      {
        mode: quick ? "quick" : "full",
        date: new Date().toISOString(),
        deno: Deno.version.deno,
        cpus: navigator.hardwareConcurrency,
        benchSeconds: Math.round((performance.now() - started) / 1000),
        settings: s,
        rows: rows.map((r) => ({ ...r, met: passes(r) })),
        failed: failed.map((r) => r.metric),
      },
      null,
      2,
    ) + "\n",
  );
  const informational = rows.filter((r) => !passes(r) && r.informational);
  log(
    `${rows.filter(passes).length} of ${rows.length} rows met their target in ${
      Math.round((performance.now() - started) / 1000)
    } s; saved ${out}`,
  );
  if (failed.length > 0) log(`missed: ${failed.map((r) => r.metric).join("; ")}`);
  if (informational.length > 0) {
    log(`missed, informational here: ${informational.map((r) => r.metric).join("; ")}`);
  }
  return failed.length === 0 ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
