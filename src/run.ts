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
import {
  ensureWritableDir,
  FolderSink,
  removeStaleTemps,
  safeBatchName,
  writeJsonAtomic,
} from "./artifacts.ts";
import { Budget } from "./budget.ts";
import { describePlan } from "./dry_run.ts";
import { type Config, retryOptionsOf, secretsOf } from "./config.ts";
import { InputError, isFatal, messageOf, ProviderError } from "./errors.ts";
import { fnv1a32 } from "./hash.ts";
import { writeGallery } from "./gallery.ts";
import { verifyImageFile } from "./image_check.ts";
import { setupLogging } from "./logging.ts";
import { lockBatch } from "./lock.ts";
import { type PromptOutcome, type PromptSink, runPipeline } from "./pipeline.ts";
import { ProgressLine, ProgressTracker } from "./progress.ts";
import { loadPromptFile, promptHash, type PromptSpec } from "./prompts.ts";
import { checkProviders, createProviders, type Providers } from "./providers/registry.ts";
import { type PromptRecord, totalCost } from "./record.ts";
import { RetryBudget } from "./retry.ts";
import { escapeControls } from "./terminal_text.ts";
import { outcomeIndex, outcomeKey, previousEntries, RunFile } from "./run_file.ts";
import { runOnChanges, watchFiles } from "./watch.ts";

export { VERSION } from "./run_file.ts";

