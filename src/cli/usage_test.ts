import assert from "node:assert/strict";
import { EVAL_USAGE } from "../eval/command.ts";
import { exitCodes } from "../exit_codes.ts";
import { FLAGS } from "../config/flags.ts";
import { columns, HELP_WIDTH, USAGE, wrap } from "./usage.ts";

Deno.test("every line of --help and of retake eval --help fits 80 columns", () => {
  for (const [name, text] of [["retake --help", USAGE], ["retake eval --help", EVAL_USAGE]]) {
    for (const line of text!.split("\n")) {
      assert.ok([...line].length <= HELP_WIDTH, `${name}: ${[...line].length} columns: ${line}`);
    }
  }
});

Deno.test("--help lists every flag and every exit code from their tables", () => {
  for (const flag of FLAGS) assert.match(USAGE, new RegExp(`--${flag.name}\\b`));
  for (const { code, meaning } of exitCodes()) {
    const first = meaning.replaceAll("`", "").split(" ").slice(0, 3).join(" ");
    const escaped = first.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    assert.match(USAGE, new RegExp(`^  ${code} +${escaped}`, "m"), `exit code ${code}`);
  }
});

Deno.test("columns() wraps beside its head, or below a head too long for its column", () => {
  assert.equal(columns("-n", "a b c", 2, 4), "  -n   a b c");
  const long = columns("A_VERY_LONG_VARIABLE_NAME", "text", 2, 10);
  assert.deepEqual(long.split("\n"), ["  A_VERY_LONG_VARIABLE_NAME", "             text"]);
  assert.deepEqual(wrap("one two three", 7), ["one two", "three"]);
});
