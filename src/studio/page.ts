/**
 * The studio's pages, rendered on the server: the batches list, a batch page (a page of
 * prompts with every round side by side, filters, paging, progress, the log's tail) and one
 * prompt's row, which the page fetches again when the row changes. Every string from a file
 * or a service is escaped with the gallery's escaping.
 *
 * @module
 */
import { promptFolder } from "../output/folder_names.ts";
import { END_REASONS, type Entry, esc, imageName, iterationsOf } from "../gallery/gallery.ts";
import { formatProgress, type ProgressSnapshot } from "../batch/progress.ts";
import type { IterationRecord, PromptRecord } from "../output/record.ts";
import type { BatchPage, BatchSummary, Filter } from "./batch.ts";
import { FILTERS } from "./batch.ts";
import { contextLines } from "../prompts/context_text.ts";

/** What every page needs besides its content. */
export interface PageContext {
  csrf: string;
  /** The session's path every URL starts with (`/s/<secret>/`). @default {"/"} */
  base?: string;
}

/** A batch page's live state, when this process runs the batch. */
export interface LiveState {
  snapshot: ProgressSnapshot;
  paused: boolean;
}

/** Which images have thumbnails, by path relative to the batch folder. */
export type ThumbLookup = (rel: string) => string | undefined;

const FILTER_LABELS: Record<Filter, string> = {
  all: "All",
  failed: "Failed",
  below: "Below target",
  unfinished: "Not finished",
};

