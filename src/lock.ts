/**
 * One retake per batch folder: `<batch>/.retake.lock` holds the pid and host of the process
 * using it. Two processes on one folder would pay twice for the same prompts and interleave
 * their writes.
 *
 * @module
 */
import { InputError } from "./errors.ts";

/** The lock file's name inside a batch folder. */
export const LOCK_FILE = ".retake.lock";

/** What the lock file says. */
export interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

/** A held lock; `release` removes it (once). */
export interface BatchLock {
  readonly path: string;
  release(): Promise<void>;
}

/** The outside world the lock needs, injected for tests. */
export interface LockEnv {
  pid: number;
  host: string;
  now: () => string;
  /**
   * Whether a process with this pid runs on this host; undefined when it cannot be told
   * (no `/proc`). @default {a look at /proc/<pid>}
   */
  isAlive?: (pid: number) => boolean | undefined;
}

/**
 * Takes the batch folder's lock, or throws an {@linkcode InputError} naming the process that
 * holds it. A lock left by a process that no longer runs on this host is taken over.
 */
export async function lockBatch(batchDir: string, env: LockEnv = defaultEnv()): Promise<BatchLock> {
  const path = `${batchDir}/${LOCK_FILE}`;
  const me: LockOwner = { pid: env.pid, host: env.host, startedAt: env.now() };
  const isAlive = env.isAlive ?? aliveByProc;
  for (let tries = 0; tries < 3; tries++) {
    if (await linkNew(path, JSON.stringify(me) + "\n")) return held(path, me);
    const owner = await readOwner(path);
    if (owner === undefined) continue; // Released meanwhile: try again.
    const stale = owner === "unreadable" ||
      (owner.host === env.host && isAlive(owner.pid) === false);
    if (!stale) {
      throw new InputError(
        `Cannot use '${batchDir}' as another retake (pid ${owner.pid} on ${owner.host}, since ${owner.startedAt}) is using it: wait for it to finish, or if it is not running, delete '${path}'`,
      );
    }
    // A crashed run's lock (kill -9, power loss): nothing writes here any more.
    await Deno.remove(path).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
  throw new InputError(`Cannot take the lock '${path}': it keeps changing; try again`);
}

/**
 * Creates `path` with `text`, or returns false if it exists. Written aside and hard-linked into
 * place, so the lock appears whole or not at all: a reader never sees it half-written.
 */
async function linkNew(path: string, text: string): Promise<boolean> {
  const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.writeTextFile(temp, text, { createNew: true });
  try {
    await Deno.link(temp, path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  } finally {
    await Deno.remove(temp).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
}

function held(path: string, me: LockOwner): BatchLock {
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      // Only our own: a lock someone replaced after deleting ours by hand is theirs.
      const owner = await readOwner(path);
      if (owner === undefined || owner === "unreadable") return;
      if (owner.pid !== me.pid || owner.startedAt !== me.startedAt) return;
      await Deno.remove(path).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    },
  };
}

async function readOwner(path: string): Promise<LockOwner | "unreadable" | undefined> {
  let text: string;
  try {
    const info = await Deno.lstat(path);
    // Never follow a link planted in place of the lock.
    if (!info.isFile) return "unreadable";
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    const owner = JSON.parse(text) as Partial<LockOwner>;
    if (typeof owner.pid === "number" && typeof owner.host === "string") {
      return { pid: owner.pid, host: owner.host, startedAt: String(owner.startedAt ?? "?") };
    }
  } catch {
    // A lock cut short by a crash mid-write.
  }
  // Not retake's (locks appear whole): edited or damaged by hand, so no process holds it.
  return "unreadable";
}

function aliveByProc(pid: number): boolean | undefined {
  try {
    Deno.statSync("/proc/self");
  } catch {
    return undefined; // No /proc (macOS, Windows): cannot tell.
  }
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

function defaultEnv(): LockEnv {
  return { pid: Deno.pid, host: Deno.hostname(), now: () => new Date().toISOString() };
}
