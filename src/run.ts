/**
 * One batch run: prompt files → providers → pipeline → `run.json` and a summary. The library
 * entry point that `main.ts` wires to the command line.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { from, merge, type Observable, tap } from "rxjs";
import sharp from "sharp";
import type { AdaptiveLimiter } from "./adaptive.ts";
import { ensureWritableDir, FolderSink, shortHash, writeJsonAtomic } from "./artifacts.ts";
import { type Config, publicSettings, secretsOf } from "./config.ts";
import { InputError, ProviderError } from "./errors.ts";
import { writeGallery } from "./gallery.ts";
import { verifyImageFile } from "./image_check.ts";
import { setupLogging } from "./logging.ts";
import { isFatal, messageOf, type PromptOutcome, runPipeline } from "./pipeline.ts";
import { ProgressLine, ProgressTracker } from "./progress.ts";
import { loadPromptFile, promptHash, type PromptSpec } from "./prompts.ts";
import { createProviders, type Providers } from "./providers/registry.ts";
import { RetryBudget } from "./retry.ts";
import { runOnChanges, watchFiles } from "./watch.ts";

/** The version printed by `--version` and recorded in `run.json`. */
export const VERSION = "0.1.0";

/** Exit codes. */
export const EXIT = {
  ok: 0,
  someFailed: 1,
  input: 2,
  stopped: 3,
  interrupted: 130,
} as const;

/** The outside world, injected so tests can run a batch in-process. */
export interface RunIo {
  writeOut: (text: string) => void;
  writeErr: (text: string) => void;
  /** Whether stderr is a terminal (live progress line). */
  isTerminal: boolean;
  /** Aborted on the first Ctrl-C / SIGTERM: drain, then stop after the grace period. */
  signal?: AbortSignal;
  /** Aborted on the second Ctrl-C: stop at once. */
  abortNow?: AbortSignal;
}

/** What a batch run produced. */
export interface BatchResult {
  exitCode: number;
  batchDir: string;
  outcomes: PromptOutcome[];
}

/** Loads and checks every prompt file before anything is written. */
export async function loadPrompts(files: string[]): Promise<PromptSpec[]> {
  if (files.length === 0) {
    throw new InputError(
      "Cannot start as no prompt file was given: run 'retake prompts/example.json' (see --help)",
    );
  }
  const all: PromptSpec[] = [];
  const origin = new Map<string, string>();
  for (const file of files) {
    for (const spec of await loadPromptFile(file)) {
      const key = spec.id.toLowerCase();
      const first = origin.get(key);
      if (first !== undefined) {
        throw new InputError(
          `Invalid prompt '${spec.id}' in '${file}': field 'id' is also used in '${first}'; ids must be unique across files`,
        );
      }
      origin.set(key, file);
      all.push(spec);
    }
  }
  return all;
}

/** Keeps the prompts `--only` names; an unknown id is an input error. */
export function selectPrompts(specs: PromptSpec[], only: string[] | undefined): PromptSpec[] {
  if (!only || only.length === 0) return specs;
  const known = new Set(specs.map((s) => s.id));
  const unknown = only.filter((id) => !known.has(id));
  if (unknown.length > 0) {
    throw new InputError(
      `Cannot select prompts with --only as ${
        unknown.map((id) => `'${id}'`).join(", ")
      } matched no prompt id: known ids are ${[...known].slice(0, 20).join(", ")}`,
    );
  }
  const wanted = new Set(only);
  return specs.filter((s) => wanted.has(s.id));
}

/** Batch folder name: `--name`, else the first prompt file's name without extension. */
export function batchName(config: Config, files: string[]): string {
  if (config.name) return config.name;
  const base = files[0]!.split(/[\\/]/).pop()!.replace(/\.[^.]*$/, "");
  return base || "batch";
}

/** Seed for a prompt's iteration: one per prompt unless `varySeed`. */
export function seedFor(config: Config, spec: PromptSpec, iteration: number): number {
  const base = config.seed ?? parseInt(shortHash(spec.id), 16);
  return (base + (config.varySeed ? iteration - 1 : 0)) >>> 0;
}

