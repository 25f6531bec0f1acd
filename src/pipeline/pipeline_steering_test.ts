/**
 * The pipeline under the user's steering: pause, move to the front, cancel, and reject with a
 * note. Fakes count the calls; the steering is the real one, on a temporary batch folder.
 */
import assert from "node:assert/strict";
import { from, lastValueFrom, toArray } from "rxjs";
import { uniformCritique } from "../../tests/critique_fixture.ts";
import { type PipelineEvent, type PipelineOptions, runPipeline } from "./pipeline.ts";
import type { GenerateRequest, ImageGenerator } from "../providers/provider.ts";
import { PromptQueue } from "../steering/queue.ts";
import { Steering } from "../steering/steering.ts";
import { MemorySink } from "./_test_memory_sink.ts";
import { FakeCritic, fakeImage, FakeRefiner, QUICK_OPTIONS, specs } from "./_test_fakes.ts";

/** A generator whose calls wait until the test lets them go (all at once by default). */
class Generator implements ImageGenerator {
  readonly name = "fake";
  calls: GenerateRequest[] = [];
  #held = false;
  #waiting: Array<() => void> = [];
  hold() {
    this.#held = true;
  }
  release() {
    this.#held = false;
    for (const go of this.#waiting.splice(0)) go();
  }
  async generate(req: GenerateRequest) {
    this.calls.push(req);
    if (this.#held) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    return fakeImage(req, { costUsd: 0.01 });
  }
}

interface Fixture {
  options: PipelineOptions;
  generator: Generator;
  critic: FakeCritic;
  refiner: FakeRefiner;
  sink: MemorySink;
  events: PipelineEvent[];
  steering: Steering;
  /** Calls of `resumed()`: steps waiting out a pause. */
  waits: { count: number };
  close(): Promise<void>;
}

async function fixture(overrides: Partial<PipelineOptions> = {}): Promise<Fixture> {
  const dir = await Deno.makeTempDir();
  const steering = await Steering.open(dir);
  const waits = { count: 0 };
  const generator = new Generator();
  const critic = new FakeCritic((req) =>
    uniformCritique(5 + req.iteration, { summary: "fake", problems: ["dull"] })
  );
  const refiner = new FakeRefiner((req) =>
    `${req.notes?.join(" ") ?? ""} ${req.prompt} +fix`.trim()
  );
  const sink = new MemorySink();
  const events: PipelineEvent[] = [];
  const options: PipelineOptions = {
    generator,
    critic,
    refiner,
    sink,
    ...QUICK_OPTIONS,
    iterations: 2,
    concurrency: { generate: 1, critique: 1, refine: 1 },
    model: "fake-model",
    hashFor: (spec) => `hash-${spec.prompt}`,
    onEvent: (event) => events.push(event),
    // What the pipeline sees of the steering, with its waits counted.
    steering: {
      get paused() {
        return steering.paused;
      },
      resumed: (signal) => (waits.count++, steering.resumed(signal)),
      cancelled: (id) => steering.cancelled(id),
      pendingNotes: (id) => steering.pendingNotes(id),
      markDone: (seqs) => steering.markDone(seqs),
    },
    ...overrides,
  };
  return {
    options,
    generator,
    critic,
    refiner,
    sink,
    events,
    steering,
    waits,
    close: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Waits until `condition` holds, checking after each turn of the event loop. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let turns = 0; !condition(); turns++) {
    if (turns > 100_000) throw new Error(`Gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

const calls = (f: Fixture) =>
  f.generator.calls.length + f.critic.calls.length + f.refiner.calls.length;

Deno.test("runPipeline() starts no step while paused; calls in flight finish; resume goes on", async () => {
  const f = await fixture({ concurrency: { generate: 2, critique: 2, refine: 2 } });
  try {
    f.generator.hold();
    const done = lastValueFrom(runPipeline(from(specs(4)), f.options).pipe(toArray()));
    await until(() => f.generator.calls.length === 1, "the first generation in flight");
    await f.steering.apply({ type: "pause" });
    f.generator.release();
    await until(
      () => f.events.some((e) => e.type === "step-end" && e.step === "generate"),
      "the call in flight to be saved",
    );
    // p0's critique, and p1's generation that waited for p0's to succeed, wait out the pause.
    await until(() => f.waits.count >= 2, "the next steps to wait");
    assert.equal(calls(f), 1, "no call started while paused");
    await f.steering.apply({ type: "resume" });
    const outcomes = await done;
    assert.ok(outcomes.every((o) => o.status === "completed"));
    // 4 prompts × (2 generations, 2 critiques, 1 refinement).
    assert.equal(calls(f), 20);
  } finally {
    await f.close();
  }
});

Deno.test("runPipeline() does not count a pause against a call's deadline", async () => {
  const f = await fixture({ timeoutMs: 100, retry: { maxAttempts: 1, minTimeout: 1, jitter: 0 } });
  try {
    f.generator.hold();
    const done = lastValueFrom(runPipeline(from(specs(1)), f.options).pipe(toArray()));
    await until(() => f.generator.calls.length === 1, "the first generation");
    await f.steering.apply({ type: "pause" });
    f.generator.release();
    await until(() => f.waits.count >= 1, "the critique to wait out the pause");
    // Paused for several deadlines: a slower machine only makes the pause longer.
    await new Promise((resolve) => setTimeout(resolve, 400));
    await f.steering.apply({ type: "resume" });
    const [outcome] = await done;
    assert.equal(outcome!.status, "completed", String(outcome!.error?.message));
    assert.equal(f.events.filter((e) => e.type === "retry").length, 0);
  } finally {
    await f.close();
  }
});

Deno.test("runPipeline() drains on a stop while paused: nothing more starts, prompts end interrupted", async () => {
  const stop = new AbortController();
  const f = await fixture({ stop: stop.signal });
  try {
    await f.steering.apply({ type: "pause" });
    const done = lastValueFrom(runPipeline(from(specs(3)), f.options).pipe(toArray()));
    await until(() => f.waits.count >= 1, "a step to wait out the pause");
    stop.abort();
    const outcomes = await done;
    assert.equal(calls(f), 0);
    assert.ok(outcomes.every((o) => o.status === "interrupted" && o.stopCause === "interrupt"));
  } finally {
    await f.close();
  }
});

Deno.test("runPipeline() from a queue starts a prompt moved to the front next", async () => {
  const f = await fixture({ iterations: 1 });
  try {
    f.generator.hold();
    const queue = new PromptQueue(specs(5));
    const done = lastValueFrom(runPipeline(queue, f.options).pipe(toArray()));
    await until(() => f.generator.calls.length === 1, "the first generation");
    assert.equal(queue.front("p3"), true, "p3 was still queued");
    f.generator.release();
    await done;
    const order = f.generator.calls.map((c) => c.spec.id);
    assert.equal(order.length, 5);
    // Ahead of every prompt still queued with it; a prompt already taken keeps its turn.
    assert.ok(order.indexOf("p3") < order.indexOf("p2"), order.join(" "));
    assert.ok(order.indexOf("p3") < order.indexOf("p4"), order.join(" "));
  } finally {
    await f.close();
  }
});

Deno.test("runPipeline() starts nothing more of a cancelled prompt; it ends interrupted, not failed", async () => {
  const f = await fixture();
  try {
    await f.steering.apply({ type: "cancel", id: "p2" });
    f.generator.hold();
    const done = lastValueFrom(runPipeline(from(specs(3)), f.options).pipe(toArray()));
    await until(() => f.generator.calls.length === 1, "p0's first generation");
    await f.steering.apply({ type: "cancel", id: "p0" });
    f.generator.release();
    const outcomes = await done;
    const byId = new Map(outcomes.map((o) => [o.id, o]));
    assert.equal(byId.get("p0")!.status, "interrupted");
    assert.equal(byId.get("p0")!.stopCause, "cancel");
    assert.equal(byId.get("p2")!.stopCause, "cancel");
    assert.equal(byId.get("p1")!.status, "completed");
    const ids = [...f.generator.calls, ...f.critic.calls, ...f.refiner.calls].map((c) => c.spec.id);
    assert.deepEqual(ids.filter((id) => id === "p0"), ["p0"], "only the call in flight");
    assert.equal(ids.filter((id) => id === "p2").length, 0);
    // Saved as cancelled, the image in flight included; p2 was never begun but says so too.
    const p0 = f.sink.records.get("p0")!;
    assert.equal(p0.status, "interrupted");
    assert.equal(p0.stopCause, "cancel");
    assert.equal(p0.iterations[0]!.image, "iteration-1.png");
    assert.equal(f.sink.records.get("p2")!.stopCause, "cancel");
  } finally {
    await f.close();
  }
});

Deno.test("runPipeline() gives a rejected prompt's note to its next refinement, first, and records it", async () => {
  const f = await fixture();
  try {
    const entry = await f.steering.apply({ type: "reject", id: "p0", note: "make it night" });
    await lastValueFrom(runPipeline(from(specs(2)), f.options).pipe(toArray()));
    const [p0, p1] = ["p0", "p1"].map((id) => f.refiner.calls.find((c) => c.spec.id === id)!);
    assert.deepEqual(p0!.notes, ["make it night"]);
    assert.equal(p1!.notes, undefined);
    const record = f.sink.records.get("p0")!;
    assert.equal(record.iterations[0]!.next!.note, "make it night");
    assert.equal(record.iterations[1]!.note, "make it night");
    assert.equal(record.iterations[1]!.prompt, "make it night prompt 0 +fix");
    assert.deepEqual(f.steering.pendingNotes("p0"), []);
    const later = await Steering.open(f.steering.batchDir);
    assert.deepEqual(later.pendingNotes("p0"), [], `note ${entry.seq} is marked done on disk`);
  } finally {
    await f.close();
  }
});

Deno.test("runPipeline() reopens a finished prompt for exactly one round with its note", async () => {
  const f = await fixture();
  try {
    await lastValueFrom(runPipeline(from(specs(2)), f.options).pipe(toArray()));
    const before = calls(f);
    await f.steering.apply({ type: "reject", id: "p1", note: "add a red boat", iteration: 2 });
    // The run's note pass: the rejected prompt only, built one round deeper than it is.
    const outcomes = await lastValueFrom(
      runPipeline(from(specs(2).slice(1)), {
        ...f.options,
        iterations: 3,
        reopen: (id) => id === "p1",
      }).pipe(toArray()),
    );
    // One refinement of round 2, one generation and one critique of round 3.
    assert.equal(calls(f) - before, 3);
    assert.deepEqual(f.refiner.calls.at(-1)!.notes, ["add a red boat"]);
    assert.equal(f.refiner.calls.at(-1)!.iteration, 2);
    const p1 = f.sink.records.get("p1")!;
    assert.equal(p1.iterations.length, 3);
    assert.equal(p1.iterations[2]!.note, "add a red boat");
    assert.equal(p1.status, "completed");
    assert.deepEqual(outcomes.map((o) => [o.id, o.status, o.iterations]), [["p1", "completed", 3]]);
  } finally {
    await f.close();
  }
});
