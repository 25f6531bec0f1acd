/**
 * A clock for tests of batch sessions: time moves only when the test says, to the next moment
 * something sleeps until, so a job's 30-second polls take no real time.
 *
 * @module
 */
import type { BatchClock } from "../src/batch_api/clock.ts";

interface Sleeper {
  until: number;
  resolve: () => void;
}

/** A {@linkcode BatchClock} moved by hand. */
export class ManualClock implements BatchClock {
  #now: number;
  #sleepers: Sleeper[] = [];

  constructor(start = Date.parse("2026-12-01T09:00:00Z")) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** How many sleeps are waiting. */
  get sleeping(): number {
    return this.#sleepers.length;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const sleeper: Sleeper = {
        until: this.#now + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#sleepers.push(sleeper);
    });
  }

  /** Waits (in real time, for I/O) until something sleeps, then moves to its wake-up time. */
  async next(): Promise<void> {
    await waitFor(() => this.#sleepers.length > 0, "something to sleep");
    const until = Math.min(...this.#sleepers.map((s) => s.until));
    this.#now = Math.max(this.#now, until);
    const due = this.#sleepers.filter((s) => s.until <= this.#now);
    this.#sleepers = this.#sleepers.filter((s) => s.until > this.#now);
    for (const s of due) s.resolve();
  }

  /** Moves time forward by `ms`, waking what is due. */
  advance(ms: number): void {
    this.#now += ms;
    const due = this.#sleepers.filter((s) => s.until <= this.#now);
    this.#sleepers = this.#sleepers.filter((s) => s.until > this.#now);
    for (const s of due) s.resolve();
  }
}

/**
 * Resolves once `condition` holds, looking after every turn of the event loop (real I/O goes on
 * meanwhile); rejects naming `what` if it has not after `maxTurns` turns.
 */
export async function waitFor(
  condition: () => boolean,
  what: string,
  maxTurns = 20_000,
): Promise<void> {
  for (let turn = 0; !condition(); turn++) {
    if (turn >= maxTurns) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}
