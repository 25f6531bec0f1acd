import assert from "node:assert/strict";
import { loadPromptFile, parsePrompts, PROMPT_LIMITS, promptHash } from "./mod.ts";
import { mostRounds, planGroups, withOwnModels } from "./settings.ts";
import { errorOf, rejectionOf } from "../_test_input_error.ts";
import { withTempDir } from "../_test_temp_dir.ts";

const FILE = "prompts/demo.json";

function file(...entries: unknown[]): string {
  return JSON.stringify({ prompts: entries });
}

const ok = { id: "ok", prompt: "a fine prompt" };

// deno-lint-ignore no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** Asserts each fragment appears in `message`, naming the missing one. */
function assertMentions(message: string, ...fragments: string[]): void {
  for (const fragment of fragments) {
    assert.ok(message.includes(fragment), `expected ${JSON.stringify(fragment)} in: ${message}`);
  }
}

// --- valid files -------------------------------------------------------------------------------

Deno.test("parsePrompts() returns each entry with its known fields", () => {
  const specs = parsePrompts(
    file({ id: "fox", prompt: "a fox", title: "Fox", scene: "forest", mood: "calm" }),
    FILE,
  );
  assert.deepEqual(specs, [
    { id: "fox", prompt: "a fox", title: "Fox", scene: "forest", mood: "calm", extra: {} },
  ]);
});

Deno.test("parsePrompts() leaves out optional fields that are absent", () => {
  const [spec] = parsePrompts(file(ok), FILE);
  assert.deepEqual(spec, { id: "ok", prompt: "a fine prompt", extra: {} });
  assert.ok(!("title" in spec!));
});

Deno.test("parsePrompts() keeps unknown fields in extra", () => {
  const [spec] = parsePrompts(
    file({ ...ok, style: "watercolor", tags: ["a", "b"], weight: 2, nested: { x: null } }),
    FILE,
  );
  assert.deepEqual(spec!.extra, {
    style: "watercolor",
    tags: ["a", "b"],
    weight: 2,
    nested: { x: null },
  });
});

Deno.test("parsePrompts() trims the id and the prompt", () => {
  const [spec] = parsePrompts(file({ id: "  fox\t", prompt: "\n  a fox  \n" }), FILE);
  assert.equal(spec!.id, "fox");
  assert.equal(spec!.prompt, "a fox");
});

Deno.test("parsePrompts() accepts a leading byte order mark", () => {
  const specs = parsePrompts("\uFEFF" + file(ok), FILE);
  assert.equal(specs[0]!.id, "ok");
});

Deno.test("parsePrompts() keeps the order of the entries", () => {
  const specs = parsePrompts(file({ id: "b", prompt: "x" }, { id: "a", prompt: "y" }), FILE);
  assert.deepEqual(specs.map((s) => s.id), ["b", "a"]);
});

Deno.test("parsePrompts() accepts exactly the limits", () => {
  const prompt = "p".repeat(PROMPT_LIMITS.promptChars);
  const id = "i".repeat(PROMPT_LIMITS.idChars);
  const [spec] = parsePrompts(file({ id, prompt }), FILE);
  assert.equal(spec!.prompt.length, PROMPT_LIMITS.promptChars);
  const many = Array.from(
    { length: PROMPT_LIMITS.prompts },
    (_, i) => ({ id: `p${i}`, prompt: "x" }),
  );
  assert.equal(parsePrompts(file(...many), FILE).length, PROMPT_LIMITS.prompts);
});

// --- entry validation --------------------------------------------------------------------------

Deno.test("parsePrompts() names the file, prompt and field for a missing id", () => {
  const message = errorOf(() => parsePrompts(file(ok, { prompt: "no id" }), FILE));
  assertMentions(message, `'${FILE}'`, "prompt #2", "field 'id'", "is required");
  assertMentions(message, "non-empty string");
});

Deno.test("parsePrompts() names the file, prompt, id and field for a missing prompt", () => {
  const message = errorOf(() => parsePrompts(file({ id: "fox" }), FILE));
  assertMentions(message, `'${FILE}'`, "prompt #1", "(id 'fox')", "field 'prompt'", "is required");
});

Deno.test("parsePrompts() rejects an empty prompt", () => {
  const message = errorOf(() => parsePrompts(file({ id: "fox", prompt: "" }), FILE));
  assertMentions(message, `'${FILE}'`, "prompt #1", "(id 'fox')", "field 'prompt'");
  assertMentions(message, "must not be empty");
});