/** Exit codes (README, Exit codes). */
export const EXIT = {
  ok: 0,
  /** Some prompts failed; the others completed. */
  someFailed: 1,
  /** Bad input or usage, or the batch folder is in use: nothing was run. */
  input: 2,
  /** A fatal error (bad key, unknown model, full disk) stopped the run. */
  stopped: 3,
  /** `--max-cost` was reached: a step it could not cover was not started. */
  budget: 4,
  /** Interrupted (Ctrl-C, SIGTERM). */
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

/**
 * Batch folder name: `--name`, else the first prompt file's name without extension; one plain
 * folder name either way, so the batch never lands outside `--out`.
 */
export function batchName(config: Config, files: string[]): string {
  if (config.name) return safeBatchName(config.name);
  const base = files[0]!.split(/[\\/]/).pop()!.replace(/\.[^.]*$/, "");
  return base ? safeBatchName(base) : "batch";
}

/** Seed for a prompt's iteration: one per prompt unless `varySeed`. */
export function seedFor(config: Config, spec: PromptSpec, iteration: number): number {
  // These values are users' reproducible seeds, never to change.
  const base = config.seed ?? fnv1a32(spec.id);
  return (base + (config.varySeed ? iteration - 1 : 0)) >>> 0;
}

/** What a watch pass hands to {@linkcode runBatch}: loaded once, shared by every pass. */
export interface Preloaded {
  specs: PromptSpec[];
  providers: Providers;
  /** Only some of the batch's prompts (a watch pass): run.json keeps the others' entries. */
  partial?: boolean;
  /** The batch folder's lock, held by the caller for all its passes. */
  locked?: boolean;
  /** `sample`: every image from the original prompt with its own seed (`retake eval`). */
  mode?: "refine" | "sample";
}

/** Runs one batch end to end. Input errors throw {@linkcode InputError} before any write. */
export async function runBatch(
  config: Config,
  promptFiles: string[],
  io: RunIo,
  preloaded?: Preloaded,
): Promise<BatchResult> {
  // Each image is read once or twice, in separate steps: libvips' operation cache (50 MB by
  // default) would only hold memory that grows with the batch.
  sharp.cache(false);
  const specs = preloaded?.specs ?? selectPrompts(await loadPrompts(promptFiles), config.only);
  const providers = preloaded?.providers ?? await createProviders(config);
  if (config.dryRun) {
    io.writeOut(describePlan(config, specs, providers));
    return {
      exitCode: EXIT.ok,
      batchDir: `${config.out}/${batchName(config, promptFiles)}`,
      outcomes: [],
    };
  }
  if (!preloaded?.providers) {
    await checkProviders(providers, io.signal ?? new AbortController().signal);
  }
  const models = config.models?.length
    ? [...new Set(config.models.map(providers.resolveModel))]
    : [providers.model];
  checkPricesForBudget(config, providers, models);
  const batchDir = `${config.out}/${batchName(config, promptFiles)}`;
  await ensureWritableDir(batchDir);
  const lock = preloaded?.locked ? undefined : await lockBatch(batchDir);
  try {
    await removeStaleTemps(batchDir);
    const mode = preloaded?.mode ?? "refine";
    const batch = { config, promptFiles, io, specs, providers, models, batchDir, mode };
    return await runLocked(batch, {
      partial: preloaded?.partial ?? false,
    });
  } finally {
    await lock?.release();
  }
}

interface Batch {
  config: Config;
  promptFiles: string[];
  io: RunIo;
  specs: PromptSpec[];
  providers: Providers;
  /** Generation models, resolved: one, or several side by side (`--models`). */
  models: string[];
  batchDir: string;
  mode: "refine" | "sample";
}

async function runLocked(batch: Batch, options: { partial: boolean }): Promise<BatchResult> {
  const { config, io, specs, providers, models, batchDir } = batch;
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
  const runFile = new RunFile(batch, {
    // A run of some prompts (--only, a watch pass) updates the batch's run.json rather than
    // replacing it with those prompts alone: the gallery and its totals describe the whole batch.
    kept: config.only?.length || options.partial ? await previousEntries(batch.batchDir) : [],
  });
  log.info("Started batch {batch} with {prompts} prompts: generator {generator}, critic {critic}", {
    batch: batchDir,
    prompts: specs.length,
    generator: providers.generator.name,
    critic: providers.critic.name,
    model: providers.model,
  });
  const budget = new Budget(config.maxCost);
  await runFile.write("running", [], budget.spentUsd);
  const onInterrupt = () =>
    log.info(
      "Interrupted by the user: no new paid call starts; calls in flight finish and are saved",
    );
  io.signal?.addEventListener("abort", onInterrupt, { once: true });

  progress?.start();
  const ending = await drive(batch, budget, tracker).finally(() => {
    io.signal?.removeEventListener("abort", onInterrupt);
    progress?.stop();
  });
  const { outcomes } = ending;
  let stopReason = ending.stopReason;
  try {
    await runFile.write(ending.status, outcomes, budget.spentUsd);
    if (models.length > 1) {
      await writeJsonAtomic(`${batchDir}/comparison.json`, compareModels(specs, models, outcomes));
    }
    const page = await writeGallery(batchDir);
    log.info("Wrote the gallery {page}", { page });
  } catch (error) {
    // Every prompt's own metadata is already saved; a missing summary file must not hide that.
    log.error("Could not write {file}: {reason}", { file: runFile.path, reason: messageOf(error) });
    stopReason ??= messageOf(error);
  }
  log.info("Finished batch {batch}: {status} in {durationMs} ms, ${costUsd} this run", {
    batch: batchDir,
    status: ending.status,
    durationMs: runFile.elapsedMs(),
    costUsd: budget.spentUsd,
  });
  await closeLogs();
  // Prompts finish in any order; the summary follows the file.
  const order = new Map(specs.map((spec, index) => [spec.id, index]));
  outcomes.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  io.writeOut(
    formatSummary(batchDir, specs.length * models.length, outcomes, ending.status, {
      thisRunUsd: budget.spentUsd,
      batchUsd: runFile.batchCostUsd(outcomes),
    }),
  );
  if (stopReason) io.writeErr(`error: ${escapeControls(stopReason)}\n`);
  return { exitCode: ending.exitCode, batchDir, outcomes };
}

/** How a run ended: its status word, exit code, why it stopped, and every prompt's outcome. */
interface Ending {
  status: string;
  exitCode: number;
  stopReason?: string;
  outcomes: PromptOutcome[];
}

/** Runs the pipeline for every model until it ends, however it ends. */
async function drive(batch: Batch, budget: Budget, tracker: ProgressTracker): Promise<Ending> {
  const { config, io, specs, providers, models, batchDir } = batch;
  const log = getLogger(["retake", "run"]);
  const outcomes: PromptOutcome[] = [];
  // Every prompt's live record, so a run cut short (a second Ctrl-C, a fatal error) still
  // accounts for prompts whose outcome never came.
  const live = new Map<string, { record: PromptRecord; sink: FolderSink; model: string }>();
  const retryBudget = new RetryBudget(config.retry.budget);
  // Compared models share each service's limiter: its quota is the account's, not a model's.
  const limiters = new Map<string, AdaptiveLimiter>();
  const runModel = (model: string) => {
    const sink = new FolderSink(batchDir, verifyImageFile, models.length > 1 ? model : undefined);
    const track = (record: PromptRecord) =>
      live.set(outcomeKey(record.id, model), { record, sink, model });
    return runPipeline(from(specs), {
      generator: providers.generator,
      critic: providers.critic,
      refiner: providers.refiner,
      sink: tracked(sink, track),
      iterations: config.iterations,
      patience: config.patience,
      refineMode: config.refine,
      mode: batch.mode,
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
      budget,
      retry: { ...retryOptionsOf(config), budget: retryBudget },
      timeoutMs: config.timeoutMs,
      // Remote providers keep the deadline themselves and cancel the request at the service.
      timeoutSlackMs: 5_000,
      onEvent: (event) => tracker.update(event),
    });
  };
  const ending: Ending = { status: "completed", exitCode: EXIT.ok, outcomes };
  try {
    // Models run side by side: each is its own endpoint at the provider.
    const pipeline = merge(...models.map(runModel)).pipe(tap((outcome) => {
      outcomes.push(outcome);
      // Only prompts still running are tracked: a batch of any size holds a bounded number.
      live.delete(outcomeKey(outcome.id, outcome.model));
    }));
    await untilDone(pipeline, hardStop(io, config.graceMs));
  } catch (error) {
    if (io.signal?.aborted) {
      log.warn("Interrupted: calls still in flight after the grace period were cancelled");
    } else if (isFatal(error)) {
      ending.status = "stopped";
      ending.stopReason = messageOf(error);
      ending.exitCode = EXIT.stopped;
      log.fatal("Stopped the run: {reason}", {
        reason: ending.stopReason,
        ...(error instanceof ProviderError && { provider: error.provider }),
      });
    } else {
      ending.status = "crashed";
      ending.stopReason = messageOf(error);
      ending.exitCode = EXIT.someFailed;
      log.fatal("The run stopped on an unexpected error: {reason}", { reason: messageOf(error) });
    }
    await settleUnfinished(outcomes, live);
  }
  if (ending.status === "completed") {
    if (io.signal?.aborted) {
      ending.status = "interrupted";
      ending.exitCode = EXIT.interrupted;
    } else if (budget.refused) {
      ending.status = "stopped at the cost budget";
      ending.exitCode = EXIT.budget;
      ending.stopReason = `Reached --max-cost $${config.maxCost} ($${
        budget.spentUsd.toFixed(4)
      } spent this run): no step was started that the budget could not cover. Raise the budget and run again to resume.`;
    } else if (outcomes.some((o) => o.status === "failed")) {
      ending.status = "completed with failures";
      ending.exitCode = EXIT.someFailed;
    }
  }
  return ending;
}

/** A sink that reports every record it saves, so the run knows each prompt's latest state. */
function tracked(sink: FolderSink, track: (record: PromptRecord) => void): PromptSink {
  return Object.assign(Object.create(sink) as FolderSink, {
    start: (spec: PromptSpec, record: PromptRecord) => (track(record), sink.start(spec, record)),
    saveRecord: (record: PromptRecord) => (track(record), sink.saveRecord(record)),
  });
}

/**
 * After a hard stop, the prompts still running have no outcome: each is saved as
 * `interrupted` with what it cost so far, and given an outcome, so run.json and the summary
 * agree with the folders.
 */
async function settleUnfinished(
  outcomes: PromptOutcome[],
  live: Map<string, { record: PromptRecord; sink: FolderSink; model: string }>,
): Promise<void> {
  const done = new Set(outcomes.map((o) => outcomeKey(o.id, o.model)));
  for (const [key, { record, sink, model }] of live) {
    if (done.has(key)) continue;
    if (record.status === "running") {
      record.status = "interrupted";
      record.stopCause ??= "interrupt";
    }
    record.costUsd = totalCost(record);
    try {
      await sink.saveRecord(record);
    } catch (error) {
      getLogger(["retake", "run"]).error("Could not save metadata for {promptId}: {reason}", {
        promptId: record.id,
        reason: messageOf(error),
      });
    }
    outcomes.push({
      id: record.id,
      folder: record.folder,
      status: record.status === "completed"
        ? "completed"
        : record.status === "failed"
        ? "failed"
        : "interrupted",
      skipped: false,
      model,
      durationMs: record.durationMs,
      costUsd: record.costUsd,
      iterations: record.iterations.length,
      ...(record.error !== undefined && { error: record.error }),
      ...(record.bestScore !== undefined && { bestScore: record.bestScore }),
      ...(record.bestIteration !== undefined && { bestIteration: record.bestIteration }),
    });
  }
}

/**
 * With `--max-cost`, every paid step needs a price to reserve: an unknown one would let the run
 * spend without limit, so it is refused before anything starts.
 */
function checkPricesForBudget(config: Config, providers: Providers, models: string[]): void {
  if (config.maxCost === undefined) return;
  const { generator, critic, refiner } = providers;
  const unknown: string[] = [];
  for (const model of models) {
    const size = { model, width: config.size.width, height: config.size.height };
    if (generator.estimateCostUsd && generator.estimateCostUsd(size) === undefined) {
      unknown.push(`${generator.name} model '${model}'`);
    }
  }
  if (critic.estimateCostUsd && critic.estimateCostUsd() === undefined) {
    unknown.push(`${critic.name} critic model '${config.criticModel ?? "default"}'`);
  }
  if (refiner.estimateCostUsd && refiner.estimateCostUsd() === undefined) {
    unknown.push(`${refiner.name} refiner model '${config.criticModel ?? "default"}'`);
  }
  if (unknown.length > 0) {
    throw new InputError(
      `Cannot keep to --max-cost as the price of ${
        [...new Set(unknown)].join(" and ")
      } is unknown: add it to the prices in the config file (see README, Costs), or run without --max-cost`,
    );
  }
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

/** The final summary on stdout. */
export function formatSummary(
  batchDir: string,
  total: number,
  outcomes: PromptOutcome[],
  status: string,
  cost: { thisRunUsd: number; batchUsd: number },
): string {
  const completed = outcomes.filter((o) => o.status === "completed");
  const failed = outcomes.filter((o) => o.status === "failed");
  const interrupted = outcomes.filter((o) => o.status === "interrupted");
  const comparing = new Set(outcomes.map((o) => o.model)).size > 1;
  // Ids, models, error texts and paths come from files and services: shown, never obeyed.
  const name = (o: PromptOutcome) => escapeControls(comparing ? `${o.id} [${o.model}]` : o.id);
  const lines = [
    `retake: ${completed.length}/${total} prompts completed, ${failed.length} failed — ${status}`,
    `  cost: $${cost.thisRunUsd.toFixed(4)} this run, $${cost.batchUsd.toFixed(4)} batch total`,
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
      `  paused  ${name(o)}: saved after ${o.iterations} iteration(s)${
        o.stopCause === "budget" ? " (--max-cost)" : ""
      }; run again to resume`,
    );
  }
  for (const o of failed) {
    lines.push(
      `  FAILED  ${name(o)}: ${o.error?.step ?? "?"} ${o.error?.iteration ?? ""}: ${
        escapeControls(o.error?.message ?? "unknown")
      }`,
    );
  }
  const notRun = total - outcomes.length;
  if (notRun > 0) {
    lines.push(`  ${notRun} prompts not finished: saved steps are kept; run again to resume`);
  }
  const dir = escapeControls(batchDir);
  lines.push(`Output: ${dir} (open ${dir}/index.html to see the images)`);
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
    // Not the iterations or the target: asking for more rounds continues from the saved ones.
    seed: config.seed,
    varySeed: config.varySeed,
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
  const specs = selectPrompts(await loadPrompts(promptFiles), config.only);
  const providers = await createProviders(config);
  await checkProviders(providers, io.signal ?? new AbortController().signal);
  const batchDir = `${config.out}/${batchName(config, promptFiles)}`;
  await ensureWritableDir(batchDir);
  // Held across every pass: another retake must not start on the folder between two passes.
  const lock = await lockBatch(batchDir);
  try {
    return await watchLocked(config, promptFiles, io, options, { specs, providers });
  } finally {
    await lock.release();
  }
}

async function watchLocked(
  config: Config,
  promptFiles: string[],
  io: RunIo,
  options: { debounceMs?: number },
  loaded: { specs: PromptSpec[]; providers: Providers },
): Promise<number> {
  const { providers } = loaded;
  let { specs } = loaded;
  const hashOf = (spec: PromptSpec) => promptHash(spec, resultSettings(config, providers));
  let known = new Map(specs.map((s) => [s.id, hashOf(s)]));
  const first = await runBatch(config, promptFiles, io, { specs, providers, locked: true });
  if (io.signal?.aborted) return first.exitCode;
  let lastCode = first.exitCode;
  const signal = io.signal ?? new AbortController().signal;
  const say = (text: string) => io.writeErr(`${escapeControls(text)}\n`);
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
        locked: true,
      });
      lastCode = result.exitCode;
      if (!signal.aborted) say(`Watching ${promptFiles.join(", ")} for changes (Ctrl-C to stop)`);
    },
    signal,
  );
  return lastCode === EXIT.interrupted ? EXIT.interrupted : EXIT.ok;
}
