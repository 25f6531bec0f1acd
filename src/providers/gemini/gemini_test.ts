import assert from "node:assert/strict";
import { GenerateContentResponse } from "@google/genai/web";
import type { LogRecord } from "@logtape/logtape";
import sharp from "sharp";
import { critiqueSchema } from "../critique.ts";
import {
  type GeminiFault,
  type GeminiStandIn,
  type GeminiStandInOptions,
  startGeminiStandIn,
} from "../../../tests/gemini_standin.ts";
import {
  createGeminiCritic,
  createGeminiGenerator,
  createGeminiProviders,
  createGeminiRefiner,
  defaultGeminiPrices,
  type GeminiOptions,
} from "./gemini.ts";
import { CRITIQUE_JSON_SCHEMA, REFINEMENT_JSON_SCHEMA } from "./schema.ts";
import {
  assertTokenCost,
  critiqueRequest,
  providerErrorFrom,
  refineRequest,
  rejection,
  SPEC,
} from "../_test_llm.ts";
import { textOf, withLogs } from "../_test_logs.ts";
import { serviceMsOf } from "./api.ts";
import type { TimedFetch } from "../_http.ts";

const providerError = (promise: Promise<unknown>) => providerErrorFrom("gemini", promise);

/** A deterministic gradient, so two runs see the same pixels and the same critique. */
async function writeImage(
  path: string,
  width: number,
  height: number,
  tint: [number, number, number],
): Promise<string> {
  const pixels = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const wave = ((x * 7 + y * 3) % 64) - 32;
      pixels[i] = Math.max(0, Math.min(255, tint[0] + wave));
      pixels[i + 1] = Math.max(0, Math.min(255, tint[1] + (y % 50)));
      pixels[i + 2] = Math.max(0, Math.min(255, tint[2] + (x % 40)));
    }
  }
  await sharp(pixels, { raw: { width, height, channels: 3 } }).png().toFile(path);
  return path;
}

interface Fixture {
  standIn: GeminiStandIn;
  dir: string;
  image: string;
  dark: string;
  options: GeminiOptions;
}

async function withStandIn(
  fn: (f: Fixture) => Promise<void>,
  standInOptions: GeminiStandInOptions = {},
): Promise<void> {
  const standIn = await startGeminiStandIn({ retryDelayMs: 1500, slowMs: 400, ...standInOptions });
  const dir = await Deno.makeTempDir({ prefix: "retake_gemini_" });
  try {
    const image = await writeImage(`${dir}/big.png`, 1024, 768, [60, 90, 170]);
    const dark = await writeImage(`${dir}/dark.png`, 640, 640, [10, 5, 15]);
    await fn({
      standIn,
      dir,
      image,
      dark,
      options: { apiKey: standIn.key, baseUrl: standIn.url, timeoutMs: 5_000 },
    });
  } finally {
    await standIn.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("createGeminiCritic() critiques a downscaled image and records tokens and cost", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const critic = createGeminiCritic(options);
    assert.equal(critic.name, "gemini");
    const result = await critic.critique(critiqueRequest(image));

    assert.deepEqual(critiqueSchema.parse(result.critique), result.critique);
    assert.equal(result.model, "gemini-3.8-flash");
    assert.match(result.requestId ?? "", /^standin-/);
    assert.equal(standIn.requests.length, 1);
    const seen = standIn.requests[0]!;
    assert.equal(seen.apiVersion, "v1beta");
    assert.equal(seen.model, "gemini-3.8-flash");
    assert.deepEqual(
      { width: seen.image?.width, height: seen.image?.height, mimeType: seen.image?.mimeType },
      { width: 384, height: 288, mimeType: "image/jpeg" },
    );
    assert.ok(seen.image!.bytes < 60_000, `sent ${seen.image!.bytes} bytes`);
    assert.equal(seen.generationConfig.mediaResolution, "MEDIA_RESOLUTION_LOW");
    assert.equal(seen.generationConfig.responseMimeType, "application/json");
    assert.deepEqual(seen.generationConfig.responseJsonSchema, CRITIQUE_JSON_SCHEMA);
    assert.match(seen.prompt, /a blue fishing boat in a quiet harbour at dawn/);
    assert.match(seen.prompt, /Title: Harbour/);
    assert.match(seen.prompt, /Scene: small fishing port/);
    assert.match(seen.prompt, /Mood: calm/);
    assert.match(seen.systemInstruction, /promptAdherence/);

    assert.equal(result.usage?.imageTokens, 280);
    assert.ok(result.usage!.imageTokens! <= 280);
    assert.ok(result.usage!.inputTokens > 280);
    assert.ok(result.usage!.outputTokens > 0);
    const price = defaultGeminiPrices()["gemini-3.8-flash"]!;
    assertTokenCost(result, price);
    assert.ok(result.costUsd > 0);
  });
});