function layout(title: string, context: PageContext, body: string, attrs = ""): string {
  const base = context.base ?? "/";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf" content="${esc(context.csrf)}">
<meta name="base" content="${esc(base)}">
<title>${esc(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${esc(base)}app.css">
<script src="${esc(base)}app.js" defer></script>
</head>
<body${attrs}>
<p id="notice" class="notice-bar" hidden></p>
${body}
</body>
</html>
`;
}

/** The list of every batch under the output folder. */
export function renderBatches(out: string, batches: BatchSummary[], context: PageContext): string {
  const base = context.base ?? "/";
  // Every value escaped, numbers too: a run.json from elsewhere may put anything in them.
  const rows = batches.map((b) =>
    `<tr><td><a href="${esc(`${base}b/${encodeURIComponent(b.name)}/`)}">${
      esc(b.name)
    }</a></td><td>${badge(b.status)}</td><td class="num">${
      esc(count(b.prompts))
    }</td><td class="num">${esc(count(b.completed))}</td><td class="num">${
      esc(count(b.failed))
    }</td><td class="num">${esc(cost(b.costUsd))}</td><td>${
      esc(b.startedAt ? b.startedAt.slice(0, 19).replace("T", " ") : "–")
    }</td></tr>`
  );
  const table = batches.length === 0
    ? `<p class="empty">No batch folders in <code>${esc(out)}</code> yet.</p>`
    : `<table class="batches"><thead><tr><th>Batch</th><th>Status</th><th>Prompts</th><th>Completed</th><th>Failed</th><th>Cost</th><th>Started (UTC)</th></tr></thead><tbody>${
      rows.join("")
    }</tbody></table>`;
  return layout(
    "retake studio",
    context,
    `<header class="top"><h1>retake studio</h1><p class="sub">Batches in <code>${
      esc(out)
    }</code></p></header>
<main>${table}</main>`,
  );
}

/** Options for {@linkcode renderBatchPage}. */
export interface BatchPageOptions {
  name: string;
  filter: Filter;
  page: BatchPage;
  live?: LiveState;
  /** The last lines of the batch's `log.jsonl`. */
  logLines: LogLine[];
  thumbs: ThumbLookup;
  held?: HeldNotes;
}

/** A batch page. */
export function renderBatchPage(options: BatchPageOptions, context: PageContext): string {
  const { name, filter, page, live } = options;
  const root = context.base ?? "/";
  const base = `${root}b/${encodeURIComponent(name)}/`;
  const link = (f: Filter, n: number) =>
    `${base}?${new URLSearchParams({ filter: f, page: String(n) })}`;
  const filters = FILTERS.map((f) =>
    `<a href="${esc(link(f, 1))}"${f === filter ? ` class="on" aria-current="page"` : ""}>${
      esc(f === "below" ? `${FILTER_LABELS[f]} (${page.target})` : FILTER_LABELS[f])
    }</a>`
  ).join("");
  const pager = page.pages <= 1
    ? ""
    : `<nav class="pager">${
      page.page > 1 ? `<a href="${esc(link(filter, page.page - 1))}" rel="prev">← Previous</a>` : ""
    }<span>Page ${page.page} of ${page.pages}</span>${
      page.page < page.pages
        ? `<a href="${esc(link(filter, page.page + 1))}" rel="next">Next →</a>`
        : ""
    }</nav>`;
  const controls = [
    live
      ? `<button type="button" id="pause" data-action="${live.paused ? "resume" : "pause"}">${
        live.paused ? "Resume" : "Pause"
      }</button>`
      : "",
    `<a class="button" href="${esc(base)}export.zip" download>Export ZIP</a>`,
  ].join("");
  const rows = page.entries.length === 0
    ? `<p class="empty">No prompt matches this filter.</p>`
    : page.entries.map((entry) =>
      renderRow(name, entry, {
        thumbs: options.thumbs,
        live: live !== undefined,
        base: root,
        ...(options.held && { held: options.held }),
      })
    ).join("\n");
  const attrs = ` data-batch="${esc(name)}"${live ? ` data-live="true"` : ""}${
    live?.paused ? ` data-paused="true"` : ""
  }`;
  return layout(
    `retake studio · ${name}`,
    context,
    `<header class="top">
<p class="crumbs"><a href="${esc(root)}">← All batches</a></p>
<div class="title"><h1>${esc(name)}</h1>${badge(live ? "running" : page.status)}${
      live?.paused ? `<span class="badge warn" id="paused">paused</span>` : ""
    }</div>
${renderProgress(page, live)}
<div class="controls">${controls}</div>
<nav class="filters">${filters}<span class="count">${esc(String(page.matching))} of ${
      esc(String(page.total))
    } prompts</span></nav>
${pager}
</header>
<main id="rows">
${rows}
</main>
${pager}
${renderLog(options.logLines)}`,
    attrs,
  );
}

/** The progress bar and line: the terminal's own formatter when the run is live here. */
export function renderProgress(page: Pick<BatchPage, "total">, live?: LiveState): string {
  if (!live) {
    return `<div class="progress" id="progress"><span id="progress-text">${page.total} prompts</span></div>`;
  }
  const s = live.snapshot;
  return `<div class="progress" id="progress"><progress id="bar" max="${s.total}" value="${
    s.completed + s.failed
  }"></progress><span id="progress-text">${esc(formatProgress(s))}</span></div>`;
}

/** A prompt's notes from `feedback.jsonl` that wait for the user to confirm them. */
export type HeldNotes = (id: string) => Array<{ seq: number; note: string }>;

/** Held notes a row lists; the rest are counted. */
const HELD_SHOWN = 3;

/** Options for {@linkcode renderRow}. */
export interface RowOptions {
  thumbs: ThumbLookup;
  /** Whether a run is live here: the queue's buttons (front, cancel) then apply. */
  live: boolean;
  /** The session's path every URL starts with. @default {"/"} */
  base?: string;
  held?: HeldNotes;
}

/** One prompt's row: its context, why it stopped, its actions, and every round. */
export function renderRow(batch: string, entry: Entry, options: RowOptions): string {
  switch (entry.kind) {
    case "single":
      return renderRecordRow(batch, entry.folder, entry.folder, entry.record, options);
    case "comparison":
      return `<section class="row comparison" id="row-${esc(entry.folder)}" data-folder="${
        esc(entry.folder)
      }"><header class="ctx"><h2>${
        esc(entry.folder)
      }</h2><p class="facts">Comparing ${entry.runs.length} models</p></header><div class="models">${
        entry.runs.map((run) =>
          run.record
            ? renderRecordRow(batch, entry.folder, run.rel, run.record, {
              ...options,
              model: run.subfolder,
            })
            : `<p class="error">${esc(run.subfolder)}: ${esc(run.problem ?? "unreadable")}</p>`
        ).join("")
      }</div></section>`;
    case "unreadable":
      return `<section class="row unreadable" id="row-${esc(entry.folder)}" data-folder="${
        esc(entry.folder)
      }"><header class="ctx"><h2>${esc(entry.id ?? entry.folder)}</h2>${
        badge("unreadable")
      }</header><p class="error">${esc(entry.problem)}</p></section>`;
    case "absent": {
      // Named for the folder the prompt will get, so the row fills in once it starts.
      const folder = promptFolder(entry.id);
      return `<section class="row absent" id="row-${esc(folder)}" data-folder="${
        esc(folder)
      }" data-id="${esc(entry.id)}" data-status="${esc(entry.status)}"><header class="ctx"><h2>${
        esc(entry.id)
      }</h2>${badge(entry.status)}<p class="facts">Not started yet.</p></header></section>`;
    }
  }
}

function renderRecordRow(
  batch: string,
  folder: string,
  rel: string,
  record: PromptRecord,
  options: RowOptions & { model?: string },
): string {
  const status = String(record.status ?? "unknown");
  const chosen = chosenOf(record);
  const best = num(record.bestIteration);
  const facts = [
    num(record.bestScore) !== undefined ? `best <b>${num(record.bestScore)!.toFixed(1)}</b>` : "",
    esc(cost(record.costUsd)),
    `${iterationsOf(record).length} round(s)`,
  ].filter(Boolean).join(" · ");
  const stop = stopReason(record);
  const running = status === "running";
  const actions = `<div class="actions">${
    options.live && running
      ? `<button type="button" data-action="front">Move to front</button><button type="button" data-action="cancel">Cancel</button>`
      : ""
  }<form class="reject" data-action="reject"><label>Note for the next round<textarea name="note" maxlength="2000" rows="2" required placeholder="e.g. make the sky darker"></textarea></label><button type="submit">Reject with note</button></form>${
    renderHeld(options.held?.(record.id) ?? [])
  }</div>`;
  const rounds = iterationsOf(record).map((it) =>
    renderRound(batch, rel, record, it, {
      best: it.iteration === best,
      chosen: it.iteration === chosen,
      thumbs: options.thumbs,
      base: options.base ?? "/",
    })
  );
  const body = rounds.length === 0
    ? `<p class="empty">No round finished yet.</p>`
    : `<div class="rounds">${rounds.join("")}</div>`;
  const isTop = options.model === undefined;
  const tag = isTop ? "section" : "div";
  const idAttr = isTop ? ` id="row-${esc(folder)}" data-folder="${esc(folder)}"` : "";
  return `<${tag} class="row${isTop ? "" : " model"}"${idAttr} data-id="${esc(record.id)}"${
    options.model ? ` data-model="${esc(options.model)}"` : ""
  } data-status="${esc(status)}">
<header class="ctx">
<h2>${esc(options.model ?? str(record.title) ?? record.id)}</h2>
<p class="id"><code>${esc(record.id)}</code> ${badge(status)}<span class="working"></span></p>
<p class="facts">${facts}</p>
${stop ? `<p class="stop">${esc(stop)}</p>` : ""}
<p class="prompt">${esc(str(record.prompt) ?? "")}</p>
${contextList(record.extra)}${actions}
</header>
${body}
</${tag}>`;
}

/**
 * Notes read from `feedback.jsonl` that no one confirmed in this session: a round costs money,
 * and the file may have come with the batch folder, so each waits for a click.
 */
function renderHeld(notes: Array<{ seq: number; note: string }>): string {
  if (notes.length === 0) return "";
  const items = notes.slice(0, HELD_SHOWN).map((n) =>
    `<li><q>${esc(n.note)}</q> <button type="button" data-action="confirm" data-seq="${
      esc(String(n.seq))
    }" data-note="${esc(n.note)}">Run this note</button></li>`
  );
  const more = notes.length > HELD_SHOWN
    ? `<li>and ${esc(String(notes.length - HELD_SHOWN))} more</li>`
    : "";
  return `<div class="held"><p>Notes from <code>feedback.jsonl</code>, not sent in this session: none runs until you confirm it (each is a paid round).</p><ul>${
    items.join("")
  }${more}</ul></div>`;
}

function renderRound(
  batch: string,
  rel: string,
  record: PromptRecord,
  it: IterationRecord,
  marks: { best: boolean; chosen: boolean; thumbs: ThumbLookup; base: string },
): string {
  const n = num(it.iteration) ?? 0;
  const image = imageName(it);
  const critique = isObject(it.critique) ? it.critique : undefined;
  const score = num(critique?.score);
  const src = image
    ? `${marks.base}b/${encodeURIComponent(batch)}/f/${
      `${rel}/${image}`.split("/").map(encodeURIComponent).join("/")
    }`
    : undefined;
  const thumb = image ? marks.thumbs(`${rel}/${image}`) : undefined;
  const thumbSrc = thumb
    ? `${marks.base}b/${encodeURIComponent(batch)}/f/${
      thumb.split("/").map(encodeURIComponent).join("/")
    }`
    : src;
  const how = str(it.action) === "edit"
    ? `edit of ${num(it.editOf) ?? "?"}`
    : str(it.action) === "redraw"
    ? "redrawn"
    : n === 1
    ? "first image"
    : "";
  const note = str((it as unknown as Record<string, unknown>).note);
  const checks = Array.isArray(critique?.checks) ? critique.checks.filter(isObject) : [];
  const questions = new Map(
    (isObject(record.brief) && Array.isArray(record.brief.checks) ? record.brief.checks : [])
      .filter(isObject).map((c) => [str(c.id), str(c.question)]),
  );
  const item = (c: Record<string, unknown>) => {
    const ok = c.passed === true;
    return `<li class="${ok ? "pass" : "fail"}" title="${esc(str(c.reason) ?? "")}">${
      ok ? "✓" : "✗"
    } ${esc(questions.get(str(c.id)) ?? str(c.id) ?? "?")}</li>`;
  };
  const failed = checks.filter((c) => c.passed !== true);
  // The failed checks say what to fix; the passed ones fold away to keep rounds side by side.
  const checkList = checks.length === 0
    ? ""
    : `<div class="checks"><p>Checks <b>${checks.length - failed.length}/${checks.length}</b></p>${
      failed.length > 0 ? `<ul>${failed.map(item).join("")}</ul>` : ""
    }<details><summary>All checks</summary><ul>${checks.map(item).join("")}</ul></details></div>`;
  const classes = ["round", marks.best ? "best" : "", marks.chosen ? "chosen" : ""].filter(Boolean);
  return `<article class="${classes.join(" ")}" data-iteration="${n}">
${
    src
      ? `<a class="shot" href="${esc(src)}" target="_blank"><img src="${
        esc(thumbSrc!)
      }" loading="lazy" alt="${esc(`${record.id}, round ${n}`)}"></a>`
      : `<div class="noimg">no image yet</div>`
  }
