/**
 * The one reader of a prompt's `metadata.json`: the pipeline resuming it, the gallery, the
 * studio and the eval all read it here, never through a link, never larger than a record of a
 * hundred rounds writes, and only as a record when it has one's shape.
 *
 * @module
 */
import { messageOf } from "../errors.ts";
import type { PromptRecord } from "./record.ts";
import { readTextInside } from "./safe_read.ts";

/**
 * The largest `metadata.json` retake reads: a record of a hundred rounds with long critiques
 * stays far below it, and a planted giant is refused before it is read.
 */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** A record read, or why there is none: `missing` when the folder holds no `metadata.json`. */
export type RecordRead =
  | { record: PromptRecord; problem?: undefined; missing?: undefined }
  | { record?: undefined; problem: string; missing?: true };

/** A `metadata.json`'s text as a record, or why it is not one. */
export function parsePromptRecord(text: string): RecordRead {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { problem: `metadata.json is not valid JSON: ${messageOf(error)}` };
  }
  const record = value as Partial<PromptRecord> | null;
  if (
    record === null || typeof record !== "object" || typeof record.id !== "string" ||
    !Array.isArray(record.iterations)
  ) {
    return { problem: "metadata.json is not a retake record: it lacks 'id' or 'iterations'" };
  }
  return { record: record as PromptRecord };
}

/**
 * Reads `<root>/<folder>/metadata.json` without following a link anywhere below `root`.
 *
 * @example
 * ```ts
 * import { readPromptRecord } from "./record_file.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/p1`);
 * await Deno.writeTextFile(`${dir}/p1/metadata.json`, '{"id":"p1","iterations":[]}');
 * const read = await readPromptRecord(dir, "p1");
 * const none = await readPromptRecord(dir, "p2");
 * await Deno.remove(dir, { recursive: true });
 * if (read.record?.id !== "p1" || !none.missing) throw new Error("expected p1, and no p2");
 * ```
 */
export async function readPromptRecord(root: string, folder: string): Promise<RecordRead> {
  let text: string | undefined;
  try {
    text = await readTextInside(root, `${folder}/metadata.json`, MAX_RECORD_BYTES);
  } catch (error) {
    return { problem: `metadata.json cannot be read: ${messageOf(error)}` };
  }
  if (text === undefined) return { problem: "metadata.json is missing", missing: true };
  return parsePromptRecord(text);
}
