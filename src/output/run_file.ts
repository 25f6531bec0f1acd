/**
 * `run.json`: the batch's summary file — its status, settings, providers, totals and one entry
 * per prompt and model. This module is the only one that writes it or reads it.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { writeFileAtomic, writeJsonAtomic } from "./atomic_write.ts";
import { type Config, publicSettings } from "../config.ts";
import { messageOf } from "../errors.ts";
import type { PromptOutcome } from "./record.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { Providers } from "../providers/registry.ts";
import { Reservation } from "./reserved_write.ts";
import { readTextOrProblem } from "./safe_read.ts";

/** The version printed by `--version` and recorded in `run.json`. */
export const VERSION = "0.1.0";

/** One prompt-and-model line of `run.json`: an outcome, or a prompt not (yet) run. */
export interface RunEntry {
  id: string;
  model: string;
  /** A prompt status (`completed`, `failed`, `interrupted`), or `pending` / `not run`. */
  status: string;
  skipped?: boolean;
  /** What the prompt cost in all runs, as its `metadata.json` says. */
  costUsd?: number;
}

/** What a run's `run.json` holds. */
export interface RunInfo {
  version: string;
  batch: string;
  /** `running`, `completed`, `completed with failures`, `interrupted`, `stopped at the cost budget`, `stopped`, `crashed`. */
  status: string;
  /** Why the run stopped short (a fatal error, the budget, an unexpected error). */
  stopReason?: string;
  promptFiles: string[];
  startedAt: string;
  finishedAt?: string;
  durationMs: number;
  providers: { generator: string; critic: string; refiner: string; model: string };
  settings: Record<string, unknown>;
  totals: {
    prompts: number;
    completed: number;
    failed: number;
    interrupted: number;
    skipped: number;
    /** Batch total: the sum of every prompt's `metadata.json` cost. */
    costUsd: number;
    /** Spent by this run alone. */
    thisRunCostUsd: number;
  };
  models?: string[];
  prompts: RunEntry[];
}

/** The run being written: what it knows at start, plus the outcomes so far. */
export interface RunFileSource {
  config: Config;
  promptFiles: string[];
  specs: PromptSpec[];
  providers: Providers;
  models: string[];
  batchDir: string;
}

/** Writes `<batch>/run.json` for one run, keeping the entries of prompts it does not run. */
export class RunFile {
  readonly path: string;
  readonly #source: RunFileSource;
  readonly #kept: RunEntry[];
  readonly #startedAt = new Date().toISOString();
  readonly #started = performance.now();
  #room: Reservation | undefined;

  constructor(source: RunFileSource, options: { kept: RunEntry[] }) {
    this.#source = source;
    this.#kept = options.kept;
    this.path = `${source.batchDir}/run.json`;
  }

  /** Milliseconds since the run started. */
  elapsedMs(): number {
    return Math.round(performance.now() - this.#started);
  }

  /** The batch total: every prompt's cost in all runs, kept entries included. */
  batchCostUsd(outcomes: PromptOutcome[]): number {
    return this.#totals(this.#entries("done", outcomes)).costUsd;
  }

  /** Writes the file atomically. */
  write(status: string, outcomes: PromptOutcome[], thisRunUsd: number): Promise<void> {
    return writeJsonAtomic(this.path, this.info(status, outcomes, thisRunUsd));
  }

  /**
   * Keeps room on disk for the final record, {@linkcode RunFile.finish}: call it before the run
   * pays for anything. Throws a fatal `WriteError` when the disk cannot hold it.
   */
  async reserve(): Promise<void> {
    await this.#room?.release();
    const largest = this.#largestCompact();
    this.#room = await Reservation.create(
      this.path,
      byteLength(largest) + ENTRY_ROOM * largest.prompts.length,
    );
  }

  /**
   * Writes the final record, with why the run stopped. A full disk cannot prevent it: it is
   * written in the room {@linkcode RunFile.reserve} kept. A record grown past that room (long
   * error texts) is written the ordinary way, and when the disk cannot take it, in the room
   * without the entries' error texts (each prompt's `metadata.json` keeps its own). Should the
   * room itself fail, it is given back and the write tried again in the space it frees.
   */
  async finish(
    status: string,
    outcomes: PromptOutcome[],
    thisRunUsd: number,
    stopReason?: string,
  ): Promise<void> {
    const info = this.info(status, outcomes, thisRunUsd, stopReason);
    const full = encode(info);
    const room = this.#room;
    this.#room = undefined;
    if (room === undefined) return await writeFileAtomic(this.path, full);
    try {
      if (room.fits(full)) return await room.commit(full);
      try {
        await writeFileAtomic(this.path, full);
        return await room.release();
      } catch {
        // No space for it beside the room: the compact record, which the room always holds.
      }
      return await room.commit(encode(compact(info)));
    } catch {
      // Overwriting the room failed (a copy-on-write file system needs new blocks even for
      // that): give it back and write again into the space it frees.
    }
    await room.release().catch(() => {});
    try {
      await writeFileAtomic(this.path, full);
    } catch {
      await writeFileAtomic(this.path, encode(compact(info)));
    }
  }

