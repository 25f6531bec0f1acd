/** runPipeline() with prompts that set their own model, size, rounds and target. */
import assert from "node:assert/strict";
import { from, lastValueFrom, toArray } from "rxjs";
import { uniformCritique } from "../../tests/critique_fixture.ts";
import { Budget } from "../async/budget.ts";
import { type PipelineOptions, runPipeline } from "./pipeline.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type {
  GenerateRequest,
  ImageCritic,
  ImageGenerator,
  PromptRefiner,
} from "../providers/provider.ts";
import { MemorySink } from "./_test_memory_sink.ts";
import { fakeImage, QUICK_OPTIONS } from "./_test_fakes.ts";

function setup(estimates: Array<{ model: string; width: number; height: number }>) {
  const requests: GenerateRequest[] = [];
  const generator: ImageGenerator = {
    name: "fake",
    estimateCostUsd: (size) => (estimates.push(size), 0.01),
    generate(request) {
      requests.push(request);
      return Promise.resolve(
        fakeImage(request, {
          width: request.width,
          height: request.height,
          seed: request.seed,
          costUsd: 0.01,
        }),
      );
    },
  };
  // Every image scores 6: below the batch's target, above a prompt's own lower one.
  const critic: ImageCritic = {
    name: "fake",
    critique: () =>
      Promise.resolve({ critique: uniformCritique(6), model: "fake-critic", costUsd: 0 }),
  };
  const refiner: PromptRefiner = {
    name: "fake",
    refine: (r) =>
      Promise.resolve({
        prompt: `${r.prompt} +${r.iteration}`,
        changes: [],
        model: "fake-refiner",
        costUsd: 0,
      }),
  };
  const sink = new MemorySink();
  const options: PipelineOptions = {
    generator,
    critic,
    refiner,
    sink,
    iterations: 2,
    targetScore: 9,
    // Every score is the same: no plateau may cut a prompt's rounds short here.
    patience: 10,
    concurrency: { generate: 2, critique: 2, refine: 2 },
    ...QUICK_OPTIONS,
    width: 1024,
    height: 768,
    model: "batch-model",
    hashFor: (spec) => `hash-${spec.id}`,
    budget: new Budget(100),
  };
  return { requests, sink, options };
}

Deno.test("runPipeline() runs each prompt to its own iterations and target, above the batch's too", async () => {
  const { requests, sink, options } = setup([]);
  const specs: PromptSpec[] = [
    { id: "batch", prompt: "b", extra: {} },
    { id: "more", prompt: "m", settings: { iterations: 4 }, extra: {} },
    { id: "one", prompt: "o", settings: { iterations: 1 }, extra: {} },
    { id: "easy", prompt: "e", settings: { targetScore: 5, iterations: 3 }, extra: {} },
  ];
  const outcomes = await lastValueFrom(
    runPipeline(from(specs), { ...options, rounds: 4 }).pipe(toArray()),
  );
  assert.ok(outcomes.every((o) => o.status === "completed"));
  const calls = (id: string) => requests.filter((r) => r.spec.id === id).length;
  assert.deepEqual(
    specs.map((s) => [s.id, calls(s.id)]),
    [["batch", 2], ["more", 4], ["one", 1], ["easy", 1]],
  );
  assert.equal(sink.records.get("more")!.endReason, "iterations");
  assert.equal(sink.records.get("easy")!.endReason, "target");
  assert.equal(sink.records.get("one")!.iterations[0]!.refinedPrompt, undefined, "no refinement");
});

Deno.test("runPipeline() generates with a prompt's own model, size, negative prompt and steps, and reserves their price", async () => {
  const estimates: Array<{ model: string; width: number; height: number }> = [];
  const { requests, sink, options } = setup(estimates);
  const own: PromptSpec = {
    id: "own",
    prompt: "x",
    settings: {
      model: "own-model",
      size: { width: 512, height: 512 },
      negativePrompt: "blur",
      steps: 12,
    },
    extra: {},
  };
  const plain: PromptSpec = { id: "plain", prompt: "y", extra: {} };
  await lastValueFrom(
    runPipeline(from([own, plain]), { ...options, iterations: 1 }).pipe(toArray()),
  );
  const [a] = requests.filter((r) => r.spec.id === "own");
  assert.deepEqual(
    [a!.model, a!.width, a!.height, a!.negativePrompt, a!.steps],
    ["own-model", 512, 512, "blur", 12],
  );
  const [b] = requests.filter((r) => r.spec.id === "plain");
  assert.deepEqual([b!.model, b!.width, b!.height], ["batch-model", 1024, 768]);
  assert.ok(!("negativePrompt" in b!) && !("steps" in b!));
  assert.ok(estimates.some((e) => e.model === "own-model" && e.width === 512));
  assert.ok(estimates.some((e) => e.model === "batch-model" && e.width === 1024));
  assert.deepEqual(sink.records.get("own")!.settings, own.settings);
});
