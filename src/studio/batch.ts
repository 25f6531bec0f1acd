/**
 * The studio's reading of the output folder: the batches in it, and one batch's prompts a
 * page at a time, filtered, without holding a batch of any size in memory.
 *
 * @module
 */
import { z } from "zod";
import { readRunFile } from "../output/run_file.ts";
import { type Entry, listEntries, readEntry } from "../gallery/gallery.ts";
import type { PromptRecord } from "../output/record.ts";
import type { RunInfo } from "../output/run_file.ts";

/** One line of the batches list. */
export interface BatchSummary {
  name: string;
  status: string;
  prompts?: number;
  completed?: number;
  failed?: number;
  costUsd?: number;
  startedAt?: string;
}

/** Which prompts a batch page shows. */
export type Filter = "all" | "failed" | "below" | "unfinished";

/** The filters in the order the page offers them. */
export const FILTERS: readonly Filter[] = ["all", "failed", "below", "unfinished"];

/** Prompts per page: enough to scroll, few enough to render at once. */
export const PAGE_SIZE = 50;

/** Records read at once when a filter needs every prompt's. */
const READ_AHEAD = 64;

/** The score a prompt is "below target" under when the run set no `--target-score`. */
export const DEFAULT_TARGET = 8;

const count = z.number().int().nonnegative();
const usd = z.number().nonnegative();

