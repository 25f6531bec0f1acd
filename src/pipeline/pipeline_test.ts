import assert from "node:assert/strict";
import { from, lastValueFrom, toArray } from "rxjs";
import type { CheckKind, Critique } from "../providers/critique.ts";
import { uniformCritique } from "../../tests/critique_fixture.ts";
import type { AdaptiveLimiter } from "../async/adaptive.ts";
import { Budget } from "../async/budget.ts";
import { ProviderError } from "../errors.ts";
import { type PipelineOptions, runPipeline } from "./pipeline.ts";
import { reachedTarget } from "./next_action.ts";
import type { CritiqueRequest, GenerateRequest, ImageGenerator } from "../providers/provider.ts";
import { MemorySink } from "./_test_memory_sink.ts";
import { FakeCritic, fakeImage, FakeRefiner, QUICK_OPTIONS, specs } from "./_test_fakes.ts";

function critique(score: number): Critique {
  return uniformCritique(score, { summary: "fake", problems: score < 9 ? ["not enough"] : [] });
}

/** A fake generator that counts concurrency and can fail on cue. */
class FakeGenerator implements ImageGenerator {
  readonly name = "fake";
  inFlight = 0;
  maxInFlight = 0;
  calls: GenerateRequest[] = [];
  aborted = 0;
  constructor(readonly behave: (req: GenerateRequest, call: number) => Promise<void> = tick) {}
  async generate(req: GenerateRequest) {
    this.calls.push(req);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    req.signal.addEventListener("abort", () => this.aborted++);
    try {
      await this.behave(req, this.calls.length);
    } finally {
      this.inFlight--;
    }
    return fakeImage(req, { seed: req.seed, costUsd: 0.01, requestId: `req-${this.calls.length}` });
  }
}

const tick = () => new Promise<void>((r) => setTimeout(r, 2));

/** Refined prompts (longer) score higher, like a critic that sees the fixes. */
const seeingCritic = () =>
  new FakeCritic((req) => critique(Math.min(10, 5 + req.prompt.split("+").length)));

const fixingRefiner = () =>
  new FakeRefiner((req) => `${req.prompt} +fix`, [{ change: "added +fix", reason: "critique" }]);

function options(
  overrides: Partial<PipelineOptions> & { sink?: MemorySink } = {},
): PipelineOptions & {
  sink: MemorySink;
} {
  return {
    ...QUICK_OPTIONS,
    generator: new FakeGenerator(),
    critic: seeingCritic(),
    refiner: fixingRefiner(),
    sink: new MemorySink(),
    iterations: 2,
    concurrency: { generate: 2, critique: 2, refine: 2 },
    model: "fake-model",
    seedFor: (spec) => 1000 + Number(spec.id.slice(1)),
    hashFor: (spec) => `hash-${spec.prompt}`,
    ...overrides,
  } as PipelineOptions & { sink: MemorySink };
}

Deno.test("runPipeline() runs every prompt through generate, critique, refine, generate, critique", async () => {
  const opts = options();
  const outcomes = await lastValueFrom(runPipeline(from(specs(3)), opts).pipe(toArray()));
  assert.equal(outcomes.length, 3);
  assert.ok(outcomes.every((o) => o.status === "completed"));
  const record = opts.sink.records.get("p1")!;
  assert.equal(record.status, "completed");
  assert.equal(record.iterations.length, 2);
  assert.equal(record.iterations[0]!.prompt, "prompt 1");
  assert.equal(record.iterations[0]!.refinedPrompt, "prompt 1 +fix");
  assert.equal(record.iterations[1]!.prompt, "prompt 1 +fix");
  assert.equal(record.iterations[1]!.refinedPrompt, undefined);
  assert.equal(record.iterations[0]!.seed, 1001);
  assert.equal(record.iterations[1]!.seed, 1001);
  assert.equal(record.bestIteration, 2);
  assert.equal(record.iterations[0]!.steps.generate!.requestId !== undefined, true);
  // 2 images at 0.01, 2 critiques at 0.001, 1 refinement at 0.002.
  assert.equal(record.costUsd, 0.024);
  assert.ok(opts.sink.files.has("p1/iteration-1.refined-prompt.txt"));
  assert.equal(opts.sink.files.get("p1/best.png"), "iteration-2.png");
  assert.equal(record.bestImage, "best.png");
  assert.ok(!opts.sink.files.has("p1/iteration-2.refined-prompt.txt"));
});

