/**
 * The real CLI, with the real fal and Gemini SDKs, against the stand-in servers on 127.0.0.1.
 */
import assert from "node:assert/strict";
import sharp from "sharp";
import type { PromptRecord } from "../src/output/record.ts";
import { runCli } from "./cli.ts";
import { type FalStandIn, startFalStandIn } from "./fal_standin.ts";
import { type GeminiStandIn, startGeminiStandIn } from "./gemini_standin.ts";

const FAL_KEY = "fal-test-key-6f1d2c9a:0b7e4f3358a1";
const GEMINI_KEY = "AIzaTestGeminiKey-9f8e7d6c5b4a";

const PROMPTS = {
  prompts: [
    {
      id: "good-forest",
      title: "Forest",
      mood: "calm",
      prompt: "A green forest at dawn with mist",
    },
    { id: "good-harbor", prompt: "A harbor at night under a full moon" },
    { id: "fal-422", prompt: "A red barn [fal:422]" },
    { id: "fal-429", prompt: "A yellow field [fal:429-retry-after-once]" },
    { id: "fal-500", prompt: "A blue lake [fal:500-once]" },
    { id: "fal-nsfw", prompt: "A statue [fal:nsfw]" },
    { id: "fal-not-image", prompt: "A bridge [fal:not-image]" },
    { id: "gemini-429", prompt: "A mountain [gemini:429-once]" },
    { id: "gemini-safety", prompt: "A castle [gemini:safety]" },
    { id: "gemini-block", prompt: "A tower [gemini:block]" },
    { id: "gemini-max-tokens", prompt: "A river [gemini:max-tokens-once]" },
    { id: "gemini-malformed", prompt: "A meadow [gemini:malformed]" },
  ],
};

async function readRecord(dir: string, id: string): Promise<PromptRecord> {
  return JSON.parse(await Deno.readTextFile(`${dir}/${id}/metadata.json`));
}

async function allText(dir: string): Promise<string> {
  let text = "";
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) text += await allText(path);
    else if (!/\.(png|jpg)$/.test(entry.name)) text += await Deno.readTextFile(path);
  }
  return text;
}

function env(
  fal: { url: string },
  gemini: { url: string },
  keys = { fal: FAL_KEY, gemini: GEMINI_KEY },
) {
  return {
    FAL_KEY: keys.fal,
    GEMINI_API_KEY: keys.gemini,
    FAL_BASE_URL: fal.url,
    GEMINI_BASE_URL: gemini.url,
    // Server hints of seconds become milliseconds: no real sleeps in tests.
    RETAKE_RETRY_TIME_SCALE: "0.001",
  };
}

const CONFIG = JSON.stringify({
  fal: { pollIntervalMs: 5 },
  retry: { minTimeoutMs: 5, maxTimeoutMs: 20 },
  timeoutMs: 20_000,
});

/** Runs `body` with both stand-ins and a temporary working folder, and cleans them all up. */
async function withStandIns(
  options: { retryDelayMs?: number },
  body: (ctx: { fal: FalStandIn; gemini: GeminiStandIn; cwd: string }) => Promise<void>,
): Promise<void> {
  const fal = await startFalStandIn({ key: FAL_KEY });
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY, ...options });
  const cwd = await Deno.makeTempDir({ prefix: "retake-e2e-" });
  try {
    await body({ fal, gemini, cwd });
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await fal.close();
    await gemini.close();
  }
}

