/**
 * What the pipeline's tests share: prompts, the image a fake generator answers with, a critic and
 * a refiner that keep what they were asked, and the options every run starts from.
 *
 * @module
 */
import type { Critique } from "../providers/critique.ts";
import type { PipelineOptions } from "./pipeline.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type {
  CritiqueRequest,
  GeneratedImage,
  GenerateRequest,
  ImageCritic,
  PromptChange,
  PromptRefiner,
  RefineRequest,
} from "../providers/provider.ts";

/** `n` prompts, `p0` … `p<n-1>`, each `prompt <i>`. */
export function specs(n: number): PromptSpec[] {
  return Array.from({ length: n }, (_, i) => ({ id: `p${i}`, prompt: `prompt ${i}`, extra: {} }));
}

/** A one-byte 64×64 PNG of `req`'s model, with `fields` (its cost, and any other). */
export function fakeImage(
  req: GenerateRequest,
  fields: Pick<GeneratedImage, "costUsd"> & Partial<GeneratedImage>,
): GeneratedImage {
  return {
    data: new Uint8Array([1]),
    format: "png",
    width: 64,
    height: 64,
    model: req.model,
    ...fields,
  };
}

/** A critic that keeps every request, and answers `critiqueFor`'s critique for $0.001. */
export class FakeCritic implements ImageCritic {
  readonly name = "fake-critic";
  calls: CritiqueRequest[] = [];
  constructor(readonly critiqueFor: (req: CritiqueRequest) => Critique) {}
  critique(req: CritiqueRequest) {
    this.calls.push(req);
    return Promise.resolve({
      critique: this.critiqueFor(req),
      model: "fake-critic-1",
      costUsd: 0.001,
    });
  }
}

/** A refiner that keeps every request, and answers `promptFor`'s prompt for $0.002. */
export class FakeRefiner implements PromptRefiner {
  readonly name = "fake-refiner";
  calls: RefineRequest[] = [];
  constructor(
    readonly promptFor: (req: RefineRequest) => string,
    readonly changes: PromptChange[] = [],
  ) {}
  refine(req: RefineRequest) {
    this.calls.push(req);
    return Promise.resolve({
      prompt: this.promptFor(req),
      changes: structuredClone(this.changes),
      model: "fake-refiner-1",
      costUsd: 0.002,
    });
  }
}

/** What every test's run shares: 64×64 PNGs of one seed, retried a millisecond apart, 5 s a call. */
export const QUICK_OPTIONS = {
  width: 64,
  height: 64,
  format: "png",
  seedFor: () => 1,
  retry: { minTimeout: 1, maxTimeout: 2, jitter: 0 },
  timeoutMs: 5_000,
} as const satisfies Partial<PipelineOptions>;
