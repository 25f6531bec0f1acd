/**
 * Property tests of the rules that stop a prompt, through the real pipeline: random critiques,
 * settings and interruption points (fast-check), with every paid call counted. A rerun must never
 * pay again for a step an earlier run made and saved.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { from, lastValueFrom, toArray } from "rxjs";
import { uniformCritique } from "../../tests/critique_fixture.ts";
import type { Brief } from "../providers/critique.ts";
import { runPipeline } from "./pipeline.ts";
import type {
  BriefRequest,
  CritiqueRequest,
  GenerateRequest,
  ImageCritic,
  ImageGenerator,
  PromptRefiner,
  RefineRequest,
} from "../providers/provider.ts";
import { bestIteration } from "../output/record.ts";
import { Budget } from "../async/budget.ts";
import { MemorySink } from "./_test_memory_sink.ts";
import { fakeImage, QUICK_OPTIONS, specs } from "./_test_fakes.ts";

/** One prompt's script: the critic's score and the refiner's answer, round by round. */
interface Script {
  scores: number[];
  /** Whether the refiner of round i returns the prompt unchanged (the loop converges). */
  same: boolean[];
}

interface Case {
  scripts: Script[];
  iterations: number;
  patience: number;
  targetScore: number | undefined;
  brief: boolean;
  sample: boolean;
  /** Stop the first run after this many paid calls (none: let it finish). */
  interruptAfter: number | undefined;
  /** The first run's `--max-cost` (none: no limit). */
  maxCost: number | undefined;
}

/** What each fake call costs, and what it says it may cost before it runs. */
const PRICE = { generate: 0.01, critique: 0.001, brief: 0.001, refine: 0.002 };

/** Fake services that answer from the scripts and log every paid call as `step:id:iteration`. */
function services(c: Case, calls: string[], onCall: () => void) {
  const script = (id: string) => c.scripts[Number(id.slice(1))]!;
  const paid = (key: string) => {
    calls.push(key);
    onCall();
  };
  const generator: ImageGenerator = {
    name: "fake",
    estimateCostUsd: () => PRICE.generate,
    generate(req: GenerateRequest) {
      paid(`generate:${req.spec.id}:${req.iteration}`);
      return Promise.resolve(fakeImage(req, { seed: req.seed, costUsd: PRICE.generate }));
    },
  };
  const critic: ImageCritic = {
    name: "fake-critic",
    estimateCostUsd: () => PRICE.critique,
    critique(req: CritiqueRequest) {
      paid(`critique:${req.spec.id}:${req.iteration}`);
      const score = script(req.spec.id).scores[req.iteration - 1] ?? 5;
      return Promise.resolve({
        critique: uniformCritique(score, { problems: ["more"] }),
        model: "m",
        costUsd: PRICE.critique,
      });
    },
    ...(c.brief && {
      brief(req: BriefRequest) {
        paid(`brief:${req.spec.id}:0`);
        const brief: Brief = { checks: [{ id: "c1", question: "Boat?", kind: "entity" }] };
        return Promise.resolve({ brief, model: "m", costUsd: PRICE.brief });
      },
    }),
  };
  const refiner: PromptRefiner = {
    name: "fake-refiner",
    estimateCostUsd: () => PRICE.refine,
    refine(req: RefineRequest) {
      paid(`refine:${req.spec.id}:${req.iteration}`);
      const same = script(req.spec.id).same[req.iteration - 1] ?? false;
      return Promise.resolve({
        prompt: same ? req.prompt : `${req.prompt} +${req.iteration}`,
        changes: [],
        model: "m",
        costUsd: PRICE.refine,
      });
    },
  };
  return { generator, critic, refiner };
}

