/**
 * The real CLI with `--critic openai`: the real fal and `openai` SDKs against the fal and
 * OpenAI-compatible stand-ins on 127.0.0.1, counting what each service was asked.
 */
import assert from "node:assert/strict";
import type { PromptRecord } from "../src/output/record.ts";
import { EXAMPLE, runCli } from "./cli.ts";
import { type FalStandIn, startFalStandIn } from "./fal_standin.ts";
import { type OpenAIStandIn, startOpenAIStandIn } from "./openai_standin.ts";

const FAL_KEY = "fal-test-key-6f1d2c9a:0b7e4f3358a1";
const OPENAI_KEY = "sk-test-openai-key-7c1e9b2d4f6a";

const CONFIG = JSON.stringify({
  fal: { pollIntervalMs: 5 },
  retry: { minTimeoutMs: 5, maxTimeoutMs: 20 },
  timeoutMs: 20_000,
});

/** The environment of a run; `openaiKey` null leaves OPENAI_API_KEY unset. */
function env(fal: FalStandIn, openai: OpenAIStandIn, openaiKey: string | null = OPENAI_KEY) {
  return {
    FAL_KEY,
    FAL_BASE_URL: fal.url,
    OPENAI_BASE_URL: openai.url,
    ...(openaiKey !== null && { OPENAI_API_KEY: openaiKey }),
    // Server hints of seconds become milliseconds: no real sleeps in tests.
    RETAKE_RETRY_TIME_SCALE: "0.001",
  };
}

async function withStandIns(
  body: (ctx: { fal: FalStandIn; openai: OpenAIStandIn; cwd: string }) => Promise<void>,
  openaiKey = OPENAI_KEY,
): Promise<void> {
  const fal = await startFalStandIn({ key: FAL_KEY });
  const openai = await startOpenAIStandIn({ key: openaiKey, retryAfterMs: 2000 });
  const cwd = await Deno.makeTempDir({ prefix: "retake-openai-e2e-" });
  try {
    await Deno.writeTextFile(`${cwd}/retake.config.json`, CONFIG);
    await body({ fal, openai, cwd });
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await fal.close();
    await openai.close();
  }
}