Deno.test("createGeminiCritic() and createGeminiRefiner() report each answer's time at Gemini, from its server-timing", async () => {
  await withStandIn(async ({ image, options }) => {
    const started = performance.now();
    const critique = await createGeminiCritic(options).critique(critiqueRequest(image));
    const elapsed = performance.now() - started;
    // The stand-in's own time (its set latency and its work), within the whole call's.
    assert.ok(
      critique.serviceMs !== undefined && critique.serviceMs >= 40 && critique.serviceMs <= elapsed,
      `serviceMs ${critique.serviceMs} of a ${elapsed.toFixed(0)} ms call`,
    );
    const refined = await createGeminiRefiner(options).refine(refineRequest());
    assert.ok(refined.serviceMs !== undefined && refined.serviceMs >= 40);
  }, { latencyMs: 40 });
});

Deno.test("serviceMsOf() takes Gemini's server-timing over the first byte", () => {
  const timed = (ms: number | undefined): TimedFetch => ({ fetch, firstByteMs: () => ms });
  const answer = (headers: Record<string, string>) =>
    Object.assign(new GenerateContentResponse(), { sdkHttpResponse: { headers } });
  // The first byte came 250 ms after the call, most of it this process's own delay.
  assert.equal(serviceMsOf(answer({ "server-timing": "gfet4t7; dur=61" }), timed(250)), 61);
  assert.equal(serviceMsOf(answer({}), timed(250)), 250);
  assert.equal(serviceMsOf(answer({}), timed(undefined)), undefined);
});

Deno.test("createGeminiCritic() keeps a Gemini 2.x image at 258 tokens; undownscaled it costs 4 tiles", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const model = "gemini-2.5-flash-lite";
    const small = await createGeminiCritic({ ...options, model }).critique(critiqueRequest(image));
    const full = await createGeminiCritic({ ...options, model, imageMaxSide: 4096 })
      .critique(critiqueRequest(image));
    assert.equal(small.usage?.imageTokens, 258);
    assert.equal(full.usage?.imageTokens, 2 * 258); // 1024×768: 2×1 tiles of 768×768
    assert.equal(standIn.requests[1]!.image?.width, 1024);
    assert.equal(standIn.requests[0]!.generationConfig.mediaResolution, undefined);
    assert.deepEqual(standIn.requests[0]!.generationConfig.thinkingConfig, { thinkingBudget: 0 });
  });
});

Deno.test("createGeminiCritic() gets different scores for different images", async () => {
  await withStandIn(async ({ image, dark, options }) => {
    const critic = createGeminiCritic(options);
    const bright = await critic.critique(critiqueRequest(image));
    const again = await critic.critique(critiqueRequest(image));
    const murky = await critic.critique(critiqueRequest(dark));
    assert.deepEqual(again.critique, bright.critique);
    assert.notEqual(murky.critique.criteria.lighting, bright.critique.criteria.lighting);
    assert.ok(murky.critique.problems.some((p) => /underexposed/.test(p)));
  });
});