/** Runs one batch end to end. Input errors throw {@linkcode InputError} before any write. */
export async function runBatch(
  config: Config,
  promptFiles: string[],
  io: RunIo,
  preloaded?: {
    specs: PromptSpec[];
    providers: Providers;
    /** Only some of the batch's prompts (a watch pass): run.json keeps the others' entries. */
    partial?: boolean;
  },
): Promise<BatchResult> {
  // Each image is read once or twice, in separate steps: libvips' operation cache (50 MB by
  // default) would only hold memory that grows with the batch.
  sharp.cache(false);
  const specs = preloaded?.specs ?? selectPrompts(await loadPrompts(promptFiles), config.only);
  const providers = preloaded?.providers ?? await createProviders(config);
  const batchDir = `${config.out}/${batchName(config, promptFiles)}`;
  await ensureWritableDir(batchDir);

  const models = config.models?.length
    ? [...new Set(config.models.map(providers.resolveModel))]
    : [providers.model];
  const comparing = models.length > 1;
  const tracker = new ProgressTracker(specs.length * models.length);
  const progress = config.quiet
    ? undefined
    : new ProgressLine(tracker, { write: io.writeErr, interactive: io.isTerminal });
  const closeLogs = await setupLogging({
    level: config.verbose ? "debug" : config.quiet ? "error" : "warning",
    writeErr: io.writeErr,
    ...(progress && { beforeWrite: () => progress.clear() }),
    jsonlPath: `${batchDir}/log.jsonl`,
    secrets: secretsOf(config),
  });
  const log = getLogger(["retake", "run"]);
  if (providers.notice && !config.quiet) io.writeErr(`${providers.notice}\n`);

  const startedAt = new Date().toISOString();
  const started = performance.now();
  const runFile = `${batchDir}/run.json`;
  // A run of some prompts (--only, a watch pass) updates the batch's run.json rather than
  // replacing it with those prompts alone: the gallery and its totals describe the whole batch.
  const kept = config.only?.length || preloaded?.partial ? await previousEntries(runFile) : [];
  const runInfo = (status: string, outcomes: PromptOutcome[]) => {
    const byKey = outcomeIndex(outcomes);
    const entries: RunEntry[] = mergeEntries(
      kept,
      specs.flatMap((spec) =>
        models.map((model) =>
          byKey.get(outcomeKey(spec.id, model)) ??
            { id: spec.id, model, status: status === "running" ? "pending" : "not run" }
        )
      ),
    );
    return {
      version: VERSION,
      batch: batchName(config, promptFiles),
      status,
      promptFiles,
      startedAt,
      ...(status !== "running" && { finishedAt: new Date().toISOString() }),
      durationMs: Math.round(performance.now() - started),
      providers: {
        generator: providers.generator.name,
        critic: providers.critic.name,
        refiner: providers.refiner.name,
        model: providers.model,
      },
      settings: publicSettings(config),
      totals: {
        prompts: new Set(entries.map((e) => e.id)).size,
        completed: entries.filter((e) => e.status === "completed").length,
        failed: entries.filter((e) => e.status === "failed").length,
        interrupted: entries.filter((e) => e.status === "interrupted").length,
        skipped: entries.filter((e) => e.skipped === true).length,
        costUsd: Math.round(
          entries.reduce((sum, e) => sum + (typeof e.costUsd === "number" ? e.costUsd : 0), 0) *
            1e6,
        ) / 1e6,
      },
      ...(comparing && { models }),
      prompts: entries,
    };
  };

  log.info("Started batch {batch} with {prompts} prompts: generator {generator}, critic {critic}", {
    batch: batchDir,
    prompts: specs.length,
    generator: providers.generator.name,
    critic: providers.critic.name,
    model: providers.model,
  });
  await writeJsonAtomic(runFile, runInfo("running", []));

  const outcomes: PromptOutcome[] = [];
  let status = "completed";
  let stopReason: string | undefined;
  let exitCode: number = EXIT.ok;
  progress?.start();
  try {
    const retryBudget = new RetryBudget(config.retry.budget);
    // Compared models share each service's limiter: its quota is the account's, not a model's.
    const limiters = new Map<string, AdaptiveLimiter>();
    const runModel = (model: string) =>
      runPipeline(from(specs), {
        generator: providers.generator,
        critic: providers.critic,
        refiner: providers.refiner,
        sink: new FolderSink(batchDir, verifyImageFile, comparing ? model : undefined),
        iterations: config.iterations,
        concurrency: config.concurrency,
        sharedLimiters: limiters,
        width: config.size.width,
        height: config.size.height,
        format: config.format,
        model,
        seedFor: (spec, iteration) => seedFor(config, spec, iteration),
        hashFor: (spec) => promptHash(spec, { ...resultSettings(config, providers), model }),
        force: config.force,
        ...(io.signal && { stop: io.signal }),
        ...(config.maxCost !== undefined && { maxCostUsd: config.maxCost }),
        ...(config.targetScore !== undefined && { targetScore: config.targetScore }),
        ...(config.targetCriteria !== undefined && { targetCriteria: config.targetCriteria }),
        retry: {
          maxAttempts: config.retry.maxAttempts,
          maxOverloadRetries: config.retry.maxOverloadRetries,
          minTimeout: config.retry.minTimeoutMs,
          maxTimeout: config.retry.maxTimeoutMs,
          multiplier: config.retry.multiplier,
          jitter: config.retry.jitter,
          timeScale: config.retry.timeScale,
          budget: retryBudget,
        },
        timeoutMs: config.timeoutMs + 5_000,
        onEvent: (event) => tracker.update(event),
      });
    // Models run side by side: each is its own endpoint at the provider.
    const pipeline = merge(...models.map(runModel)).pipe(tap((outcome) => outcomes.push(outcome)));
    await untilDone(pipeline, hardStop(io, config.graceMs));
    if (outcomes.some((o) => o.status === "failed")) exitCode = EXIT.someFailed;
    if (io.signal?.aborted) {
      status = "interrupted";
      exitCode = EXIT.interrupted;
    } else if (outcomes.some((o) => o.status === "interrupted")) {
      status = "stopped at the cost budget";
      stopReason =
        `Reached --max-cost $${config.maxCost}: no new paid step was started. Raise the budget and run again to resume.`;
      exitCode = EXIT.someFailed;
    }
  } catch (error) {
    if (io.signal?.aborted) {
      status = "interrupted";
      exitCode = EXIT.interrupted;
      log.warn("Interrupted: calls still in flight after the grace period were cancelled");
    } else if (isFatal(error)) {
      status = "stopped";
      stopReason = messageOf(error);
      exitCode = EXIT.stopped;
      log.fatal("Stopped the run: {reason}", {
        reason: stopReason,
        ...(error instanceof ProviderError && { provider: error.provider }),
      });
    } else {
      status = "crashed";
      stopReason = messageOf(error);
      exitCode = EXIT.someFailed;
      log.fatal("The run stopped on an unexpected error: {reason}", { reason: messageOf(error) });
    }
  } finally {
    progress?.stop();
  }
  if (status === "completed" && exitCode === EXIT.someFailed) status = "completed with failures";
  try {
    await writeJsonAtomic(runFile, runInfo(status, outcomes));
    if (comparing) {
      await writeJsonAtomic(`${batchDir}/comparison.json`, compareModels(specs, models, outcomes));
    }
    const page = await writeGallery(batchDir);
    log.info("Wrote the gallery {page}", { page });
  } catch (error) {
    // Every prompt's own metadata is already saved; a missing summary file must not hide that.
    log.error("Could not write {file}: {reason}", { file: runFile, reason: messageOf(error) });
    stopReason ??= messageOf(error);
  }
  log.info("Finished batch {batch}: {status} in {durationMs} ms", {
    batch: batchDir,
    status,
    durationMs: Math.round(performance.now() - started),
  });
  await closeLogs();
  // Prompts finish in any order; the summary follows the file.
  const order = new Map(specs.map((spec, index) => [spec.id, index]));
  outcomes.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  io.writeOut(formatSummary(batchDir, specs.length * models.length, outcomes, status));
  if (stopReason) io.writeErr(`error: ${stopReason}\n`);
  return { exitCode, batchDir, outcomes };
}

