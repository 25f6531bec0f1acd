/**
 * One batch run: prompt files → providers → pipeline → `run.json` and a summary. The library
 * entry point that `main.ts` wires to the command line.
 *
 * @module
 */
import { isDeepStrictEqual } from "node:util";
import { getLogger } from "@logtape/logtape";
import { from, merge, type Observable, tap } from "rxjs";
import sharp from "sharp";
import type { AdaptiveLimiter } from "../async/adaptive.ts";
import { safeBatchName } from "../output/folder_names.ts";
import { ensureWritableDir, removeStaleTemps } from "../output/atomic_write.ts";
import { FolderSink } from "../output/artifacts.ts";
import { Budget } from "../async/budget.ts";
import { describePlan, planOf } from "./dry_run.ts";
import { jsonLine, jsonSummary } from "./json_summary.ts";
import { type Config, retryOptionsOf, secretsOf } from "../config.ts";
import { InputError, isFatal, messageOf, ProviderError } from "../errors.ts";
import { fnv1a32 } from "../util/hash.ts";
import { writeGallery } from "../gallery/gallery.ts";
import { verifyImageFile } from "../output/image_check.ts";
import { setupLogging } from "../util/logging.ts";
import { lockBatch } from "../output/lock.ts";
import { type PipelineEvent, type PipelineOptions, runPipeline } from "../pipeline/pipeline.ts";
import type { PromptSink } from "../output/sink.ts";
import type { PromptOutcome } from "../output/record.ts";
import { ProgressLine, ProgressTracker, stepsPerPrompt } from "./progress.ts";
import { formatSummary } from "./summary.ts";
import {
  problemsError,
  type PromptFields,
  promptHash,
  type PromptSpec,
  readPromptFile,
  type ReadResult,
  STDIN,
} from "../prompts/mod.ts";
import { selectPrompts } from "../prompts/select.ts";
import { mayEdit, mostRounds, planGroups, withOwnModels } from "../prompts/settings.ts";
import { checkProviders, createProviders, type Providers } from "../providers/registry.ts";
import type { PromptRecord } from "../output/record.ts";
import { transition } from "../pipeline/state.ts";
import { compareModels, writeComparisonFile } from "../output/comparison_file.ts";
import { RetryBudget } from "../async/retry.ts";
import { escapeControls } from "../util/terminal_text.ts";
import { EXIT } from "../exit_codes.ts";
import { outcomeKey, previousEntries, RunFile } from "../output/run_file.ts";
import { runOnChanges, watchFiles } from "./watch.ts";
import { COMMAND_LINE, oneOffPrompt } from "../prompts/one_off.ts";
import {
  batchPipeline,
  cancelJobs,
  closeSessions,
  openSessions,
  waitingFor,
} from "../batch_api/run_sessions.ts";
import { PromptQueue } from "../steering/queue.ts";
import { Steering } from "../steering/steering.ts";

export { VERSION } from "../output/run_file.ts";

export { EXIT } from "../exit_codes.ts";

/** The outside world of a batch, injected so a program (or a test) runs it in-process. */
export interface RunIo {
  /** Writes to standard output: the summary, or with `--json` its JSON document. */
  writeOut: (text: string) => void;
  /** Writes to standard error: progress, notices and warnings. */
  writeErr: (text: string) => void;
  /** Whether stderr is a terminal (live progress line). */
  isTerminal: boolean;
  /**
   * The terminal's width in columns, asked at every redraw of the progress line.
   *
   * @default {() => 80}
   */
  columns?: () => number;
  /** Aborted on the first Ctrl-C / SIGTERM: drain, then stop after the grace period. */
  signal?: AbortSignal;
  /** Aborted on the second Ctrl-C: stop at once. */
  abortNow?: AbortSignal;
  /** Every pipeline event, as it happens (the studio's live view). */
  onEvent?: (event: PipelineEvent) => void;
}

/** {@linkcode RunIo}, and the studio's steering when one is attached (`--ui`, `retake serve`). */
export interface SteeredIo extends RunIo {
  /**
   * The batch's steering, when a studio is attached: the run follows its pause, front and
   * cancel. Without one the run opens the batch's own (`feedback.jsonl`), so notes and cancels
   * left by an earlier studio are honoured.
   */
  steering?: Steering;
}

