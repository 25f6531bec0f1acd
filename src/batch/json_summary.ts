/**
 * `--json`: the run's summary as one JSON document on one line of stdout, for scripts (README,
 * Scripts). Everything else a run says goes to stderr, so stdout parses as it is; with
 * `--watch`, each pass adds a line (JSON Lines).
 *
 * @module
 */
import type { PromptOutcome } from "../output/record.ts";

/** The summary's format version: a field's meaning never changes within one. */
export const JSON_SUMMARY_VERSION = 1;

/** One prompt (with `--models`, one prompt and model) in the summary. */
export interface JsonPrompt {
  id: string;
  /** Generation model. */
  model: string;
  /** `not run`: the run ended (interrupted, stopped) before the prompt got an outcome. */
  status: "completed" | "failed" | "interrupted" | "not run";
  /** Completed by an earlier run with the same inputs, so not run again. */
  skipped: boolean;
  bestScore: number | null;
  bestIteration: number | null;
  /** The best image's path (under `batchDir`), or null when there is none. */
  bestImage: string | null;
  iterations: number;
  /** What this prompt cost, in USD, over every run of the batch. */
  costUsd: number;
  durationMs: number;
  /** Why it failed. */
  error: { step: string; iteration: number; message: string } | null;
}

/** The whole summary. */
export interface JsonSummary {
  version: typeof JSON_SUMMARY_VERSION;
  /** How the run ended, as in `run.json` (`completed`, `completed with failures`, …). */
  status: string;
  /** The exit code retake returns (README, Exit codes). */
  exitCode: number;
  batchDir: string;
  gallery: string;
  totals: {
    prompts: number;
    completed: number;
    failed: number;
    interrupted: number;
    notRun: number;
    /** Of the completed, those an earlier run had done. */
    skipped: number;
    /** USD spent by this run. */
    costUsd: number;
    /** USD spent on the batch over every run. */
    batchCostUsd: number;
  };
  /** Why the run stopped early, if it did. */
  error: string | null;
  prompts: JsonPrompt[];
}

/** What the run knows at its end. */
export interface JsonSummaryInput {
  batchDir: string;
  /** Every prompt id of the run, in file order. */
  ids: string[];
  /** Generation models, resolved. */
  models: string[];
  outcomes: PromptOutcome[];
  status: string;
  exitCode: number;
  /** `png` or `jpeg`: the images' file type. */
  format: string;
  cost: { thisRunUsd: number; batchUsd: number };
  stopReason?: string;
}

/** The summary as a value. */
export function jsonSummary(input: JsonSummaryInput): JsonSummary {
  const byKey = new Map(input.outcomes.map((o) => [`${o.id}\u0000${o.model}`, o]));
  const ext = input.format === "jpeg" ? "jpg" : "png";
  const prompts: JsonPrompt[] = input.ids.flatMap((id) =>
    input.models.map((model): JsonPrompt => {
      const o = byKey.get(`${id}\u0000${model}`);
      if (o === undefined) {
        return {
          id,
          model,
          status: "not run",
          skipped: false,
          bestScore: null,
          bestIteration: null,
          bestImage: null,
          iterations: 0,
          costUsd: 0,
          durationMs: 0,
          error: null,
        };
      }
      return {
        id,
        model,
        status: o.status,
        skipped: o.skipped,
        bestScore: o.bestScore ?? null,
        bestIteration: o.bestIteration ?? null,
        bestImage: o.bestIteration === undefined
          ? null
          : `${input.batchDir}/${o.folder}/iteration-${o.bestIteration}.${ext}`,
        iterations: o.iterations,
        costUsd: o.costUsd,
        durationMs: o.durationMs,
        error: o.error === undefined
          ? null
          : { step: o.error.step, iteration: o.error.iteration, message: o.error.message },
      };
    })
  );
  const count = (status: JsonPrompt["status"]) => prompts.filter((p) => p.status === status).length;
  return {
    version: JSON_SUMMARY_VERSION,
    status: input.status,
    exitCode: input.exitCode,
    batchDir: input.batchDir,
    gallery: `${input.batchDir}/index.html`,
    totals: {
      prompts: prompts.length,
      completed: count("completed"),
      failed: count("failed"),
      interrupted: count("interrupted"),
      notRun: count("not run"),
      skipped: prompts.filter((p) => p.skipped).length,
      costUsd: input.cost.thisRunUsd,
      batchCostUsd: input.cost.batchUsd,
    },
    error: input.stopReason ?? null,
    prompts,
  };
}

/** One JSON document on one line. */
export function jsonLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}
