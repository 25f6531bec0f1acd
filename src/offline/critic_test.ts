import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { critiqueSchema } from "../critique.ts";
import { ProviderError } from "../errors.ts";
import type { PromptSpec } from "../prompts.ts";
import { createLocalCritic } from "./critic.ts";
import { createLocalGenerator } from "./generator.ts";
import type { CritiqueRequest } from "../providers/provider.ts";

const signal = new AbortController().signal;

function spec(prompt: string, context: Partial<PromptSpec> = {}): PromptSpec {
  return { id: "t", prompt, extra: {}, ...context };
}

async function render(dir: string, name: string, prompt: string): Promise<string> {
  const image = await createLocalGenerator().generate({
    prompt,
    spec: spec(prompt),
    iteration: 1,
    width: 384,
    height: 288,
    seed: 11,
    model: "local-svg-v1",
    format: "png",
    signal,
  });
  const path = join(dir, `${name}.png`);
  await Deno.writeFile(path, image.data as Uint8Array);
  return path;
}

function request(imagePath: string, s: PromptSpec, prompt = s.prompt): CritiqueRequest {
  return { imagePath, format: "png", prompt, spec: s, iteration: 1, signal };
}

Deno.test("localCritic() scores a night prompt lower on lighting for a noon image", async () => {
  const dir = await Deno.makeTempDir({ prefix: "retake_critic_" });
  try {
    const night = await render(dir, "night", "a full moon and stars over a quiet lake at midnight");
    const noon = await render(dir, "noon", "a quiet lake under a bright sun at noon");
    const asked = spec("a full moon and stars over a quiet lake at midnight");
    const critic = createLocalCritic();
    const right = (await critic.critique(request(night, asked))).critique;
    const wrong = (await critic.critique(request(noon, asked))).critique;
    assert.ok(
      wrong.criteria.lighting < right.criteria.lighting - 3,
      `lighting: noon image ${wrong.criteria.lighting}, night image ${right.criteria.lighting}`,
    );
    assert.ok(wrong.score < right.score);
    assert.ok(
      wrong.problems.some((p) => /too bright for 'midnight'/.test(p)),
      wrong.problems.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("localCritic() names a missing colour with measured and expected shares", async () => {
  const dir = await Deno.makeTempDir({ prefix: "retake_critic_" });
  try {
    const path = join(dir, "grey.png");
    await sharp({ create: { width: 200, height: 150, channels: 3, background: "#7a7d82" } })
      .png()
      .toFile(path);
    const { critique } = await createLocalCritic().critique(
      request(path, spec("vivid orange sand dunes")),
    );
    const problem = critique.problems.find((p) => p.includes("'orange'"));
    assert.ok(problem, critique.problems.join("\n"));
    assert.match(problem, /0% of pixels, expected at least 50%/);
    assert.ok(critique.score < 5, `score ${critique.score}`);
    assert.ok(critique.suggestions.length > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("localCritic() judges against the context, not only the prompt text", async () => {
  const dir = await Deno.makeTempDir({ prefix: "retake_critic_" });
  try {
    const path = await render(dir, "lake", "a lake below mountains");
    const critic = createLocalCritic();
    const bare = (await critic.critique(request(path, spec("a lake below mountains")))).critique;
    const withContext = (await critic.critique(
      request(path, spec("a lake below mountains", { scene: "at midnight", mood: "dramatic" })),
    )).critique;
    assert.ok(withContext.score < bare.score, `${withContext.score} vs ${bare.score}`);
    assert.ok(withContext.problems.some((p) => p.includes("'midnight'")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("localCritic() returns a valid, deterministic critique at no cost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "retake_critic_" });
  try {
    const prompt = "a small wooden house with warm yellow windows in falling snow at dusk";
    const path = await render(dir, "cabin", prompt);
    const critic = createLocalCritic();
    const first = await critic.critique(request(path, spec(prompt, { mood: "cozy" })));
    const second = await critic.critique(request(path, spec(prompt, { mood: "cozy" })));
    assert.deepEqual(first, second);
    assert.deepEqual(critiqueSchema.parse(first.critique), first.critique);
    assert.equal(first.costUsd, 0);
    assert.equal(critic.name, "local");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("localCritic() fails with a ProviderError for a file that is not an image", async () => {
  const dir = await Deno.makeTempDir({ prefix: "retake_critic_" });
  try {
    const path = join(dir, "broken.png");
    await Deno.writeTextFile(path, "not an image");
    await assert.rejects(
      createLocalCritic().critique(request(path, spec("a lake"))),
      (error: unknown) =>
        error instanceof ProviderError && !error.retryable && error.message.includes(path),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
