/**
 * The strategies `retake eval` compares, and the arithmetic that gives them equal spend:
 * `refine` with R rounds makes R images, R critiques and R-1 refinements; `best-of-n` draws N
 * images from the original prompt, N chosen so its estimated spend matches refine's; `single`
 * is one image.
 *
 * @module
 */
import { InputError } from "../errors.ts";

/** The strategies, in the order they run and are shown. */
export const STRATEGIES = ["single", "best-of-n", "refine"] as const;

/** One strategy's name. */
export type StrategyName = typeof STRATEGIES[number];

/** Most images one prompt may have (the `iterations` setting's limit). */
export const MAX_IMAGES = 20;

/** How one strategy runs: as a normal batch of `iterations` images in `mode`. */
export interface StrategyPlan {
  name: StrategyName;
  /** Images per prompt. */
  iterations: number;
  /** `sample`: every image from the original prompt with its own seed; `refine`: the loop. */
  mode: "refine" | "sample";
  /** Whether every image gets its own seed. Undefined: the user's `--vary-seed` applies. */
  varySeed?: true;
  /** Estimated spend per prompt in USD, undefined when a price is unknown. */
  estimatedUsdPerPrompt: number | undefined;
}

/** Each step's estimated price in USD, undefined where unknown. */
export interface StepPrices {
  generate: number | undefined;
  critique: number | undefined;
  refine: number | undefined;
}

/** How best-of-n's N was chosen. */
export interface EqualSpend {
  /**
   * `equal-estimated-spend`: N images cost what refine's rounds are estimated to cost;
   * `equal-images`: prices are unknown or zero (offline), so N is refine's image count.
   */
  rule: "equal-estimated-spend" | "equal-images";
  rounds: number;
  bestOfN: number;
  /** N was held at {@linkcode MAX_IMAGES}: best-of-n spends less than refine. */
  capped?: true;
  prices: StepPrices;
}

/** The plans for the strategies asked for, and how best-of-n's N was chosen. */
export interface Plan {
  strategies: StrategyPlan[];
  equalSpend: EqualSpend;
}

/**
 * Plans the strategies for `rounds` refine rounds at the given step prices.
 *
 * @example
 * ```ts
 * import { planStrategies } from "./strategies.ts";
 * // Images at $0.003, critiques at $0.001, refinements at $0.0005, three rounds:
 * // refine ≈ 3 × 0.004 + 2 × 0.0005 = $0.013, so best-of-n draws round(0.013 / 0.004) = 3.
 * const plan = planStrategies(["best-of-n", "refine"], 3, {
 *   generate: 0.003,
 *   critique: 0.001,
 *   refine: 0.0005,
 * });
 * if (plan.equalSpend.bestOfN !== 3) throw new Error("expected 3 images");
 * ```
 */
export function planStrategies(
  names: readonly StrategyName[],
  rounds: number,
  prices: StepPrices,
): Plan {
  if (!Number.isInteger(rounds) || rounds < 2 || rounds > MAX_IMAGES) {
    throw new RangeError(
      `Cannot plan an eval as 'rounds' must be a whole number from 2 to ${MAX_IMAGES}: current value is ${rounds}`,
    );
  }
  const { generate, critique, refine } = prices;
  const image = generate !== undefined && critique !== undefined ? generate + critique : undefined;
  const refineUsd = image !== undefined && refine !== undefined
    ? rounds * image + (rounds - 1) * refine
    : undefined;
  let equalSpend: EqualSpend;
  if (image === undefined || refineUsd === undefined || !(image > 0)) {
    equalSpend = { rule: "equal-images", rounds, bestOfN: rounds, prices };
  } else {
    const n = Math.max(1, Math.round(refineUsd / image));
    equalSpend = {
      rule: "equal-estimated-spend",
      rounds,
      bestOfN: Math.min(n, MAX_IMAGES),
      ...(n > MAX_IMAGES && { capped: true as const }),
      prices,
    };
  }
  const n = equalSpend.bestOfN;
  const all: Record<StrategyName, StrategyPlan> = {
    single: { name: "single", iterations: 1, mode: "refine", estimatedUsdPerPrompt: image },
    "best-of-n": {
      name: "best-of-n",
      iterations: n,
      mode: "sample",
      varySeed: true,
      estimatedUsdPerPrompt: image === undefined ? undefined : n * image,
    },
    refine: {
      name: "refine",
      iterations: rounds,
      mode: "refine",
      estimatedUsdPerPrompt: refineUsd,
    },
  };
  return {
    strategies: STRATEGIES.filter((s) => names.includes(s)).map((s) => all[s]),
    equalSpend,
  };
}

/** Parses `--strategies`: a comma list of known names, each once, in the canonical order. */
export function parseStrategies(text: string): StrategyName[] {
  const asked = text.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = asked.filter((s) => !(STRATEGIES as readonly string[]).includes(s));
  if (asked.length === 0 || unknown.length > 0) {
    throw new InputError(
      `Cannot use --strategies '${text}' as ${
        asked.length === 0
          ? "it names none"
          : `${unknown.map((s) => `'${s}'`).join(", ")} is unknown`
      }: choose from ${STRATEGIES.join(", ")}`,
    );
  }
  return STRATEGIES.filter((s) => asked.includes(s));
}
