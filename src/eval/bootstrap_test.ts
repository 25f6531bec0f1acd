import assert from "node:assert/strict";
import { bootstrapCi, pairOutcome, quantile, seededRandom, winRate } from "./bootstrap.ts";

Deno.test("bootstrapCi() of all wins is [1, 1] and of all losses [0, 0]", () => {
  assert.deepEqual(bootstrapCi([1, 1, 1, 1, 1]), [1, 1]);
  assert.deepEqual(bootstrapCi([0, 0, 0]), [0, 0]);
  assert.deepEqual(bootstrapCi([0.5]), [0.5, 0.5]);
});

Deno.test("bootstrapCi() matches the hand-computed interval of three wins and a loss", () => {
  // Resampling [1, 1, 1, 0] gives k wins of 4 with k ~ Binomial(4, 3/4): P(mean = 0) = 1/256,
  // P(mean <= 0.25) = 13/256 ≈ 5.1%, so the 2.5% quantile is 0.25; P(mean = 1) = 81/256 ≈ 32%,
  // so the 97.5% quantile is 1. With 2,000 resamples the 50th smallest is 0.25 (about 102 are
  // at most 0.25, about 8 are 0) unless the generator is broken.
  assert.deepEqual(bootstrapCi([1, 1, 1, 0]), [0.25, 1]);
  // [1, 0]: means 0, 0.5, 1 with chances 1/4, 1/2, 1/4: the interval spans everything.
  assert.deepEqual(bootstrapCi([1, 0]), [0, 1]);
});

Deno.test("bootstrapCi() is reproducible for a seed and differs for another", () => {
  const values = Array.from({ length: 40 }, (_, i) => [0, 0.5, 1][i % 3]!);
  assert.deepEqual(bootstrapCi(values), bootstrapCi(values));
  const a = bootstrapCi(values, { seed: 1, resamples: 200 });
  const b = bootstrapCi(values, { seed: 2, resamples: 200 });
  assert.notDeepEqual(a, b);
});

Deno.test("bootstrapCi() covers the true win rate about 95% of the time", () => {
  // 120 samples of 300 prompts each, won with chance 0.6: a correct 95% interval covers 0.6 in
  // about 114 of them (binomial sd ≈ 2.4), and is about 2 × 1.96 × √(0.24 / 300) ≈ 0.11 wide.
  const truth = 0.6;
  const draw = seededRandom(2024);
  let covered = 0;
  let width = 0;
  const trials = 120;
  for (let t = 0; t < trials; t++) {
    const sample = Array.from({ length: 300 }, () => draw() < truth ? 1 : 0);
    const [lo, hi] = bootstrapCi(sample, { seed: t + 1 });
    assert.ok(lo <= winRate(sample) && winRate(sample) <= hi, "the interval holds its estimate");
    if (lo <= truth && truth <= hi) covered++;
    width += hi - lo;
  }
  assert.ok(covered / trials >= 0.88, `covered ${covered} of ${trials}`);
  assert.ok(covered / trials <= 0.995, `covered ${covered} of ${trials}: far too wide`);
  assert.ok(Math.abs(width / trials - 0.111) < 0.015, `mean width ${width / trials}`);
});

Deno.test("bootstrapCi() refuses no values, a bad level and a bad resample count", () => {
  assert.throws(() => bootstrapCi([]), RangeError);
  assert.throws(() => bootstrapCi([1], { level: 1 }), /'level' must be between 0 and 1/);
  assert.throws(() => bootstrapCi([1], { resamples: 0 }), /'resamples' must be a whole number/);
});

Deno.test("pairOutcome() scores a win 1, a tie 0.5 and a loss 0; winRate() is their mean", () => {
  assert.equal(pairOutcome(8, 7.5), 1);
  assert.equal(pairOutcome(7, 7), 0.5);
  assert.equal(pairOutcome(6, 9), 0);
  assert.equal(winRate([1, 0.5, 0, 1]), 0.625);
  assert.throws(() => winRate([]), RangeError);
});

Deno.test("quantile() interpolates between order statistics", () => {
  assert.equal(quantile([0, 10], 0.25), 2.5);
  assert.equal(quantile([1, 2, 3, 4, 5], 0.5), 3);
  assert.equal(quantile([1, 2, 3, 4, 5], 1), 5);
  assert.equal(quantile([7], 0.975), 7);
});

Deno.test("seededRandom() draws in [0, 1) and evenly", () => {
  const random = seededRandom(7);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 40_000; i++) {
    const x = random();
    assert.ok(x >= 0 && x < 1);
    counts[Math.floor(x * 4)]!++;
  }
  for (const c of counts) assert.ok(Math.abs(c - 10_000) < 400, `${counts}`);
});
