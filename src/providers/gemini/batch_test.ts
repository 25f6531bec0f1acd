import assert from "node:assert/strict";
import { GoogleGenAI } from "@google/genai/web";
import { BATCH_API_DIR, type JobEntry } from "../../batch_api/ledger.ts";
import { ProviderError, StopRequested } from "../../errors.ts";
import {
  type GeminiBatchStandIn,
  type GeminiBatchStandInOptions,
  startGeminiBatchStandIn,
} from "../../../tests/gemini_batch_standin.ts";
import { ManualClock, waitFor } from "../../../tests/manual_clock.ts";
import { readLedger, settle, withStandInAndDir } from "../../../tests/batch_api_helpers.ts";
import { connectGemini, type GeminiConnection } from "./api.ts";
import {
  answeredInBatch,
  type GeminiBatcher,
  type GeminiBatcherOptions,
  type GenerateParams,
} from "./batch.ts";
import { requestKey, restRequest } from "./batch_request.ts";

const TEXT = "gemini-3.8-flash";
const IMAGE = "gemini-nano-banana-2.1";

const textCall = (prompt: string, signal?: AbortSignal): GenerateParams => ({
  model: TEXT,
  contents: [{ role: "user", parts: [{ text: `Prompt: ${prompt}` }] }],
  config: {
    systemInstruction: "Rewrite the prompt.",
    responseMimeType: "application/json",
    responseJsonSchema: {
      type: "object",
      properties: { prompt: { type: "string" } },
      required: ["prompt"],
    },
    maxOutputTokens: 4096,
    ...(signal && { abortSignal: signal }),
  },
});

const imageCall = (prompt: string, seed: number): GenerateParams => ({
  model: IMAGE,
  contents: [{ role: "user", parts: [{ text: prompt }] }],
  config: {
    responseModalities: ["IMAGE"],
    imageConfig: { aspectRatio: "1:1", imageSize: "512" },
    seed,
  },
});

const keyOf = (call: GenerateParams) =>
  requestKey(call.model, restRequest(call.contents, call.config));

interface Session {
  clock: ManualClock;
  connection: GeminiConnection;
  batcher: GeminiBatcher;
}

function session(standIn: GeminiBatchStandIn, options: GeminiBatcherOptions = {}): Session {
  const clock = new ManualClock();
  const connection = connectGemini({
    apiKey: standIn.key,
    baseUrl: standIn.url,
    timeoutMs: 20_000,
  });
  const batcher = connection.useBatchApi({ clock, pollMs: 30_000, gatherMs: 2_000, ...options });
  return { clock, connection, batcher };
}

const withStandIn = (
  fn: (standIn: GeminiBatchStandIn, dir: string) => Promise<void>,
  options: GeminiBatchStandInOptions = {},
) => withStandInAndDir(() => startGeminiBatchStandIn(options), "retake-gemini-batch-", fn);

const ledger = readLedger;

const textOf = (response: { candidates?: Array<{ content?: { parts?: unknown[] } }> }) =>
  JSON.stringify(response.candidates?.[0]?.content?.parts);