Deno.test("createGeminiRefiner() sends the critique and history and returns a validated prompt", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const refiner = createGeminiRefiner({ ...options, model: "gemini-3.5-flash-lite" });
    assert.equal(refiner.name, "gemini");
    const result = await refiner.refine(refineRequest());

    assert.match(result.prompt, /^a boat at dawn, soft light, a bright blue hull/);
    assert.ok(result.changes.length > 0);
    assert.deepEqual(Object.keys(result.changes[0]!).sort(), ["change", "reason"]);
    assert.equal(result.model, "gemini-3.5-flash-lite");
    assert.ok(result.costUsd > 0);
    assert.equal(result.usage?.imageTokens, undefined);

    assert.equal(standIn.requests.length, 1);
    const seen = standIn.requests[0]!;
    assert.equal(seen.hasImage, false);
    assert.deepEqual(seen.generationConfig.responseJsonSchema, REFINEMENT_JSON_SCHEMA);
    assert.match(seen.prompt, /Original prompt: a blue fishing boat/);
    assert.match(seen.prompt, /The boat in the centre is grey, not blue/);
    assert.match(seen.prompt, /Round 1 \(score 4\).*a blue fishing boat/);
    assert.match(seen.prompt, /The harbour is missing entirely/);
    assert.doesNotMatch(seen.prompt, /Round 2 \(score/);
  });
});

Deno.test("gemini 429 with RetryInfo is retryable with retryAfterMs after exactly one request", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const critic = createGeminiCritic(options);
    const request = critiqueRequest(image, `${SPEC.prompt} [gemini:429-once]`);
    const error = await providerError(critic.critique(request));
    assert.equal(error.retryable, true);
    assert.equal(error.fatal, false);
    assert.equal(error.status, 429);
    assert.equal(error.retryAfterMs, 1500);
    assert.match(error.message, /RESOURCE_EXHAUSTED/);
    assert.equal(standIn.requests.length, 1);
    // The pipeline's retry of the same call goes through.
    await critic.critique(request);
    assert.equal(standIn.requests.length, 2);
  });
});

Deno.test("gemini errors map to the right classification, one request each", async () => {
  const cases: Array<{
    fault: GeminiFault;
    retryable: boolean;
    fatal?: boolean;
    status?: number;
    message: RegExp;
  }> = [
    {
      fault: "429-bare-once",
      retryable: true,
      status: 429,
      message: /Resource has been exhausted/,
    },
    { fault: "503-once", retryable: true, status: 503, message: /overloaded/ },
    { fault: "500-once", retryable: true, status: 500, message: /INTERNAL/ },
    { fault: "html-502-once", retryable: true, status: 502, message: /502 Bad Gateway/ },
    { fault: "block", retryable: false, message: /blocked .*PROHIBITED_CONTENT/ },
    { fault: "safety", retryable: false, message: /finishReason SAFETY/ },
    { fault: "recitation", retryable: false, message: /finishReason RECITATION/ },
    {
      fault: "not-found",
      retryable: false,
      fatal: true,
      status: 404,
      message: /model 'gemini-3\.8-flash' as Gemini could not find it.*--critic-model/,
    },
    {
      fault: "400-setting",
      retryable: false,
      fatal: true,
      status: 400,
      message: /thinking_level.*every call with model 'gemini-3\.8-flash' would fail alike/,
    },
    { fault: "400-image", retryable: false, status: 400, message: /Unable to process input image/ },
    {
      fault: "permission-denied",
      retryable: false,
      fatal: true,
      status: 403,
      message: /PERMISSION_DENIED.*GEMINI_API_KEY/,
    },
    {
      fault: "bad-key",
      retryable: false,
      fatal: true,
      status: 400,
      message: /API_KEY_INVALID.*check GEMINI_API_KEY/,
    },
  ];
  await withStandIn(async ({ standIn, image, options }) => {
    const critic = createGeminiCritic(options);
    for (const c of cases) {
      standIn.reset();
      const error = await providerError(
        critic.critique(critiqueRequest(image, `${SPEC.prompt} [gemini:${c.fault}]`)),
      );
      assert.equal(error.retryable, c.retryable, c.fault);
      assert.equal(error.fatal, c.fatal ?? false, c.fault);
      assert.equal(error.status, c.status, c.fault);
      assert.equal(error.retryAfterMs, undefined, c.fault);
      assert.match(error.message, c.message, c.fault);
      assert.equal(standIn.requests.length, 1, `${c.fault}: requests`);
    }
  });
});