Deno.test("retake with fal and Gemini stand-ins: completes good prompts, records each fault's reason", () =>
  withStandIns({ retryDelayMs: 3000 }, async ({ fal, gemini, cwd }) => {
    await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify(PROMPTS));
    await Deno.writeTextFile(`${cwd}/retake.config.json`, CONFIG);
    const result = await runCli(["--out", "out", "-c", "4", "batch.json"], {
      cwd,
      env: env(fal, gemini),
    });
    assert.equal(result.code, 1, result.stderr);
    assert.doesNotMatch(result.stderr, /Running offline/);
    const dir = `${cwd}/out/batch`;

    // Good prompts: the full tree, from the real providers.
    for (const id of ["good-forest", "good-harbor"]) {
      const rec = await readRecord(dir, id);
      assert.equal(rec.status, "completed", `${id}: ${String(rec.error?.message)}`);
      assert.deepEqual(rec.providers, { generator: "fal", critic: "gemini", refiner: "gemini" });
      assert.equal(rec.iterations.length, 2);
      const [one, two] = rec.iterations;
      assert.equal(one!.steps.generate!.model, "fal-ai/flux/schnell");
      assert.ok(one!.steps.generate!.requestId, "fal request id recorded");
      assert.ok(one!.steps.generate!.costUsd > 0, "fal cost recorded");
      assert.equal(one!.seed, two!.seed, "seed reused across iterations");
      const submits = fal.calls("submit").filter((r) => r.input?.prompt === one!.prompt);
      assert.equal(submits[0]!.input!.seed, one!.seed, "the seed sent is the seed recorded");
      const critique = one!.steps.critique!;
      assert.equal(critique.provider, "gemini");
      assert.ok(critique.usage!.inputTokens > 0 && critique.usage!.outputTokens > 0);
      assert.ok(critique.usage!.imageTokens! <= 280, `image tokens ${critique.usage!.imageTokens}`);
      assert.ok(critique.costUsd > 0);
      assert.ok(one!.refinedPrompt && one!.refinedPrompt === two!.prompt);
      assert.ok(rec.costUsd > 0);
      const meta = await sharp(`${dir}/${id}/iteration-2.png`).metadata();
      assert.equal(meta.format, "png");
    }

    // Faults that fail the prompt carry the service's reason.
    const failures: Record<string, RegExp> = {
      "fal-422": /422|Unprocessable|detail|content|invalid/i,
      "fal-nsfw": /NSFW/i,
      "fal-not-image": /image/i,
      "gemini-safety": /SAFETY/,
      "gemini-block": /block/i,
      "gemini-malformed": /JSON|schema|parse/i,
    };
    for (const [id, reason] of Object.entries(failures)) {
      const rec = await readRecord(dir, id);
      assert.equal(rec.status, "failed", id);
      assert.match(rec.error!.message, reason, `${id}: ${rec.error!.message}`);
      assert.match(result.stdout, new RegExp(`FAILED\\s+${id}:`));
    }
    assert.equal((await readRecord(dir, "fal-422")).error!.step, "generate");
    assert.equal((await readRecord(dir, "gemini-safety")).error!.step, "critique");
    await assert.rejects(Deno.stat(`${dir}/fal-not-image/iteration-1.png`), Deno.errors.NotFound);

    // Transient faults are retried by our backoff, with exact attempt counts.
    const r429 = await readRecord(dir, "fal-429");
    assert.equal(r429.status, "completed", String(r429.error?.message));
    assert.equal(r429.iterations[0]!.steps.generate!.attempts, 2);
    assert.equal(
      fal.calls("submit").filter((r) => r.prompt === PROMPTS.prompts[3]!.prompt).length,
      2,
    );
    const r500 = await readRecord(dir, "fal-500");
    assert.equal(r500.status, "completed", String(r500.error?.message));
    assert.equal(r500.iterations[0]!.steps.generate!.attempts, 2);
    const g429 = await readRecord(dir, "gemini-429");
    assert.equal(g429.status, "completed", String(g429.error?.message));
    assert.equal(g429.iterations[0]!.steps.critique!.attempts, 2);
    const critiqueCalls = gemini.requests.filter((r) =>
      r.hasImage && r.prompt.includes(PROMPTS.prompts[7]!.prompt)
    );
    const recordedAttempts = g429.iterations.reduce((n, it) => n + it.steps.critique!.attempts, 0);
    assert.equal(critiqueCalls.length, recordedAttempts, "no hidden SDK retries on top of ours");
    const maxTokens = await readRecord(dir, "gemini-max-tokens");
    assert.equal(maxTokens.status, "completed", String(maxTokens.error?.message));

    // run.json and logs.
    const run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
    assert.equal(run.providers.generator, "fal");
    assert.equal(run.totals.failed, 6);
    assert.ok(run.totals.costUsd > 0);
    // Keys never reach an output file or a log line.
    const everything = (await allText(dir)) + result.stderr + result.stdout;
    assert.ok(!everything.includes(FAL_KEY), "fal key leaked");
    assert.ok(!everything.includes(GEMINI_KEY), "gemini key leaked");
    assert.ok(!everything.includes(FAL_KEY.slice(0, 12)), "part of fal key leaked");
  }));