  /** The file's content for this status and these outcomes. */
  info(
    status: string,
    outcomes: PromptOutcome[],
    thisRunUsd: number,
    stopReason?: string,
  ): RunInfo {
    const { config, promptFiles, providers, models, batchDir } = this.#source;
    const entries = this.#entries(status, outcomes);
    return {
      version: VERSION,
      batch: batchDir.split("/").pop()!,
      status,
      ...(stopReason !== undefined && { stopReason }),
      promptFiles,
      startedAt: this.#startedAt,
      ...(status !== "running" && { finishedAt: new Date().toISOString() }),
      durationMs: this.elapsedMs(),
      providers: {
        generator: providers.generator.name,
        critic: providers.critic.name,
        refiner: providers.refiner.name,
        model: providers.model,
      },
      settings: publicSettings(config),
      totals: { ...this.#totals(entries), thisRunCostUsd: round(thisRunUsd) },
      ...(models.length > 1 && { models }),
      prompts: entries,
    };
  }

  /**
   * The largest compact record this run can end with: every entry and total at its longest,
   * the longest status and a stop reason of the most {@linkcode compact} keeps.
   */
  #largestCompact(): RunInfo {
    const info = this.info("running", [], 0);
    return compact({
      ...info,
      status: LONGEST_STATUS,
      stopReason: "x".repeat(REASON_BYTES),
      finishedAt: new Date(0).toISOString(),
      durationMs: LONGEST_NUMBER,
      totals: Object.fromEntries(
        Object.keys(info.totals).map((key) => [key, LONGEST_NUMBER]),
      ) as RunInfo["totals"],
      prompts: info.prompts.map((entry) => ({
        ...entry,
        // Pending and kept entries end as one of the statuses, or keep their own.
        status: entry.status.length > "interrupted".length ? entry.status : "interrupted",
        skipped: true,
        costUsd: LONGEST_NUMBER,
      })),
    });
  }

  #entries(status: string, outcomes: PromptOutcome[]): RunEntry[] {
    const byKey = outcomeIndex(outcomes);
    return mergeEntries(
      this.#kept,
      this.#source.specs.flatMap((spec) =>
        this.#source.models.map((model) =>
          byKey.get(outcomeKey(spec.id, model)) ??
            { id: spec.id, model, status: status === "running" ? "pending" : "not run" }
        )
      ),
    );
  }

  #totals(entries: RunEntry[]): Omit<RunInfo["totals"], "thisRunCostUsd"> {
    return {
      prompts: new Set(entries.map((e) => e.id)).size,
      completed: entries.filter((e) => e.status === "completed").length,
      failed: entries.filter((e) => e.status === "failed").length,
      interrupted: entries.filter((e) => e.status === "interrupted").length,
      skipped: entries.filter((e) => e.skipped === true).length,
      costUsd: round(
        entries.reduce((sum, e) => sum + (typeof e.costUsd === "number" ? e.costUsd : 0), 0),
      ),
    };
  }
}

/** What reading a `run.json` gave: its content, or why there is none. */
export type RunRead = { value: Partial<RunInfo>; problem?: undefined } | {
  value?: undefined;
  problem: string;
};

/**
 * A `run.json`'s text as far as it can be trusted: an object, each field still to be checked
 * where it is used (a hand-edited or older file may lack any of them).
 */
export function parseRunInfo(text: string): RunRead {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { problem: `is not valid JSON: ${messageOf(error)}` };
  }
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? { value: value as Partial<RunInfo> }
    : { problem: "is not an object" };
}

/** The largest `run.json` read: about 150 bytes a prompt, so some 200,000 prompts. */
export const MAX_RUN_FILE_BYTES = 32 * 1024 * 1024;

/** The largest `run.json` a run reads back of its own: 100,000 prompts × many models. */
const OWN_RUN_FILE_BYTES = 1024 * 1024 * 1024;

