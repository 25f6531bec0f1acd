/**
 * `eval.html`: one static page (no script, no network, works from `file://`) that shows an
 * eval's report: a chart of quality against dollars (inline SVG, one point per strategy), the
 * strategies' table, refine against best-of-n with its interval, every prompt's scores, and
 * the caveat in plain words.
 *
 * @module
 */
import { writeFileAtomic } from "../output/atomic_write.ts";
import { formatDuration } from "../util/duration.ts";
import { actualSpendRatio, type EvalReport, type StrategySummary } from "./report.ts";
import { STRATEGIES, type StrategyName } from "./strategies.ts";

/** Each strategy's colour on the chart. */
const COLOURS: Record<StrategyName, string> = {
  single: "#7a828f",
  "best-of-n": "#f59e0b",
  refine: "#3d5afe",
};

const CHART = { width: 640, height: 360, left: 64, right: 24, top: 20, bottom: 56 };

/** Writes `<root>/eval.html` atomically; returns its path. */
export async function writeEvalPage(root: string, report: EvalReport): Promise<string> {
  const path = `${root}/eval.html`;
  await writeFileAtomic(path, renderEvalPage(report, root.split("/").pop() ?? "eval"), {
    within: root,
  });
  return path;
}

/** The page for a report; `batch` is the eval's batch folder name. */
export function renderEvalPage(report: EvalReport, batch: string): string {
  const names = STRATEGIES.filter((s) => report.strategies[s] !== undefined);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>retake eval · ${esc(batch)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>retake eval <span>${esc(batch)}</span></h1>
<p class="when">${esc(report.promptFiles.join(", "))} · ${esc(report.createdAt)}${
    report.offline ? ` · <span class="badge">offline</span>` : ""
  }</p>
</header>
<main>
${report.caveat ? `<p class="caveat" role="note">${esc(report.caveat)}</p>` : ""}
${renderVerdict(report)}
<section class="card">
<h2>Quality against ${usesCost(report, names) ? "dollars" : "images"}</h2>
${renderChart(report, names)}
</section>
<section class="card">
<h2>Strategies</h2>
${renderTable(report, names)}
${renderSpend(report)}
${renderJudge(report)}
</section>
<section class="card">
<h2>Prompts</h2>
${renderPrompts(report, names)}
</section>
</main>
<footer>Written by retake ${
    esc(report.version)
  }. The numbers are in eval.json beside this page.</footer>
</body>
</html>
`;
}

function renderVerdict(report: EvalReport): string {
  const c = report.comparison.refineVsBestOfN;
  if (c === null) {
    return `<p class="verdict">Refine against best-of-n: not compared (run both strategies).</p>`;
  }
  if (c.winRate === null || c.ci95 === null) {
    return `<p class="verdict">Refine against best-of-n: no prompt has both final images judged yet.</p>`;
  }
  return `<p class="verdict">Refine against best-of-n, judged prompt by prompt: refine's final image won <b>${c.wins}</b>, tied <b>${c.ties}</b> and lost <b>${c.losses}</b> of ${c.prompts} — win rate <b>${
    c.winRate.toFixed(2)
  }</b> (95% bootstrap interval ${c.ci95[0].toFixed(2)}–${
    c.ci95[1].toFixed(2)
  }; 0.5 is a draw).</p>`;
}

/** Whether the chart's x axis is dollars: any strategy cost something. */
function usesCost(report: EvalReport, names: StrategyName[]): boolean {
  return names.some((s) => (report.strategies[s]!.costPerPromptUsd ?? 0) > 0);
}

function renderChart(report: EvalReport, names: StrategyName[]): string {
  const byCost = usesCost(report, names);
  const xOf = (s: StrategySummary) => byCost ? s.costPerPromptUsd : s.imagesPerPrompt;
  const points = names.map((name) => ({ name, s: report.strategies[name]! }))
    .filter(({ s }) => xOf(s) !== null && s.meanJudgeScore !== null)
    .map(({ name, s }) => ({ name, s, x: xOf(s)!, y: s.meanJudgeScore! }));
  const missing = names.filter((n) => !points.some((p) => p.name === n));
  const { width, height, left, right, top, bottom } = CHART;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const xMax = niceCeiling(Math.max(...points.map((p) => p.x), byCost ? 0.001 : 1) * 1.15);
  const ys = points.map((p) => p.y);
  const yMin = Math.max(0, Math.floor((ys.length ? Math.min(...ys) : 0) - 1));
  const yMax = Math.min(10, Math.ceil((ys.length ? Math.max(...ys) : 10) + 1));
  const px = (x: number) => left + (x / xMax) * plotW;
  const py = (y: number) => top + (1 - (y - yMin) / (yMax - yMin || 1)) * plotH;
  const xTicks = ticks(0, xMax, 5);
  const yTicks = ticks(yMin, yMax, Math.min(5, yMax - yMin));
  const xLabel = byCost
    ? "cost per prompt (USD)"
    : "images per prompt (offline: every call is free)";
  const fmtX = (x: number) => byCost ? `$${trimNumber(x)}` : trimNumber(x);
  const parts = [
    `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="Mean judge score against ${
      esc(xLabel)
    }, one point per strategy">`,
    `<rect class="plot" x="${left}" y="${top}" width="${plotW}" height="${plotH}"/>`,
    ...yTicks.map((y) =>
      `<line class="grid" x1="${left}" x2="${left + plotW}" y1="${py(y)}" y2="${
        py(y)
      }"/><text class="tick" x="${left - 8}" y="${py(y) + 4}" text-anchor="end">${
        trimNumber(y)
      }</text>`
    ),
    ...xTicks.map((x) =>
      `<line class="grid" x1="${px(x)}" x2="${px(x)}" y1="${top}" y2="${
        top + plotH
      }"/><text class="tick" x="${px(x)}" y="${top + plotH + 18}" text-anchor="middle">${
        fmtX(x)
      }</text>`
    ),
    `<text class="axis" x="${left + plotW / 2}" y="${height - 10}" text-anchor="middle">${
      esc(xLabel)
    }</text>`,
    `<text class="axis" transform="translate(16 ${
      top + plotH / 2
    }) rotate(-90)" text-anchor="middle">mean judge score (0–10)</text>`,
    ...placeLabels(points.map((p) => ({ ...p, cx: px(p.x), cy: py(p.y) })), {
      left,
      right: left + plotW,
    }).map(({ name, s, x, y, cx, cy, label }) =>
      `<g class="point-group"><circle class="point" data-strategy="${esc(name)}" cx="${
        r2(cx)
      }" cy="${r2(cy)}" r="7" fill="${COLOURS[name]}"><title>${esc(name)}: score ${
        y.toFixed(2)
      } at ${esc(fmtX(x))}${
        byCost ? " per prompt" : " images per prompt"
      } (${s.judged} judged)</title></circle><text class="label" x="${r2(label.x)}" y="${
        r2(label.y)
      }" text-anchor="${label.anchor}">${esc(name)} ${y.toFixed(2)}</text></g>`
    ),
    `</svg>`,
  ];
  const note = missing.length
    ? `<p class="note">Not on the chart, as no final image of theirs was judged: ${
      esc(missing.join(", "))
    }.</p>`
    : "";
  return parts.join("\n") + note;
}

