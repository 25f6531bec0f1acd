/**
 * The eval's statistics: a paired win rate over prompts and its bootstrap confidence interval
 * (resample the prompts with replacement, take the percentile interval of the resampled rates),
 * drawn from a seeded generator so the same results always give the same interval.
 *
 * @module
 */
import { mulberry32 } from "../util/hash.ts";

/** One prompt's outcome for A against B: a win 1, a tie 0.5, a loss 0. */
export type PairOutcome = 0 | 0.5 | 1;

/** Options for {@linkcode bootstrapCi}. */
export interface BootstrapOptions {
  /** How many resamples. @default {2000} */
  resamples?: number;
  /** Confidence level, between 0 and 1. @default {0.95} */
  level?: number;
  /** Seed of the generator that draws the resamples. @default {BOOTSTRAP_SEED} */
  seed?: number;
}

/** The seed every eval draws its resamples from, recorded in `eval.json`. */
export const BOOTSTRAP_SEED = 12;

/** The number of resamples every eval draws. */
export const BOOTSTRAP_RESAMPLES = 2000;

/** A seeded generator of numbers in [0, 1): the same seed draws the same resamples. */
export const seededRandom: (seed: number) => () => number = mulberry32;

/** A's outcome against B on one prompt, from their scores. */
export function pairOutcome(a: number, b: number): PairOutcome {
  return a > b ? 1 : a < b ? 0 : 0.5;
}

/** The mean of the outcomes: the share of prompts A wins, ties counting half. */
export function winRate(outcomes: readonly number[]): number {
  if (outcomes.length === 0) {
    throw new RangeError("Cannot compute a win rate as there are no outcomes: current length is 0");
  }
  return outcomes.reduce((sum, o) => sum + o, 0) / outcomes.length;
}

/**
 * The percentile bootstrap interval of the mean of `values`: `resamples` times, draws as many
 * values with replacement and takes their mean; the interval runs between the
 * `(1 - level) / 2` and `(1 + level) / 2` quantiles of those means (linear interpolation
 * between order statistics).
 *
 * @example
 * ```ts
 * import { bootstrapCi } from "./bootstrap.ts";
 * const [lo, hi] = bootstrapCi([1, 1, 1]);
 * if (lo !== 1 || hi !== 1) throw new Error("all wins give [1, 1]");
 * ```
 */
export function bootstrapCi(
  values: readonly number[],
  options: BootstrapOptions = {},
): [number, number] {
  const { resamples = BOOTSTRAP_RESAMPLES, level = 0.95, seed = BOOTSTRAP_SEED } = options;
  if (values.length === 0) {
    throw new RangeError("Cannot bootstrap as there are no values: current length is 0");
  }
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new RangeError(
      `Cannot bootstrap as 'resamples' must be a whole number >= 1: current value is ${resamples}`,
    );
  }
  if (!(level > 0 && level < 1)) {
    throw new RangeError(
      `Cannot bootstrap as 'level' must be between 0 and 1: current value is ${level}`,
    );
  }
  const random = seededRandom(seed);
  const n = values.length;
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[Math.floor(random() * n)]!;
    means[r] = sum / n;
  }
  means.sort();
  return [quantile(means, (1 - level) / 2), quantile(means, (1 + level) / 2)];
}

/** The `p` quantile of sorted values, interpolating between neighbours (R's type 7). */
export function quantile(sorted: ArrayLike<number>, p: number): number {
  const at = p * (sorted.length - 1);
  const below = Math.floor(at);
  const above = Math.min(below + 1, sorted.length - 1);
  const value = sorted[below]! + (sorted[above]! - sorted[below]!) * (at - below);
  // Means of a few outcomes come out as 0.30000000000000004: rounding keeps the file readable.
  return Math.round(value * 1e9) / 1e9;
}
