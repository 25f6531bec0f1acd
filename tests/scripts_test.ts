/**
 * retake in scripts: `--json` on stdout (one document, nothing else) for every way a run ends,
 * and `--dry-run`, which makes the free checks a run makes and no paid call, counted at the
 * stand-ins.
 */
import assert from "node:assert/strict";
import type { JsonSummary } from "../src/batch/json_summary.ts";
import type { Plan } from "../src/batch/dry_run.ts";
import { cliCommand, EXAMPLE, runCli } from "./cli.ts";
import { type FalStandIn, startFalStandIn } from "./fal_standin.ts";
import { type GeminiStandIn, startGeminiStandIn } from "./gemini_standin.ts";

const FAL_KEY = "scripts-fal-key-3c4d";
const GEMINI_KEY = "scripts-gemini-key-5e6f";

interface StandIns {
  fal: FalStandIn;
  gemini: GeminiStandIn;
  env: Record<string, string>;
  cwd: string;
}

/** Runs `body` with both stand-ins, a temp folder and `prompts` in it as batch.json. */
async function withStandIns(
  prompts: string[],
  fal: Parameters<typeof startFalStandIn>[0],
  body: (s: StandIns) => Promise<void>,
): Promise<void> {
  const falServer = await startFalStandIn({ key: FAL_KEY, ...fal });
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  const cwd = await Deno.makeTempDir({ prefix: "retake-scripts-" });
  try {
    await Deno.writeTextFile(
      `${cwd}/batch.json`,
      JSON.stringify({ prompts: prompts.map((prompt, i) => ({ id: `p${i}`, prompt })) }),
    );
    await Deno.writeTextFile(
      `${cwd}/retake.config.json`,
      JSON.stringify({ fal: { pollIntervalMs: 5 }, retry: { minTimeoutMs: 5, maxTimeoutMs: 20 } }),
    );
    await body({
      fal: falServer,
      gemini,
      cwd,
      env: {
        FAL_KEY,
        GEMINI_API_KEY: GEMINI_KEY,
        FAL_BASE_URL: falServer.url,
        GEMINI_BASE_URL: gemini.url,
        RETAKE_RETRY_TIME_SCALE: "0.001",
      },
    });
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await falServer.close();
    await gemini.close();
  }
}

/** stdout is exactly one JSON document on one line. */
function onlyJson<T>(stdout: string): T {
  const lines = stdout.split("\n");
  assert.equal(lines.length, 2, `one line on stdout: ${stdout}`);
  assert.equal(lines[1], "");
  return JSON.parse(lines[0]!) as T;
}

