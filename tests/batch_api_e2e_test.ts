/**
 * `--batch-api` end to end: the real CLI, the real Gemini SDK, the batch stand-in. A Gemini-only
 * batch makes the same files as the interactive run at half its cost; Ctrl-C leaves the job
 * running and says so, a later run collects it, `--cancel-batch-jobs` cancels it; an expired job
 * and failed lines are recorded and recovered.
 */
import assert from "node:assert/strict";
import type { PromptRecord } from "../src/output/record.ts";
import {
  batchPrompts as prompts,
  interactiveThenBatch,
  readLedger,
  sameFilesAtHalfPrice,
} from "./batch_api_helpers.ts";
import { cliCommand, runCli } from "./cli.ts";
import {
  type BatchEvent,
  type GeminiBatchStandIn,
  startGeminiBatchStandIn,
} from "./gemini_batch_standin.ts";

const KEY = "AQ.Ab8RN6-batch-e2e-key";
const RUN = ["--generator", "gemini", "--critic", "gemini", "--model", "nano-banana-2"];

async function setup(
  standIn: GeminiBatchStandIn,
  promptText: string,
  config: Record<string, unknown> = {},
) {
  const cwd = await Deno.makeTempDir({ prefix: "retake-batch-e2e-" });
  await Deno.writeTextFile(`${cwd}/prompts.json`, promptText);
  await Deno.writeTextFile(
    `${cwd}/retake.config.json`,
    JSON.stringify({ batchPollMs: 20, batchGatherMs: 500, ...config }),
  );
  const env = { GEMINI_API_KEY: KEY, GEMINI_BASE_URL: standIn.url };
  return { cwd, env };
}

function nextEvent(
  standIn: GeminiBatchStandIn,
  matches: (event: BatchEvent) => boolean,
): Promise<BatchEvent> {
  return new Promise((resolve) => {
    const stop = standIn.onEvent((event) => {
      if (!matches(event)) return;
      stop();
      resolve(event);
    });
  });
}

/** Every request key sent in more than one job whose earlier job answered it. */
function sentTwice(standIn: GeminiBatchStandIn): string[] {
  const answered = new Set<string>();
  const twice: string[] = [];
  for (const job of standIn.jobs) {
    for (const line of job.lines) {
      if (answered.has(line.key!)) twice.push(line.key!);
      if (job.state === "BATCH_STATE_SUCCEEDED" && line.outcome === "ok") answered.add(line.key!);
    }
  }
  return twice;
}

Deno.test("retake --batch-api with Gemini alone makes the same files as the interactive run at half its cost, and says so everywhere alike", async () => {
  const standIn = await startGeminiBatchStandIn({ key: KEY });
  const { cwd, env } = await setup(standIn, prompts(12));
  try {
    const base = [...RUN, "-n", "3", "--size", "512x512", "prompts.json"];
    const batch = await interactiveThenBatch(base, {
      cwd,
      env,
      key: KEY,
      counts: { requests: () => standIn.gemini.requests.length, jobs: () => standIn.jobs.length },
    });
    assert.deepEqual(sentTwice(standIn), []);

    const records = await sameFilesAtHalfPrice(
      `${cwd}/live/prompts`,
      `${cwd}/batched/prompts`,
      batch.stdout,
    );
    for (const record of records) {
      const steps = [
        record.briefStep!,
        ...record.iterations.flatMap((it) => Object.values(it.steps)),
      ];
      assert.ok(steps.every((s) => s.batch === true), `${record.id}: every step in a job`);
    }
    const jobs = readLedger(`${cwd}/batched/prompts`);
    assert.ok(jobs.every((j) => j.state === "JOB_STATE_SUCCEEDED" && j.collected));
    // One wave per step of a round, a job per wave (a slow machine may split a wave in two).
    assert.ok(jobs.length >= 9 && jobs.length <= 18, `${jobs.length} jobs`);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await standIn.close();
  }
});

Deno.test("Ctrl-C leaves the batch job running and says so; the next run collects it without a second job; --cancel-batch-jobs cancels one", async () => {
  const standIn = await startGeminiBatchStandIn({ key: KEY });
  const { cwd, env } = await setup(standIn, prompts(3));
  try {
    standIn.hold();
    const args = ["--out", "out", "--batch-api", ...RUN, "-n", "2", "prompts.json"];
    const child = cliCommand(args, { cwd, env }).spawn();
    await nextEvent(standIn, (e) => e.type === "get");
    child.kill("SIGINT");
    const first = await child.output();
    const stderr = new TextDecoder().decode(first.stderr);
    assert.equal(first.code, 130, stderr);
    const job = standIn.jobs[0]!;
    assert.match(stderr, new RegExp(`${job.name}.*keeps running`));
    assert.match(stderr, /--cancel-batch-jobs/);
    assert.equal(job.state, "BATCH_STATE_PENDING", "retake did not cancel it");

    standIn.release();
    const second = await runCli(args, { cwd, env });
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(sentTwice(standIn), []);
    assert.equal(
      standIn.jobs.filter((j) => j.model === job.model && j.lines[0]!.key === job.lines[0]!.key)
        .length,
      1,
    );

    // Another batch, interrupted, then cancelled.
    standIn.hold();
    const again = ["--out", "out", "--name", "other", "--batch-api", ...RUN, "prompts.json"];
    const third = cliCommand(again, { cwd, env }).spawn();
    await nextEvent(standIn, (e) => e.type === "get");
    third.kill("SIGINT");
    await third.output();
    const pending = standIn.jobs.at(-1)!;
    const cancel = await runCli([...again, "--cancel-batch-jobs"], { cwd, env });
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, new RegExp(`Cancelled gemini batch job ${pending.name}`));
    assert.equal(pending.state, "BATCH_STATE_CANCELLED");
    const none = await runCli([...again, "--cancel-batch-jobs"], { cwd, env });
    assert.match(none.stdout, /nothing to cancel/);
    standIn.release();
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await standIn.close();
  }
});

Deno.test("an expired job and failed lines are recorded in the batch folder and sent again; every prompt completes", async () => {
  const standIn = await startGeminiBatchStandIn({ key: KEY });
  // Every request of the last prompt fails once in its job.
  const { cwd, env } = await setup(
    standIn,
    prompts(4, (i) => (i === 3 ? " [batch:fail-once]" : "")),
  );
  try {
    standIn.expireNext();
    const result = await runCli(
      ["--out", "out", "--batch-api", ...RUN, "-n", "2", "prompts.json"],
      { cwd, env },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /expired/);
    const dir = `${cwd}/out/prompts`;
    const jobs = readLedger(dir);
    assert.equal(jobs[0]!.state, "JOB_STATE_EXPIRED");
    assert.ok(jobs.some((j) => Object.keys(j.failed ?? {}).length > 0), "failed lines recorded");
    for (const id of ["p000", "p001", "p002", "p003"]) {
      const record: PromptRecord = JSON.parse(
        await Deno.readTextFile(`${dir}/${id}/metadata.json`),
      );
      assert.equal(record.status, "completed", `${id}: ${record.error?.message}`);
      const steps = record.iterations.flatMap((it) => Object.values(it.steps));
      // The few lines that failed were sent again at once, at the full price.
      assert.equal(steps.every((s) => s.batch === true), id !== "p003", id);
    }
    assert.deepEqual(sentTwice(standIn), []);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await standIn.close();
  }
});
