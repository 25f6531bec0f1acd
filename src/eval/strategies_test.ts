import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import { MAX_IMAGES, parseStrategies, planStrategies, STRATEGIES } from "./strategies.ts";

const ALL = [...STRATEGIES];

Deno.test("planStrategies() gives best-of-n the images refine's estimated spend buys", () => {
  // Refine, 4 rounds: 4 × (0.003 + 0.002) + 3 × 0.001 = 0.023; an image and its critique cost
  // 0.005, so best-of-n draws round(4.6) = 5.
  const plan = planStrategies(ALL, 4, { generate: 0.003, critique: 0.002, refine: 0.001 });
  assert.equal(plan.equalSpend.rule, "equal-estimated-spend");
  assert.equal(plan.equalSpend.bestOfN, 5);
  assert.equal(plan.equalSpend.capped, undefined);
  const [single, bestOfN, refine] = plan.strategies;
  assert.deepEqual(
    [single!.name, single!.iterations, single!.mode],
    ["single", 1, "refine"],
  );
  assert.deepEqual(
    [bestOfN!.name, bestOfN!.iterations, bestOfN!.mode, bestOfN!.varySeed],
    ["best-of-n", 5, "sample", true],
  );
  assert.deepEqual([refine!.name, refine!.iterations, refine!.mode], ["refine", 4, "refine"]);
  assert.ok(Math.abs(refine!.estimatedUsdPerPrompt! - 0.023) < 1e-12);
  assert.ok(Math.abs(bestOfN!.estimatedUsdPerPrompt! - 0.025) < 1e-12);
  assert.ok(Math.abs(single!.estimatedUsdPerPrompt! - 0.005) < 1e-12);
});

Deno.test("planStrategies() draws as many images as refine makes when prices are zero or unknown", () => {
  const free = planStrategies(ALL, 3, { generate: 0, critique: 0, refine: 0 });
  assert.equal(free.equalSpend.rule, "equal-images");
  assert.equal(free.equalSpend.bestOfN, 3);
  assert.equal(free.strategies[1]!.iterations, 3);
  const unknown = planStrategies(ALL, 3, { generate: 0.01, critique: undefined, refine: 0 });
  assert.equal(unknown.equalSpend.rule, "equal-images");
  assert.equal(unknown.equalSpend.bestOfN, 3);
  assert.equal(unknown.strategies[2]!.estimatedUsdPerPrompt, undefined);
});

Deno.test("planStrategies() holds best-of-n at the image limit and says so", () => {
  // Refinements far dearer than images: refine's spend would buy more than 20 images.
  const plan = planStrategies(ALL, 10, { generate: 0.001, critique: 0, refine: 0.01 });
  assert.equal(plan.equalSpend.bestOfN, MAX_IMAGES);
  assert.equal(plan.equalSpend.capped, true);
});

Deno.test("planStrategies() plans only the strategies asked for, in their order", () => {
  const plan = planStrategies(["refine", "single"], 2, { generate: 0, critique: 0, refine: 0 });
  assert.deepEqual(plan.strategies.map((s) => s.name), ["single", "refine"]);
  assert.throws(() => planStrategies(ALL, 1, { generate: 0, critique: 0, refine: 0 }), RangeError);
});

Deno.test("parseStrategies() takes a comma list in any order and refuses unknown names", () => {
  assert.deepEqual(parseStrategies("refine, best-of-n"), ["best-of-n", "refine"]);
  assert.deepEqual(parseStrategies("single,single"), ["single"]);
  assert.throws(() => parseStrategies("refine,bestofn"), InputError);
  assert.throws(
    () => parseStrategies("refine,bestofn"),
    /'bestofn' is unknown: choose from single, best-of-n, refine/,
  );
  assert.throws(() => parseStrategies(","), /names none/);
});
