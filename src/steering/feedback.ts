/**
 * `feedback.jsonl`, the batch folder's log of what the user asked of it (favourite, reject with
 * a note, pause, move to the front, cancel). This module is the only one that reads or writes it.
 * A line is on disk (`fsync`) before its action takes effect, so a crash loses none; a later
 * `{ seq, at, done }` line marks an action acted on (a reject's round ran).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { z } from "zod";
import { refuseLinks } from "../output/atomic_write.ts";
import { readTextInside } from "../output/safe_read.ts";

/** What the file is called inside the batch folder. */
export const FEEDBACK_FILE = "feedback.jsonl";

/** The longest note a reject may carry: it goes into the refiner's prompt. */
export const MAX_NOTE = 2000;

/**
 * The largest `feedback.jsonl` read: some 50,000 actions. One larger was not written by a
 * person clicking, and reading it would hold up everything else the process does.
 */
export const MAX_FEEDBACK_BYTES = 8 * 1024 * 1024;

/** Lines parsed between two turns of the event loop, so a long file holds up no request. */
const LINES_PER_TURN = 2000;

const id = z.string().min(1).max(500);
const iteration = z.number().int().positive();

/** One thing the user asked of a batch. */
export const steeringActionSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("favourite"), id, iteration }),
  z.object({
    type: z.literal("reject"),
    id,
    note: z.string().trim().min(1).max(MAX_NOTE),
    iteration: iteration.optional(),
    /** The note, read from the file, this one runs in its place (the user confirmed it). */
    confirms: z.number().int().positive().optional(),
  }),
  z.object({ type: z.literal("pause") }),
  z.object({ type: z.literal("resume") }),
  z.object({ type: z.literal("front"), id }),
  z.object({ type: z.literal("cancel"), id }),
]);

/** One thing the user asked of a batch. */
export type SteeringAction =
  | { type: "favourite"; id: string; iteration: number }
  | { type: "reject"; id: string; note: string; iteration?: number; confirms?: number }
  | { type: "pause" }
  | { type: "resume" }
  | { type: "front"; id: string }
  | { type: "cancel"; id: string };

/** An action as written to `feedback.jsonl`. */
export interface FeedbackEntry {
  seq: number;
  at: string;
  action: SteeringAction;
}

/** A line marking action `done` acted on. */
export interface DoneLine {
  seq: number;
  at: string;
  done: number;
}

const lineSchema = z.union([
  z.object({ seq: z.number().int().positive(), at: z.string(), action: steeringActionSchema }),
  z.object({ seq: z.number().int().positive(), at: z.string(), done: z.number().int().positive() }),
]);

/** What `feedback.jsonl` held when it was read. */
export interface FeedbackContents {
  entries: FeedbackEntry[];
  /** Sequence numbers of the actions marked done. */
  done: Set<number>;
}

/**
 * Appends to and reads one batch's `feedback.jsonl`. Appends are serialised, so sequence numbers
 * are unique and lines never interleave.
 */
export class FeedbackLog {
  readonly path: string;
  readonly #batchDir: string;
  readonly #now: () => string;
  #lastSeq: number;
  #tail: Promise<unknown> = Promise.resolve();
  /** Whether the file may end without a newline (a write cut short by a crash). */
  #torn: boolean;

  private constructor(batchDir: string, lastSeq: number, torn: boolean, now: () => string) {
    this.#batchDir = batchDir;
    this.path = `${batchDir}/${FEEDBACK_FILE}`;
    this.#lastSeq = lastSeq;
    this.#torn = torn;
    this.#now = now;
  }

  /**
   * Reads the batch's feedback (none when the file does not exist) and returns a log to append
   * to. A line that cannot be read (cut short by a crash, or edited by hand) is skipped with a
   * warning: the others still count.
   */
  static async open(
    batchDir: string,
    options: { now?: () => string } = {},
  ): Promise<{ log: FeedbackLog; contents: FeedbackContents }> {
    const path = `${batchDir}/${FEEDBACK_FILE}`;
    await refuseLinks(path, batchDir);
    // Never through a link, and never a file larger than clicks make.
    const text = await readTextInside(batchDir, FEEDBACK_FILE, MAX_FEEDBACK_BYTES) ?? "";
    const contents: FeedbackContents = { entries: [], done: new Set() };
    let lastSeq = 0;
    let skipped = 0;
    let firstSkipped = 0;
    const lines = text.split("\n");
    for (let index = 0; index < lines.length; index++) {
      if (index > 0 && index % LINES_PER_TURN === 0) {
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      const line = lines[index]!;
      if (line.trim() === "") continue;
      let parsed;
      try {
        parsed = lineSchema.safeParse(JSON.parse(line));
      } catch {
        parsed = undefined;
      }
      if (!parsed?.success) {
        if (skipped++ === 0) firstSkipped = index + 1;
        continue;
      }
      const value = parsed.data;
      lastSeq = Math.max(lastSeq, value.seq);
      if ("done" in value) contents.done.add(value.done);
      else contents.entries.push(value as FeedbackEntry);
    }
    if (skipped > 0) {
      // One warning, however many lines: a file from elsewhere may hold thousands.
      getLogger(["retake", "steering"]).warn(
        "Skipped {count} line(s) of {file}, from line {line}: they are not feedback entries",
        { count: skipped, line: firstSkipped, file: path },
      );
    }
    const now = options.now ?? (() => new Date().toISOString());
    return {
      log: new FeedbackLog(batchDir, lastSeq, text !== "" && !text.endsWith("\n"), now),
      contents,
    };
  }

  /** Writes an action and waits until it is on disk. */
  append(action: SteeringAction): Promise<FeedbackEntry> {
    return this.#write((seq, at) => ({ seq, at, action }));
  }

  /** Marks action `seq` acted on, durably. */
  markDone(seq: number): Promise<DoneLine> {
    return this.#write((next, at) => ({ seq: next, at, done: seq }));
  }

  #write<T extends { seq: number }>(make: (seq: number, at: string) => T): Promise<T> {
    const result = this.#tail.then(async () => {
      const line = make(this.#lastSeq + 1, this.#now());
      await this.#appendLine(JSON.stringify(line));
      this.#lastSeq = line.seq;
      return line;
    });
    // A failed write must not stop later ones; its caller sees the error.
    this.#tail = result.catch(() => {});
    return result;
  }

  async #appendLine(json: string): Promise<void> {
    // Checked before every open: a link planted since the last write would take the line out
    // of the batch folder.
    await refuseLinks(this.path, this.#batchDir);
    const file = await Deno.open(this.path, { append: true, create: true });
    try {
      const text = `${this.#torn ? "\n" : ""}${json}\n`;
      const bytes = new TextEncoder().encode(text);
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      await file.syncData();
      this.#torn = false;
    } finally {
      file.close();
    }
  }
}
