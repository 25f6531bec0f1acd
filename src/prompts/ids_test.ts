import assert from "node:assert/strict";
import { safeFolderName } from "../output/folder_names.ts";
import { idFromText, slugOf } from "./ids.ts";
import { parsePrompts } from "./read.ts";

Deno.test("idFromText() is a slug of the text and 7 hex digits of its hash", () => {
  assert.match(idFromText("a photo of a bench"), /^a-photo-of-a-bench-[0-9a-f]{7}$/);
  assert.equal(idFromText("a photo of a bench"), idFromText("a photo of a bench"));
  // Case alone makes another prompt: the slugs agree, the hashes do not.
  assert.notEqual(idFromText("A photo of a bench"), idFromText("a photo of a bench"));
  assert.equal(slugOf("A photo of a bench"), slugOf("a photo of a bench"));
});

Deno.test("slugOf() keeps letters of any script, drops accents and cuts at a word", () => {
  assert.equal(slugOf("Salvador Dalí"), "salvador-dali");
  assert.equal(
    slugOf(`"G I G G L E" painted, in thick lettering!`),
    "g-i-g-g-l-e-painted-in-thick-lettering",
  );
  assert.equal(slugOf("一只红色的狐狸 in snow"), "一只红色的狐狸-in-snow");
  const long = slugOf("word ".repeat(40));
  assert.ok(long.length <= 48 && long.endsWith("word") && !long.endsWith("-"), long);
  assert.equal(slugOf("x".repeat(100)).length, 48);
  assert.equal(slugOf("!!! ???"), "");
  assert.match(idFromText("!!! ???"), /^prompt-[0-9a-f]{7}$/);
});

Deno.test("an id made from the text names its folder as it is", () => {
  for (
    const text of [
      "a photo of a bench",
      "Salvador Dalí",
      "deadbeef 12345678",
      "!!!",
      "x".repeat(300),
    ]
  ) {
    const id = idFromText(text);
    assert.equal(safeFolderName(id), id, text);
  }
});

Deno.test("ids made from the text stay the same when lines are added, removed or reordered", () => {
  const before = parsePrompts("a green bench\na blue bowl\na red fox\n", "set.txt");
  const after = parsePrompts(
    "a new first line\na red fox\n\n# a comment\na green bench\nanother new one\n",
    "set.txt",
  );
  const idOf = (specs: typeof before, prompt: string) => specs.find((s) => s.prompt === prompt)!.id;
  for (const prompt of ["a green bench", "a red fox"]) {
    assert.equal(idOf(after, prompt), idOf(before, prompt), prompt);
  }
  assert.equal(new Set([...before, ...after].map((s) => s.id)).size, 5);
});
