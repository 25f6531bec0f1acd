// The house's shape, checked: no import cycle (type imports included), layers that only point
// down, and the function-length figures printed where CI shows them.
import assert from "node:assert/strict";
import { cycles, type ImportGraph, importGraph, loopThrough } from "./structure/imports.ts";
import { functionLengths, summarise } from "./structure/function_lengths.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** The layer of a project file: its folder under src/, or the file itself at the top. */
function layerOf(file: string): string {
  if (!file.startsWith("src/")) return file;
  const parts = file.split("/");
  return parts.length > 2 ? parts[1]! : parts[1]!.replace(/\.ts$/, "");
}

/**
 * Who may not import whom. Commands (batch, studio, eval, gallery) sit on the pipeline, which
 * sits on what saves, calls and reads (output, providers, prompts, config), which sits on
 * async/ and util/. The command line (src/cli/) is main.ts's alone.
 */
const COMMANDS = ["batch", "studio", "eval", "gallery", "cli", "main.ts", "mod.ts"];
const PIPELINE = ["pipeline", "steering"];
const BELOW_PIPELINE = [
  "output",
  "providers",
  "prompts",
  "offline",
  "config",
  "batch_api",
  "async",
  "util",
];
const FOUNDATION = ["async", "util", "errors", "exit_codes"];

/** The imports that point up a layer, as `from → to` with the rule they break. */
export function upwardImports(graph: ImportGraph): string[] {
  const found: string[] = [];
  for (const [from, targets] of graph) {
    const a = layerOf(from);
    for (const to of targets) {
      const b = layerOf(to);
      if (a === b) continue;
      const rule = b === "cli" && from !== "main.ts" && a !== "mod.ts"
        ? "src/cli/ is the command line's, used by main.ts only"
        : [...PIPELINE, ...BELOW_PIPELINE].includes(a) && COMMANDS.includes(b)
        ? "the library's lower layers never import a command"
        : BELOW_PIPELINE.includes(a) && PIPELINE.includes(b)
        ? "what the pipeline uses never imports the pipeline"
        : ["async", "util"].includes(a) && !FOUNDATION.includes(b)
        ? "async/ and util/ import nothing of retake's but each other and errors"
        : undefined;
      if (rule !== undefined) found.push(`${from} → ${to}: ${rule}`);
    }
  }
  return found.sort();
}

Deno.test("the cycle check finds a loop through a type import, and the layer check an upward import", () => {
  const graph: ImportGraph = new Map([
    ["src/output/artifacts.ts", ["src/pipeline/pipeline.ts"]],
    ["src/pipeline/pipeline.ts", ["src/steering/steering.ts"]],
    ["src/steering/steering.ts", ["src/output/artifacts.ts"]],
    ["src/util/hash.ts", []],
  ]);
  const found = cycles(graph);
  assert.equal(found.length, 1);
  assert.deepEqual(loopThrough(graph, found[0]!), [
    "src/output/artifacts.ts",
    "src/pipeline/pipeline.ts",
    "src/steering/steering.ts",
    "src/output/artifacts.ts",
  ]);
  assert.deepEqual(upwardImports(graph), [
    "src/output/artifacts.ts → src/pipeline/pipeline.ts: what the pipeline uses never imports the pipeline",
  ]);
});

Deno.test("src/ and main.ts have no import cycle, type imports and re-exports included", async () => {
  const graph = await importGraph(ROOT);
  assert.ok(graph.size > 50, `read ${graph.size} files`);
  const found = cycles(graph).map((c) => loopThrough(graph, c).join(" → "));
  assert.deepEqual(found, []);
});

Deno.test("imports point down the layers: commands → pipeline → output, providers, prompts → async, util", async () => {
  assert.deepEqual(upwardImports(await importGraph(ROOT)), []);
});

Deno.test("function lengths: none over 100 lines, at most 3% over 60 (printed for the record)", async () => {
  const figures = summarise(await functionLengths(ROOT));
  assert.ok(figures.functions > 500, `measured ${figures.functions} functions`);
  const over100 = figures.longest.filter((f) => f.lines > 100);
  assert.deepEqual(over100.map((f) => `${f.file}:${f.line} ${f.name} (${f.lines})`), []);
  assert.ok(figures.share60 <= 0.03, `${(100 * figures.share60).toFixed(1)}% over 60 lines`);
  // deno-lint-ignore no-console
  console.log(
    `${figures.functions} functions; ${figures.over60} over 60 lines (${
      (100 * figures.share60).toFixed(1)
    }%); ${figures.over100} over 100 lines; longest: ${
      figures.longest.slice(0, 3).map((f) => `${f.file}:${f.line} ${f.name} (${f.lines})`).join(
        ", ",
      )
    }`,
  );
});