/** Every prompt's `metadata.json` in the one batch folder under `out`. */
async function records(out: string): Promise<PromptRecord[]> {
  const batches = await Array.fromAsync(Deno.readDir(out));
  assert.equal(batches.length, 1);
  const dir = `${out}/${batches[0]!.name}`;
  const found: PromptRecord[] = [];
  for await (const entry of Deno.readDir(dir)) {
    // `_thumbs` and other `_` folders belong to the gallery, not to a prompt.
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    const path = `${dir}/${entry.name}/metadata.json`;
    found.push(JSON.parse(await Deno.readTextFile(path)));
  }
  return found.sort((a, b) => a.id.localeCompare(b.id));
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

Deno.test("retake --critic openai runs the example batch to completion, one OpenAI call per step", () =>
  withStandIns(async ({ fal, openai, cwd }) => {
    const result = await runCli(
      ["--out", "out", "--critic", "openai", "--critic-model", "gpt-4o-mini", EXAMPLE],
      { cwd, env: env(fal, openai) },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /Running offline/);
    const expected = JSON.parse(await Deno.readTextFile(EXAMPLE)).prompts.length;
    const recs = await records(`${cwd}/out`);
    assert.equal(recs.length, expected);

    let critiques = 0;
    let refines = 0;
    for (const rec of recs) {
      assert.equal(rec.status, "completed", `${rec.id}: ${String(rec.error?.message)}`);
      assert.deepEqual(rec.providers, { generator: "fal", critic: "openai", refiner: "openai" });
      // One brief per prompt, from the OpenAI critic, answered by every round's critique.
      assert.equal(rec.briefStep!.provider, "openai");
      assert.ok(rec.brief!.checks.length > 0);
      for (const it of rec.iterations) {
        const critique = it.steps.critique!;
        assert.equal(critique.provider, "openai");
        assert.equal(critique.model, "gpt-4o-mini");
        assert.equal(critique.attempts, 1);
        assert.match(critique.requestId ?? "", /^req_standin_/);
        assert.ok(critique.usage!.inputTokens > 85 && critique.usage!.outputTokens > 0);
        assert.ok(critique.costUsd > 0);
        assert.deepEqual(
          it.critique!.checks!.map((c) => c.id),
          rec.brief!.checks.map((c) => c.id),
        );
        critiques++;
        if (it.refinedPrompt !== undefined) {
          assert.equal(it.steps.refine!.provider, "openai");
          assert.ok(it.steps.refine!.costUsd > 0);
          refines++;
        }
      }
      assert.ok(rec.costUsd > 0);
    }
    assert.ok(refines > 0, "the batch refined prompts");

    // Exactly the calls the work needs: one brief per prompt, one per critique and per
    // refinement, and one free model check for the critic and the refiner together.
    const withImage = openai.requests.filter((r) => r.hasImage);
    assert.equal(withImage.length, critiques);
    assert.equal(openai.requests.length - withImage.length, refines + expected);
    assert.equal(openai.modelLists.length, 1);
    assert.ok(openai.requests.every((r) => r.keyValid && r.model === "gpt-4o-mini"));
    for (const r of withImage) {
      assert.equal(r.imageUrlPrefix, "data:image/jpeg;base64");
      assert.ok(Math.max(r.image!.width, r.image!.height) <= 384, "downscaled");
      assert.equal((r.responseFormat as { type: string }).type, "json_schema");
    }
    assert.equal(fal.calls("submit").length, critiques, "one image per critique");

    const everything = (await allText(`${cwd}/out`)) + result.stderr + result.stdout;
    assert.ok(!everything.includes(OPENAI_KEY), "OpenAI key leaked");
  }));

Deno.test("retake --critic openai stops with exit 3 on a wrong key, before any paid call", () =>
  withStandIns(async ({ fal, openai, cwd }) => {
    const wrong = "sk-wrong-key-000000000000";
    const result = await runCli(
      ["--out", "out", "--critic", "openai", "--critic-model", "gpt-4o-mini", EXAMPLE],
      { cwd, env: env(fal, openai, wrong) },
    );
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /OPENAI_API_KEY/);
    assert.equal(openai.modelLists.length, 1);
    assert.equal(openai.requests.length, 0, "no critique paid for");
    assert.equal(fal.calls("submit").length, 0, "no image paid for");
    assert.ok(!(result.stderr + result.stdout).includes(wrong));
  }));

Deno.test("retake --critic openai without a key uses a server on this machine, free under --max-cost", () =>
  withStandIns(async ({ fal, openai, cwd }) => {
    const prompts = [
      { id: "kite", prompt: "A red kite over a windy beach" },
      // The critic's first answer is a 429 with Retry-After: retake's backoff tries once more.
      { id: "mill", prompt: "A windmill in a tulip field [openai:429-once]" },
    ];
    await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify({ prompts }));
    const result = await runCli(
      [
        "--out",
        "out",
        "--critic",
        "openai",
        "--critic-model",
        "llava",
        "--max-cost",
        "1",
        "batch.json",
      ],
      { cwd, env: env(fal, openai, null) },
    );
    assert.equal(result.code, 0, result.stderr);
    const recs = await records(`${cwd}/out`);
    for (const rec of recs) {
      assert.equal(rec.status, "completed", `${rec.id}: ${String(rec.error?.message)}`);
      for (const it of rec.iterations) assert.equal(it.steps.critique!.costUsd, 0);
    }
    const mill = recs.find((r) => r.id === "mill")!;
    assert.equal(mill.iterations[0]!.steps.critique!.attempts, 2);
    const millCritiques = openai.requests.filter((r) =>
      r.hasImage && r.prompt.includes("A windmill in a tulip field")
    );
    const recorded = mill.iterations.reduce((n, it) => n + it.steps.critique!.attempts, 0);
    assert.equal(millCritiques.length, recorded, "no hidden SDK retries on top of retake's");
    // A placeholder token, never a real secret, for a server that needs none.
    assert.ok(openai.requests.every((r) => r.authorization === "Bearer retake-no-key"));
  }, "retake-no-key"));