<div class="head"><span class="n">Round ${n}</span>${
    how ? `<span class="how" title="${esc(str(it.actionReason) ?? "")}">${esc(how)}</span>` : ""
  }${marks.chosen ? `<span class="pick">♥ your pick</span>` : ""}${
    marks.best ? `<span class="star">★ best</span>` : ""
  }${
    score !== undefined ? `<span class="score ${tone(score)}">${score.toFixed(1)}</span>` : ""
  }</div>
${note ? `<p class="note">Your note: ${esc(note)}</p>` : ""}
${checkList}
${str(critique?.summary) ? `<p class="summary">${esc(str(critique!.summary)!)}</p>` : ""}
${
    image && !marks.chosen
      ? `<button type="button" class="fav" data-action="favourite" data-iteration="${n}">♥ Pick this one</button>`
      : ""
  }
</article>`;
}

/** Why the prompt stopped, or where it stands, in words. */
export function stopReason(record: PromptRecord): string {
  if (record.status === "failed") {
    const error: Record<string, unknown> = isObject(record.error) ? record.error : {};
    return `Failed at ${str(error.step) ?? "?"} ${num(error.iteration) ?? ""}: ${
      str(error.message) ?? "unknown error"
    }`;
  }
  const end = str(record.endReason);
  if (end !== undefined) return `Stopped: ${END_REASONS[end] ?? end}`;
  const cause = str((record as unknown as Record<string, unknown>).stopCause);
  if (cause === "budget") return "Paused: --max-cost reached";
  if (cause === "cancel") return "Cancelled";
  if (cause === "interrupt") return "Interrupted: run again to resume";
  if (record.status === "running") return "Running";
  return "";
}

/** The user's pick (`chosen`), when it names an iteration. */
export function chosenOf(record: PromptRecord): number | undefined {
  return num((record as unknown as Record<string, unknown>).chosen);
}

/** One line of `log.jsonl`, as the page shows it. */
export interface LogLine {
  at: string;
  level: string;
  message: string;
}

function renderLog(lines: LogLine[]): string {
  const items = lines.map((l) =>
    `<li class="${esc(l.level.toLowerCase())}"><time>${esc(l.at.slice(11, 19))}</time> <b>${
      esc(l.level)
    }</b> ${esc(l.message)}</li>`
  );
  return `<details class="log" id="log"><summary>Log (last ${lines.length} lines)</summary><ol>${
    items.join("")
  }</ol></details>`;
}

function badge(status: string): string {
  const tone = status === "completed"
    ? "ok"
    : /fail|crash|stopped|unreadable/.test(status)
    ? "bad"
    : /running|interrupt|pending/.test(status)
    ? "warn"
    : "muted";
  return `<span class="badge ${tone}">${esc(status)}</span>`;
}

function tone(score: number): string {
  return score >= 8 ? "good" : score >= 6 ? "fair" : "poor";
}

function count(value: unknown): string {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0
    ? String(value)
    : "–";
}

function cost(value: unknown): string {
  const n = num(value);
  return n === undefined ? "–" : `$${n.toFixed(4)}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** The prompt's context fields (a prompt file's other columns), as the gallery shows them. */
function contextList(extra: unknown): string {
  const lines = contextLines(extra);
  if (lines.length === 0) return "";
  return `<dl class="context">${
    lines.map(([name, text]) => `<dt>${esc(name)}</dt><dd>${esc(text)}</dd>`).join("")
  }</dl>\n`;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}