Deno.test("GeminiBatcher sends a wave as one job per model (text inline, images as a file), recorded before it is created, and answers each call as generateContent would", async () => {
  await withStandIn(async (standIn, dir) => {
    const { clock, connection, batcher } = session(standIn);
    await batcher.open(dir);
    // What the folder said at the moment each job was created.
    const recorded: Array<JobEntry | undefined> = [];
    standIn.onEvent((event) => {
      if (event.type !== "create") return;
      const job = standIn.jobs.find((j) => j.name === event.name)!;
      const keys = job.lines.map((l) => l.key);
      recorded.push(ledger(dir).find((e) => JSON.stringify(e.keys) === JSON.stringify(keys)));
    });
    const calls = [
      textCall("a red fox"),
      textCall("a blue whale"),
      textCall("a green tower"),
      imageCall("a red fox", 7),
      imageCall("a blue whale", 8),
    ];
    const pending = calls.map((c) => connection.generateContent(c));
    await waitFor(() => batcher.waiting()?.requests === calls.length, "every call to wait");
    const results = await settle(clock, pending);

    assert.deepEqual(
      standIn.jobs.map((j) => [j.model, j.source, j.lines.length]).sort(),
      [[TEXT, "inline", 3], [IMAGE, "file", 2]],
    );
    assert.equal(recorded.length, 2);
    for (const entry of recorded) {
      assert.ok(entry !== undefined, "the job's keys were on disk before it was created");
      assert.equal(entry.state, "creating");
      assert.equal(entry.name, undefined);
    }
    const direct = connectGemini({ apiKey: standIn.key, baseUrl: standIn.url });
    for (const [i, result] of results.entries()) {
      assert.equal(result.status, "fulfilled");
      const response = (result as PromiseFulfilledResult<Awaited<(typeof pending)[0]>>).value;
      assert.ok(answeredInBatch(response), "billed at the batch price");
      assert.equal(connection.priceShare(response), 0.5);
      const alone = await direct.generateContent(calls[i]!);
      assert.equal(textOf(response), textOf(alone), `call ${i} answered as interactively`);
      assert.deepEqual(response.usageMetadata, alone.usageMetadata);
    }
    assert.equal(
      typeof (results[0] as PromiseFulfilledResult<{ text?: string }>).value.text,
      "string",
    );
    const entries = ledger(dir);
    assert.ok(
      entries.every((e) => e.state === "JOB_STATE_SUCCEEDED" && e.name?.startsWith("batches/")),
    );
    for (const entry of entries) await Deno.stat(`${dir}/${BATCH_API_DIR}/${entry.results}`);
    assert.deepEqual(await batcher.close(true), [], "nothing left running");
    assert.ok(ledger(dir).every((e) => e.collected && e.results === undefined));
  });
});

Deno.test("GeminiBatcher: a stop ends every wait at once and leaves the job running; the next session takes its answers without sending anything again", async () => {
  await withStandIn(async (standIn, dir) => {
    const calls = [textCall("a fox"), textCall("a whale"), textCall("a tower")];
    const first = session(standIn);
    const stop = new AbortController();
    await first.batcher.open(dir, stop.signal);
    const pending = calls.map((c) => first.connection.generateContent(c));
    await waitFor(() => first.batcher.waiting()?.requests === 3, "every call to wait");
    await first.clock.next();
    await waitFor(() => standIn.jobs.length === 1, "the job");
    await waitFor(() => first.batcher.waiting()?.jobs === 1, "the job to be recorded");
    stop.abort();
    for (const result of await Promise.allSettled(pending)) {
      assert.equal(result.status, "rejected");
      assert.ok((result as PromiseRejectedResult).reason instanceof StopRequested);
    }
    const left = await first.batcher.close(false);
    assert.deepEqual(left, [{ provider: "gemini", name: standIn.jobs[0]!.name, requests: 3 }]);

    const second = session(standIn);
    await second.batcher.open(dir);
    const answers = await settle(
      second.clock,
      calls.map((c) => second.connection.generateContent(c)),
    );
    assert.ok(answers.every((a) => a.status === "fulfilled"));
    assert.equal(standIn.jobs.length, 1, "no second job for the same requests");
    assert.equal(standIn.gemini.requests.length, 3, "each request answered once");
    // A third session asks again: the answers kept in the folder serve it, with no call at all.
    await second.batcher.close(false);
    const third = session(standIn);
    await third.batcher.open(dir);
    const events = standIn.events.length;
    const again = await settle(third.clock, [third.connection.generateContent(calls[1]!)]);
    assert.equal(again[0]!.status, "fulfilled");
    assert.equal(standIn.events.length, events, "read from the folder");
    await third.batcher.close(true);
  });
});

