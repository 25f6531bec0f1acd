import assert from "node:assert/strict";
import { WriteError, writeFileAtomic } from "./atomic_write.ts";
import { Reservation } from "./reserved_write.ts";
import { fillDisk, onSmallDisk } from "./_test_small_disk.ts";

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test({
  name: "Reservation: a disk filled to the last byte still takes the file the room was kept for",
  ignore: Deno.uid() !== 0,
  fn: () =>
    onSmallDisk("256k", async (dir) => {
      await Deno.writeTextFile(`${dir}/run.json`, "old\n");
      const room = await Reservation.create(`${dir}/run.json`, 10_000);
      assert.equal(room.size, 12_288, "whole pages");
      await fillDisk(dir);
      // The disk really is full: an ordinary write fails.
      await assert.rejects(writeFileAtomic(`${dir}/other.json`, "{}"), /the disk is full/);
      const text = "x".repeat(9_000) + "\n";
      assert.ok(room.fits(new TextEncoder().encode(text)));
      await room.commit(new TextEncoder().encode(text));
      assert.equal(await Deno.readTextFile(`${dir}/run.json`), text);
      assert.deepEqual(names(dir), ["filler", "run.json"]);
      assert.equal(room.size, 0);
    }),
});

Deno.test({
  name: "Reservation.create() on a full disk throws the fatal disk-full error and leaves nothing",
  ignore: Deno.uid() !== 0,
  fn: () =>
    onSmallDisk("64k", async (dir) => {
      await fillDisk(dir);
      const error = await Reservation.create(`${dir}/run.json`, 10_000).catch((e) => e);
      assert.ok(error instanceof WriteError, String(error));
      assert.equal(error.fatal, true);
      assert.match(error.message, /Cannot save '.*run\.json': the disk is full/);
      assert.deepEqual(names(dir), ["filler"]);
    }),
});

Deno.test("Reservation.commit() refuses more than its room and keeps it; release() leaves nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const room = await Reservation.create(`${dir}/run.json`, 100);
    assert.equal(room.size, 4096);
    const temp = names(dir);
    assert.equal(temp.length, 1);
    assert.match(temp[0]!, /^\.run\.json\.[0-9a-f]{8}\.tmp$/, "a temp name stale cleanup knows");
    assert.equal((await Deno.stat(`${dir}/${temp[0]}`)).size, 4096, "real bytes, not a hole");
    const big = new Uint8Array(4097);
    assert.equal(room.fits(big), false);
    await assert.rejects(room.commit(big), RangeError);
    assert.equal(room.size, 4096);
    await room.release();
    assert.deepEqual(names(dir), []);
    assert.equal(room.size, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
