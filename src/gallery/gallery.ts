/**
 * The gallery: one static `index.html` per batch folder that shows every prompt, every
 * iteration's image with its critique, and how the prompt changed between rounds. It works from
 * `file://` — no server, no network, no script — and uses JPEG thumbnails made with sharp.
 *
 * @module
 */
import { diffWords } from "diff";
import sharp from "sharp";
import { isRoundImageName, promptFolder, safeFolderName } from "../output/folder_names.ts";
import { refuseLinks, writeFileAtomic, writeStreamAtomic } from "../output/atomic_write.ts";
import { readRunFile } from "../output/run_file.ts";
import { type ComparisonPrompt, readComparisonFile } from "../output/comparison_file.ts";
import { formatDuration } from "../util/duration.ts";
import { messageOf } from "../errors.ts";
import { contextLines } from "../prompts/context_text.ts";
import type { RunRead } from "../output/run_file.ts";
import { readBytesInside, readTextOrProblem } from "../output/safe_read.ts";
import type { FailureRecord, IterationRecord, PromptRecord } from "../output/record.ts";
import { lstatOrUndefined, statOrUndefined } from "../util/file_info.ts";
import { MAX_RECORD_BYTES, readPromptRecord, type RecordRead } from "../output/record_file.ts";

/** Options for {@linkcode writeGallery}. */
export interface GalleryOptions {
  /**
   * Width of the thumbnails in `<batchDir>/_thumbs/`, in pixels.
   *
   * @default {360}
   */
  thumbWidth?: number;
}

const DEFAULT_THUMB_WIDTH = 360;
// No prompt folder can start with "_" (see safeFolderName), so this never collides.
const THUMB_DIR = "_thumbs";
const THUMB_CONCURRENCY = 4;
const PROBLEMS_SHOWN = 3;
/** The largest image a thumbnail is made of: a generated image is a few megabytes. */
const MAX_IMAGE_BYTES = 64 * 1024 * 1024;

/**
 * Writes `<batchDir>/index.html`, a static page showing the batch's totals from `run.json` and
 * every prompt folder: context, each iteration's image (a lazy-loaded thumbnail linking to the
 * full image), critic scores, the critique's main problems, and the refined prompt with the
 * words that changed marked `<ins>`/`<del>`. A folder with no `metadata.json` whose subfolders
 * each hold one is shown as a comparison of models, with the winner from `comparison.json`.
 * Thumbnails go to `<batchDir>/_thumbs/`, mirroring the image paths, and are only remade when
 * older than their image. A missing or corrupt `metadata.json` shows that prompt as unreadable.
 *
 * @param batchDir A batch output folder, e.g. `outputs/example`.
 * @param options Thumbnail size.
 * @returns The path of the page written.
 *
 * @example
 * ```ts
 * import { writeGallery } from "./gallery.ts";
 * const dir = await Deno.makeTempDir();
 * const page = await writeGallery(dir);
 * const html = await Deno.readTextFile(page);
 * await Deno.remove(dir, { recursive: true });
 * if (!html.startsWith("<!doctype html>")) throw new Error("expected an HTML page");
 * ```
 */
export async function writeGallery(
  batchDir: string,
  options: GalleryOptions = {},
): Promise<string> {
  const thumbWidth = options.thumbWidth ?? DEFAULT_THUMB_WIDTH;
  if (!Number.isInteger(thumbWidth) || thumbWidth < 16 || thumbWidth > 4096) {
    throw new RangeError(
      `Cannot write the gallery as 'thumbWidth' must be an integer between 16 and 4096: current value is ${thumbWidth}`,
    );
  }
  const dir = batchDir.replace(/[\\/]+$/, "") || ".";
  if (!(await statOrUndefined(dir))?.isDirectory) {
    throw new Deno.errors.NotFound(
      `Cannot write the gallery as '${dir}' is not a folder: give a batch folder such as 'outputs/example'`,
    );
  }
  const run = await readRunFile(dir);
  const comparison = await readComparisonFile(dir);
  const data: PageData = {
    name: dir.split(/[\\/]/).pop() || dir,
    run,
    comparison,
    modelByFolder: modelsByFolder(run.value),
    thumbs: new Map(),
    thumbWidth,
  };
  // Two passes over the folders, holding one chunk of records at a time: the first for the
  // table of contents at the top, the second streams each prompt's section to disk. A batch of
  // any size costs the same memory (a whole page of 10,000 prompts is tens of MB of HTML).
  const { folders, absent } = await listEntries(dir, run.value);
  const shown: string[] = [];
  const toc: TocItem[] = [];
  const seen = new Set<string>();
  for (const folder of folders) {
    const entry = await readEntry(dir, folder.name, folder.listed);
    if (!entry) continue;
    shown.push(folder.name);
    toc.push(tocInfo(entry));
    seen.add(entryId(entry));
  }
  const missing = absent.filter((entry) => !seen.has(entry.id));
  toc.push(...missing.map(tocInfo));
  const page = `${dir}/index.html`;
  await writeStreamAtomic(
    page,
    ReadableStream.from(renderPage(dir, data, toc, shown, missing)).pipeThrough(
      new TextEncoderStream(),
    ),
    undefined,
    { within: dir },
  );
  return page;
}

// ---------------------------------------------------------------------------------------------
// Reading the batch folder

/** A JSON file's content, or why it could not be read. */
interface JsonRead {
  value?: unknown;
  problem?: string;
}

type UnknownRecord = Record<string, unknown>;

