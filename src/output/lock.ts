/**
 * One retake per batch folder: an exclusive lock on `<batch>/.retake.lock`, which also says who
 * holds it (pid, host, start time). Two processes on one folder would pay twice for the same
 * prompts and interleave their writes.
 *
 * The lock is the operating system's (`flock`): it ends with its process however that process
 * ends, `kill -9` included, so a crashed run never leaves a lock that has to be deleted by hand.
 *
 * @module
 */
import { InputError } from "../errors.ts";

/** The lock file's name inside a batch folder. */
export const LOCK_FILE = ".retake.lock";

/** What the lock file says. */
export interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

/** A held lock; `release` gives it up (once). */
export interface BatchLock {
  readonly path: string;
  release(): Promise<void>;
}

/** Who this process is, injected for tests. */
export interface LockEnv {
  pid: number;
  host: string;
  now: () => string;
}

/**
 * Takes the batch folder's lock, or throws an {@linkcode InputError} naming the process that
 * holds it.
 */
export async function lockBatch(batchDir: string, env: LockEnv = defaultEnv()): Promise<BatchLock> {
  const path = `${batchDir}/${LOCK_FILE}`;
  for (let tries = 0; tries < 5; tries++) {
    await refuseLink(path);
    const file = await Deno.open(path, { read: true, write: true, create: true });
    let locked = false;
    try {
      locked = await file.tryLock(true);
      if (!locked) {
        const owner = await readOwner(path);
        throw new InputError(
          `Cannot use '${batchDir}' as another retake (${
            describe(owner)
          }) is using it: wait for it to finish, or stop it`,
        );
      }
      // The holder before us may have removed the file after we opened it: then our lock is on
      // a file nobody else will see, and we try again on the one at the path.
      const [held, current] = await Promise.all([file.stat(), Deno.lstat(path).catch(() => null)]);
      if (current === null || current.ino !== held.ino || current.dev !== held.dev) {
        file.close();
        continue;
      }
      const me: LockOwner = { pid: env.pid, host: env.host, startedAt: env.now() };
      await file.truncate(0);
      const bytes = new TextEncoder().encode(JSON.stringify(me) + "\n");
      for (let written = 0; written < bytes.length;) {
        written += await file.write(bytes.subarray(written));
      }
      return heldLock(path, file);
    } catch (error) {
      if (locked) await file.unlock();
      file.close();
      throw error;
    }
  }
  throw new InputError(`Cannot take the lock '${path}' as it keeps being replaced: try again`);
}

function heldLock(path: string, file: Deno.FsFile): BatchLock {
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      // Removed while still locked, so a process waiting to open it retries on a fresh file.
      await Deno.remove(path).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
      await file.unlock();
      file.close();
    },
  };
}

/** A link planted in place of the lock would make retake open a file outside the folder. */
async function refuseLink(path: string): Promise<void> {
  try {
    const info = await Deno.lstat(path);
    if (info.isFile) return;
    throw new InputError(
      `Cannot lock the batch folder as '${path}' is not a regular file (a link or a folder): remove it and run again`,
    );
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const owner = JSON.parse(await Deno.readTextFile(path)) as Partial<LockOwner>;
    if (typeof owner.pid === "number" && typeof owner.host === "string") {
      return { pid: owner.pid, host: owner.host, startedAt: String(owner.startedAt ?? "?") };
    }
  } catch {
    // Being written by its holder at this very moment, or not JSON: the holder is unknown.
  }
  return undefined;
}

function describe(owner: LockOwner | undefined): string {
  return owner === undefined
    ? "a process that has just started"
    : `pid ${owner.pid} on ${owner.host}, since ${owner.startedAt}`;
}

function defaultEnv(): LockEnv {
  return { pid: Deno.pid, host: Deno.hostname(), now: () => new Date().toISOString() };
}