Deno.test("parsePrompts() rejects a whitespace-only prompt", () => {
  const message = errorOf(() => parsePrompts(file({ id: "fox", prompt: " \t\n " }), FILE));
  assertMentions(message, "prompt #1", "(id 'fox')", "field 'prompt'", "must not be empty");
});

Deno.test("parsePrompts() rejects a whitespace-only id", () => {
  const message = errorOf(() => parsePrompts(file({ id: "   ", prompt: "x" }), FILE));
  assertMentions(message, `'${FILE}'`, "prompt #1", "field 'id'", "must not be empty");
});

for (const field of ["title", "scene", "mood"]) {
  Deno.test(`parsePrompts() rejects a non-string ${field}`, () => {
    const message = errorOf(() =>
      parsePrompts(file(ok, { id: "fox", prompt: "x", [field]: 7 }), FILE)
    );
    assertMentions(message, `'${FILE}'`, "prompt #2", "(id 'fox')", `field '${field}'`);
    assertMentions(message, "expected a string");
  });
}

Deno.test("parsePrompts() rejects a number id and says a string was expected", () => {
  const message = errorOf(() => parsePrompts(file({ id: 42, prompt: "x" }), FILE));
  assertMentions(message, `'${FILE}'`, "prompt #1", "field 'id'", "expected a string");
});

Deno.test("parsePrompts() rejects a non-string prompt", () => {
  const message = errorOf(() => parsePrompts(file({ id: "fox", prompt: ["a"] }), FILE));
  assertMentions(message, "prompt #1", "(id 'fox')", "field 'prompt'", "expected a string");
});

Deno.test("parsePrompts() rejects duplicate ids, naming both prompts", () => {
  const message = errorOf(() =>
    parsePrompts(file({ id: "fox", prompt: "a" }, ok, { id: "fox", prompt: "b" }), FILE)
  );
  assertMentions(message, `'${FILE}'`, "prompt #3", "(id 'fox')", "field 'id'");
  assertMentions(message, "duplicates prompt #1", "must be unique");
  assert.ok(!message.includes("differ only by case"), message);
});

Deno.test("parsePrompts() rejects ids that differ only by case", () => {
  const message = errorOf(() =>
    parsePrompts(file({ id: "Fox", prompt: "a" }, { id: "fOX", prompt: "b" }), FILE)
  );
  assertMentions(message, "prompt #2", "(id 'fOX')", "field 'id'", "duplicates prompt #1");
  assertMentions(message, "'Fox'", "differ only by case");
});

Deno.test("parsePrompts() treats ids that differ only by surrounding space as duplicates", () => {
  const message = errorOf(() =>
    parsePrompts(file({ id: "fox", prompt: "a" }, { id: " fox ", prompt: "b" }), FILE)
  );
  assertMentions(message, "prompt #2", "duplicates prompt #1");
});

for (
  const [label, entry, got] of [
    ["a string", "just text", "a string"],
    ["a number", 3, "a number"],
    ["null", null, "null"],
    ["an array", [ok], "an array"],
  ] as const
) {
  Deno.test(`parsePrompts() rejects an entry that is ${label}`, () => {
    const message = errorOf(() => parsePrompts(file(ok, entry), FILE));
    assertMentions(message, `'${FILE}'`, "prompt #2", "expected an object", `got ${got}`);
  });
}

Deno.test("parsePrompts() rejects a prompt longer than the limit", () => {
  const prompt = "p".repeat(PROMPT_LIMITS.promptChars + 1);
  const message = errorOf(() => parsePrompts(file({ id: "long", prompt }), FILE));
  assertMentions(message, `'${FILE}'`, "prompt #1", "(id 'long')", "field 'prompt'");
  assertMentions(message, `at most ${PROMPT_LIMITS.promptChars} characters`);
});

Deno.test("parsePrompts() rejects an id longer than the limit", () => {
  const id = "i".repeat(PROMPT_LIMITS.idChars + 1);
  const message = errorOf(() => parsePrompts(file({ id, prompt: "x" }), FILE));
  assertMentions(message, "prompt #1", "field 'id'", `at most ${PROMPT_LIMITS.idChars} characters`);
});

