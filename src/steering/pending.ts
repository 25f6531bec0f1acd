/**
 * Notes left on a batch that no run is working on (`retake serve`): the prompts rejected with
 * them get their round, with the settings the batch was made with.
 *
 * @module
 */
import { type ConfigSources, loadConfig } from "../config.ts";
import { type BatchResult, runBatch, type RunIo } from "../run.ts";
import { Steering } from "./steering.ts";

/**
 * Runs one more round of every prompt of `batchDir` that has a note (a reject) no round has
 * taken yet, and nothing else: the batch's own settings and prompt files come from its
 * `run.json`, as `--replay` reads them, and the results go into the same folder. Returns
 * undefined when no note is pending. Throws {@linkcode InputError} when `run.json` or a prompt
 * file cannot be read.
 */
export async function runPendingRejects(
  batchDir: string,
  io: RunIo,
  sources: Omit<ConfigSources, "args">,
): Promise<BatchResult | undefined> {
  const steering = io.steering ?? await Steering.open(batchDir);
  const ids = steering.pendingIds().filter((id) => !steering.cancelled(id));
  if (ids.length === 0) return undefined;
  const at = batchDir.replace(/[\\/]+$/, "").lastIndexOf("/");
  const out = at > 0 ? batchDir.slice(0, at) : ".";
  const name = batchDir.slice(at + 1).replace(/[\\/]+$/, "");
  const invocation = await loadConfig({
    ...sources,
    args: ["--replay", `${batchDir}/run.json`, "--out", out, "--name", name],
  });
  return await runBatch(
    { ...invocation.config, only: ids },
    invocation.promptFiles,
    { ...io, steering },
  );
}