/** One model's run of a prompt in a comparison folder. */
interface ModelRun {
  /** Path relative to the batch folder, e.g. `sunset/flux-dev`. */
  rel: string;
  subfolder: string;
  record?: PromptRecord;
  problem?: string;
}

/** What the page shows for one prompt. */
export type Entry =
  | { kind: "single"; folder: string; record: PromptRecord }
  | { kind: "comparison"; folder: string; runs: ModelRun[] }
  | { kind: "unreadable"; folder: string; id?: string; problem: string }
  | { kind: "absent"; id: string; status: string };

/**
 * A JSON file of the batch folder: never through a link (a folder from elsewhere may hold one
 * to any file on this machine), never more than `maxBytes`.
 */
async function readJson(dir: string, rel: string, maxBytes: number): Promise<JsonRead> {
  const read = await readTextOrProblem(dir, rel, maxBytes);
  if ("problem" in read) return read;
  try {
    return { value: JSON.parse(read.text) };
  } catch (error) {
    return { problem: `is not valid JSON: ${messageOf(error)}` };
  }
}

/** The record in `<folder>/metadata.json`; undefined when there is none. */
async function readRecord(
  dir: string,
  folder: string,
): Promise<RecordRead | undefined> {
  const read = await readPromptRecord(dir, folder);
  return read.missing ? undefined : read;
}

/** Whether `path` is there at all (a file, or a link that is then refused when read). */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function subfolders(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) {
    // "." hides temp files; "_" holds earlier attempts moved aside (`_previous`).
    if (entry.isDirectory && !/^[._]/.test(entry.name)) names.push(entry.name);
  }
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A prompt folder to show, and whether `run.json` lists it. */
interface FolderRef {
  name: string;
  listed: boolean;
}

/**
 * The prompt folders in `run.json` order, then any other prompt folder by name; and the
 * prompts `run.json` lists that have no folder.
 */
export async function listEntries(
  dir: string,
  run: unknown,
): Promise<{ folders: FolderRef[]; absent: Array<Extract<Entry, { kind: "absent" }>> }> {
  const listed = isObject(run) && Array.isArray(run.prompts) ? run.prompts.filter(isObject) : [];
  // `_thumbs/` holds no metadata.json, so it is never taken for a prompt folder.
  const names = await subfolders(dir);
  const nameSet = new Set(names);
  const folders: FolderRef[] = [];
  const absent = new Map<string, Extract<Entry, { kind: "absent" }>>();
  const listedFolders = new Set<string>();
  for (const item of listed) {
    const id = typeof item.id === "string" ? item.id : undefined;
    // In a comparison run the folder is `<id>/<model>`: the prompt's folder is the first part.
    const folder = typeof item.folder === "string"
      ? item.folder.split("/")[0]
      : id && promptFolder(id);
    if (folder && nameSet.has(folder)) {
      if (!listedFolders.has(folder)) folders.push({ name: folder, listed: true });
      listedFolders.add(folder);
    } else if (id !== undefined && !absent.has(id)) {
      absent.set(id, { kind: "absent", id, status: String(item.status ?? "not run") });
    }
  }
  for (const name of names) if (!listedFolders.has(name)) folders.push({ name, listed: false });
  return { folders, absent: [...absent.values()] };
}

function entryId(entry: Entry): string {
  switch (entry.kind) {
    case "single":
      return entry.record.id;
    case "comparison":
      return entry.runs.find((r) => r.record)?.record?.id ?? entry.folder;
    case "unreadable":
      return entry.id ?? entry.folder;
    case "absent":
      return entry.id;
  }
}

function modelsByFolder(run: unknown): Map<string, string> {
  const listed = isObject(run) && Array.isArray(run.prompts) ? run.prompts.filter(isObject) : [];
  return new Map(
    listed.flatMap((item) =>
      typeof item.folder === "string" && typeof item.model === "string"
        ? [[item.folder, item.model] as const]
        : []
    ),
  );
}

export async function readEntry(
  dir: string,
  folder: string,
  listed: boolean,
): Promise<Entry | undefined> {
  const path = `${dir}/${folder}`;
  // Read at once (no check first): one call per prompt, which a filter makes 50,000 times.
  const own = await readRecord(dir, folder);
  if (own?.record) return { kind: "single", folder, record: own.record };
  if (own) {
    return {
      kind: "unreadable",
      folder,
      problem: own.problem!,
      ...await idFromPromptJson(dir, folder),
    };
  }
  const runs: ModelRun[] = [];
  let names: string[];
  try {
    names = await subfolders(path);
  } catch (error) {
    // Not a folder (a file, or gone since the listing): nothing to show.
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw error;
  }
  for (const sub of names) {
    const read = await readRecord(dir, `${folder}/${sub}`);
    if (read) {
      const found = read.problem === undefined
        ? { record: read.record }
        : { problem: read.problem };
      runs.push({ rel: `${folder}/${sub}`, subfolder: sub, ...found });
    }
  }
  if (runs.length > 0) return { kind: "comparison", folder, runs };
  if (listed || await exists(`${path}/prompt.json`)) {
    return {
      kind: "unreadable",
      folder,
      problem: "metadata.json is missing",
      ...await idFromPromptJson(dir, folder),
    };
  }
  return undefined;
}

async function idFromPromptJson(dir: string, folder: string): Promise<{ id?: string }> {
  const read = await readJson(dir, `${folder}/prompt.json`, MAX_RECORD_BYTES);
  return isObject(read.value) && typeof read.value.id === "string" ? { id: read.value.id } : {};
}

// ---------------------------------------------------------------------------------------------
// Thumbnails