const CONTROL_IDS = [
  ["a newline", "a\nb", "U+000A"],
  ["a NUL", "a\u0000b", "U+0000"],
  ["ESC", "a\u001b[31mb", "U+001B"],
  ["DEL", "a\u007fb", "U+007F"],
  ["a C1 control sequence introducer", "a\u009b31mb", "U+009B"],
  ["a C1 next line", "a\u0085b", "U+0085"],
  ["a right-to-left override", "a\u202eb", "U+202E"],
  ["a left-to-right isolate", "a\u2066b", "U+2066"],
  ["a right-to-left mark", "a\u200fb", "U+200F"],
  ["an Arabic letter mark", "a\u061cb", "U+061C"],
] as const;

for (const [label, id, code] of CONTROL_IDS) {
  Deno.test(`parsePrompts() rejects ${label} in an id, without echoing it`, () => {
    const message = errorOf(() => parsePrompts(file(ok, { id, prompt: "x" }), FILE));
    assertMentions(message, `'${FILE}'`, "prompt #2", "field 'id'");
    assertMentions(
      message,
      "must not contain control characters or bidirectional formatting characters",
    );
    assertMentions(message, `found ${code} at character 2`);
    // The id is quoted with the character escaped: a terminal shows it, never obeys it.
    assertMentions(message, `\\u${code.slice(2).toLowerCase()}`);
    assert.doesNotMatch(message, CONTROLS);
  });
}

Deno.test("parsePrompts() escapes control characters of the file name in its messages", () => {
  const message = errorOf(() => parsePrompts(file({ id: "x" }), "evil\u001b]0;title\u0007.json"));
  assertMentions(message, "evil\\u001b]0;title\\u0007.json");
  assert.doesNotMatch(message, CONTROLS);
});

Deno.test("parsePrompts() accepts ids with ordinary unicode, spaces and punctuation", () => {
  const ids = ["café au lait", "日本語", "a/b", "emoji 🦊", "twin%:;$#!!x"];
  const specs = parsePrompts(file(...ids.map((id) => ({ id, prompt: "x" }))), FILE);
  assert.deepEqual(specs.map((s) => s.id), ids);
});

