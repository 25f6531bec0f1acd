import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import { EVAL_USAGE, parseEvalArgs } from "./command.ts";

Deno.test("parseEvalArgs() takes eval's flags out and leaves every other argument in order", () => {
  const parsed = parseEvalArgs([
    "--rounds",
    "3",
    "-n",
    "2",
    "--judge=openai:gpt-4.1-mini",
    "--out",
    "o",
    "--strategies",
    "refine,best-of-n",
    "p.json",
    "--",
    "--rounds",
  ]);
  assert.equal(parsed.rounds, 3);
  assert.deepEqual(parsed.judge, { provider: "openai", model: "gpt-4.1-mini" });
  assert.deepEqual(parsed.strategies, ["best-of-n", "refine"]);
  assert.deepEqual(parsed.rest, ["-n", "2", "--out", "o", "p.json", "--", "--rounds"]);
  assert.equal(parsed.help, false);
});

Deno.test("parseEvalArgs() defaults to all three strategies and the run's own flags", () => {
  const parsed = parseEvalArgs(["--offline", "p.json"]);
  assert.deepEqual(parsed.strategies, ["single", "best-of-n", "refine"]);
  assert.equal(parsed.rounds, undefined);
  assert.equal(parsed.judge, undefined);
  assert.deepEqual(parsed.rest, ["--offline", "p.json"]);
  assert.equal(parseEvalArgs(["-h"]).help, true);
});

Deno.test("parseEvalArgs() refuses bad values and unknown flags with a usage hint", () => {
  assert.throws(
    () => parseEvalArgs(["--rounds", "1", "p.json"]),
    /from 2 to 20: current value is '1'/,
  );
  assert.throws(() => parseEvalArgs(["--rounds", "2.5"]), InputError);
  assert.throws(() => parseEvalArgs(["--strategies", "all"]), /'all' is unknown/);
  assert.throws(() => parseEvalArgs(["--judge", "gemini:"]), InputError);
  assert.throws(() => parseEvalArgs(["--round", "2"]), /retake eval --help/);
});

Deno.test("EVAL_USAGE names every eval flag and the files an eval writes", () => {
  for (
    const word of ["--strategies", "--judge", "--rounds", "--max-cost", "eval.json", "eval.html"]
  ) {
    assert.ok(EVAL_USAGE.includes(word), word);
  }
});