Deno.test("gemini faults injected programmatically apply to the refiner too", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const refiner = createGeminiRefiner(options);
    standIn.inject("503");
    const error = await providerError(refiner.refine(refineRequest()));
    assert.equal(error.retryable, true);
    assert.equal(error.status, 503);
    await refiner.refine(refineRequest());
    assert.equal(standIn.requests.length, 2);
  });
});

Deno.test("gemini MAX_TOKENS once is retried with double the room and succeeds", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const critic = createGeminiCritic({ ...options, maxOutputTokens: 1000 });
    const result = await critic.critique(
      critiqueRequest(image, `${SPEC.prompt} [gemini:max-tokens-once]`),
    );
    critiqueSchema.parse(result.critique);
    assert.deepEqual(
      standIn.requests.map((r) => [r.fault, r.generationConfig.maxOutputTokens]),
      [["max-tokens-once", 1000], [undefined, 2000]],
    );
    // Both calls are billed.
    assert.equal(result.usage?.imageTokens, 560);
    assert.ok(result.usage!.outputTokens > 1000);
  });
});

Deno.test("gemini MAX_TOKENS twice fails, not retryable, after 2 requests", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const error = await providerError(
      createGeminiCritic(options).critique(
        critiqueRequest(image, `${SPEC.prompt} [gemini:max-tokens]`),
      ),
    );
    assert.equal(error.retryable, false);
    assert.match(error.message, /MAX_TOKENS/);
    assert.match(error.requestId ?? "", /^standin-/);
    assert.equal(standIn.requests.length, 2);
  });
});

Deno.test("gemini malformed JSON once is retried and succeeds after 2 requests", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    for (const fault of ["malformed-once", "invalid-once"]) {
      standIn.reset();
      const result = await createGeminiCritic(options).critique(
        critiqueRequest(image, `${SPEC.prompt} [gemini:${fault}]`),
      );
      critiqueSchema.parse(result.critique);
      assert.equal(standIn.requests.length, 2, fault);
    }
  });
});

Deno.test("gemini always-malformed JSON fails with a clear error after 2 requests", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const error = await providerError(
      createGeminiRefiner(options).refine(refineRequest("a boat [gemini:malformed]")),
    );
    assert.equal(error.retryable, false);
    assert.match(error.message, /no usable refine in 2 attempts: the answer is not valid JSON/);
    assert.equal(standIn.requests.length, 2);
  });
});

Deno.test("gemini answers with no usable score are asked again once, and say why", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    standIn.inject("invalid-once", 2);
    const error = await providerError(createGeminiCritic(options).critique(critiqueRequest(image)));
    assert.equal(error.retryable, false);
    assert.match(error.message, /no usable critique in 2 attempts: the answer has no score/);
    assert.equal(standIn.requests.length, 2);
  });
});

Deno.test("gemini bad API key is fatal and never echoes the key", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const secret = "AIzaSy-not-the-right-key-123";
    const error = await providerError(
      createGeminiCritic({ ...options, apiKey: secret }).critique(critiqueRequest(image)),
    );
    assert.equal(error.fatal, true);
    assert.equal(error.retryable, false);
    assert.equal(error.status, 400);
    assert.match(error.message, /check GEMINI_API_KEY/);
    assert.ok(!error.message.includes(secret));
    assert.equal(standIn.requests[0]!.keyValid, false);
  });
});

