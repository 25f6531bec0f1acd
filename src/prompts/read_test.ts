import assert from "node:assert/strict";
import { idFromText } from "./ids.ts";
import { parsePrompts, parsePromptText, readPromptFile } from "./read.ts";
import { PROMPT_LIMITS } from "./spec.ts";
import { errorOf } from "../_test_input_error.ts";

const DATA = new URL("../../tests/data/prompt_sets/", import.meta.url).pathname;

// --- the published sets ------------------------------------------------------------------------

Deno.test("readPromptFile() reads PartiPrompts' TSV: the Prompt column, ids from the text, the rest as context", async () => {
  const { specs, problems, note } = await readPromptFile(`${DATA}PartiPrompts-sample.tsv`);
  assert.deepEqual(problems, []);
  assert.equal(specs.length, 13);
  assert.deepEqual(specs[0], {
    id: idFromText("bond"),
    prompt: "bond",
    extra: {
      Category: "Abstract",
      Challenge: "Basic",
      Note: "Biology-inspired concepts with multiple meanings",
    },
  });
  // A quote that opens a TSV field but does not wrap it is text.
  const giggle = specs.at(-1)!;
  assert.ok(giggle.prompt.startsWith(`"G I G G L E" painted in thick colorful lettering`));
  assert.match(giggle.id, /^g-i-g-g-l-e-painted-in-thick-colorful-lettering-[0-9a-f]{7}$/);
  assert.equal(giggle.extra.Note, undefined, "an empty cell is a field left out");
  assert.match(
    note!,
    /as TSV: 13 prompts from field 'Prompt'; ids made from the text; kept as context: Category, Challenge, Note$/,
  );
});

Deno.test("readPromptFile() reads GenEval's JSON Lines: no ids, and its include as checks", async () => {
  const { specs, problems, note } = await readPromptFile(
    `${DATA}evaluation_metadata-sample.jsonl`,
  );
  assert.deepEqual(problems, []);
  assert.equal(specs.length, 12);
  const clocks = specs.find((s) => s.prompt === "a photo of two clocks")!;
  assert.equal(clocks.id, idFromText("a photo of two clocks"));
  assert.deepEqual(clocks.checks, [{ question: "Are there exactly two clocks?", kind: "count" }]);
  assert.equal(clocks.extra.tag, "counting");
  const dog = specs.find((s) => s.prompt === "a photo of a dog right of a teddy bear")!;
  assert.deepEqual(dog.checks!.map((c) => c.question), [
    "Is there a teddy bear?",
    "Is there a dog?",
    "Is the dog to the right of the teddy bear?",
  ]);
  assert.match(
    note!,
    /as JSON Lines: 12 prompts from field 'prompt'; ids made from the text; checks from 'include'/,
  );
});

Deno.test("readPromptFile() reads T2I-CompBench's text: one prompt a line, CRLF and all", async () => {
  const { specs, problems } = await readPromptFile(`${DATA}color_val-sample.txt`);
  assert.deepEqual(problems, []);
  assert.equal(specs.length, 8);
  assert.deepEqual(specs[0], {
    id: idFromText("a green bench and a blue bowl"),
    prompt: "a green bench and a blue bowl",
    extra: {},
  });
});

Deno.test("readPromptFile() reads DSG-1k's CSV: rows of one item_id are one prompt, its questions its checks", async () => {
  const { specs, problems, note } = await readPromptFile(`${DATA}dsg-1k-anns-sample.csv`);
  assert.deepEqual(problems, []);
  assert.deepEqual(specs.map((s) => [s.id, s.checks!.length]), [
    ["whoops_5", 3],
    ["localized_narratives_95", 5],
    ["countbench_76", 7],
    ["drawtext_55", 7],
    ["midjourney_40", 52],
  ]);
  const cube = specs[0]!;
  assert.equal(cube.prompt, "A rubix cube with ten squares of purple");
  assert.deepEqual(cube.checks, [
    { question: "Is there a rubix cube?", kind: "entity" },
    { question: "Is the rubix cube purple?", kind: "attribute" },
    { question: "Does the rubix cube have ten squares?", kind: "attribute" },
  ]);
  // Every other column describes one question, not the prompt.
  assert.deepEqual(cube.extra, {});
  assert.deepEqual(specs[2]!.checks![1], {
    question: "Are there three security guards?",
    kind: "count",
  });
  assert.equal(specs[3]!.checks![4]!.kind, "text");
  assert.match(
    note!,
    /as CSV: 5 prompts from field 'text'; ids from field 'item_id'; 74 rows, those sharing an id as one prompt; checks from field 'question_natural_language'$/,
  );
});

