import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import { FLAGS } from "./flags.ts";
import { editDistance, nearest, parseCommandLine } from "./parse_args.ts";

function refusal(args: string[], options = {}): string {
  try {
    parseCommandLine(args, options);
  } catch (error) {
    assert.ok(error instanceof InputError, String(error));
    return error.message;
  }
  assert.fail(`${args.join(" ")} was accepted`);
}

Deno.test("an unknown flag names the nearest real one, with balanced quotes", () => {
  assert.equal(
    refusal(["--itrations", "3", "p.json"]),
    "Unknown option '--itrations': did you mean --iterations? (run retake --help)",
  );
  assert.equal(
    refusal(["--max-cots", "1"]),
    "Unknown option '--max-cots': did you mean --max-cost? (run retake --help)",
  );
  assert.match(refusal(["--iter", "2"]), /did you mean --iterations\?/);
  assert.match(refusal(["--dryrun"]), /did you mean --dry-run\?/);
  assert.equal(refusal(["--colour", "red"]), "Unknown option '--colour' (run retake --help)");
  assert.equal(refusal(["-x"]), "Unknown option '-x' (run retake --help)");
});

Deno.test("a command's own flags are suggested too, with its own help", () => {
  const extra = [{ name: "rounds", type: "string" as const, arg: "N" }];
  assert.equal(
    refusal(["--ronuds", "3"], { extra, help: "retake eval --help" }),
    "Unknown option '--ronuds': did you mean --rounds? (run retake eval --help)",
  );
});

Deno.test("every flag of the table is suggested for a one-letter typo of it", () => {
  for (const flag of FLAGS.filter((f) => f.name.length >= 4)) {
    const typo = `${flag.name.slice(0, 1)}${flag.name.slice(2)}`;
    if (FLAGS.some((f) => f.name === typo)) continue;
    assert.match(refusal([`--${typo}`]), new RegExp(`did you mean --${flag.name}\\?`), typo);
  }
});

Deno.test("a value that starts with a dash is a value: negative numbers parse", () => {
  const parsed = parseCommandLine(["--max-cost", "-1", "-n", "-2", "--seed=-3", "p.json"]);
  assert.deepEqual(parsed.values, { "max-cost": "-1", iterations: "-2", seed: "-3" });
  assert.deepEqual(parsed.positionals, ["p.json"]);
  assert.deepEqual(parsed.places.map((p) => [p.name, p.index, p.valueIndex]), [
    ["max-cost", 0, 1],
    ["iterations", 2, 3],
    ["seed", 4, undefined],
  ]);
});

Deno.test("a flag without its value, or a boolean with one, says what it takes", () => {
  assert.equal(
    refusal(["--max-cost"]),
    "Cannot use --max-cost without a value: expected --max-cost USD (run retake --help)",
  );
  assert.match(refusal(["--name", "--force"]), /Cannot use --name with '--force'.*--name=--force/);
  assert.equal(
    refusal(["--force=yes"]),
    "Cannot use --force=yes: --force takes no value; write --force alone (run retake --help)",
  );
});

Deno.test("after --, every word is a prompt file", () => {
  assert.deepEqual(parseCommandLine(["--", "--force"]).positionals, ["--force"]);
});

Deno.test("editDistance() counts a swap of neighbours as one edit", () => {
  assert.equal(editDistance("iterations", "itreations"), 1);
  assert.equal(editDistance("iterations", "itrations"), 1);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(nearest("xyzzy", ["out", "name"]), undefined);
});