Deno.test("gemini timeout is retryable", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const critic = createGeminiCritic({ ...options, timeoutMs: 100 });
    for (const fault of ["slow", "hang"]) {
      const error = await providerError(
        critic.critique(critiqueRequest(image, `${SPEC.prompt} [gemini:${fault}]`)),
      );
      assert.equal(error.retryable, true, fault);
      assert.match(error.message, /timed out after 100 ms/, fault);
    }
    assert.equal(standIn.requests.length, 2);
  });
});

Deno.test("gemini network failure is retryable", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const error = await providerError(
    createGeminiRefiner({ apiKey: "k", baseUrl: `http://127.0.0.1:${port}` }).refine(
      refineRequest(),
    ),
  );
  assert.equal(error.retryable, true);
  assert.match(error.message, /Cannot reach Gemini/);
});

Deno.test("gemini caller abort rejects with the abort reason, not a ProviderError", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const critic = createGeminiCritic(options);
    const controller = new AbortController();
    const request = {
      ...critiqueRequest(image, `${SPEC.prompt} [gemini:hang]`),
      signal: controller.signal,
    };
    const pending = rejection(critic.critique(request));
    while (standIn.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    const error = await pending;
    assert.ok(error instanceof DOMException);
    assert.equal(error.name, "AbortError");

    const reason = new Error("run cancelled");
    const aborted = AbortSignal.abort(reason);
    assert.equal(await rejection(critic.critique({ ...request, signal: aborted })), reason);
    assert.equal(standIn.requests.length, 1);
  });
});

Deno.test("gemini RPM quota answers 429 with the time left in the window", async () => {
  let now = 0;
  await withStandIn(async ({ standIn, options }) => {
    const refiner = createGeminiRefiner(options);
    await refiner.refine(refineRequest());
    now = 10_000;
    await refiner.refine(refineRequest());
    now = 20_500;
    const error = await providerError(refiner.refine(refineRequest()));
    assert.equal(error.retryable, true);
    assert.equal(error.retryAfterMs, 39_500);
    now = 60_001;
    await refiner.refine(refineRequest());
    assert.deepEqual(standIn.requests.map((r) => r.fault), [
      undefined,
      undefined,
      "quota",
      undefined,
    ]);
  }, { rpm: 2, now: () => now });
});

Deno.test("gemini calls are logged at debug level without the key", async () => {
  await withLogs("gemini", "debug", async (records) => {
    await withStandIn(async ({ image, options }) => {
      await createGeminiCritic(options).critique(critiqueRequest(image));
      await rejection(
        createGeminiCritic(options).critique(critiqueRequest(image, "x [gemini:503-once]")),
      );
      const calls = records.filter((r) => r.level === "debug");
      assert.equal(calls.length, 2);
      assert.equal(calls[0]!.properties.operation, "critique");
      assert.equal(calls[0]!.properties.model, "gemini-3.8-flash");
      assert.equal(calls[0]!.properties.status, "STOP");
      assert.equal(calls[0]!.properties.imageTokens, 280);
      assert.equal(typeof calls[0]!.properties.durationMs, "number");
      assert.equal(calls[1]!.properties.status, 503);
      const text = JSON.stringify(records.map((r) => [r.message, r.properties]));
      assert.ok(!text.includes(options.apiKey));
    });
  });
});

Deno.test("gemini JSON schemas match the zod schemas and avoid additionalProperties", () => {
  // The brief's check answers are optional: the critic is not asked for them here.
  const shape = Object.entries(critiqueSchema.shape).filter(([, s]) =>
    !s.safeParse(undefined).success
  )
    .map(([k]) => k).sort();
  assert.deepEqual(Object.keys(CRITIQUE_JSON_SCHEMA.properties).sort(), shape);
  assert.deepEqual([...CRITIQUE_JSON_SCHEMA.required].sort(), shape);
  assert.deepEqual(
    Object.keys(CRITIQUE_JSON_SCHEMA.properties.criteria.properties).sort(),
    Object.keys(critiqueSchema.shape.criteria.shape).sort(),
  );
  const text = JSON.stringify([CRITIQUE_JSON_SCHEMA, REFINEMENT_JSON_SCHEMA]);
  assert.ok(!text.includes("additionalProperties"));
  assert.ok(!text.includes("$schema"));
});