/**
 * Reads `<batchDir>/run.json` without following a link (below `within`, the batch folder unless
 * given); a problem says what is wrong, as `run.json <problem>`.
 */
export async function readRunFile(
  batchDir: string,
  within = batchDir,
  maxBytes = MAX_RUN_FILE_BYTES,
): Promise<RunRead> {
  const root = within.replace(/\/+$/, "");
  const dir = batchDir.replace(/\/+$/, "");
  const rel = dir === root ? "run.json" : `${dir.slice(root.length + 1)}/run.json`;
  if (dir !== root && !dir.startsWith(`${root}/`)) {
    return { problem: `cannot be read: '${dir}' is not inside '${root}'` };
  }
  const read = await readTextOrProblem(root, rel, maxBytes);
  return "problem" in read ? read : parseRunInfo(read.text);
}

/** The entries of the batch's earlier `run.json`, or none when it is missing or unreadable. */
export async function previousEntries(batchDir: string): Promise<RunEntry[]> {
  // The run's own file, however many prompts and models it lists: the cap is for received ones.
  const run = await readRunFile(batchDir, batchDir, OWN_RUN_FILE_BYTES);
  if (run.problem !== undefined) {
    if (run.problem !== "is missing") {
      getLogger(["retake", "run"]).warn("Could not read the earlier {file}: it {reason}", {
        file: `${batchDir}/run.json`,
        reason: run.problem,
      });
    }
    return [];
  }
  const prompts: unknown = run.value.prompts;
  return Array.isArray(prompts)
    ? prompts.filter((e): e is RunEntry =>
      typeof e?.id === "string" && typeof e?.model === "string" && typeof e?.status === "string"
    )
    : [];
}

/**
 * The earlier entries in their order, each replaced by this run's entry for the same prompt and
 * model, then this run's new ones.
 */
function mergeEntries(earlier: RunEntry[], current: RunEntry[]): RunEntry[] {
  const byKey = new Map(current.map((e) => [outcomeKey(e.id, e.model), e]));
  const merged = earlier.map((e) => {
    const key = outcomeKey(e.id, e.model);
    const now = byKey.get(key);
    byKey.delete(key);
    return now ?? e;
  });
  return [...merged, ...byKey.values()];
}

/** Outcomes by prompt and model: a batch of thousands looks each one up once, not by a scan. */
export function outcomeKey(id: string, model: string): string {
  return `${id}\u0000${model}`;
}

/** Outcomes indexed by {@linkcode outcomeKey}. */
export function outcomeIndex(outcomes: PromptOutcome[]): Map<string, PromptOutcome> {
  return new Map(outcomes.map((o) => [outcomeKey(o.id, o.model), o]));
}

/** The longest run status, for the room kept for the final record. */
const LONGEST_STATUS = "stopped at the cost budget";
/** As long as a number's JSON gets: 17 significant digits, a sign and an exponent. */
const LONGEST_NUMBER = -1.2345678901234567e-123;
/**
 * Room per entry beyond its compact form, so the whole record usually fits: an outcome's folder,
 * time, score and rounds, and an error text of about 200 characters.
 */
const ENTRY_ROOM = 512;
/** The most of a stop reason the compact record keeps, as JSON bytes. */
const REASON_BYTES = 2048;

/** The record with only the fields of {@linkcode RunEntry} per entry, and the stop reason cut. */
function compact(info: RunInfo): RunInfo {
  return {
    ...info,
    ...(info.stopReason !== undefined && { stopReason: clip(info.stopReason, REASON_BYTES) }),
    prompts: info.prompts.map((e) => ({
      id: e.id,
      model: e.model,
      status: e.status,
      ...(e.skipped === true && { skipped: true }),
      ...(typeof e.costUsd === "number" && { costUsd: e.costUsd }),
    })),
  };
}

/** `text` cut so that its JSON, quotes included, takes at most `bytes` bytes; it ends in `…`. */
function clip(text: string, bytes: number): string {
  if (byteLength(text) <= bytes) return text;
  const chars = Array.from(text);
  let low = 0;
  let high = chars.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (byteLength(chars.slice(0, mid).join("") + "…") <= bytes) low = mid;
    else high = mid - 1;
  }
  return chars.slice(0, low).join("") + "…";
}

function encode(info: RunInfo): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(info, null, 2) + "\n");
}

/** The bytes of a value's pretty-printed JSON, as {@linkcode encode} writes it. */
function byteLength(value: unknown): number {
  return new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n").length;
}

function round(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
}
