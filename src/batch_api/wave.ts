/**
 * Gathers the requests of one wave: a batch job should hold all of a round's requests, and they
 * arrive one by one as each prompt's previous step is saved. A wave is sent once no request has
 * come for `gatherMs` (the round's requests are all in), after `maxGatherMs` at the most, or as
 * soon as it holds `maxItems`.
 *
 * @module
 */
import type { BatchClock } from "./clock.ts";

/** Options for {@linkcode Wave}. */
export interface WaveOptions<T> {
  /** Quiet time after the last request that ends the wave, in ms. */
  gatherMs: number;
  /** Longest a wave gathers, in ms. @default {30 × gatherMs} */
  maxGatherMs?: number;
  /** Requests that end the wave at once. @default {Infinity} */
  maxItems?: number;
  /** Gets each wave's requests. */
  flush: (items: T[]) => void;
  clock: BatchClock;
  /** Aborted: no wave is sent any more (see {@linkcode Wave.drain}). */
  signal?: AbortSignal;
}

/**
 * Collects items and hands them on in waves.
 *
 * @example
 * ```ts
 * import { Wave } from "./wave.ts";
 * import { realClock } from "./clock.ts";
 * const waves: number[][] = [];
 * const wave = new Wave<number>({ gatherMs: 1, flush: (w) => waves.push(w), clock: realClock });
 * wave.add(1);
 * wave.add(2);
 * await wave.idle();
 * if (JSON.stringify(waves) !== "[[1,2]]") throw new Error("one wave");
 * ```
 */
export class Wave<T> {
  readonly #options: WaveOptions<T>;
  #items: T[] = [];
  #last = 0;
  /** A wave is being gathered: cleared in the same turn its items are taken. */
  #gathering = false;
  #running: Promise<void> = Promise.resolve();

  constructor(options: WaveOptions<T>) {
    if (!(options.gatherMs >= 0)) {
      throw new RangeError(
        `Cannot gather batch waves as 'gatherMs' must be >= 0: current value is ${options.gatherMs}`,
      );
    }
    this.#options = options;
  }

  /** Requests waiting for their wave. */
  get size(): number {
    return this.#items.length;
  }

  /** Adds a request to the wave being gathered, starting one if none is. */
  add(item: T): void {
    this.#items.push(item);
    this.#last = this.#options.clock.now();
    if (this.#items.length >= (this.#options.maxItems ?? Infinity)) {
      this.#flush();
      return;
    }
    if (!this.#gathering) {
      this.#gathering = true;
      this.#running = this.#gather();
    }
  }

  /** Takes a request back out (its caller gave up); true when it had not been sent. */
  remove(item: T): boolean {
    const at = this.#items.indexOf(item);
    if (at < 0) return false;
    this.#items.splice(at, 1);
    return true;
  }

  /** Resolves once the wave being gathered, if any, has been sent. */
  async idle(): Promise<void> {
    while (this.#gathering) await this.#running;
  }

  /** Stops gathering: returns the requests never sent. */
  drain(): T[] {
    return this.#items.splice(0);
  }

  async #gather(): Promise<void> {
    const { gatherMs, clock, signal } = this.#options;
    const started = clock.now();
    const maxGatherMs = this.#options.maxGatherMs ?? 30 * gatherMs;
    while (this.#items.length > 0) {
      const now = clock.now();
      const left = Math.min(gatherMs - (now - this.#last), maxGatherMs - (now - started));
      if (left <= 0) break;
      try {
        await clock.sleep(left, signal);
      } catch {
        // Stopped: what was gathered stays for drain().
        this.#gathering = false;
        return;
      }
    }
    // In the same turn as the items are taken: a request added after starts the next wave.
    this.#gathering = false;
    this.#flush();
  }

  #flush(): void {
    if (this.#options.signal?.aborted) return;
    const items = this.#items.splice(0);
    if (items.length > 0) this.#options.flush(items);
  }
}