Deno.test("runPipeline() never has more generations in flight than the stage's concurrency", async () => {
  const generator = new FakeGenerator(() => new Promise((r) => setTimeout(r, 5)));
  const opts = options({
    generator,
    iterations: 1,
    concurrency: { generate: 3, critique: 1, refine: 1 },
  });
  await lastValueFrom(runPipeline(from(specs(10)), opts).pipe(toArray()));
  assert.equal(generator.calls.length, 10);
  assert.equal(generator.maxInFlight, 3);
});

Deno.test("runPipeline() records one prompt's failure and completes the others", async () => {
  const generator = new FakeGenerator((req) =>
    req.spec.id === "p1"
      ? Promise.reject(
        new ProviderError("content policy", { provider: "fake", retryable: false, status: 422 }),
      )
      : tick()
  );
  const opts = options({ generator });
  const outcomes = await lastValueFrom(runPipeline(from(specs(3)), opts).pipe(toArray()));
  const failed = outcomes.filter((o) => o.status === "failed");
  assert.deepEqual(failed.map((o) => o.id), ["p1"]);
  assert.equal(failed[0]!.error?.message, "content policy");
  assert.equal(failed[0]!.error?.status, 422);
  const record = opts.sink.records.get("p1")!;
  assert.equal(record.status, "failed");
  assert.equal(record.error?.step, "generate");
  assert.equal(opts.sink.records.get("p0")!.status, "completed");
  // A final error is not retried.
  assert.equal(generator.calls.filter((c) => c.spec.id === "p1").length, 1);
});

Deno.test("runPipeline() retries a retryable failure and records the attempts", async () => {
  const generator = new FakeGenerator((req, n) =>
    req.spec.id === "p0" && n <= 2
      ? Promise.reject(
        new ProviderError("429", { provider: "fake", retryable: true, retryAfterMs: 1 }),
      )
      : tick()
  );
  const opts = options({
    generator,
    iterations: 1,
    concurrency: { generate: 1, critique: 1, refine: 1 },
  });
  const outcomes = await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  assert.equal(outcomes[0]!.status, "completed");
  assert.equal(opts.sink.records.get("p0")!.iterations[0]!.steps.generate!.attempts, 3);
});

Deno.test("runPipeline() stops the whole run on a fatal error and aborts calls in flight", async () => {
  // p0 succeeds (so the service takes calls side by side), p1 then fails fatally while p2 and
  // p3 are still running.
  const generator = new FakeGenerator((req) =>
    req.spec.id === "p0" ? tick() : req.spec.id === "p1"
      ? new Promise((_, reject) =>
        setTimeout(
          () =>
            reject(
              new ProviderError("bad key", { provider: "fake", retryable: false, fatal: true }),
            ),
          5,
        )
      )
      : new Promise((r) => setTimeout(r, 200))
  );
  const opts = options({
    generator,
    iterations: 1,
    concurrency: { generate: 3, critique: 1, refine: 1 },
  });
  await assert.rejects(
    lastValueFrom(runPipeline(from(specs(6)), opts).pipe(toArray())),
    /bad key/,
  );
  assert.equal(generator.calls.length, 4);
  assert.equal(generator.aborted, 2);
  assert.equal(opts.sink.records.get("p1")!.status, "failed");
});

Deno.test("runPipeline() sends one call to a service until one has succeeded: a bad key costs one call", async () => {
  const generator = new FakeGenerator(() =>
    Promise.reject(
      new ProviderError("bad key", { provider: "fake", retryable: false, fatal: true }),
    )
  );
  const opts = options({ generator, concurrency: { generate: 8, critique: 8, refine: 8 } });
  await assert.rejects(lastValueFrom(runPipeline(from(specs(8)), opts).pipe(toArray())), /bad key/);
  assert.equal(generator.calls.length, 1);

  // Non-fatal failures: the next caller tries, one at a time, until a call succeeds.
  let n = 0;
  const flaky = new FakeGenerator(async () => {
    await tick();
    if (++n <= 2) throw new ProviderError("busy", { provider: "fake", retryable: false });
  });
  const more = options({ generator: flaky, concurrency: { generate: 8, critique: 8, refine: 8 } });
  const outcomes = await lastValueFrom(runPipeline(from(specs(8)), more).pipe(toArray()));
  assert.equal(outcomes.filter((o) => o.status === "failed").length, 2);
  assert.ok(flaky.maxInFlight > 1, "side by side once a call succeeded");
  assert.equal(flaky.calls.slice(0, 3).length, 3);
});

