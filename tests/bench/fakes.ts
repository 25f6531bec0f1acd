/**
 * Instant providers and an in-memory sink for the memory and overhead benchmarks: every call
 * answers at once, so what is left is retake's own work.
 *
 * @module
 */
import sharp from "sharp";
import type { Critique } from "../../src/providers/critique.ts";
import { uniformCritique } from "../critique_fixture.ts";
import type { PromptSink } from "../../src/output/sink.ts";
import type { ImageCritic, ImageGenerator, PromptRefiner } from "../../src/providers/provider.ts";
import type { PromptRecord } from "../../src/output/record.ts";

/** Name the critic and refiner share, as Gemini's do (so they share one adaptive limiter). */
const LLM = "instant-llm";

function critique(prompt: string): Critique {
  return uniformCritique(Math.min(10, 4 + prompt.length % 5), {
    summary: "instant",
    strengths: ["fast"],
    problems: ["none really"],
    suggestions: ["more light"],
  });
}

/** Providers that answer at once; images are one small PNG made up front. */
export async function instantProviders(): Promise<{
  generator: ImageGenerator;
  critic: ImageCritic;
  refiner: PromptRefiner;
}> {
  const png = new Uint8Array(
    await sharp({ create: { width: 8, height: 8, channels: 3, background: "#3a6" } }).png()
      .toBuffer(),
  );
  let n = 0;
  return {
    generator: {
      name: "instant-image",
      generate: (request) =>
        Promise.resolve({
          data: png,
          format: "png" as const,
          width: 8,
          height: 8,
          seed: request.seed,
          model: request.model,
          requestId: `img-${++n}`,
          costUsd: 0.003,
          queueMs: 0,
        }),
    },
    critic: {
      name: LLM,
      critique: (request) =>
        Promise.resolve({
          critique: critique(request.prompt),
          model: "instant-critic",
          costUsd: 0.0001,
          usage: { inputTokens: 400, outputTokens: 100, imageTokens: 280 },
        }),
    },
    refiner: {
      name: LLM,
      refine: (request) =>
        Promise.resolve({
          prompt: `${request.prompt.slice(0, 200)}, more light`,
          changes: [{ change: "added light", reason: "too dark" }],
          model: "instant-refiner",
          costUsd: 0.0001,
        }),
    },
  };
}

/** Keeps nothing: every save succeeds at once. */
export class NullSink implements PromptSink {
  folderFor(spec: { id: string }): string {
    return spec.id;
  }
  load(): Promise<PromptRecord | undefined> {
    return Promise.resolve(undefined);
  }
  moveAside(folder: string): Promise<string> {
    return Promise.resolve(folder);
  }
  start(): Promise<void> {
    return Promise.resolve();
  }
  saveImage(_record: PromptRecord, iteration: number) {
    return Promise.resolve({ file: `iteration-${iteration}.png`, width: 8, height: 8 });
  }
  imagePath(record: PromptRecord, file: string): string {
    return `${record.folder}/${file}`;
  }
  saveCritique(): Promise<void> {
    return Promise.resolve();
  }
  saveRefinedPrompt(): Promise<void> {
    return Promise.resolve();
  }
  saveBrief(): Promise<void> {
    return Promise.resolve();
  }
  saveRecord(): Promise<void> {
    return Promise.resolve();
  }
  saveBest(): Promise<string> {
    return Promise.resolve("best.png");
  }
}
