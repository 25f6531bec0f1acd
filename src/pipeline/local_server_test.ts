/**
 * The pipeline with a generator on the user's own GPU: one job at a time whatever the
 * concurrency, its queue on the progress line, and a request id recorded before it is sent.
 */
import assert from "node:assert/strict";
import { from, lastValueFrom, toArray } from "rxjs";
import { uniformCritique } from "../../tests/critique_fixture.ts";
import { ProviderError } from "../errors.ts";
import { type PipelineEvent, type PipelineOptions, runPipeline } from "./pipeline.ts";
import { MemorySink } from "./_test_memory_sink.ts";
import { fakeImage, QUICK_OPTIONS, specs } from "./_test_fakes.ts";
import { formatProgress, ProgressTracker } from "../batch/progress.ts";
import type { GenerateRequest, ImageGenerator } from "../providers/provider.ts";

/** A GPU server: counts the jobs it has at once. */
class LocalServer implements ImageGenerator {
  readonly name = "gpu";
  readonly maxConcurrency: number;
  inFlight = 0;
  maxInFlight = 0;
  calls: GenerateRequest[] = [];
  constructor(
    maxConcurrency = 1,
    readonly behave: (req: GenerateRequest) => Promise<void> = () =>
      new Promise((r) => setTimeout(r, 1)),
  ) {
    this.maxConcurrency = maxConcurrency;
  }
  async generate(req: GenerateRequest) {
    this.calls.push(req);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.behave(req);
    } finally {
      this.inFlight--;
    }
    return fakeImage(req, { costUsd: 0, requestId: `job-${this.calls.length}` });
  }
}

function options(overrides: Partial<PipelineOptions>): PipelineOptions & { sink: MemorySink } {
  return {
    generator: new LocalServer(),
    critic: {
      name: "critic",
      critique: () => Promise.resolve({ critique: uniformCritique(6), model: "c", costUsd: 0 }),
    },
    refiner: {
      name: "refiner",
      refine: (req) =>
        Promise.resolve({ prompt: `${req.prompt} +fix`, changes: [], model: "r", costUsd: 0 }),
    },
    sink: new MemorySink(),
    iterations: 3,
    concurrency: { generate: 8, critique: 8, refine: 8 },
    ...QUICK_OPTIONS,
    model: "workflow",
    hashFor: (spec) => spec.prompt,
    ...overrides,
  } as PipelineOptions & { sink: MemorySink };
}

for (const concurrency of [{ generate: 8, critique: 8, refine: 8 }, "auto"] as const) {
  Deno.test(
    `runPipeline() sends a one-job server one generation at a time across rounds (concurrency ${
      JSON.stringify(concurrency)
    })`,
    async () => {
      const server = new LocalServer(1);
      const opts = options({ generator: server, concurrency });
      const outcomes = await lastValueFrom(runPipeline(from(specs(6)), opts).pipe(toArray()));
      assert.ok(outcomes.every((o) => o.status === "completed"));
      assert.equal(server.calls.length, 18);
      assert.equal(server.maxInFlight, 1);
    },
  );
}

Deno.test("runPipeline() lets a server that takes two have two, and no more", async () => {
  const server = new LocalServer(2, () => new Promise((r) => setTimeout(r, 3)));
  await lastValueFrom(runPipeline(from(specs(6)), options({ generator: server })).pipe(toArray()));
  assert.equal(server.maxInFlight, 2);
});

Deno.test("runPipeline() tells how many generations wait for the local server, and the progress line shows it", async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const server = new LocalServer(1, () => gate);
  const events: PipelineEvent[] = [];
  const tracker = new ProgressTracker(4, { stepsPerPrompt: 5 });
  let seen = "";
  const opts = options({
    generator: server,
    iterations: 1,
    onEvent: (event) => {
      events.push(event);
      tracker.update(event);
      // Once three wait behind the one the server runs, the line says so.
      if (event.type === "queue" && event.waiting === 3) {
        seen = formatProgress(tracker.snapshot());
        open();
      }
    },
  });
  await lastValueFrom(runPipeline(from(specs(4)), opts).pipe(toArray()));
  assert.match(seen, /^0\/4 prompts \| generating 1 \(3 queued\) · critiquing 0/);
  const waits = events.filter((e) => e.type === "queue").map((e) => e.waiting);
  assert.equal(Math.max(...waits), 3);
  assert.equal(waits.at(-1), 0, "the queue ends empty");
  assert.equal(tracker.snapshot().queued, undefined);
});

Deno.test("runPipeline() records a request id the generator names itself before it is sent, and drops it when refused", async () => {
  const sink = new MemorySink();
  const onDisk: Array<string | undefined> = [];
  const server = new LocalServer(1, async (req) => {
    await req.onSubmitting!(`id-${req.spec.id}`);
    // What the prompt's folder says at the moment the request goes out.
    onDisk.push(sink.records.get(req.spec.id)?.pending?.requestId);
    if (req.spec.id === "p1") {
      throw new ProviderError("refused", { provider: "gpu", retryable: false });
    }
  });
  const outcomes = await lastValueFrom(
    runPipeline(from(specs(2)), options({ generator: server, sink, iterations: 1 })).pipe(
      toArray(),
    ),
  );
  assert.deepEqual(onDisk, ["id-p0", "id-p1"]);
  assert.equal(outcomes.find((o) => o.id === "p1")!.status, "failed");
  assert.equal(sink.records.get("p1")!.pending, undefined, "a refused request is not pending");
  assert.equal(sink.records.get("p0")!.pending, undefined, "a delivered one neither");
});

Deno.test("runPipeline() hands an earlier run's recorded request to the generator to recover, not to send again", async () => {
  const sink = new MemorySink();
  let recorded!: () => void;
  const onDisk = new Promise<void>((r) => (recorded = r));
  const hung = new LocalServer(1, async (req) => {
    await req.onSubmitting!("job-from-the-killed-run");
    recorded();
    // The process dies here: it never hears back.
    await new Promise((_, reject) => req.signal.addEventListener("abort", reject));
  });
  const subscription = runPipeline(
    from(specs(1)),
    options({ generator: hung, sink, iterations: 1 }),
  ).subscribe({ error: () => {} });
  await onDisk;
  // What a kill -9 leaves: the folder as it was at that moment.
  const left = new MemorySink();
  left.records.set("p0", structuredClone(sink.records.get("p0")!));
  subscription.unsubscribe();
  assert.equal(left.records.get("p0")!.pending?.requestId, "job-from-the-killed-run");
  const again = new LocalServer(1);
  await lastValueFrom(
    runPipeline(from(specs(1)), options({ generator: again, sink: left, iterations: 1 })).pipe(
      toArray(),
    ),
  );
  assert.equal(again.calls.length, 1);
  assert.equal(again.calls[0]!.recoverRequestId, "job-from-the-killed-run");
  assert.equal(left.records.get("p0")!.status, "completed");
});
