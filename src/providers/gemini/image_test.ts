import assert from "node:assert/strict";
import sharp from "sharp";
import { InputError } from "../../errors.ts";
import type { PromptSpec } from "../../prompts/mod.ts";
import {
  geminiImageOutputTokens,
  type GeminiStandIn,
  startGeminiStandIn,
} from "../../../tests/gemini_standin.ts";
import { geminiProvider } from "./gemini.ts";
import {
  createGeminiGenerator,
  type GeminiImageOptions,
  geminiImageShape,
  resolveGeminiImageModel,
} from "./image.ts";
import { defaultGeminiPrices } from "./models.ts";
import { bytesOf, generateRequests } from "../_test_generate.ts";
import { providerErrorFrom } from "../_test_llm.ts";

const SPEC: PromptSpec = {
  id: "lighthouse",
  prompt: "a red lighthouse on a green cliff at dusk",
  extra: {},
};

const request = generateRequests(SPEC, {
  width: 1024,
  height: 768,
  seed: 42,
  model: "gemini-nano-banana-2.1",
});

async function withStandIn(
  fn: (standIn: GeminiStandIn, options: GeminiImageOptions) => Promise<void>,
): Promise<void> {
  const standIn = await startGeminiStandIn({ retryDelayMs: 1500 });
  try {
    await fn(standIn, { apiKey: standIn.key, baseUrl: standIn.url, timeoutMs: 10_000 });
  } finally {
    await standIn.close();
  }
}

const providerError = (promise: Promise<unknown>) => providerErrorFrom("gemini", promise);

Deno.test("createGeminiGenerator() asks for an image only, sized by aspect ratio and tier, and saves the PNG it gets", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createGeminiGenerator(options);
    assert.equal(generator.name, "gemini");
    const image = await generator.generate(request());

    assert.equal(standIn.requests.length, 1);
    const seen = standIn.requests[0]!;
    assert.equal(seen.kind, "generate");
    assert.equal(seen.model, "gemini-nano-banana-2.1");
    assert.equal(seen.prompt, SPEC.prompt);
    assert.deepEqual(seen.generationConfig.responseModalities, ["IMAGE"]);
    assert.deepEqual(seen.generationConfig.imageConfig, { aspectRatio: "4:3", imageSize: "1K" });
    assert.equal(seen.generationConfig.seed, 42);
    for (const knob of ["temperature", "topP", "topK"]) {
      assert.ok(!(knob in seen.generationConfig), `no ${knob} sent`);
    }

    const bytes = await bytesOf(image);
    const meta = await sharp(bytes).metadata();
    assert.equal(meta.format, "png");
    await sharp(bytes).raw().toBuffer(); // decodes whole
    assert.deepEqual([image.width, image.height], [meta.width, meta.height]);
    assert.deepEqual([image.width, image.height], [seen.output!.width, seen.output!.height]);
    assert.deepEqual([image.width, image.height], [1184, 864]);
    assert.equal(image.format, "png");
    assert.equal(image.model, "gemini-nano-banana-2.1");
    assert.equal(image.modelVersion, "gemini-nano-banana-2.1");
    assert.match(image.requestId ?? "", /^standin-/);
    assert.equal(image.seed, undefined, "Gemini names no seed, so none is recorded");
  });
});

