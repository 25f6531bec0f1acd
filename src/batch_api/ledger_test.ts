import assert from "node:assert/strict";
import { BATCH_API_DIR, BatchLedger } from "./ledger.ts";

Deno.test("BatchLedger writes every change to disk before it resolves, and reads it back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ledger = await BatchLedger.open(dir);
    await ledger.add({
      id: "retake-a",
      provider: "gemini",
      model: "m",
      keys: ["k1", "k2"],
      input: "inline",
      state: "creating",
    });
    const onDisk = () =>
      JSON.parse(Deno.readTextFileSync(`${dir}/${BATCH_API_DIR}/jobs.json`)).jobs[0];
    assert.deepEqual([onDisk().state, onDisk().keys], ["creating", ["k1", "k2"]]);
    await ledger.update("retake-a", { name: "batches/1", state: "JOB_STATE_PENDING" });
    assert.equal(onDisk().name, "batches/1");
    await ledger.update("retake-a", { results: "x.jsonl" });
    await ledger.update("retake-a", { results: undefined, collected: true });
    assert.equal(onDisk().results, undefined);
    const again = await BatchLedger.open(dir);
    assert.deepEqual(again.get("retake-a")?.state, "JOB_STATE_PENDING");
    assert.equal(again.get("retake-a")?.collected, true);
    await assert.rejects(again.update("nope", { state: "abandoned" }), /not recorded/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("BatchLedger refuses a record it cannot read rather than forget running jobs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/${BATCH_API_DIR}`);
    await Deno.writeTextFile(`${dir}/${BATCH_API_DIR}/jobs.json`, "{ not json");
    await assert.rejects(BatchLedger.open(dir), /Cannot read the batch jobs of .*jobs\.json/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
