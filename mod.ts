/**
 * retake as a library: what `retake run`, `retake eval`, `retake serve` and `retake gallery` do,
 * for a program of your own. `main.ts` runs the same code from the command line.
 *
 * Settings come from {@linkcode loadConfig}, which takes the same arguments, environment and
 * config file the command line does (and checks them the same way). With no key set, or with
 * `--offline`, every call goes to the embedded offline providers: no network, no cost.
 *
 * @example A batch of one prompt, offline
 * ```ts
 * import { loadConfig, runBatch } from "./mod.ts";
 *
 * const out = await Deno.makeTempDir();
 * const { config, promptFiles } = await loadConfig({
 *   args: ["--offline", "-n", "2", "-o", out, "-p", "a red kite over a green field"],
 *   env: {},
 *   cwd: Deno.cwd(),
 *   readTextFile: (path) => Deno.readTextFile(path),
 * });
 * const result = await runBatch(config, promptFiles, {
 *   writeOut: () => {},
 *   writeErr: () => {},
 *   isTerminal: false,
 * });
 * await Deno.remove(out, { recursive: true });
 * if (result.exitCode !== 0 || result.outcomes[0]?.status !== "completed") {
 *   throw new Error("the prompt should complete");
 * }
 * ```
 *
 * @module
 */
import type { Config } from "./src/config/types.ts";
import { type BatchResult, runBatch as runPreloadedBatch, type RunIo } from "./src/batch/run.ts";
import {
  type EvalOptions,
  type EvalResult,
  runEval as runReportedEval,
} from "./src/eval/runner.ts";
import {
  startStudio as startWiredStudio,
  type Studio,
  type StudioOptions,
} from "./src/studio/server.ts";

/**
 * Runs one batch end to end: reads and checks the prompt files, then generates, critiques and
 * refines every prompt, writing `<out>/<batch>/` (a folder per prompt, `run.json`,
 * `index.html`). A prompt a previous run completed with the same inputs is skipped, and an
 * interrupted one resumes where it stopped.
 *
 * Input errors throw {@linkcode InputError} before anything is written. A prompt that fails
 * is reported in its outcome and the others go on. A fatal error (a bad key, no quota left)
 * stops the run: found by the free checks at the start, it throws a {@linkcode ProviderError};
 * later, the run ends with `EXIT.stopped`.
 *
 * @param config The run's settings, from {@linkcode loadConfig}.
 * @param promptFiles The prompt files (JSON, JSON Lines, CSV, TSV, text); `-` is standard input.
 * @param io Output, terminal and signals.
 * @returns The exit code, the batch folder and how each prompt ended.
 */
export function runBatch(
  config: Config,
  promptFiles: string[],
  io: RunIo,
): Promise<BatchResult> {
  return runPreloadedBatch(config, promptFiles, io);
}

/**
 * Runs an eval, what `retake eval` does: each strategy as a batch of its own under
 * `<out>/<batch>/eval/` (`single`: one image; `best-of-n`: as many images from the original
 * prompt as refine's estimated spend buys; `refine`: the loop), then a judge scores every final
 * image. Writes `eval.json` (per strategy the mean score, cost and time; refine's win rate over
 * best-of-n with its 95% interval) and `eval.html` to the batch folder. `config.maxCost` covers
 * the whole eval, the judge included.
 *
 * Input errors throw {@linkcode InputError} before anything is written.
 *
 * @param config The run's settings, from {@linkcode loadConfig}.
 * @param promptFiles The prompt files, as for {@linkcode runBatch}.
 * @param options The strategies, the judge, refine's rounds.
 * @param io Output, terminal and signals.
 * @returns The exit code and the eval's batch folder.
 */
export function runEval(
  config: Config,
  promptFiles: string[],
  options: EvalOptions,
  io: RunIo,
): Promise<EvalResult> {
  return runReportedEval(config, promptFiles, options, io);
}

/**
 * Starts the studio, the local web app of `retake serve`, to browse: every batch under
 * `options.out`, each prompt's rounds with their images and critiques, updated as a run writes
 * them. It listens on 127.0.0.1 only, and answers only a browser given {@linkcode Studio.url}
 * with its secret token. Steering a batch from the page (notes, favourites, pause, cancel) is
 * left to the command line: `retake serve`, `retake run --ui`.
 *
 * @param options The output folder, the port, and where to report problems.
 * @returns The running studio: its URL (token included) and how to close it.
 */
export function startStudio(options: StudioOptions): Promise<Studio> {
  return startWiredStudio(options);
}

export { type BatchResult, type RunIo, watchBatch, type WatchOptions } from "./src/batch/run.ts";
export type { EvalOptions, EvalResult } from "./src/eval/runner.ts";
export type { JudgeChoice } from "./src/eval/judge.ts";
export { STRATEGIES, type StrategyName } from "./src/eval/strategies.ts";
export type { Studio, StudioOptions } from "./src/studio/server.ts";
export { type GalleryOptions, writeGallery } from "./src/gallery/gallery.ts";
export {
  type ConfigSources,
  type Invocation,
  loadConfig,
  type LoadOptions,
} from "./src/config/load.ts";
export type {
  A1111Config,
  ComfyUIBinding,
  ComfyUIConfig,
  Config,
  CriterionName,
  FalConfig,
  GeminiConfig,
  LocalConfig,
  OpenAIConfig,
  RetryConfig,
} from "./src/config/types.ts";
export type { FailureRecord, PromptOutcome, StepName } from "./src/output/record.ts";
export type { PipelineEvent } from "./src/pipeline/pipeline.ts";
export { InputError, ProviderError, type ProviderErrorOptions } from "./src/errors.ts";
export { EXIT } from "./src/exit_codes.ts";
