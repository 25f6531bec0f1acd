/**
 * The providers' side of "spend exactly what the user allows" (issue 9): the real CLI, with the
 * real fal and Gemini SDKs, against the stand-ins, every paid call counted where it arrives.
 */
import assert from "node:assert/strict";
import type { PromptRecord } from "../src/output/record.ts";
import { runCli } from "./cli.ts";
import { type FalStandIn, type FalStandInOptions, startFalStandIn } from "./fal_standin.ts";
import { type GeminiStandIn, startGeminiStandIn } from "./gemini_standin.ts";

const FAL_KEY = "money-fal-key-1a2b3c4d";
const GEMINI_KEY = "AIzaMoneyGeminiKey-5e6f7a8b";

interface Ctx {
  fal: FalStandIn;
  gemini: GeminiStandIn;
  cwd: string;
  env: Record<string, string>;
}

/** Both stand-ins, a folder with `batch.json` of `prompts`, and a config with quick polling. */
async function withBatch(
  prompts: string[],
  body: (ctx: Ctx) => Promise<void>,
  falOptions: FalStandInOptions = {},
): Promise<void> {
  const fal = await startFalStandIn({ key: FAL_KEY, ...falOptions });
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  const cwd = await Deno.makeTempDir({ prefix: "retake-money-providers-" });
  try {
    await Deno.writeTextFile(
      `${cwd}/batch.json`,
      JSON.stringify({ prompts: prompts.map((prompt, i) => ({ id: `p${i}`, prompt })) }),
    );
    await Deno.writeTextFile(
      `${cwd}/retake.config.json`,
      JSON.stringify({ fal: { pollIntervalMs: 5 }, retry: { minTimeoutMs: 5, maxTimeoutMs: 20 } }),
    );
    const env = {
      FAL_KEY,
      GEMINI_API_KEY: GEMINI_KEY,
      FAL_BASE_URL: fal.url,
      GEMINI_BASE_URL: gemini.url,
      RETAKE_RETRY_TIME_SCALE: "0.001",
    };
    await body({ fal, gemini, cwd, env });
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await fal.close();
    await gemini.close();
  }
}

const PROMPTS = Array.from({ length: 6 }, (_, i) => `A lighthouse on a cliff, number ${i}`);

Deno.test("a wrong key or an unknown model stops the run with exit 3 before the first paid call", async () => {
  const cases: Array<
    { name: string; args?: string[]; env?: Record<string, string>; error: RegExp }
  > = [
    {
      name: "wrong FAL_KEY",
      env: { FAL_KEY: "fal-wrong-key-0000" },
      error: /rejected the API key.*FAL_KEY.*fal\.ai\/dashboard\/keys/,
    },
    {
      name: "wrong GEMINI_API_KEY",
      env: { GEMINI_API_KEY: "AIzaWrong-0000000000" },
      error: /rejected the API key.*GEMINI_API_KEY.*aistudio\.google\.com\/apikey/,
    },
    {
      name: "unknown critic model",
      args: ["--critic-model", "custom-model-x"],
      error: /model 'custom-model-x'.*--critic-model/,
    },
    {
      name: "unknown fal endpoint",
      args: ["--model", "fal-ai/flux/typo"],
      error: /model 'fal-ai\/flux\/typo' as fal has no such endpoint.*--model/,
    },
  ];
  for (const c of cases) {
    await withBatch(PROMPTS, async ({ fal, gemini, cwd, env }) => {
      const result = await runCli(["--out", "out", ...(c.args ?? []), "batch.json"], {
        cwd,
        env: { ...env, ...c.env },
      });
      assert.equal(result.code, 3, `${c.name}: ${result.stderr}`);
      assert.match(result.stderr, c.error, c.name);
      assert.equal(fal.stats().submitted, 0, `${c.name}: no fal image paid for`);
      assert.equal(gemini.requests.length, 0, `${c.name}: no Gemini call paid for`);
      for (const secret of Object.values(c.env ?? {})) {
        assert.ok(!(result.stderr + result.stdout).includes(secret), `${c.name}: key leaked`);
      }
    }, { endpoints: ["fal-ai/flux/schnell", "fal-ai/flux/dev", "fal-ai/flux-pro/kontext"] });
  }
});

Deno.test("a size the model family cannot make is refused with exit 2 before any call", async () => {
  await withBatch(PROMPTS, async ({ fal, gemini, cwd, env }) => {
    const result = await runCli(
      ["--out", "out", "--model", "flux-pro", "--size", "2048x2048", "batch.json"],
      { cwd, env },
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /fal-ai\/flux-pro\/v1\.1.*256 to 1440 px a side.*--size/);
    assert.equal(fal.requests.length, 0);
    assert.equal(gemini.requests.length + gemini.modelGets.length, 0);
    await assert.rejects(Deno.stat(`${cwd}/out`), Deno.errors.NotFound, "nothing written");
  });
});

