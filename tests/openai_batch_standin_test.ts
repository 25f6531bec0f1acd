/** The OpenAI batch stand-in driven by the real `openai` SDK's `files` and `batches`. */
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import { startOpenAIBatchStandIn } from "./openai_batch_standin.ts";

function client(url: string, key: string): OpenAI {
  return new OpenAI({ apiKey: key, baseURL: url, maxRetries: 0, logLevel: "off" });
}

const line = (customId: string, text: string, model = "gpt-5.4-mini") =>
  JSON.stringify({
    custom_id: customId,
    method: "POST",
    url: "/v1/chat/completions",
    body: {
      model,
      messages: [{ role: "system", content: "Rewrite." }, {
        role: "user",
        content: `Prompt of round 1: ${text}`,
      }],
    },
  });

async function upload(openai: OpenAI, lines: string[]) {
  return await openai.files.create({
    file: await toFile(new Blob([lines.join("\n") + "\n"]), "batch.jsonl"),
    purpose: "batch",
  });
}

const ended = (s: string) => /completed|failed|expired|cancelled/.test(s);

async function poll(openai: OpenAI, id: string) {
  const seen: string[] = [];
  for (let i = 0; i < 20; i++) {
    const batch = await openai.batches.retrieve(id);
    seen.push(batch.status);
    if (ended(batch.status)) return { batch, seen };
  }
  throw new Error(`batch ${id} stayed ${seen.at(-1)}`);
}

async function lines(openai: OpenAI, fileId: string | undefined | null) {
  if (!fileId) return [];
  const text = await (await openai.files.content(fileId)).text();
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

Deno.test("OpenAI batch stand-in: a JSONL file runs as a batch through validating, in_progress and finalizing; answers in the output file by custom_id", async () => {
  const standIn = await startOpenAIBatchStandIn();
  try {
    const openai = client(standIn.url, standIn.key);
    const file = await upload(openai, [line("a", "a fox"), line("b", "a whale")]);
    assert.equal(file.purpose, "batch");
    const created = await openai.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { retake_job: "retake-x" },
    });
    assert.equal(created.status, "validating");
    const { batch, seen } = await poll(openai, created.id);
    assert.deepEqual(seen, ["validating", "in_progress", "finalizing", "completed"]);
    assert.deepEqual(batch.request_counts, { total: 2, completed: 2, failed: 0 });
    const out = await lines(openai, batch.output_file_id);
    assert.deepEqual(out.map((l) => l.custom_id), ["a", "b"]);
    assert.ok(out.every((l) => l.response.status_code === 200 && l.response.body.choices));
    assert.equal(batch.error_file_id, null);
    assert.equal(standIn.chat.requests.length, 2);
    const listed = [];
    for await (const b of openai.batches.list({ limit: 1 })) listed.push(b.metadata?.retake_job);
    assert.deepEqual(listed, ["retake-x"]);
  } finally {
    await standIn.close();
  }
});

Deno.test("OpenAI batch stand-in: a failed line goes to the error file; an expiring batch answers half and reports the rest batch_expired; cancel ends cancelled", async () => {
  const standIn = await startOpenAIBatchStandIn();
  try {
    const openai = client(standIn.url, standIn.key);
    const params = async (lines: string[]) => ({
      input_file_id: (await upload(openai, lines)).id,
      endpoint: "/v1/chat/completions" as const,
      completion_window: "24h" as const,
    });
    const partial = await openai.batches.create(
      await params([line("ok", "fine"), line("bad", "flaky [batch:fail-once]")]),
    );
    const { batch } = await poll(openai, partial.id);
    assert.equal(batch.status, "completed");
    assert.deepEqual(batch.request_counts, { total: 2, completed: 1, failed: 1 });
    const errors = await lines(openai, batch.error_file_id);
    assert.deepEqual(errors.map((l) => [l.custom_id, l.response.status_code]), [["bad", 500]]);

    standIn.expireNext();
    const late = await openai.batches.create(
      await params(["1", "2", "3", "4"].map((n) => line(n, `late ${n}`))),
    );
    const expired = (await poll(openai, late.id)).batch;
    assert.equal(expired.status, "expired");
    assert.deepEqual((await lines(openai, expired.output_file_id)).map((l) => l.custom_id), [
      "1",
      "2",
    ]);
    assert.deepEqual(
      (await lines(openai, expired.error_file_id)).map((l) => [l.custom_id, l.error.code]),
      [["3", "batch_expired"], ["4", "batch_expired"]],
    );

    const cancel = await openai.batches.create(await params([line("c", "cancel me")]));
    assert.equal((await openai.batches.cancel(cancel.id)).status, "cancelling");
    assert.equal((await openai.batches.retrieve(cancel.id)).status, "cancelled");

    await assert.rejects(
      openai.batches.create(await params([line("x", "one"), line("y", "two", "gpt-4o-mini")])),
      (e: { status?: number }) => e.status === 400,
      "one model per file",
    );
  } finally {
    await standIn.close();
  }
});
