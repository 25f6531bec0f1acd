/**
 * A batch folder's `run.json` as the readers of a folder read it (gallery, studio, export, the
 * round a note asks for): never through a link, never larger than a run of 200,000 prompts
 * writes, each field still to be checked where it is used.
 *
 * @module
 */
import { messageOf } from "../errors.ts";
import { parseRunInfo, type RunRead } from "./run_file.ts";
import { readTextInside } from "./safe_read.ts";

/** The largest `run.json` read: about 150 bytes a prompt, so some 200,000 prompts. */
export const MAX_RUN_FILE_BYTES = 32 * 1024 * 1024;

/** Reads `<batchDir>/run.json`; a problem says what is wrong, as `run.json <problem>`. */
export async function readBatchRun(batchDir: string): Promise<RunRead> {
  let text: string | undefined;
  try {
    text = await readTextInside(batchDir, "run.json", MAX_RUN_FILE_BYTES);
  } catch (error) {
    return { problem: `cannot be read: ${messageOf(error)}` };
  }
  if (text === undefined) return { problem: "is missing" };
  return parseRunInfo(text);
}