/** `levels` objects, one inside the next. */
function nested(levels: number, leaf: unknown = 1): unknown {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

Deno.test("parsePrompts() rejects a field nested 5,000 levels deep, naming file, prompt and field", () => {
  const message = errorOf(() =>
    parsePrompts(file(ok, { id: "deep", prompt: "x", extra: nested(5000) }), FILE)
  );
  assertMentions(message, `'${FILE}'`, "prompt #2 (id 'deep')", "field 'extra'");
  assertMentions(message, `nested more than ${PROMPT_LIMITS.depth} levels deep`);
});

Deno.test("parsePrompts() rejects deep arrays as well as deep objects", () => {
  let value: unknown = 1;
  for (let i = 0; i < 5000; i++) value = [value];
  const message = errorOf(() => parsePrompts(file({ id: "a", prompt: "x", tags: value }), FILE));
  assertMentions(message, "field 'tags'", "levels deep");
});

Deno.test("parsePrompts() accepts a field exactly at the depth limit and rejects one level more", () => {
  const [spec] = parsePrompts(
    file({ id: "a", prompt: "x", extra: nested(PROMPT_LIMITS.depth) }),
    FILE,
  );
  assert.deepEqual(spec!.extra.extra, nested(PROMPT_LIMITS.depth));
  const message = errorOf(() =>
    parsePrompts(file({ id: "a", prompt: "x", extra: nested(PROMPT_LIMITS.depth + 1) }), FILE)
  );
  assertMentions(message, "field 'extra'");
});

Deno.test("parsePrompts() rejects more prompts than the limit and says what to do", () => {
  const many = Array.from(
    { length: PROMPT_LIMITS.prompts + 1 },
    (_, i) => ({ id: `p${i}`, prompt: "x" }),
  );
  const message = errorOf(() => parsePrompts(file(...many), FILE));
  assertMentions(message, `'${FILE}'`, `${PROMPT_LIMITS.prompts + 1} prompts`);
  assertMentions(message, `the limit is ${PROMPT_LIMITS.prompts}`, "split it");
});

// --- file shape --------------------------------------------------------------------------------

Deno.test("parsePrompts() rejects an empty list of prompts", () => {
  const message = errorOf(() => parsePrompts(`{"prompts": []}`, FILE));
  assertMentions(message, `'${FILE}'`, "field 'prompts'", "empty list", "at least one prompt");
});

Deno.test("parsePrompts() rejects a file without a prompts field", () => {
  const message = errorOf(() => parsePrompts(`{"promts": [{"id": "a", "prompt": "b"}]}`, FILE));
  assertMentions(message, `'${FILE}'`, "field 'prompts' is missing", `{"prompts": [...]}`);
});

for (
  const [label, value, got] of [
    ["an object", `{"id": "a"}`, "an object"],
    ["a string", `"a"`, "a string"],
    ["null", "null", "null"],
  ] as const
) {
  Deno.test(`parsePrompts() rejects a prompts field that is ${label}`, () => {
    const message = errorOf(() => parsePrompts(`{"prompts": ${value}}`, FILE));
    assertMentions(message, `'${FILE}'`, "field 'prompts'", `is ${got}`, "expected an array");
  });
}

Deno.test("parsePrompts() reads a top-level list of prompts, ids given or made from the text", () => {
  const specs = parsePrompts(JSON.stringify([ok, { id: "b", prompt: "two" }]), FILE);
  assert.deepEqual(specs.map((s) => [s.id, s.prompt]), [["ok", "a fine prompt"], ["b", "two"]]);
  const [made] = parsePrompts(JSON.stringify([{ prompt: "a photo of a bench" }]), FILE);
  assert.match(made!.id, /^a-photo-of-a-bench-[0-9a-f]{7}$/);
});

Deno.test("parsePrompts() rejects an empty top-level list", () => {
  const message = errorOf(() => parsePrompts("[]", FILE));
  assertMentions(message, `'${FILE}'`, "top level is an empty list", "at least one prompt");
});

for (
  const [text, got] of [
    [`"prompts"`, "a string"],
    ["null", "null"],
    ["42", "a number"],
    ["true", "a boolean"],
  ] as const
) {
  Deno.test(`parsePrompts() rejects a top level that is ${got}`, () => {
    const message = errorOf(() => parsePrompts(text, FILE));
    assertMentions(message, `'${FILE}'`, `top level is ${got}`, "expected an object");
  });
}

for (const [label, text] of [["an empty file", ""], ["a blank file", " \n\t\n"]] as const) {
  Deno.test(`parsePrompts() rejects ${label} and shows the expected shape`, () => {
    const message = errorOf(() => parsePrompts(text, FILE));
    assertMentions(message, `'${FILE}'`, "it is empty", `{"prompts": [...]}`);
  });
}

// --- malformed JSON: line and column -----------------------------------------------------------

/** Where the error is reported, as `[line, column]`. */
function jsonErrorAt(text: string): [number, number] {
  const message = errorOf(() => parsePrompts(text, FILE));
  assertMentions(message, `Cannot parse prompt file '${FILE}'`, "invalid JSON");
  const match = /line (\d+), column (\d+)/.exec(message);
  assert.ok(match, `no line and column in: ${message}`);
  return [Number(match[1]), Number(match[2])];
}

Deno.test("parsePrompts() reports the line and column of a trailing comma in an object", () => {
  const text = `{\n  "prompts": [\n    {"id": "a", "prompt": "b",}\n  ]\n}`;
  // The closing brace after the comma: line 3, column 31.
  assert.deepEqual(jsonErrorAt(text), [3, 31]);
});

Deno.test("parsePrompts() reports the line and column of a trailing comma in an array", () => {
  const text = `{\n  "prompts": [\n    {"id": "a", "prompt": "b"},\n  ]\n}`;
  // V8 gives no position for this one; the bracket after the comma is line 4, column 3.
  assert.deepEqual(jsonErrorAt(text), [4, 3]);
});

Deno.test("parsePrompts() reports the line and column of an unterminated string", () => {
  const text = `{\n  "prompts": [\n    {"id": "a", "prompt": "never closed`;
  // The text runs out on line 3 after 39 characters.
  assert.deepEqual(jsonErrorAt(text), [3, 40]);
});

Deno.test("parsePrompts() reports a raw newline inside a string where it occurs", () => {
  const text = `{"prompts": [\n{"id": "a", "prompt": "two\nlines"}]}`;
  // The newline is the 27th character of line 2.
  assert.deepEqual(jsonErrorAt(text), [2, 27]);
});

Deno.test("parsePrompts() reports a missing colon on its line", () => {
  const text = `{\n\n\n  "prompts" [1]}`;
  assert.deepEqual(jsonErrorAt(text), [4, 13]);
});

Deno.test("parsePrompts() reports text after the document", () => {
  const text = `{"prompts": []}\n}`;
  assert.deepEqual(jsonErrorAt(text), [2, 1]);
});

Deno.test("parsePrompts() reports a single-quoted string at its quote", () => {
  const text = `{"prompts": [{'id': 'a'}]}`;
  assert.deepEqual(jsonErrorAt(text), [1, 15]);
});

Deno.test("parsePrompts() reports a truncated file at its end", () => {
  const text = `{"prompts": [\n  {"id": "a", "prompt": "b"}`;
  // Line 2 is 28 characters long; the error is just past it.
  assert.deepEqual(jsonErrorAt(text), [2, 29]);
});

Deno.test("parsePrompts() reports a bad bare word at its position", () => {
  assert.deepEqual(jsonErrorAt(`{"prompts": [\n  nope]}`), [2, 3]);
  assert.deepEqual(jsonErrorAt(`{"prompts": [,]}`), [1, 14]);
});

Deno.test("parsePrompts() reports the same line and column with or without a byte order mark", () => {
  const text = `{\n  "prompts" [1]}`;
  assert.deepEqual(jsonErrorAt(text), [2, 13]);
  assert.deepEqual(jsonErrorAt("\uFEFF" + text), [2, 13]);
});

Deno.test("parsePrompts() keeps the JSON error short instead of quoting the whole file", () => {
  const entries = Array.from({ length: 200 }, (_, i) => `{"id": "p${i}", "prompt": "x"}`);
  const text = `{"prompts": [\n${entries.join(",\n")},\n]}`;
  const message = errorOf(() => parsePrompts(text, FILE));
  assertMentions(message, "line 202, column 1", "Unexpected token ']'");
  assert.ok(message.length < 200, `message is ${message.length} characters: ${message}`);
  assert.ok(!message.includes("is not valid JSON"), message);
});

// --- loadPromptFile ----------------------------------------------------------------------------

Deno.test("loadPromptFile() reads and validates a file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/good.json`;
    await Deno.writeTextFile(path, file(ok, { id: "two", prompt: "second" }));
    const specs = await loadPromptFile(path);
    assert.deepEqual(specs.map((s) => s.id), ["ok", "two"]);
  });
});

