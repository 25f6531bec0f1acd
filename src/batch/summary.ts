/**
 * The summary a run prints on stdout when it ends: the counts and the cost, then what needs the
 * user's attention (failures, paused prompts), then where the rest is. A small batch lists every
 * prompt; a large one stays a screenful, since `run.json` and the gallery hold every prompt.
 *
 * @module
 */
import type { PromptOutcome } from "../output/record.ts";
import { escapeControls } from "../util/terminal_text.ts";

/** Batches of up to this many outcomes list every prompt, completed ones included. */
export const LIST_ALL_UP_TO = 10;

/** Failures shown one a line; the rest are counted. */
export const FAILURES_SHOWN = 20;

/** A failure's message is cut to this many characters: the whole of it is in `metadata.json`. */
const MESSAGE_CHARS = 200;

/** What the run cost. */
export interface SummaryCost {
  /** Spent by this run. */
  thisRunUsd: number;
  /** Every prompt's cost in all runs. */
  batchUsd: number;
}

/**
 * The final summary: at most about 25 lines however large the batch.
 *
 * @example
 * ```ts
 * import { formatSummary } from "./summary.ts";
 * const text = formatSummary("out/b", 1, [], "interrupted", { thisRunUsd: 0, batchUsd: 0 });
 * if (!text.startsWith("retake: 0/1 prompts completed")) throw new Error(text);
 * ```
 */
export function formatSummary(
  batchDir: string,
  total: number,
  outcomes: PromptOutcome[],
  status: string,
  cost: SummaryCost,
): string {
  const completed = outcomes.filter((o) => o.status === "completed");
  const failed = outcomes.filter((o) => o.status === "failed");
  const interrupted = outcomes.filter((o) => o.status === "interrupted");
  const unchanged = completed.filter((o) => o.skipped).length;
  const listAll = outcomes.length <= LIST_ALL_UP_TO;
  const comparing = new Set(outcomes.map((o) => o.model)).size > 1;
  // Ids, models, error texts and paths come from files and services: shown, never obeyed.
  const name = (o: PromptOutcome) => escapeControls(comparing ? `${o.id} [${o.model}]` : o.id);
  const lines = [
    `retake: ${completed.length}/${total} prompts completed${
      !listAll && unchanged > 0 ? ` (${unchanged} unchanged since the last run)` : ""
    }, ${failed.length} failed — ${status}`,
    `  cost: $${cost.thisRunUsd.toFixed(4)} this run, $${cost.batchUsd.toFixed(4)} batch total`,
  ];
  if (listAll) {
    for (const o of completed) {
      lines.push(
        `  ${o.skipped ? "done   " : "ok     "} ${name(o)}: best score ${
          o.bestScore?.toFixed(1) ?? "-"
        } (iteration ${o.bestIteration ?? "-"} of ${o.iterations})${
          o.skipped ? ", unchanged since the last run" : ""
        }`,
      );
    }
  }
  for (const o of failed.slice(0, FAILURES_SHOWN)) {
    lines.push(
      `  FAILED  ${name(o)}: ${o.error?.step ?? "?"} ${o.error?.iteration ?? ""}: ${
        cut(escapeControls(o.error?.message ?? "unknown"))
      }`,
    );
  }
  const dir = escapeControls(batchDir);
  const more = failed.length - FAILURES_SHOWN;
  if (more > 0) lines.push(`  … and ${more} more failed: see ${dir}/run.json`);
  const notRun = total - outcomes.length;
  if (listAll) {
    for (const o of interrupted) {
      if (o.stopCause === "cancel") {
        lines.push(
          `  cancel  ${
            name(o)
          }: cancelled in the studio after ${o.iterations} iteration(s); --force runs it anew`,
        );
        continue;
      }
      lines.push(
        `  paused  ${name(o)}: saved after ${o.iterations} iteration(s)${
          o.stopCause === "budget" ? " (--max-cost)" : ""
        }; run again to resume`,
      );
    }
    if (notRun > 0) {
      lines.push(`  ${notRun} prompts not finished: saved steps are kept; run again to resume`);
    }
  } else {
    const cancelled = interrupted.filter((o) => o.stopCause === "cancel").length;
    const paused = interrupted.length - cancelled;
    const atBudget = interrupted.filter((o) => o.stopCause === "budget").length;
    if (paused > 0 || notRun > 0) {
      const parts = [
        ...(paused > 0
          ? [`${paused} prompts${atBudget > 0 ? ` (${atBudget} at --max-cost)` : ""}`]
          : []),
        ...(notRun > 0 ? [`${notRun} not started`] : []),
      ];
      lines.push(`  paused  ${parts.join(", ")}: saved steps are kept; run again to resume`);
    }
    if (cancelled > 0) {
      lines.push(`  cancel  ${cancelled} prompts cancelled in the studio; --force runs them anew`);
    }
  }
  // A large batch's every prompt is in run.json, said once.
  if (!listAll && more <= 0) lines.push(`  every prompt's outcome: ${dir}/run.json`);
  lines.push(`Output: ${dir} (open ${dir}/index.html to see the images)`);
  return lines.join("\n") + "\n";
}

function cut(text: string): string {
  const chars = [...text];
  return chars.length <= MESSAGE_CHARS ? text : `${chars.slice(0, MESSAGE_CHARS - 1).join("")}…`;
}
