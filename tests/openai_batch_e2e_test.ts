/**
 * `--batch-api` with the OpenAI critic and refiner, end to end: the real CLI, the real `openai`
 * SDK, offline images, the OpenAI batch stand-in (`openai.batchApi` says the stand-in runs
 * OpenAI's Batch API, as api.openai.com does). The same files as the interactive run at half its
 * cost, each request answered once, in as few batches as the rounds allow; Ctrl-C and `kill -9`
 * leave the batch, and the next run collects it without a second one; another server: at once.
 */
import assert from "node:assert/strict";
import {
  batchPrompts as prompts,
  interactiveThenBatch,
  readLedger,
  sameFilesAtHalfPrice,
} from "./batch_api_helpers.ts";
import { cliCommand, runCli } from "./cli.ts";
import { type OpenAIBatchStandIn, startOpenAIBatchStandIn } from "./openai_batch_standin.ts";

const KEY = "sk-test-openai-batch-e2e-3f9a1c7b";
const RUN = ["--generator", "local", "--critic", "openai", "--critic-model", "gpt-5.4-mini"];

async function setup(standIn: OpenAIBatchStandIn, promptText: string, batchServer = true) {
  const cwd = await Deno.makeTempDir({ prefix: "retake-openai-batch-e2e-" });
  await Deno.writeTextFile(`${cwd}/prompts.json`, promptText);
  await Deno.writeTextFile(
    `${cwd}/retake.config.json`,
    JSON.stringify({
      batchPollMs: 20,
      batchGatherMs: 500,
      ...(batchServer && { openai: { batchApi: true } }),
    }),
  );
  const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: standIn.url };
  return { cwd, env };
}

function nextEvent(standIn: OpenAIBatchStandIn, type: string): Promise<void> {
  return new Promise((resolve) => {
    const stop = standIn.onEvent((event) => {
      if (event.type !== type) return;
      stop();
      resolve();
    });
  });
}

/** Every request sent in a batch after an earlier batch had answered it. */
function sentTwice(standIn: OpenAIBatchStandIn): string[] {
  const answered = new Set<string>();
  const twice: string[] = [];
  for (const batch of standIn.batches) {
    for (const id of batch.customIds) if (answered.has(id)) twice.push(id);
    if (batch.status === "completed") { for (const id of batch.customIds) answered.add(id); }
  }
  return twice;
}

const creates = (standIn: OpenAIBatchStandIn) =>
  standIn.events.filter((e) => e.type === "create").length;

Deno.test("retake --batch-api with the OpenAI critic makes the same files as the interactive run at half its cost, each request once, in one batch per wave", async () => {
  const standIn = await startOpenAIBatchStandIn({ key: KEY });
  const { cwd, env } = await setup(standIn, prompts(8));
  try {
    const base = [...RUN, "-n", "3", "--size", "256x256", "prompts.json"];
    const batch = await interactiveThenBatch(base, {
      cwd,
      env,
      key: KEY,
      counts: { requests: () => standIn.chat.requests.length, jobs: () => creates(standIn) },
    });
    assert.deepEqual(sentTwice(standIn), []);

    const records = await sameFilesAtHalfPrice(
      `${cwd}/live/prompts`,
      `${cwd}/batched/prompts`,
      batch.stdout,
    );
    let waves = 0;
    for (const record of records) {
      const steps = [
        record.briefStep!,
        ...record.iterations.flatMap((it) => [it.steps.critique, it.steps.refine]),
      ].filter((s) => s !== undefined);
      waves = Math.max(waves, steps.length);
      assert.ok(steps.every((s) => s.batch === true), `${record.id}: every OpenAI step in a batch`);
      for (const it of record.iterations) assert.equal(it.steps.generate?.batch, undefined);
    }
    const jobs = readLedger(`${cwd}/batched/prompts`);
    assert.ok(jobs.every((j) => j.provider === "openai" && j.state === "JOB_STATE_SUCCEEDED"));
    assert.ok(jobs.every((j) => j.collected));
    // One batch per OpenAI step of a round (the brief, each critique, each refinement) is the
    // least there can be; a slow machine may split a wave in two.
    assert.equal(waves, 6, "brief, 3 critiques, 2 refinements");
    assert.ok(creates(standIn) >= waves && creates(standIn) <= 2 * waves, `${creates(standIn)}`);
    assert.equal(creates(standIn), jobs.length);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await standIn.close();
  }
});

Deno.test("OpenAI batches: Ctrl-C leaves the batch running and says so, kill -9 as it is created leaves it too; the next run collects it without a second batch", async () => {
  const standIn = await startOpenAIBatchStandIn({ key: KEY });
  const { cwd, env } = await setup(standIn, prompts(3));
  try {
    standIn.hold();
    const args = ["--out", "out", "--batch-api", ...RUN, "-n", "2", "prompts.json"];
    const child = cliCommand(args, { cwd, env }).spawn();
    await nextEvent(standIn, "get");
    child.kill("SIGINT");
    const first = await child.output();
    const stderr = new TextDecoder().decode(first.stderr);
    assert.equal(first.code, 130, stderr);
    const batch = standIn.batches[0]!;
    assert.match(stderr, new RegExp(`${batch.id}.*keeps running`));
    assert.match(stderr, /--cancel-batch-jobs/);
    assert.equal(batch.status, "validating", "retake did not cancel it");
    assert.equal(creates(standIn), 1);

    // Killed the moment another batch's first batch is being created: it may never have heard
    // its id.
    standIn.release();
    await Deno.writeTextFile(
      `${cwd}/other.json`,
      prompts(2).replaceAll("number", "other number"),
    );
    const again = ["--out", "out", "--batch-api", ...RUN, "other.json"];
    const killed = cliCommand(again, { cwd, env }).spawn();
    await nextEvent(standIn, "create");
    standIn.hold();
    killed.kill("SIGKILL");
    await killed.output();
    const made = creates(standIn);
    standIn.release();

    const second = await runCli(args, { cwd, env });
    assert.equal(second.code, 0, second.stderr);
    const third = await runCli(again, { cwd, env });
    assert.equal(third.code, 0, third.stderr);
    assert.deepEqual(sentTwice(standIn), []);
    // Neither run sent a request of the batches the interrupted runs left in a new one.
    const left = new Set(standIn.batches.slice(0, made).flatMap((b) => b.customIds));
    const resent = standIn.batches.slice(made).flatMap((b) => b.customIds).filter((id) =>
      left.has(id)
    );
    assert.deepEqual(resent, [], "no second batch for the same requests");
    for (const dir of ["out/prompts", "out/other"]) {
      const jobs = readLedger(`${cwd}/${dir}`);
      assert.ok(jobs.every((j) => j.state === "JOB_STATE_SUCCEEDED"), dir);
    }
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await standIn.close();
  }
});

Deno.test("--batch-api with an OpenAI-compatible server other than OpenAI: its calls go at once, and the log says so once", async () => {
  const standIn = await startOpenAIBatchStandIn({ key: KEY });
  const { cwd, env } = await setup(standIn, prompts(2), false);
  try {
    const result = await runCli(
      ["--out", "out", "--batch-api", ...RUN, "-n", "2", "prompts.json"],
      { cwd, env },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(creates(standIn), 0);
    assert.ok(standIn.chat.requests.length > 0);
    const said = result.stderr.match(/Batch API runs at api\.openai\.com only/g) ?? [];
    assert.equal(said.length, 1, result.stderr);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await standIn.close();
  }
});
