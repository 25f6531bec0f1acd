/**
 * Reading a file inside a folder someone else may have made (a batch folder a colleague sent):
 * by a plain relative path only, never through a symbolic link anywhere on the way, never a
 * device or a pipe, and never more bytes than asked for. The check is made on the open handle
 * itself, so a link swapped in between a check and the read cannot lead the read out.
 *
 * On Linux the handle's own path (`/proc/self/fd/N`) must be the expected one; elsewhere the
 * last name is opened with `O_NOFOLLOW` and every folder on the way is checked before and
 * after the open.
 *
 * The open and the checks are synchronous calls (node:fs, the only way to `O_NOFOLLOW` and a
 * descriptor in Deno): each answers in microseconds, a pipe opens without waiting
 * (`O_NONBLOCK`) and is refused, and the async calls cost five times as much, which a filter over
 * 50,000 records pays 50,000 times.
 *
 * @module
 */
import { closeSync, constants, fstatSync, openSync, read as readCallback, readSync } from "node:fs";
import { messageOf } from "../errors.ts";

/** A file that may not be read as asked: a link on the way, not a regular file, too large. */
export class UnsafeFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsafeFileError";
  }
}

/** Whether `name` is one plain folder or file name: no separator, not `.` or `..`, no NUL. */
export function isPlainName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !/[\\/\0]/.test(name);
}

/** One file opened by {@linkcode openInside}. */
export interface InsideFile {
  /** The path as asked for (`root/rel`). */
  readonly path: string;
  /** Its size in bytes when it was opened. */
  readonly size: number;
  /** Its modification time in ms since the epoch. */
  readonly mtimeMs: number;
  /** Reads into `buffer` from byte `position`; 0 at the end of the file. */
  read(buffer: Uint8Array, position: number): Promise<number>;
  /** {@linkcode InsideFile.read}, for a small file: a read of a local file is microseconds. */
  readSync(buffer: Uint8Array, position: number): number;
  /** The file's bytes from `start`, a chunk at a time; the stream closes the file. */
  stream(start?: number): ReadableStream<Uint8Array>;
  close(): Promise<void>;
}

const FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
const CHUNK = 64 * 1024;
/** Opens retried when the file was replaced (renamed over) while it was being opened. */
const ATTEMPTS = 4;

/**
 * Opens `root/rel` for reading. Resolves undefined when it does not exist; throws
 * {@linkcode UnsafeFileError} when `rel` is not a plain relative path, when any part of the
 * way is a symbolic link, or when it is not a regular file.
 */