async function run(
  c: Case,
  sink: MemorySink,
  iterations = c.iterations,
  stopAfter?: number,
  maxCost?: number,
) {
  const calls: string[] = [];
  const stop = new AbortController();
  const outcomes = await lastValueFrom(
    runPipeline(from(specs(c.scripts.length)), {
      ...services(c, calls, () => {
        if (stopAfter !== undefined && calls.length >= stopAfter) stop.abort();
      }),
      sink,
      iterations,
      patience: c.patience,
      ...(c.targetScore !== undefined && { targetScore: c.targetScore }),
      ...(c.sample && { mode: "sample" as const }),
      concurrency: { generate: 2, critique: 2, refine: 2 },
      ...QUICK_OPTIONS,
      model: "fake-model",
      hashFor: (spec) => `hash-${spec.prompt}`,
      stop: stop.signal,
      ...(maxCost !== undefined && { budget: new Budget(maxCost) }),
    }).pipe(toArray()),
  );
  return { calls, outcomes };
}

const score = fc.integer({ min: 0, max: 100 }).map((n) => n / 10);
const caseArb: fc.Arbitrary<Case> = fc.record({
  scripts: fc.array(
    fc.record({
      scores: fc.array(score, { minLength: 8, maxLength: 8 }),
      same: fc.array(fc.integer({ min: 0, max: 99 }).map((n) => n < 15), {
        minLength: 8,
        maxLength: 8,
      }),
    }),
    { minLength: 1, maxLength: 2 },
  ),
  iterations: fc.integer({ min: 1, max: 5 }),
  patience: fc.integer({ min: 1, max: 3 }),
  targetScore: fc.option(fc.integer({ min: 60, max: 100 }).map((n) => n / 10), { nil: undefined }),
  brief: fc.boolean(),
  sample: fc.boolean(),
  interruptAfter: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
  maxCost: fc.option(fc.integer({ min: 0, max: 60 }).map((n) => n / 1000), { nil: undefined }),
});

/** What a run's calls cost. */
const costOf = (calls: string[]) =>
  calls.reduce((sum, call) => sum + PRICE[call.split(":")[0] as keyof typeof PRICE], 0);

const RUNS = Number(Deno.env.get("RETAKE_PROPERTY_RUNS") ?? 1000);

Deno.test(`an identical rerun pays for no step an earlier run saved, and a finished batch costs nothing (${RUNS} cases)`, async () => {
  await fc.assert(
    fc.asyncProperty(caseArb, async (c) => {
      const sink = new MemorySink();
      const first = await run(c, sink, c.iterations, c.interruptAfter, c.maxCost);
      // A budget stops the run before a call it cannot cover: never past --max-cost.
      if (c.maxCost !== undefined) assert.ok(costOf(first.calls) <= c.maxCost + 1e-9);
      const second = await run(c, sink);
      // (a) Nothing the first run saved is asked for again.
      const saved = new Set(first.calls);
      const repeated = second.calls.filter((call) =>
        saved.has(call) && !call.startsWith("generate")
      );
      assert.deepEqual(repeated, []);
      for (const record of sink.records.values()) {
        assert.equal(record.status, "completed", JSON.stringify(record.error));
      }
      // (c) Every stop reason holds on the next identical run: nothing is paid.
      const third = await run(c, sink);
      assert.deepEqual(third.calls, []);
      // (d) Keep-best never shows a round worse than the first.
      for (const record of sink.records.values()) {
        const best = bestIteration(record)!;
        assert.ok(best.critique!.score >= record.iterations[0]!.critique!.score);
        assert.equal(record.bestIteration, best.iteration);
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test(`raising -n continues from the saved rounds (${RUNS} cases)`, async () => {
  await fc.assert(
    fc.asyncProperty(caseArb, fc.integer({ min: 1, max: 3 }), async (c, more) => {
      const sink = new MemorySink();
      await run(c, sink);
      const before = new Map([...sink.records].map(([id, r]) => [id, r.iterations.length]));
      const raised = await run(c, sink, c.iterations + more);
      // No round that was saved is drawn or judged again.
      for (const call of raised.calls) {
        const [step, id, iteration] = call.split(":");
        if (step === "generate" || step === "critique") {
          assert.ok(Number(iteration) > before.get(id!)!, call);
        }
      }
      for (const record of sink.records.values()) {
        assert.ok(record.iterations.length <= c.iterations + more);
        assert.ok(record.iterations.length >= before.get(record.id)!);
      }
    }),
    { numRuns: RUNS },
  );
});
