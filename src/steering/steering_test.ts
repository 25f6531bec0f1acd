import assert from "node:assert/strict";
import { newRecord, type PromptRecord } from "../output/record.ts";
import { Steering } from "./steering.ts";
import { withTempDir } from "../_test_temp_dir.ts";

/** A finished prompt `p0` with two rounds on disk; round 2 is the critic's best. */
async function batchWithPrompt(): Promise<string> {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/p0`);
  await Deno.writeTextFile(`${dir}/p0/iteration-1.png`, "ONE");
  await Deno.writeTextFile(`${dir}/p0/iteration-2.png`, "TWO");
  await Deno.writeTextFile(`${dir}/p0/best.png`, "TWO");
  const record: PromptRecord = {
    ...newRecord(
      { id: "p0", prompt: "a lake", extra: {} },
      "p0",
      {
        generator: "g",
        critic: "c",
        refiner: "r",
      },
      "2026-01-01T00:00:00Z",
      "hash",
    ),
    status: "completed",
    iterations: [1, 2].map((iteration) => ({
      iteration,
      prompt: "a lake",
      image: `iteration-${iteration}.png`,
      steps: {},
    })),
    bestIteration: 2,
    bestImage: "best.png",
  };
  await Deno.writeTextFile(`${dir}/p0/metadata.json`, JSON.stringify(record));
  return dir;
}

async function metadata(dir: string): Promise<PromptRecord> {
  return JSON.parse(await Deno.readTextFile(`${dir}/p0/metadata.json`));
}

Deno.test("Steering.apply() favourite: metadata.json gets chosen and best.png becomes its image", async () => {
  const dir = await batchWithPrompt();
  try {
    const steering = await Steering.open(dir);
    const seen: string[] = [];
    steering.subscribe((entry) => seen.push(entry.action.type));
    await steering.apply({ type: "favourite", id: "p0", iteration: 1 });
    assert.equal((await metadata(dir)).chosen, 1);
    assert.equal(await Deno.readTextFile(`${dir}/p0/best.png`), "ONE");
    assert.deepEqual(seen, ["favourite"]);
    assert.equal((await Steering.open(dir)).chosen("p0"), 1, "read back by a later process");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Steering.apply() refuses a bad action before writing anything", async () => {
  const dir = await batchWithPrompt();
  try {
    const steering = await Steering.open(dir);
    await assert.rejects(
      steering.apply({ type: "favourite", id: "p0", iteration: 7 }),
      (error: Error) =>
        error instanceof RangeError &&
        /Cannot choose iteration 7 of prompt 'p0' as it has no saved image: saved iterations are 1, 2/
          .test(error.message),
    );
    await assert.rejects(steering.apply({ type: "favourite", id: "ghost", iteration: 1 }), /ghost/);
    await assert.rejects(
      steering.apply({ type: "reject", id: "p0", note: "   " }),
      (error: Error) => error instanceof TypeError && /field 'note'/.test(error.message),
    );
    await assert.rejects(
      steering.apply({ type: "explode" } as never),
      (error: Error) => error instanceof TypeError,
    );
    await assert.rejects(Deno.stat(`${dir}/feedback.jsonl`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Steering keeps notes pending until marked done, across processes", async () => {
  await withTempDir(async (dir) => {
    const steering = await Steering.open(dir);
    const first = await steering.apply({ type: "reject", id: "p1", note: "warmer light" });
    await steering.apply({ type: "reject", id: "p2", note: "no people" });
    await steering.apply({ type: "reject", id: "p1", note: "and a boat" });
    assert.deepEqual(steering.pendingIds(), ["p1", "p2"]);
    assert.deepEqual(
      steering.pendingNotes("p1").map((e) => e.action.type === "reject" && e.action.note),
      ["warmer light", "and a boat"],
    );
    await steering.markDone([first.seq]);
    const later = await Steering.open(dir);
    assert.deepEqual(
      later.pendingNotes("p1").map((e) => e.action.type === "reject" && e.action.note),
      ["and a boat"],
    );
    await later.apply({ type: "cancel", id: "p2" });
    assert.equal((await Steering.open(dir)).cancelled("p2"), true);
  });
});

Deno.test("Steering pause holds resumed() until resume or an abort; a later process starts unpaused", async () => {
  await withTempDir(async (dir) => {
    const steering = await Steering.open(dir);
    await steering.apply({ type: "pause" });
    assert.equal(steering.paused, true);
    let resumed = false;
    const waiting = steering.resumed(new AbortController().signal).then(() => resumed = true);
    await Promise.resolve();
    assert.equal(resumed, false);
    const stop = new AbortController();
    const aborted = steering.resumed(stop.signal);
    stop.abort();
    await aborted;
    assert.equal(resumed, false, "an abort ends only its own wait");
    // Left paused: nothing could resume a later run, so it does not start paused.
    assert.equal((await Steering.open(dir)).paused, false);
    await steering.apply({ type: "resume" });
    await waiting;
    assert.equal(resumed, true);
  });
});

Deno.test("Steering leaves a favourite of a prompt a run holds to the run, then settles it", async () => {
  const dir = await batchWithPrompt();
  try {
    const steering = await Steering.open(dir);
    let live = true;
    const detach = steering.attach({ isLive: (id) => live && id === "p0" });
    await steering.apply({ type: "favourite", id: "p0", iteration: 1 });
    assert.equal(
      (await metadata(dir)).chosen,
      undefined,
      "the run's record is not written under it",
    );
    assert.equal(steering.chosen("p0"), 1);
    live = false;
    detach();
    await steering.settleFavourites();
    assert.equal((await metadata(dir)).chosen, 1);
    assert.equal(await Deno.readTextFile(`${dir}/p0/best.png`), "ONE");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Steering of a studio holds the file's notes until one is confirmed, then runs only that", async () => {
  await withTempDir(async (dir) => {
    const earlier = await Steering.open(dir);
    await earlier.apply({ type: "reject", id: "p1", note: "from the file" });
    await earlier.apply({ type: "reject", id: "p2", note: "also from the file" });
    const studio = await Steering.open(dir, { fileNotes: "confirm" });
    assert.deepEqual(studio.pendingIds(), [], "nothing from the file runs");
    assert.deepEqual(studio.heldNotes("p1").map((e) => e.seq), [1]);
    await assert.rejects(
      studio.apply({ type: "reject", id: "p1", note: "x", confirms: 2 }),
      (error: Error) => error instanceof RangeError && /not a note waiting/.test(error.message),
    );
    await studio.apply({ type: "reject", id: "p1", note: "from the file", confirms: 1 });
    assert.deepEqual(studio.pendingIds(), ["p1"]);
    assert.deepEqual(studio.heldNotes("p1"), []);
    assert.equal(studio.heldNotes("p2").length, 1, "the other note still waits");
    assert.deepEqual(
      (await Steering.open(dir)).pendingIds(),
      ["p2", "p1"],
      "a plain run still honours what is left",
    );
  });
});