function renderTable(report: EvalReport, names: StrategyName[]): string {
  const rows = names.map((name) => {
    const s = report.strategies[name]!;
    return `<tr><th scope="row"><span class="dot" style="background:${COLOURS[name]}"></span>${
      esc(name)
    } <a href="${esc(s.folder)}/index.html">gallery</a></th><td>${
      fixed(s.imagesPerPrompt, 1)
    }</td><td>${fixed(s.meanJudgeScore, 2)}</td><td>${
      s.meanChecksPassedRate === null ? "–" : `${Math.round(s.meanChecksPassedRate * 100)}%`
    }</td><td>${fixed(s.meanCriticScore, 2)}</td><td>${usd(s.costPerPromptUsd)}</td><td>${
      s.timePerPromptMs === null ? "–" : esc(formatDuration(s.timePerPromptMs, { subSecond: true }))
    }</td><td>${s.completed}/${s.prompts}</td><td>${esc(s.runStatus)}</td></tr>`;
  });
  return `<div class="scroll"><table class="strategies">
<thead><tr><th scope="col">Strategy</th><th scope="col">Images per prompt</th><th scope="col">Judge score</th><th scope="col">Checks passed</th><th scope="col">Loop critic's score</th><th scope="col">Cost per prompt</th><th scope="col">Time per prompt</th><th scope="col">Completed</th><th scope="col">Run</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table></div>`;
}

