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
 * (a Vegas-style estimate, ignoring a few ms of the client's own jitter). A little queueing is
 * wanted: it keeps the service's own slots busy while the client handles a finished call, so the
 * limit settles where a call spends between `targetQueueShare` and `queueTolerance` of its time
 * queued.
 *
 * The latency compared with the lowest recent one is the service's own where the caller knows
 * it (see {@linkcode ServiceTiming}), not the whole call's, and so is the lowest recent one: on
 * a machine that is doing something else, the client's part of a call (its own work, timers that
 * fire late, an event loop that gets to an answer late) grows with the load on the machine, not
 * on the service, and read as queueing it would shrink the limit just when more calls at once
 * are needed to keep the service busy (issue 21: the quick bench's adaptive run fell to 0.83× the
 * bound, Gemini's limit to 4, while other processes used both cores). The share is of the whole
 * call, as the queueing wanted is the client's time it covers.
 *
 * A rate quota (Gemini's requests per minute) is not a number of calls at once, so a limit on
 * those alone cannot find it: it overshoots until the window fills, then every caller is
 * refused at once. So the first 429 also starts pacing: grants are spaced to a rate estimated
 * from what the service took before refusing (successes over the span from the first call to
 * when the service says a slot frees), cut on each later 429 and raised slowly on success. A
 * 429 that carries a retry hint speaks of that rate, so it does not cut the limit on calls at
 * once. Until pacing starts, a retry hint holds every caller of the service until it has
 * passed, not only the one refused; once paced, only the refused call waits its hint, since a
 * hold per refusal would line the callers up one behind the other (issue 9: a service that
 * refused each call five times slowed a batch to one call per 36 s). The pace never falls
 * below `minRatePerSecond`, so a storm of refusals that are not about the rate cannot stall it.
 *
 * Each service starts with one call in flight, and ramps up from the first answer that shows
 * its settings work (a success, or a refusal as over quota): a wrong key or model costs one
 * call per service, not one per permit.
 *
 * @module
 */

/** Options for {@linkcode AdaptiveLimiter}. */
export interface AdaptiveLimiterOptions {
  /** Calls allowed at once from the first answer on (see `probe`). @default {4} */
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
  /** Factor applied to the paced rate on each later overload. @default {0.9} */
  rateBackoff?: number;
  /** Growth of the paced rate per success, as a share (ten times that below the last refused pace). @default {0.0005} */
  rateGrowth?: number;
  /** Successes needed before an overload can start pacing (fewer tell no rate). @default {5} */
  minRateSamples?: number;
  /** Monotonic clock in ms. @default {performance.now} */
  now?: () => number;
  /** Runs `fn` after `ms`; returns a cancel function. @default {setTimeout} */
  timer?: (fn: () => void, ms: number) => () => void;
  /** Called once pacing starts, with the pace in calls per second. */
  onPace?: (ratePerSecond: number) => void;
  /**
   * Lowest pace, in calls per second, however many calls the service refuses: a quota below it
   * is met by refusals, which cost nothing and each wait their hint. @default {2}
   */
  minRatePerSecond?: number;
  /**
   * One call at a time until the first success or refusal as over quota, then `initialLimit`.
   * @default {true}
   */
  probe?: boolean;
}

/**
 * What the service said of one call it answered, as far as it says it: the part of the call's
 * time that was the service's, without the client's own work or delay.
 */
export interface ServiceTiming {
  /**
   * The call's latency at the service, in ms, as close to the service as it is measured: the
   * service's own timing where it reports one (Gemini's `server-timing`, fal's queue plus
   * `metrics.inference_time`), else the time to the answer's first byte. Absent: the whole
   * call's time stands for it.
   */
  serviceMs?: number | undefined;
  /** Time the service reports the call spent queued, in ms, where it does. */
  queueMs?: number | undefined;
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
  /** Calls per second granted at most, once the service refused one as over its rate. */
  ratePerSecond?: number;
}

interface Waiter {
  priority: number;
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
 * const limiter = new AdaptiveLimiter({ initialLimit: 1, probe: false });
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
  readonly #timer: (fn: () => void, ms: number) => () => void;
  readonly #rateBackoff: number;
  readonly #rateGrowth: number;
  readonly #minRateSamples: number;
  readonly #onPace: ((ratePerSecond: number) => void) | undefined;
  /** The lowest pace, in calls per ms. */
  readonly #minRatePerMs: number;
  #limit: number;
  /** No answer yet that shows the service takes our calls: one call at a time. */
  #probing: boolean;
  /** Calls per ms once pacing; undefined until an overload with enough successes before it. */
  #ratePerMs: number | undefined;
  /** The pace at the last refusal while pacing. */
  #refusedRatePerMs: number | undefined;
  /** Earliest time of the next grant while pacing. */
  #nextGrantAt = -Infinity;
  /** No grant before this time: the service's retry hint. */
  #resumeAt = -Infinity;
  #firstGrantAt: number | undefined;
  /** When the window of the first refusal ends, by its hint: pacing starts then. */
  #windowEndsAt: number | undefined;
  #wake: { at: number; cancel: () => void } | undefined;
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
    this.#timer = options.timer ?? ((fn, ms) => {
      const id = setTimeout(fn, ms);
      return () => clearTimeout(id);
    });
    this.#rateBackoff = options.rateBackoff ?? 0.9;
    this.#rateGrowth = options.rateGrowth ?? 0.0005;
    this.#minRateSamples = options.minRateSamples ?? 5;
    this.#onPace = options.onPace;
    this.#probing = options.probe ?? true;
    const minRate = options.minRatePerSecond ?? 2;
    if (!(minRate > 0 && Number.isFinite(minRate))) {
      throw new RangeError(
        `Cannot create the limiter as 'minRatePerSecond' must be a positive number: current value is ${minRate}`,
      );
    }
    this.#minRatePerMs = minRate / 1000;
    if (!(this.#rateBackoff > 0 && this.#rateBackoff < 1)) {
      throw new RangeError(
        `Cannot create the limiter as 'rateBackoff' must be between 0 and 1: current value is ${this.#rateBackoff}`,
      );
    }
  }

  /** Calls allowed at once now. */
  get limit(): number {
    if (this.#probing) return 1;
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
      ...(this.#ratePerMs !== undefined &&
        { ratePerSecond: Math.round(this.#ratePerMs * 1000 * 100) / 100 }),
    };
  }

  /**
   * Waits for a permit, highest `priority` first and first come first served among equals;
   * resolves with the function that returns it (calling it twice is harmless). If `signal`
   * aborts while waiting, the promise rejects with its reason; if it aborts after the permit
   * was granted, the permit is returned by itself.
   *
   * @param priority A call that finishes work already under way (a later round) goes before
   * one that starts new work, so a batch's first results come early. @default {0}
   */
  acquire(signal?: AbortSignal, priority = 0): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#waiters.length === 0 && this.#inFlight < this.limit && this.#holdMs() <= 0) {
      return Promise.resolve(this.#grant(signal));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        priority,
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
      // After every waiter of the same or a higher priority: the queue stays sorted.
      let at = this.#waiters.length;
      while (at > 0 && this.#waiters[at - 1]!.priority < priority) at--;
      this.#waiters.splice(at, 0, waiter);
      this.#pump();
    });
  }

  /**
   * Reports a call that succeeded, before its permit is returned.
   *
   * @param latencyMs How long the call held its permit, queueing included: the round trip that
   * spaces decreases on overload, and the time a share of queueing is of.
   * @param service What the service said of the call: queueing is read from it, and from
   * `latencyMs` only where it says nothing.
   */
  onSuccess(latencyMs: number, service: ServiceTiming = {}): void {
    this.#stats.successes++;
    const { queueMs } = service;
    // The service's latency where it is known; the whole call's, for want of it.
    const atService = Math.max(1, _finite(service.serviceMs) ?? latencyMs);
    if (this.#probing) {
      // The first answer says nothing about queueing yet: no decision on it, just ramp up.
      this.#endProbe();
      this.#rttMs = Math.max(1, latencyMs);
      this.#latencies[this.#latencyIndex] = atService;
      this.#latencyIndex = (this.#latencyIndex + 1) % this.#window;
      return;
    }
    if (this.#ratePerMs !== undefined) {
      // Back quickly to just under the rate last refused, then probe past it slowly (as
      // CUBIC does for TCP), so the pace spends its time near the quota, not below it.
      const below = this.#ratePerMs < 0.98 * (this.#refusedRatePerMs ?? 0);
      this.#ratePerMs *= 1 + (below ? 10 : 1) * this.#rateGrowth;
    }
    const latency = Math.max(1, latencyMs);
    this.#rttMs = this.#rttMs === undefined ? latency : this.#rttMs * 0.8 + latency * 0.2;
    // The share of the call's time spent queued at the service. The whole call is the measure:
    // the queueing wanted covers the client's own time with each call, which a loaded machine
    // lengthens; the queueing itself is the service's alone.
    let queued: number;
    if (_finite(queueMs) !== undefined) {
      queued = Math.max(0, queueMs!);
    } else {
      // The lowest recent latency and this one are of the same quantity, or the difference
      // would read the gap between them as queueing.
      this.#latencies[this.#latencyIndex] = atService;
      this.#latencyIndex = (this.#latencyIndex + 1) % this.#window;
      queued = Math.max(0, atService - Math.min(...this.#latencies) - this.#slackMs);
    }
    const share = Math.min(1, queued / Math.max(latency, atService));
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

  /**
   * Reports a call the service refused as overloaded (HTTP 429, or a retry hint).
   *
   * @param retryAfterMs The service's hint: no caller is granted a permit before it passes.
   */
  onOverload(retryAfterMs?: number): void {
    this.#stats.overloads++;
    // The service read the call and counted it against the account's quota: the key works.
    if (this.#probing) this.#endProbe();
    const now = this.#now();
    const hinted = retryAfterMs !== undefined && retryAfterMs > 0;
    if (hinted && this.#ratePerMs === undefined) {
      this.#resumeAt = Math.max(this.#resumeAt, now + retryAfterMs);
    }
    // A burst of 429s answers one rate that was too high: slow down once per round trip.
    if (now - this.#lastDecreaseAt < (this.#rttMs ?? 0)) return this.#pump();
    if (this.#ratePerMs !== undefined) {
      this.#refusedRatePerMs = this.#ratePerMs;
      this.#ratePerMs = Math.max(this.#minRatePerMs, this.#ratePerMs * this.#rateBackoff);
      this.#lastDecreaseAt = now;
      this.#stats.decreases++;
      return this.#pump();
    }
    // Pacing starts once the hint has passed: by then every call sent before this refusal has
    // ended, so the successes count all the service took in its window.
    this.#windowEndsAt ??= now + Math.max(0, retryAfterMs ?? 0);
    if (hinted) {
      this.#lastDecreaseAt = now;
      return this.#pump();
    }
    this.#decrease(this.#backoff);
  }

  #endProbe(): void {
    this.#probing = false;
    this.#epoch = { count: 0, shareSum: 0, saturated: 0 };
    this.#pump();
  }

  /**
   * Starts pacing once the window the first refusal spoke of has ended. The service took our
   * successes in a window that, by its hint, lasted from about our first call until then: that
   * is its rate. A little under it, to leave room.
   */
  #startPacingIfDue(): void {
    const end = this.#windowEndsAt;
    if (end === undefined || this.#ratePerMs !== undefined || this.#now() < end) return;
    this.#windowEndsAt = undefined;
    if (this.#stats.successes < this.#minRateSamples || this.#firstGrantAt === undefined) return;
    this.#ratePerMs = Math.max(
      this.#minRatePerMs,
      (this.#stats.successes / Math.max(1, end - this.#firstGrantAt)) * 0.95,
    );
    this.#onPace?.(Math.round(this.#ratePerMs * 1000 * 100) / 100);
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

  /**
   * How long every caller must still wait for the retry hint or the pace, in ms. Every grant
   * asks this first, so it is also where a due start of pacing takes effect.
   */
  #holdMs(): number {
    this.#startPacingIfDue();
    return Math.max(this.#resumeAt, this.#nextGrantAt) - this.#now();
  }

  #grant(signal: AbortSignal | undefined): () => void {
    const now = this.#now();
    this.#firstGrantAt ??= now;
    if (this.#ratePerMs !== undefined) {
      this.#nextGrantAt = Math.max(now, this.#nextGrantAt) + 1 / this.#ratePerMs;
    }
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
      const hold = this.#holdMs();
      if (hold > 0) return this.#wakeIn(hold);
      const waiter = this.#waiters.shift()!;
      waiter.signal?.removeEventListener("abort", waiter.onAbort);
      waiter.resolve(this.#grant(waiter.signal));
    }
  }

  #wakeIn(ms: number): void {
    const at = this.#now() + ms;
    if (this.#wake && this.#wake.at <= at) return;
    this.#wake?.cancel();
    const wake = {
      at,
      cancel: this.#timer(() => {
        if (this.#wake === wake) this.#wake = undefined;
        this.#pump();
      }, Math.ceil(ms)),
    };
    this.#wake = wake;
  }
}

/** `value` when it is a finite number. */
function _finite(value: number | undefined): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function _check(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(
      `Cannot create the limiter as '${name}' must be a whole number >= ${min}: current value is ${value}`,
    );
  }
  return value;
}