Deno.test("runPipeline() reserves each step's estimate: calls in flight never carry the run past the budget", async () => {
  const generator = new FakeGenerator(() => new Promise((r) => setTimeout(r, 5)));
  Object.assign(generator, { estimateCostUsd: () => 0.01 });
  const opts = options({
    generator,
    concurrency: { generate: 8, critique: 8, refine: 8 },
    iterations: 1,
    budget: new Budget(0.035),
  });
  const outcomes = await lastValueFrom(runPipeline(from(specs(8)), opts).pipe(toArray()));
  // Each image costs 0.01 and each critique 0.001 (not estimated): three images fit, not four.
  assert.equal(generator.calls.length, 3);
  assert.equal(outcomes.filter((o) => o.status === "completed").length, 3);
  const budgeted = outcomes.filter((o) => o.status === "interrupted");
  assert.equal(budgeted.length, 5);
  assert.ok(budgeted.every((o) => o.stopCause === "budget"));
  assert.ok(opts.budget!.spentUsd <= 0.035, `spent ${opts.budget!.spentUsd}`);

  const none = options({ generator: new FakeGenerator(), budget: new Budget(0) });
  Object.assign(none.generator, { estimateCostUsd: () => 0.01 });
  await lastValueFrom(runPipeline(from(specs(3)), none).pipe(toArray()));
  assert.equal((none.generator as FakeGenerator).calls.length, 0, "--max-cost 0 makes no call");
});

Deno.test("runPipeline() starts no call once stopped: not a retry, not a call waiting for its turn", async () => {
  const stop = new AbortController();
  let first = true;
  const generator = new FakeGenerator(async () => {
    await new Promise((r) => setTimeout(r, 20));
    if (first) {
      first = false;
      stop.abort();
      throw new ProviderError("flaky", { provider: "fake", retryable: true });
    }
  });
  const opts = options({
    generator,
    concurrency: { generate: 1, critique: 1, refine: 1 },
    stop: stop.signal,
    retry: { minTimeout: 10_000, maxTimeout: 10_000, jitter: 0 },
  });
  const started = performance.now();
  const outcomes = await lastValueFrom(runPipeline(from(specs(3)), opts).pipe(toArray()));
  assert.equal(generator.calls.length, 1, "no retry after the stop");
  assert.ok(outcomes.every((o) => o.status === "interrupted"));
  assert.equal(opts.sink.records.get("p0")!.status, "interrupted");
  assert.ok(performance.now() - started < 10_000, "the retry's wait ends at the stop");
});

Deno.test("runPipeline() ends a prompt as converged when the refiner returns the same prompt", async () => {
  const refiner = fixingRefiner();
  refiner.refine = (req) => {
    refiner.calls.push(req);
    return Promise.resolve({ prompt: ` ${req.prompt} `, changes: [], model: "m", costUsd: 0 });
  };
  const generator = new FakeGenerator();
  const opts = options({ refiner, generator, iterations: 4 });
  const outcomes = await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  assert.equal(outcomes[0]!.status, "completed");
  assert.equal(generator.calls.length, 1, "no image paid for twice");
  assert.equal(opts.sink.records.get("p0")!.endReason, "converged");
});

Deno.test("runPipeline() records what a failed call was billed", async () => {
  const generator = new FakeGenerator(() =>
    Promise.reject(
      new ProviderError("flagged", { provider: "fake", retryable: false, costUsd: 0.004 }),
    )
  );
  const opts = options({ generator, iterations: 1 });
  await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  const record = opts.sink.records.get("p0")!;
  assert.equal(record.status, "failed");
  assert.equal(record.costUsd, 0.004);
  assert.equal(record.charges?.[0]?.costUsd, 0.004);
});