/** Per prompt, each model's best score, cost and time, and the winner (best score, then cheaper). */
export function compareModels(specs: PromptSpec[], models: string[], outcomes: PromptOutcome[]) {
  const byKey = outcomeIndex(outcomes);
  const prompts = specs.map((spec) => {
    const rows = models.map((model) => {
      const o = byKey.get(outcomeKey(spec.id, model));
      return {
        model,
        status: o?.status ?? "not run",
        bestScore: o?.bestScore ?? null,
        costUsd: o?.costUsd ?? 0,
        durationMs: o?.durationMs ?? 0,
        folder: o?.folder ?? null,
      };
    });
    const ranked = rows.filter((r) => r.bestScore !== null)
      .sort((a, b) => b.bestScore! - a.bestScore! || a.costUsd - b.costUsd);
    return { id: spec.id, winner: ranked[0]?.model ?? null, models: rows };
  });
  const perModel = models.map((model) => {
    const rows = prompts.map((p) => p.models.find((m) => m.model === model)!);
    const scored = rows.filter((r) => r.bestScore !== null);
    return {
      model,
      wins: prompts.filter((p) => p.winner === model).length,
      meanScore: scored.length
        ? Math.round(scored.reduce((s, r) => s + r.bestScore!, 0) / scored.length * 100) / 100
        : null,
      costUsd: Math.round(rows.reduce((s, r) => s + r.costUsd, 0) * 1e6) / 1e6,
      durationMs: rows.reduce((s, r) => s + r.durationMs, 0),
      failed: rows.filter((r) => r.status === "failed").length,
    };
  });
  return { models: perModel, prompts };
}

