import assert from "node:assert/strict";
import { ManualClock, waitFor } from "../../tests/manual_clock.ts";
import { Wave } from "./wave.ts";

Deno.test("Wave sends what came in until gatherMs passed without a request, as one wave", async () => {
  const clock = new ManualClock();
  const waves: number[][] = [];
  const wave = new Wave<number>({ gatherMs: 1000, flush: (w) => waves.push(w), clock });
  wave.add(1);
  clock.advance(600);
  wave.add(2);
  await clock.next(); // 1000 ms after the first: the second came 400 ms ago
  assert.deepEqual(waves, []);
  await clock.next();
  await wave.idle();
  assert.deepEqual(waves, [[1, 2]]);
  wave.add(3);
  await clock.next();
  await wave.idle();
  assert.deepEqual(waves, [[1, 2], [3]]);
});

Deno.test("Wave ends a wave after maxGatherMs however requests keep coming, or at maxItems", async () => {
  const clock = new ManualClock();
  const waves: number[][] = [];
  const wave = new Wave<number>({
    gatherMs: 100,
    maxGatherMs: 250,
    maxItems: 5,
    flush: (w) => waves.push(w),
    clock,
  });
  // A request every 90 ms: the quiet time never comes, the longest wave ends it at 250 ms.
  for (let i = 0; i < 3; i++) {
    wave.add(i);
    await waitFor(() => clock.sleeping > 0, "the wave to wait");
    clock.advance(90);
  }
  await wave.idle();
  assert.deepEqual(waves, [[0, 1, 2]]);
  for (let i = 10; i < 15; i++) wave.add(i);
  assert.deepEqual(waves.at(-1), [10, 11, 12, 13, 14], "sent at once when full");
});

Deno.test("Wave.remove() and drain(): a request given up is not sent; a stopped wave sends nothing", async () => {
  const clock = new ManualClock();
  const stop = new AbortController();
  const waves: string[][] = [];
  const wave = new Wave<string>({
    gatherMs: 10,
    flush: (w) => waves.push(w),
    clock,
    signal: stop.signal,
  });
  wave.add("a");
  wave.add("b");
  assert.equal(wave.remove("a"), true);
  assert.equal(wave.remove("a"), false);
  stop.abort();
  await wave.idle();
  assert.deepEqual(waves, []);
  assert.deepEqual(wave.drain(), ["b"]);
});