Deno.test("createGeminiCritic() rejects an empty key and bad numbers up front", () => {
  assert.throws(() => createGeminiCritic({ apiKey: "" }), /'apiKey' is empty: set GEMINI_API_KEY/);
  assert.throws(
    () => createGeminiRefiner({ apiKey: "k", timeoutMs: 0 }),
    /'timeoutMs' must be a positive number: current value is 0/,
  );
});

Deno.test("gemini prices can be overridden; an unpriced model costs 0", async () => {
  await withStandIn(async ({ options }) => {
    const model = "gemini-3.9-flash-preview";
    const priced = await createGeminiRefiner({
      ...options,
      model,
      prices: { [model]: { input: 1_000_000, output: 0 } },
    }).refine(refineRequest());
    assert.equal(priced.costUsd, priced.usage!.inputTokens);
    const both = createGeminiProviders({ ...options, model });
    assert.equal(both.critic.name, "gemini");
    const unpriced = await both.refiner.refine(refineRequest());
    assert.equal(unpriced.costUsd, 0);
  });
});

Deno.test("defaultGeminiPrices() switches 3.8 Flash to the 2027 price", () => {
  assert.deepEqual(defaultGeminiPrices(new Date("2026-12-31T12:00:00Z"))["gemini-3.8-flash"], {
    input: 0.75,
    output: 3.75,
  });
  assert.deepEqual(defaultGeminiPrices(new Date("2027-01-01T00:00:00Z"))["gemini-3.8-flash"], {
    input: 1.5,
    output: 7.5,
  });
});

Deno.test("gemini check() asks models.get once, for free, and stops on a wrong key or model", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const signal = new AbortController().signal;
    const { critic, refiner } = createGeminiProviders(options);
    assert.equal(critic.check, refiner.check, "one client, one check");
    await critic.check!(signal);
    assert.deepEqual(standIn.modelGets.map((g) => [g.model, g.status]), [[
      "gemini-3.8-flash",
      200,
    ]]);

    const wrong = "AIzaWrongKey-5566778899";
    const badKey = await providerError(
      createGeminiCritic({ ...options, apiKey: wrong }).check!(signal),
    );
    assert.equal(badKey.fatal, true);
    assert.match(badKey.message, /GEMINI_API_KEY.*aistudio\.google\.com\/apikey/);
    assert.ok(!badKey.message.includes(wrong));

    const unknown = await providerError(
      createGeminiCritic({ ...options, model: "custom-model-x" }).check!(signal),
    );
    assert.equal(unknown.fatal, true);
    assert.equal(unknown.status, 404);
    assert.match(unknown.message, /model 'custom-model-x'.*--critic-model/);
    assert.equal(standIn.requests.length, 0, "no generateContent call was paid for");
  });
});

Deno.test("gemini check() goes on when models.get cannot answer", async () => {
  const closed = await startGeminiStandIn();
  const url = closed.url;
  await closed.close();
  await createGeminiCritic({ apiKey: "AIzaKey-123456", baseUrl: url, timeoutMs: 2_000 }).check!(
    new AbortController().signal,
  );
});

Deno.test("gemini failed calls record what Gemini billed for their answers", async () => {
  await withStandIn(async ({ image, options }) => {
    const critic = createGeminiCritic(options);
    for (const fault of ["safety", "block", "max-tokens", "malformed"] as const) {
      const error = await providerError(
        critic.critique(critiqueRequest(image, `${SPEC.prompt} [gemini:${fault}]`)),
      );
      assert.ok((error.costUsd ?? 0) > 0, `${fault}: billed by its tokens`);
      assert.ok(error.costUsd! <= critic.estimateCostUsd!()!, `${fault}: within the estimate`);
    }
    // Refused before any answer: nothing billed.
    const refused = await providerError(
      critic.critique(critiqueRequest(image, `${SPEC.prompt} [gemini:429]`)),
    );
    assert.equal(refused.costUsd, undefined);
  });
});

