/**
 * Output layout and atomic writes: every artifact is written to a temporary file in the same
 * folder and renamed into place, so a crash leaves either the old file or the new one.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { getLogger } from "@logtape/logtape";
import type { Brief, Critique } from "../providers/critique.ts";
import { InputError } from "../errors.ts";
import type { PromptSink } from "./sink.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { GeneratedImage, ImageFormat } from "../providers/provider.ts";
import { type PromptRecord, shownIteration } from "./record.ts";
import { openInside, readTextInside } from "./safe_read.ts";
import { CONTROL_CHARS } from "../util/terminal_text.ts";
import { lstatOrUndefined } from "../util/file_info.ts";
import { MAX_RECORD_BYTES, parsePromptRecord } from "./record_file.ts";

/** Windows device names that cannot be folder names on any OS retake targets. */
const RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;
/**
 * The batch folder's own files and folders, which no prompt folder may be named: compared
 * without case, as macOS and Windows do. `_previous`, `_thumbs` and `.retake.lock` cannot be
 * prompt folders anyway, as a folder name never starts with `_` or `.`; they are listed so the
 * rule reads whole.
 */
export const BATCH_ENTRIES: ReadonlySet<string> = new Set([
  "run.json",
  "log.jsonl",
  "index.html",
  "comparison.json",
  "feedback.jsonl",
  "_previous",
  "_thumbs",
  "_batch_api",
  ".retake.lock",
  "eval",
  "eval.json",
  "eval.html",
]);
const MAX_NAME = 80;
// Names this version and the one before (8 hex digits) give an id that had to change.
const HASHED = /-[0-9a-f]{8}(?:[0-9a-f]{8})?$/;
/** How retake names its temporary files (see {@linkcode tempPathFor}). */
const TEMP_NAME = /^\..+\.[0-9a-f]{8}\.tmp$/;
const PROBE_NAME = /^\.retake-write-check-[0-9a-f-]{36}$/;
/** The name {@linkcode FolderSink.saveImage} gives a round's image. */
const ROUND_IMAGE = /^iteration-[1-9][0-9]{0,5}\.(?:png|jpg)$/;
/** The name {@linkcode FolderSink.saveBest} gives the copy of the best round's image. */
const BEST_IMAGE = /^best\.(?:png|jpg)$/;

/**
 * Whether `name` is one a round's image is saved as (`iteration-<n>.png` or `.jpg`): a name
 * read from a record is used only then, so a record cannot point a reader anywhere else.
 */
export function isRoundImageName(name: unknown): name is string {
  return typeof name === "string" && ROUND_IMAGE.test(name);
}

/** Whether `name` is the best round's copy (`best.png` or `best.jpg`). */
export function isBestImageName(name: unknown): name is string {
  return typeof name === "string" && BEST_IMAGE.test(name);
}

/**
 * Maps a prompt id to a folder name that is safe on every file system: only `A-Za-z0-9._-`,
 * no leading dot or underscore, no reserved device name, none of the batch folder's own file
 * names, bounded length. An id that had to change gets a 64-bit hash of the original appended,
 * so two different ids never share a folder.
 */
export function safeFolderName(id: string): string {
  let name = id.normalize("NFKC").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "");
  name = name.replace(/[._]+$/, "");
  if (name === "" || RESERVED.test(name) || BATCH_ENTRIES.has(name.toLowerCase())) {
    name = `prompt_${name}`;
  }
  if (name.length > MAX_NAME) name = name.slice(0, MAX_NAME);
  // A safe id that already ends like `-<hash>` could equal another id's mapped name.
  return name === id && !HASHED.test(id) ? name : `${name}-${folderHash(id)}`;
}

/**
 * Batch folder name for `--name` or a prompt file's name: kept as given when it is one plain
 * folder name (spaces are fine), else mapped like an id, so it never leaves `--out`.
 */