/** One prompt-and-model line of `run.json`: an outcome, or a prompt not (yet) run. */
export interface RunEntry {
  id: string;
  model: string;
  status: string;
  skipped?: boolean;
  costUsd?: number;
}

/** The entries of an earlier `run.json`, or none when it is missing or unreadable. */
async function previousEntries(runFile: string): Promise<RunEntry[]> {
  let run: unknown;
  try {
    run = JSON.parse(await Deno.readTextFile(runFile));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    getLogger(["retake", "run"]).warn("Could not read the earlier {file}: {reason}", {
      file: runFile,
      reason: messageOf(error),
    });
    return [];
  }
  const prompts = (run as { prompts?: unknown })?.prompts;
  return Array.isArray(prompts)
    ? prompts.filter((e): e is RunEntry =>
      typeof e?.id === "string" && typeof e?.model === "string" && typeof e?.status === "string"
    )
    : [];
}

/**
 * The earlier entries in their order, each replaced by this run's entry for the same prompt and
 * model, then this run's new ones.
 */
function mergeEntries(earlier: RunEntry[], current: RunEntry[]): RunEntry[] {
  const byKey = new Map(current.map((e) => [outcomeKey(e.id, e.model), e]));
  const merged = earlier.map((e) => {
    const key = outcomeKey(e.id, e.model);
    const now = byKey.get(key);
    byKey.delete(key);
    return now ?? e;
  });
  return [...merged, ...byKey.values()];
}

// Outcomes by prompt and model: a batch of thousands looks each one up once, not by a scan.
function outcomeKey(id: string, model: string): string {
  return `${id}\u0000${model}`;
}

function outcomeIndex(outcomes: PromptOutcome[]): Map<string, PromptOutcome> {
  return new Map(outcomes.map((o) => [outcomeKey(o.id, o.model), o]));
}

/** The final summary on stdout. */
export function formatSummary(
  batchDir: string,
  total: number,
  outcomes: PromptOutcome[],
  status: string,
): string {
  const completed = outcomes.filter((o) => o.status === "completed");
  const failed = outcomes.filter((o) => o.status === "failed");
  const interrupted = outcomes.filter((o) => o.status === "interrupted");
  const comparing = new Set(outcomes.map((o) => o.model)).size > 1;
  const name = (o: PromptOutcome) => comparing ? `${o.id} [${o.model}]` : o.id;
  const cost = outcomes.reduce((sum, o) => sum + o.costUsd, 0);
  const lines = [
    `retake: ${completed.length}/${total} prompts completed, ${failed.length} failed, ` +
    `cost $${cost.toFixed(4)} — ${status}`,
  ];
  for (const o of completed) {
    lines.push(
      `  ${o.skipped ? "done   " : "ok     "} ${name(o)}: best score ${
        o.bestScore?.toFixed(1) ?? "-"
      } (iteration ${o.bestIteration ?? "-"} of ${o.iterations})${
        o.skipped ? ", unchanged since the last run" : ""
      }`,
    );
  }
  for (const o of interrupted) {
    lines.push(
      `  paused  ${name(o)}: saved after ${o.iterations} iteration(s); run again to resume`,
    );
  }
  for (const o of failed) {
    lines.push(
      `  FAILED  ${name(o)}: ${o.error?.step ?? "?"} ${o.error?.iteration ?? ""}: ${
        o.error?.message ?? "unknown"
      }`,
    );
  }
  const notRun = total - outcomes.length;
  if (notRun > 0) {
    lines.push(`  ${notRun} prompts not finished: saved steps are kept; run again to resume`);
  }
  lines.push(`Output: ${batchDir} (open ${batchDir}/index.html to see the images)`);
  return lines.join("\n") + "\n";
}

