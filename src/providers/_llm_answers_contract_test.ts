/**
 * The contract, driven through the real SDKs: a service that answers anything the JSON Schema
 * retake sent allows (random answers from `tests/schema_answers.ts`, many seeds) is used at the
 * first answer. One paid call per step is the minimum the work needs; a second would be money
 * spent on a rule the service was never told.
 */
import assert from "node:assert/strict";
import sharp from "sharp";
import { CRITERIA } from "./critique.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { startGeminiStandIn } from "../../tests/gemini_standin.ts";
import { startOpenAIStandIn } from "../../tests/openai_standin.ts";
import { createGeminiProviders } from "./gemini/gemini.ts";
import { createOpenAIProviders } from "./openai/openai.ts";
import type { ImageCritic, PromptRefiner } from "./provider.ts";

const SPEC: PromptSpec = {
  id: "harbour",
  prompt: "a blue fishing boat in a quiet harbour at dawn",
  title: "Harbour",
  mood: "calm",
  extra: { Category: "Vehicles" },
};

const SEEDS = 40;

/** Brief, critique against it, and a refinement of each kind: four steps, four paid calls. */
async function oneLoop(
  providers: { critic: ImageCritic; refiner: PromptRefiner },
  image: string,
  seed: number,
): Promise<string[]> {
  const signal = new AbortController().signal;
  const normalised: string[] = [];
  const brief = await providers.critic.brief!({ spec: SPEC, signal });
  normalised.push(...brief.normalised ?? []);
  assert.ok(brief.brief.checks.length <= 12, `seed ${seed}`);
  assert.equal(new Set(brief.brief.checks.map((c) => c.id)).size, brief.brief.checks.length);
  const { critique, normalised: n2 } = await providers.critic.critique({
    imagePath: image,
    format: "png",
    prompt: SPEC.prompt,
    spec: SPEC,
    ...(brief.brief.checks.length > 0 && { brief: brief.brief }),
    iteration: 1,
    signal,
  });
  normalised.push(...n2 ?? []);
  assert.ok(critique.score >= 0 && critique.score <= 10, `seed ${seed}`);
  for (const c of CRITERIA) assert.ok(critique.criteria[c] >= 0 && critique.criteria[c] <= 10);
  // Every check of the brief has exactly one answer, in the brief's order.
  assert.deepEqual(
    critique.checks?.map((c) => c.id) ?? [],
    brief.brief.checks.length > 0 ? brief.brief.checks.map((c) => c.id) : [],
    `seed ${seed}`,
  );
  for (const mode of ["regenerate", "edit"] as const) {
    const refined = await providers.refiner.refine({
      prompt: SPEC.prompt,
      spec: SPEC,
      critique,
      history: [{ iteration: 1, prompt: SPEC.prompt, critique }],
      iteration: 1,
      mode,
      signal,
    });
    normalised.push(...refined.normalised ?? []);
    assert.ok(refined.prompt.trim().length > 0, `seed ${seed}`);
    assert.ok(refined.prompt.length <= 4000, `seed ${seed}`);
  }
  return normalised;
}

async function withImage(fn: (image: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "retake_contract_" });
  try {
    const image = `${dir}/image.png`;
    await sharp({
      create: { width: 256, height: 192, channels: 3, background: { r: 60, g: 90, b: 170 } },
    }).png().toFile(image);
    await fn(image);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("gemini: any answer the sent schema allows is used at the first call (40 seeds)", async () => {
  await withImage(async (image) => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= SEEDS; seed++) {
      const standIn = await startGeminiStandIn({ answers: { seed } });
      try {
        const providers = createGeminiProviders({
          apiKey: standIn.key,
          baseUrl: standIn.url,
          timeoutMs: 10_000,
        });
        for (const n of await oneLoop(providers, image, seed)) seen.add(n);
        assert.equal(standIn.requests.length, 4, `seed ${seed}: one paid call a step`);
      } finally {
        await standIn.close();
      }
    }
    // The seeds reach the edges the reader forgives (ids no one asked for, checks left out).
    assert.ok(seen.size >= 3, [...seen].join("; "));
  });
});

Deno.test("openai: any answer the sent strict schema allows is used at the first call (40 seeds)", async () => {
  await withImage(async (image) => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const standIn = await startOpenAIStandIn({ answers: { seed } });
      try {
        const providers = createOpenAIProviders({
          apiKey: standIn.key,
          baseUrl: standIn.url,
          model: "gpt-4o-mini",
          timeoutMs: 10_000,
        });
        await oneLoop(providers, image, seed);
        assert.equal(standIn.requests.length, 4, `seed ${seed}: one paid call a step`);
      } finally {
        await standIn.close();
      }
    }
  });
});