function renderSpend(report: EvalReport): string {
  const e = report.equalSpend;
  const rule = e.rule === "equal-images"
    ? `prices are unknown or zero: it draws as many images as refine makes`
    : `its estimated spend matches refine's ${e.rounds} rounds (${e.rounds} images, ${e.rounds} critiques, ${
      e.rounds - 1
    } refinements)${e.capped ? `, held at ${e.bestOfN} images` : ""}`;
  const actual = actualSpendRatio(report);
  const measured = actual === null
    ? ""
    : ` Actually spent per prompt: best-of-n ${
      usd(report.strategies["best-of-n"]!.costPerPromptUsd)
    }, refine ${usd(report.strategies.refine!.costPerPromptUsd)} (×${
      actual.toFixed(2)
    }): the estimates are generous upper bounds.`;
  return `<p class="note">Equal spend: best-of-n draws <b>${e.bestOfN}</b> images per prompt, as ${
    esc(rule)
  }.${measured} Cost per prompt excludes the judge.</p>`;
}

function renderJudge(report: EvalReport): string {
  const j = report.judge;
  const who = j.independent
    ? `not the loop's critic (${esc(j.loopCritic)})`
    : `the loop's own critic`;
  const stopped = j.stoppedBy === null ? "" : `; stopped early (${esc(j.stoppedBy)})`;
  return `<p class="note">Judge: <code>${
    esc(`${j.provider}:${j.model}`)
  }</code>, ${who}. ${j.judged} judged this run, ${j.cached} from the cache, ${j.failed} failed, ${j.notJudged} not judged${stopped}; judging cost ${
    usd(j.costUsd)
  }.</p>`;
}

function renderPrompts(report: EvalReport, names: StrategyName[]): string {
  const head = names.map((n) => `<th scope="col">${esc(n)}</th>`).join("");
  const rows = report.prompts.map((line) => {
    const scores = names.map((n) => line[n]?.judgeScore ?? null);
    const top = Math.max(...scores.filter((s) => s !== null) as number[]);
    const cells = names.map((n) => {
      const p = line[n];
      if (!p) return "<td>–</td>";
      const score = p.judgeScore;
      const checks = p.checksTotal
        ? ` <small>${p.checksPassed}/${p.checksTotal} checks</small>`
        : "";
      const text = score === null
        ? `<small title="${esc(p.error ?? "")}">${
          esc(p.judge === "no final image" ? p.status : p.judge)
        }</small>`
        : `${score.toFixed(1)}${checks}`;
      return `<td${score !== null && score === top ? ` class="top"` : ""}>${text}</td>`;
    }).join("");
    return `<tr><th scope="row">${esc(line.id)}</th>${cells}</tr>`;
  });
  return `<div class="scroll"><table class="prompts"><thead><tr><th scope="col">Prompt</th>${head}</tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table></div>
<p class="note">Judge scores of each strategy's final image; the best of a row is marked.</p>`;
}

/** Rough width of a label's character at the chart's label size, in SVG units. */
const CHAR_WIDTH = 8;
const LABEL_HEIGHT = 16;

/**
 * A label beside each point that overlaps no label placed before it: above right, then below
 * right, above left, below left (points near the right edge try left first).
 */
