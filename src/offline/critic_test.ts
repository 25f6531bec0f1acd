import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { critiqueSchema } from "../providers/critique.ts";
import { ProviderError } from "../errors.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { assess, createLocalCritic, critiqueMap } from "./critic.ts";
import { measureLook, pixelMap } from "./image_stats.ts";
import { extractCues } from "./scene_cues.ts";
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

/** A solid image of one grey level, measured as the critic measures. */
function solid(level: number) {
  return pixelMap(new Uint8Array(80 * 60 * 3).fill(level), 80, 60, 3);
}

Deno.test("assess() fails a look check exactly when the value it shows is outside the range it states", () => {
  const cues = extractCues("a quiet harbor at night");
  let inside = 0;
  let outside = 0;
  // Grey levels whose brightness runs from the middle of the night range to well past it.
  for (let level = 10; level <= 120; level++) {
    const map = solid(level);
    const shown = Number(measureLook(map).brightness.toFixed(2));
    const check = assess(map, cues).find((c) => c.problem.includes("for 'night'"))!;
    assert.match(check.problem, /^the image is too (dark|bright) for 'night': brightness /);
    assert.match(check.problem, new RegExp(`brightness ${shown.toFixed(2)}, expected 0.04–0.20$`));
    if (shown >= 0.04 && shown <= 0.2) {
      inside++;
      assert.ok(check.score >= 0.8, `brightness ${shown} fails: ${check.score}`);
    } else {
      outside++;
      assert.ok(check.score < 0.8, `brightness ${shown} passes: ${check.score}`);
      assert.equal(check.suggestion, "darken the image to suit 'night'");
    }
  }
  assert.ok(inside > 10 && outside > 10, `${inside} inside, ${outside} outside`);
});

Deno.test("critiqueMap() calls a scene with too little detail sparse or empty, never cluttered", () => {
  const critique = critiqueMap(solid(90), extractCues("a lake"));
  const problem = critique.problems.find((p) => p.startsWith("the scene is"));
  assert.match(
    problem ?? "",
    /^the scene is (empty|sparse): detail energy [\d.]+, expected 0\.010–0\.140$/,
  );
  assert.ok(!critique.suggestions.some((s) => /simplify/.test(s)), critique.suggestions.join("\n"));
  // Nothing to weigh is not lopsided.
  assert.ok(!critique.problems.some((p) => /lopsided/.test(p)), critique.problems.join("\n"));
});
