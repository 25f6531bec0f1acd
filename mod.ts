/**
 * retake as a library: what `retake run`, `retake eval`, `retake serve` and `retake gallery` do,
 * for a program of your own. `main.ts` wires exactly these to the command line.
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
export {
  type BatchResult,
  type Preloaded,
  type PromptSources,
  runBatch,
  type RunIo,
  watchBatch,
} from "./src/batch/run.ts";
export { type EvalOptions, type EvalResult, runEval } from "./src/eval/runner.ts";
export { startStudio, type Studio, type StudioOptions } from "./src/studio/server.ts";
export { type GalleryOptions, writeGallery } from "./src/gallery/gallery.ts";
export {
  type ConfigSources,
  type Invocation,
  loadConfig,
  type LoadOptions,
} from "./src/config/load.ts";
export type { Config } from "./src/config.ts";
export type { PromptSpec } from "./src/prompts/spec.ts";
export type { PromptOutcome, PromptRecord } from "./src/output/record.ts";
export type { PipelineEvent } from "./src/pipeline/pipeline.ts";
export { InputError, ProviderError } from "./src/errors.ts";
export { EXIT } from "./src/exit_codes.ts";