Deno.test("GeminiBatcher: a job a dead run was creating is found by its display name; one it never created is sent anew", async () => {
  await withStandIn(async (standIn, dir) => {
    const calls = [textCall("one"), textCall("two"), textCall("three")];
    const keys = await Promise.all(calls.map(keyOf));
    // The dead run created the first job at Gemini but never heard its name.
    const ai = new GoogleGenAI({
      apiKey: standIn.key,
      vertexai: false,
      apiVersion: "v1beta",
      httpOptions: { baseUrl: standIn.url },
    });
    await ai.batches.create({
      model: TEXT,
      src: calls.slice(0, 2).map((c, i) => ({
        contents: c.contents,
        config: { ...c.config },
        metadata: { key: keys[i]! },
      })),
      config: { displayName: "retake-found" },
    });
    const at = "2026-12-01T08:00:00.000Z";
    const entry = (id: string, keys: string[]): JobEntry => ({
      id,
      provider: "gemini",
      model: TEXT,
      keys,
      input: "inline",
      state: "creating",
      createdAt: at,
      updatedAt: at,
    });
    await Deno.mkdir(`${dir}/${BATCH_API_DIR}`);
    await Deno.writeTextFile(
      `${dir}/${BATCH_API_DIR}/jobs.json`,
      JSON.stringify({
        version: 1,
        jobs: [entry("retake-found", keys.slice(0, 2)), entry("retake-lost", [keys[2]!])],
      }),
    );
    const { clock, connection, batcher } = session(standIn);
    await batcher.open(dir);
    assert.deepEqual(
      ledger(dir).map((e) => [e.id, e.state, e.name]),
      [
        ["retake-found", "JOB_STATE_PENDING", standIn.jobs[0]!.name],
        ["retake-lost", "abandoned", undefined],
      ],
    );
    const pending = calls.map((c) => connection.generateContent(c));
    await waitFor(() => batcher.waiting()?.requests === 3, "every call to wait");
    const answers = await settle(clock, pending);
    assert.ok(answers.every((a) => a.status === "fulfilled"));
    assert.equal(standIn.jobs.length, 2);
    assert.deepEqual(standIn.jobs[1]!.lines.map((l) => l.key), [keys[2]]);
    await batcher.close(true);
  });
});

Deno.test("GeminiBatcher: a failed line is recorded and sent again, at once when few (full price), in the next job when many", async () => {
  await withStandIn(async (standIn, dir) => {
    const calls = [textCall("fine"), textCall("also fine"), textCall("flaky [batch:fail-once]")];
    const flaky = await keyOf(calls[2]!);
    const few = session(standIn);
    await few.batcher.open(dir);
    const pending = calls.map((c) => few.connection.generateContent(c));
    await waitFor(() => few.batcher.waiting()?.requests === 3, "every call to wait");
    const answers = await settle(few.clock, pending);
    assert.ok(answers.every((a) => a.status === "fulfilled"));
    assert.equal(standIn.jobs.length, 1);
    const retried = (answers[2] as PromiseFulfilledResult<object>).value;
    assert.ok(!answeredInBatch(retried), "sent again interactively, at the full price");
    assert.match(ledger(dir)[0]!.failed?.[flaky] ?? "", /^500 /);
    await few.batcher.close(true);
  });
  await withStandIn(async (standIn, dir) => {
    const calls = [textCall("fine"), textCall("flaky [batch:fail-once]")];
    const many = session(standIn, { fewRetries: 0 });
    await many.batcher.open(dir);
    const pending = calls.map((c) => many.connection.generateContent(c));
    await waitFor(() => many.batcher.waiting()?.requests === 2, "every call to wait");
    const answers = await settle(many.clock, pending);
    assert.ok(answers.every((a) => a.status === "fulfilled"));
    assert.equal(standIn.jobs.length, 2);
    assert.deepEqual(standIn.jobs[1]!.lines.map((l) => l.key), [await keyOf(calls[1]!)]);
    assert.ok(answeredInBatch((answers[1] as PromiseFulfilledResult<object>).value));
    await many.batcher.close(true);
  });
});

Deno.test("GeminiBatcher: an expired job's requests go in a new job; a request that fails twice is given up", async () => {
  await withStandIn(async (standIn, dir) => {
    standIn.expireNext();
    const calls = [textCall("late one"), textCall("late two"), textCall("broken [batch:fail]")];
    const { clock, connection, batcher } = session(standIn, { fewRetries: 0 });
    await batcher.open(dir);
    const pending = calls.map((c) => connection.generateContent(c));
    await waitFor(() => batcher.waiting()?.requests === 3, "every call to wait");
    const answers = await settle(clock, pending);
    assert.equal(answers[0]!.status, "fulfilled");
    assert.equal(answers[1]!.status, "fulfilled");
    const broken = answers[2] as PromiseRejectedResult;
    assert.equal(broken.status, "rejected");
    assert.ok(broken.reason instanceof ProviderError);
    assert.equal(broken.reason.retryable, false);
    assert.match(broken.reason.message, /failed this request twice/);
    const states = ledger(dir).map((e) => e.state);
    assert.equal(states[0], "JOB_STATE_EXPIRED");
    assert.ok(states.slice(1).every((s) => s === "JOB_STATE_SUCCEEDED"));
    // An expiry says nothing of a request: the broken one still had two tries of its own.
    assert.equal(standIn.jobs.length, 3);
    assert.deepEqual(standIn.jobs[2]!.lines.map((l) => l.key), [await keyOf(calls[2]!)]);
    await batcher.close(true);
  });
});

