/**
 * `retake eval` from the command line: offline on the example prompts, and against the fal,
 * Gemini and OpenAI-compatible stand-ins (fal draws, Gemini is the loop's critic, the
 * OpenAI-compatible server judges), every paid call counted where it arrives.
 */
import assert from "node:assert/strict";
import type { PromptRecord } from "../src/output/record.ts";
import type { EvalReport } from "../src/eval/report.ts";
import { EXAMPLE, runCli } from "./cli.ts";
import { type FalStandIn, startFalStandIn } from "./fal_standin.ts";
import { type GeminiStandIn, startGeminiStandIn } from "./gemini_standin.ts";
import { type OpenAIStandIn, startOpenAIStandIn } from "./openai_standin.ts";

const STRATEGIES = ["single", "best-of-n", "refine"] as const;

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(path)) as T;
}

/** Every prompt's record in one strategy's folder, by prompt id. */
async function records(dir: string): Promise<Map<string, PromptRecord>> {
  const found = new Map<string, PromptRecord>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    const record = await readJson<PromptRecord>(`${dir}/${entry.name}/metadata.json`);
    found.set(record.id, record);
  }
  return found;
}

/** Every image file under `dir` with its inode and modification time. */
async function images(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const walk = async (at: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = `${at}/${entry.name}`;
      if (entry.isDirectory && entry.name !== "_thumbs") await walk(path);
      else if (/^iteration-\d+\.(png|jpg)$/.test(entry.name)) {
        const info = await Deno.stat(path);
        found.set(path, `${info.ino}:${info.mtime?.getTime()}`);
      }
    }
  };
  await walk(dir);
  return found;
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

