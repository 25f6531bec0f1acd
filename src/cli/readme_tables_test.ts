import assert from "node:assert/strict";
import { envTable, exitCodesTable, markdown, tableCells } from "./readme_tables.ts";

const README = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));

function tableAfter(marker: string): string[][] {
  const start = README.indexOf(marker);
  assert.ok(start >= 0, `README has '${marker}'`);
  return tableCells(README.slice(start).split("\n\n")[1]!);
}

Deno.test("README's environment table is the one env_settings.ts and the registry make", () => {
  assert.deepEqual(tableAfter("<!-- env table"), tableCells(markdown(envTable())));
});

Deno.test("README's exit codes table is the one exit_codes.ts makes", () => {
  assert.deepEqual(tableAfter("<!-- exit codes table"), tableCells(markdown(exitCodesTable())));
});