Deno.test("runPipeline() gives the refiner the history of earlier rounds", async () => {
  const refiner = fixingRefiner();
  const opts = options({
    refiner,
    iterations: 3,
    concurrency: { generate: 1, critique: 1, refine: 1 },
  });
  await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  assert.equal(refiner.calls.length, 2);
  assert.deepEqual(refiner.calls[1]!.history.map((h) => h.prompt), ["prompt 0", "prompt 0 +fix"]);
});

Deno.test("runPipeline() stops a prompt early once it reaches the target score", async () => {
  const generator = new FakeGenerator();
  const opts = options({ generator, iterations: 4, targetScore: 7 });
  const outcomes = await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  // Scores: 6, 7 → stops after round 2.
  assert.equal(outcomes[0]!.iterations, 2);
  assert.equal(generator.calls.length, 2);
  assert.equal(outcomes[0]!.status, "completed");
});

Deno.test("runPipeline() times out a hanging call as retryable, then fails the prompt", async () => {
  const generator = new FakeGenerator((req) =>
    new Promise((_, reject) =>
      req.signal.addEventListener("abort", () => reject(req.signal.reason))
    )
  );
  const opts = options({
    generator,
    timeoutMs: 10,
    retry: { maxAttempts: 2, minTimeout: 1, jitter: 0 },
  });
  const outcomes = await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  assert.equal(outcomes[0]!.status, "failed");
  assert.match(outcomes[0]!.error!.message, /Timed out after 10 ms/);
  assert.equal(generator.calls.length, 2);
  assert.equal(generator.aborted, 2);
});

Deno.test("reachedTarget() needs the score and every per-criterion minimum", () => {
  const c = critique(8);
  assert.equal(reachedTarget({}, c), false);
  assert.equal(reachedTarget({ targetScore: 8 }, c), true);
  assert.equal(reachedTarget({ targetScore: 8.5 }, c), false);
  assert.equal(reachedTarget({ targetScore: 7, targetCriteria: { lighting: 9 } }, c), false);
  assert.equal(reachedTarget({ targetCriteria: { lighting: 8, mood: 7 } }, c), true);
});

Deno.test("runPipeline() keeps the best round: a worse second image does not replace the first", async () => {
  const critic = seeingCritic();
  critic.critique = (req) => {
    critic.calls.push(req);
    return Promise.resolve({
      critique: critique(req.iteration === 1 ? 8 : 5),
      model: "m",
      costUsd: 0,
    });
  };
  const opts = options({ critic });
  await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  const record = opts.sink.records.get("p0")!;
  assert.equal(record.bestIteration, 1);
  assert.equal(record.bestScore, 8);
  assert.equal(opts.sink.files.get("p0/best.png"), "iteration-1.png");
});

Deno.test("runPipeline() with 'auto' concurrency gives each provider one limit shared by all its stages", async () => {
  const generator = new FakeGenerator(() => new Promise((r) => setTimeout(r, 3)));
  const opts = options({
    generator,
    concurrency: "auto",
    adaptive: { initialLimit: 2, maxLimit: 2 },
  });
  const outcomes = await lastValueFrom(runPipeline(from(specs(12)), opts).pipe(toArray()));
  assert.ok(outcomes.every((o) => o.status === "completed"));
  assert.equal(generator.calls.length, 24);
  // Both generation stages together: never more than the provider's limit.
  assert.equal(generator.maxInFlight, 2);
});

Deno.test("runPipeline() with 'auto' concurrency gives a provider's permits to the prompt furthest along", async () => {
  const pending: Array<{ name: string; go: () => void }> = [];
  const generator = new FakeGenerator((req) =>
    new Promise<void>((go) => pending.push({ name: `${req.spec.id}/${req.iteration}`, go }))
  );
  const limiters = new Map<string, AdaptiveLimiter>();
  let finished = 0;
  const opts = options({
    generator,
    concurrency: "auto",
    // One generation at a time, so the order of the permits is the order of the calls.
    adaptive: { initialLimit: 1, maxLimit: 1, probe: false },
    sharedLimiters: limiters,
    onEvent: (event) => event.type === "prompt-end" && finished++,
  });
  const outcomes = lastValueFrom(runPipeline(from(specs(3)), opts).pipe(toArray()));
  const order: string[] = [];
  for (let i = 0; i < 6; i++) {
    // Settled: one generation running, every other unfinished prompt waiting for its permit.
    while (
      pending.length !== 1 || limiters.get("fake")!.stats().waiting !== 3 - 1 - finished
    ) {
      await new Promise((r) => setTimeout(r, 0));
    }
    const call = pending.shift()!;
    order.push(call.name);
    call.go();
  }
  assert.equal((await outcomes).length, 3);
  // First come first served would run p2/1 before p0/2 and finish nothing until the fifth call.
  assert.deepEqual(order, ["p0/1", "p1/1", "p0/2", "p1/2", "p2/1", "p2/2"]);
  assert.equal(generator.calls.length, 6);
});

