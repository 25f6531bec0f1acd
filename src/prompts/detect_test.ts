import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import { detectFormat, formatOf } from "./detect.ts";
import { PROMPT_FIELDS } from "./fields.ts";

const detect = (path: string, text: string) => detectFormat(path, text, PROMPT_FIELDS);

Deno.test("formatOf() names the format of each known extension, in any case", () => {
  assert.deepEqual(
    ["a.json", "a.JSONL", "a.ndjson", "a.csv", "a.tsv", "a.tab", "a.txt", "a.TEXT", "a.md", "a"]
      .map(formatOf),
    ["json", "jsonl", "jsonl", "csv", "tsv", "tsv", "txt", "txt", undefined, undefined],
  );
});

Deno.test("detectFormat() believes the extension, but reads a table's separator from its header", () => {
  assert.equal(detect("a.txt", `{"prompts": []}`), "txt");
  assert.equal(detect("a.csv", "id,prompt\nx,y"), "csv");
  assert.equal(detect("a.csv", "Prompt\tCategory\nx\ty"), "tsv");
  assert.equal(detect("a.tsv", "id,prompt\nx,y"), "csv");
  assert.equal(detect("a.tsv", "Prompt\tCategory, and more\nx\ty"), "tsv");
});

Deno.test("detectFormat() reads an unknown extension's content: JSON, JSON Lines, TSV, CSV", () => {
  assert.equal(detect("batch.prompts", `\n  {"prompts": [{"id": "a", "prompt": "b"}]}`), "json");
  assert.equal(detect("batch", `[{"prompt": "b"}]`), "json");
  assert.equal(detect("batch", `{"prompt": "a"}\n{"prompt": "b"}\n`), "jsonl");
  // Broken JSON that is not JSON Lines either is JSON, so its error gives the line and column.
  assert.equal(detect("batch", `{"prompts": [}`), "json");
  assert.equal(detect("batch", "Prompt\tCategory\nbond\tAbstract\n"), "tsv");
  assert.equal(detect("batch", `item_id,"text",question\nx,y,z\n`), "csv");
});

Deno.test("detectFormat() reads standard input as one prompt a line when it is nothing else", () => {
  assert.equal(detect("-", "a red fox in snow\n"), "txt");
  assert.equal(detect("-", `{"prompt": "a"}\n{"prompt": "b"}`), "jsonl");
  assert.equal(detect("-", "id,prompt\na,b\n"), "csv");
});

Deno.test("detectFormat() refuses a file of an unknown shape, showing its first line", () => {
  let error: unknown;
  try {
    detect("notes.md", "\n# My prompts\n- a red fox\n");
  } catch (caught) {
    error = caught;
  }
  assert.ok(error instanceof InputError, String(error));
  for (
    const part of [
      "'notes.md'",
      "expected a .json, .jsonl, .csv, .tsv or .txt file",
      "its first line is '# My prompts'",
      "name it .txt",
    ]
  ) {
    assert.ok(error.message.includes(part), `${part} in: ${error.message}`);
  }
  // A header without a prompt column is no table retake can read.
  assert.throws(() => detect("list", "name,colour\nfox,red\n"), /its first line is 'name,colour'/);
});