Deno.test("loadPromptFile() accepts a UTF-8 byte order mark", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/bom.json`;
    const body = new TextEncoder().encode(file({ id: "café", prompt: "crème" }));
    await Deno.writeFile(path, new Uint8Array([0xef, 0xbb, 0xbf, ...body]));
    const specs = await loadPromptFile(path);
    assert.deepEqual(specs.map((s) => [s.id, s.prompt]), [["café", "crème"]]);
  });
});

Deno.test("loadPromptFile() reports a missing file by path", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/nope.json`;
    const message = await rejectionOf(loadPromptFile(path));
    assertMentions(message, `'${path}'`, "no such file");
  });
});

Deno.test("loadPromptFile() reports a directory", async () => {
  await withTempDir(async (dir) => {
    const message = await rejectionOf(loadPromptFile(dir));
    assertMentions(message, `'${dir}'`, "is a directory");
  });
});

Deno.test("loadPromptFile() reports invalid UTF-8", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/latin1.json`;
    const before = new TextEncoder().encode(`{"prompts": [{"id": "a", "prompt": "caf`);
    const after = new TextEncoder().encode(`"}]}`);
    await Deno.writeFile(path, new Uint8Array([...before, 0xe9, ...after]));
    const message = await rejectionOf(loadPromptFile(path));
    assertMentions(message, `'${path}'`, "not valid UTF-8");
  });
});

Deno.test("loadPromptFile() reports a file it may not read", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/secret.json`;
    await Deno.writeTextFile(path, file(ok));
    await Deno.chmod(path, 0o000);
    if (Deno.uid() === 0) {
      // root reads it anyway; the file must then load normally rather than fail oddly.
      assert.equal((await loadPromptFile(path)).length, 1);
      return;
    }
    const message = await rejectionOf(loadPromptFile(path));
    assertMentions(message, `'${path}'`, "permission denied");
  });
});

Deno.test("loadPromptFile() refuses a file over the size limit before reading it", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/huge.json`;
    // A sparse file: the size is real, the disk blocks are not.
    await Deno.writeTextFile(path, "");
    await Deno.truncate(path, PROMPT_LIMITS.fileBytes + 1);
    const message = await rejectionOf(loadPromptFile(path));
    assertMentions(
      message,
      `'${path}'`,
      `${PROMPT_LIMITS.fileBytes + 1} bytes`,
      `the limit is ${PROMPT_LIMITS.fileBytes}`,
    );
  });
});