Deno.test("gemini estimateCostUsd() bounds what a critique and a refinement cost", async () => {
  await withStandIn(async ({ image, options }) => {
    const { critic, refiner } = createGeminiProviders(options);
    // Cut off once: two answers, the second with double the room, still within the estimate.
    const critique = await critic.critique(
      critiqueRequest(image, `${SPEC.prompt} [gemini:max-tokens-once]`),
    );
    assert.ok(critique.costUsd > 0 && critique.costUsd <= critic.estimateCostUsd!()!);
    const refinement = await refiner.refine(refineRequest());
    assert.ok(refinement.costUsd > 0 && refinement.costUsd <= refiner.estimateCostUsd!()!);
    const unpriced = createGeminiCritic({ ...options, model: "gemini-9-experimental" });
    assert.equal(unpriced.estimateCostUsd!(), undefined);
  });
});

Deno.test("gemini sends no temperature, topP or topK to Gemini 3, and keeps temperature for 2.x", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const knobs = (i: number) =>
      ["temperature", "topP", "topK"].filter((k) => k in standIn.requests[i]!.generationConfig);
    // Gemini 3 (and the 2.5 Flash id, which Gemini answers with 3.5 Flash-Lite): none.
    for (const model of ["gemini-3.8-flash", "gemini-3.6-flash", "gemini-2.5-flash"]) {
      standIn.reset();
      const { critic, refiner } = createGeminiProviders({ ...options, model });
      await critic.critique(critiqueRequest(image));
      await refiner.refine(refineRequest());
      assert.deepEqual([knobs(0), knobs(1)], [[], []], model);
      assert.equal(standIn.requests[0]!.generationConfig.mediaResolution, "MEDIA_RESOLUTION_LOW");
    }
    standIn.reset();
    const { critic, refiner } = createGeminiProviders({
      ...options,
      model: "gemini-2.5-flash-lite",
    });
    await critic.critique(critiqueRequest(image));
    await refiner.refine(refineRequest());
    assert.equal(standIn.requests[0]!.generationConfig.temperature, 0.2);
    assert.equal(standIn.requests[1]!.generationConfig.temperature, 0.7);
  });
});

Deno.test("gemini records the model that answered beside the one asked for, billed at its rates, and warns once", async () => {
  await withLogs("gemini", "warning", async (records) => {
    await withStandIn(async ({ image, options }) => {
      const same = await createGeminiCritic(options).critique(critiqueRequest(image));
      assert.equal(same.model, "gemini-3.8-flash");
      assert.equal(same.modelVersion, "gemini-3.8-flash");

      const { critic, refiner } = createGeminiProviders({ ...options, model: "gemini-2.5-flash" });
      await critic.check!(new AbortController().signal);
      const routed = await critic.critique(critiqueRequest(image));
      const refined = await refiner.refine(refineRequest());
      assert.equal(routed.model, "gemini-2.5-flash");
      assert.equal(routed.modelVersion, "gemini-3.5-flash-lite");
      assert.equal(refined.modelVersion, "gemini-3.5-flash-lite");
      const rates = defaultGeminiPrices()["gemini-3.5-flash-lite"]!;
      assertTokenCost(routed, rates);
      const warnings = records.filter((r) => r.level === "warning").map((r) =>
        r.message.map(String).join("")
      );
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(
        warnings[0]!,
        /routes 'gemini-2\.5-flash' to 'gemini-3\.5-flash-lite' since 2026-12-01.*--critic-model/,
      );
    });
  });
});