Deno.test("GeminiBatcher.cancelAll() cancels the jobs an interrupted run left running", async () => {
  await withStandIn(async (standIn, dir) => {
    standIn.hold();
    const first = session(standIn);
    const stop = new AbortController();
    await first.batcher.open(dir, stop.signal);
    const pending = [textCall("a"), textCall("b")].map((c) => first.connection.generateContent(c));
    await waitFor(() => first.batcher.waiting()?.requests === 2, "every call to wait");
    await first.clock.next();
    await waitFor(() => first.batcher.waiting()?.jobs === 1, "the job to be recorded");
    stop.abort();
    await Promise.allSettled(pending);
    await first.batcher.close(false);

    const other = session(standIn);
    const cancelled = await other.batcher.cancelAll(dir, new AbortController().signal);
    assert.deepEqual(cancelled, [{ provider: "gemini", name: standIn.jobs[0]!.name, requests: 2 }]);
    assert.equal(standIn.jobs[0]!.state, "BATCH_STATE_CANCELLED");
    assert.equal(ledger(dir)[0]!.state, "JOB_STATE_CANCELLED");
    assert.deepEqual(await other.batcher.cancelAll(dir, new AbortController().signal), []);
  });
});

Deno.test("a connection with the batch mode reserves at the batch price", () => {
  const connection = connectGemini({ apiKey: "k" });
  assert.equal(connection.estimateShare, 1);
  connection.useBatchApi({});
  assert.equal(connection.estimateShare, 0.5);
});

Deno.test("GeminiBatcher opens again after it closed (a watch runs the batch again)", async () => {
  await withStandIn(async (standIn, dir) => {
    const { clock, connection, batcher } = session(standIn);
    for (const prompt of ["first pass", "second pass"]) {
      await batcher.open(dir);
      const pending = [connection.generateContent(textCall(prompt))];
      await waitFor(() => batcher.waiting()?.requests === 1, "the call to wait");
      const [answer] = await settle(clock, pending);
      assert.equal(answer!.status, "fulfilled");
      assert.ok(answeredInBatch((answer as PromiseFulfilledResult<object>).value));
      await batcher.close(true);
    }
    assert.equal(standIn.jobs.length, 2);
  });
});

Deno.test("the Gemini provider with --batch-api estimates every call at the batch price, for --max-cost", async () => {
  const { geminiProvider } = await import("./gemini.ts");
  const create = (batchApi?: { pollMs: number; gatherMs: number }) =>
    geminiProvider.create({
      settings: { key: "k" },
      roles: new Set(["generate", "critique", "refine"] as const),
      models: [IMAGE],
      size: { width: 1024, height: 1024 },
      criticModel: undefined,
      timeoutMs: 1000,
      ...(batchApi && { batchApi }),
    });
  const live = await create();
  const batched = await create({ pollMs: 1000, gatherMs: 10 });
  assert.ok(batched.batch !== undefined && live.batch === undefined);
  const image = { model: IMAGE, width: 1024, height: 1024 };
  assert.equal(
    batched.generator!.estimateCostUsd!(image),
    Math.round(live.generator!.estimateCostUsd!(image)! / 2 * 1e6) / 1e6,
  );
  assert.ok(
    Math.abs(batched.critic!.estimateCostUsd!()! - live.critic!.estimateCostUsd!()! / 2) < 2e-6,
  );
  assert.ok(
    Math.abs(batched.refiner!.estimateCostUsd!()! - live.refiner!.estimateCostUsd!()! / 2) < 2e-6,
  );
});