/** What a batch run produced. */
export interface BatchResult {
  /** The process exit code the run ends with: one of {@linkcode EXIT}'s values. */
  exitCode: number;
  /** The batch folder, `<out>/<batch name>`: `run.json`, `index.html` and a folder per prompt. */
  batchDir: string;
  /** How each prompt ended, in the order they ended; empty for a dry run. */
  outcomes: PromptOutcome[];
}

/** Where a batch's prompts come from besides its files, and how to read them. */
export interface PromptSources extends PromptFields {
  /** A prompt given on the command line (`--prompt`): a one-off, its id made from the text. */
  prompt?: string | undefined;
  /** Told how a file was read when anything was found rather than named as usual. */
  onNote?: (line: string) => void;
}

/**
 * Loads and checks every prompt file before anything is written; every problem in every file
 * is reported at once, in one {@linkcode InputError}.
 */
export async function loadPrompts(
  files: string[],
  sources: PromptSources = {},
): Promise<PromptSpec[]> {
  if (files.length === 0 && !sources.prompt) {
    throw new InputError(
      "Cannot start as no prompt file was given: run 'retake prompts/example.json', or 'retake --prompt \"a red fox\"' (see --help)",
    );
  }
  const all: PromptSpec[] = [];
  const problems: string[] = [];
  const origin = new Map<string, { file: string; spec: PromptSpec }>();
  const reads: Array<[string, () => Promise<ReadResult>]> = files.map((
    file,
  ) => [file, () => readPromptFile(file, sources)]);
  if (sources.prompt) {
    const prompt = sources.prompt;
    reads.unshift([COMMAND_LINE, () => Promise.resolve(oneOffPrompt(prompt))]);
  }
  for (const [file, read$] of reads) {
    let read;
    try {
      read = await read$();
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      problems.push(error.message);
      continue;
    }
    problems.push(...read.problems);
    if (read.note !== undefined) sources.onNote?.(read.note);
    // One file's ids are unique already: a batch of one file is not indexed again.
    if (reads.length === 1) {
      for (const spec of read.specs) all.push(spec);
      continue;
    }
    addAcrossFiles({ all, problems, origin }, file, read.specs);
  }
  if (problems.length > 0) throw problemsError(problems);
  return all;
}

/**
 * Adds one file's prompts to those of the files before it: the same prompt in two files is
 * one, and an id another file gave a different prompt is a problem.
 */
function addAcrossFiles(
  batch: {
    all: PromptSpec[];
    problems: string[];
    origin: Map<string, { file: string; spec: PromptSpec }>;
  },
  file: string,
  specs: PromptSpec[],
): void {
  for (const spec of specs) {
    const key = spec.id.toLowerCase();
    const first = batch.origin.get(key);
    // The same prompt in two files (a line two text files share) is one prompt.
    if (first !== undefined && isDeepStrictEqual(first.spec, spec)) continue;
    if (first !== undefined) {
      batch.problems.push(
        `Invalid prompt '${escapeControls(spec.id)}' in '${
          escapeControls(file)
        }': field 'id' is also used in '${
          escapeControls(first.file)
        }'; ids must be unique across files`,
      );
      continue;
    }
    batch.origin.set(key, { file, spec });
    batch.all.push(spec);
  }
}

export { selectPrompts };

/**
 * Batch folder name: `--name`, else the first prompt file's name without extension; one plain
 * folder name either way, so the batch never lands outside `--out`.
 */
export function batchName(config: Config, files: string[]): string {
  if (config.name) return safeBatchName(config.name);
  // A prompt from the command line or standard input has no file to name the batch after.
  if (files.length === 0) return "prompt";
  if (files[0] === STDIN) return "stdin";
  const base = files[0]!.split(/[\\/]/).pop()!.replace(/\.[^.]*$/, "");
  return base ? safeBatchName(base) : "batch";
}