export function safeBatchName(name: string): string {
  const plain = name.length <= MAX_NAME && !/[\\/:*?"<>|]/.test(name) &&
    !new RegExp(CONTROL_CHARS.source).test(name) && !/^[.\s]|[.\s]$/.test(name) &&
    !RESERVED.test(name);
  return plain ? name : safeFolderName(name);
}

/** 64 bits of SHA-256 as 16 hex digits: no two ids of any real batch share a folder. */
export function folderHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** The folder name earlier versions gave an id (a 32-bit hash), so its results are found again. */
function legacyFolderName(id: string): string {
  let name = id.normalize("NFKC").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "");
  name = name.replace(/[._]+$/, "");
  if (name === "" || RESERVED.test(name)) name = `prompt_${name}`;
  if (name.length > MAX_NAME) name = name.slice(0, MAX_NAME);
  if (name === id && !/-[0-9a-f]{8}$/.test(id)) return name;
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(id)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `${name}-${hash.toString(16).padStart(8, "0")}`;
}

/** Options for the atomic writes. */
export interface WriteOptions {
  /**
   * The batch folder the file lies in: no folder between it and the file may be a symbolic
   * link. Without it only the file's own name is checked.
   */
  within?: string;
}

/** Writes `data` to `path` atomically. */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  options: WriteOptions = {},
): Promise<void> {
  await refuseLinks(path, options.within);
  const temp = tempPathFor(path);
  try {
    // `createNew` (O_EXCL) never follows a link planted at the temporary name.
    if (typeof data === "string") await Deno.writeTextFile(temp, data, { createNew: true });
    else await Deno.writeFile(temp, data, { createNew: true });
    await Deno.rename(temp, path);
  } catch (error) {
    await removeQuietly(temp);
    throw describeWriteError(path, error);
  }
}

/** Writes a JSON document atomically, pretty-printed for people. */
export function writeJsonAtomic(
  path: string,
  value: unknown,
  options: WriteOptions = {},
): Promise<void> {
  return writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n", options);
}

/**
 * Streams `data` into a temporary file, lets `verify` inspect the complete file, then renames
 * it into place. A failed verification leaves nothing behind.
 */
export async function writeStreamAtomic(
  path: string,
  data: Uint8Array | ReadableStream<Uint8Array>,
  verify?: (tempPath: string) => Promise<void>,
  options: WriteOptions = {},
): Promise<void> {
  await refuseLinks(path, options.within);
  const temp = tempPathFor(path);
  try {
    if (data instanceof Uint8Array) {
      await Deno.writeFile(temp, data, { createNew: true });
    } else {
      const file = await Deno.open(temp, { write: true, createNew: true });
      try {
        // Not `pipeTo(file.writable)`: that stream buffers 64 KiB and its close drops the error
        // of the last write, so a disk that filled at the end left a short file and no error.
        for await (const chunk of data) await writeAll(file, chunk);
      } finally {
        file.close();
      }
    }
    await verify?.(temp);
    await Deno.rename(temp, path);
  } catch (error) {
    await removeQuietly(temp);
    throw describeWriteError(path, error);
  }
}

/**
 * Throws a {@linkcode WriteError} when `path`, or any folder between `within` and it, is a
 * symbolic link: a write there would land wherever the link points, outside the batch folder.
 */
export async function refuseLinks(path: string, within?: string): Promise<void> {
  const checked: string[] = [];
  if (within !== undefined && path.startsWith(`${within}/`)) {
    let at = within;
    for (const part of path.slice(within.length + 1).split("/")) {
      at = `${at}/${part}`;
      checked.push(at);
    }
  } else {
    checked.push(path);
  }
  for (const at of checked) {
    const info = await lstatOrUndefined(at);
    if (info === undefined) return;
    if (info.isSymlink) {
      throw new WriteError(
        `Cannot save '${path}' as '${at}' is a symbolic link: retake never writes through a link in a batch folder; remove the link and run again`,
        false,
      );
    }
  }
}

