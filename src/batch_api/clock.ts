/**
 * The time a batch session waits by: a wall clock (jobs are recorded and shown by the hour) and
 * an abortable sleep, injected so tests move time by hand.
 *
 * @module
 */

/** Time, as batch sessions use it. */
export interface BatchClock {
  /** Wall clock in ms since the epoch. */
  now(): number;
  /** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The real clock.
 *
 * @example
 * ```ts
 * import { realClock } from "./clock.ts";
 * const controller = new AbortController();
 * const slept = realClock.sleep(60_000, controller.signal).catch(() => "stopped");
 * controller.abort();
 * if (await slept !== "stopped") throw new Error("an abort ends the sleep");
 * ```
 */
export const realClock: BatchClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, Math.max(0, ms));
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};
