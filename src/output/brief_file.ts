/**
 * `brief.json`, a prompt's checklist: the one module that writes and reads it. The record keeps
 * a copy (`brief` in `metadata.json`), which a reader falls back on.
 *
 * @module
 */
import { type Brief, briefSchema } from "../providers/critique.ts";
import { writeJsonAtomic } from "./atomic_write.ts";
import { MAX_RECORD_BYTES } from "./record_file.ts";
import { readTextInside } from "./safe_read.ts";

/** The file's name in a prompt's folder. */
export const BRIEF_FILE = "brief.json";

/** Writes `brief` to `<dir>/brief.json` atomically; `dir` lies in the batch folder `within`. */
export async function writeBriefFile(within: string, dir: string, brief: Brief): Promise<void> {
  await writeJsonAtomic(`${dir}/${BRIEF_FILE}`, brief, { within });
}

/**
 * The brief in `<folder>/brief.json` below `within` (never read through a link), else the
 * record's copy `fallback`; undefined when neither is a valid brief.
 *
 * @example
 * ```ts
 * import { readBriefFile } from "./brief_file.ts";
 * const dir = await Deno.makeTempDir();
 * const fallback = { checks: [{ id: "c1", question: "Is there a kite?", kind: "entity" }] };
 * const brief = await readBriefFile(dir, "p1", fallback);
 * if (brief?.checks[0]?.id !== "c1") throw new Error("no file: the record's copy");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readBriefFile(
  within: string,
  folder: string,
  fallback?: unknown,
): Promise<Brief | undefined> {
  const fromFile = briefSchema.safeParse(await readJson(within, `${folder}/${BRIEF_FILE}`));
  if (fromFile.success) return fromFile.data;
  const fromRecord = briefSchema.safeParse(fallback);
  return fromRecord.success ? fromRecord.data : undefined;
}

async function readJson(within: string, rel: string): Promise<unknown> {
  try {
    const text = await readTextInside(within, rel, MAX_RECORD_BYTES);
    return text === undefined ? undefined : JSON.parse(text);
  } catch {
    // Unreadable or not JSON: the record's copy, if any, is the brief.
    return undefined;
  }
}
