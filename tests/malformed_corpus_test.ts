import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { InputError } from "../src/errors.ts";
import { loadPromptFile } from "../src/prompts/mod.ts";

const CORPUS = fileURLToPath(new URL("./data/malformed/", import.meta.url));
const EXPECTED: Record<string, string> = JSON.parse(
  await Deno.readTextFile(`${CORPUS}expected.json`),
);

const files: string[] = [];
for await (const entry of Deno.readDir(CORPUS)) {
  if (entry.isFile && entry.name !== "expected.json") files.push(entry.name);
}
files.sort();

Deno.test("malformed corpus lists every file in expected.json, and nothing else", () => {
  assert.ok(files.length >= 20, `only ${files.length} malformed files`);
  assert.deepEqual(files, Object.keys(EXPECTED).sort());
});

for (const name of files) {
  Deno.test(`loadPromptFile() rejects malformed/${name} with the file and the reason`, async () => {
    const path = `${CORPUS}${name}`;
    const expected = EXPECTED[name];
    assert.ok(expected, `no expected message for ${name} in expected.json`);
    let error: unknown;
    try {
      await loadPromptFile(path);
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof InputError, `expected an InputError for ${name}, got ${error}`);
    assert.ok(error.message.includes(`'${path}'`), `no path in: ${error.message}`);
    assert.ok(
      error.message.includes(expected),
      `expected ${JSON.stringify(expected)} in: ${error.message}`,
    );
  });
}