/** The settings that change a prompt's result: part of its content hash. */
function resultSettings(config: Config, providers: Providers): Record<string, unknown> {
  return {
    generator: providers.generator.name,
    model: providers.model,
    critic: providers.critic.name,
    criticModel: config.criticModel,
    width: config.size.width,
    height: config.size.height,
    format: config.format,
    iterations: config.iterations,
    seed: config.seed,
    varySeed: config.varySeed,
    targetScore: config.targetScore,
    targetCriteria: config.targetCriteria,
  };
}

/** Aborts on the second Ctrl-C, or once the grace period after the first has passed. */
function hardStop(io: RunIo, graceMs: number): AbortSignal | undefined {
  if (!io.signal) return io.abortNow;
  const controller = new AbortController();
  const onInterrupt = () => {
    const timer = setTimeout(() => controller.abort(io.signal!.reason), graceMs);
    controller.signal.addEventListener("abort", () => clearTimeout(timer));
    io.abortNow?.addEventListener("abort", () => clearTimeout(timer));
  };
  if (io.signal.aborted) onInterrupt();
  else io.signal.addEventListener("abort", onInterrupt, { once: true });
  return io.abortNow ? AbortSignal.any([controller.signal, io.abortNow]) : controller.signal;
}

/** Runs an observable to completion; an abort unsubscribes, which aborts every call in flight. */
function untilDone(source: Observable<unknown>, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const subscription = source.subscribe({ error: reject, complete: resolve });
    const onAbort = () => {
      subscription.unsubscribe();
      reject(signal!.reason);
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    subscription.add(() => signal?.removeEventListener("abort", onAbort));
  });
}

/**
 * Runs the batch, then watches the prompt files and re-processes only the prompts that were
 * added or edited, until `io.signal` aborts. An invalid edit is reported and watching goes on.
 */
export async function watchBatch(
  config: Config,
  promptFiles: string[],
  io: RunIo,
  options: { debounceMs?: number } = {},
): Promise<number> {
  let specs = selectPrompts(await loadPrompts(promptFiles), config.only);
  const providers = await createProviders(config);
  const hashOf = (spec: PromptSpec) => promptHash(spec, resultSettings(config, providers));
  let known = new Map(specs.map((s) => [s.id, hashOf(s)]));
  const first = await runBatch(config, promptFiles, io, { specs, providers });
  if (io.signal?.aborted) return first.exitCode;
  let lastCode = first.exitCode;
  const signal = io.signal ?? new AbortController().signal;
  const say = (text: string) => io.writeErr(`${text}\n`);
  say(`Watching ${promptFiles.join(", ")} for changes (Ctrl-C to stop)`);
  await runOnChanges(
    watchFiles(promptFiles, options),
    async (changed) => {
      try {
        specs = selectPrompts(await loadPrompts(promptFiles), config.only);
      } catch (error) {
        if (!(error instanceof InputError)) throw error;
        say(`error: ${error.message}\nStill watching: fix the file and save it again.`);
        return;
      }
      const edited = specs.filter((s) => known.get(s.id) !== hashOf(s));
      known = new Map(specs.map((s) => [s.id, hashOf(s)]));
      if (edited.length === 0) {
        say(`${[...changed].join(", ")} changed, but no prompt did: nothing to do`);
        return;
      }
      say(
        `Re-processing ${edited.length} added or edited prompt(s): ${
          edited.map((s) => s.id).join(", ")
        }`,
      );
      const result = await runBatch(config, promptFiles, io, {
        specs: edited,
        providers,
        partial: true,
      });
      lastCode = result.exitCode;
      if (!signal.aborted) say(`Watching ${promptFiles.join(", ")} for changes (Ctrl-C to stop)`);
    },
    signal,
  );
  return lastCode === EXIT.interrupted ? EXIT.interrupted : EXIT.ok;
}