export async function openInside(root: string, rel: string): Promise<InsideFile | undefined> {
  const segments = rel.split("/");
  const path = `${root}/${rel}`;
  if (!segments.every(isPlainName)) {
    throw new UnsafeFileError(`Cannot read '${path}' as '${rel}' is not a plain relative path`);
  }
  const realRoot = await realPathOf(root);
  if (realRoot === undefined) return undefined;
  for (let attempt = 1;; attempt++) {
    // With the handle's own path to ask (Linux) the folders need no check of their own.
    const before = procWorks ? [] : await folderIds(root, segments);
    if (before === undefined) return undefined;
    let fd: number;
    try {
      fd = openSync(path, FLAGS);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      if (code === "ELOOP" || code === "EMLINK") throw linkError(path, path);
      throw error;
    }
    try {
      const info = fstatSync(fd);
      if (!info.isFile()) {
        throw new UnsafeFileError(
          `Cannot read '${path}' as it is not a regular file: a batch folder holds only files and folders`,
        );
      }
      const where = handlePath(fd);
      if (where !== undefined) {
        if (where !== `${realRoot}/${rel}`) {
          // Renamed over while being opened: an atomic write. The next open finds the new file.
          if (where.endsWith(" (deleted)") && attempt < ATTEMPTS) {
            closeSync(fd);
            continue;
          }
          realPaths.delete(root);
          throw linkError(path, where);
        }
      } else {
        // No handle path to ask: every folder must be the one it was, and the name this file.
        const after = await folderIds(root, segments);
        const named = await Deno.lstat(path).catch(() => undefined);
        const same = after !== undefined && after.every((id, i) => id === before[i]) &&
          named?.isFile && named.ino === info.ino && named.dev === info.dev;
        if (!same) {
          if (attempt < ATTEMPTS) {
            closeSync(fd);
            continue;
          }
          throw linkError(path, path);
        }
      }
      return insideFile(path, fd, info.size, info.mtimeMs);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }
}

/** Real paths of the folders read from, kept for a while: a batch's is asked for every file. */
const realPaths = new Map<string, { path: string; at: number }>();
const REAL_PATH_MS = 5_000;

/**
 * The real path of `root`, or undefined when it is gone. A stale one is safe: a file is then
 * refused, never let through, and the next read asks again.
 */
async function realPathOf(root: string): Promise<string | undefined> {
  const now = performance.now();
  const known = realPaths.get(root);
  if (known && now - known.at < REAL_PATH_MS) return known.path;
  try {
    const path = await Deno.realPath(root);
    if (realPaths.size > 64) realPaths.clear();
    realPaths.set(root, { path, at: now });
    return path;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * The text of `root/rel`, or undefined when it does not exist; throws
 * {@linkcode UnsafeFileError} as {@linkcode openInside} does, and when it holds more than
 * `maxBytes`.
 */
export async function readTextInside(
  root: string,
  rel: string,
  maxBytes: number,
): Promise<string | undefined> {
  const bytes = await readBytesInside(root, rel, maxBytes);
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
}

/**
 * The text of `root/rel` as {@linkcode readTextInside} reads it, or what is wrong with the file
 * as a message says it: `is missing`, or `cannot be read: …`.
 */
export async function readTextOrProblem(
  root: string,
  rel: string,
  maxBytes: number,
): Promise<{ text: string } | { problem: string }> {
  let text: string | undefined;
  try {
    text = await readTextInside(root, rel, maxBytes);
  } catch (error) {
    return { problem: `cannot be read: ${messageOf(error)}` };
  }
  return text === undefined ? { problem: "is missing" } : { text };
}

/** The bytes of `root/rel`, as {@linkcode readTextInside} reads its text. */
export async function readBytesInside(
  root: string,
  rel: string,
  maxBytes: number,
): Promise<Uint8Array | undefined> {
  const file = await openInside(root, rel);
  if (file === undefined) return undefined;
  try {
    if (file.size > maxBytes) throw tooLarge(file.path, file.size, maxBytes);
    // The size it had when opened, at most: bytes written since are not read.
    const bytes = new Uint8Array(file.size);
    let length = 0;
    while (length < bytes.length) {
      const n = file.readSync(bytes.subarray(length), length);
      if (n === 0) break;
      length += n;
    }
    return bytes.subarray(0, length);
  } finally {
    await file.close();
  }
}

function tooLarge(path: string, size: number, maxBytes: number): UnsafeFileError {
  return new UnsafeFileError(
    `Cannot read '${path}' as it holds more than ${maxBytes} bytes (${size}): retake never writes one this large; remove it or replace it with the file retake wrote`,
  );
}

function linkError(path: string, where: string): UnsafeFileError {
  return new UnsafeFileError(
    `Cannot read '${path}' as it leads through a symbolic link${
      where === path ? "" : ` (to '${where}')`
    }: retake reads a batch folder's files only where they are; remove the link`,
  );
}

/**
 * Each folder on the way from `root` to the file, as device and inode; undefined when one is
 * missing. Throws when one is a link or not a folder.
 */
async function folderIds(root: string, segments: string[]): Promise<string[] | undefined> {
  const ids: string[] = [];
  let at = root;
  for (const name of segments.slice(0, -1)) {
    at = `${at}/${name}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(at);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    if (info.isSymlink) throw linkError(`${root}/${segments.join("/")}`, at);
    if (!info.isDirectory) return undefined;
    ids.push(`${info.dev}:${info.ino}`);
  }
  return ids;
}

let procWorks = Deno.build.os === "linux";

/**
 * The path the kernel has for an open descriptor (Linux: procfs answers from memory), or
 * undefined where none can be asked.
 */
function handlePath(fd: number): string | undefined {
  if (!procWorks) return undefined;
  try {
    return Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch {
    // No /proc (a container without it): the folder checks stand in.
    procWorks = false;
    return undefined;
  }
}

function insideFile(path: string, fd: number, size: number, mtimeMs: number): InsideFile {
  let closed = false;
  const close = () => {
    if (closed) return Promise.resolve();
    closed = true;
    closeSync(fd);
    return Promise.resolve();
  };
  const read = (buffer: Uint8Array, position: number) =>
    new Promise<number>((resolve, reject) =>
      readCallback(fd, buffer, 0, buffer.length, position, (error, n) => {
        if (error) reject(error);
        else resolve(n);
      })
    );
  return {
    path,
    size,
    mtimeMs,
    read,
    readSync: (buffer, position) => readSync(fd, buffer, 0, buffer.length, position),
    close,
    stream(start = 0) {
      let position = start;
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const chunk = new Uint8Array(CHUNK);
            const n = await read(chunk, position);
            if (n === 0) {
              await close();
              controller.close();
              return;
            }
            position += n;
            controller.enqueue(chunk.subarray(0, n));
          } catch (error) {
            await close().catch(() => {});
            controller.error(error);
          }
        },
        async cancel() {
          await close();
        },
      });
    },
  };
}
