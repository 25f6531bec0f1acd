/**
 * The batch stand-in driven by the real `@google/genai` SDK (`batches.*`, `files.*`), as the
 * provider drives it: what the SDK sends, the stand-in accepts, and what it answers, the SDK
 * reads as it would read Gemini's.
 */
import assert from "node:assert/strict";
import { GoogleGenAI, type InlinedRequest } from "@google/genai/web";
import { startGeminiBatchStandIn } from "./gemini_batch_standin.ts";

const MODEL = "gemini-3.8-flash";

function client(url: string, key: string): GoogleGenAI {
  return new GoogleGenAI({
    apiKey: key,
    vertexai: false,
    apiVersion: "v1beta",
    httpOptions: { baseUrl: url },
  });
}

/** What `files.download` does in the Node SDK: the web build has no download, so ask as it does. */
async function download(ai: GoogleGenAI, name: string): Promise<string> {
  const api = (ai as unknown as {
    apiClient: {
      request(r: Record<string, unknown>): Promise<{ responseInternal: Response }>;
    };
  }).apiClient;
  const response = await api.request({
    path: `files/${name.replace(/^files\//, "")}:download`,
    httpMethod: "GET",
    queryParams: { alt: "media" },
  });
  return await response.responseInternal.text();
}

const ask = (text: string, key?: string): InlinedRequest => ({
  contents: [{ role: "user", parts: [{ text }] }],
  config: {
    responseMimeType: "application/json",
    responseJsonSchema: {
      type: "object",
      properties: { prompt: { type: "string" } },
      required: ["prompt"],
    },
  },
  ...(key !== undefined && { metadata: { key } }),
});

async function poll(ai: GoogleGenAI, name: string, until: (state: string) => boolean) {
  const states: string[] = [];
  for (let i = 0; i < 20; i++) {
    const job = await ai.batches.get({ name });
    states.push(String(job.state));
    if (until(String(job.state))) return { job, states };
  }
  throw new Error(`job ${name} stayed ${states.at(-1)}`);
}

const terminal = (s: string) => /SUCCEEDED|FAILED|CANCELLED|EXPIRED/.test(s);

Deno.test("batch stand-in: an inline job goes PENDING → RUNNING → SUCCEEDED as it is polled, answers in order with each line's key", async () => {
  const standIn = await startGeminiBatchStandIn();
  try {
    const ai = client(standIn.url, standIn.key);
    const created = await ai.batches.create({
      model: MODEL,
      src: [ask("Prompt: a red fox", "k1"), ask("Prompt: a blue whale", "k2")],
      config: { displayName: "retake-inline-test" },
    });
    assert.match(created.name!, /^batches\//);
    assert.equal(created.state, "JOB_STATE_PENDING");
    assert.equal(created.displayName, "retake-inline-test");
    const { job, states } = await poll(ai, created.name!, terminal);
    assert.deepEqual(states, ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]);
    const answers = job.dest?.inlinedResponses ?? [];
    assert.deepEqual(answers.map((a) => a.metadata?.key), ["k1", "k2"]);
    for (const answer of answers) {
      const text = answer.response?.candidates?.[0]?.content?.parts?.[0]?.text ?? "";
      assert.equal(typeof JSON.parse(text).prompt, "string");
      assert.ok((answer.response?.usageMetadata?.promptTokenCount ?? 0) > 0, "usage reported");
    }
    // Each line was answered by the interactive stand-in, so batch and interactive agree.
    assert.equal(standIn.gemini.requests.length, 2);
    assert.equal(standIn.jobs[0]!.source, "inline");
    assert.deepEqual(standIn.jobs[0]!.lines.map((l) => l.key), ["k1", "k2"]);
  } finally {
    await standIn.close();
  }
});

