/**
 * The eval's summary on stdout: the strategies' table, refine against best-of-n, and the caveat.
 *
 * @module
 */
import { formatDuration } from "../util/duration.ts";
import { escapeControls } from "../util/terminal_text.ts";
import { actualSpendRatio, type EvalReport } from "./report.ts";
import { STRATEGIES } from "./strategies.ts";

/**
 * The summary of a report, ending with where its files are.
 *
 * @example
 * ```ts ignore
 * io.writeOut(formatEvalSummary(report, { json: "out/x/eval.json", page: "out/x/eval.html" }));
 * ```
 */
export function formatEvalSummary(
  report: EvalReport,
  files: { json: string; page: string },
): string {
  const j = report.judge;
  const head = [
    "strategy",
    "images",
    "judge",
    "checks",
    "critic",
    "cost/prompt",
    "time/prompt",
    "done",
  ];
  const rows = STRATEGIES.filter((s) => report.strategies[s] !== undefined).map((name) => {
    const s = report.strategies[name]!;
    return [
      name,
      fixed(s.imagesPerPrompt, 1),
      fixed(s.meanJudgeScore, 2),
      s.meanChecksPassedRate === null ? "-" : `${Math.round(s.meanChecksPassedRate * 100)}%`,
      fixed(s.meanCriticScore, 2),
      s.costPerPromptUsd === null ? "-" : `$${s.costPerPromptUsd.toFixed(4)}`,
      s.timePerPromptMs === null ? "-" : formatDuration(s.timePerPromptMs, { subSecond: true }),
      `${s.completed}/${s.prompts}`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    "  " + cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join("  ");
  const lines = [
    `retake eval: ${report.prompts.length} prompts, judge ${j.provider}:${j.model}${
      j.independent ? "" : " (the loop's own critic)"
    }, best-of-n = ${report.equalSpend.bestOfN} images (${report.equalSpend.rule})`,
    line(head),
    ...rows.map(line),
  ];
  const c = report.comparison.refineVsBestOfN;
  const ratio = actualSpendRatio(report);
  if (ratio !== null) {
    lines.push(`  best-of-n actually spent ×${ratio.toFixed(2)} what refine did per prompt`);
  }
  if (c !== null) {
    lines.push(
      c.winRate === null || c.ci95 === null
        ? "  refine vs best-of-n: no prompt has both final images judged"
        : `  refine vs best-of-n: win rate ${c.winRate.toFixed(2)} (95% CI ${
          c.ci95[0].toFixed(2)
        }–${
          c.ci95[1].toFixed(2)
        }) over ${c.prompts} prompts: ${c.wins} won, ${c.ties} tied, ${c.losses} lost`,
    );
  }
  lines.push(
    `  judge: ${j.judged} judged, ${j.cached} cached, ${j.failed} failed, ${j.notJudged} not judged; $${
      j.thisRunCostUsd.toFixed(4)
    } this run`,
  );
  if (report.caveat) lines.push(`  ${report.caveat}`);
  lines.push(`Wrote ${files.json} and ${files.page}`);
  // Paths and model ids come from the command line and the config: shown, never obeyed.
  return lines.map(escapeControls).join("\n") + "\n";
}

function fixed(x: number | null, digits: number): string {
  return x === null ? "-" : x.toFixed(digits);
}