Deno.test("retake stops with exit 3 and a clear message on a wrong fal key, before any paid call", () =>
  withStandIns({}, async ({ fal, gemini, cwd }) => {
    await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify(PROMPTS));
    await Deno.writeTextFile(`${cwd}/retake.config.json`, CONFIG);
    const wrong = "fal-wrong-key-1234567890";
    const result = await runCli(["--out", "out", "batch.json"], {
      cwd,
      env: env(fal, gemini, { fal: wrong, gemini: GEMINI_KEY }),
    });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /FAL_KEY/);
    assert.equal(fal.calls("submit").length, 0, "the key was checked for free first");
    assert.equal(gemini.requests.length, 0);
    assert.ok(!(result.stderr + result.stdout).includes(wrong));
  }));

Deno.test("retake stops with exit 3 on an invalid Gemini key, before any paid call", () =>
  withStandIns({}, async ({ fal, gemini, cwd }) => {
    await Deno.writeTextFile(
      `${cwd}/batch.json`,
      JSON.stringify({ prompts: PROMPTS.prompts.slice(0, 2) }),
    );
    await Deno.writeTextFile(`${cwd}/retake.config.json`, CONFIG);
    const wrong = "AIzaWrongKey-000000000000";
    const result = await runCli(["--out", "out", "batch.json"], {
      cwd,
      env: env(fal, gemini, { fal: FAL_KEY, gemini: wrong }),
    });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /GEMINI_API_KEY/);
    assert.equal(fal.calls("submit").length, 0, "no fal image paid for");
    assert.ok(!(result.stderr + result.stdout).includes(wrong));
  }));

Deno.test("a key a service refuses only when used costs one call per service, not one per permit", () =>
  withStandIns({}, async ({ fal, gemini, cwd }) => {
    // The free checks pass; then every submit answers 401 (a key fal locks out mid-run, say).
    const prompts = Array.from({ length: 8 }, (_, i) => ({
      id: `p${i}`,
      prompt: `A windmill ${i} [fal:bad-key]`,
    }));
    await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify({ prompts }));
    await Deno.writeTextFile(`${cwd}/retake.config.json`, CONFIG);
    const result = await runCli(["--out", "out", "batch.json"], { cwd, env: env(fal, gemini) });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /FAL_KEY/);
    assert.equal(fal.calls("submit").length, 1, "one call in flight until the first answer");
    assert.equal(gemini.requests.length, 0);
  }));