Deno.test("createGeminiGenerator() costs an image by its tokens, within the estimate the budget reserves", async () => {
  await withStandIn(async (_standIn, options) => {
    const generator = createGeminiGenerator(options);
    const price = defaultGeminiPrices()["gemini-nano-banana-2.1"]!;
    const image = await generator.generate(request());
    // The stand-in bills the prompt by chars / 4, 128 thinking tokens and the 1K image's tokens.
    const expected = (Math.ceil(SPEC.prompt.length / 4) * price.input + 128 * price.output +
      geminiImageOutputTokens("gemini-nano-banana-2.1", "1K") * price.image!) / 1e6;
    assert.ok(Math.abs(image.costUsd - expected) < 1e-12, `${image.costUsd} vs ${expected}`);
    const estimate = generator.estimateCostUsd!({
      model: "gemini-nano-banana-2.1",
      width: 1024,
      height: 768,
    })!;
    assert.ok(image.costUsd > 0.03 && image.costUsd <= estimate, `${image.costUsd} ≤ ${estimate}`);
    const estimateAt = (width: number, height: number) =>
      generator.estimateCostUsd!({ model: "gemini-nano-banana-2.1", width, height })!;
    assert.ok(estimateAt(2048, 2048) > estimate && estimateAt(4096, 4096) > estimateAt(2048, 2048));
    assert.equal(
      generator.estimateCostUsd!({ model: "gemini-9-image-x", width: 1024, height: 768 }),
      undefined,
    );
  });
});

Deno.test("createGeminiGenerator() converts to the format asked for and sends an int32 seed", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createGeminiGenerator(options);
    const jpeg = await generator.generate(
      request({ format: "jpeg", seed: 0xfffffff0, model: "gemini-3.1-flash-image" }),
    );
    assert.equal((await sharp(await bytesOf(jpeg)).metadata()).format, "jpeg");
    assert.equal(jpeg.format, "jpeg");
    assert.equal(standIn.requests[0]!.generationConfig.seed, 0xfffffff0 % 2 ** 31);
    // 3.1 Flash Image makes 512 px images; Nano Banana 2.1 starts at 1K.
    const small = await generator.generate(
      request({ width: 512, height: 512, model: "gemini-3.1-flash-image" }),
    );
    assert.deepEqual([small.width, small.height], [512, 512]);
    assert.deepEqual(geminiImageShape("gemini-nano-banana-2.1", 512, 512), {
      aspectRatio: "1:1",
      imageSize: "1K",
    });
    assert.deepEqual(geminiImageShape("gemini-nano-banana-2.1", 1920, 1080), {
      aspectRatio: "16:9",
      imageSize: "2K",
    });
  });
});

Deno.test("createGeminiGenerator() fails a blocked or imageless answer with its reason and what it was billed", async () => {
  const cases: Array<{ fault: string; message: RegExp; billed: boolean }> = [
    {
      fault: "image-safety",
      message: /refused to make the image \(finishReason IMAGE_SAFETY\)/,
      billed: true,
    },
    { fault: "safety", message: /finishReason SAFETY/, billed: true },
    {
      fault: "block",
      message: /blocked the prompt \(PROHIBITED_CONTENT\).*rephrase/,
      billed: true,
    },
    {
      fault: "no-image",
      message: /answered without an image \(finishReason STOP\): 'I can't create an image/,
      billed: true,
    },
    { fault: "bad-image", message: /not a usable image/, billed: true },
  ];
  await withStandIn(async (standIn, options) => {
    const generator = createGeminiGenerator(options);
    for (const c of cases) {
      standIn.reset();
      const error = await providerError(
        generator.generate(request({ prompt: `${SPEC.prompt} [gemini:${c.fault}]` })),
      );
      assert.match(error.message, c.message, c.fault);
      assert.equal(error.retryable, false, c.fault);
      assert.equal(error.fatal, false, c.fault);
      assert.equal((error.costUsd ?? 0) > 0, c.billed, `${c.fault}: billed`);
      assert.match(error.requestId ?? "", /^standin-/, c.fault);
      assert.equal(standIn.requests.length, 1, `${c.fault}: one request`);
    }
  });
});

