import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import { LOCK_FILE, lockBatch } from "./lock.ts";
import { withTempDir } from "../_test_temp_dir.ts";

const env = (pid: number) => ({ pid, host: "test-host", now: () => "2026-12-01T00:00:00.000Z" });

Deno.test("lockBatch() lets one holder in; the second is told who holds it; release lets the next in", async () => {
  await withTempDir(async (dir) => {
    const first = await lockBatch(dir, env(111));
    await assert.rejects(
      lockBatch(dir, env(222)),
      (error: unknown) =>
        error instanceof InputError && /another retake \(pid 111 on test-host/.test(error.message),
    );
    await first.release();
    await assert.rejects(Deno.lstat(`${dir}/${LOCK_FILE}`), Deno.errors.NotFound);
    const second = await lockBatch(dir, env(222));
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/${LOCK_FILE}`)).pid, 222);
    await second.release();
  });
});

Deno.test("lockBatch() takes a lock file its holder left behind without holding it (a crash)", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/${LOCK_FILE}`,
      JSON.stringify({ pid: 999, host: "test-host", startedAt: "earlier" }),
    );
    const lock = await lockBatch(dir, env(333));
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/${LOCK_FILE}`)).pid, 333);
    await lock.release();
  });
});

Deno.test("lockBatch() refuses a link planted in place of the lock", async () => {
  const dir = await Deno.makeTempDir();
  const outside = await Deno.makeTempFile();
  try {
    await Deno.symlink(outside, `${dir}/${LOCK_FILE}`);
    await assert.rejects(lockBatch(dir, env(444)), InputError);
    assert.equal(await Deno.readTextFile(outside), "", "the file outside is untouched");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside);
  }
});
