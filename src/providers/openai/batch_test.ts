import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import type { ChatCompletion } from "openai/resources/chat/completions";
import { type BatcherOptions, requestKey } from "../../batch_api/batcher.ts";
import { BATCH_API_DIR, type JobEntry } from "../../batch_api/ledger.ts";
import { ProviderError, StopRequested } from "../../errors.ts";
import {
  type OpenAIBatchStandIn,
  startOpenAIBatchStandIn,
} from "../../../tests/openai_batch_standin.ts";
import { ManualClock, waitFor } from "../../../tests/manual_clock.ts";
import { readLedger, settle, withStandInAndDir } from "../../../tests/batch_api_helpers.ts";
import { createOpenAIProviders } from "./openai.ts";
import type { RefineRequest } from "../provider.ts";
import { answeredInBatch, type ChatCall, OpenAIBatcher } from "./batch.ts";

const MINI = "gpt-5.4-mini";
const NANO = "gpt-4o-mini";

const body = (text: string, model = MINI): ChatCall["body"] => ({
  model,
  messages: [
    { role: "system", content: "Rewrite the prompt." },
    { role: "user", content: `Prompt of round 1: ${text}` },
  ],
  max_tokens: 1000,
});

const call = (text: string, model = MINI, signal = new AbortController().signal): ChatCall => ({
  body: body(text, model),
  signal,
});

const sdk = (standIn: OpenAIBatchStandIn) =>
  new OpenAI({ apiKey: standIn.key, baseURL: standIn.url, maxRetries: 0, logLevel: "off" });

interface Session {
  clock: ManualClock;
  batcher: OpenAIBatcher;
}

function session(standIn: OpenAIBatchStandIn, options: BatcherOptions = {}): Session {
  const clock = new ManualClock();
  const client = sdk(standIn);
  const batcher = new OpenAIBatcher({
    client: () => Promise.resolve(client),
    toFile: (bytes, name) => toFile(bytes, name),
    classify: (error, operation) =>
      error instanceof ProviderError || error instanceof StopRequested
        ? error
        : new ProviderError(`OpenAI ${operation} failed: ${(error as Error).message}`, {
          provider: "openai",
          retryable: false,
          ...(typeof (error as { status?: unknown }).status === "number" &&
            { status: (error as { status: number }).status }),
        }),
  }, { clock, pollMs: 30_000, gatherMs: 2_000, ...options });
  return { clock, batcher };
}

const withStandIn = (fn: (standIn: OpenAIBatchStandIn, dir: string) => Promise<void>) =>
  withStandInAndDir(() => startOpenAIBatchStandIn(), "retake-openai-batch-", fn);

const ledger = readLedger;

/** Whether the first batch recorded has its name. */
function named(dir: string): boolean {
  try {
    return ledger(dir)[0]?.name !== undefined;
  } catch {
    return false;
  }
}

const contentOf = (response: ChatCompletion) => response.choices[0]?.message.content;
const creates = (standIn: OpenAIBatchStandIn) =>
  standIn.events.filter((e) => e.type === "create").length;

