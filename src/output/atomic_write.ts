/**
 * Atomic writes: every artifact is written to a temporary file in the same folder and renamed
 * into place, so a crash leaves either the old file or the new one; nothing is written through
 * a symbolic link out of the batch folder.
 *
 * @module
 */
import { InputError } from "../errors.ts";
import { lstatOrUndefined } from "../util/file_info.ts";

/** How retake names its temporary files (see {@linkcode tempPathFor}). */
export const TEMP_NAME = /^\..+\.[0-9a-f]{8}\.tmp$/;
const PROBE_NAME = /^\.retake-write-check-[0-9a-f-]{36}$/;

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
        // Chunks gathered to 256 KiB: a download comes in pieces of a few KiB, and each write
        // is a trip to a worker thread.
        let pending: Uint8Array[] = [];
        let size = 0;
        for await (const chunk of data) {
          pending.push(chunk);
          size += chunk.length;
          if (size < 256 * 1024) continue;
          await writeAll(file, concat(pending, size));
          pending = [];
          size = 0;
        }
        if (size > 0) await writeAll(file, concat(pending, size));
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
 * Folders below a batch folder this process found to be real folders, not links: a batch writes
 * some ten files into each prompt's folder, and each would otherwise ask again (an `lstat` is a
 * trip to a worker thread). Bounded, oldest forgotten first; {@linkcode forgetCheckedFolders}
 * drops a folder that is moved away.
 */
const checkedFolders = new Set<string>();
const MAX_CHECKED_FOLDERS = 4096;

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
  const last = checked.length - 1;
  for (const [i, at] of checked.entries()) {
    if (i < last && checkedFolders.has(at)) continue;
    const info = await lstatOrUndefined(at);
    if (info === undefined) return;
    if (info.isSymlink) {
      throw new WriteError(
        `Cannot save '${path}' as '${at}' is a symbolic link: retake never writes through a link in a batch folder; remove the link and run again`,
        false,
      );
    }
    if (i < last && info.isDirectory) rememberFolder(at);
  }
}

function rememberFolder(path: string): void {
  if (checkedFolders.size >= MAX_CHECKED_FOLDERS) {
    checkedFolders.delete(checkedFolders.values().next().value!);
  }
  checkedFolders.add(path);
}

/** Forgets what {@linkcode refuseLinks} found of `path` and every folder below it. */
export function forgetCheckedFolders(path: string): void {
  for (const folder of checkedFolders) {
    if (folder === path || folder.startsWith(`${path}/`)) checkedFolders.delete(folder);
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

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
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
