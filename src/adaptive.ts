/**
 * Adaptive concurrency: how many calls one provider gets at once, found while the batch runs
 * instead of configured. One limiter per provider is shared by every stage and iteration that
 * calls it, since a service's quota belongs to the account, not to a stage.
 *
 * The limit grows while calls succeed with the limiter saturated, and shrinks on the two signs
 * of overload a service gives: an HTTP 429 (multiplicative decrease, at most once per round
 * trip), and time spent queued at the service (fal queues requests beyond an account's
 * concurrency instead of refusing them). Queueing is read from the call's reported queue time
 * when the service reports one, otherwise from latency above the lowest recent latency
 * (a Vegas-style estimate, ignoring a few ms of the client's own jitter). A little queueing is wanted: it keeps the service's own slots busy
 * while the client handles a finished call, so the limit settles where a call spends between
 * `targetQueueShare` and `queueTolerance` of its time queued.
 *
 * @module
 */

/** Options for {@linkcode AdaptiveLimiter}. */
export interface AdaptiveLimiterOptions {
  /** Calls allowed at once before anything is known. @default {4} */
  initialLimit?: number;
  /** Lowest limit. @default {1} */
  minLimit?: number;
  /** Highest limit. @default {64} */
  maxLimit?: number;
  /** Factor applied to the limit on an overload (429). @default {0.7} */
  backoff?: number;
  /**
   * Share of a call's time it may spend queued at the service before the limit shrinks.
   * @default {0.5}
   */
  queueTolerance?: number;
  /** Share of queueing below which the limit may grow; the limit holds in between. @default {0.2} */
  targetQueueShare?: number;
  /** Recent latencies kept to estimate the unloaded latency. @default {100} */
  latencyWindow?: number;
  /**
   * Latency above the unloaded one that is never read as queueing, in ms: the client's own
   * event loop and disk make fast calls vary by this much without the service being busy.
   * @default {25}
   */
  latencySlackMs?: number;
  /** Monotonic clock in ms. @default {performance.now} */
  now?: () => number;
}

/** Counters, for logs and benchmarks. */
export interface AdaptiveLimiterStats {
  limit: number;
  inFlight: number;
  waiting: number;
  successes: number;
  overloads: number;
  increases: number;
  decreases: number;
}

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/**
 * A concurrency limit that adapts to what the service takes: additive increase (doubling until
 * the first sign of overload), decrease on 429s and on queueing.
 *
 * @example
 * ```ts
 * import { AdaptiveLimiter } from "./adaptive.ts";
 * const limiter = new AdaptiveLimiter({ initialLimit: 1 });
 * const release = await limiter.acquire();
 * limiter.onSuccess(200);
 * release();
 * if (limiter.limit !== 2) throw new Error(`expected slow start to double, got ${limiter.limit}`);
 * ```
 */
export class AdaptiveLimiter {
  readonly #min: number;
  readonly #max: number;
  readonly #backoff: number;
  readonly #tolerance: number;
  readonly #target: number;
  readonly #window: number;
  readonly #slackMs: number;
  readonly #now: () => number;
  #limit: number;
  #inFlight = 0;
  #waiters: Waiter[] = [];
  #slowStart = true;
  #lastDecreaseAt = -Infinity;
  /** Smoothed latency, ms: the length of one round trip. */
  #rttMs: number | undefined;
  #latencies: number[] = [];
  #latencyIndex = 0;
  #epoch = { count: 0, shareSum: 0, saturated: 0 };
  #stats = { successes: 0, overloads: 0, increases: 0, decreases: 0 };

