/**
 * The one backoff operator every stage uses: exponential backoff with jitter, a cap, a
 * run-wide retry budget, and the server's retry hint honoured when the error carries one.
 *
 * A service refusing a call as over its quota (429, or any answer with a retry hint) is not a
 * failed attempt: the call was never run. Such retries have their own, larger allowance and
 * leave the budget alone, so a batch that runs into its rate limit waits instead of failing
 * prompts — the adaptive limiter is what keeps those refusals rare.
 *
 * @module
 */
import {
  asyncScheduler,
  defer,
  fromEvent,
  type MonoTypeOperatorFunction,
  of,
  race,
  retry,
  type SchedulerLike,
  take,
  throwError,
  timer,
} from "rxjs";
import { formatDuration } from "../util/duration.ts";
import { isOverload, ProviderError } from "../errors.ts";

/** Options for {@linkcode retryWithBackoff}, in the shape of Deno std's `retry`. */
export interface RetryOptions {
  /** Total attempts, the first included; refusals as over quota do not count. @default {4} */
  maxAttempts?: number;
  /** Retries after refusals as over quota (429 or a retry hint), per call. @default {30} */
  maxOverloadRetries?: number;
  /** Delay before the first retry, in ms. @default {1000} */
  minTimeout?: number;
  /** Longest computed delay, in ms. @default {30000} */
  maxTimeout?: number;
  /** Growth factor between retries. @default {2} */
  multiplier?: number;
  /** Share of each delay that is randomised away, 0–1. @default {0.5} */
  jitter?: number;
  /**
   * Longest server retry hint honoured, in ms; a longer hint (a daily quota, say) stops the run
   * with a fatal error that says when it can resume, instead of stalling it. @default {120000}
   */
  maxRetryAfter?: number;
  /** Multiplies every delay, hints included; tests set it near 0. @default {1} */
  timeScale?: number;
  /** Which errors are worth another attempt. @default {isRetriable} */
  isRetriable?: (error: unknown) => boolean;
  /** Shared across a run so a broken service cannot multiply attempts without end. */
  budget?: RetryBudget;
  /** Source of randomness for jitter. @default {Math.random} */
  random?: () => number;
  /** Clock for the delays. @default {asyncScheduler} */
  scheduler?: SchedulerLike;
  /** Called before each retry is scheduled. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /**
   * Ends a wait between attempts early, so the next attempt can see that it must not start.
   * @default {undefined}
   */
  stop?: AbortSignal;
}

