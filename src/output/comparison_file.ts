/**
 * `comparison.json`, a batch of several models' verdict per prompt: the one module that makes,
 * writes and reads it.
 *
 * @module
 */
import type { PromptSpec } from "../prompts/mod.ts";
import type { PromptOutcome } from "./record.ts";
import { writeJsonAtomic } from "./atomic_write.ts";
import { MAX_RUN_FILE_BYTES, outcomeIndex, outcomeKey } from "./run_file.ts";
import { readTextInside } from "./safe_read.ts";

/** The file's name in a batch folder. */
export const COMPARISON_FILE = "comparison.json";

/** Per prompt, each model's best score, cost and time, and the winner (best score, then cheaper). */
export function compareModels(specs: PromptSpec[], models: string[], outcomes: PromptOutcome[]) {
  const byKey = outcomeIndex(outcomes);
  const prompts = specs.map((spec) => {
    const rows = models.map((model) => {
      const o = byKey.get(outcomeKey(spec.id, model));
      return {
        model,
        status: o?.status ?? "not run",
        bestScore: o?.bestScore ?? null,
        costUsd: o?.costUsd ?? 0,
        durationMs: o?.durationMs ?? 0,
        folder: o?.folder ?? null,
      };
    });
    const ranked = rows.filter((r) => r.bestScore !== null)
      .sort((a, b) => b.bestScore! - a.bestScore! || a.costUsd - b.costUsd);
    return { id: spec.id, winner: ranked[0]?.model ?? null, models: rows };
  });
  const perModel = models.map((model) => {
    const rows = prompts.map((p) => p.models.find((m) => m.model === model)!);
    const scored = rows.filter((r) => r.bestScore !== null);
    return {
      model,
      wins: prompts.filter((p) => p.winner === model).length,
      meanScore: scored.length
        ? Math.round(scored.reduce((s, r) => s + r.bestScore!, 0) / scored.length * 100) / 100
        : null,
      costUsd: Math.round(rows.reduce((s, r) => s + r.costUsd, 0) * 1e6) / 1e6,
      durationMs: rows.reduce((s, r) => s + r.durationMs, 0),
      failed: rows.filter((r) => r.status === "failed").length,
    };
  });
  return { models: perModel, prompts };
}

/** The content of `comparison.json`. */
export type Comparison = ReturnType<typeof compareModels>;

/** Writes `comparison` to `<batchDir>/comparison.json` atomically. */
export async function writeComparisonFile(batchDir: string, comparison: Comparison): Promise<void> {
  await writeJsonAtomic(`${batchDir}/${COMPARISON_FILE}`, comparison, { within: batchDir });
}

/**
 * The prompts of `<batchDir>/comparison.json`, never read through a link; none when the file is
 * missing, unreadable or not one retake wrote.
 */
export async function readComparisonFile(batchDir: string): Promise<ComparisonPrompt[]> {
  let value: unknown;
  try {
    const text = await readTextInside(batchDir, COMPARISON_FILE, MAX_RUN_FILE_BYTES);
    value = text === undefined ? undefined : JSON.parse(text);
  } catch {
    // A broken comparison only loses the winner's badge: the gallery shows every run anyway.
    return [];
  }
  return comparisonPrompts(value);
}

/** One prompt of `comparison.json`, as a reader may trust it: every other field unchecked. */
export interface ComparisonPrompt {
  id: string;
  winner?: string;
  models: Array<
    {
      model: string;
      folder?: unknown;
      bestScore?: unknown;
      costUsd?: unknown;
      durationMs?: unknown;
    }
  >;
}

function comparisonPrompts(value: unknown): ComparisonPrompt[] {
  if (!isObject(value) || !Array.isArray(value.prompts)) return [];
  return value.prompts.filter(isObject).filter((p) => typeof p.id === "string").map((p) => ({
    id: p.id as string,
    ...(typeof p.winner === "string" && { winner: p.winner }),
    models: Array.isArray(p.models)
      ? p.models.filter(isObject).filter((m) => typeof m.model === "string") as ComparisonPrompt[
        "models"
      ]
      : [],
  }));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
