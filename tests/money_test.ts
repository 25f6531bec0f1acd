/**
 * retake spends exactly what the user allows: the real CLI against the stand-ins, with every
 * paid call counted where it arrives.
 */
import assert from "node:assert/strict";
import type { Plan } from "../src/batch/dry_run.ts";
import type { PromptRecord } from "../src/output/record.ts";
import { cliCommand, runCli } from "./cli.ts";
import { type FalStandIn, startFalStandIn } from "./fal_standin.ts";
import { type GeminiStandIn, startGeminiStandIn } from "./gemini_standin.ts";

const FAL_KEY = "money-fal-key-77cc";
const GEMINI_KEY = "money-gemini-key-88dd";

interface Servers {
  fal: FalStandIn;
  gemini: GeminiStandIn;
  env: Record<string, string>;
  close(): Promise<void>;
}

async function servers(fal: Parameters<typeof startFalStandIn>[0] = {}): Promise<Servers> {
  const falServer = await startFalStandIn({ key: FAL_KEY, ...fal });
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  return {
    fal: falServer,
    gemini,
    env: {
      FAL_KEY,
      GEMINI_API_KEY: GEMINI_KEY,
      FAL_BASE_URL: falServer.url,
      GEMINI_BASE_URL: gemini.url,
      RETAKE_RETRY_TIME_SCALE: "0.001",
    },
    close: async () => {
      await falServer.close();
      await gemini.close();
    },
  };
}

/** A temp folder with `batch.json` of `n` prompts and a config with quick polling. */
async function setup(n: number): Promise<string> {
  const cwd = await Deno.makeTempDir({ prefix: "retake-money-" });
  const prompts = Array.from({ length: n }, (_, i) => ({
    id: `p${i}`,
    prompt: `A harbour number ${i} at dawn with fishing boats`,
  }));
  await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify({ prompts }));
  await Deno.writeTextFile(
    `${cwd}/retake.config.json`,
    JSON.stringify({ fal: { pollIntervalMs: 5 }, retry: { minTimeoutMs: 5, maxTimeoutMs: 20 } }),
  );
  return cwd;
}

const submits = (s: Servers) => s.fal.calls("submit").length;
const geminiCalls = (s: Servers) => s.gemini.requests.length;

async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setTimeout(r, 2));
}

