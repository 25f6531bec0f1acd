import assert from "node:assert/strict";
import { Subject } from "rxjs";
import { runOnChanges, watchFiles } from "./watch.ts";

Deno.test("runOnChanges() never overlaps passes and runs once more for changes that piled up", async () => {
  const changes = new Subject<Set<string>>();
  const stop = new AbortController();
  const passes: string[][] = [];
  let active = 0;
  let maxActive = 0;
  let release!: () => void;
  const done = runOnChanges(changes, async (batch) => {
    active++;
    maxActive = Math.max(maxActive, active);
    passes.push([...batch].sort());
    if (passes.length === 1) await new Promise<void>((r) => (release = r));
    active--;
  }, stop.signal);
  changes.next(new Set(["a.json"]));
  changes.next(new Set(["b.json"]));
  changes.next(new Set(["c.json", "b.json"]));
  release();
  await new Promise((r) => setTimeout(r, 10));
  stop.abort();
  await done;
  assert.deepEqual(passes, [["a.json"], ["b.json", "c.json"]]);
  assert.equal(maxActive, 1);
});

Deno.test("watchFiles() debounces a burst of events into one batch of watched files", async () => {
  const events: Deno.FsEvent[] = [
    { kind: "modify", paths: ["/w/p.json"] },
    { kind: "modify", paths: ["/w/other.txt"] },
    { kind: "create", paths: ["/w/p.json"] },
  ];
  let closed = false;
  const fake = () => ({
    async *[Symbol.asyncIterator]() {
      for (const e of events) yield e;
      await new Promise((r) => setTimeout(r, 50));
    },
    close: () => void (closed = true),
  });
  const batches: Set<string>[] = [];
  const sub = watchFiles(["/w/p.json"], { debounceMs: 5, watchFs: fake }).subscribe((b) =>
    batches.push(b)
  );
  await new Promise((r) => setTimeout(r, 30));
  sub.unsubscribe();
  assert.deepEqual(batches.map((b) => [...b]), [["/w/p.json"]]);
  assert.ok(closed);
});