/** A thumbnail made (or kept), or why not. */
interface Thumb {
  /** Path relative to the batch folder. */
  rel?: string;
  width?: number;
  height?: number;
  problem?: string;
}

/** Image paths relative to the batch folder, for every iteration on the page. */
export function imagesOf(entries: Entry[]): string[] {
  const images: string[] = [];
  const add = (base: string, record: PromptRecord) => {
    for (const it of iterationsOf(record)) {
      const image = imageName(it);
      if (image) images.push(`${base}/${image}`);
    }
  };
  for (const entry of entries) {
    if (entry.kind === "single") add(entry.folder, entry.record);
    if (entry.kind === "comparison") {
      for (const run of entry.runs) if (run.record) add(run.rel, run.record);
    }
  }
  return images;
}

async function makeThumbnails(
  dir: string,
  images: string[],
  width: number,
): Promise<Map<string, Thumb>> {
  const results = await mapLimit(
    images,
    THUMB_CONCURRENCY,
    (rel) => makeThumbnail(dir, rel, width),
  );
  return new Map(images.map((rel, i) => [rel, results[i]!]));
}

async function makeThumbnail(dir: string, rel: string, width: number): Promise<Thumb> {
  const thumbRel = `${THUMB_DIR}/${rel.replace(/\.[^./]*$/, "")}.jpg`;
  const target = `${dir}/${thumbRel}`;
  try {
    // Read as bytes, never through a link: a thumbnail of a file elsewhere would copy it in.
    const source = await readBytesInside(dir, rel, MAX_IMAGE_BYTES);
    if (source === undefined) throw new Deno.errors.NotFound(`'${dir}/${rel}' does not exist`);
    const sourceTime = (await Deno.lstat(`${dir}/${rel}`)).mtime?.getTime() ?? Infinity;
    const existing = await lstatOrUndefined(target);
    const targetTime = existing?.isFile ? existing.mtime?.getTime() ?? -Infinity : -Infinity;
    if (targetTime >= sourceTime) {
      // Kept only if made at this width (or at the image's own, when that is smaller).
      const made = await readBytesInside(dir, thumbRel, MAX_IMAGE_BYTES);
      const [meta, sourceMeta] = await Promise.all([
        made ? sharp(made).metadata() : Promise.resolve(undefined),
        sharp(source).metadata(),
      ]);
      if (meta && meta.width === Math.min(width, sourceMeta.width) && meta.height) {
        return { rel: thumbRel, width: meta.width, height: meta.height };
      }
    }
    const { data, info } = await sharp(source)
      .resize({ width, withoutEnlargement: true })
      .flatten({ background: "#ffffff" })
      // libjpeg-turbo, not mozjpeg: half the time a thumbnail, which a 10,000-prompt gallery makes
      // 20,000 of; the files are a few KiB larger.
      .jpeg({ quality: 80 })
      .toBuffer({ resolveWithObject: true });
    // mkdir would follow a link in `_thumbs/...` out of the batch folder.
    await refuseLinks(target, dir);
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await writeFileAtomic(target, data, { within: dir });
    return { rel: thumbRel, width: info.width, height: info.height };
  } catch (error) {
    return { problem: messageOf(error) };
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight, keeping the order. */
async function mapLimit<T, R>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// ---------------------------------------------------------------------------------------------
// Rendering

interface PageData {
  name: string;
  run: RunRead;
  comparison: ComparisonPrompt[];
  /** From run.json in a comparison run: prompt-and-model folder → model. */
  modelByFolder: Map<string, string>;
  /** Thumbnails of the chunk of prompts being rendered. */
  thumbs: Map<string, Thumb>;
  thumbWidth: number;
}

/** Prompts whose records (and thumbnails) are held at once while the page is written. */
const RENDER_CHUNK = 16;

/** The page in pieces: head and contents, then one chunk of prompt sections at a time. */
async function* renderPage(
  dir: string,
  data: PageData,
  toc: TocItem[],
  folders: string[],
  absent: Entry[],
): AsyncGenerator<string> {
  yield `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>retake · ${esc(data.name)}</title>
<link rel="icon" href="data:,">
<style>${STYLE.replace("--thumb: 360px", `--thumb: ${data.thumbWidth}px`)}</style>
</head>
<body>
${renderBatch(data)}
${renderToc(toc)}
<main>
`;
  let anchor = 0;
  for (let start = 0; start < folders.length; start += RENDER_CHUNK) {
    const entries: Entry[] = [];
    for (const folder of folders.slice(start, start + RENDER_CHUNK)) {
      // A folder that changed between the two passes still gets its place in the contents.
      entries.push(
        await readEntry(dir, folder, true) ??
          { kind: "unreadable", folder, problem: "the folder changed while the page was written" },
      );
    }
    const thumbs = await makeThumbnails(dir, imagesOf(entries), data.thumbWidth);
    yield entries.map((entry) => renderEntrySafely(entry, `p${++anchor}`, { ...data, thumbs }))
      .join("\n") + "\n";
  }
  for (const entry of absent) yield renderEntrySafely(entry, `p${++anchor}`, data) + "\n";
  yield `</main>
<footer>Written by retake. Click an image for the full size.</footer>
</body>
</html>
`;
}

function renderBatch(data: PageData): string {
  // Checked field by field: a hand-edited or older run.json may lack any of them.
  const run: UnknownRecord | undefined = isObject(data.run.value) ? data.run.value : undefined;
  const totals: UnknownRecord = isObject(run?.totals) ? run.totals : {};
  const providers: UnknownRecord = isObject(run?.providers) ? run.providers : {};
  const settings: UnknownRecord = isObject(run?.settings) ? run.settings : {};
  const status = typeof run?.status === "string" ? run.status : undefined;
  const tiles: Array<[string, string]> = [
    ["Prompts", num(totals.prompts) !== undefined ? String(totals.prompts) : "–"],
    ["Completed", num(totals.completed) !== undefined ? String(totals.completed) : "–"],
    ["Failed", num(totals.failed) !== undefined ? String(totals.failed) : "–"],
    ["Total cost", formatCost(totals.costUsd)],
    ["Duration", duration(run?.durationMs)],
  ];
  const failedClass = (num(totals.failed) ?? 0) > 0 ? " bad" : "";
  const provider = (role: string, model?: unknown) => {
    const name = str(providers[role]);
    if (!name) return "";
    return `<span><b>${esc(role)}</b> ${esc(name)}${
      str(model) ? ` <code>${esc(str(model)!)}</code>` : ""
    }</span>`;
  };
  const compared = strings(run?.models);
  const providerLine = [
    provider(
      "generator",
      compared.length > 0 ? compared.join(", ") : providers.model ?? settings.model,
    ),
    provider("critic", settings.criticModel),
    provider("refiner"),
  ].filter(Boolean).join("");
  const when = str(run?.startedAt);
  const notice = run
    ? ""
    : `<p class="notice">run.json ${
      esc(data.run.problem ?? "is not an object")
    }: totals unknown.</p>`;
  return `<header class="batch">
<div class="title"><h1>retake <span>·</span> ${esc(data.name)}</h1>${
    status ? badge(status, statusTone(status)) : ""
  }</div>
${notice}<dl class="tiles">${
    tiles.map(([label, value]) =>
      `<div${label === "Failed" ? ` class="tile${failedClass}"` : ` class="tile"`}><dt>${
        esc(label)
      }</dt><dd>${esc(value)}</dd></div>`
    ).join("")
  }</dl>
${providerLine ? `<p class="providers">${providerLine}</p>` : ""}${
    when ? `<p class="when">Started ${esc(formatTime(when))}</p>` : ""
  }
</header>`;
}

/** One line of the table of contents. */
interface TocItem {
  label: string;
  tone: string;
  score?: string;
}

function renderToc(items: TocItem[]): string {
  if (items.length === 0) return `<p class="notice">No prompt folders found.</p>`;
  const links = items.map(({ label, tone, score }, i) =>
    `<li><a class="${tone}" href="#p${i + 1}">${esc(label)}${
      score ? ` <span>${esc(score)}</span>` : ""
    }</a></li>`
  );
  return `<nav class="toc"><ul>${links.join("")}</ul></nav>`;
}

function tocInfo(entry: Entry): TocItem {
  switch (entry.kind) {
    case "single": {
      const score = num(entry.record.bestScore);
      return {
        label: entry.record.id,
        tone: statusTone(String(entry.record.status)),
        ...(score !== undefined && { score: score.toFixed(1) }),
      };
    }
    case "comparison": {
      const id = entry.runs.find((r) => r.record)?.record?.id ?? entry.folder;
      return { label: id, tone: "info", score: `${entry.runs.length} models` };
    }
    case "unreadable":
      return { label: entry.id ?? entry.folder, tone: "bad", score: "unreadable" };
    case "absent":
      return { label: entry.id, tone: "muted", score: entry.status };
  }
}

/** Renders an entry; metadata that breaks rendering shows as unreadable instead. */
function renderEntrySafely(entry: Entry, anchor: string, data: PageData): string {
  try {
    return renderEntry(entry, anchor, data);
  } catch (error) {
    const folder = entry.kind === "absent" ? entry.id : entry.folder;
    return renderUnreadable(
      { folder, problem: `metadata.json cannot be shown: ${messageOf(error)}` },
      anchor,
    );
  }
}

function renderEntry(entry: Entry, anchor: string, data: PageData): string {
  switch (entry.kind) {
    case "single":
      return `<section class="prompt" id="${anchor}">
${renderContext(entry.record)}
<div class="body">
${renderError(entry.record.error)}${renderIterations(entry.folder, entry.record, data)}
</div>
</section>`;
    case "comparison":
      return renderComparison(entry, anchor, data);
    case "unreadable":
      return renderUnreadable(entry, anchor);
    case "absent":
      return `<section class="prompt absent" id="${anchor}"><header class="context"><h2>${
        esc(entry.id)
      }</h2>${
        badge(entry.status, "muted")
      }</header><p class="notice">No folder for this prompt.</p></section>`;
  }
}

function renderUnreadable(
  entry: { folder: string; id?: string; problem: string },
  anchor: string,
): string {
  return `<section class="prompt unreadable" id="${anchor}">
<header class="context"><h2>${esc(entry.id ?? entry.folder)}</h2><p class="id">${
    badge("unreadable metadata", "bad")
  }</p><p class="facts">folder <code>${esc(entry.folder)}</code></p></header>
<p class="error">Unreadable metadata: ${esc(entry.problem)}</p>
</section>`;
}

/** The prompt's heading and context; `comparison` replaces the status and totals. */
function renderContext(record: PromptRecord, comparison?: string): string {
  const status = String(record.status ?? "unknown");
  const best = num(record.bestScore);
  const ended = str(record.endReason) !== undefined
    ? END_REASONS[str(record.endReason)!] ?? str(record.endReason)!
    : str(record.stopCause) === "budget"
    ? "stopped by --max-cost"
    : "";
  const facts = comparison ?? [
    best !== undefined ? `best <b>${best.toFixed(1)}</b>` : "",
    `${esc(formatCost(record.costUsd))}`,
    esc(duration(record.durationMs)),
    ended ? `<span class="ended">${esc(ended)}</span>` : "",
  ].filter(Boolean).join(" · ");
  const field = (label: string, value: unknown) =>
    str(value) !== undefined ? `<dt>${label}</dt><dd>${esc(str(value)!)}</dd>` : "";
  return `<header class="context">
<h2>${esc(str(record.title) ?? record.id)}</h2>
<p class="id"><code>${esc(record.id)}</code> ${
    comparison === undefined ? badge(status, statusTone(status)) : ""
  }</p>
<p class="facts">${facts}</p>
<dl>${field("Scene", record.scene)}${field("Mood", record.mood)}${
    field("Original prompt", record.prompt)
  }${contextLines(record.extra).map(([name, text]) => field(esc(name), text)).join("")}</dl>
</header>`;
}

function renderError(error: FailureRecord | undefined): string {
  if (!isObject(error)) return "";
  const where = [
    str(error.step) ? `at step <b>${esc(str(error.step)!)}</b>` : "",
    num(error.iteration) !== undefined ? `(iteration ${esc(String(error.iteration))})` : "",
  ].filter(Boolean).join(" ");
  const details = [
    str(error.provider) ? `provider ${esc(str(error.provider)!)}` : "",
    num(error.status) !== undefined ? `HTTP ${esc(String(error.status))}` : "",
    str(error.requestId) ? `request <code>${esc(str(error.requestId)!)}</code>` : "",
  ].filter(Boolean).join(" · ");
  return `<div class="error"><b>Failed</b> ${where}: ${esc(str(error.message) ?? "unknown error")}${
    details ? `<small>${details}</small>` : ""
  }</div>\n`;
}

function renderIterations(base: string, record: PromptRecord, data: PageData): string {
  const iterations = iterationsOf(record);
  if (iterations.length === 0) return `<p class="notice">No iteration finished.</p>`;
  const best = num(record.bestIteration);
  const cards = iterations.map((it, i) =>
    renderIteration(base, record, it, iterations[i - 1], it.iteration === best, data)
  );
  return `<div class="iterations">${cards.join("\n")}</div>`;
}

function renderIteration(
  base: string,
  record: PromptRecord,
  it: IterationRecord,
  previous: IterationRecord | undefined,
  isBest: boolean,
  data: PageData,
): string {
  const n = num(it.iteration) ?? 0;
  const critique = isObject(it.critique) ? it.critique : undefined;
  const score = num(critique?.score);
  const action = str(it.action) === "edit"
    ? `edit of ${num(it.editOf) ?? "?"}`
    : str(it.action) === "redraw"
    ? "redrawn"
    : "";
  const head = `<div class="head"><span class="n">Iteration ${n}</span>${
    action
      ? `<span class="action" title="${esc(str(it.actionReason) ?? "")}">${esc(action)}</span>`
      : ""
  }${isBest ? `<span class="best-badge">★ best</span>` : ""}${
    score !== undefined
      ? `<span class="score ${scoreTone(score)}" title="critic score">${score.toFixed(1)}</span>`
      : ""
  }</div>`;
  const parts = [renderImage(base, record, it, n, data), head];
  if (critique) parts.push(renderChecks(record, critique), renderCritique(critique));
  parts.push(renderPrompt(record, it, previous));
  if (str(it.refinedPrompt) !== undefined && n === num(iterationsOf(record).at(-1)?.iteration)) {
    parts.push(
      `<div class="prompt-text"><h4>Next prompt <small>not generated</small></h4><p>${
        diffHtml(str(it.prompt) ?? "", str(it.refinedPrompt)!)
      }</p>${whyChanged(it)}</div>`,
    );
  }
  return `<article class="iteration${isBest ? " best" : ""}" data-iteration="${n}"${
    isBest ? ` data-best="true"` : ""
  }>${parts.join("\n")}</article>`;
}

function renderImage(
  base: string,
  record: PromptRecord,
  it: IterationRecord,
  n: number,
  data: PageData,
): string {
  const image = imageName(it);
  if (!image) return `<div class="noimg">no image</div>`;
  const rel = `${base}/${image}`;
  const thumb = data.thumbs.get(rel);
  if (!thumb?.rel) {
    return `<a class="noimg" href="${url(rel)}">thumbnail failed: ${
      esc(thumb?.problem ?? "unknown")
    }</a>`;
  }
  const alt = `${record.id}, iteration ${n}`;
  return `<a class="shot" href="${url(rel)}"><img src="${url(thumb.rel)}" loading="lazy" width="${
    thumb.width ?? data.thumbWidth
  }" height="${thumb.height ?? ""}" alt="${esc(alt)}"></a>`;
}

const CRITERION_LABELS: Record<string, string> = {
  promptAdherence: "Adherence",
  composition: "Composition",
  lighting: "Lighting",
  mood: "Mood",
  technicalQuality: "Technical",
};

/** The round's answer to each check of the brief: ✓ or ✗, the question, and why. */
function renderChecks(record: PromptRecord, critique: UnknownRecord): string {
  const answers = Array.isArray(critique.checks) ? critique.checks.filter(isObject) : [];
  if (answers.length === 0) return "";
  const questions = new Map(
    (isObject(record.brief) && Array.isArray(record.brief.checks) ? record.brief.checks : [])
      .filter(isObject).map((c) => [str(c.id), str(c.question)]),
  );
  const passed = answers.filter((a) => a.passed === true).length;
  const items = answers.map((a) => {
    const ok = a.passed === true;
    const question = questions.get(str(a.id)) ?? str(a.id) ?? "?";
    return `<li class="${ok ? "pass" : "fail"}" title="${esc(str(a.reason) ?? "")}"><span>${
      ok ? "✓" : "✗"
    }</span> ${esc(question)}${
      !ok && str(a.reason) ? `<small>${esc(str(a.reason)!)}</small>` : ""
    }</li>`;
  });
  return `<div class="checks"><h4>Checks <b>${passed}/${answers.length}</b></h4><ul>${
    items.join("")
  }</ul></div>`;
}

/** Why the prompt stopped, in words. */
export const END_REASONS: Record<string, string> = {
  iterations: "ran every round asked for",
  target: "reached the target",
  converged: "converged: the refiner returned the same prompt",
  plateau: "plateau: no gain in the last rounds",
};

function renderCritique(critique: UnknownRecord): string {
  const out: string[] = [];
  if (isObject(critique.criteria)) {
    const cells = Object.entries(critique.criteria).flatMap(([key, value]) => {
      const v = num(value);
      if (v === undefined) return [];
      const pct = Math.max(0, Math.min(100, v * 10));
      return [
        `<li style="--v:${pct}%" class="${scoreTone(v)}"><span>${
          esc(CRITERION_LABELS[key] ?? key)
        }</span><b>${v.toFixed(1)}</b></li>`,
      ];
    });
    if (cells.length > 0) out.push(`<ul class="criteria">${cells.join("")}</ul>`);
  }
  if (str(critique.summary)) out.push(`<p class="summary">${esc(str(critique.summary)!)}</p>`);
  const problems = strings(critique.problems);
  if (problems.length > 0) {
    out.push(
      `<h4>Main problems</h4><ul class="problems">${
        problems.slice(0, PROBLEMS_SHOWN).map((p) => `<li>${esc(p)}</li>`).join("")
      }</ul>`,
    );
  }
  const more: string[] = [];
  if (problems.length > PROBLEMS_SHOWN) {
    more.push(listBlock("More problems", problems.slice(PROBLEMS_SHOWN)));
  }
  const strengths = strings(critique.strengths);
  if (strengths.length > 0) more.push(listBlock("Strengths", strengths));
  const suggestions = strings(critique.suggestions);
  if (suggestions.length > 0) more.push(listBlock("Suggestions", suggestions));
  if (more.length > 0) {
    out.push(`<details><summary>Full critique</summary>${more.join("")}</details>`);
  }
  return out.join("\n");
}

function renderPrompt(
  record: PromptRecord,
  it: IterationRecord,
  previous: IterationRecord | undefined,
): string {
  const text = str(it.prompt) ?? "";
  const before = previous && str(previous.prompt);
  if (previous === undefined || before === undefined) {
    const same = text === record.prompt;
    return `<div class="prompt-text"><h4>Prompt${
      same ? " <small>the original</small>" : ""
    }</h4><p>${esc(text)}</p></div>`;
  }
  return `<div class="prompt-text"><h4>Refined prompt <small>changes from iteration ${
    esc(String(previous.iteration))
  }</small></h4><p class="diff">${diffHtml(before, text)}</p>${whyChanged(previous)}</div>`;
}

/** The refiner's list of changes to `it`'s prompt and their reasons, folded away. */
function whyChanged(it: IterationRecord): string {
  const changes: unknown = it.refineChanges;
  if (!Array.isArray(changes) || changes.length === 0) return "";
  return `<details><summary>Why it changed</summary><ul class="changes">${
    changes.filter(isObject).map((c) =>
      `<li><b>${esc(str(c.change) ?? "")}</b>${
        str(c.reason) ? ` — ${esc(str(c.reason)!)}` : ""
      }</li>`
    ).join("")
  }</ul></details>`;
}

function renderComparison(
  entry: Extract<Entry, { kind: "comparison" }>,
  anchor: string,
  data: PageData,
): string {
  const first = entry.runs.find((r) => r.record)?.record;
  const id = first?.id ?? entry.folder;
  const compared = data.comparison.find((p) =>
    p.id === id || p.id === entry.folder || promptFolder(p.id) === entry.folder
  );
  const models = compared?.models ?? [];
  // A model's subfolder is `safeFolderName(model)`; the model's own name comes from
  // comparison.json or run.json. (Every local run records the same generator model, so the
  // record's model cannot tell runs apart.)
  const runs = entry.runs.map((run) => {
    let index = models.findIndex((m) => m.folder === run.rel);
    if (index === -1) {
      index = models.findIndex((m) =>
        m.model === run.subfolder || safeFolderName(m.model) === run.subfolder
      );
    }
    const name = models[index]?.model ?? data.modelByFolder.get(run.rel) ?? run.subfolder;
    return { run, name, index: index === -1 ? models.length : index, stats: models[index] };
  }).sort((a, b) => a.index - b.index);
  let winnerName: string | undefined;
  const columns = runs.map(({ run, name, stats }) => {
    const isWinner = compared?.winner !== undefined && compared.winner === name;
    if (isWinner) winnerName = name;
    const bestScore = num(stats?.bestScore) ?? num(run.record?.bestScore);
    const facts = [
      bestScore !== undefined ? `best <b>${bestScore.toFixed(1)}</b>` : "",
      esc(formatCost(stats?.costUsd ?? run.record?.costUsd)),
      esc(duration(stats?.durationMs ?? run.record?.durationMs)),
      run.record ? badge(String(run.record.status), statusTone(String(run.record.status))) : "",
    ].filter(Boolean).join(" · ");
    const body = run.record
      ? `${renderError(run.record.error)}${renderIterations(run.rel, run.record, data)}`
      : `<p class="error">Unreadable metadata: ${esc(run.problem ?? "unknown")}</p>`;
    return `<section class="model${isWinner ? " winner" : ""}" data-model="${esc(name)}"${
      isWinner ? ` data-winner="true"` : ""
    }>
<h3>${esc(name)}${isWinner ? ` <span class="winner-badge">★ winner</span>` : ""}</h3>
<p class="facts">${facts}</p>
${body}
</section>`;
  });
  const summary = `Comparing ${entry.runs.length} models${
    winnerName ? ` · winner <b>${esc(winnerName)}</b>` : ""
  }`;
  const header = first
    ? renderContext(first, summary)
    : `<header class="context"><h2>${
      esc(entry.folder)
    }</h2><p class="facts">${summary}</p></header>`;
  return `<section class="prompt comparison" id="${anchor}">
${header}
<div class="models">
${columns.join("\n")}
</div>
</section>`;
}

/** Word-level diff as HTML: inserted words in `<ins>`, removed ones in `<del>`, all escaped. */
function diffHtml(before: string, after: string): string {
  // jsdiff (`npm:diff`) does the longest-common-subsequence work; this only marks it up.
  return diffWords(before, after).map((part) => {
    if (!part.added && !part.removed) return esc(part.value);
    const tag = part.added ? "ins" : "del";
    // Keep the spaces around a changed run outside the mark so it underlines only words.
    const [, lead = "", core = "", trail = ""] = /^(\s*)([\s\S]*?)(\s*)$/.exec(part.value) ?? [];
    return core ? `${esc(lead)}<${tag}>${esc(core)}</${tag}>${esc(trail)}` : esc(part.value);
  }).join("");
}

function listBlock(title: string, items: string[]): string {
  return `<h5>${esc(title)}</h5><ul>${items.map((i) => `<li>${esc(i)}</li>`).join("")}</ul>`;
}

function badge(text: string, tone: string): string {
  return `<span class="badge ${tone}">${esc(text)}</span>`;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

export function iterationsOf(record: PromptRecord): IterationRecord[] {
  const list: unknown = record.iterations;
  return Array.isArray(list) ? list.filter(isObject) as unknown as IterationRecord[] : [];
}

/**
 * The iteration's image file name, when it is one a round's image is saved as: a record from
 * elsewhere cannot point the page, the thumbnails or the export at any other file.
 */
export function imageName(it: IterationRecord): string | undefined {
  return isRoundImageName(it.image) ? it.image : undefined;
}

function statusTone(status: string): string {
  if (status === "completed") return "ok";
  if (status === "failed" || status === "crashed" || status === "stopped") return "bad";
  if (status.includes("fail") || status === "interrupted" || status === "running") return "warn";
  return "muted";
}

function scoreTone(score: number): string {
  return score >= 8 ? "good" : score >= 6 ? "fair" : "poor";
}

function formatCost(value: unknown): string {
  const n = num(value);
  return n === undefined ? "–" : `$${n.toFixed(4)}`;
}

function duration(value: unknown): string {
  const ms = num(value);
  return ms === undefined ? "–" : formatDuration(ms, { subSecond: true });
}

function formatTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** HTML-escapes text for element content and double- or single-quoted attributes. */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A relative URL for a path inside the batch folder, each segment percent-encoded. */
function url(rel: string): string {
  return esc(rel.split("/").map(encodeURIComponent).join("/"));
}

function isObject(value: unknown): value is UnknownRecord {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

const STYLE = `
:root {
  --thumb: 360px;
  --bg: #f4f5f7; --card: #fff; --ink: #1d2430; --soft: #5b6472; --line: #e1e4ea;
  --accent: #3d5afe; --ok: #1b873f; --warn: #b26a00; --bad: #c62828; --muted: #7a828f;
  --ins: #d9f5df; --ins-ink: #0f5c27; --del: #fde0e0; --del-ink: #8e1c1c; --best: #f5b400;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #15181d; --card: #1f242c; --ink: #e6e9ee; --soft: #a4acb8; --line: #323944;
    --accent: #8c9eff; --ok: #5fd07f; --warn: #ffb74d; --bad: #ff7b7b; --muted: #8d95a1;
    --ins: #173d22; --ins-ink: #a6f0b9; --del: #4a1e1e; --del-ink: #ffb3b3;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; padding: 24px clamp(12px, 3vw, 40px) 40px; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
main, header.batch, nav.toc, footer { max-width: 1500px; margin-inline: auto; }
h1, h2, h3, h4, h5 { line-height: 1.25; margin: 0; }
code { font: 0.85em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--soft); }
.batch .title { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
.batch h1 { font-size: 26px; font-weight: 700; }
.batch h1 span { color: var(--muted); font-weight: 400; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(130px, 1fr)); gap: 10px;
  margin: 16px 0 10px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 10px 14px; margin: 0; }
.tile dt { font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: var(--soft); }
.tile dd { margin: 2px 0 0; font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile.bad dd { color: var(--bad); }
.providers { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 6px 0; color: var(--soft); }
.providers b { color: var(--ink); font-weight: 600; text-transform: capitalize; }
.when { color: var(--muted); font-size: 13px; margin: 4px 0 0; }
.toc ul { list-style: none; display: flex; flex-wrap: wrap; gap: 8px; padding: 0; margin: 18px 0; }
.toc a { display: inline-block; padding: 4px 12px; border-radius: 999px; background: var(--card);
  border: 1px solid var(--line); color: var(--ink); text-decoration: none; font-size: 13px; }
.toc a:hover { border-color: var(--accent); }
.toc a span { color: var(--soft); font-variant-numeric: tabular-nums; margin-left: 4px; }
.toc a.bad { border-color: var(--bad); } .toc a.warn { border-color: var(--warn); }
.badge { display: inline-block; font-size: 12px; font-weight: 600; padding: 1px 9px;
  border-radius: 999px; border: 1px solid currentColor; vertical-align: middle; }
.badge.ok { color: var(--ok); } .badge.bad { color: var(--bad); } .badge.warn { color: var(--warn); }
.badge.muted, .badge.info { color: var(--muted); }
section.prompt { background: var(--card); border: 1px solid var(--line); border-radius: 14px;
  padding: 20px; margin: 0 0 22px; display: grid; gap: 18px 24px; scroll-margin-top: 12px; }
@media (min-width: 1000px) {
  section.prompt:not(.comparison) {
    grid-template-columns: minmax(260px, 1fr) fit-content(calc(100% - 284px));
  }
}
.context h2 { font-size: 20px; }
.context .id { margin: 4px 0; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.facts { color: var(--soft); font-size: 13px; margin: 4px 0; font-variant-numeric: tabular-nums; }
.facts b { color: var(--ink); }
.context dl { margin: 10px 0 0; }
.context dt { font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: var(--soft);
  margin-top: 10px; }
.context dd { margin: 2px 0 0; overflow-wrap: anywhere; }
.body { min-width: 0; }
.iterations { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.iteration { border: 1px solid var(--line); border-radius: 12px; overflow: hidden;
  width: var(--thumb); max-width: 100%; display: flex; flex-direction: column;
  background: var(--card); }
.iteration.best { border-color: var(--best); box-shadow: 0 0 0 2px var(--best); }
.iteration > :not(.shot):not(.noimg) { margin-inline: 12px; }
.shot { display: block; background: var(--line); line-height: 0; }
.shot img { width: 100%; height: auto; display: block; }
.noimg { display: grid; place-items: center; aspect-ratio: 4 / 3; background: var(--line);
  color: var(--soft); font-size: 13px; padding: 12px; text-align: center; }
.head { display: flex; align-items: center; gap: 8px; margin-top: 10px; }
.head .n { font-weight: 650; }
.best-badge, .winner-badge { font-size: 12px; font-weight: 700; color: #5a4300; background: var(--best);
  border-radius: 999px; padding: 1px 8px; }
.score { margin-left: auto; font-size: 20px; font-weight: 750; font-variant-numeric: tabular-nums; }
.good { --tone: var(--ok); } .fair { --tone: var(--warn); } .poor { --tone: var(--bad); }
.score { color: var(--tone); }
.criteria { list-style: none; padding: 0; margin: 8px 12px 0; display: grid;
  grid-template-columns: repeat(auto-fill, minmax(96px, 1fr)); gap: 4px 10px; font-size: 12px; }
.criteria li { display: flex; justify-content: space-between; gap: 4px; padding-bottom: 3px;
  background: linear-gradient(var(--tone), var(--tone)) no-repeat left bottom / var(--v) 3px,
    linear-gradient(var(--line), var(--line)) no-repeat left bottom / 100% 3px; }
.criteria span { color: var(--soft); }
.criteria b { font-variant-numeric: tabular-nums; }
.summary { margin: 10px 12px 4px; font-size: 14px; }
.iteration h4 { font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: var(--soft);
  margin-top: 10px; }
.iteration h4 small { text-transform: none; letter-spacing: 0; font-weight: 400; }
.problems, .changes, details ul { margin: 4px 0; padding-left: 18px; font-size: 13px; }
.checks ul { list-style: none; margin: 4px 0; padding: 0; font-size: 13px; }
.checks li { margin: 2px 0; }
.checks li span { display: inline-block; width: 1.2em; font-weight: 700; }
.checks li.pass span { color: #1b7f3b; }
.checks li.fail span { color: #b3261e; }
.checks li small { display: block; margin-left: 1.2em; color: var(--soft); }
.ended { color: var(--soft); }
.head .action { font-size: 12px; color: var(--soft); border: 1px solid var(--line);
  border-radius: 999px; padding: 0 8px; margin-left: 6px; }
details { font-size: 13px; margin-top: 6px; }
details summary { cursor: pointer; color: var(--accent); }
details h5 { font-size: 12px; color: var(--soft); margin-top: 8px; }
.prompt-text { margin-bottom: 12px; }
.prompt-text p { margin: 4px 0 0; font-size: 13.5px; overflow-wrap: anywhere; }
ins { background: var(--ins); color: var(--ins-ink); text-decoration: none; border-radius: 3px;
  padding: 0 2px; }
del { background: var(--del); color: var(--del-ink); border-radius: 3px; padding: 0 2px; }
.error { background: var(--del); color: var(--del-ink); border-radius: 10px; padding: 10px 14px;
  margin: 0 0 14px; overflow-wrap: anywhere; }
.error small { display: block; margin-top: 2px; opacity: .85; }
.notice { color: var(--soft); font-style: italic; }
.models { display: grid; gap: 18px; grid-template-columns: repeat(auto-fit, minmax(min(100%, 300px), 1fr)); }
.model { border: 1px solid var(--line); border-radius: 12px; padding: 14px; min-width: 0; }
.model.winner { border-color: var(--ok); box-shadow: 0 0 0 1px var(--ok); }
.winner-badge { color: var(--card); background: var(--ok); }
.model h3 { font-size: 16px; overflow-wrap: anywhere; }
.model .iteration { width: calc(var(--thumb) * 0.75); }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 24px; }
`;