async function records(dir: string): Promise<PromptRecord[]> {
  const out: PromptRecord[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    try {
      out.push(JSON.parse(await Deno.readTextFile(`${dir}/${entry.name}/metadata.json`)));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return out;
}

/** run.json's batch total, the sum of metadata.json and the summary's total all agree. */
async function assertCostsAgree(dir: string, stdout: string): Promise<number> {
  const run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
  const sum = (await records(dir)).reduce((total, r) => total + r.costUsd, 0);
  assert.ok(
    Math.abs(run.totals.costUsd - sum) < 1e-6,
    `run.json ${run.totals.costUsd}, sum ${sum}`,
  );
  const summary = /\$(\d+\.\d+) this run, \$(\d+\.\d+) batch total/.exec(stdout);
  assert.ok(summary, stdout);
  assert.equal(Number(summary[2]), Number(run.totals.costUsd.toFixed(4)));
  assert.equal(Number(summary[1]), Number(run.totals.thisRunCostUsd.toFixed(4)));
  return sum;
}

function logLines(dir: string): Array<Record<string, unknown>> {
  return Deno.readTextFileSync(`${dir}/log.jsonl`).split("\n").filter(Boolean).map((line) =>
    JSON.parse(line)
  );
}

Deno.test("one Ctrl-C: no paid call starts after it, the calls in flight are saved, exit 130", async () => {
  const s = await servers({ latencyMs: 1500, concurrency: 4 });
  const cwd = await setup(24);
  try {
    const child = cliCommand(["--out", "out", "batch.json"], { cwd, env: s.env }).spawn();
    await until(() => submits(s) >= 4);
    child.kill("SIGINT");
    const out = await child.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 130, stderr);
    assert.doesNotMatch(stderr, /Stopping now/);
    const dir = `${cwd}/out/batch`;
    // In retake's own log, in the order things happened: no call began after the interrupt.
    const lines = logLines(dir);
    const interrupted = lines.findIndex((l) => /^Interrupted by the user/.test(String(l.message)));
    assert.ok(interrupted >= 0, "the interrupt is logged");
    const later = lines.slice(interrupted).filter((l) => /^Calling /.test(String(l.message)));
    assert.deepEqual(later, [], "calls started after the interrupt");
    // Every generation fal accepted was saved.
    const saved = (await records(dir)).reduce((n, r) => n + r.iterations.length, 0);
    assert.equal(saved, submits(s));
    for (const r of await records(dir)) assert.notEqual(r.status, "running");
    const run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
    assert.equal(run.status, "interrupted");
    await assertCostsAgree(dir, new TextDecoder().decode(out.stdout));
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("two signals at once (a terminal's process group) are one Ctrl-C", async () => {
  const s = await servers({ latencyMs: 300, concurrency: 2 });
  const cwd = await setup(6);
  try {
    const child = cliCommand(["--out", "out", "-c", "2", "batch.json"], { cwd, env: s.env })
      .spawn();
    await until(() => submits(s) >= 2);
    child.kill("SIGINT");
    child.kill("SIGINT");
    const out = await child.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 130, stderr);
    assert.match(stderr, /Interrupted: starting nothing new/);
    assert.doesNotMatch(stderr, /Stopping now/);
    const saved = (await records(`${cwd}/out/batch`)).reduce((n, r) => n + r.iterations.length, 0);
    assert.equal(saved, submits(s), "the calls in flight were saved, not cancelled");
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("a second Ctrl-C cancels what is in flight; run.json, the summary and metadata.json agree on the cost", async () => {
  const s = await servers({ latencyMs: 60_000, concurrency: 4 });
  const cwd = await setup(4);
  try {
    const child = cliCommand(["--out", "out", "-c", "4", "batch.json"], { cwd, env: s.env })
      .spawn();
    await until(() => submits(s) >= 4);
    child.kill("SIGINT");
    // The second press, once the first was taken (its message is on stderr).
    const reader = child.stderr.getReader();
    let stderr = "";
    while (!/Interrupted: starting nothing new/.test(stderr)) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += new TextDecoder().decode(value);
    }
    const pressedAt = performance.now();
    await new Promise((r) => setTimeout(r, 600)); // Past the one-press window (500 ms).
    assert.ok(performance.now() - pressedAt >= 500);
    child.kill("SIGINT");
    reader.releaseLock();
    const [status, stdout] = await Promise.all([
      child.status,
      new Response(child.stdout).text(),
      child.stderr.cancel(),
    ]);
    assert.equal(status.code, 130);
    const dir = `${cwd}/out/batch`;
    const cost = await assertCostsAgree(dir, stdout);
    // Four requests fal accepted and this run cancelled: each counted at its estimate.
    assert.ok(cost > 0, "requests fal accepted are not recorded as free");
    for (const r of await records(dir)) assert.equal(r.status, "interrupted");
    const run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
    assert.equal(run.status, "interrupted");
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("a fatal error mid-run: run.json, the summary and metadata.json agree on the cost", async () => {
  const s = await servers();
  const cwd = await setup(6);
  try {
    const first = await runCli(["--out", "out", "-c", "1", "--only", "p0", "batch.json"], {
      cwd,
      env: s.env,
    });
    assert.equal(first.code, 0, first.stderr);
    s.fal.inject("locked", 100);
    const result = await runCli(["--out", "out", "-c", "1", "batch.json"], { cwd, env: s.env });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /refused the account/);
    const cost = await assertCostsAgree(`${cwd}/out/batch`, result.stdout);
    assert.ok(cost > 0);
    assert.match(result.stdout, /\$0\.0000 this run/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("--max-cost: 0 makes no paid call; a budget is never exceeded; a budget stop has exit code 4", async () => {
  const s = await servers();
  const cwd = await setup(6);
  try {
    const zero = await runCli(["--out", "out", "--max-cost", "0", "batch.json"], {
      cwd,
      env: s.env,
    });
    assert.equal(zero.code, 4, zero.stderr);
    assert.match(zero.stderr, /--max-cost/);
    assert.equal(submits(s) + geminiCalls(s), 0, "no paid call at --max-cost 0");
    const run0 = JSON.parse(await Deno.readTextFile(`${cwd}/out/batch/run.json`));
    assert.equal(run0.status, "stopped at the cost budget");

    const limited = await runCli(["--out", "out", "--max-cost", "0.01", "batch.json"], {
      cwd,
      env: s.env,
    });
    assert.equal(limited.code, 4, limited.stderr);
    const run = JSON.parse(await Deno.readTextFile(`${cwd}/out/batch/run.json`));
    assert.ok(run.totals.thisRunCostUsd <= 0.01, `spent ${run.totals.thisRunCostUsd}`);
    // 1024×768 with flux schnell costs $0.003: three images fit in $0.01, never four.
    assert.ok(submits(s) >= 1 && submits(s) <= 3, `${submits(s)} images`);
    await assertCostsAgree(`${cwd}/out/batch`, limited.stdout);

    // Raising the budget resumes, paying only for what is missing.
    const before = submits(s);
    const rest = await runCli(["--out", "out", "batch.json"], { cwd, env: s.env });
    assert.equal(rest.code, 0, rest.stderr);
    assert.equal(submits(s) - before, 12 - before, "every image paid for exactly once");
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("two retakes on one batch folder: the second exits 2 naming the first, nothing is paid twice", async () => {
  const s = await servers({ latencyMs: 20 });
  const cwd = await setup(20);
  try {
    const [a, b] = await Promise.all([
      runCli(["--out", "out", "-q", "batch.json"], { cwd, env: s.env }),
      runCli(["--out", "out", "-q", "batch.json"], { cwd, env: s.env }),
    ]);
    const codes = [a.code, b.code].sort();
    assert.deepEqual(codes, [0, 2], `${a.stderr}\n${b.stderr}`);
    const loser = a.code === 2 ? a : b;
    // The loser may read the lock before the winner has written who it is.
    assert.match(
      loser.stderr,
      /another retake \((?:pid \d+ on [^)]+|a process that has just started)\) is using/,
    );
    assert.equal(submits(s), 40, "20 prompts × 2 images, each paid once");
    for (const line of logLines(`${cwd}/out/batch`)) assert.ok(line.message !== undefined);
    await Deno.stat(`${cwd}/out/batch/.retake.lock`).then(
      () => assert.fail("the lock is released at the end"),
      (error) => assert.ok(error instanceof Deno.errors.NotFound),
    );
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("more rounds on a finished batch continue from the saved ones; nothing is moved aside", async () => {
  const s = await servers();
  const cwd = await setup(3);
  try {
    const two = await runCli(["--out", "out", "-n", "2", "batch.json"], { cwd, env: s.env });
    assert.equal(two.code, 0, two.stderr);
    assert.equal(submits(s), 6);
    const calls = geminiCalls(s);
    const three = await runCli(["--out", "out", "-n", "3", "batch.json"], { cwd, env: s.env });
    assert.equal(three.code, 0, three.stderr);
    // Per prompt: one refinement, one image, one critique more.
    assert.equal(submits(s), 9);
    assert.equal(geminiCalls(s) - calls, 6);
    const dir = `${cwd}/out/batch`;
    for (const r of await records(dir)) {
      assert.equal(r.iterations.length, 3);
      assert.equal(r.status, "completed");
    }
    await Deno.stat(`${dir}/_previous`).then(
      () => assert.fail("nothing moved aside"),
      (error) => assert.ok(error instanceof Deno.errors.NotFound),
    );
    const again = await runCli(["--out", "out", "-n", "2", "batch.json"], { cwd, env: s.env });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(submits(s), 9, "fewer rounds than saved: done");
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("--dry-run calls nothing, writes nothing, and says what it could cost and which price is unknown", async () => {
  const s = await servers();
  const cwd = await setup(3);
  try {
    const known = await runCli(["--out", "out", "--dry-run", "batch.json"], { cwd, env: s.env });
    assert.equal(known.code, 0, known.stderr);
    assert.match(known.stdout, /Dry run: .*no paid call was made and nothing was written/);
    assert.match(known.stdout, /3–6 × image \(fal fal-ai\/flux\/schnell\): \$0\.0030 each/);
    assert.match(known.stdout, /cost: \$\d+\.\d{4} if every prompt stops at round 1 … \$/);
    const unknown = await runCli(
      ["--out", "out", "--dry-run", "--model", "fal-ai/some-new/endpoint", "batch.json"],
      { cwd, env: s.env },
    );
    assert.equal(unknown.code, 0, unknown.stderr);
    assert.match(unknown.stdout, /price unknown/);
    // Only the free checks of keys and models that a run makes at start.
    assert.deepEqual(
      s.fal.requests.filter((r) => r.kind !== "models" && r.kind !== "pricing"),
      [],
      "no paid fal call",
    );
    assert.equal(s.gemini.requests.length, 0, "no paid Gemini call");
    await Deno.stat(`${cwd}/out`).then(
      () => assert.fail("nothing written"),
      (error) => assert.ok(error instanceof Deno.errors.NotFound),
    );
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

/**
 * `--refine edit`, two rounds, flux schnell at 1024×768 ($0.003 a drawing): round 2 is a Kontext
 * edit. The local critic costs nothing, so fal's calls are the whole cost.
 */
const EDIT_ROUND = [
  "--out",
  "out",
  "--size",
  "1024x768",
  "--refine",
  "edit",
  "-n",
  "2",
  "--critic",
  "local",
];

Deno.test("an edit round is priced as its own endpoint: Kontext at $0.04 in metadata.json, run.json and the summary", async () => {
  const s = await servers();
  const cwd = await setup(1);
  try {
    const result = await runCli([...EDIT_ROUND, "batch.json"], { cwd, env: s.env });
    assert.equal(result.code, 0, result.stderr);
    const endpoints = s.fal.calls("submit").map((r) => r.endpoint);
    assert.deepEqual(endpoints, ["fal-ai/flux/schnell", "fal-ai/flux-pro/kontext"]);
    const [record] = await records(`${cwd}/out/batch`);
    const [drawn, edited] = record!.iterations.map((it) => it.steps.generate!);
    assert.equal(drawn!.costUsd, 0.003, "FLUX.1 [schnell]: $0.003 per megapixel");
    assert.equal(edited!.model, "fal-ai/flux-pro/kontext");
    // fal.ai/models/fal-ai/flux-pro/kontext: $0.04 per image.
    assert.equal(edited!.costUsd, 0.04, "the edit at Kontext's price, not the drawing's");
    const total = await assertCostsAgree(`${cwd}/out/batch`, result.stdout);
    assert.equal(total, 0.043, "the batch counts the edit");
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("--max-cost reserves an edit at its own price: a Kontext edit the budget cannot cover is never sent", async () => {
  const s = await servers();
  const cwd = await setup(1);
  try {
    // Round 1's drawing ($0.003) fits in $0.02; a $0.04 edit does not (before, it was reserved
    // at the drawing's $0.003, sent, and the run spent $0.043 of a $0.02 budget).
    const result = await runCli([...EDIT_ROUND, "--max-cost", "0.02", "batch.json"], {
      cwd,
      env: s.env,
    });
    assert.equal(result.code, 4, result.stderr);
    assert.deepEqual(s.fal.calls("submit").map((r) => r.endpoint), ["fal-ai/flux/schnell"]);
    const run = JSON.parse(await Deno.readTextFile(`${cwd}/out/batch/run.json`));
    assert.ok(run.totals.thisRunCostUsd <= 0.02, `spent ${run.totals.thisRunCostUsd}`);
    const refused = logLines(`${cwd}/out/batch`).filter((l) => l.outcome === "budget");
    assert.match(JSON.stringify(refused), /Cannot start a step estimated at \$0\.04 /);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("--dry-run counts the rounds after the first at the dearer of an edit and a redraw", async () => {
  const s = await servers();
  const cwd = await setup(1);
  try {
    const plan = async (...args: string[]) => {
      const result = await runCli(
        [
          "--out",
          "out",
          "--size",
          "1024x768",
          "-n",
          "3",
          "--critic",
          "local",
          "--dry-run",
          "--json",
          ...args,
          "batch.json",
        ],
        { cwd, env: s.env },
      );
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(result.stdout) as Plan;
    };
    const auto = await plan();
    const edit = auto.steps.find((step) => step.step === "edit");
    assert.deepEqual(
      edit && [edit.model, edit.eachUsd, edit.minCalls, edit.maxCalls],
      ["fal-ai/flux-pro/kontext", 0.04, 0, 2],
    );
    // A $0.003 drawing, then two $0.04 Kontext edits at most.
    assert.deepEqual(auto.costUsd, { min: 0.003, max: 0.083 });
    const redraws = await plan("--refine", "regenerate");
    assert.equal(redraws.steps.some((step) => step.step === "edit"), false);
    assert.deepEqual(redraws.costUsd, { min: 0.003, max: 0.009 });
    assert.equal(submits(s), 0);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("the free checks before the first paid call cover the edit endpoints a run may use", async () => {
  // fal's catalogue without FLUX.1 Kontext [pro]: a run that may edit FLUX.1 images cannot.
  const s = await servers({
    endpoints: ["fal-ai/flux/schnell", "fal-ai/flux-2-pro", "fal-ai/flux-2/edit"],
  });
  const cwd = await setup(2);
  try {
    const noKontext = await runCli(["--out", "out", "-n", "2", "batch.json"], { cwd, env: s.env });
    assert.equal(noKontext.code, 3, noKontext.stderr);
    assert.match(noKontext.stderr, /fal-ai\/flux-pro\/kontext.*--refine regenerate/);
    assert.equal(submits(s) + geminiCalls(s), 0, "stopped before any paid call");
    const priced = s.fal.calls("pricing").map((r) => r.query);
    assert.ok(priced.some((q) => q.includes("fal-ai/flux-pro/kontext")), priced.join("\n"));

    // Redrawing only, the edit endpoint does not matter.
    const redraw = await runCli(
      ["--out", "out", "-n", "2", "--refine", "regenerate", "batch.json"],
      {
        cwd,
        env: s.env,
      },
    );
    assert.equal(redraw.code, 0, redraw.stderr);

    // FLUX.2 [pro] has a price; its edit endpoint has none retake could confirm.
    const before = submits(s);
    const unknown = await runCli(
      ["--out", "out2", "--model", "flux-2-pro", "-n", "2", "--max-cost", "1", "batch.json"],
      { cwd, env: s.env },
    );
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /price of fal edit endpoint 'fal-ai\/flux-2\/edit'.* is unknown/);
    assert.equal(submits(s), before, "refused before any paid call");
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});
