/**
 * Logging setup: human-readable lines on stderr at the chosen level, and every record as JSON
 * Lines in the batch's `log.jsonl`. Both pass through a redaction layer built from the
 * configured secret values, so no key can reach a log whatever a message contains.
 *
 * @module
 */
import {
  compareLogLevel,
  configure,
  dispose,
  getJsonLinesFormatter,
  getTextFormatter,
  type LogLevel,
  type LogRecord,
  type Sink,
  type TextFormatter,
} from "@logtape/logtape";
import { redactByPattern, type RedactionPattern } from "@logtape/redaction";
import { REDACTED, secretPattern } from "./redact.ts";
import { InputError } from "../errors.ts";
import { escapeControls, escapeLines } from "./terminal_text.ts";

/** Options for {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** Lowest level shown on stderr. */
  level: LogLevel;
  /** Writes text to stderr. */
  writeErr: (text: string) => void;
  /** Called before a line is written to stderr (to clear the progress line). */
  beforeWrite?: () => void;
  /** Path of the JSON Lines log, if any. */
  jsonlPath?: string;
  /** Values that must never appear in any log. */
  secrets: string[];
}

/** Replaces every secret value with `[REDACTED]`. */
export function redactor(secrets: string[]): (formatter: TextFormatter) => TextFormatter {
  const pattern = secretPattern(secrets);
  const patterns: RedactionPattern[] = pattern === undefined
    ? []
    : [{ pattern, replacement: REDACTED }];
  return (formatter) => patterns.length === 0 ? formatter : redactByPattern(formatter, patterns);
}

/** Configures LogTape; returns a function that flushes and closes the sinks. */
export async function setupLogging(options: LoggingOptions): Promise<() => Promise<void>> {
  const redact = redactor(options.secrets);
  const text = redact(getTextFormatter({
    timestamp: "time",
    category: ".",
    // Bare strings read better on a terminal than JSON-quoted ones; ids, paths and service
    // messages in them are shown, never obeyed.
    value: (value, inspect) =>
      typeof value === "string" ? escapeControls(value) : escapeLines(inspect(value)),
  }));
  const stderrSink: Sink = (record: LogRecord) => {
    if (compareLogLevel(record.level, options.level) < 0) return;
    options.beforeWrite?.();
    options.writeErr(escapeLines(text(record)));
  };
  const sinks: Record<string, Sink> = { stderr: stderrSink };
  let file: Deno.FsFile | undefined;
  if (options.jsonlPath) {
    file = await openLog(options.jsonlPath);
    let end = await completeLength(file);
    await file.truncate(end);
    await file.seek(end, Deno.SeekMode.Start);
    const jsonLine = redact(getJsonLinesFormatter({ properties: "flatten" }));
    // JSON escapes C0 controls itself; C1 and bidi controls become \u escapes too, so a log
    // shown with cat or less reads as it is. The JSON value is the same.
    const json = (record: LogRecord) => jsonLine(record).replace(CONTROLS_JSON_KEEPS, escapeChar);
    const encoder = new TextEncoder();
    const handle = file;
    // Synchronous writes keep the log complete up to a crash; log volume is small. A write the
    // disk cannot take is rolled back, so the file always holds whole lines.
    sinks.jsonl = (record: LogRecord) => {
      const line = encoder.encode(json(record));
      try {
        let written = 0;
        while (written < line.length) {
          const n = handle.writeSync(line.subarray(written));
          if (n <= 0) throw new Error("short write");
          written += n;
        }
        end += line.length;
      } catch {
        handle.truncateSync(end);
        handle.seekSync(end, Deno.SeekMode.Start);
      }
    };
  }
  await configure({
    reset: true,
    sinks,
    loggers: [
      { category: ["retake"], sinks: Object.keys(sinks), lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: ["stderr"], lowestLevel: "warning" },
    ],
  });
  return async () => {
    await dispose();
    file?.close();
  };
}

const CONTROLS_JSON_KEEPS =
  /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/**
 * Opens the log for appending without writing through a link: an existing log must be a
 * regular file and still the same file once open; a new one is created exclusively (O_EXCL
 * never follows a link).
 */
async function openLog(path: string): Promise<Deno.FsFile> {
  let before: Deno.FileInfo | undefined;
  try {
    before = await Deno.lstat(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (before === undefined) {
    try {
      return await Deno.open(path, { read: true, write: true, createNew: true });
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      return await openLog(path);
    }
  }
  if (!before.isFile) {
    throw new InputError(
      `Cannot write the log '${path}' as it is ${
        before.isSymlink ? "a symbolic link" : "not a regular file"
      }: retake never writes through a link in a batch folder; remove it and run again`,
    );
  }
  const file = await Deno.open(path, { read: true, write: true });
  const after = await file.stat();
  if (after.ino !== before.ino || after.dev !== before.dev) {
    file.close();
    throw new InputError(
      `Cannot write the log '${path}' as it was replaced while opening; run again`,
    );
  }
  return file;
}

/** Length of the file up to its last complete line: a crash mid-write leaves a partial one. */
async function completeLength(file: Deno.FsFile): Promise<number> {
  const size = (await file.stat()).size;
  if (size === 0) return 0;
  const chunk = new Uint8Array(Math.min(size, 64 * 1024));
  await file.seek(size - chunk.length, Deno.SeekMode.Start);
  let read = 0;
  while (read < chunk.length) {
    const n = await file.read(chunk.subarray(read));
    if (n === null) break;
    read += n;
  }
  const lastNewline = chunk.subarray(0, read).lastIndexOf(10);
  if (lastNewline === read - 1) return size;
  return lastNewline === -1 ? 0 : size - read + lastNewline + 1;
}