Deno.test("OpenAIBatcher sends a wave as one batch per model (a JSONL file, metadata.retake_job), recorded before it is created, and answers each call as chat.completions.create would", async () => {
  await withStandIn(async (standIn, dir) => {
    const { clock, batcher } = session(standIn);
    await batcher.open(dir);
    // What the folder said at the moment each batch was created.
    const recorded: Array<JobEntry | undefined> = [];
    standIn.onEvent((event) => {
      if (event.type !== "create") return;
      const batch = standIn.batches.find((b) => b.id === event.id)!;
      recorded.push(ledger(dir).find((e) => e.id === batch.metadata?.retake_job));
    });
    const calls = [
      call("a red fox"),
      call("a blue whale"),
      call("a green tower"),
      call("a red fox", NANO),
      call("a quiet harbour", NANO),
    ];
    const pending = calls.map((c) => batcher.call(c));
    await waitFor(() => batcher.waiting()?.requests === calls.length, "every call to wait");
    const results = await settle(clock, pending);

    assert.deepEqual(
      standIn.batches.map((b) => [b.model, b.customIds.length]).sort(),
      [[NANO, 2], [MINI, 3]],
    );
    assert.equal(standIn.events.filter((e) => e.type === "upload").length, 2, "one file each");
    assert.equal(recorded.length, 2);
    for (const entry of recorded) {
      assert.ok(entry !== undefined, "the batch's keys were on disk before it was created");
      assert.equal(entry.state, "creating");
      assert.equal(entry.name, undefined);
      assert.equal(entry.provider, "openai");
      assert.equal(entry.input, "file");
      assert.ok(entry.inputFile?.startsWith("file_"), "its input file recorded");
    }
    const direct = sdk(standIn);
    for (const [i, result] of results.entries()) {
      assert.equal(result.status, "fulfilled", String((result as PromiseRejectedResult).reason));
      const response = (result as PromiseFulfilledResult<ChatCompletion>).value;
      assert.ok(answeredInBatch(response), "billed at the batch price");
      const alone = await direct.chat.completions.create(calls[i]!.body);
      assert.ok(!answeredInBatch(alone));
      assert.equal(contentOf(response), contentOf(alone), `call ${i} answered as interactively`);
      assert.deepEqual(response.usage, alone.usage);
      // The custom_id is the call's key.
      const key = await requestKey(calls[i]!.body.model, calls[i]!.body as never);
      assert.ok(standIn.batches.some((b) => b.customIds.includes(key)));
    }
    const entries = ledger(dir);
    assert.ok(
      entries.every((e) => e.state === "JOB_STATE_SUCCEEDED" && e.name?.startsWith("batch_")),
    );
    assert.deepEqual(await batcher.close(true), [], "nothing left running");
    assert.ok(ledger(dir).every((e) => e.collected && e.results === undefined));
  });
});

Deno.test("OpenAIBatcher: a stop leaves the batch running; the next session takes its answers without a second batch; a batch a dead run was creating is found by metadata", async () => {
  await withStandIn(async (standIn, dir) => {
    const calls = [call("a fox"), call("a whale"), call("a tower")];
    standIn.hold();
    const first = session(standIn);
    const stop = new AbortController();
    await first.batcher.open(dir, stop.signal);
    const pending = calls.map((c) => first.batcher.call(c));
    await waitFor(() => first.batcher.waiting()?.requests === 3, "every call to wait");
    await first.clock.next();
    await waitFor(() => first.batcher.waiting()?.jobs === 1, "the batch to be recorded");
    await waitFor(() => named(dir), "the batch's name");
    stop.abort();
    for (const result of await Promise.allSettled(pending)) {
      assert.equal(result.status, "rejected");
      assert.ok((result as PromiseRejectedResult).reason instanceof StopRequested);
    }
    const batch = standIn.batches[0]!;
    assert.deepEqual(await first.batcher.close(false), [
      { provider: "openai", name: batch.id, requests: 3 },
    ]);
    assert.equal(batch.status, "validating", "left running");

    // A dead run's record: created at OpenAI, but it never heard the name.
    const entries = ledger(dir);
    entries[0] = { ...entries[0]!, state: "creating" };
    delete entries[0].name;
    await Deno.writeTextFile(
      `${dir}/${BATCH_API_DIR}/jobs.json`,
      JSON.stringify({ version: 1, jobs: entries }),
    );
    standIn.release();
    const second = session(standIn);
    await second.batcher.open(dir);
    assert.equal(ledger(dir)[0]!.name, batch.id, "found by metadata.retake_job");
    const answers = await settle(second.clock, calls.map((c) => second.batcher.call(c)));
    assert.ok(answers.every((a) => a.status === "fulfilled"));
    assert.equal(creates(standIn), 1, "no second batch for the same requests");
    assert.equal(standIn.chat.requests.length, 3, "each request answered once");
    await second.batcher.close(true);
  });
});