// --- formats -----------------------------------------------------------------------------------

Deno.test("parsePrompts() reads text: blank lines and # comments skipped, space and BOM dropped", () => {
  const specs = parsePrompts(
    "\uFEFF# T2I-style prompts\r\n\r\n  a red fox in snow  \r\n#another comment\n\ta blue owl\n",
    "set.txt",
  );
  assert.deepEqual(specs.map((s) => s.prompt), ["a red fox in snow", "a blue owl"]);
});

Deno.test("parsePrompts() makes a line a text file repeats one prompt", () => {
  const specs = parsePrompts("a red fox\na blue owl\na red fox\n", "set.txt");
  assert.deepEqual(specs.map((s) => s.prompt), ["a red fox", "a blue owl"]);
});

Deno.test("parsePrompts() reports a text line over the limit by its line", () => {
  const message = errorOf(() =>
    parsePrompts(`fine\n\n${"p".repeat(PROMPT_LIMITS.promptChars + 1)}\n`, "set.txt")
  );
  assert.match(
    message,
    /^Invalid prompt at line 3 in 'set\.txt': field 'prompt' must be at most 4000 characters$/,
  );
});

Deno.test("parsePrompts() refuses a text file of comments alone", () => {
  assert.match(
    errorOf(() => parsePrompts("# nothing\n\n", "set.txt")),
    /only blank and comment lines/,
  );
});

Deno.test("parsePrompts() reads 100,000 text lines, the most a file may hold, and refuses one more", () => {
  const lines = Array.from({ length: PROMPT_LIMITS.prompts }, (_, i) => `prompt number ${i}`);
  const specs = parsePrompts(lines.join("\n"), "big.txt");
  assert.equal(specs.length, PROMPT_LIMITS.prompts);
  assert.equal(new Set(specs.map((s) => s.id)).size, PROMPT_LIMITS.prompts);
  const message = errorOf(() => parsePrompts(`${lines.join("\n")}\none more`, "big.txt"));
  assert.match(message, /it has 100001 prompts, the limit is 100000; split it into several files/);
});

Deno.test("parsePrompts() reads a TSV whose fields are quoted as a spreadsheet writes them", () => {
  const [spec] = parsePrompts('id\tprompt\nfox\t"a ""red"" fox,\tin snow"\n', "a.tsv");
  assert.deepEqual([spec!.id, spec!.prompt], ["fox", 'a "red" fox,\tin snow']);
});

Deno.test("parsePrompts() reads a JSON list and JSON Lines without ids, ids made from the text", () => {
  for (
    const [text, path] of [
      [`[{"prompt": "a red fox", "style": "ink"}]`, "a.json"],
      [`{"prompt": "a red fox", "style": "ink"}\n`, "a.jsonl"],
      [`{"prompts": [{"prompt": "a red fox", "style": "ink"}]}`, "a.json"],
      ["prompt,style\na red fox,ink\n", "a.csv"],
    ] as const
  ) {
    assert.deepEqual(parsePrompts(text, path), [
      { id: idFromText("a red fox"), prompt: "a red fox", extra: { style: "ink" } },
    ], path);
  }
});