/** The config's prompt sources, with how each file was read told on stderr unless `--quiet`. */
export function promptSources(
  config: Pick<Config, "prompt" | "promptField" | "idField" | "checksField" | "quiet">,
  io: Pick<RunIo, "writeErr">,
): PromptSources {
  const { prompt, promptField, idField, checksField } = config;
  return {
    prompt,
    promptField,
    idField,
    checksField,
    ...(!config.quiet && { onNote: (line: string) => io.writeErr(`${line}\n`) }),
  };
}

/** Seed for a prompt's iteration: one per prompt unless `varySeed`. */
export function seedFor(config: Config, spec: PromptSpec, iteration: number): number {
  // These values are users' reproducible seeds, never to change. A prompt's own seed wins.
  const base = spec.settings?.seed ?? config.seed ?? fnv1a32(spec.id);
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
  io: SteeredIo,
  preloaded?: Preloaded,
): Promise<BatchResult> {
  // Each image is read once or twice, in separate steps: libvips' operation cache (50 MB by
  // default) would only hold memory that grows with the batch.
  sharp.cache(false);
  // One libvips thread per operation: a batch works on many images at once, so the cores are
  // busy anyway, and splitting a small image among threads costs more than it saves.
  sharp.concurrency(1);
  const loaded = preloaded?.specs ??
    selectPrompts(await loadPrompts(promptFiles, promptSources(config, io)), config.only);
  const providers = preloaded?.providers ?? await createProviders(config, loaded);
  // A prompt's own model, resolved as the batch's is (an alias to its id).
  const specs = withOwnModels(config, loaded, providers.resolveModel);
  // The checks of keys and models are free: a dry run makes them too, so it finds a bad key.
  if (!preloaded?.providers) {
    await checkProviders(providers, io.signal ?? new AbortController().signal);
  }
  if (config.dryRun) {
    const batchDir = `${config.out}/${batchName(config, promptFiles)}`;
    const plan = planOf(config, specs, providers, batchDir);
    io.writeOut(config.json ? jsonLine(plan) : describePlan(plan));
    return { exitCode: EXIT.ok, batchDir, outcomes: [] };
  }
  const models = config.models?.length
    ? [...new Set(config.models.map(providers.resolveModel))]
    : [providers.model];
  checkPricesForBudget(config, providers, models, specs);
  const batchDir = `${config.out}/${batchName(config, promptFiles)}`;
  await ensureWritableDir(batchDir);
  const lock = preloaded?.locked ? undefined : await lockBatch(batchDir);
  try {
    await removeStaleTemps(batchDir);
    if (config.cancelBatchJobs) {
      const signal = io.signal ?? new AbortController().signal;
      io.writeOut(await cancelJobs(providers.batchSessions ?? [], batchDir, signal));
      return { exitCode: EXIT.ok, batchDir, outcomes: [] };
    }
    const mode = preloaded?.mode ?? "refine";
    const steering = io.steering ?? await Steering.open(batchDir);
    const batch = { config, promptFiles, io, specs, providers, models, batchDir, mode, steering };
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
  steering: Steering;
}

/** The batch's run once its folder is locked: logs, run.json, the pipeline, then the summary. */
async function runLocked(batch: Batch, options: { partial: boolean }): Promise<BatchResult> {
  const { config, io, providers, batchDir } = batch;
  const budget = new Budget(config.maxCost);
  const tracker = trackerOf(batch, budget);
  const progress = config.quiet ? undefined : new ProgressLine(tracker, {
    write: io.writeErr,
    interactive: io.isTerminal,
    ...(io.columns && { columns: io.columns }),
  });
  const closeLogs = await openRun(batch, progress);
  const runFile = await startRunFile(batch, options, budget);
  const ending = await driveShown(batch, budget, tracker, progress);
  // Every prompt went through (failed ones included): no kept batch answer is needed again.
  await closeSessions(providers.batchSessions ?? [], /^completed/.test(ending.status));
  const stopReason = await finishRun(batch, runFile, ending, budget);
  await closeLogs();
  report(batch, ending, stopReason, runFile, budget);
  return { exitCode: ending.exitCode, batchDir, outcomes: ending.outcomes };
}

/** Counts the run's steps for the progress line. */
function trackerOf(batch: Batch, budget: Budget): ProgressTracker {
  const { config, io, specs, providers, models } = batch;
  const sessions = providers.batchSessions ?? [];
  return new ProgressTracker(specs.length * models.length, {
    ...(sessions.length > 0 && { waiting: () => waitingFor(sessions) }),
    stepsPerPrompt: stepsPerPrompt({
      iterations: config.iterations,
      refine: batch.mode !== "sample",
      brief: providers.critic.brief !== undefined,
    }),
    // Ctrl-C or the budget: calls in flight finish, nothing new starts, so no ETA holds.
    draining: () => io.signal?.aborted === true || budget.refused,
  });
}

/** Starts the run's logging and finds the batch jobs an earlier run left; returns the close. */
async function openRun(batch: Batch, progress?: ProgressLine): Promise<() => Promise<void>> {
  const { config, io, providers, batchDir } = batch;
  const closeLogs = await setupLogging({
    // -q hides the progress line, never a warning (README, Usage).
    level: config.verbose ? "debug" : "warning",
    writeErr: io.writeErr,
    ...(progress && { beforeWrite: () => progress.clear() }),
    jsonlPath: `${batchDir}/log.jsonl`,
    secrets: secretsOf(config),
  });
  if (providers.notice && !config.quiet) io.writeErr(`${providers.notice}\n`);
  try {
    // Jobs an earlier run left are found before anything is sent.
    await openSessions(providers.batchSessions ?? [], batchDir, io.signal);
  } catch (error) {
    await closeLogs();
    throw error;
  }
  return closeLogs;
}

/** The run's `run.json`, written as `running` with room kept for the final record. */
async function startRunFile(
  batch: Batch,
  options: { partial: boolean },
  budget: Budget,
): Promise<RunFile> {
  const { config, specs, providers, batchDir } = batch;
  const runFile = new RunFile(batch, {
    // A run of some prompts (--only, a watch pass) updates the batch's run.json rather than
    // replacing it with those prompts alone: the gallery and its totals describe the whole batch.
    kept: config.only?.length || options.partial ? await previousEntries(batchDir) : [],
  });
  getLogger(["retake", "run"]).info(
    "Started batch {batch} with {prompts} prompts: generator {generator}, critic {critic}",
    {
      batch: batchDir,
      prompts: specs.length,
      generator: providers.generator.name,
      critic: providers.critic.name,
      model: providers.model,
    },
  );
  // Room for the final record before anything is paid: a disk that fills during the run must
  // still get the run.json that says why it stopped.
  await runFile.reserve();
  await runFile.write("running", [], budget.spentUsd);
  return runFile;
}

/** {@linkcode drive} with the progress line shown and an interrupt logged as it comes. */
async function driveShown(
  batch: Batch,
  budget: Budget,
  tracker: ProgressTracker,
  progress?: ProgressLine,
): Promise<Ending> {
  const { io } = batch;
  const onInterrupt = () =>
    getLogger(["retake", "run"]).info(
      "Interrupted by the user: no new paid call starts; calls in flight finish and are saved",
    );
  io.signal?.addEventListener("abort", onInterrupt, { once: true });
  progress?.start();
  return await drive(batch, budget, tracker).finally(() => {
    io.signal?.removeEventListener("abort", onInterrupt);
    progress?.stop();
  });
}

/**
 * Writes the final run.json, the comparison and the gallery; returns why the run stopped,
 * which a file that could not be written becomes when nothing else stopped it.
 */
async function finishRun(
  batch: Batch,
  runFile: RunFile,
  ending: Ending,
  budget: Budget,
): Promise<string | undefined> {
  const { specs, models, batchDir } = batch;
  const { outcomes } = ending;
  const log = getLogger(["retake", "run"]);
  let stopReason = ending.stopReason;
  try {
    await runFile.finish(ending.status, outcomes, budget.spentUsd, ending.stopReason);
  } catch (error) {
    // Every prompt's own metadata is already saved; a missing summary file must not hide that.
    log.error("Could not write {file}: {reason}", { file: runFile.path, reason: messageOf(error) });
    stopReason ??= messageOf(error);
  }
  try {
    if (models.length > 1) {
      await writeComparisonFile(batchDir, compareModels(specs, models, outcomes));
    }
    const page = await writeGallery(batchDir);
    log.info("Wrote the gallery {page}", { page });
  } catch (error) {
    log.error("Could not write the gallery or comparison: {reason}", { reason: messageOf(error) });
    stopReason ??= messageOf(error);
  }
  log.info("Finished batch {batch}: {status} in {durationMs} ms, ${costUsd} this run", {
    batch: batchDir,
    status: ending.status,
    durationMs: runFile.elapsedMs(),
    costUsd: budget.spentUsd,
  });
  return stopReason;
}

/** The run's summary on stdout (text or JSON), and why it stopped on stderr. */
function report(
  batch: Batch,
  ending: Ending,
  stopReason: string | undefined,
  runFile: RunFile,
  budget: Budget,
): void {
  const { config, io, specs, models, batchDir } = batch;
  const { outcomes } = ending;
  // Prompts finish in any order; the summary follows the file.
  const order = new Map(specs.map((spec, index) => [spec.id, index]));
  outcomes.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  const cost = { thisRunUsd: budget.spentUsd, batchUsd: runFile.batchCostUsd(outcomes) };
  io.writeOut(
    config.json
      ? jsonLine(jsonSummary({
        batchDir,
        ids: specs.map((s) => s.id),
        models,
        outcomes,
        status: ending.status,
        exitCode: ending.exitCode,
        format: config.format,
        cost,
        ...(stopReason !== undefined && { stopReason }),
      }))
      : formatSummary(batchDir, specs.length * models.length, outcomes, ending.status, cost),
  );
  if (stopReason) io.writeErr(`error: ${escapeControls(stopReason)}\n`);
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
  const { config, io, steering } = batch;
  const run = new Drive(batch, budget, tracker);
  const detach = run.attach();
  const stopper = hardStop(io, config.graceMs);
  let ending: Ending = { status: "completed", exitCode: EXIT.ok, outcomes: run.outcomes };
  try {
    await run.pass(run.mainPass(), stopper);
    await noteRounds(batch, budget, run.outcomes, run.since, (pass) => run.pass(pass, stopper));
  } catch (error) {
    ending = cutShort(error, io, run.outcomes);
    await settleUnfinished(run.outcomes, run.live);
  } finally {
    detach();
    await steering.settleFavourites().catch((error) =>
      getLogger(["retake", "run"]).error("Could not save a favourite: {reason}", {
        reason: messageOf(error),
      })
    );
  }
  return ending.status === "completed" ? ranThrough(batch, budget, run.outcomes) : ending;
}

/** A prompt's latest record while it runs, with the sink that saves it and its model. */
type LiveRecord = { record: PromptRecord; sink: FolderSink; model: string };

/**
 * What every pass of one batch run shares: the outcomes so far, the records still running, the
 * retry budget and the services' limiters. A class, as the passes' closures all write to them.
 */
class Drive {
  readonly outcomes: PromptOutcome[] = [];
  /**
   * Every prompt's live record, so a run cut short (a second Ctrl-C, a fatal error) still
   * accounts for prompts whose outcome never came.
   */
  readonly live = new Map<string, LiveRecord>();
  /** --force redoes what was cancelled before this run; a cancel during it still counts. */
  readonly since: number;
  readonly #retryBudget: RetryBudget;
  /** Compared models share each service's limiter: its quota is the account's, not a model's. */
  readonly #limiters = new Map<string, AdaptiveLimiter>();
  readonly #queues: PromptQueue[] = [];
  readonly #steered: NonNullable<PipelineOptions["steering"]>;

  constructor(
    readonly batch: Batch,
    readonly budget: Budget,
    readonly tracker: ProgressTracker,
  ) {
    const { config, steering } = batch;
    this.#retryBudget = new RetryBudget(config.retry.budget);
    this.since = config.force ? steering.lastSeq : 0;
    const since = this.since;
    this.#steered = {
      get paused() {
        return steering.paused;
      },
      resumed: (signal) => steering.resumed(signal),
      cancelled: (id) => steering.cancelled(id, since),
      pendingNotes: (id) => steering.pendingNotes(id),
      markDone: (seqs) => steering.markDone(seqs),
    };
  }

  /** Follows the studio's reordering and tells it which prompts are running; returns undo. */
  attach(): () => void {
    const { steering, models } = this.batch;
    const unsubscribe = steering.subscribe((entry) => {
      if (entry.action.type !== "front") return;
      for (const queue of this.#queues) queue.front(entry.action.id);
    });
    const detach = steering.attach({
      isLive: (id) => models.some((model) => this.live.has(outcomeKey(id, model))),
    });
    return () => {
      unsubscribe();
      detach();
    };
  }

  /**
   * The batch's own pass. The prompts wait in a queue, taken as first generations can start (a
   * batch's first results come early), which a studio can reorder.
   */
  mainPass(): Pass {
    return {
      prompts: () => {
        const queue = new PromptQueue(this.batch.specs);
        this.#queues.push(queue);
        return queue;
      },
    };
  }

  /** Runs one pass for every model, side by side: each is its own endpoint at the provider. */
  pass(pass: Pass, stopper: AbortSignal | undefined): Promise<void> {
    const pipeline = merge(...this.batch.models.map((model) => this.#runModel(model, pass)));
    return untilDone(pipeline.pipe(tap((outcome) => this.#settle(outcome))), stopper);
  }

  #settle(outcome: PromptOutcome): void {
    this.outcomes.push(outcome);
    // Only prompts still running are tracked: a batch of any size holds a bounded number.
    this.live.delete(outcomeKey(outcome.id, outcome.model));
  }

  #runModel(model: string, pass: Pass): Observable<PromptOutcome> {
    const { batchDir, models, steering } = this.batch;
    const sink = new FolderSink(batchDir, verifyImageFile, models.length > 1 ? model : undefined);
    const track = (record: PromptRecord) =>
      this.live.set(outcomeKey(record.id, model), { record, sink, model });
    return runPipeline(pass.prompts(), this.#options(model, pass, tracked(sink, track, steering)));
  }

  #options(model: string, pass: Pass, sink: PromptSink): PipelineOptions {
    const { config, io, specs, providers, models } = this.batch;
    const iterations = pass.iterations ?? config.iterations;
    return {
      generator: providers.generator,
      critic: providers.critic,
      refiner: providers.refiner,
      sink,
      iterations,
      // Prompts that ask for more rounds than the batch get them: the chain is built for the most.
      rounds: mostRounds(specs, iterations),
      ...(config.targetScore !== undefined && { targetScore: config.targetScore }),
      ...(config.targetCriteria !== undefined && { targetCriteria: config.targetCriteria }),
      patience: config.patience,
      refineMode: config.refine,
      mode: this.batch.mode,
      concurrency: config.concurrency,
      sharedLimiters: this.#limiters,
      width: config.size.width,
      height: config.size.height,
      format: config.format,
      model,
      seedFor: (spec, iteration) => seedFor(config, spec, iteration),
      hashFor: (spec) => promptHash(spec, { ...resultSettings(config, providers), model }),
      force: config.force,
      ...(io.signal && { stop: io.signal }),
      budget: this.budget,
      retry: { ...retryOptionsOf(config), budget: this.#retryBudget },
      timeoutMs: config.timeoutMs,
      // Remote providers keep the deadline themselves and cancel the request at the service.
      timeoutSlackMs: 5_000,
      // --batch-api: a round's calls meet in waves, and wait as long as a job takes.
      ...(providers.batchSessions?.length && batchPipeline(specs.length * models.length)),
      steering: this.#steered,
      ...(pass.reopen && { reopen: pass.reopen }),
      onEvent: (event) => {
        // A note's round reopens a prompt the progress line has already counted as done.
        const recount = event.type === "prompt-start" || event.type === "prompt-end";
        if (!(pass.reopen && recount)) this.tracker.update(event);
        io.onEvent?.(event);
      },
    };
  }
}

/** How a run that threw ended: interrupted, stopped by a fatal error, or crashed. */
function cutShort(error: unknown, io: RunIo, outcomes: PromptOutcome[]): Ending {
  const log = getLogger(["retake", "run"]);
  if (io.signal?.aborted) {
    log.warn("Interrupted: calls still in flight after the grace period were cancelled");
    // Its status is settled with those of runs that went through.
    return { status: "completed", exitCode: EXIT.ok, outcomes };
  }
  const stopReason = messageOf(error);
  if (isFatal(error)) {
    log.fatal("Stopped the run: {reason}", {
      reason: stopReason,
      ...(error instanceof ProviderError && { provider: error.provider }),
    });
    return { status: "stopped", exitCode: EXIT.stopped, stopReason, outcomes };
  }
  log.fatal("The run stopped on an unexpected error: {reason}", { reason: stopReason });
  return { status: "crashed", exitCode: EXIT.someFailed, stopReason, outcomes };
}

/** How a run that did not throw (or was interrupted) ended. */
function ranThrough(batch: Batch, budget: Budget, outcomes: PromptOutcome[]): Ending {
  if (batch.io.signal?.aborted) {
    return { status: "interrupted", exitCode: EXIT.interrupted, outcomes };
  }
  if (budget.refused) {
    return {
      status: "stopped at the cost budget",
      exitCode: EXIT.budget,
      stopReason: `Reached --max-cost $${batch.config.maxCost} ($${
        budget.spentUsd.toFixed(4)
      } spent this run): no step was started that the budget could not cover. Raise the budget and run again to resume.`,
      outcomes,
    };
  }
  if (outcomes.some((o) => o.status === "failed")) {
    return { status: "completed with failures", exitCode: EXIT.someFailed, outcomes };
  }
  return { status: "completed", exitCode: EXIT.ok, outcomes };
}

/** One run of the pipeline over some prompts: the batch's, or those with notes to act on. */
interface Pass {
  prompts: () => Parameters<typeof runPipeline>[0];
  iterations?: number;
  reopen?: PipelineOptions["reopen"];
}

/**
 * After the batch, one more round for every prompt rejected with a note no round has taken yet
 * (it had finished, or was on its last round, when the note came): again while notes keep
 * coming, each note tried once. Outcomes of the prompts redone replace their earlier ones.
 */
async function noteRounds(
  batch: Batch,
  budget: Budget,
  outcomes: PromptOutcome[],
  cancelsBefore: number,
  run: (pass: Pass) => Promise<void>,
): Promise<void> {
  const { io, specs, models, batchDir, steering } = batch;
  const tried = new Set<number>();
  while (!io.signal?.aborted && !budget.refused) {
    // A note sent as the batch ended is still being written: it gets its round now.
    await steering.idle();
    const due = specs.filter((spec) =>
      !steering.cancelled(spec.id, cancelsBefore) &&
      steering.pendingNotes(spec.id).some((entry) => !tried.has(entry.seq))
    );
    if (due.length === 0) return;
    for (const spec of due) {
      for (const entry of steering.pendingNotes(spec.id)) tried.add(entry.seq);
    }
    const ids = new Set(due.map((spec) => spec.id));
    let rounds = 0;
    for (const model of models) {
      const sink = new FolderSink(batchDir, verifyImageFile, models.length > 1 ? model : undefined);
      for (const spec of due) {
        const record = await sink.load(sink.folderFor(spec)).catch(() => undefined);
        rounds = Math.max(rounds, record?.iterations?.length ?? 0);
      }
    }
    getLogger(["retake", "run"]).info(
      "Giving {count} prompt(s) one more round for the notes they were rejected with",
      { count: due.length, prompts: [...ids] },
    );
    // Redone: their outcome is the one this pass gives.
    const kept = outcomes.filter((o) => !ids.has(o.id));
    outcomes.splice(0, outcomes.length, ...kept);
    await run({ prompts: () => from(due), iterations: rounds + 1, reopen: (id) => ids.has(id) });
  }
}

/**
 * A sink that reports every record it saves, so the run knows each prompt's latest state, and
 * carries the user's favourite into every save: the record in the run's hands never drops it.
 */
function tracked(
  sink: FolderSink,
  track: (record: PromptRecord) => void,
  steering: Steering,
): PromptSink {
  const choose = (record: PromptRecord): PromptRecord => {
    const chosen = steering.chosen(record.id);
    const drawn = record.iterations.some((it) => it.iteration === chosen && it.image !== undefined);
    return chosen !== undefined && drawn ? { ...record, chosen } : record;
  };
  return Object.assign(Object.create(sink) as FolderSink, {
    start: (spec: PromptSpec, record: PromptRecord) => (track(record), sink.start(spec, record)),
    saveRecord: (record: PromptRecord) => {
      const saved = choose(record);
      track(saved);
      return sink.saveRecord(saved);
    },
    saveBest: (record: PromptRecord, image: string) => sink.saveBest(choose(record), image),
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
  for (const [key, { record: last, sink, model }] of live) {
    if (done.has(key)) continue;
    let record = last;
    if (record.status === "running") {
      record = transition(record, { type: "interrupted" });
      if (record.stopCause === undefined) {
        record = transition(record, { type: "stopped", cause: "interrupt" });
      }
    }
    record = transition(record, { type: "totals" });
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
function checkPricesForBudget(
  config: Config,
  providers: Providers,
  models: string[],
  specs: readonly PromptSpec[],
): void {
  if (config.maxCost === undefined) return;
  const { generator, critic, refiner } = providers;
  const unknown: string[] = [];
  const edits = mayEdit(config, specs);
  // Every model at every size the prompts ask for, their own included, and its edits.
  for (const model of models) {
    for (const { plan } of planGroups(config, model, specs)) {
      if (generator.estimateCostUsd && generator.estimateCostUsd(plan) === undefined) {
        unknown.push(`${generator.name} model '${plan.model}'`);
      }
      const editModel = edits ? generator.editModel?.(plan.model) : undefined;
      if (
        editModel !== undefined && generator.estimateCostUsd &&
        generator.estimateCostUsd({ ...plan, edit: true }) === undefined
      ) {
        unknown.push(`${generator.name} edit endpoint '${editModel}'`);
      }
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
      } is unknown: add it to the prices in the config file (see README, Costs), or run without --max-cost${
        unknown.some((u) => u.includes(" edit endpoint "))
          ? " (or redraw instead of editing: --refine regenerate)"
          : ""
      }`,
    );
  }
}

/** The settings that change a prompt's result: part of its content hash. */
function resultSettings(config: Config, providers: Providers): Record<string, unknown> {
  return {
    generator: providers.generator.name,
    model: providers.model,
    // What besides the model decides the images (a ComfyUI workflow): edited, it draws anew.
    ...(providers.generator.fingerprint !== undefined &&
      { workflow: providers.generator.fingerprint }),
    critic: providers.critic.name,
    criticModel: config.criticModel,
    // The rubric changes the scores, so the best round and the refined prompts.
    criticRubric: config.criticRubric,
    criticWeights: config.criticWeights,
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

/** Options for {@linkcode watchBatch}. */
export interface WatchOptions {
  /**
   * Quiet time after the last change to a prompt file before a pass starts, in ms.
   *
   * @default {200}
   */
  debounceMs?: number;
}

/**
 * Runs the batch, then watches the prompt files and re-processes only the prompts that were
 * added or edited, until `io.signal` aborts. An invalid edit is reported and watching goes on.
 *
 * @param config The run's settings, from `loadConfig`.
 * @param promptFiles The prompt files to run and watch (not `-`, standard input).
 * @param io Output, terminal and signals.
 * @param options How long to wait after a change.
 * @returns The exit code of the last pass.
 */
export async function watchBatch(
  config: Config,
  promptFiles: string[],
  io: RunIo,
  options: WatchOptions = {},
): Promise<number> {
  if (promptFiles.length === 0 || promptFiles.includes(STDIN)) {
    throw new InputError(
      "Cannot watch a prompt given on the command line or standard input: save it in a file and watch that",
    );
  }
  const specs = selectPrompts(
    await loadPrompts(promptFiles, promptSources(config, io)),
    config.only,
  );
  const providers = await createProviders(config, specs);
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
  options: WatchOptions,
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
        specs = selectPrompts(await loadPrompts(promptFiles, config), config.only);
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
