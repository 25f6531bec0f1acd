/**
 * Notes left on a batch that no run is working on (`retake serve`): the prompts rejected with
 * them get their round, shaped as the batch was made but paid for as this machine's settings say.
 *
 * @module
 */
import { MAX_RUN_FILE_BYTES } from "../output/run_file.ts";
import { type ConfigSources, loadConfig } from "../config/load.ts";
import { InputError } from "../errors.ts";
import { STDIN } from "../prompts/mod.ts";
import { type BatchResult, runBatch, type SteeredIo } from "../batch/run.ts";
import { readTextInside } from "../output/safe_read.ts";
import { Steering } from "../steering/steering.ts";

/**
 * Runs one more round of every prompt of `batchDir` that has a note (a reject) its steering may
 * run, and nothing else: a studio's steering runs only the notes sent through it, so a click
 * pays for what it names. The round's shape (model, size, seed, rubric) and the prompt files
 * come from the batch's `run.json`, as `--replay` reads them; what it may spend (offline,
 * `maxCost`, retries, concurrency, timeouts, prices, keys) from this machine's config file and
 * environment: the batch folder may be someone else's, and its `run.json` can only make the run
 * more careful. Returns undefined when no note is pending. Throws {@linkcode InputError} when
 * `run.json` or a prompt file cannot be read.
 */
export async function runPendingRejects(
  batchDir: string,
  io: SteeredIo,
  sources: Omit<ConfigSources, "args">,
): Promise<BatchResult | undefined> {
  const steering = io.steering ?? await Steering.open(batchDir, { fileNotes: "confirm" });
  const ids = steering.pendingIds().filter((id) => !steering.cancelled(id));
  if (ids.length === 0) return undefined;
  const at = batchDir.replace(/[\\/]+$/, "").lastIndexOf("/");
  const out = at > 0 ? batchDir.slice(0, at) : ".";
  const name = batchDir.slice(at + 1).replace(/[\\/]+$/, "");
  const runFile = `${batchDir}/run.json`;
  const invocation = await loadConfig({
    ...sources,
    // The batch's run.json never through a link, nor larger than a run writes.
    readTextFile: async (path) => {
      if (path !== runFile) return await sources.readTextFile(path);
      const text = await readTextInside(batchDir, "run.json", MAX_RUN_FILE_BYTES);
      if (text === undefined) throw new Deno.errors.NotFound(`'${runFile}' does not exist`);
      return text;
    },
    args: ["--replay", runFile, "--out", out, "--name", name],
  }, { receivedReplay: true });
  for (const file of invocation.promptFiles) {
    // A run.json from elsewhere may name any path: only a file is read as prompts.
    const info = await Deno.stat(file).catch(() => undefined);
    // `-` would be this process's standard input, not the run's prompts.
    if ((info !== undefined && !info.isFile) || file === STDIN) {
      throw new InputError(
        `Cannot run the notes of '${batchDir}' as its run.json names prompt file '${file}', which is not a file`,
      );
    }
  }
  return await runBatch(
    { ...invocation.config, only: ids },
    invocation.promptFiles,
    { ...io, steering },
  );
}