Deno.test("runPipeline() pipelines given the same sharedLimiters share each provider's limit", async () => {
  const generator = new FakeGenerator(() => new Promise((r) => setTimeout(r, 3)));
  const shared = new Map();
  const run = (model: string) =>
    runPipeline(
      from(specs(8)),
      options({
        generator,
        model,
        concurrency: "auto",
        adaptive: { initialLimit: 2, maxLimit: 2 },
        sharedLimiters: shared,
      }),
    ).pipe(toArray());
  // Two models compared side by side, as `--models a,b` runs them.
  const [a, b] = await Promise.all([lastValueFrom(run("a")), lastValueFrom(run("b"))]);
  assert.equal(a.length + b.length, 16);
  assert.equal(generator.calls.length, 32);
  assert.equal(generator.maxInFlight, 2, "one limit for the provider across both pipelines");
  assert.deepEqual([...shared.keys()].sort(), ["fake", "fake-critic", "fake-refiner"]);
});

Deno.test("runPipeline() with 'auto' concurrency backs off when the service answers 429", async () => {
  /** A service that takes 4 calls at once and refuses the rest with a retry hint. */
  const overloaded = async (concurrency: PipelineOptions["concurrency"]) => {
    let refused = 0;
    const generator: FakeGenerator = new FakeGenerator(async () => {
      if (generator.inFlight > 4) {
        refused++;
        throw new ProviderError("rate limited", {
          provider: "fake",
          retryable: true,
          status: 429,
          retryAfterMs: 10,
        });
      }
      await new Promise((r) => setTimeout(r, 10));
    });
    const opts = options({
      generator,
      iterations: 1,
      concurrency,
      adaptive: { initialLimit: 16 },
      retry: { minTimeout: 1, maxTimeout: 2, jitter: 0, maxAttempts: 20 },
    });
    const outcomes = await lastValueFrom(runPipeline(from(specs(40)), opts).pipe(toArray()));
    return { refused, completed: outcomes.filter((o) => o.status === "completed").length };
  };
  const fixed = await overloaded({ generate: 16, critique: 16, refine: 16 });
  const adaptive = await overloaded("auto");
  assert.equal(adaptive.completed, 40);
  assert.ok(
    adaptive.refused * 2 < fixed.refused,
    `429s: ${adaptive.refused} adaptive, ${fixed.refused} fixed at 16`,
  );
});

/** A critic with a brief of three checks; each round passes the checks `passes(round)` says. */
function briefCritic(
  rounds: Array<{ passed: number; score: number }>,
  kind: CheckKind = "entity",
) {
  const critic = seeingCritic();
  let briefs = 0;
  const calls: CritiqueRequest[] = [];
  return {
    critic: Object.assign(critic, {
      brief: () => {
        briefs++;
        return Promise.resolve({
          brief: {
            checks: [1, 2, 3].map((n) => ({
              id: `c${n}`,
              question: `Is thing ${n} there?`,
              kind,
            })),
          },
          model: "fake-critic-1",
          costUsd: 0.0005,
        });
      },
      critique: (req: CritiqueRequest) => {
        calls.push(req);
        const round = rounds[calls.length - 1] ?? rounds.at(-1)!;
        return Promise.resolve({
          critique: {
            ...critique(round.score),
            checks: [1, 2, 3].map((n) => ({
              id: `c${n}`,
              passed: n <= round.passed,
              reason: "fake",
            })),
          },
          model: "fake-critic-1",
          costUsd: 0.001,
        });
      },
    }),
    briefs: () => briefs,
    calls,
  };
}