/**
 * Creates the batch folder and checks it can be written, before any money is spent. The folder
 * must be a real folder, and nothing in it a symbolic link: every later write stays inside.
 */
export async function ensureWritableDir(path: string): Promise<void> {
  const info = await lstatOrUndefined(path).catch(() => undefined);
  if (info?.isSymlink) throw linkError(path, path);
  try {
    await Deno.mkdir(path, { recursive: true });
    const probe = `${path}/.retake-write-check-${crypto.randomUUID()}`;
    await Deno.writeTextFile(probe, "", { createNew: true });
    await Deno.remove(probe);
  } catch (error) {
    throw new InputError(
      `Cannot write to output folder '${path}': ${
        (error as Error).message
      }; choose another with --out`,
      { cause: error },
    );
  }
  for await (const entry of Deno.readDir(path)) {
    if (entry.isSymlink) throw linkError(path, `${path}/${entry.name}`);
  }
}

function linkError(batchDir: string, link: string): InputError {
  return new InputError(
    `Cannot write to batch folder '${batchDir}' as '${link}' is a symbolic link: retake never writes through a link in a batch folder; remove the link (or move what it points to in its place), or choose another folder with --out or --name`,
  );
}

/**
 * Removes the temporary files a killed run left in the batch folder (`.<name>.<8 hex>.tmp`
 * and write probes), at most four levels down, never following a link. Only safe while no
 * other retake writes to the batch: call it at the start of a run that holds the batch's lock.
 *
 * @returns The paths removed.
 */
export async function removeStaleTemps(batchDir: string): Promise<string[]> {
  const removed: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      // A directory entry's type is the link's own: links are neither entered nor removed.
      if (entry.isFile && (TEMP_NAME.test(entry.name) || PROBE_NAME.test(entry.name))) {
        await removeQuietly(path);
        removed.push(path);
      } else if (entry.isDirectory && depth < 4) {
        await walk(path, depth + 1);
      }
    }
  };
  await walk(batchDir, 1);
  return removed;
}

/** A temporary name beside `path`, as {@linkcode removeStaleTemps} knows them. */
export function tempPathFor(path: string): string {
  const slash = path.lastIndexOf("/");
  const dir = slash === -1 ? "." : path.slice(0, slash);
  const base = path.slice(slash + 1);
  return `${dir}/.${base}.${crypto.randomUUID().slice(0, 8)}.tmp`;
}

/** Writes all of `data` at the file's position: one write may take only part of it. */
export async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let written = 0; written < data.length;) {
    const n = await file.write(data.subarray(written));
    if (n <= 0) throw new Error("the file took no bytes (short write)");
    written += n;
  }
}

/** Removes `path`; one already gone is fine. */
export async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    // A temp file that was never created is the expected case; anything else is worth surfacing.
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Saving an artifact failed; `fatal` when no later write can succeed either (disk full). */
export class WriteError extends Error {
  /** Whether the run must stop: every further paid call would be wasted. */
  readonly fatal: boolean;
  constructor(message: string, fatal: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = "WriteError";
    this.fatal = fatal;
  }
}

/** A failed write of `path` as a {@linkcode WriteError} that says what to do. */
export function describeWriteError(path: string, error: unknown): Error {
  if (error instanceof WriteError) return error;
  if (error instanceof Error && error.message.startsWith("Cannot save")) return error;
  const text = String((error as Error)?.message);
  const diskFull = /No space left|ENOSPC|os error 28|quota exceeded|os error 122/i.test(text);
  const readOnly = /Read-only file system|EROFS|os error 30/i.test(text);
  const reason = error instanceof Deno.errors.PermissionDenied
    ? "permission denied"
    : diskFull
    ? "the disk is full; free some space and run again to resume"
    : readOnly
    ? "the disk is read-only; make it writable or choose another --out, and run again to resume"
    : (error as Error)?.message ?? String(error);
  // No later write can succeed either: every further paid call would be wasted.
  return new WriteError(`Cannot save '${path}': ${reason}`, diskFull || readOnly, {
    cause: error,
  });
}

