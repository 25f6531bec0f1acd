import assert from "node:assert/strict";
import type { Config } from "../config.ts";
import type { PromptOutcome } from "../output/record.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { Providers } from "../providers/registry.ts";
import { RunFile } from "./run_file.ts";
import { fillDisk, onSmallDisk } from "./_test_small_disk.ts";

const MODEL = "fal-ai/flux/schnell";
const DISK_FULL = "Cannot save 'out/b/p1/iteration-1.png': the disk is full; free some space " +
  "and run again to resume";

function runFile(batchDir: string, prompts: number): RunFile {
  const specs = Array.from({ length: prompts }, (_, i) => ({ id: `p${i}`, prompt: `scene ${i}` }));
  return new RunFile({
    config: { out: batchDir, iterations: 2 } as unknown as Config,
    promptFiles: ["batch.json"],
    specs: specs as PromptSpec[],
    providers: {
      generator: { name: "fal" },
      critic: { name: "gemini" },
      refiner: { name: "gemini" },
      model: MODEL,
    } as unknown as Providers,
    models: [MODEL],
    batchDir,
  }, { kept: [] });
}

/** Every prompt failed with an error text of `errorChars`. */
function failed(prompts: number, errorChars: number): PromptOutcome[] {
  return Array.from({ length: prompts }, (_, i) => ({
    id: `p${i}`,
    folder: `p${i}`,
    status: "failed",
    skipped: false,
    model: MODEL,
    durationMs: 1234,
    costUsd: 0.0030000000000000001 * (i + 1),
    iterations: 1,
    error: { step: "save", iteration: 1, message: "e".repeat(errorChars) },
  }));
}

async function readRun(dir: string) {
  return JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
}

Deno.test({
  name: "RunFile.finish() says stopped and why on a disk full to the last byte, in the room kept",
  ignore: Deno.uid() !== 0,
  fn: () =>
    onSmallDisk("512k", async (dir) => {
      const file = runFile(dir, 40);
      await file.reserve();
      await file.write("running", [], 0);
      await fillDisk(dir);
      await file.finish("stopped", failed(40, 200), 0.5, DISK_FULL);
      const run = await readRun(dir);
      assert.equal(run.status, "stopped");
      assert.equal(run.stopReason, DISK_FULL);
      assert.equal(run.prompts.length, 40);
      // The whole record fitted: the entries keep their error texts.
      assert.equal(run.prompts[7].error.message, "e".repeat(200));
      assert.equal(run.totals.failed, 40);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
        "filler",
        "run.json",
      ]);
    }),
});

Deno.test({
  name:
    "RunFile.finish(): a record grown past its room is written whole where there is space, and without error texts on a full disk",
  ignore: Deno.uid() !== 0,
  fn: () =>
    onSmallDisk("512k", async (dir) => {
      const longReason = `${DISK_FULL} ${"\u0001".repeat(20_000)}`;
      // Space left: the whole record, 40 error texts of 2 KB each and the long reason.
      const roomy = runFile(dir, 40);
      await roomy.reserve();
      await roomy.finish("crashed", failed(40, 2_000), 0.5, longReason);
      let run = await readRun(dir);
      assert.equal(run.status, "crashed");
      assert.equal(run.stopReason, longReason);
      assert.equal(run.prompts[39].error.message.length, 2_000);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["run.json"]);

      // No space left: every entry and the totals, the reason cut, the error texts left to
      // each prompt's metadata.json.
      await Deno.remove(`${dir}/run.json`);
      const full = runFile(dir, 40);
      await full.reserve();
      await full.write("running", [], 0);
      await fillDisk(dir);
      await full.finish("stopped at the cost budget", failed(40, 2_000), 0.5, longReason);
      run = await readRun(dir);
      assert.equal(run.status, "stopped at the cost budget");
      assert.ok(run.stopReason.startsWith(DISK_FULL), run.stopReason.slice(0, 100));
      assert.ok(run.stopReason.endsWith("…"));
      assert.ok(JSON.stringify(run.stopReason).length <= 2048);
      assert.equal(run.prompts.length, 40);
      assert.deepEqual(run.prompts[3], {
        id: "p3",
        model: MODEL,
        status: "failed",
        costUsd: 0.0030000000000000001 * 4,
      });
      assert.equal(run.totals.failed, 40);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
        "filler",
        "run.json",
      ]);
    }),
});

Deno.test("RunFile.finish() without a room writes the ordinary way", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = runFile(dir, 2);
    await file.finish("completed", [], 0);
    const run = await readRun(dir);
    assert.equal(run.status, "completed");
    assert.equal("stopReason" in run, false);
    assert.deepEqual(run.prompts.map((p: { status: string }) => p.status), [
      "not run",
      "not run",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
