/**
 * The run's spending limit (`--max-cost`): every paid call reserves its estimated cost before it
 * starts and settles with what it really cost when it ends, so calls in flight can never carry
 * the run past the limit together.
 *
 * @module
 */

/** A reservation held by one call in flight. */
export interface Reservation {
  /** Releases the reservation and books what the call really cost (0 when it was not billed). */
  settle(costUsd: number): void;
}

/** A paid call the budget refused to start. */
export class BudgetRefusal extends Error {
  /** What the call would have cost, in USD. */
  readonly estimateUsd: number;
  /** What was left when it was refused, in USD. */
  readonly leftUsd: number;
  constructor(estimateUsd: number, leftUsd: number) {
    super(
      `Cannot start a step estimated at $${round(estimateUsd)} as only $${
        round(Math.max(0, leftUsd))
      } of --max-cost is left`,
    );
    this.name = "BudgetRefusal";
    this.estimateUsd = estimateUsd;
    this.leftUsd = leftUsd;
  }
}

// Sums of prices in floating point drift by far less than this; it keeps "exactly the limit" in.
const EPSILON = 1e-9;

/**
 * Spending of one run: what was spent, what calls in flight have reserved, and the limit.
 *
 * @example
 * ```ts
 * import { Budget } from "./budget.ts";
 * const budget = new Budget(0.01);
 * const first = await budget.reserve(0.006);
 * first.settle(0.006);
 * // What is left (0.004) does not cover another such call: it is refused, not sent.
 * await budget.reserve(0.006).then(() => { throw new Error("over the limit"); }, () => {});
 * if (budget.spentUsd !== 0.006) throw new Error("booked");
 * ```
 */
export class Budget {
  /** The limit in USD; undefined for none. */
  readonly limitUsd: number | undefined;
  #spent = 0;
  #reserved = 0;
  #refused = false;
  #waiting: Array<() => void> = [];

  constructor(limitUsd?: number) {
    if (limitUsd !== undefined && !(limitUsd >= 0)) {
      throw new RangeError(
        `Cannot create a budget as 'limitUsd' must be a number >= 0: current value is ${limitUsd}`,
      );
    }
    this.limitUsd = limitUsd;
  }

  /** USD spent by calls that ended. */
  get spentUsd(): number {
    return round(this.#spent);
  }

  /** Whether a call was refused: the run ends as stopped at the budget. */
  get refused(): boolean {
    return this.#refused;
  }

  /**
   * Reserves `estimateUsd` for one call. When it fits only once calls in flight settle below
   * their estimates, waits for them; when it cannot fit, rejects with {@linkcode BudgetRefusal}.
   */
  async reserve(estimateUsd: number, signal?: AbortSignal): Promise<Reservation> {
    const limit = this.limitUsd;
    if (limit !== undefined && estimateUsd > 0) {
      while (this.#spent + this.#reserved + estimateUsd > limit + EPSILON) {
        if (this.#reserved === 0 || this.#spent + estimateUsd > limit + EPSILON) {
          this.#refused = true;
          throw new BudgetRefusal(estimateUsd, limit - this.#spent - this.#reserved);
        }
        await this.#nextSettle(signal);
      }
    }
    this.#reserved += estimateUsd;
    let settled = false;
    return {
      settle: (costUsd: number) => {
        if (settled) return;
        settled = true;
        this.#reserved -= estimateUsd;
        this.#spent += costUsd;
        for (const wake of this.#waiting.splice(0)) wake();
      },
    };
  }

  /** Books a cost no reservation covered (a charge found after the call, say). */
  book(costUsd: number): void {
    this.#spent += costUsd;
  }

  #nextSettle(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => reject(signal!.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }
}

function round(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
}
