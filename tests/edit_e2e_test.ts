/**
 * Edit mode end to end: the real CLI against the fal and Gemini stand-ins. The round after the
 * first goes to the family's edit endpoint with the first image's URL.
 */
import assert from "node:assert/strict";
import type { PromptRecord } from "../src/output/record.ts";
import { runCli } from "./cli.ts";
import { startFalStandIn } from "./fal_standin.ts";
import { startGeminiStandIn } from "./gemini_standin.ts";

for (
  const [model, endpoint, field] of [
    ["flux-schnell", "fal-ai/flux-pro/kontext", "image_url"],
    ["nano-banana-2", "fal-ai/nano-banana-2/edit", "image_urls"],
    ["flux-2", "fal-ai/flux-2/edit", "image_urls"],
  ] as const
) {
  Deno.test(`--refine edit with ${model}: round 2 edits round 1's image on ${endpoint}`, async () => {
    const fal = await startFalStandIn({ key: "edit-fal-key-1234" });
    const gemini = await startGeminiStandIn({ key: "edit-gemini-key-1234" });
    const cwd = await Deno.makeTempDir({ prefix: "retake-edit-" });
    try {
      await Deno.writeTextFile(
        `${cwd}/batch.json`,
        JSON.stringify({ prompts: [{ id: "harbour", prompt: "A red boat in a quiet harbour" }] }),
      );
      await Deno.writeTextFile(
        `${cwd}/retake.config.json`,
        JSON.stringify({ fal: { pollIntervalMs: 5 } }),
      );
      const size = model === "nano-banana-2" ? "1024x1024" : "1024x768";
      const result = await runCli(
        [
          "--out",
          "out",
          "--model",
          model,
          "--size",
          size,
          "--refine",
          "edit",
          "-n",
          "2",
          "batch.json",
        ],
        {
          cwd,
          env: {
            FAL_KEY: fal.key,
            GEMINI_API_KEY: gemini.key,
            FAL_BASE_URL: fal.url,
            GEMINI_BASE_URL: gemini.url,
          },
        },
      );
      assert.equal(result.code, 0, result.stderr);
      const submits = fal.calls("submit");
      assert.equal(submits.length, 2, "one drawing, one edit");
      assert.equal(submits[1]!.endpoint, endpoint);
      const sent = submits[1]!.input![field];
      const url = Array.isArray(sent) ? sent[0] : sent;
      const record: PromptRecord = JSON.parse(
        await Deno.readTextFile(`${cwd}/out/batch/harbour/metadata.json`),
      );
      assert.equal(url, record.iterations[0]!.imageUrl, "the edit starts from fal's own URL");
      assert.equal(record.iterations[1]!.action, "edit");
      assert.equal(record.iterations[1]!.editOf, 1);
      assert.ok(record.iterations[1]!.instruction, "the refiner wrote the edit");
      assert.equal(submits[1]!.input!.prompt, record.iterations[1]!.instruction);
    } finally {
      await Deno.remove(cwd, { recursive: true });
      await fal.close();
      await gemini.close();
    }
  });
}