Deno.test("--json: a run that completes prints one JSON summary on stdout, and nothing else", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-scripts-" });
  try {
    const result = await runCli(["--out", "out", "--json", EXAMPLE], { cwd });
    assert.equal(result.code, 0, result.stderr);
    const summary = onlyJson<JsonSummary>(result.stdout);
    assert.equal(summary.status, "completed");
    assert.equal(summary.exitCode, 0);
    assert.equal(summary.batchDir, "out/example");
    assert.equal(summary.totals.prompts, 7);
    assert.equal(summary.totals.completed, 7);
    for (const prompt of summary.prompts) {
      assert.equal(prompt.status, "completed");
      assert.equal(typeof prompt.bestScore, "number");
      assert.equal(prompt.error, null);
      // The best image is a real file where the summary says.
      assert.ok((await Deno.stat(`${cwd}/${prompt.bestImage}`)).isFile, prompt.bestImage!);
    }
    assert.match(result.stderr, /Running offline/, "notices go to stderr");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("--json: a run with a failed prompt has its error and exit code 1 in the summary", () =>
  withStandIns(["A red barn at noon", "A red barn [fal:422]"], {}, async ({ env, cwd }) => {
    const result = await runCli(["--out", "out", "-n", "1", "--json", "batch.json"], {
      cwd,
      env,
    });
    assert.equal(result.code, 1, result.stderr);
    const summary = onlyJson<JsonSummary>(result.stdout);
    assert.equal(summary.exitCode, 1);
    assert.equal(summary.status, "completed with failures");
    assert.deepEqual(summary.prompts.map((p) => p.status), ["completed", "failed"]);
    const failed = summary.prompts[1]!;
    assert.equal(failed.error?.step, "generate");
    assert.match(failed.error!.message, /422|rejected|invalid/i);
    assert.ok(summary.totals.costUsd > 0, "the completed prompt was paid for");
  }));

Deno.test("--json: an interrupted run still prints one JSON summary, with exit code 130", () =>
  withStandIns(
    Array.from({ length: 12 }, (_, i) => `A harbour number ${i} at dawn`),
    { latencyMs: 1000, concurrency: 2 },
    async ({ fal, env, cwd }) => {
      const child = cliCommand(["--out", "out", "-c", "2", "--json", "batch.json"], { cwd, env })
        .spawn();
      while (fal.calls("submit").length < 2) await new Promise((r) => setTimeout(r, 5));
      child.kill("SIGINT");
      const out = await child.output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 130, stderr);
      const summary = onlyJson<JsonSummary>(new TextDecoder().decode(out.stdout));
      assert.equal(summary.status, "interrupted");
      assert.equal(summary.exitCode, 130);
      assert.equal(summary.prompts.length, 12, "every prompt, run or not");
      assert.ok(
        summary.prompts.some((p) => p.status === "interrupted" || p.status === "not run"),
        JSON.stringify(summary.prompts.map((p) => p.status)),
      );
      assert.equal(
        summary.totals.completed + summary.totals.interrupted + summary.totals.notRun +
          summary.totals.failed,
        12,
      );
      assert.match(stderr, /Saved what was done/);
    },
  ));

Deno.test("--dry-run makes the free checks of keys and models and no paid call; --json prints the plan", () =>
  withStandIns(
    ["A red barn at noon", "A blue lake at dusk"],
    {},
    async ({ fal, gemini, env, cwd }) => {
      const text = await runCli(["--out", "out", "-n", "3", "--dry-run", "batch.json"], {
        cwd,
        env,
      });
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /^Dry run: /);
      assert.match(text.stdout, /2–6 × image \(fal /);
      assert.match(
        text.stdout,
        /cost: \$\d+\.\d{4} if every prompt stops at round 1 … \$\d+\.\d{4}/,
      );

      const json = await runCli(["--out", "out", "-n", "3", "--dry-run", "--json", "batch.json"], {
        cwd,
        env,
      });
      assert.equal(json.code, 0, json.stderr);
      const plan = onlyJson<Plan>(json.stdout);
      assert.equal(plan.dryRun, true);
      assert.equal(plan.prompts, 2);
      assert.equal(plan.rounds, 3);
      assert.deepEqual(plan.providers, { generator: "fal", critic: "gemini", refiner: "gemini" });
      const generate = plan.steps.find((s) => s.step === "generate")!;
      assert.deepEqual([generate.minCalls, generate.maxCalls], [2, 6]);
      const refine = plan.steps.find((s) => s.step === "refine")!;
      assert.deepEqual([refine.minCalls, refine.maxCalls], [0, 4]);
      assert.ok(plan.costUsd.min > 0 && plan.costUsd.max > plan.costUsd.min, JSON.stringify(plan));
      const each = (step: string) => plan.steps.find((s) => s.step === step)?.eachUsd ?? 0;
      const min = 2 * (each("generate") + each("critique") + each("brief"));
      assert.ok(Math.abs(plan.costUsd.min - min) < 1e-6, `${plan.costUsd.min} vs ${min}`);

      // The stand-ins saw the checks a run makes at start, and nothing that is paid for.
      const kinds = new Set(fal.requests.map((r) => r.kind));
      assert.ok(kinds.size > 0, "the fal key and model were checked");
      assert.deepEqual([...kinds].filter((k) => k !== "models" && k !== "pricing"), []);
      assert.equal(fal.calls("submit").length, 0);
      assert.equal(gemini.requests.length, 0, "no Gemini call that is paid for");
      assert.ok(gemini.modelGets.length > 0, "the Gemini key and model were checked");
      await assert.rejects(Deno.stat(`${cwd}/out`), Deno.errors.NotFound, "nothing written");
    },
  ));

Deno.test("--dry-run finds a bad key with the free checks: exit 3, and --json says so on stdout", () =>
  withStandIns(["A red barn at noon"], {}, async ({ fal, gemini, env, cwd }) => {
    const result = await runCli(["--out", "out", "--dry-run", "--json", "batch.json"], {
      cwd,
      env: { ...env, FAL_KEY: "not-the-key-0000" },
    });
    assert.equal(result.code, 3, result.stderr);
    const error = onlyJson<{ status: string; exitCode: number; error: string }>(result.stdout);
    assert.equal(error.status, "error");
    assert.equal(error.exitCode, 3);
    assert.match(result.stderr, /^error: /m);
    assert.ok(
      !result.stdout.includes("not-the-key-0000") && !result.stderr.includes("not-the-key"),
    );
    assert.equal(fal.calls("submit").length + gemini.requests.length, 0);
  }));

Deno.test("--json: a usage error is a JSON document on stdout too, with exit code 2", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-scripts-" });
  try {
    const result = await runCli(["--json", "--iterations", "0", EXAMPLE], { cwd });
    assert.equal(result.code, 2, result.stderr);
    assert.deepEqual(onlyJson(result.stdout), {
      status: "error",
      exitCode: 2,
      error: "Cannot use --iterations 0: expected a whole number from 1 to 20",
    });
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
