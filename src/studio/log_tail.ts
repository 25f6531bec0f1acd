/**
 * The last lines of a batch's `log.jsonl` (secrets already redacted when they were written),
 * read from the end of the file so a long run's log costs the same as a short one's.
 *
 * @module
 */
import type { LogLine } from "./page.ts";

/** Bytes read from the end: enough for a hundred lines of a few hundred bytes each. */
const TAIL_BYTES = 128 * 1024;

/** The last `count` lines of a JSON-lines log, oldest first; none when there is no log. */
export async function readLogTail(path: string, count: number): Promise<LogLine[]> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  try {
    const size = (await file.stat()).size;
    const start = Math.max(0, size - TAIL_BYTES);
    await file.seek(start, Deno.SeekMode.Start);
    const bytes = new Uint8Array(size - start);
    for (let read = 0; read < bytes.length;) {
      const n = await file.read(bytes.subarray(read));
      if (n === null) break;
      read += n;
    }
    const lines = new TextDecoder().decode(bytes).split("\n");
    // A tail that starts mid-file starts mid-line.
    if (start > 0) lines.shift();
    return lines.filter((l) => l.trim() !== "").slice(-count).map(parseLine);
  } finally {
    file.close();
  }
}

function parseLine(line: string): LogLine {
  try {
    const value = JSON.parse(line);
    return {
      at: String(value["@timestamp"] ?? ""),
      level: String(value.level ?? ""),
      message: String(value.message ?? line),
    };
  } catch {
    // A line a crash cut short is shown as it is.
    return { at: "", level: "", message: line };
  }
}