Deno.test("OpenAIBatcher: failed lines go in the next batch once; an expired batch keeps what it answered and the rest goes again", async () => {
  await withStandIn(async (standIn, dir) => {
    const { clock, batcher } = session(standIn, { fewRetries: 1 });
    await batcher.open(dir);
    const flaky = ["one", "two", "three"].map((t) => call(`${t} [batch:fail-once]`));
    const results = await settle(clock, [...flaky, call("fine")].map((c) => batcher.call(c)));
    assert.ok(results.every((r) => r.status === "fulfilled"));
    assert.ok(
      results.every((r) => answeredInBatch((r as PromiseFulfilledResult<ChatCompletion>).value)),
    );
    assert.deepEqual(standIn.batches.map((b) => b.customIds.length), [4, 3]);
    const [firstJob] = ledger(dir);
    assert.equal(Object.keys(firstJob!.failed ?? {}).length, 3, "failed lines recorded");

    standIn.expireNext();
    const late = ["a", "b", "c", "d", "e", "f"].map((t) => call(`late ${t}`));
    const answered = await settle(clock, late.map((c) => batcher.call(c)));
    assert.ok(answered.every((r) => r.status === "fulfilled"));
    const expired = standIn.batches[2]!;
    assert.equal(expired.status, "expired");
    assert.deepEqual(standIn.batches.slice(3).map((b) => b.customIds.length), [3], "the rest");
    assert.equal(ledger(dir)[2]!.state, "JOB_STATE_EXPIRED");
    // The half answered before the window ran out was not sent again (a failed line never
    // reached the chat stand-in).
    assert.equal(standIn.chat.requests.length, 1 + 3 + 3 + 3);
    await batcher.close(true);
  });
});

Deno.test("OpenAIBatcher: cancelAll cancels a running batch", async () => {
  await withStandIn(async (standIn, dir) => {
    standIn.hold();
    const { clock, batcher } = session(standIn);
    const stop = new AbortController();
    await batcher.open(dir, stop.signal);
    const pending = batcher.call(call("cancel me"));
    await waitFor(() => batcher.waiting()?.requests === 1, "the call to wait");
    await clock.next();
    await waitFor(() => named(dir), "the batch's name");
    stop.abort();
    await assert.rejects(pending, StopRequested);
    await batcher.close(false);
    const cancelled = await session(standIn).batcher.cancelAll(dir, AbortSignal.timeout(5_000));
    assert.deepEqual(cancelled.map((j) => j.name), [standIn.batches[0]!.id]);
    assert.equal(standIn.batches[0]!.status, "cancelled");
    assert.equal(ledger(dir)[0]!.state, "JOB_STATE_CANCELLED");
    assert.deepEqual(await session(standIn).batcher.cancelAll(dir, AbortSignal.timeout(5_000)), []);
  });
});

Deno.test("The OpenAI critic with --batch-api: through batches at half the price where the server runs them; elsewhere at once", async () => {
  await withStandIn(async (standIn, dir) => {
    const critique = {
      score: 5,
      criteria: { promptAdherence: 6, composition: 5, lighting: 4, mood: 6, technicalQuality: 7 },
      summary: "A dim fox.",
      strengths: ["Sharp fur"],
      problems: ["Flat light"],
      suggestions: ["golden hour light"],
    };
    const request: RefineRequest = {
      prompt: "a red fox",
      spec: { id: "fox", prompt: "a red fox", extra: {} },
      critique,
      history: [{ iteration: 1, prompt: "a red fox", critique }],
      iteration: 1,
      signal: new AbortController().signal,
    };
    const options = { apiKey: standIn.key, baseUrl: standIn.url, model: MINI };
    const live = await createOpenAIProviders(options).refiner.refine(request);
    assert.ok(live.costUsd > 0);
    assert.equal(live.batch, undefined);

    // The stand-in is not api.openai.com: no batch mode unless the settings say it runs one.
    const clock = new ManualClock();
    const elsewhere = createOpenAIProviders({ ...options, batchApi: { clock } });
    assert.equal(elsewhere.batch, undefined);
    const { refiner, batch } = createOpenAIProviders({
      ...options,
      batchApi: { clock, pollMs: 30_000, gatherMs: 2_000 },
      batchServer: true,
    });
    assert.ok(batch !== undefined);
    await batch.open(dir);
    const [result] = await settle(clock, [refiner.refine(request)]);
    assert.equal(result!.status, "fulfilled", String((result as PromiseRejectedResult).reason));
    const batched = (result as PromiseFulfilledResult<typeof live>).value;
    assert.equal(batched.batch, true);
    assert.equal(batched.prompt, live.prompt);
    assert.ok(Math.abs(batched.costUsd / live.costUsd - 0.5) < 1e-9, `${batched.costUsd}`);
    assert.equal(creates(standIn), 1);
    await batch.close(true);
  });
});