  constructor(options: AdaptiveLimiterOptions = {}) {
    this.#min = _check("minLimit", options.minLimit ?? 1, 1);
    this.#max = _check("maxLimit", options.maxLimit ?? 64, this.#min);
    this.#limit = Math.min(
      this.#max,
      Math.max(this.#min, _check("initialLimit", options.initialLimit ?? 4, 1)),
    );
    this.#backoff = options.backoff ?? 0.7;
    if (!(this.#backoff > 0 && this.#backoff < 1)) {
      throw new RangeError(
        `Cannot create the limiter as 'backoff' must be between 0 and 1: current value is ${this.#backoff}`,
      );
    }
    this.#tolerance = options.queueTolerance ?? 0.5;
    this.#target = options.targetQueueShare ?? 0.2;
    if (!(this.#target >= 0 && this.#target <= this.#tolerance && this.#tolerance < 1)) {
      throw new RangeError(
        `Cannot create the limiter as 'targetQueueShare' and 'queueTolerance' must satisfy 0 <= target <= tolerance < 1: current values are ${this.#target} and ${this.#tolerance}`,
      );
    }
    this.#window = _check("latencyWindow", options.latencyWindow ?? 100, 1);
    this.#slackMs = options.latencySlackMs ?? 25;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Calls allowed at once now. */
  get limit(): number {
    return Math.max(this.#min, Math.floor(this.#limit));
  }

  /** Calls holding a permit. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Counters since creation. */
  stats(): AdaptiveLimiterStats {
    return {
      limit: this.limit,
      inFlight: this.#inFlight,
      waiting: this.#waiters.length,
      ...this.#stats,
    };
  }

  /**
   * Waits for a permit, first come first served; resolves with the function that returns it
   * (calling it twice is harmless). If `signal` aborts while waiting, the promise rejects with
   * its reason; if it aborts after the permit was granted, the permit is returned by itself.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#waiters.length === 0 && this.#inFlight < this.limit) {
      return Promise.resolve(this.#grant(signal));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.#waiters.indexOf(waiter);
          if (index >= 0) this.#waiters.splice(index, 1);
          reject(signal!.reason);
        },
      };
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /**
   * Reports a call that succeeded, before its permit is returned.
   *
   * @param latencyMs How long the call took, queueing included.
   * @param queueMs Time the service reports the call spent queued, where it does.
   */
  onSuccess(latencyMs: number, queueMs?: number): void {
    this.#stats.successes++;
    const latency = Math.max(1, latencyMs);
    this.#rttMs = this.#rttMs === undefined ? latency : this.#rttMs * 0.8 + latency * 0.2;
    let share: number;
    if (queueMs !== undefined && Number.isFinite(queueMs)) {
      share = Math.min(1, Math.max(0, queueMs) / latency);
    } else {
      this.#latencies[this.#latencyIndex] = latency;
      this.#latencyIndex = (this.#latencyIndex + 1) % this.#window;
      const excess = latency - Math.min(...this.#latencies) - this.#slackMs;
      share = Math.max(0, excess) / latency;
    }
    const epoch = this.#epoch;
    epoch.count++;
    epoch.shareSum += share;
    // Saturated: every permit in use (this call's included) or callers waiting.
    if (this.#waiters.length > 0 || this.#inFlight >= this.limit) epoch.saturated++;
    // Decide once per round trip's worth of calls, on their mean.
    if (epoch.count < this.limit) return;
    const mean = epoch.shareSum / epoch.count;
    const saturated = epoch.saturated * 2 >= epoch.count;
    const count = epoch.count;
    this.#epoch = { count: 0, shareSum: 0, saturated: 0 };
    if (mean > this.#tolerance) {
      // Enough calls at once that the service queues them: aim for the target share in one
      // step (in-flight ≈ slots / (1 − share)), but never cut deeper than the 429 backoff.
      const factor = Math.max(this.#backoff, (1 - mean) / (1 - this.#target));
      this.#decrease(factor);
    } else if (mean <= this.#target && saturated) {
      this.#setLimit(this.#limit + (this.#slowStart ? count : 1));
      this.#stats.increases++;
    }
  }

  /** Reports a call the service refused as overloaded (HTTP 429, or a retry hint). */
  onOverload(): void {
    this.#stats.overloads++;
    // A burst of 429s answers one limit that was too high: shrink once per round trip.
    if (this.#now() - this.#lastDecreaseAt < (this.#rttMs ?? 0)) return;
    this.#decrease(this.#backoff);
  }

  #decrease(factor: number): void {
    this.#slowStart = false;
    this.#lastDecreaseAt = this.#now();
    this.#epoch = { count: 0, shareSum: 0, saturated: 0 };
    const before = this.limit;
    this.#setLimit(this.#limit * factor);
    if (this.limit < before) this.#stats.decreases++;
  }

  #setLimit(value: number): void {
    this.#limit = Math.min(this.#max, Math.max(this.#min, value));
    this.#pump();
  }

  #grant(signal: AbortSignal | undefined): () => void {
    this.#inFlight++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      signal?.removeEventListener("abort", release);
      this.#inFlight--;
      this.#pump();
    };
    signal?.addEventListener("abort", release, { once: true });
    return release;
  }

  #pump(): void {
    while (this.#waiters.length > 0 && this.#inFlight < this.limit) {
      const waiter = this.#waiters.shift()!;
      waiter.signal?.removeEventListener("abort", waiter.onAbort);
      waiter.resolve(this.#grant(waiter.signal));
    }
  }
}

function _check(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(
      `Cannot create the limiter as '${name}' must be a whole number >= ${min}: current value is ${value}`,
    );
  }
  return value;
}