Deno.test("retake eval runs single, best-of-n and refine offline; eval.json agrees with their folders; a rerun makes nothing new", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-eval-" });
  try {
    const args = ["eval", "--offline", "--out", "out", EXAMPLE, "--rounds", "2"];
    const result = await runCli(args, { cwd });
    assert.equal(result.code, 0, result.stderr);
    const root = `${cwd}/out/example`;
    const report = await readJson<EvalReport>(`${root}/eval.json`);
    assert.deepEqual(Object.keys(report.strategies), [...STRATEGIES]);
    assert.equal(report.offline, true);
    assert.match(report.caveat!, /these numbers show the harness works, not that refining pays/);
    assert.equal(`${report.judge.provider}:${report.judge.model}`, "local:local-metrics-v1");
    assert.equal(report.judge.independent, false);
    // Offline every price is 0: best-of-n draws as many images as refine's rounds.
    assert.equal(report.equalSpend.rule, "equal-images");
    assert.equal(report.equalSpend.bestOfN, 2);

    const expectedImages = { single: 1, "best-of-n": 2, refine: 2 };
    for (const name of STRATEGIES) {
      const summary = report.strategies[name]!;
      const byId = await records(`${root}/eval/${name}`);
      assert.equal(byId.size, 7, name);
      const all = [...byId.values()];
      assert.ok(all.every((r) => r.status === "completed"), name);
      const counts = all.map((r) => r.iterations.filter((it) => it.image).length);
      if (name === "refine") {
        // The loop may stop early (target, plateau, converged), never go past its rounds.
        assert.ok(counts.every((n) => n >= 1 && n <= 2), `${name}: ${counts}`);
      } else {
        assert.deepEqual(counts, all.map(() => expectedImages[name]), name);
      }
      assert.equal(summary.iterations, expectedImages[name]);
      assert.equal(summary.imagesPerPrompt, Math.round(mean(counts) * 100) / 100, name);
      assert.equal(summary.completed, 7);
      assert.equal(summary.judged, 7);
      assert.equal(
        summary.totalCostUsd,
        Math.round(all.reduce((s, r) => s + r.costUsd, 0) * 1e6) / 1e6,
      );
      assert.equal(summary.costPerPromptUsd, 0);
      assert.equal(
        summary.meanCriticScore,
        Math.round(mean(all.map((r) => r.bestScore!)) * 100) / 100,
        name,
      );
      // The judge's score of every final is in its cache, and in the report.
      const scores: number[] = [];
      for (const line of report.prompts) {
        const record = byId.get(line.id)!;
        const cached = await readJson<{ critique: { score: number } }>(
          `${root}/eval/judge/${name}/${record.folder}.json`,
        );
        assert.equal(line[name]!.judgeScore, cached.critique.score, `${name}/${line.id}`);
        scores.push(cached.critique.score);
      }
      assert.equal(summary.meanJudgeScore, Math.round(mean(scores) * 100) / 100, name);
    }
    // Best-of-n samples: every image from the original prompt, each with its own seed.
    for (const record of (await records(`${root}/eval/best-of-n`)).values()) {
      assert.ok(record.iterations.every((it) => it.prompt === record.prompt), record.id);
      assert.equal(new Set(record.iterations.map((it) => it.seed)).size, 2, record.id);
    }

    const c = report.comparison.refineVsBestOfN!;
    assert.equal(c.prompts, 7);
    assert.equal(c.wins + c.ties + c.losses, 7);
    assert.equal(c.winRate, Math.round((c.wins + c.ties / 2) / 7 * 1e4) / 1e4);
    assert.ok(c.ci95![0] <= c.winRate! && c.winRate! <= c.ci95![1]);
    const won = report.prompts.filter((p) => p.refine!.judgeScore! > p["best-of-n"]!.judgeScore!);
    assert.equal(won.length, c.wins);

    const html = await Deno.readTextFile(`${root}/eval.html`);
    assert.match(html, /the harness works, not that refining pays/);
    assert.match(result.stdout, /refine vs best-of-n: win rate/);

    // Again: every strategy resumes as complete, every verdict comes from the cache.
    const before = await images(`${root}/eval`);
    const startedAt = new Map(
      [...(await records(`${root}/eval/refine`)).values()].map((r) => [r.id, r.startedAt]),
    );
    const again = await runCli(args, { cwd });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await images(`${root}/eval`), before, "no image made or rewritten");
    for (const r of (await records(`${root}/eval/refine`)).values()) {
      assert.equal(r.startedAt, startedAt.get(r.id), r.id);
    }
    const rerun = await readJson<EvalReport>(`${root}/eval.json`);
    assert.equal(rerun.judge.judged, 0);
    assert.equal(rerun.judge.cached, 21);
    assert.deepEqual(rerun.comparison, report.comparison);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("retake eval --help prints eval's usage", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-eval-help-" });
  try {
    const result = await runCli(["eval", "--help"], { cwd });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^retake eval/);
    assert.match(result.stdout, /--strategies A,B,\.\.\./);
    assert.match(result.stdout, /--judge PROVIDER\[:MODEL\]/);
    assert.match(result.stdout, /--rounds N/);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(cwd)), []);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("retake eval refuses bad input with exit 2 and writes nothing", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-eval-bad-" });
  try {
    const cases: Array<[string[], RegExp]> = [
      [["--rounds", "1"], /'--rounds' must be a whole number from 2 to 20: current value is '1'/],
      [["--strategies", "single,best-of-3"], /'best-of-3' is unknown: choose from single/],
      [["--judge", "gemini"], /Cannot use Gemini as the judge with --offline/],
      [["--judge", "nobody"], /no provider of that name critiques images/],
      [["--watch"], /Cannot run an eval with --watch/],
      [["--size", "12x12"], /Cannot use --size 12x12: expected 'width' to be a whole number/],
    ];
    for (const [extra, error] of cases) {
      const result = await runCli(["eval", "--offline", "--out", "out", ...extra, EXAMPLE], {
        cwd,
      });
      assert.equal(result.code, 2, `${extra}: ${result.stderr}`);
      assert.match(result.stderr, error, `${extra}`);
    }
    const missing = await runCli(["eval", "--offline", "--out", "out", "nope.json"], { cwd });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /nope\.json/);
    await assert.rejects(Deno.stat(`${cwd}/out`), Deno.errors.NotFound, "nothing written");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

const FAL_KEY = "fal-eval-key-1a2b3c:4d5e6f7a8b9c";
const GEMINI_KEY = "AIzaEvalGeminiKey-5e6f7a8b";
const OPENAI_KEY = "sk-eval-openai-key-9c8b7a6d";

interface StandIns {
  fal: FalStandIn;
  gemini: GeminiStandIn;
  openai: OpenAIStandIn;
  cwd: string;
  env: Record<string, string>;
}

async function withStandIns(body: (ctx: StandIns) => Promise<void>): Promise<void> {
  const fal = await startFalStandIn({ key: FAL_KEY });
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  const openai = await startOpenAIStandIn({ key: OPENAI_KEY });
  const cwd = await Deno.makeTempDir({ prefix: "retake-eval-standins-" });
  try {
    await Deno.writeTextFile(
      `${cwd}/batch.json`,
      JSON.stringify({
        prompts: [
          { id: "p1", prompt: "A lighthouse on a cliff at night" },
          { id: "p2", prompt: "Two red boats in a quiet harbour at dawn" },
        ],
      }),
    );
    await Deno.writeTextFile(
      `${cwd}/retake.config.json`,
      JSON.stringify({ fal: { pollIntervalMs: 5 }, retry: { minTimeoutMs: 5, maxTimeoutMs: 20 } }),
    );
    const env = {
      FAL_KEY,
      GEMINI_API_KEY: GEMINI_KEY,
      OPENAI_API_KEY: OPENAI_KEY,
      FAL_BASE_URL: fal.url,
      GEMINI_BASE_URL: gemini.url,
      OPENAI_BASE_URL: openai.url,
      RETAKE_RETRY_TIME_SCALE: "0.001",
    };
    await body({ fal, gemini, openai, cwd, env });
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await fal.close();
    await gemini.close();
    await openai.close();
  }
}

const critiques = (gemini: GeminiStandIn) =>
  gemini.requests.filter((r) => r.kind === "critique").length;

Deno.test("retake eval against the stand-ins: equal estimated spend, another provider judges, a rerun pays nothing", async () => {
  await withStandIns(async ({ fal, gemini, openai, cwd, env }) => {
    const args = ["eval", "--out", "out", "--rounds", "3", "--judge", "openai", "batch.json"];
    const result = await runCli(args, { cwd, env });
    assert.equal(result.code, 0, result.stderr);
    const report = await readJson<EvalReport>(`${cwd}/out/batch/eval.json`);
    assert.equal(report.offline, false);
    assert.equal(report.caveat, null);
    assert.equal(report.judge.provider, "openai");
    assert.equal(report.judge.independent, true);
    assert.match(report.judge.loopCritic, /^gemini:/);

    // N from the price tables: refine's 3 images, 3 critiques and 2 refinements.
    const { generate, critique, refine } = report.equalSpend.prices;
    assert.equal(report.equalSpend.rule, "equal-estimated-spend");
    assert.ok(generate! > 0 && critique! > 0 && refine! > 0);
    const n = Math.round((3 * (generate! + critique!) + 2 * refine!) / (generate! + critique!));
    assert.equal(report.equalSpend.bestOfN, n);

    // Every image the strategies need, once; the loop's critic saw each once; the judge saw
    // each strategy's final image of each prompt once.
    let made = 0;
    for (const name of STRATEGIES) {
      for (const record of (await records(`${cwd}/out/batch/eval/${name}`)).values()) {
        const count = record.iterations.filter((it) => it.image).length;
        if (name === "single") assert.equal(count, 1);
        if (name === "best-of-n") assert.equal(count, n, "independent samples never plateau");
        if (name === "refine") assert.ok(count >= 1 && count <= 3);
        made += count;
      }
    }
    assert.equal(fal.stats().submitted, made);
    assert.equal(critiques(gemini), fal.stats().submitted);
    assert.equal(openai.requests.length, 3 * 2);
    assert.ok(openai.requests.every((r) => r.hasImage && r.keyValid));
    assert.ok(
      openai.requests.every((r) => /A lighthouse on a cliff at night|Two red boats/.test(r.prompt)),
      "the judge sees the original prompt",
    );
    for (const name of STRATEGIES) {
      const byId = await records(`${cwd}/out/batch/eval/${name}`);
      const total = [...byId.values()].reduce((s, r) => s + r.costUsd, 0);
      assert.equal(report.strategies[name]!.totalCostUsd, Math.round(total * 1e6) / 1e6, name);
      assert.ok(total > 0, name);
    }
    assert.ok(report.judge.costUsd > 0);
    const everything = result.stdout + result.stderr + await Deno.readTextFile(
      `${cwd}/out/batch/eval.json`,
    );
    for (const key of [FAL_KEY, GEMINI_KEY, OPENAI_KEY]) assert.ok(!everything.includes(key));

    const calls = [fal.stats().submitted, gemini.requests.length, openai.requests.length];
    const again = await runCli(args, { cwd, env });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(
      [fal.stats().submitted, gemini.requests.length, openai.requests.length],
      calls,
      "a rerun makes no paid call",
    );
    const rerun = await readJson<EvalReport>(`${cwd}/out/batch/eval.json`);
    assert.equal(rerun.judge.thisRunCostUsd, 0);
    assert.equal(rerun.judge.cached, 6);
  });
});

Deno.test("retake eval keeps the whole eval, judge included, within --max-cost", async () => {
  await withStandIns(async ({ fal, gemini, openai, cwd, env }) => {
    const none = await runCli(["eval", "--out", "out", "--max-cost", "0", "batch.json"], {
      cwd,
      env,
    });
    assert.equal(none.code, 4, none.stderr);
    assert.deepEqual([fal.stats().submitted, gemini.requests.length, openai.requests.length], [
      0,
      0,
      0,
    ]);
    const empty = await readJson<EvalReport>(`${cwd}/out/batch/eval.json`);
    assert.equal(empty.strategies.refine!.completed, 0);

    // The judge's share is set aside first: $0.02 more leaves the strategies $0.02, which buys
    // some of their images but not all, and the judge can still judge every one of them.
    const reserve = empty.budget.judgeReserveUsd;
    assert.ok(reserve > 0);
    const limit = reserve + 0.02;
    const some = await runCli(
      ["eval", "--out", "out", "--name", "capped", "--max-cost", String(limit), "batch.json"],
      { cwd, env },
    );
    assert.equal(some.code, 4, some.stderr);
    const report = await readJson<EvalReport>(`${cwd}/out/capped/eval.json`);
    const strategies = STRATEGIES.reduce((s, name) => s + report.strategies[name]!.totalCostUsd, 0);
    assert.ok(strategies > 0, "the budget bought something");
    assert.ok(strategies <= 0.02 + 1e-9, `the strategies spent $${strategies} of $0.02`);
    assert.ok(strategies + report.judge.costUsd <= limit + 1e-9);
    assert.equal(report.budget.strategiesUsd, Math.round(strategies * 1e6) / 1e6);
    const finals = STRATEGIES.reduce((n, name) => n + report.strategies[name]!.completed, 0);
    assert.ok(finals < 6, "not everything fits");
    assert.equal(report.judge.judged, finals, "every final image is judged");
    assert.equal(openai.requests.length, finals);
  });
});