/** Checks a complete image file and returns its real size; throws when it is not an image. */
export type ImageVerifier = (
  path: string,
  format: ImageFormat,
) => Promise<{ width: number; height: number }>;

/**
 * Saves each prompt's artifacts under `<batchDir>/<safe id>/`, every file atomically:
 * `prompt.json`, `iteration-N.<ext>`, `iteration-N.critique.json`,
 * `iteration-N.refined-prompt.txt`, `metadata.json`. Nothing is written through a symbolic
 * link, and a folder whose `metadata.json` belongs to another id is never used.
 */
export class FolderSink implements PromptSink {
  // TypeScript-private rather than #private: a caller may wrap a sink with Object.create, and
  // #private slots are not found through a prototype.
  readonly batchDir: string;
  private readonly _verify: ImageVerifier;
  private readonly _subfolder: string | undefined;
  private readonly _legacySubfolder: string | undefined;
  /** Folder → the id it was named for, and the name earlier versions gave that id. */
  private readonly _ids = new Map<string, { id: string; legacy: string }>();
  /** Folders holding another id's results: nothing is written there. */
  private readonly _foreign = new Map<string, string>();

  private readonly _now: () => Date;

  /**
   * With `subfolder` (a model id, in comparisons) each prompt's files go one level deeper.
   * `options.now` is the clock that stamps folders moved aside. @default {() => new Date()}
   */
  constructor(
    batchDir: string,
    verify: ImageVerifier,
    subfolder?: string,
    options: { now?: () => Date } = {},
  ) {
    this.batchDir = batchDir;
    this._verify = verify;
    this._now = options.now ?? (() => new Date());
    this._subfolder = subfolder === undefined ? undefined : safeFolderName(subfolder);
    this._legacySubfolder = subfolder === undefined ? undefined : legacyFolderName(subfolder);
  }

  folderFor(spec: PromptSpec): string {
    const folder = safeFolderName(spec.id);
    const legacy = legacyFolderName(spec.id);
    const path = this._subfolder === undefined ? folder : `${folder}/${this._subfolder}`;
    this._ids.set(path, {
      id: spec.id,
      legacy: this._legacySubfolder === undefined ? legacy : `${legacy}/${this._legacySubfolder}`,
    });
    return path;
  }

  async load(folder: string): Promise<PromptRecord | undefined> {
    const dir = `${this.batchDir}/${folder}`;
    const file = `${dir}/metadata.json`;
    await refuseLinks(file, this.batchDir);
    await this._adoptLegacy(folder);
    const text = await readTextInside(this.batchDir, `${folder}/metadata.json`, MAX_RECORD_BYTES);
    if (text === undefined) return undefined;
    const read = parsePromptRecord(text);
    // Writes are atomic, so this is a hand-edited file: treat it as a foreign attempt.
    if (read.problem !== undefined) return { inputHash: "unreadable" } as PromptRecord;
    const record = read.record;
    const id = this._ids.get(folder)?.id;
    if (id !== undefined && typeof record?.id === "string" && record.id !== id) {
      const message =
        `Cannot use folder '${dir}' for prompt '${id}' as its metadata.json belongs to prompt '${record.id}': move that folder out of the batch folder, or give one of the prompts another id`;
      this._foreign.set(folder, message);
      throw new WriteError(message, false);
    }
    // The folder the record lives in, even when an earlier version named it differently.
    return { ...record, folder };
  }

