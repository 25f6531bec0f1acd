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
 * @module
 */
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

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
  let realRoot: string;
  try {
    realRoot = await Deno.realPath(root);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  for (let attempt = 1;; attempt++) {
    const before = await folderIds(root, segments);
    if (before === undefined) return undefined;
    let handle: FileHandle;
    try {
      handle = await open(path, FLAGS);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      if (code === "ELOOP" || code === "EMLINK") throw linkError(path, path);
      throw error;
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) {
        throw new UnsafeFileError(
          `Cannot read '${path}' as it is not a regular file: a batch folder holds only files and folders`,
        );
      }
      const where = await handlePath(handle);
      if (where !== undefined) {
        if (where !== `${realRoot}/${rel}`) {
          // Renamed over while being opened: an atomic write. The next open finds the new file.
          if (where.endsWith(" (deleted)") && attempt < ATTEMPTS) {
            await handle.close();
            continue;
          }
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
            await handle.close();
            continue;
          }
          throw linkError(path, path);
        }
      }
      return insideFile(path, handle, info.size, info.mtimeMs);
    } catch (error) {
      await handle.close();
      throw error;
    }
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
    // It may grow while it is read: never more than the limit is taken.
    const bytes = new Uint8Array(Math.min(file.size, maxBytes) + 1);
    let length = 0;
    while (length < bytes.length) {
      const n = await file.read(bytes.subarray(length), length);
      if (n === 0) break;
      length += n;
    }
    if (length > maxBytes) throw tooLarge(file.path, length, maxBytes);
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

/** The path the kernel has for an open handle (Linux), or undefined where none can be asked. */
async function handlePath(handle: FileHandle): Promise<string | undefined> {
  if (!procWorks) return undefined;
  try {
    return await Deno.readLink(`/proc/self/fd/${handle.fd}`);
  } catch {
    // No /proc (a container without it): the folder checks stand in.
    procWorks = false;
    return undefined;
  }
}

function insideFile(path: string, handle: FileHandle, size: number, mtimeMs: number): InsideFile {
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  const read = async (buffer: Uint8Array, position: number) =>
    (await handle.read(buffer, 0, buffer.length, position)).bytesRead;
  return {
    path,
    size,
    mtimeMs,
    read,
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