Deno.test("gemini check() names the replacement of a shut-down model, and warns about one to be shut down before the first paid call", async () => {
  const warnings: Array<{ text: string; requestsSoFar: number }> = [];
  let requests = () => 0;
  const keep = (record: LogRecord) =>
    warnings.push({ text: textOf(record), requestsSoFar: requests() });
  await withLogs("gemini", "warning", async () => {
    await withStandIn(async ({ standIn, image, options }) => {
      requests = () => standIn.requests.length;
      const signal = new AbortController().signal;
      const gone = await providerError(
        createGeminiCritic({ ...options, model: "gemini-2.0-flash" }).check!(signal),
      );
      assert.equal(gone.fatal, true);
      assert.match(
        gone.message,
        /'gemini-2\.0-flash'.*shut it down on 2026-06-01: choose gemini-3\.1-flash-lite with --critic-model/,
      );
      const current = createGeminiCritic({ ...options, model: "gemini-3.1-flash-lite" });
      await current.check!(signal);
      await current.critique(critiqueRequest(image));
      assert.equal(warnings.length, 0, "a current model gets no warning");

      // The run's logging starts after the checks: the warning waits for the first paid call.
      const generator = createGeminiGenerator({ ...options, models: ["gemini-3.1-flash-image"] });
      await generator.check!(signal);
      await generator.generate({
        prompt: "a kite",
        spec: SPEC,
        iteration: 1,
        width: 1024,
        height: 1024,
        seed: 1,
        model: "gemini-3.1-flash-image",
        format: "png",
        signal,
      });
      assert.equal(warnings.length, 1);
      assert.match(
        warnings[0]!.text,
        /'gemini-3\.1-flash-image' to shut down on 2026-10-29.*choose gemini-nano-banana-2\.1 with --model/,
      );
      // One request so far, the critique: the generation had not been sent yet.
      assert.equal(warnings[0]!.requestsSoFar, 1, "logged before the generation was sent");
    }, { models: ["gemini-3.8-flash", "gemini-3.1-flash-lite", "gemini-3.1-flash-image"] });
  }, keep);
});

Deno.test("gemini wrong-key messages say where to create a current key", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const signal = new AbortController().signal;
    const standard = await providerError(
      createGeminiCritic({ ...options, apiKey: "AIzaSyOldStandardKey-123" }).check!(signal),
    );
    assert.equal(standard.fatal, true);
    assert.match(
      standard.message,
      /rejected the API key \(API_KEY_INVALID\): check GEMINI_API_KEY; .*standard API keys \(AIza…\).*auth key \(AQ\.…\) at aistudio\.google\.com\/apikey/,
    );
    const mistyped = await providerError(
      createGeminiCritic({ ...options, apiKey: "AQ.Ab-mistyped-key" }).check!(signal),
    );
    assert.match(
      mistyped.message,
      /check GEMINI_API_KEY \(create a key at aistudio\.google\.com\/apikey\)/,
    );
    assert.doesNotMatch(mistyped.message, /AIza/);
    // The 401 shape asks for OAuth: the fix is a new key all the same.
    const oauth = await providerError(
      createGeminiCritic(options).critique(critiqueRequest(image, "x [gemini:standard-key]")),
    );
    assert.equal(oauth.fatal, true);
    assert.equal(oauth.status, 401);
    assert.match(oauth.message, /ACCESS_TOKEN_TYPE_UNSUPPORTED.*aistudio\.google\.com\/apikey/);
    assert.equal(standIn.requests.length, 1);
  });
});

Deno.test("defaultGeminiPrices() knows today's models; retired ids cost what answers them", () => {
  const prices = defaultGeminiPrices(new Date("2026-12-01T00:00:00Z"));
  for (const id of ["gemini-3.1-flash-lite", "gemini-3.6-flash", "gemini-3.1-pro-preview"]) {
    assert.ok(prices[id] !== undefined, id);
  }
  assert.equal(prices["gemini-2.5-flash"], undefined, "retired: not priced on its own");
  assert.deepEqual(defaultGeminiPrices(new Date("2027-01-01T00:00:00Z"))["gemini-3.6-flash"], {
    input: 1.5,
    output: 7.5,
  });
});
