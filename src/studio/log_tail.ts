/**
 * The last lines of a batch's `log.jsonl` (secrets already redacted when they were written),
 * read from the end of the file so a long run's log costs the same as a short one's.
 *
 * @module
 */
import { openInside, UnsafeFileError } from "../output/safe_read.ts";
import type { LogLine } from "./page.ts";

/** Bytes read from the end: enough for a hundred lines of a few hundred bytes each. */
const TAIL_BYTES = 128 * 1024;

/**
 * The last `count` lines of the batch's `log.jsonl`, oldest first; none when there is no log.
 * A log that is a link (or not a file) is not read: one line says so.
 */
export async function readLogTail(batchDir: string, count: number): Promise<LogLine[]> {
  let file;
  try {
    file = await openInside(batchDir, "log.jsonl");
  } catch (error) {
    if (!(error instanceof UnsafeFileError)) throw error;
    return [{ at: "", level: "ERROR", message: `log.jsonl is not shown: ${error.message}` }];
  }
  if (file === undefined) return [];
  try {
    const size = file.size;
    const start = Math.max(0, size - TAIL_BYTES);
    const bytes = new Uint8Array(size - start);
    let read = 0;
    while (read < bytes.length) {
      const n = await file.read(bytes.subarray(read), start + read);
      if (n === 0) break;
      read += n;
    }
    const lines = new TextDecoder().decode(bytes.subarray(0, read)).split("\n");
    // A tail that starts mid-file starts mid-line.
    if (start > 0) lines.shift();
    return lines.filter((l) => l.trim() !== "").slice(-count).map(parseLine);
  } finally {
    await file.close();
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