Deno.test("createGeminiGenerator() passes 429 RetryInfo on, and stops at once for a text model", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createGeminiGenerator(options);
    const limited = await providerError(
      generator.generate(request({ prompt: `${SPEC.prompt} [gemini:429-once]` })),
    );
    assert.equal(limited.retryable, true);
    assert.equal(limited.retryAfterMs, 1500);
    assert.equal(limited.costUsd, undefined, "a refused request is not billed");
    await generator.generate(request({ prompt: `${SPEC.prompt} [gemini:429-once]` }));

    const text = await providerError(generator.generate(request({ model: "gemini-3.8-flash" })));
    assert.equal(text.fatal, true);
    assert.match(text.message, /response_modalities.*every call with model 'gemini-3\.8-flash'/);
    assert.equal(standIn.requests.length, 3);
  });
});

Deno.test("resolveGeminiImageModel() takes aliases and ids, and refuses text models before any call", () => {
  assert.equal(resolveGeminiImageModel(), "gemini-nano-banana-2.1");
  assert.equal(resolveGeminiImageModel("nano-banana-2"), "gemini-3.1-flash-image");
  assert.equal(resolveGeminiImageModel("Nano-Banana-Pro"), "gemini-3-pro-image");
  assert.equal(resolveGeminiImageModel("models/gemini-9-image"), "gemini-9-image");
  assert.throws(
    () => resolveGeminiImageModel("gemini-3.8-flash"),
    (e: unknown) => e instanceof InputError && /answers only in text.*--model/.test(e.message),
  );
  assert.throws(() => resolveGeminiImageModel("fal-ai/flux/dev"), /expected one of nano-banana/);
});

Deno.test("geminiProvider builds generator, critic and refiner on one client with one check", async () => {
  await withStandIn(async (standIn, options) => {
    assert.deepEqual(geminiProvider.roles, ["generate", "critique", "refine"]);
    assert.equal(geminiProvider.defaults.generate, "gemini-nano-banana-2.1");
    const parts = await geminiProvider.create({
      settings: { key: options.apiKey, baseUrl: options.baseUrl! },
      roles: new Set(["generate", "critique", "refine"] as const),
      models: ["gemini-nano-banana-2.1"],
      size: { width: 1024, height: 768 },
      criticModel: undefined,
      timeoutMs: 10_000,
    });
    assert.ok(parts.generator && parts.critic && parts.refiner);
    assert.equal(parts.generator.check, parts.critic.check);
    assert.equal(parts.critic.check, parts.refiner.check);
    await parts.generator.check!(new AbortController().signal);
    assert.deepEqual(standIn.modelGets.map((g) => g.model).sort(), [
      "gemini-3.8-flash",
      "gemini-nano-banana-2.1",
    ]);
    assert.equal(standIn.requests.length, 0, "the check pays for nothing");

    const only = await geminiProvider.create({
      settings: { key: options.apiKey, baseUrl: options.baseUrl! },
      roles: new Set(["generate"] as const),
      models: ["gemini-3-pro-image"],
      size: { width: 1024, height: 1024 },
      criticModel: undefined,
      timeoutMs: 10_000,
    });
    assert.equal(only.critic, undefined);
    standIn.reset();
    await only.generator!.check!(new AbortController().signal);
    assert.deepEqual(standIn.modelGets.map((g) => g.model), ["gemini-3-pro-image"]);
  });
});

Deno.test("the Gemini generator edits: the source image goes inline with the instruction", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createGeminiGenerator(options);
    assert.equal(generator.editModel?.("gemini-nano-banana-2.1"), "gemini-nano-banana-2.1");
    const first = await generator.generate(request());
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(`${dir}/iteration-1.png`, await bytesOf(first));
      const edited = await generator.generate(request({
        iteration: 2,
        edit: { imagePath: `${dir}/iteration-1.png`, instruction: "make the lighthouse taller" },
      }));
      assert.ok((await sharp(await bytesOf(edited)).metadata()).width! > 0);
      const sent = standIn.requests.at(-1)!;
      assert.equal(sent.kind, "generate");
      assert.ok(sent.hasImage, "the source image was sent");
      assert.match(sent.prompt, /make the lighthouse taller/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