Deno.test("batch stand-in: a JSONL file uploaded through the Files API runs as a job whose responses file downloads line by key", async () => {
  const standIn = await startGeminiBatchStandIn();
  try {
    const ai = client(standIn.url, standIn.key);
    const lines = ["a", "b", "c"].map((k) =>
      JSON.stringify({
        key: k,
        request: { contents: [{ role: "user", parts: [{ text: `Prompt: item ${k}` }] }] },
      })
    );
    const file = await ai.files.upload({
      file: new Blob([lines.join("\n") + "\n"], { type: "application/jsonl" }),
      config: { mimeType: "application/jsonl", displayName: "retake-file-test" },
    });
    assert.match(file.name!, /^files\//);
    assert.equal(file.state, "ACTIVE");
    const created = await ai.batches.create({
      model: MODEL,
      src: file.name!,
      config: { displayName: "retake-file-test" },
    });
    const { job } = await poll(ai, created.name!, terminal);
    assert.equal(job.state, "JOB_STATE_SUCCEEDED");
    assert.match(job.dest?.fileName ?? "", /^files\//);
    const out = (await download(ai, job.dest!.fileName!)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(out.map((o) => o.key), ["a", "b", "c"]);
    assert.ok(out.every((o) => o.response?.candidates?.[0]?.finishReason === "STOP"));
    assert.equal(standIn.jobs[0]!.source, "file");
    assert.deepEqual(standIn.events.map((e) => e.type).slice(0, 2), ["upload", "create"]);
  } finally {
    await standIn.close();
  }
});

Deno.test("batch stand-in: list finds a job by its display name; cancel ends it CANCELLED", async () => {
  const standIn = await startGeminiBatchStandIn();
  try {
    const ai = client(standIn.url, standIn.key);
    standIn.hold();
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      const job = await ai.batches.create({
        model: MODEL,
        src: [ask(`Prompt: ${i}`)],
        config: { displayName: `retake-${i}` },
      });
      names.push(job.name!);
    }
    const found: string[] = [];
    for await (const job of await ai.batches.list({ config: { pageSize: 2 } })) {
      found.push(`${job.displayName}=${job.name}`);
    }
    assert.deepEqual(found.sort(), names.map((n, i) => `retake-${i}=${n}`).sort());
    assert.equal((await ai.batches.get({ name: names[1]! })).state, "JOB_STATE_PENDING");
    await ai.batches.cancel({ name: names[1]! });
    assert.equal((await ai.batches.get({ name: names[1]! })).state, "JOB_STATE_CANCELLED");
    standIn.release();
    const { job } = await poll(ai, names[0]!, terminal);
    assert.equal(job.state, "JOB_STATE_SUCCEEDED");
  } finally {
    await standIn.close();
  }
});

Deno.test("batch stand-in: a line that fails is reported in its error and in batchStats.failedRequestCount; the same content succeeds in the next job", async () => {
  const standIn = await startGeminiBatchStandIn();
  try {
    const ai = client(standIn.url, standIn.key);
    const first = await ai.batches.create({
      model: MODEL,
      src: [ask("Prompt: fine", "ok"), ask("Prompt: flaky [batch:fail-once]", "flaky")],
      config: { displayName: "retake-partial" },
    });
    const { job } = await poll(ai, first.name!, terminal);
    assert.equal(job.state, "JOB_STATE_SUCCEEDED", "a partial failure is still a finished job");
    const [ok, flaky] = job.dest!.inlinedResponses!;
    assert.ok(ok!.response !== undefined && ok!.error === undefined);
    assert.equal(flaky!.response, undefined);
    assert.equal(flaky!.error?.code, 500);
    // The SDK drops batchStats from its BatchJob; the REST resource has it.
    const raw = await (await fetch(`${standIn.url}/v1beta/${first.name}`, {
      headers: { "x-goog-api-key": standIn.key },
    })).json();
    assert.deepEqual(raw.metadata.batchStats, {
      requestCount: "2",
      successfulRequestCount: "1",
      failedRequestCount: "1",
    });
    const second = await ai.batches.create({
      model: MODEL,
      src: [ask("Prompt: flaky [batch:fail-once]", "flaky")],
      config: { displayName: "retake-partial-retry" },
    });
    const retried = await poll(ai, second.name!, terminal);
    assert.ok(retried.job.dest!.inlinedResponses![0]!.response !== undefined);
    assert.equal(standIn.jobs[0]!.lines[1]!.content, standIn.jobs[1]!.lines[0]!.content);
  } finally {
    await standIn.close();
  }
});

Deno.test("batch stand-in: a job pending past 48 hours expires with no output; failNext ends one FAILED", async () => {
  const standIn = await startGeminiBatchStandIn();
  try {
    const ai = client(standIn.url, standIn.key);
    standIn.hold();
    const stale = await ai.batches.create({
      model: MODEL,
      src: [ask("Prompt: late")],
      config: { displayName: "retake-stale" },
    });
    assert.equal((await ai.batches.get({ name: stale.name! })).state, "JOB_STATE_PENDING");
    standIn.advanceClock(48 * 3_600_000 + 1);
    const expired = await ai.batches.get({ name: stale.name! });
    assert.equal(expired.state, "JOB_STATE_EXPIRED");
    assert.equal(expired.dest, undefined);
    standIn.release();

    standIn.expireNext();
    standIn.failNext();
    const a = await ai.batches.create({
      model: MODEL,
      src: [ask("Prompt: a")],
      config: { displayName: "retake-a" },
    });
    const b = await ai.batches.create({
      model: MODEL,
      src: [ask("Prompt: b")],
      config: { displayName: "retake-b" },
    });
    assert.equal((await poll(ai, a.name!, terminal)).job.state, "JOB_STATE_EXPIRED");
    assert.equal((await poll(ai, b.name!, terminal)).job.state, "JOB_STATE_FAILED");
    assert.equal(standIn.gemini.requests.length, 0, "no line of them was answered");
  } finally {
    await standIn.close();
  }
});

Deno.test("batch stand-in: a wrong key is refused like the real API", async () => {
  const standIn = await startGeminiBatchStandIn({ key: "right" });
  try {
    const ai = client(standIn.url, "wrong");
    await assert.rejects(
      ai.batches.create({
        model: MODEL,
        src: [ask("Prompt: x")],
        config: { displayName: "retake-x" },
      }),
      (error: { status?: number; message?: string }) =>
        error.status === 400 && /API key not valid/.test(error.message ?? ""),
    );
    assert.equal(standIn.jobs.length, 0);
  } finally {
    await standIn.close();
  }
});