/** A run-wide count of retries left. */
export class RetryBudget {
  #remaining: number;
  constructor(retries: number) {
    if (!Number.isInteger(retries) || retries < 0) {
      throw new RangeError(
        `Cannot create a retry budget as 'retries' must be a whole number >= 0: current value is ${retries}`,
      );
    }
    this.#remaining = retries;
  }
  /** Retries left. */
  get remaining(): number {
    return this.#remaining;
  }
  /** Takes one retry; false when none are left. */
  take(): boolean {
    if (this.#remaining <= 0) return false;
    this.#remaining--;
    return true;
  }
}

/** Default classification: a {@linkcode ProviderError} says so itself; anything else is final. */
export function isRetriable(error: unknown): boolean {
  return error instanceof ProviderError && error.retryable && !error.fatal;
}

/**
 * The error that stops a run whose service asks for a longer wait than retake gives it: every
 * other call to that service would be asked the same, so waiting in each one only stalls the run.
 */
export function waitTooLong(
  error: ProviderError,
  maxRetryAfter: number,
  clock: Pick<SchedulerLike, "now"> = asyncScheduler,
): ProviderError {
  const wait = error.retryAfterMs ?? 0;
  const at = new Date(clock.now() + wait).toISOString().replace(/\.\d+Z$/, "Z");
  return new ProviderError(
    `${error.message}; the ${error.provider} service asks to wait ${
      formatDuration(wait)
    }, longer than the ${
      formatDuration(maxRetryAfter)
    } retake waits (retry.maxWaitMs), so the run stops: run the same command after ${at} to resume`,
    {
      provider: error.provider,
      retryable: false,
      fatal: true,
      retryAfterMs: wait,
      ...(error.status !== undefined && { status: error.status }),
      ...(error.requestId !== undefined && { requestId: error.requestId }),
      ...(error.costUsd !== undefined && { costUsd: error.costUsd }),
      cause: error,
    },
  );
}

/**
 * Delay before retry number `attempt` (1-based), in ms: the server's hint when there is one,
 * otherwise `min(maxTimeout, minTimeout * multiplier^(attempt-1))` less up to `jitter` of it.
 */
export function backoffDelay(
  attempt: number,
  options: Pick<RetryOptions, "minTimeout" | "maxTimeout" | "multiplier" | "jitter">,
  random: () => number,
  retryAfterMs?: number,
): number {
  if (retryAfterMs !== undefined) return retryAfterMs;
  const { minTimeout = 1000, maxTimeout = 30_000, multiplier = 2, jitter = 0.5 } = options;
  const exponential = Math.min(maxTimeout, minTimeout * multiplier ** (attempt - 1));
  return Math.round(exponential * (1 - jitter * random()));
}

/**
 * Retries the source with backoff. Wrap the call in `defer` so each retry makes a new request.
 *
 * @example
 * ```ts
 * import { defer, lastValueFrom } from "rxjs";
 * import { retryWithBackoff } from "./retry.ts";
 * let calls = 0;
 * const value = await lastValueFrom(
 *   defer(async () => {
 *     if (++calls < 2) throw new Error("flaky");
 *     return calls;
 *   }).pipe(retryWithBackoff({ isRetriable: () => true, minTimeout: 1 })),
 * );
 * if (value !== 2) throw new Error("expected a second attempt");
 * ```
 */
export function retryWithBackoff<T>(options: RetryOptions = {}): MonoTypeOperatorFunction<T> {
  const {
    maxAttempts = 4,
    maxOverloadRetries = 30,
    maxRetryAfter = 120_000,
    timeScale = 1,
    isRetriable: retriable = isRetriable,
    budget,
    random = Math.random,
    scheduler = asyncScheduler,
    onRetry,
    stop,
  } = options;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(
      `Cannot retry as 'maxAttempts' must be a whole number >= 1: current value is ${maxAttempts}`,
    );
  }
  const jitter = options.jitter ?? 0.5;
  if (jitter < 0 || jitter > 1) {
    throw new RangeError(
      `Cannot retry as 'jitter' must be between 0 and 1: current value is ${jitter}`,
    );
  }
  return (source) =>
    defer(() => {
      // Per subscription: each call counts its own failures and refusals.
      let failures = 0;
      let overloads = 0;
      return source.pipe(retry<T>({
        delay: (error: unknown) => {
          const hint = error instanceof ProviderError ? error.retryAfterMs : undefined;
          if (!retriable(error)) return throwError(() => error);
          if (hint !== undefined && hint > maxRetryAfter) {
            return throwError(() => waitTooLong(error as ProviderError, maxRetryAfter, scheduler));
          }
          const overload = isOverload(error);
          if (overload ? ++overloads > maxOverloadRetries : ++failures >= maxAttempts) {
            return throwError(() => error);
          }
          if (!overload && budget && !budget.take()) return throwError(() => error);
          const attempt = failures + overloads;
          const delay = Math.max(
            0,
            backoffDelay(overload ? overloads : failures, options, random, hint) * timeScale,
          );
          onRetry?.(error, attempt, delay);
          if (!stop) return timer(delay, scheduler);
          return stop.aborted
            ? of(0)
            : race(timer(delay, scheduler), fromEvent(stop, "abort").pipe(take(1)));
        },
      }));
    });
}
