import assert from "node:assert/strict";
import { FeedbackLog } from "./feedback.ts";
import { withTempDir } from "../_test_temp_dir.ts";

Deno.test("FeedbackLog appends numbered lines, each on disk before append() resolves", async () => {
  await withTempDir(async (dir) => {
    const { log, contents } = await FeedbackLog.open(dir, { now: () => "2026-01-01T00:00:00Z" });
    assert.deepEqual(contents.entries, []);
    // Appended side by side: the log serialises them, so numbers never repeat.
    const [a, b] = await Promise.all([
      log.append({ type: "pause" }),
      log.append({ type: "reject", id: "p1", note: "make the sky orange" }),
    ]);
    assert.equal(a.seq, 1);
    assert.equal(b.seq, 2);
    const done = await log.markDone(2);
    assert.deepEqual(done, { seq: 3, at: "2026-01-01T00:00:00Z", done: 2 });
    const lines = (await Deno.readTextFile(`${dir}/feedback.jsonl`)).trimEnd().split("\n");
    assert.deepEqual(lines.map((l) => JSON.parse(l)), [
      { seq: 1, at: "2026-01-01T00:00:00Z", action: { type: "pause" } },
      {
        seq: 2,
        at: "2026-01-01T00:00:00Z",
        action: { type: "reject", id: "p1", note: "make the sky orange" },
      },
      { seq: 3, at: "2026-01-01T00:00:00Z", done: 2 },
    ]);
    const again = await FeedbackLog.open(dir);
    assert.equal(again.contents.entries.length, 2);
    assert.deepEqual([...again.contents.done], [2]);
    assert.equal(
      (await again.log.append({ type: "resume" })).seq,
      4,
      "numbers go on after a restart",
    );
  });
});

Deno.test("FeedbackLog skips a line cut short by a crash and starts the next on a line of its own", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/feedback.jsonl`,
      `{"seq":1,"at":"x","action":{"type":"cancel","id":"p0"}}\n{"seq":2,"at":"x","act`,
    );
    const { log, contents } = await FeedbackLog.open(dir);
    assert.deepEqual(contents.entries.map((e) => e.seq), [1]);
    await log.append({ type: "front", id: "p3" });
    const reread = await FeedbackLog.open(dir);
    assert.deepEqual(reread.contents.entries.map((e) => e.action.type), ["cancel", "front"]);
  });
});

Deno.test("FeedbackLog never writes through a symbolic link", async () => {
  const dir = await Deno.makeTempDir();
  const outside = await Deno.makeTempFile();
  try {
    const { log } = await FeedbackLog.open(dir);
    await Deno.symlink(outside, `${dir}/feedback.jsonl`);
    await assert.rejects(log.append({ type: "pause" }), /symbolic link/);
    await assert.rejects(FeedbackLog.open(dir), /symbolic link/);
    assert.equal(await Deno.readTextFile(outside), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside);
  }
});
