/**
 * A Gemini key alone runs the whole loop: the real CLI, with the real Gemini SDK, against the
 * Gemini stand-in, with no fal key set. Gemini's image model draws, its text model judges and
 * rewrites.
 */
import assert from "node:assert/strict";
import sharp from "sharp";
import type { PromptRecord } from "../src/output/record.ts";
import { EXAMPLE, runCli } from "./cli.ts";
import { startGeminiStandIn } from "./gemini_standin.ts";

const GEMINI_KEY = "AQ.Ab8RN6-gemini-only-e2e-key";

Deno.test("retake with only GEMINI_API_KEY generates, critiques and refines every example prompt with Gemini", async () => {
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  const cwd = await Deno.makeTempDir({ prefix: "retake-gemini-only-" });
  try {
    const { prompts } = JSON.parse(await Deno.readTextFile(EXAMPLE)) as {
      prompts: Array<{ id: string }>;
    };
    const iterations = 2;
    const result = await runCli(["--out", "out", "-n", String(iterations), EXAMPLE], {
      cwd,
      env: { GEMINI_API_KEY: GEMINI_KEY, GEMINI_BASE_URL: gemini.url },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /offline|local/i, "nothing runs offline");
    assert.ok(!(result.stderr + result.stdout).includes(GEMINI_KEY), "the key never shows");

    const dir = `${cwd}/out/example`;
    for (const { id } of prompts) {
      const record: PromptRecord = JSON.parse(
        await Deno.readTextFile(`${dir}/${id}/metadata.json`),
      );
      assert.equal(record.status, "completed", `${id}: ${String(record.error?.message)}`);
      assert.deepEqual(record.providers, {
        generator: "gemini",
        critic: "gemini",
        refiner: "gemini",
      });
      assert.equal(record.iterations.length, iterations, id);
      for (const it of record.iterations) {
        const generate = it.steps.generate!;
        assert.equal(generate.provider, "gemini");
        assert.equal(generate.model, "gemini-nano-banana-2.1");
        assert.ok(generate.costUsd > 0, `${id}: the image is costed`);
        assert.equal(it.steps.critique!.modelVersion, "gemini-3.8-flash");
        const path = `${dir}/${id}/${it.image}`;
        const meta = await sharp(path).metadata();
        assert.deepEqual([meta.format, meta.width, meta.height], ["png", it.width, it.height]);
        await sharp(path).raw().toBuffer(); // decodes to the last pixel
      }
      assert.ok(record.iterations[0]!.refinedPrompt === record.iterations[1]!.prompt, id);
    }

    // Every call counted where it arrived: no more than the work needs.
    const count = (kind: string) => gemini.requests.filter((r) => r.kind === kind).length;
    assert.equal(count("generate"), prompts.length * iterations, "generations");
    assert.equal(count("critique"), prompts.length * iterations, "critiques");
    assert.equal(count("refine"), prompts.length * (iterations - 1), "refinements");
    assert.deepEqual(
      gemini.modelGets.map((g) => g.model).sort(),
      ["gemini-3.8-flash", "gemini-nano-banana-2.1"],
      "one free check per model",
    );
    for (const request of gemini.requests) {
      assert.ok(!("temperature" in request.generationConfig), "no sampling knobs on Gemini 3");
    }
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await gemini.close();
  }
});