Deno.test("loadPromptFile() passes the path into validation messages", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/bad.json`;
    await Deno.writeTextFile(path, file({ id: "x" }));
    const message = await rejectionOf(loadPromptFile(path));
    assertMentions(message, `'${path}'`, "prompt #1", "field 'prompt'");
  });
});

// --- every problem at once ---------------------------------------------------------------------

Deno.test("parsePrompts() reports every invalid prompt in one pass, each by file, prompt and field", () => {
  const message = errorOf(() =>
    parsePrompts(
      file(
        ok,
        { id: "a", prompt: 7 },
        { prompt: "no id" },
        { id: "b", prompt: "x", size: "huge", seed: -1 },
        { id: "ok", prompt: "again" },
      ),
      FILE,
    )
  );
  assertMentions(message, "5 problems", "fix them and run again");
  assertMentions(message, `prompt #2 (id 'a') in '${FILE}': field 'prompt' expected a string`);
  assertMentions(message, `prompt #3 in '${FILE}': field 'id' is required`);
  assertMentions(message, `prompt #4 (id 'b') in '${FILE}': field 'size' expected WIDTHxHEIGHT`);
  assertMentions(message, `prompt #4 (id 'b') in '${FILE}': field 'seed' must be at least 0`);
  assertMentions(message, "prompt #5 (id 'ok')", "duplicates prompt #1");
  assert.equal(message.split("\n").length, 6, message);
});

Deno.test("parsePrompts() lists the first 20 problems and counts the rest", () => {
  const bad = Array.from({ length: 25 }, (_, i) => ({ id: `p${i}`, prompt: "" }));
  const message = errorOf(() => parsePrompts(file(...bad), FILE));
  const lines = message.split("\n");
  assertMentions(lines[0]!, "25 problems");
  assert.equal(lines.length, 1 + PROMPT_LIMITS.problems + 1, message);
  assertMentions(message, "prompt #20 (id 'p19')", "… and 5 more");
  assert.ok(!message.includes("prompt #21"), message);
});

// --- per-prompt settings -----------------------------------------------------------------------

Deno.test("parsePrompts() reads per-prompt settings apart from extra, sizes resolved", () => {
  const [a, b] = parsePrompts(
    file(
      {
        ...ok,
        size: "square",
        seed: 7,
        negativePrompt: " blur ",
        model: "flux-dev",
        iterations: 4,
        targetScore: 8.5,
        steps: 30,
        style: "ink",
      },
      { id: "b", prompt: "x", size: "640x480" },
    ),
    FILE,
  );
  assert.deepEqual(a!.settings, {
    size: { width: 512, height: 512 },
    seed: 7,
    negativePrompt: "blur",
    model: "flux-dev",
    iterations: 4,
    targetScore: 8.5,
    steps: 30,
  });
  assert.deepEqual(a!.extra, { style: "ink" });
  assert.deepEqual(b!.settings, { size: { width: 640, height: 480 } });
});

for (
  const [field, value, expected] of [
    ["size", "big", "expected WIDTHxHEIGHT"],
    ["seed", 1.5, "expected a whole number"],
    ["seed", 2 ** 32, "must be at most 4294967295"],
    ["iterations", 0, "must be more than 0"],
    ["iterations", 21, "must be at most 20"],
    ["targetScore", 11, "must be at most 10"],
    ["targetScore", "high", "expected a number"],
    ["steps", 0, "must be at least 1"],
    ["negativePrompt", 3, "expected a string"],
    ["model", "", "must not be empty"],
  ] as const
) {
  Deno.test(`parsePrompts() rejects ${field} ${JSON.stringify(value)} as the flag would`, () => {
    const message = errorOf(() =>
      parsePrompts(file({ id: "fox", prompt: "x", [field]: value }), FILE)
    );
    assertMentions(message, `prompt #1 (id 'fox') in '${FILE}': field '${field}' ${expected}`);
  });
}