Deno.test("parsePrompts() still requires an id of every prompt in a file that gives ids", () => {
  const message = errorOf(() =>
    parsePrompts(`[{"id": "a", "prompt": "one"}, {"prompt": "two"}]`, "a.json")
  );
  assert.match(message, /prompt #2 in 'a\.json': field 'id' is required/);
});

// --- fields ------------------------------------------------------------------------------------

Deno.test("parsePromptText() finds the prompt as caption or description, and says which", () => {
  const read = parsePromptText("caption,url\na red fox,http://x\n", "a.csv");
  assert.deepEqual(read.specs.map((s) => [s.prompt, s.extra]), [["a red fox", {
    url: "http://x",
  }]]);
  assert.match(read.note!, /from field 'caption'/);
  const json = parsePromptText(`[{"description": "an owl"}]`, "a.json");
  assert.equal(json.specs[0]!.prompt, "an owl");
});

Deno.test("parsePromptText() says nothing of a file read as it always was", () => {
  assert.equal(parsePromptText("id,prompt\na,b\n", "a.csv").note, undefined);
  assert.equal(
    parsePromptText(`{"prompts": [{"id": "a", "prompt": "b"}]}`, "a.json").note,
    undefined,
  );
});

Deno.test("parsePrompts() takes the fields the user names: prompt, id and checks", () => {
  const text = "key,words,ask,other\nk1,a red fox,Is there a fox?,x\nk1,a red fox,Is it red?,x\n";
  const [spec] = parsePrompts(text, "a.csv", {
    promptField: "words",
    idField: "key",
    checksField: "ask",
  });
  assert.deepEqual(spec, {
    id: "k1",
    prompt: "a red fox",
    checks: [
      { question: "Is there a fox?", kind: "entity" },
      { question: "Is it red?", kind: "entity" },
    ],
    extra: { other: "x" },
  });
});

Deno.test("parsePrompts() names the file and its fields when a named field is not in it", () => {
  const message = errorOf(() => parsePrompts("id,prompt\na,b\n", "a.csv", { idField: "key" }));
  assert.equal(
    message,
    "Cannot use prompt file 'a.csv' as its id field 'key' (--id-field) is not one of its fields: its fields are 'id', 'prompt'",
  );
});

Deno.test("parsePrompts() names a field by the file's name for it in a problem", () => {
  const message = errorOf(() =>
    parsePrompts('item_id,text\nx,"' + "p".repeat(4001) + '"\n', "dsg.csv")
  );
  assert.match(
    message,
    /prompt at row 2 \(id 'x'\) in 'dsg\.csv': field 'text' must be at most 4000/,
  );
});

// --- checks in JSON ----------------------------------------------------------------------------

Deno.test("parsePrompts() reads a prompt's checks list: questions, or objects with a kind", () => {
  const [spec] = parsePrompts(
    JSON.stringify([{
      id: "fox",
      prompt: "two red foxes",
      checks: ["Are there foxes?", { question: "Are there exactly two?", kind: "count" }],
    }]),
    "a.json",
  );
  assert.deepEqual(spec!.checks, [
    { question: "Are there foxes?", kind: "entity" },
    { question: "Are there exactly two?", kind: "count" },
  ]);
  assert.deepEqual(spec!.extra, {});
});

Deno.test("parsePrompts() reports a bad check by its place in the list", () => {
  const message = errorOf(() =>
    parsePrompts(
      JSON.stringify([{
        id: "fox",
        prompt: "x",
        checks: ["ok?", { question: "", kind: "size" }, 3],
      }]),
      "a.json",
    )
  );
  assert.match(message, /field 'checks\.1\.question' must not be empty/);
  assert.match(message, /field 'checks\.1\.kind' expected one of entity, count/);
  assert.match(message, /field 'checks\.2' expected a question or an object with a 'question'/);
});

// --- standard input ----------------------------------------------------------------------------

Deno.test("readPromptFile() reads '-' from standard input, one prompt a line unless it shows a format", async () => {
  const stdin = (text: string) => () => ReadableStream.from([new TextEncoder().encode(text)]);
  const lines = await readPromptFile("-", {}, stdin("a red fox\na blue owl\n"));
  assert.deepEqual(lines.specs.map((s) => s.prompt), ["a red fox", "a blue owl"]);
  const csv = await readPromptFile("-", {}, stdin("id,prompt\nfox,a red fox\n"));
  assert.deepEqual(csv.specs.map((s) => s.id), ["fox"]);
});

Deno.test("readPromptFile() refuses standard input past the size limit", async () => {
  const chunk = new Uint8Array(1024 * 1024).fill(0x61);
  const chunks = Array.from({ length: PROMPT_LIMITS.fileBytes / chunk.length + 1 }, () => chunk);
  await assert.rejects(
    readPromptFile("-", {}, () => ReadableStream.from(chunks)),
    /Cannot read prompt file '-': it is more than \d+ bytes, the limit is/,
  );
});