Deno.test("a fal request that times out is cancelled on fal: one submit per attempt, none left running", async () => {
  await withBatch(["A lamp [fal:hang]", "A candle [fal:hang]"], async ({ fal, cwd, env }) => {
    const result = await runCli(["--out", "out", "--timeout", "300", "batch.json"], { cwd, env });
    assert.equal(result.code, 1, result.stderr);
    for (const id of ["p0", "p1"]) {
      const record: PromptRecord = JSON.parse(
        await Deno.readTextFile(`${cwd}/out/batch/${id}/metadata.json`),
      );
      assert.equal(record.status, "failed");
      assert.match(record.error!.message, /took longer than 300 ms \(timeoutMs\)/);
    }
    const stats = fal.stats();
    // Two prompts, four attempts each (retry.maxAttempts).
    assert.equal(stats.submitted, 8, "one submit per attempt");
    assert.equal(fal.calls("cancel").length, stats.submitted, "every timed-out request cancelled");
    assert.equal(stats.inProgress + stats.queued, 0, "nothing left running on fal");
  });
});

Deno.test("a result fal fails to hand over is fetched again, not paid for again", async () => {
  await withBatch(["A red kite [fal:result-500]", "A blue kite [fal:result-500]"], async (ctx) => {
    const result = await runCli(["--out", "out", "-n", "1", "batch.json"], {
      cwd: ctx.cwd,
      env: ctx.env,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(ctx.fal.stats().submitted, 2, "one paid job per image");
    assert.equal(ctx.fal.calls("result").length, 6, "each result fetched three times");
    for (const id of ["p0", "p1"]) {
      const record: PromptRecord = JSON.parse(
        await Deno.readTextFile(`${ctx.cwd}/out/batch/${id}/metadata.json`),
      );
      assert.equal(record.status, "completed");
      assert.ok(record.iterations[0]!.steps.generate!.costUsd > 0, "the job fal billed is costed");
    }
  });
});

const SEVEN = Array.from({ length: 7 }, (_, i) => `A wide harbour at dawn, boat ${i}`);

Deno.test("a setting fal rejects at the result stops the run at the first prompt: exit 3, one submit, one result", async () => {
  // Real fal takes the submit and refuses the input once the request runs (COMPLETED, then a
  // 422 from the result call); the stand-in does the same. FLUX.2's LoRA endpoint makes 512–2048
  // px a side, which retake cannot check for an endpoint it does not know.
  await withBatch(SEVEN, async ({ fal, cwd, env }) => {
    const result = await runCli(
      ["--out", "out", "--model", "fal-ai/flux-2/lora", "--size", "4096x2304", "batch.json"],
      { cwd, env },
    );
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /rejected the setting 'image_size'.*between 512 and 2048 pixels/);
    assert.match(result.stderr, /every prompt would fail alike/);
    assert.equal(fal.calls("submit").length, 1, "the first prompt's submit, no other");
    assert.equal(fal.calls("result").length, 1, "its result, fetched once");
    const run = JSON.parse(await Deno.readTextFile(`${cwd}/out/batch/run.json`));
    assert.equal(run.totals.failed, 1, JSON.stringify(run.totals));
  });
});

Deno.test("a prompt fal's content checker refuses at the result fails that prompt only", async () => {
  const prompts = ["A red kite [fal:422]", "A blue kite", "A green kite"];
  await withBatch(prompts, async ({ fal, cwd, env }) => {
    const result = await runCli(["--out", "out", "-n", "1", "batch.json"], { cwd, env });
    assert.equal(result.code, 1, result.stderr);
    assert.equal(fal.calls("submit").length, 3, "the others go on");
    assert.equal(fal.calls("submit", prompts[0]).length, 1, "a refusal is not sent again");
    const refused: PromptRecord = JSON.parse(
      await Deno.readTextFile(`${cwd}/out/batch/p0/metadata.json`),
    );
    assert.equal(refused.status, "failed");
    assert.match(refused.error!.message, /content_policy_violation/);
    for (const id of ["p1", "p2"]) {
      const record: PromptRecord = JSON.parse(
        await Deno.readTextFile(`${cwd}/out/batch/${id}/metadata.json`),
      );
      assert.equal(record.status, "completed");
    }
  });
});