Deno.test("runPipeline() makes the brief once per prompt, saves it, and hands it to every critique", async () => {
  const fake = briefCritic([{ passed: 1, score: 6 }, { passed: 2, score: 7 }]);
  const opts = options({ critic: fake.critic, iterations: 2 });
  await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  assert.equal(fake.briefs(), 1);
  assert.ok(opts.sink.files.has("p0/brief.json"));
  assert.equal(fake.calls.length, 2);
  assert.ok(fake.calls.every((c) => c.brief?.checks.length === 3), "every round gets the brief");
  const record = opts.sink.records.get("p0")!;
  assert.equal(record.brief?.checks.length, 3);
  assert.equal(record.costUsd, 0.01 * 2 + 0.001 * 2 + 0.002 + 0.0005, "the brief is costed");

  // Resumed: the saved brief is used, not made again.
  const again = briefCritic([{ passed: 3, score: 9 }]);
  const resumed = options({ critic: again.critic, iterations: 3, sink: opts.sink });
  await lastValueFrom(runPipeline(from(specs(1)), resumed).pipe(toArray()));
  assert.equal(again.briefs(), 0);
});

Deno.test("runPipeline() keeps the round with most checks passed, then the best score; a tie goes to the earlier round", async () => {
  const fake = briefCritic([
    { passed: 2, score: 9 },
    { passed: 3, score: 6 },
    { passed: 3, score: 6 },
  ]);
  const opts = options({ critic: fake.critic, iterations: 3, patience: 5 });
  const [outcome] = await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  assert.equal(outcome!.bestIteration, 2, "more checks passed beats a higher score");
});

Deno.test("runPipeline() stops a prompt at a plateau: no gain in --patience rounds", async () => {
  const fake = briefCritic([
    { passed: 2, score: 7 },
    { passed: 2, score: 6 },
    { passed: 2, score: 7 },
    { passed: 3, score: 9 },
  ]);
  const generator = new FakeGenerator();
  const opts = options({ critic: fake.critic, generator, iterations: 6, patience: 2 });
  await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  const record = opts.sink.records.get("p0")!;
  assert.equal(record.endReason, "plateau");
  assert.equal(generator.calls.length, 3, "rounds 2 and 3 did not beat round 1: stop at 3");
});

Deno.test("runPipeline() reaches the target only when every check passes and the score is reached", async () => {
  const fake = briefCritic([
    { passed: 2, score: 9.5 },
    { passed: 3, score: 9.5 },
  ]);
  const generator = new FakeGenerator();
  const opts = options({ critic: fake.critic, generator, iterations: 5, targetScore: 9 });
  await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  assert.equal(generator.calls.length, 2, "a failed check at 9.5 is not the target");
  assert.equal(opts.sink.records.get("p0")!.endReason, "target");
});

Deno.test("runPipeline() edits the best image so far when only local checks failed, and records why", async () => {
  // Every check is of a local kind, so a failure calls for an edit.
  const fake = briefCritic([
    { passed: 2, score: 8 },
    { passed: 1, score: 6 },
    { passed: 2, score: 7 },
  ], "attribute");
  const generator = Object.assign(new FakeGenerator(), { editModel: (m: string) => `${m}/edit` });
  const refiner = fixingRefiner();
  const refine = refiner.refine.bind(refiner);
  refiner.refine = async (req) => ({
    ...await refine(req),
    ...(req.mode === "edit" && { instruction: `fix round ${req.iteration}` }),
  });
  const opts = options({ critic: fake.critic, generator, refiner, iterations: 3, patience: 5 });
  await lastValueFrom(runPipeline(from(specs(1)), opts).pipe(toArray()));
  const edits = generator.calls.map((c) => c.edit);
  assert.equal(edits[0], undefined, "the first round is drawn");
  assert.equal(edits[1]?.instruction, "fix round 1");
  assert.equal(edits[1]?.imagePath, "p0/iteration-1.png");
  // Round 2 was worse: round 3 edits round 1, the best so far.
  assert.equal(edits[2]?.imagePath, "p0/iteration-1.png");
  const record = opts.sink.records.get("p0")!;
  assert.equal(record.iterations[1]!.action, "edit");
  assert.equal(record.iterations[2]!.editOf, 1);
  assert.match(record.iterations[1]!.actionReason!, /only local checks failed/);
});