Deno.test("parsePrompts() names the side of a size that is too small", () => {
  const message = errorOf(() =>
    parsePrompts(file({ id: "fox", prompt: "x", size: "10x10" }), FILE)
  );
  assertMentions(message, "field 'size.width' must be at least 64");
});

// --- JSON Lines --------------------------------------------------------------------------------

const JSONL = "prompts/demo.jsonl";

Deno.test("parsePrompts() reads JSON Lines: one prompt a line, blank lines skipped", () => {
  const text = `\uFEFF{"id":"a","prompt":"one"}\r\n\n   \n{"id":"b","prompt":"two","seed":3}\n`;
  const specs = parsePrompts(text, JSONL);
  assert.deepEqual(specs.map((s) => [s.id, s.prompt]), [["a", "one"], ["b", "two"]]);
  assert.deepEqual(specs[1]!.settings, { seed: 3 });
});

Deno.test("parsePrompts() reports JSON Lines problems by line number, all at once", () => {
  const text = [
    `{"id":"a","prompt":"one"}`,
    ``,
    `{"id":"b","prompt":}`,
    `{"id":"c"}`,
    `[1]`,
    `{"id":"A","prompt":"dup"}`,
  ].join("\n");
  const message = errorOf(() => parsePrompts(text, JSONL));
  assertMentions(message, "4 problems");
  assertMentions(message, `prompt at line 3 in '${JSONL}': invalid JSON at column 20`);
  assertMentions(message, `prompt at line 4 (id 'c') in '${JSONL}': field 'prompt' is required`);
  assertMentions(message, `prompt at line 5 in '${JSONL}': expected an object, got an array`);
  assertMentions(message, "prompt at line 6 (id 'A')", "duplicates prompt at line 1");
});

Deno.test("parsePrompts() rejects an empty JSON Lines file and shows the expected shape", () => {
  const message = errorOf(() => parsePrompts("\n\n", JSONL));
  assertMentions(message, `'${JSONL}'`, "empty", "one JSON object per line");
});

// --- CSV ---------------------------------------------------------------------------------------

const CSV = "prompts/demo.csv";

Deno.test("parsePrompts() reads CSV with quoted commas, quotes and newlines, and a BOM", () => {
  const text = "\uFEFFid,title,scene,mood,prompt,seed,size,style\r\n" +
    'fox,Fox,,calm,"a fox, red",12,square,ink\r\n' +
    'owl,,,,"an owl\nsaying ""hoo""",,,\r\n';
  const [fox, owl] = parsePrompts(text, CSV);
  assert.deepEqual(fox, {
    id: "fox",
    prompt: "a fox, red",
    title: "Fox",
    mood: "calm",
    settings: { seed: 12, size: { width: 512, height: 512 } },
    extra: { style: "ink" },
  });
  assert.deepEqual(owl, { id: "owl", prompt: 'an owl\nsaying "hoo"', extra: {} });
});

Deno.test("parsePrompts() reports CSV problems by row, as a spreadsheet numbers them", () => {
  const text = "id,prompt,iterations\n" +
    "a,one,2\n" +
    'b,"two\nlines",lots\n' +
    ",three,\n";
  const message = errorOf(() => parsePrompts(text, CSV));
  assertMentions(message, "2 problems");
  assertMentions(
    message,
    `prompt at row 3 (id 'b') in '${CSV}': field 'iterations' expected a number`,
  );
  assertMentions(message, `prompt at row 4 in '${CSV}': field 'id' is required`);
});

Deno.test("parsePrompts() rejects a CSV header without a prompt column, naming what it looks for", () => {
  const message = errorOf(() => parsePrompts("name,words\na,b\n", CSV));
  assertMentions(message, `'${CSV}'`, "no prompt column", "current header is 'name,words'");
  assertMentions(message, "'prompt', 'Prompt', 'text', 'caption', 'description'", "--prompt-field");
  assertMentions(message, "id,title,scene,mood,prompt");
});

Deno.test("parsePrompts() reports a broken CSV quote with its line", () => {
  const message = errorOf(() => parsePrompts('id,prompt\na,"unclosed\nb,c\n', CSV));
  assertMentions(message, `Cannot parse prompt file '${CSV}'`, "line");
});