function placeLabels<P extends { name: string; y: number; cx: number; cy: number }>(
  points: P[],
  plot: { left: number; right: number },
): Array<P & { label: { x: number; y: number; anchor: "start" | "end" } }> {
  const placed: Array<{ x0: number; x1: number; y0: number; y1: number }> = [];
  return points.map((p) => {
    const width = (p.name.length + 5) * CHAR_WIDTH;
    const right = [{ dx: 12, dy: -10 }, { dx: 12, dy: 22 }];
    const left = [{ dx: -12, dy: -10 }, { dx: -12, dy: 22 }];
    const tries = p.cx + 12 + width > plot.right ? [...left, ...right] : [...right, ...left];
    const boxes = tries.map(({ dx, dy }) => {
      const x0 = dx > 0 ? p.cx + dx : p.cx + dx - width;
      return {
        dx,
        dy,
        box: { x0, x1: x0 + width, y0: p.cy + dy - LABEL_HEIGHT + 4, y1: p.cy + dy + 4 },
      };
    });
    const free = boxes.find(({ box }) =>
      !placed.some((b) =>
        box.x0 < b.x1 && b.x0 < box.x1 && box.y0 < b.y1 && b.y0 < box.y1
      )
    ) ?? boxes[0]!;
    placed.push(free.box);
    return {
      ...p,
      label: {
        x: p.cx + free.dx,
        y: p.cy + free.dy,
        anchor: free.dx > 0 ? "start" as const : "end" as const,
      },
    };
  });
}

/** About `count` round tick values from `lo` to `hi`. */
function ticks(lo: number, hi: number, count: number): number[] {
  const step = niceCeiling((hi - lo) / Math.max(1, count));
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.round(v * 1e9) / 1e9);
  }
  return out;
}

/** The smallest of 1, 2, 2.5, 5 × 10^k at least `x`. */
function niceCeiling(x: number): number {
  if (!(x > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= x - 1e-12) return m * power;
  return 10 * power;
}

function trimNumber(x: number): string {
  return String(Number(x.toPrecision(4)));
}

function r2(x: number): number {
  return Math.round(x * 100) / 100;
}

function fixed(x: number | null, digits: number): string {
  return x === null ? "–" : x.toFixed(digits);
}

function usd(x: number | null): string {
  return x === null ? "–" : `$${x.toFixed(4)}`;
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
:root {
  --bg: #f4f5f7; --card: #fff; --ink: #1d2430; --soft: #5b6472; --line: #e1e4ea;
  --accent: #3d5afe; --warn-bg: #fff4e0; --warn-ink: #7a4500; --top: #e3f4e8;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #15181d; --card: #1f242c; --ink: #e6e9ee; --soft: #a4acb8; --line: #323944;
    --accent: #8c9eff; --warn-bg: #3a2a10; --warn-ink: #ffd28a; --top: #173d22; }
}
* { box-sizing: border-box; }
body { margin: 0; padding: 24px clamp(12px, 3vw, 40px) 40px; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header, main, footer { max-width: 1100px; margin-inline: auto; }
h1 { font-size: 26px; margin: 0; } h1 span { color: var(--soft); font-weight: 400; }
h2 { font-size: 18px; margin: 0 0 12px; }
.when { color: var(--soft); font-size: 13px; margin: 4px 0 16px; }
.badge { font-size: 12px; font-weight: 600; padding: 1px 9px; border-radius: 999px;
  border: 1px solid currentColor; }
.caveat { background: var(--warn-bg); color: var(--warn-ink); border-radius: 10px; padding: 12px 16px;
  font-weight: 600; margin: 0 0 16px; }
.verdict { font-size: 17px; margin: 0 0 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 14px; padding: 20px;
  margin: 0 0 20px; }
.chart { width: 100%; max-width: 760px; height: auto; display: block; }
.chart .plot { fill: none; stroke: var(--line); }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .tick { fill: var(--soft); font-size: 12px; font-variant-numeric: tabular-nums; }
.chart .axis { fill: var(--soft); font-size: 13px; }
.chart .label { fill: var(--ink); font-size: 13px; font-weight: 600; }
.chart .point { stroke: var(--card); stroke-width: 2; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
thead th { white-space: normal; vertical-align: bottom; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--soft); }
tbody th a { font-weight: 400; font-size: 13px; color: var(--accent); margin-left: 6px; }
td.top { background: var(--top); font-weight: 600; }
td small { color: var(--soft); }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 8px; }
.note { color: var(--soft); font-size: 14px; margin: 12px 0 0; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
footer { color: var(--soft); font-size: 13px; }
`;