/** `value` when `schema` takes it, else undefined: each field of a run.json stands alone. */
function valid<T>(schema: z.ZodType<T>, value: unknown): T | undefined {
  const parsed = schema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/** The longest status word shown: retake's own are a few words. */
const MAX_STATUS = 60;

/**
 * Every batch folder (one with a `run.json`) directly under `out`, newest first. A `run.json`
 * may come from anywhere: only the fields that are what retake writes (counts, a cost, a date)
 * are kept, and the page escapes those too.
 */
export async function listBatches(out: string): Promise<BatchSummary[]> {
  const batches: BatchSummary[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(out));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  for (const entry of entries) {
    // A directory entry's type is the link's own: a link to a folder elsewhere is not listed.
    if (!entry.isDirectory || entry.name.startsWith(".")) continue;
    // A batch holds its own run.json: a link to one elsewhere makes no batch.
    const file = await Deno.lstat(`${out}/${entry.name}/run.json`).catch(() => undefined);
    if (!file?.isFile) continue;
    const read = await readRunFile(`${out}/${entry.name}`);
    if (read.problem === "is missing") continue;
    const run: Partial<RunInfo> = read.value ?? {};
    const totals: Record<string, unknown> = isObject(run.totals) ? run.totals : {};
    const status = read.problem
      ? `run.json ${read.problem.split(":")[0]}`
      : typeof run.status === "string"
      ? run.status.slice(0, MAX_STATUS)
      : "unknown";
    const prompts = valid(count, totals.prompts);
    const completed = valid(count, totals.completed);
    const failed = valid(count, totals.failed);
    const costUsd = valid(usd, totals.costUsd);
    const startedAt = valid(z.iso.datetime(), run.startedAt);
    batches.push({
      name: entry.name,
      status,
      ...(prompts !== undefined && { prompts }),
      ...(completed !== undefined && { completed }),
      ...(failed !== undefined && { failed }),
      ...(costUsd !== undefined && { costUsd }),
      ...(startedAt !== undefined && { startedAt }),
    });
  }
  return batches.sort((a, b) =>
    (b.startedAt ?? "").localeCompare(a.startedAt ?? "") || a.name.localeCompare(b.name)
  );
}

/** One page of a batch. */
export interface BatchPage {
  entries: Entry[];
  /** Prompts that match the filter, in all pages. */
  matching: number;
  /** Prompts in the batch. */
  total: number;
  page: number;
  pages: number;
  /** The score "below target" means. */
  target: number;
  /** `run.json`'s status and settings. */
  status: string;
  settings: Record<string, unknown>;
}

/** What a filter needs of one prompt folder, kept while its `metadata.json` is unchanged. */
interface Summary {
  mtime: number;
  flags: Set<Filter>;
}

/** Reads one batch folder for the studio's pages. */
export class BatchReader {
  readonly dir: string;
  readonly #summaries = new Map<string, Summary>();

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Page `page` (from 1) of the prompts that match `filter`. */
  async page(filter: Filter, page: number, pageSize: number = PAGE_SIZE): Promise<BatchPage> {
    const read = await readRunFile(this.dir);
    const run: Partial<RunInfo> = read.value ?? {};
    const settings = isObject(run.settings) ? run.settings : {};
    const target = typeof settings.targetScore === "number" ? settings.targetScore : DEFAULT_TARGET;
    const { folders, absent } = await listEntries(this.dir, read.value);
    const all: Array<{ folder: string } | Entry> = [
      ...folders.map((f) => ({ folder: f.name })),
      ...absent,
    ];
    let chosen: Array<{ folder: string } | Entry>;
    if (filter === "all") {
      chosen = all;
    } else {
      chosen = [];
      // A few records at a time: thousands of reads, without thousands of open files.
      for (let start = 0; start < all.length; start += READ_AHEAD) {
        const slice = all.slice(start, start + READ_AHEAD);
        const flags = await Promise.all(
          slice.map((item) =>
            "kind" in item ? flagsOf(item, target) : this.#flagsOfFolder(item.folder, target)
          ),
        );
        slice.forEach((item, i) => flags[i]!.has(filter) && chosen.push(item));
      }
    }
    const pages = Math.max(1, Math.ceil(chosen.length / pageSize));
    const at = Math.min(Math.max(1, page), pages);
    const entries: Entry[] = [];
    for (const item of chosen.slice((at - 1) * pageSize, at * pageSize)) {
      entries.push(
        "kind" in item ? item : await readEntry(this.dir, item.folder, true) ?? {
          kind: "unreadable",
          folder: item.folder,
          problem: "the folder changed while the page was made",
        },
      );
    }
    return {
      entries,
      matching: chosen.length,
      total: all.length,
      page: at,
      pages,
      target,
      status: typeof run.status === "string"
        ? run.status
        : read.problem
        ? `run.json ${read.problem}`
        : "unknown",
      settings,
    };
  }

  /** One prompt folder's entry, for a row that changed. */
  entry(folder: string): Promise<Entry | undefined> {
    return readEntry(this.dir, folder, true);
  }

  async #flagsOfFolder(folder: string, target: number): Promise<Set<Filter>> {
    const stat = await Deno.lstat(`${this.dir}/${folder}/metadata.json`).catch(() => undefined);
    const mtime = stat?.mtime?.getTime() ?? -1;
    const known = this.#summaries.get(folder);
    if (known && known.mtime === mtime && stat !== undefined) return known.flags;
    const entry = await readEntry(this.dir, folder, true);
    const flags = entry ? flagsOf(entry, target) : new Set<Filter>();
    if (stat !== undefined) this.#summaries.set(folder, { mtime, flags });
    return flags;
  }
}

/** The filters an entry matches. */
export function flagsOf(entry: Entry, target: number): Set<Filter> {
  const flags = new Set<Filter>(["all"]);
  const records: PromptRecord[] = entry.kind === "single"
    ? [entry.record]
    : entry.kind === "comparison"
    ? entry.runs.flatMap((r) => r.record ? [r.record] : [])
    : [];
  if (entry.kind === "absent" || entry.kind === "unreadable") flags.add("unfinished");
  if (entry.kind === "unreadable") flags.add("failed");
  for (const record of records) {
    if (record.status === "failed") flags.add("failed");
    if (record.status !== "completed" && record.status !== "failed") flags.add("unfinished");
    const best = typeof record.bestScore === "number" ? record.bestScore : undefined;
    if (record.status === "completed" && (best === undefined || best < target)) {
      flags.add("below");
    }
  }
  return flags;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