Deno.test("parsePrompts() rejects a CSV row with the wrong number of fields", () => {
  const message = errorOf(() => parsePrompts("id,prompt\na,b,c\n", CSV));
  assertMentions(message, `Cannot parse prompt file '${CSV}'`, "line 2");
});

Deno.test("loadPromptFile() reads each format from disk by its extension", async () => {
  const dir = await Deno.makeTempDir({ prefix: "retake-prompts-" });
  try {
    await Deno.writeTextFile(`${dir}/a.json`, file({ id: "j", prompt: "json" }));
    await Deno.writeTextFile(`${dir}/a.JSONL`, `{"id":"l","prompt":"lines"}\n`);
    await Deno.writeTextFile(`${dir}/a.csv`, "id,prompt\nc,comma\n");
    assert.equal((await loadPromptFile(`${dir}/a.json`))[0]!.prompt, "json");
    assert.equal((await loadPromptFile(`${dir}/a.JSONL`))[0]!.prompt, "lines");
    assert.equal((await loadPromptFile(`${dir}/a.csv`))[0]!.prompt, "comma");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- content hash ------------------------------------------------------------------------------

Deno.test("promptHash() changes with a prompt's own settings, but not its rounds or target", () => {
  const base = { id: "fox", prompt: "a fox", extra: {} };
  const settings = { model: "m", width: 1024 };
  const plain = promptHash(base, settings);
  assert.equal(promptHash({ ...base, settings: {} }, settings), plain, "no settings, same hash");
  for (
    const own of [
      { seed: 1 },
      { size: { width: 512, height: 512 } },
      { negativePrompt: "blur" },
      { model: "fal-ai/flux/dev" },
      { steps: 20 },
    ]
  ) {
    assert.notEqual(promptHash({ ...base, settings: own }, settings), plain, JSON.stringify(own));
  }
  // Asking for more rounds, or another target, continues from the saved ones, as -n does.
  assert.equal(
    promptHash({ ...base, settings: { iterations: 5, targetScore: 8 } }, settings),
    plain,
  );
});

Deno.test("promptHash() changes with a prompt's own checks, and not when it gives none", () => {
  const base = { id: "fox", prompt: "a fox", extra: {} };
  const plain = promptHash(base, {});
  assert.equal(promptHash({ ...base, checks: [] }, {}), plain);
  const one = promptHash(
    { ...base, checks: [{ question: "Is there a fox?", kind: "entity" }] },
    {},
  );
  assert.notEqual(one, plain);
  assert.notEqual(
    promptHash({ ...base, checks: [{ question: "Is the fox red?", kind: "attribute" }] }, {}),
    one,
  );
});

// --- per-prompt plans --------------------------------------------------------------------------

Deno.test("withOwnModels() resolves a prompt's model and refuses one under --models", () => {
  const specs = [
    { id: "a", prompt: "x", settings: { model: "flux-dev", seed: 2 }, extra: {} },
    { id: "b", prompt: "y", extra: {} },
  ];
  const resolve = (name: string) => name === "flux-dev" ? "fal-ai/flux/dev" : name;
  const [a, b] = withOwnModels({}, specs, resolve);
  assert.deepEqual(a!.settings, { model: "fal-ai/flux/dev", seed: 2 });
  assert.equal(b, specs[1]);
  const message = errorOf(() => withOwnModels({ models: ["m1", "m2"] }, specs, resolve));
  assertMentions(message, "--models", "prompt 'a'", "'model'", "remove the field");
});

Deno.test("mostRounds() and planGroups() see each prompt's own rounds, model and size", () => {
  const specs = [
    { id: "a", prompt: "x", extra: {} },
    { id: "b", prompt: "y", settings: { iterations: 5 }, extra: {} },
    { id: "c", prompt: "z", settings: { size: { width: 512, height: 512 } }, extra: {} },
    { id: "d", prompt: "w", extra: {} },
  ];
  assert.equal(mostRounds(specs, 2), 5);
  assert.equal(mostRounds(specs.slice(0, 1), 3), 3);
  const groups = planGroups({ size: { width: 1024, height: 768 }, iterations: 2 }, "m", specs);
  assert.deepEqual(groups, [
    { plan: { model: "m", width: 1024, height: 768, iterations: 2 }, prompts: 2 },
    { plan: { model: "m", width: 1024, height: 768, iterations: 5 }, prompts: 1 },
    { plan: { model: "m", width: 512, height: 512, iterations: 2 }, prompts: 1 },
  ]);
});