  async moveAside(folder: string): Promise<string> {
    this._refuseForeign(folder);
    const stamp = this._now().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    // No prompt folder can start with "_" (see safeFolderName), so this never meets one.
    const base = `_previous/${folder.replaceAll("/", "--")}-${stamp}`;
    await refuseLinks(`${this.batchDir}/_previous`, this.batchDir);
    await Deno.mkdir(`${this.batchDir}/_previous`, { recursive: true });
    // Two --force runs within a second get the same stamp: the later one counts on.
    for (let n = 1;; n++) {
      const aside = n === 1 ? base : `${base}-${n}`;
      if (await lstatOrUndefined(`${this.batchDir}/${aside}`)) continue;
      try {
        await Deno.rename(`${this.batchDir}/${folder}`, `${this.batchDir}/${aside}`);
        return aside;
      } catch (error) {
        // Taken between the check and the rename: try the next name.
        if (n < 100 && await lstatOrUndefined(`${this.batchDir}/${aside}`)) continue;
        throw error;
      }
    }
  }

  async start(spec: PromptSpec, record: PromptRecord): Promise<void> {
    const dir = this._dir(record);
    await refuseLinks(dir, this.batchDir);
    await Deno.mkdir(dir, { recursive: true });
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isSymlink) {
        throw new WriteError(
          `Cannot save into '${dir}' as '${dir}/${entry.name}' is a symbolic link: retake never writes through a link in a batch folder; remove the link and run again`,
          false,
        );
      }
      // A run stopped mid-write leaves a temp file behind; the real file is intact.
      if (entry.isFile && TEMP_NAME.test(entry.name)) await removeQuietly(`${dir}/${entry.name}`);
    }
    await writeJsonAtomic(`${dir}/prompt.json`, {
      id: spec.id,
      ...(spec.title !== undefined && { title: spec.title }),
      ...(spec.scene !== undefined && { scene: spec.scene }),
      ...(spec.mood !== undefined && { mood: spec.mood }),
      prompt: spec.prompt,
      // Flat, as a prompt file holds them: the file is itself a valid prompt entry.
      ...spec.settings,
      ...spec.extra,
    }, { within: this.batchDir });
    await writeJsonAtomic(`${dir}/metadata.json`, record, { within: this.batchDir });
  }

  async saveImage(
    record: PromptRecord,
    iteration: number,
    image: GeneratedImage,
  ): Promise<{ file: string; width: number; height: number }> {
    const file = `iteration-${iteration}.${image.format === "jpeg" ? "jpg" : "png"}`;
    let size = { width: image.width, height: image.height };
    await writeStreamAtomic(`${this._dir(record)}/${file}`, image.data, async (temp) => {
      size = await this._verify(temp, image.format);
    }, { within: this.batchDir });
    return { file, ...size };
  }

  async saveCritique(record: PromptRecord, iteration: number, critique: Critique): Promise<void> {
    await writeJsonAtomic(
      `${this._dir(record)}/iteration-${iteration}.critique.json`,
      critique,
      { within: this.batchDir },
    );
  }

  async saveBrief(record: PromptRecord, brief: Brief): Promise<void> {
    await writeJsonAtomic(`${this._dir(record)}/brief.json`, brief, { within: this.batchDir });
  }

  async saveRefinedPrompt(record: PromptRecord, iteration: number, prompt: string): Promise<void> {
    await writeFileAtomic(
      `${this._dir(record)}/iteration-${iteration}.refined-prompt.txt`,
      prompt + "\n",
      { within: this.batchDir },
    );
  }

  /**
   * Copies `image` to `best.<ext>`, or the user's favourite (`record.chosen`) when it has one:
   * their pick overrides the critic's.
   */
  async saveBest(record: PromptRecord, image: string): Promise<string> {
    if (record.chosen !== undefined) image = shownIteration(record)?.image ?? image;
    // The name comes from a record, which a batch folder from elsewhere may have made up.
    if (!isRoundImageName(image)) {
      throw new WriteError(
        `Cannot save the best image of prompt '${record.id}' as its record names image '${image}', which is not a round's image (iteration-<n>.png or .jpg): the record was edited; run the prompt again with --force`,
        false,
      );
    }
    const file = `best${image.slice(image.lastIndexOf("."))}`;
    const target = `${this._dir(record)}/${file}`;
    await refuseLinks(target, this.batchDir);
    const temp = tempPathFor(target);
    try {
      // Never through a link: a round's image linked to a file elsewhere is not copied in.
      const source = await openInside(this.batchDir, `${record.folder}/${image}`);
      if (source === undefined) {
        throw new Deno.errors.NotFound(`'${this._dir(record)}/${image}' does not exist`);
      }
      const copy = await Deno.open(temp, { write: true, createNew: true });
      await source.stream().pipeTo(copy.writable);
      await Deno.rename(temp, target);
    } catch (error) {
      await removeQuietly(temp);
      throw describeWriteError(target, error);
    }
    return file;
  }

  /**
   * Makes `iteration` the prompt's favourite: `metadata.json` gets `chosen` and `best.<ext>`
   * becomes a copy of its image. Returns the record as saved.
   */
  async choose(record: PromptRecord, iteration: number): Promise<PromptRecord> {
    const it = record.iterations.find((r) => r.iteration === iteration);
    if (it?.image === undefined) {
      const saved = record.iterations.filter((r) => r.image !== undefined).map((r) => r.iteration);
      throw new RangeError(
        `Cannot choose iteration ${iteration} of prompt '${record.id}' as it has no saved image: saved iterations are ${
          saved.length > 0 ? saved.join(", ") : "none"
        }`,
      );
    }
    const chosen: PromptRecord = { ...record, chosen: iteration };
    chosen.bestImage = await this.saveBest(chosen, it.image);
    await this.saveRecord(chosen);
    return chosen;
  }

  async saveRecord(record: PromptRecord): Promise<void> {
    await writeJsonAtomic(`${this._dir(record)}/metadata.json`, record, {
      within: this.batchDir,
    });
  }

  imagePath(record: PromptRecord, file: string): string {
    return `${this.batchDir}/${record.folder}/${file}`;
  }

  /** The prompt's folder, for a write: never another id's. */
  private _dir(record: PromptRecord): string {
    this._refuseForeign(record.folder);
    return `${this.batchDir}/${record.folder}`;
  }

  private _refuseForeign(folder: string): void {
    const message = this._foreign.get(folder);
    if (message !== undefined) throw new WriteError(message, false);
  }

  /**
   * Moves the folder an earlier version made for this id (a 32-bit hash in its name) to the current
   * name, so an upgrade resumes its results instead of paying for them again.
   */
  private async _adoptLegacy(folder: string): Promise<void> {
    const known = this._ids.get(folder);
    if (known === undefined || known.legacy === folder) return;
    const target = `${this.batchDir}/${folder}`;
    const legacy = `${this.batchDir}/${known.legacy}`;
    if (await lstatOrUndefined(target)) return;
    if (!(await lstatOrUndefined(legacy))?.isDirectory) return;
    await refuseLinks(`${legacy}/metadata.json`, this.batchDir);
    const text = await readTextInside(
      this.batchDir,
      `${known.legacy}/metadata.json`,
      MAX_RECORD_BYTES,
    );
    let id: unknown;
    try {
      id = text === undefined ? undefined : JSON.parse(text)?.id;
    } catch {
      return;
    }
    if (id !== known.id) return;
    if (folder.includes("/")) {
      await refuseLinks(target, this.batchDir);
      await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    }
    await Deno.rename(legacy, target);
    if (known.legacy.includes("/")) {
      // The comparison's prompt folder, once its last model has moved.
      await Deno.remove(legacy.slice(0, legacy.lastIndexOf("/"))).catch(() => {});
    }
    getLogger(["retake", "artifacts"]).info(
      "Renamed {from} to {to}: folder names now carry a 64-bit hash",
      { from: legacy, to: target },
    );
  }
}