Deno.test("--models compares fal models side by side; --replay reruns a run.json with the same seeds", () =>
  withStandIns({}, async ({ fal, gemini, cwd }) => {
    await Deno.writeTextFile(
      `${cwd}/cmp.json`,
      JSON.stringify({ prompts: PROMPTS.prompts.slice(0, 2) }),
    );
    await Deno.writeTextFile(`${cwd}/retake.config.json`, CONFIG);
    const result = await runCli(
      ["--out", "out", "--models", "flux-schnell,flux-dev", "cmp.json"],
      { cwd, env: env(fal, gemini) },
    );
    assert.equal(result.code, 0, result.stderr);
    const dir = `${cwd}/out/cmp`;
    const comparison = JSON.parse(await Deno.readTextFile(`${dir}/comparison.json`));
    assert.deepEqual(comparison.models.map((m: { model: string }) => m.model), [
      "fal-ai/flux/schnell",
      "fal-ai/flux/dev",
    ]);
    assert.equal(comparison.prompts.length, 2);
    for (const p of comparison.prompts) {
      assert.ok(["fal-ai/flux/schnell", "fal-ai/flux/dev"].includes(p.winner));
      assert.equal(p.models.length, 2);
      for (const m of p.models) {
        const rec: PromptRecord = JSON.parse(
          await Deno.readTextFile(`${dir}/${m.folder}/metadata.json`),
        );
        assert.equal(rec.iterations[0]!.steps.generate!.model, m.model);
        assert.equal(rec.bestScore, m.bestScore);
      }
    }
    const endpoints = new Set(fal.calls("submit").map((r) => r.endpoint));
    assert.deepEqual([...endpoints].sort(), ["fal-ai/flux/dev", "fal-ai/flux/schnell"]);
    assert.match(result.stdout, /good-forest \[fal-ai\/flux\/dev\]/);

    // Replay: same settings and seeds, into a new folder.
    const before = fal.calls("submit").length;
    const replay = await runCli(["--replay", "out/cmp/run.json"], { cwd, env: env(fal, gemini) });
    assert.equal(replay.code, 0, replay.stderr);
    const replayed = JSON.parse(await Deno.readTextFile(`${cwd}/out/cmp-replay/comparison.json`));
    assert.equal(replayed.prompts.length, 2);
    const submits = fal.calls("submit").slice(before);
    assert.equal(submits.length, 8);
    const original = fal.calls("submit").slice(0, before);
    const seeds = (calls: typeof submits) => new Set(calls.map((c) => c.input!.seed)).size;
    assert.equal(seeds(submits), seeds(original));
    assert.deepEqual(
      new Set(submits.map((c) => c.input!.seed)),
      new Set(original.map((c) => c.input!.seed)),
    );
  }));

Deno.test("a batch that runs into Gemini's rate quota waits for it: no prompt fails, few calls are refused", async () => {
  const fal = await startFalStandIn({ key: FAL_KEY });
  // 10 requests per 500 ms window: 20 calls/s, well under what the batch would send unpaced.
  const gemini = await startGeminiStandIn({
    key: GEMINI_KEY,
    rpm: 10,
    quotaWindowMs: 500,
    latencyMs: 20,
  });
  const cwd = await Deno.makeTempDir({ prefix: "retake-e2e-rate-" });
  try {
    const prompts = Array.from({ length: 12 }, (_, i) => ({
      id: `p${i}`,
      prompt: `A lighthouse on a cliff, number ${i}`,
    }));
    await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify({ prompts }));
    // One attempt per call: a refusal as over quota must not be what ends it.
    await Deno.writeTextFile(
      `${cwd}/retake.config.json`,
      JSON.stringify({ ...JSON.parse(CONFIG), retry: { maxAttempts: 1, budget: 0 } }),
    );
    const result = await runCli(["--out", "out", "batch.json"], {
      cwd,
      env: { ...env(fal, gemini), RETAKE_RETRY_TIME_SCALE: "1" },
    });
    assert.equal(result.code, 0, result.stderr);
    const run = JSON.parse(await Deno.readTextFile(`${cwd}/out/batch/run.json`));
    assert.equal(run.totals.completed, 12);
    const refused = gemini.requests.filter((r) => r.status === 429).length;
    const served = gemini.requests.filter((r) => r.status === 200).length;
    assert.equal(
      served,
      12 * 4,
      "a brief, one critique, one refinement, one critique per prompt",
    );
    assert.ok(refused >= 1, "the batch did run into the quota");
    assert.ok(refused <= served / 3, `${refused} refused for ${served} served`);
    const log = await Deno.readTextFile(`${cwd}/out/batch/log.jsonl`);
    assert.match(log, /"provider":"gemini"[^\n]*"ratePerSecond":\d/, "Gemini's pace is logged");
    assert.match(
      result.stderr,
      /gemini refused calls as over its rate quota: pacing calls to it at [\d.]+\/s/,
      "the user is told why the batch slowed down",
    );
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await fal.close();
    await gemini.close();
  }
});
