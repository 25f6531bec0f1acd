/**
 * What one strategy's batch folder holds for the eval: per prompt, its final image (the best one
 * the loop kept), how many images it made, what it cost and took, the loop critic's score, and
 * the prompt's brief; plus the run's status from `run.json`.
 *
 * @module
 */
import { isBestImageName, promptFolder } from "../output/folder_names.ts";
import { readBriefFile } from "../output/brief_file.ts";
import { MAX_RECORD_BYTES, readPromptRecord } from "../output/record_file.ts";
import { readRunFile } from "../output/run_file.ts";
import type { Brief } from "../providers/critique.ts";
import { messageOf } from "../errors.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { openInside, readTextInside } from "../output/safe_read.ts";
import type { StrategyName } from "./strategies.ts";

/** One prompt's result in one strategy's folder. */
export interface PromptResult {
  id: string;
  /** The prompt's folder, relative to the strategy's folder. */
  folder: string;
  /** Its `metadata.json` status, `not run` when there is none, `unreadable` when it is broken. */
  status: string;
  /** Path of the final image (the best kept), for a completed prompt. */
  finalImage?: string;
  /** The iteration the final image comes from. */
  finalIteration?: number;
  /** Images made. */
  images: number;
  costUsd: number;
  durationMs: number;
  /** The loop critic's score of the final image. */
  criticScore?: number;
  /** The prompt's checklist: `brief.json`, else the record's copy. */
  brief?: Brief;
  /** Why the record could not be read. */
  problem?: string;
}

/** One strategy's folder, read. */
export interface StrategyResults {
  name: StrategyName;
  /** The strategy's batch folder. */
  dir: string;
  /** `run.json`'s status; undefined when there is no run yet. */
  runStatus?: string;
  prompts: PromptResult[];
}

/**
 * Reads every prompt of `specs` from the strategy's batch folder `dir`, never through a link
 * below `within`.
 */
export async function readStrategyResults(
  name: StrategyName,
  dir: string,
  specs: readonly PromptSpec[],
  within: string,
): Promise<StrategyResults> {
  const runStatus = (await readRunFile(dir, within)).value?.status;
  const prompts: PromptResult[] = [];
  for (const spec of specs) prompts.push(await readPrompt(dir, spec, within));
  return {
    name,
    dir,
    ...(typeof runStatus === "string" && { runStatus }),
    prompts,
  };
}

async function readPrompt(dir: string, spec: PromptSpec, within: string): Promise<PromptResult> {
  const folder = promptFolder(spec.id);
  const base = { id: spec.id, folder, images: 0, costUsd: 0, durationMs: 0 };
  const read = await readPromptRecord(within, relativeTo(`${dir}/${folder}`, within));
  if (read.missing) return { ...base, status: "not run" };
  if (read.problem !== undefined) return { ...base, status: "unreadable", problem: read.problem };
  const record = read.record;
  if (record.id !== spec.id) {
    return {
      ...base,
      status: "unreadable",
      problem: `its metadata.json belongs to prompt '${record.id}'`,
    };
  }
  const brief = await readBriefFile(within, relativeTo(`${dir}/${folder}`, within), record.brief);
  // The judge sends the final image to a paid service: only the copy retake saved, and only
  // when it is a file of the folder itself, not a link to one elsewhere.
  const final = record.status === "completed" && isBestImageName(record.bestImage) &&
      await isPlainFile(`${dir}/${folder}/${record.bestImage}`, within)
    ? `${dir}/${folder}/${record.bestImage}`
    : undefined;
  return {
    ...base,
    status: String(record.status),
    ...(final !== undefined && { finalImage: final }),
    ...(final !== undefined && typeof record.bestIteration === "number" &&
      { finalIteration: record.bestIteration }),
    images: record.iterations.filter((it) => typeof it.image === "string").length,
    costUsd: finite(record.costUsd),
    durationMs: finite(record.durationMs),
    ...(typeof record.bestScore === "number" && { criticScore: record.bestScore }),
    ...(brief !== undefined && { brief }),
  };
}

/**
 * A JSON file's content, or undefined when it does not exist; never read through a link below
 * `within`, nor larger than a record.
 */
export async function readJson(path: string, within: string): Promise<unknown> {
  const text = await readTextInside(within, relativeTo(path, within), MAX_RECORD_BYTES);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(`Cannot read '${path}' as it is not valid JSON: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

/** Whether `path` is a regular file reached through no link below `within`. */
async function isPlainFile(path: string, within: string): Promise<boolean> {
  try {
    const file = await openInside(within, relativeTo(path, within));
    await file?.close();
    return file !== undefined;
  } catch {
    return false;
  }
}

function relativeTo(path: string, within: string): string {
  const root = within.replace(/\/+$/, "");
  if (!path.startsWith(`${root}/`)) {
    throw new RangeError(`Cannot read '${path}' as it is not inside '${within}'`);
  }
  return path.slice(root.length + 1);
}

function finite(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}
