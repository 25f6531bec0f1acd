/**
 * Prompt files through the real CLI: JSON, JSON Lines and CSV; every invalid prompt reported in
 * one pass; per-prompt settings as the fal stand-in receives them; the rubric as the Gemini
 * stand-in receives it.
 */
import assert from "node:assert/strict";
import type { PromptRecord } from "../src/output/record.ts";
import { runCli } from "./cli.ts";
import { startFalStandIn } from "./fal_standin.ts";
import { startGeminiStandIn } from "./gemini_standin.ts";

const FAL_KEY = "fal-test-key-5e2a7c1b:9d0f4e6a21c3";
const GEMINI_KEY = "AIzaTestGeminiKey-1a2b3c4d5e6f";

async function inTempDir(body: (cwd: string) => Promise<void>): Promise<void> {
  const cwd = await Deno.makeTempDir({ prefix: "retake-prompt-files-" });
  try {
    await body(cwd);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

async function readRecord(dir: string, id: string): Promise<PromptRecord> {
  return JSON.parse(await Deno.readTextFile(`${dir}/${id}/metadata.json`));
}

const FORMATS = {
  "json": JSON.stringify({ prompts: [{ id: "fox", prompt: "a red fox in snow", seed: 5 }] }),
  "jsonl": `\n{"id":"fox","prompt":"a red fox in snow","seed":5}\n\n`,
  "csv": `\uFEFFid,title,prompt,seed\r\nfox,"Fox, red","a red fox\nin snow",5\r\n`,
};

for (const [ext, text] of Object.entries(FORMATS)) {
  Deno.test(`retake runs a .${ext} prompt file offline and records the prompt's own seed`, () =>
    inTempDir(async (cwd) => {
      await Deno.writeTextFile(`${cwd}/batch.${ext}`, text);
      const result = await runCli(["--offline", "-n", "1", "--out", "out", `batch.${ext}`], {
        cwd,
      });
      assert.equal(result.code, 0, result.stderr);
      const record = await readRecord(`${cwd}/out/batch`, "fox");
      assert.equal(record.status, "completed");
      assert.deepEqual(record.settings, { seed: 5 });
      assert.equal(record.iterations[0]!.seed, 5);
    }));
}

Deno.test("retake reports every invalid prompt of every file in one pass, exits 2 and writes nothing", () =>
  inTempDir(async (cwd) => {
    await Deno.writeTextFile(
      `${cwd}/a.jsonl`,
      [
        `{"id":"ok","prompt":"fine"}`,
        `{"id":"no-text"}`,
        `{"id":"bad-json",`,
        `{"id":"big","prompt":"x","size":"9999x9999","iterations":0}`,
      ].join("\n"),
    );
    await Deno.writeTextFile(
      `${cwd}/b.csv`,
      `id,prompt,targetScore\nOK,dup across files,\nlow,"x",eleven\n`,
    );
    const result = await runCli(["--offline", "--out", "out", "a.jsonl", "b.csv"], { cwd });
    assert.equal(result.code, 2, result.stderr);
    const lines = result.stderr.trim().split("\n");
    assert.match(lines[0]!, /^error: Cannot use the prompt files as 7 problems were found/);
    for (
      const expected of [
        /prompt at line 2 \(id 'no-text'\) in 'a\.jsonl': field 'prompt' is required/,
        /prompt at line 3 in 'a\.jsonl': invalid JSON at column \d+/,
        /prompt at line 4 \(id 'big'\) in 'a\.jsonl': field 'size\.width' must be at most 4096/,
        /prompt at line 4 \(id 'big'\) in 'a\.jsonl': field 'iterations' must be more than 0/,
        /prompt at row 3 \(id 'low'\) in 'b\.csv': field 'targetScore' expected a number/,
        /prompt 'OK' in 'b\.csv': field 'id' is also used in 'a\.jsonl'/,
      ]
    ) {
      assert.ok(lines.some((line) => expected.test(line)), `${expected} in:\n${result.stderr}`);
    }
    await assert.rejects(Deno.stat(`${cwd}/out`), Deno.errors.NotFound);
  }));

Deno.test("retake sends each prompt's own settings to fal where the endpoint takes them, and records them", async () => {
  const fal = await startFalStandIn({ key: FAL_KEY });
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  try {
    await inTempDir(async (cwd) => {
      await Deno.writeTextFile(
        `${cwd}/batch.json`,
        JSON.stringify({
          prompts: [
            {
              id: "sdxl",
              prompt: "a lighthouse at dusk",
              model: "sdxl",
              size: "square",
              seed: 42,
              steps: 20,
              negativePrompt: "text, watermark",
            },
            { id: "plain", prompt: "a quiet harbor" },
            { id: "longer", prompt: "a windmill in a field", iterations: 3 },
            { id: "flux-neg", prompt: "a red barn", negativePrompt: "people" },
          ],
        }),
      );
      await Deno.writeTextFile(
        `${cwd}/retake.config.json`,
        JSON.stringify({ fal: { pollIntervalMs: 5 }, retry: { minTimeoutMs: 5 } }),
      );
      const result = await runCli(
        ["-n", "1", "--size", "landscape_16_9", "--out", "out", "batch.json"],
        {
          cwd,
          env: {
            FAL_KEY,
            FAL_BASE_URL: fal.url,
            GEMINI_API_KEY: GEMINI_KEY,
            GEMINI_BASE_URL: gemini.url,
          },
        },
      );
      assert.equal(result.code, 0, result.stderr);
      const submits = fal.calls("submit");
      const of = (text: string) => submits.filter((r) => r.input?.prompt === text);

      // The prompt's own model, size, seed, steps and negative prompt, all sent.
      const [sdxl, ...more] = of("a lighthouse at dusk");
      assert.equal(more.length, 0, "one round: the batch's -n 1");
      assert.equal(sdxl!.endpoint, "fal-ai/fast-sdxl");
      assert.equal(sdxl!.input!.negative_prompt, "text, watermark");
      assert.equal(sdxl!.input!.seed, 42);
      assert.equal(sdxl!.input!.num_inference_steps, 20);
      assert.equal(sdxl!.input!.image_size, "square");

      // A prompt without settings gets the batch's, and nothing it did not ask for.
      const [plain] = of("a quiet harbor");
      assert.equal(plain!.endpoint, "fal-ai/flux/schnell");
      assert.equal(plain!.input!.image_size, "landscape_16_9");
      assert.ok(!("negative_prompt" in plain!.input!));
      assert.ok(!("num_inference_steps" in plain!.input!));

      // Its own iterations, above the batch's -n: three rounds, each drawn once.
      const longer = await readRecord(`${cwd}/out/batch`, "longer");
      assert.equal(longer.status, "completed");
      assert.equal(longer.iterations.length, 3);
      assert.equal(submits.length, 1 + 1 + 3 + 1, "no request beyond what the prompts asked for");

      // FLUX.1 takes no negative prompt: not sent, and said once.
      const [barn] = of("a red barn");
      assert.ok(!("negative_prompt" in barn!.input!));
      assert.equal(result.stderr.match(/takes no negative_prompt/g)?.length, 1, result.stderr);

      // Recorded: metadata.json, and prompt.json as a prompt entry a file could hold.
      const record = await readRecord(`${cwd}/out/batch`, "sdxl");
      assert.deepEqual(record.settings, {
        model: "fal-ai/fast-sdxl",
        size: { width: 512, height: 512 },
        seed: 42,
        steps: 20,
        negativePrompt: "text, watermark",
      });
      assert.equal(record.iterations[0]!.model, "fal-ai/fast-sdxl");
      const promptJson = JSON.parse(await Deno.readTextFile(`${cwd}/out/batch/sdxl/prompt.json`));
      assert.equal(promptJson.negativePrompt, "text, watermark");
      assert.equal(promptJson.steps, 20);
    });
  } finally {
    await fal.close();
    await gemini.close();
  }
});

Deno.test("retake refuses a prompt's size its own model cannot make before any paid call", async () => {
  const fal = await startFalStandIn({ key: FAL_KEY });
  try {
    await inTempDir(async (cwd) => {
      await Deno.writeTextFile(
        `${cwd}/batch.json`,
        JSON.stringify({
          prompts: [
            { id: "ok", prompt: "a cat" },
            { id: "huge", prompt: "a dog", model: "flux-2", size: "4096x4096" },
          ],
        }),
      );
      const result = await runCli(["--critic", "local", "--out", "out", "batch.json"], {
        cwd,
        env: { FAL_KEY, FAL_BASE_URL: fal.url },
      });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /Invalid prompt 'huge': Cannot generate 4096x4096 images/);
      assert.match(result.stderr, /change the prompt's 'size' or 'model'/);
      assert.equal(fal.calls("submit").length, 0);
    });
  } finally {
    await fal.close();
  }
});

Deno.test("retake sends the config's rubric to the Gemini critic, weighs its score and records both in run.json", async () => {
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  try {
    await inTempDir(async (cwd) => {
      await Deno.writeTextFile(
        `${cwd}/batch.json`,
        JSON.stringify({ prompts: [{ id: "fox", prompt: "a red fox in snow" }] }),
      );
      const rubric = "Penalise any visible text or watermark heavily.";
      const weights = { promptAdherence: 3, technicalQuality: 0 };
      await Deno.writeTextFile(
        `${cwd}/retake.config.json`,
        JSON.stringify({ criticRubric: rubric, criticWeights: weights }),
      );
      const result = await runCli(
        ["--generator", "local", "--critic", "gemini", "-n", "1", "--out", "out", "batch.json"],
        { cwd, env: { GEMINI_API_KEY: GEMINI_KEY, GEMINI_BASE_URL: gemini.url } },
      );
      assert.equal(result.code, 0, result.stderr);
      const critiques = gemini.requests.filter((r) => r.kind === "critique");
      assert.equal(critiques.length, 1);
      assert.ok(critiques[0]!.systemInstruction.includes(rubric), critiques[0]!.systemInstruction);
      assert.match(critiques[0]!.systemInstruction, /promptAdherence 50%.*technicalQuality 0%/);
      const run = JSON.parse(await Deno.readTextFile(`${cwd}/out/batch/run.json`));
      assert.equal(run.settings.criticRubric, rubric);
      assert.deepEqual(run.settings.criticWeights, weights);
      // The overall score is the weighted mean of the criteria, whatever Gemini answered.
      const { critique } = (await readRecord(`${cwd}/out/batch`, "fox")).iterations[0]!;
      const c = critique!.criteria;
      const mean = (3 * c.promptAdherence + c.composition + c.lighting + c.mood) / 6;
      assert.equal(critique!.score, Math.round(mean * 10) / 10);
    });
  } finally {
    await gemini.close();
  }
});

Deno.test("retake fails only the prompt whose own steps fal rejects, and says to fix the prompt file", async () => {
  const fal = await startFalStandIn({ key: FAL_KEY });
  try {
    await inTempDir(async (cwd) => {
      await Deno.writeTextFile(
        `${cwd}/batch.json`,
        JSON.stringify({
          prompts: [
            { id: "fine", prompt: "a cat on a wall" },
            { id: "too-many", prompt: "a dog on a beach", steps: 99 },
          ],
        }),
      );
      await Deno.writeTextFile(
        `${cwd}/retake.config.json`,
        JSON.stringify({ fal: { pollIntervalMs: 5 }, retry: { minTimeoutMs: 5 } }),
      );
      const result = await runCli(
        ["--critic", "local", "-n", "1", "-c", "1", "--out", "out", "batch.json"],
        { cwd, env: { FAL_KEY, FAL_BASE_URL: fal.url } },
      );
      assert.equal(result.code, 1, result.stderr);
      const failed = await readRecord(`${cwd}/out/batch`, "too-many");
      assert.equal(failed.status, "failed");
      assert.match(failed.error!.message, /'num_inference_steps'.*prompt 'too-many' alone/);
      assert.equal((await readRecord(`${cwd}/out/batch`, "fine")).status, "completed");
      // Refused at submit, not retried: one request each.
      assert.equal(fal.calls("submit", "a dog on a beach").length, 1);
    });
  } finally {
    await fal.close();
  }
});
