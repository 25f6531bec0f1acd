import assert from "node:assert/strict";
import sharp from "sharp";
import { InputError, ProviderError } from "../../errors.ts";
import type { PromptSpec } from "../../prompts/mod.ts";
import {
  type FalFault,
  type FalStandIn,
  type FalStandInOptions,
  startFalStandIn,
} from "../../../tests/fal_standin.ts";
import {
  createFalGenerator,
  type FalGeneratorOptions,
  FalNsfwError,
  parseRetryAfter,
} from "./fal.ts";
import {
  checkFalSize,
  DEFAULT_FAL_PRICES,
  estimateFalCost,
  FAL_MODELS,
  resolveFalModel,
} from "./models.ts";
import { withLogs } from "../_test_logs.ts";
import { bytesOf, generateRequests } from "../_test_generate.ts";

const SPEC: PromptSpec = {
  id: "harbour",
  prompt: "a blue fishing boat in a quiet harbour at dawn",
  extra: {},
};

const request = generateRequests(SPEC, {
  width: 256,
  height: 192,
  seed: 42,
  model: "flux-schnell",
});

async function withStandIn(
  fn: (standIn: FalStandIn, options: FalGeneratorOptions) => Promise<void>,
  standInOptions: FalStandInOptions = {},
): Promise<void> {
  const standIn = await startFalStandIn(standInOptions);
  try {
    await fn(standIn, {
      apiKey: standIn.key,
      baseUrl: standIn.url,
      pollIntervalMs: 5,
      timeoutMs: 5_000,
    });
  } finally {
    await standIn.close();
  }
}

async function providerError(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await promise.then(
    () => assert.fail("expected the call to fail"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${error}`);
  return error;
}

/** What fal is sent for a default {@linkcode request}: FLUX.1's fields. */
const FLUX_1_INPUT = {
  prompt: SPEC.prompt,
  image_size: { width: 256, height: 192 },
  seed: 42,
  num_images: 1,
  output_format: "png",
  enable_safety_checker: true,
};

/** A prompt carrying a stand-in fault token, distinct per test so `-once` memory is fresh. */
function faulty(fault: FalFault, tag = ""): string {
  return `${SPEC.prompt} ${tag}[fal:${fault}]`;
}

Deno.test("createFalGenerator() generates an image and records what fal reported", async () => {
  await withStandIn(async (standIn, options) => {
    const image = await createFalGenerator(options).generate(request());
    const bytes = await bytesOf(image);
    const meta = await sharp(bytes).metadata();
    assert.equal(meta.format, "png");
    assert.equal(meta.width, 256);
    assert.equal(meta.height, 192);
    assert.equal(image.format, "png");
    assert.equal(image.width, 256);
    assert.equal(image.height, 192);
    assert.equal(image.seed, 42);
    assert.equal(image.model, "fal-ai/flux/schnell");
    assert.equal(image.nsfw, false);
    assert.ok(image.costUsd > 0);
    assert.ok(image.queueMs !== undefined && image.queueMs >= 0);
    assert.ok(image.inferenceMs !== undefined && image.inferenceMs >= 0);
    const [submit, ...more] = standIn.calls("submit");
    assert.equal(more.length, 0);
    assert.equal(image.requestId, submit!.requestId);
    assert.equal(submit!.path, "/fal-ai/flux/schnell");
    assert.deepEqual(submit!.input, FLUX_1_INPUT);
    assert.equal(standIn.calls("result").length, 1);
    assert.equal(standIn.calls("file").length, 1);
    assert.ok(standIn.calls("status").every((r) => r.path.startsWith("/fal-ai/flux/requests/")));
  });
});

Deno.test("createFalGenerator() sends preset sizes by name and the seed fal draws is recorded", async () => {
  await withStandIn(async (standIn, options) => {
    const image = await createFalGenerator(options).generate(
      request({ width: 512, height: 512, format: "jpeg", seed: 7 }),
    );
    const meta = await sharp(await bytesOf(image)).metadata();
    assert.equal(meta.format, "jpeg");
    assert.equal(image.format, "jpeg");
    const input = standIn.calls("submit")[0]!.input!;
    assert.equal(input.image_size, "square");
    assert.equal(input.output_format, "jpeg");
    assert.equal(image.seed, 7);
  });
});

/** One family's input shape, as the stand-in must receive it from the real SDK. */
interface FamilyCase {
  model: string;
  /** The request's size and options. */
  width: number;
  height: number;
  format?: "png" | "jpeg";
  generator?: Partial<FalGeneratorOptions>;
  /** The exact input fal must receive (prompt and seed filled in). */
  input: Record<string, unknown>;
  /** The image made, and what the record says. */
  made: { width: number; height: number; seed: boolean; format: "png" | "jpeg" };
}

const FAMILY_CASES: FamilyCase[] = [
  {
    model: "flux-dev",
    width: 256,
    height: 192,
    generator: { steps: 8, enableSafetyChecker: false },
    input: {
      image_size: { width: 256, height: 192 },
      seed: 42,
      num_images: 1,
      output_format: "png",
      enable_safety_checker: false,
      num_inference_steps: 8,
    },
    made: { width: 256, height: 192, seed: true, format: "png" },
  },
  {
    model: "flux-pro",
    width: 1024,
    height: 768,
    format: "jpeg",
    generator: { steps: 8, enableSafetyChecker: false },
    // No checker switch and no steps: the most permissive tolerance instead.
    input: {
      image_size: "landscape_4_3",
      seed: 42,
      num_images: 1,
      output_format: "jpeg",
      safety_tolerance: "6",
    },
    made: { width: 1024, height: 768, seed: true, format: "jpeg" },
  },
  {
    model: "flux-2",
    width: 512,
    height: 512,
    generator: { steps: 12 },
    input: {
      image_size: "square",
      seed: 42,
      num_images: 1,
      output_format: "png",
      enable_safety_checker: true,
      num_inference_steps: 12,
    },
    made: { width: 512, height: 512, seed: true, format: "png" },
  },
  {
    model: "flux-2-pro",
    width: 640,
    height: 512,
    generator: { steps: 12 },
    input: {
      image_size: { width: 640, height: 512 },
      seed: 42,
      output_format: "png",
      enable_safety_checker: true,
    },
    made: { width: 640, height: 512, seed: true, format: "png" },
  },
  {
    model: "flux-2-max",
    width: 512,
    height: 640,
    generator: { enableSafetyChecker: false },
    input: {
      image_size: { width: 512, height: 640 },
      seed: 42,
      output_format: "png",
      enable_safety_checker: false,
      safety_tolerance: "5",
    },
    made: { width: 512, height: 640, seed: true, format: "png" },
  },
  ...["flux-2-flash", "flux-2-turbo"].map((model) => ({
    model,
    width: 576,
    height: 1024,
    generator: { steps: 12 },
    input: {
      image_size: "portrait_16_9",
      seed: 42,
      num_images: 1,
      output_format: "png",
      enable_safety_checker: true,
    },
    made: { width: 576, height: 1024, seed: true, format: "png" as const },
  })),
  {
    model: "nano-banana-2",
    width: 512,
    height: 288,
    input: {
      aspect_ratio: "16:9",
      resolution: "0.5K",
      seed: 42,
      num_images: 1,
      output_format: "png",
    },
    // 0.5K at 16:9, whatever the request said; and no seed comes back.
    made: { width: 680, height: 384, seed: false, format: "png" },
  },
  {
    model: "nano-banana-pro",
    width: 1000,
    height: 1000,
    format: "jpeg",
    generator: { enableSafetyChecker: false },
    input: {
      aspect_ratio: "1:1",
      resolution: "1K",
      seed: 42,
      num_images: 1,
      output_format: "jpeg",
      safety_tolerance: "6",
    },
    made: { width: 1024, height: 1024, seed: false, format: "jpeg" },
  },
  {
    model: "imagen-4",
    width: 1024,
    height: 768,
    input: {
      aspect_ratio: "4:3",
      resolution: "1K",
      seed: 42,
      num_images: 1,
      output_format: "png",
    },
    made: { width: 1184, height: 888, seed: false, format: "png" },
  },
  {
    model: "seedream-4.5",
    width: 1920,
    height: 1920,
    format: "jpeg",
    input: {
      image_size: { width: 1920, height: 1920 },
      seed: 42,
      num_images: 1,
      max_images: 1,
      enable_safety_checker: true,
    },
    // No output format field: Seedream answers PNG, recorded as such.
    made: { width: 1920, height: 1920, seed: true, format: "png" },
  },
  {
    model: "seedream-5-lite",
    width: 2560,
    height: 1440,
    input: {
      image_size: { width: 2560, height: 1440 },
      num_images: 1,
      max_images: 1,
      enable_safety_checker: true,
    },
    // It takes no seed, and reports the one it drew.
    made: { width: 2560, height: 1440, seed: true, format: "png" },
  },
  {
    model: "qwen-image",
    width: 256,
    height: 192,
    generator: { steps: 20 },
    input: {
      image_size: { width: 256, height: 192 },
      seed: 42,
      num_images: 1,
      output_format: "png",
      enable_safety_checker: true,
      num_inference_steps: 20,
    },
    made: { width: 256, height: 192, seed: true, format: "png" },
  },
  {
    model: "ideogram-v3",
    width: 512,
    height: 512,
    generator: { steps: 20, enableSafetyChecker: false },
    input: { image_size: "square", seed: 42, num_images: 1, expand_prompt: false },
    made: { width: 512, height: 512, seed: true, format: "png" },
  },
  ...["recraft-v3", "recraft-v4"].map((model) => ({
    model,
    width: 1024,
    height: 1024,
    input: { image_size: "square_hd", enable_safety_checker: true },
    made: { width: 1024, height: 1024, seed: false, format: "png" as const },
  })),
  ...["sdxl", "sd-1.5"].map((model) => ({
    model,
    width: 256,
    height: 192,
    format: "jpeg" as const,
    generator: { steps: 8 },
    input: {
      image_size: { width: 256, height: 192 },
      seed: 42,
      num_images: 1,
      format: "jpeg",
      enable_safety_checker: true,
      num_inference_steps: 8,
    },
    made: { width: 256, height: 192, seed: true, format: "jpeg" as const },
  })),
];

for (const c of FAMILY_CASES) {
  const id = resolveFalModel(c.model);
  const family = FAL_MODELS.find((m) => m.id === id)!.family;
  Deno.test(`createFalGenerator() sends ${family}'s input shape to ${id}`, async () => {
    await withStandIn(async (standIn, options) => {
      const image = await createFalGenerator({ ...options, ...c.generator }).generate(
        request({ model: c.model, width: c.width, height: c.height, format: c.format ?? "png" }),
      );
      const meta = await sharp(await bytesOf(image)).metadata();
      const [submit, ...more] = standIn.calls("submit");
      assert.equal(more.length, 0);
      assert.equal(submit!.status, 200, `the stand-in took it: ${JSON.stringify(submit!.input)}`);
      assert.equal(submit!.path, `/${id}`);
      assert.deepEqual(submit!.input, { prompt: SPEC.prompt, ...c.input });
      assert.deepEqual([meta.width, meta.height, meta.format], [
        c.made.width,
        c.made.height,
        c.made.format,
      ]);
      assert.equal(image.format, c.made.format);
      assert.equal(image.model, id);
      if (c.made.seed) assert.equal(typeof image.seed, "number");
      else assert.ok(!("seed" in image), "no seed is recorded where the model reports none");
    });
  });
}

Deno.test("resolveFalModel() maps aliases, passes endpoint ids through and rejects the rest", () => {
  assert.equal(resolveFalModel(), "fal-ai/flux/schnell");
  assert.equal(resolveFalModel(""), "fal-ai/flux/schnell");
  assert.equal(resolveFalModel("flux-schnell"), "fal-ai/flux/schnell");
  assert.equal(resolveFalModel("flux-dev"), "fal-ai/flux/dev");
  assert.equal(resolveFalModel("flux-pro"), "fal-ai/flux-pro/v1.1");
  assert.equal(resolveFalModel("sdxl"), "fal-ai/fast-sdxl");
  assert.equal(resolveFalModel("sd-1.5"), "fal-ai/stable-diffusion-v15");
  assert.equal(resolveFalModel("fal-ai/flux/dev"), "fal-ai/flux/dev");
  assert.equal(resolveFalModel("workflows/me/wf/x"), "workflows/me/wf/x");
  assert.throws(() => resolveFalModel("fluxx"), InputError);
  assert.throws(() => resolveFalModel("https://evil.example/x"), InputError);
});

Deno.test("createFalGenerator() fails a 422 as final with fal's detail, list or string form", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator(options);
    const listed = await providerError(generator.generate(request({ prompt: faulty("422") })));
    assert.equal(listed.retryable, false);
    assert.equal(listed.fatal, false);
    assert.equal(listed.status, 422);
    assert.match(listed.message, /HTTP 422/);
    assert.match(listed.message, /prompt: The content could not be processed/);
    assert.match(listed.message, /content_policy_violation/);
    assert.equal(listed.requestId, standIn.calls("submit")[0]!.requestId);

    const stringy = await providerError(
      generator.generate(request({ prompt: faulty("422-string") })),
    );
    assert.equal(stringy.retryable, false);
    assert.match(stringy.message, /Prompt could not be processed\./);

    const submitted = await providerError(
      generator.generate(request({ prompt: faulty("422-submit") })),
    );
    assert.equal(submitted.retryable, false);
    assert.equal(submitted.fatal, true, "a setting every prompt sends alike stops the run");
    assert.match(submitted.message, /setting 'num_inference_steps'/);
    assert.match(submitted.message, /num_inference_steps: Input should be less than or equal/);
    assert.equal(standIn.calls("result").length, 2, "a rejected result is fetched once");
  });
});

Deno.test("createFalGenerator() stops the run on a setting fal rejects at the result, as at submit", async () => {
  // Real fal takes the submit, reports COMPLETED and answers the result call with the 422: the
  // stand-in does so for an input its endpoint refuses (FLUX.2's 512–2048 px a side here, on an
  // endpoint retake does not know and so cannot check before the run).
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator(options);
    const wide = { model: "fal-ai/flux-2/lora", width: 4096, height: 2304 };
    const error = await providerError(generator.generate(request(wide)));
    assert.equal(error.status, 422);
    assert.equal(error.fatal, true, "every prompt sends this size: the run stops");
    assert.equal(error.retryable, false);
    assert.match(
      error.message,
      /^Cannot generate with fal endpoint 'fal-ai\/flux-2\/lora' as it rejected the setting 'image_size'.*every prompt would fail alike/,
    );
    assert.match(error.message, /between 512 and 2048 pixels/);
    assert.equal(error.costUsd ?? 0, 0, "a refusal is no output: not billed");
    assert.equal(standIn.calls("submit")[0]!.status, 200, "fal took the submit");
    assert.deepEqual(standIn.calls("result").map((r) => r.status), [422], "one result fetch");

    // The same size as a prompt's own setting fails that prompt only.
    const own = await providerError(generator.generate(request({
      ...wide,
      spec: { ...SPEC, settings: { size: { width: 4096, height: 2304 } } },
    })));
    assert.equal(own.fatal, false);
    assert.match(own.message, /setting of prompt 'harbour' alone; change it in the prompt file/);

    // A prompt fal's content checker refuses fails that prompt only, wherever it arrives.
    const content = await providerError(generator.generate(request({ prompt: faulty("422") })));
    assert.equal(content.fatal, false);
    assert.match(content.message, /content_policy_violation/);
  }, { latencyMs: 5 });
});

Deno.test("createFalGenerator() fails a prompt fal refuses at the result, replaying a body live fal sent", async () => {
  // Recorded from live fal by TanStack/ai PR #396 ("fix(ai-fal): handle errors from fal result
  // fetch on completed jobs", verified against live fal with a prompt over 2500 characters; the
  // body is the one its test `throws detailed error when result fetch returns validation error`
  // replays): the submit is taken, the status reaches COMPLETED, the result call answers 422.
  const recorded = {
    detail: [{
      type: "string_too_long",
      loc: ["body", "prompt"],
      msg: "String should have at most 2500 characters",
    }],
  };
  await withStandIn(async (standIn, options) => {
    const replay: typeof fetch = async (input, init) => {
      const url = String(input);
      if (!/\/requests\/[^/]+$/.test(new URL(url).pathname)) return fetch(input, init);
      const answer = await fetch(input, init); // the stand-in still sees the result call
      await answer.body?.cancel();
      return Response.json(recorded, {
        status: 422,
        headers: { "x-fal-request-id": answer.headers.get("x-fal-request-id") ?? "" },
      });
    };
    const error = await providerError(
      createFalGenerator({ ...options, fetch: replay }).generate(request()),
    );
    assert.equal(error.status, 422);
    assert.equal(error.fatal, false, "the prompt is at fault, not a setting: only it fails");
    assert.equal(error.retryable, false, "the same prompt would be refused again");
    assert.match(
      error.message,
      /prompt: String should have at most 2500 characters \(string_too_long\)/,
    );
    assert.equal(error.requestId, standIn.calls("submit")[0]!.requestId);
    assert.equal(error.costUsd ?? 0, 0);
    assert.equal(standIn.calls("submit").length, 1);
    assert.equal(standIn.calls("result").length, 1, "a refusal is not fetched again");
  });
});

Deno.test("createFalGenerator() sends each 429/5xx exactly once and leaves the retry to the caller", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator(options);
    // Status faults answer the status stream, which the generator follows instead of polling.
    const cases: Array<{ fault: FalFault; kind: "submit" | "stream" | "result"; status: number }> =
      [
        { fault: "429", kind: "submit", status: 429 },
        { fault: "429-once", kind: "submit", status: 429 },
        { fault: "503-once", kind: "submit", status: 503 },
        { fault: "500", kind: "stream", status: 500 },
        { fault: "500-once", kind: "stream", status: 500 },
      ];
    for (const c of cases) {
      standIn.reset();
      const started = performance.now();
      const error = await providerError(generator.generate(request({ prompt: faulty(c.fault) })));
      assert.equal(error.retryable, true, c.fault);
      assert.equal(error.fatal, false, c.fault);
      assert.equal(error.status, c.status, c.fault);
      assert.equal(error.retryAfterMs, undefined, c.fault);
      assert.equal(standIn.calls(c.kind).length, 1, `${c.fault}: one ${c.kind} on the wire`);
      assert.equal(standIn.calls("submit").length, 1, `${c.fault}: one submit on the wire`);
      assert.equal(standIn.calls("status").length, 0, `${c.fault}: no poll behind its back`);
      // The SDK's own backoff starts at 1 s; finishing well below it proves it never slept.
      assert.ok(performance.now() - started < 900, `${c.fault} took too long`);
    }
    // A retry of the same prompt (the pipeline's job) then succeeds for the -once faults.
    standIn.reset();
    const image = await generator.generate(request({ prompt: faulty("429-once", "again ") }))
      .catch(() => generator.generate(request({ prompt: faulty("429-once", "again ") })));
    await bytesOf(image);
    assert.equal(standIn.calls("submit").length, 2);
  });
});

Deno.test("createFalGenerator() passes fal's Retry-After on as retryAfterMs", async () => {
  await withStandIn(async (standIn, options) => {
    const error = await providerError(
      createFalGenerator(options).generate(request({ prompt: faulty("429-retry-after-once") })),
    );
    assert.equal(error.retryable, true);
    assert.equal(error.status, 429);
    assert.equal(error.retryAfterMs, 3000);
    assert.equal(standIn.calls("submit").length, 1);
  }, { retryAfterSeconds: 3 });
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates", () => {
  assert.equal(parseRetryAfter("2"), 2000);
  assert.equal(parseRetryAfter("0.5"), 500);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
  const now = Date.parse("Wed, 21 Oct 2026 07:28:00 GMT");
  assert.equal(parseRetryAfter("Wed, 21 Oct 2026 07:28:05 GMT", now), 5000);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2026 07:27:00 GMT", now), 0);
});

Deno.test("createFalGenerator() fails transport faults after one attempt, as retryable", async () => {
  // A closed port: the SDK would retry Deno's "fetch failed" four times over ~7 s.
  const closed = await startFalStandIn();
  const url = closed.url;
  await closed.close();
  let calls = 0;
  const counting: typeof fetch = (input, init) => {
    calls++;
    return fetch(input, init);
  };
  const refused = await providerError(
    createFalGenerator({ apiKey: "k-123456", baseUrl: url, fetch: counting, timeoutMs: 5_000 })
      .generate(request()),
  );
  assert.equal(refused.retryable, true);
  assert.equal(calls, 1);

  // Node-style faults carry ECONNRESET in the cause chain, which the SDK also retries.
  calls = 0;
  const reset: typeof fetch = () => {
    calls++;
    const cause = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
    return Promise.reject(new TypeError("fetch failed", { cause }));
  };
  const error = await providerError(
    createFalGenerator({ apiKey: "k-123456", fetch: reset }).generate(request()),
  );
  assert.equal(error.retryable, true);
  assert.equal(calls, 1);
});

Deno.test("createFalGenerator() fetches a completed request's result again rather than pay for a new one", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator(options);
    const cases: Array<{ fault: FalFault; results: number }> = [
      { fault: "drop-once", results: 2 },
      { fault: "malformed-once", results: 2 },
      { fault: "504-once", results: 2 },
      { fault: "result-500", results: 3 },
    ];
    for (const c of cases) {
      standIn.reset();
      const image = await generator.generate(request({ prompt: faulty(c.fault) }));
      await bytesOf(image);
      assert.equal(standIn.calls("submit").length, 1, `${c.fault}: one paid submit`);
      assert.equal(standIn.calls("result").length, c.results, `${c.fault}: result fetches`);
      assert.ok(image.costUsd > 0, `${c.fault}: the image is paid for once`);
    }
  });
});

Deno.test("createFalGenerator() gives up on a result fal keeps failing: not billed, next attempt submits once", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator(options);
    const error = await providerError(
      generator.generate(request({ prompt: faulty("result-500") })),
    );
    assert.equal(error.retryable, true);
    assert.equal(error.status, 500);
    assert.equal(error.costUsd ?? 0, 0, "fal bills no server error");
    assert.equal(standIn.calls("result").length, 3);
    assert.equal(standIn.calls("submit").length, 1);
    const retried = await providerError(
      generator.generate(request({ prompt: faulty("result-500") })),
    );
    assert.equal(retried.status, 500);
    assert.equal(standIn.calls("submit").length, 2, "one submit per attempt");
  }, { resultFailures: 100 });
});

Deno.test("createFalGenerator() stops the run on 401 and 403 without leaking the key", async () => {
  await withStandIn(async (standIn, options) => {
    const wrongKey = "wrong-key-id:wrong-secret-9f8e7d";
    const badKey = await providerError(
      createFalGenerator({ ...options, apiKey: wrongKey }).generate(request()),
    );
    assert.equal(badKey.fatal, true);
    assert.equal(badKey.retryable, false);
    assert.equal(badKey.status, 401);
    assert.match(badKey.message, /FAL_KEY/);
    assert.match(badKey.message, /No user found for Key ID and Secret/);
    assert.ok(!badKey.message.includes(wrongKey));
    assert.ok(!badKey.message.includes("wrong-secret"));

    const locked = await providerError(
      createFalGenerator(options).generate(request({ prompt: faulty("locked") })),
    );
    assert.equal(locked.fatal, true);
    assert.equal(locked.status, 403);
    assert.match(locked.message, /User is locked\. Reason: Exhausted balance/);
    assert.match(locked.message, /top up/i);
    assert.ok(!locked.message.includes(standIn.key));
    assert.equal(standIn.calls("submit").length, 2);
  });
});

Deno.test("createFalGenerator() fails an NSFW-flagged image as final, or keeps it flagged", async () => {
  await withStandIn(async (standIn, options) => {
    const error = await providerError(
      createFalGenerator(options).generate(request({ prompt: faulty("nsfw") })),
    );
    assert.ok(error instanceof FalNsfwError);
    assert.equal(error.nsfw, true);
    assert.equal(error.retryable, false);
    assert.ok((error.costUsd ?? 0) > 0);
    assert.equal(error.requestId, standIn.calls("submit")[0]!.requestId);
    assert.equal(standIn.calls("file").length, 0, "a flagged image is not downloaded");

    const kept = await createFalGenerator({ ...options, failOnNsfw: false }).generate(
      request({ prompt: faulty("nsfw") }),
    );
    assert.equal(kept.nsfw, true);
    const stats = await sharp(await bytesOf(kept)).stats();
    assert.equal(stats.channels[0]!.max, 0, "fal blacks out flagged images");
  });
});

Deno.test("createFalGenerator() rejects a download that is not an image or not allowed", async () => {
  await withStandIn(async (standIn, options) => {
    const urls: string[] = [];
    const recording: typeof fetch = (input, init) => {
      urls.push(String(input));
      return fetch(input, init);
    };
    const generator = createFalGenerator({ ...options, fetch: recording });
    const html = await providerError(generator.generate(request({ prompt: faulty("not-image") })));
    assert.equal(html.retryable, false);
    assert.match(html.message, /content type is 'text\/html'/);
    assert.equal(html.costUsd, 0.003, "fal completed the request, so it billed it");

    const foreign = await providerError(
      generator.generate(request({ prompt: faulty("foreign-url") })),
    );
    assert.equal(foreign.retryable, false);
    assert.match(foreign.message, /only https URLs/);
    assert.ok(!urls.some((u) => u.includes("203.0.113.7")), "the foreign host is never contacted");
    assert.ok(foreign.requestId !== undefined);

    // Without a baseUrl, plain http from the stand-in is as foreign as any other host.
    const strict = createFalGenerator({
      ...options,
      baseUrl: undefined,
      fetch: (input, init) => {
        const url = String(input).replace("https://queue.fal.run", standIn.url);
        return fetch(url, init);
      },
    });
    const insecure = await providerError(strict.generate(request()));
    assert.match(insecure.message, /only https URLs are allowed/);
  });
});

Deno.test("createFalGenerator() enforces maxDownloadBytes", async () => {
  await withStandIn(async (_standIn, options) => {
    const error = await providerError(
      createFalGenerator({ ...options, maxDownloadBytes: 1000 }).generate(request()),
    );
    assert.equal(error.retryable, false);
    assert.match(error.message, /limit is 1000/);
  });
});

Deno.test("createFalGenerator() decodes images fal returns inline as data URIs", async () => {
  await withStandIn(async (standIn, options) => {
    const image = await createFalGenerator(options).generate(
      request({ prompt: faulty("data-uri"), format: "jpeg" }),
    );
    const meta = await sharp(await bytesOf(image)).metadata();
    assert.equal(meta.format, "jpeg");
    assert.equal(image.format, "jpeg");
    assert.equal(standIn.calls("file").length, 0);
  });
});

Deno.test("createFalGenerator() cancels a request on fal when it runs past timeoutMs", async () => {
  await withStandIn(async (standIn, options) => {
    const started = performance.now();
    const error = await providerError(
      createFalGenerator({ ...options, timeoutMs: 80 }).generate(
        request({ prompt: faulty("hang") }),
      ),
    );
    assert.ok(performance.now() - started < 1000);
    assert.equal(error.retryable, true);
    assert.match(error.message, /longer than 80 ms/);
    const id = standIn.calls("submit")[0]!.requestId;
    assert.equal(error.requestId, id);
    const cancels = standIn.calls("cancel");
    assert.equal(cancels.length, 1);
    assert.equal(cancels[0]!.requestId, id);
    assert.equal(cancels[0]!.path, `/fal-ai/flux/requests/${id}/cancel`);
    assert.equal(standIn.stats().cancelled, 1);
  });
});

Deno.test("createFalGenerator() stops on the request's signal and cancels on fal", async () => {
  await withStandIn(async (standIn, options) => {
    const controller = new AbortController();
    const reason = new DOMException("Cancelled by the test", "AbortError");
    const pending = createFalGenerator(options).generate(
      request({ prompt: faulty("hang"), signal: controller.signal }),
    );
    await until(() => standIn.calls("stream").length > 0);
    controller.abort(reason);
    await assert.rejects(pending, (e) => e === reason);
    assert.equal(standIn.calls("cancel").length, 1);

    const aborted = new AbortController();
    aborted.abort(reason);
    standIn.reset();
    await assert.rejects(
      createFalGenerator(options).generate(request({ signal: aborted.signal })),
      (e) => e === reason,
    );
    assert.equal(standIn.requests.length, 0);
  });
});

Deno.test("createFalGenerator() talks to fal's own hosts without a baseUrl", async () => {
  const urls: string[] = [];
  const offline: typeof fetch = (input) => {
    urls.push(String(input));
    return Promise.resolve(Response.json({ detail: "No user found for Key ID and Secret" }, {
      status: 401,
    }));
  };
  const error = await providerError(
    createFalGenerator({ apiKey: "k-123456", fetch: offline }).generate(request()),
  );
  assert.equal(error.fatal, true);
  assert.deepEqual(urls, ["https://queue.fal.run/fal-ai/flux/schnell"]);
});

Deno.test("createFalGenerator() prices images by endpoint, with overrides", async () => {
  await withStandIn(async (_standIn, options) => {
    const big = { width: 1024, height: 1024 };
    const defaults = await createFalGenerator(options).generate(request({ ...big }));
    await bytesOf(defaults);
    assert.equal(defaults.costUsd, 0.003);

    const generator = createFalGenerator({
      ...options,
      prices: {
        "fal-ai/flux/schnell": 0.01,
        "fal-ai/recraft-v3": { usd: 0.04, unit: "image" },
      },
    });
    const overridden = await generator.generate(request({ width: 1440, height: 1440 }));
    await bytesOf(overridden);
    assert.equal(overridden.costUsd, 0.02, "2 started megapixels at the overridden price");
    const perImage = await generator.generate(request({ model: "fal-ai/recraft-v3" }));
    await bytesOf(perImage);
    assert.equal(perImage.costUsd, 0.04);
    const unknown = await generator.generate(request({ model: "someone/new-model" }));
    await bytesOf(unknown);
    assert.equal(unknown.costUsd, 0);
    assert.equal(unknown.costUnknown, true, "no price is not a price of 0");
    assert.equal(perImage.costUnknown, undefined);
  });
  assert.equal(
    estimateFalCost(DEFAULT_FAL_PRICES["fal-ai/flux/dev"]!, [{ width: 1024, height: 768 }]),
    0.025,
  );
  assert.throws(() => createFalGenerator({ apiKey: "k", prices: { x: -1 } }), RangeError);
  assert.throws(() => createFalGenerator({ apiKey: " " }), TypeError);
  assert.throws(() => createFalGenerator({ apiKey: "k", pollIntervalMs: 0 }), RangeError);
});

Deno.test("createFalGenerator() logs every HTTP call at debug level without the key", async () => {
  await withLogs("fal", "debug", async (records) => {
    await withStandIn(async (standIn, options) => {
      const image = await createFalGenerator(options).generate(request());
      await bytesOf(image);
      const calls = records.filter((r) => typeof r.properties.status === "number");
      const seen = calls.map((r) => `${r.properties.method} ${r.properties.status}`);
      assert.equal(seen[0], "POST 200");
      assert.ok(seen.includes("GET 200"));
      // submit + status polls + result + image download, all logged.
      assert.equal(calls.length, standIn.requests.length);
      for (const record of calls) {
        assert.equal(record.level, "debug");
        assert.equal(typeof record.properties.path, "string");
        assert.equal(typeof record.properties.durationMs, "number");
      }
      const everything = JSON.stringify(records.map((r) => [r.message, r.properties]));
      assert.ok(!everything.includes(standIn.key), "the key must never be logged");
      assert.ok(!/authorization/i.test(everything), "headers must never be logged");
    });
  });
});

Deno.test("createFalGenerator() records time spent queued behind fal's concurrency limit", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator(options);
    const [first, second] = await Promise.all([
      generator.generate(request({ prompt: "first" })),
      generator.generate(request({ prompt: "second" })),
    ]);
    await Promise.all([bytesOf(first!), bytesOf(second!)]);
    const queued = [first!.queueMs!, second!.queueMs!].sort((a, b) => a - b);
    // fal never said the first was queued: none of the time it took to ask counts as queueing.
    assert.equal(queued[0], 0, `one ran at once: ${queued}`);
    assert.ok(queued[1]! >= 30, `the other waited for the slot: ${queued}`);
    assert.equal(standIn.stats().maxInProgress, 1);
    // The time at fal the adaptive limiter reads: queued, then fal's own inference time.
    for (const image of [first!, second!]) {
      assert.equal(image.serviceMs, image.queueMs! + image.inferenceMs!);
      assert.ok(image.inferenceMs! >= 55, `inference ${image.inferenceMs} ms of 60`);
    }
  }, { concurrency: 1, latencyMs: 60 });
});

/** Waits until `check()` holds, polling the stand-in's recorded requests. */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 2));
}

Deno.test("createFalGenerator() times out with one submit, cancels it, and never recovers what it cancelled", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator({ ...options, timeoutMs: 150 });
    const first = await providerError(generator.generate(request({ prompt: faulty("hang") })));
    assert.equal(first.retryable, true);
    assert.match(first.message, /took longer than 150 ms \(timeoutMs\); it was cancelled on fal/);
    assert.equal(first.costUsd ?? 0, 0, "a request cancelled before it finished is not billed");
    const cancelledId = standIn.calls("submit")[0]!.requestId!;
    const polled = () =>
      [...standIn.calls("status"), ...standIn.calls("stream")].filter((r) =>
        r.requestId === cancelledId
      ).length;
    const polledBefore = polled();
    // The next attempt is told about that request, as a resumed run would be: it is not
    // recovered (this process cancelled it), and the one new request is cancelled too.
    const second = await providerError(
      generator.generate(request({ prompt: faulty("hang"), recoverRequestId: cancelledId })),
    );
    assert.match(second.message, /took longer than 150 ms/);
    assert.equal(polled(), polledBefore, "the cancelled request is not looked at again");
    assert.equal(standIn.calls("submit").length, 2, "one submit per attempt");
    assert.equal(standIn.calls("cancel").length, 2, "every request that timed out is cancelled");
    const stats = standIn.stats();
    assert.equal(stats.inProgress, 0, "nothing left running on fal");
    assert.equal(stats.queued, 0);
  });
});

Deno.test("createFalGenerator() recovers an earlier run's request, and cancels it when it times out", async () => {
  await withStandIn(async (standIn, options) => {
    // The earlier process: its request was accepted, then the process went away.
    const earlier = new AbortController();
    const lost = createFalGenerator(options).generate(
      request({ prompt: faulty("hang"), signal: earlier.signal }),
    ).catch(() => {});
    await until(() => standIn.calls("stream").length > 0);
    const id = standIn.calls("submit")[0]!.requestId!;
    const resumed = createFalGenerator({ ...options, timeoutMs: 150 });
    const error = await providerError(
      resumed.generate(request({ prompt: faulty("hang"), recoverRequestId: id })),
    );
    assert.match(error.message, /took longer than 150 ms \(timeoutMs\); it was cancelled on fal/);
    assert.equal(standIn.calls("submit").length, 1, "recovering pays for nothing new");
    assert.deepEqual(standIn.calls("cancel").map((r) => r.requestId), [id]);
    assert.equal(standIn.stats().inProgress, 0);
    earlier.abort();
    await lost;
  });
});

Deno.test("createFalGenerator() cancels a request whose submit answered after the deadline", async () => {
  await withStandIn(async (standIn, options) => {
    const timeoutMs = 100;
    // The submit answers three deadlines late: timers fire in order, so always after it.
    const slowSubmit: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (init?.method === "POST") {
        await new Promise((resolve) => setTimeout(resolve, 3 * timeoutMs));
      }
      return response;
    };
    const error = await providerError(
      createFalGenerator({ ...options, timeoutMs, fetch: slowSubmit }).generate(
        request({ prompt: faulty("hang") }),
      ),
    );
    assert.match(error.message, /took longer than 100 ms/);
    assert.equal(standIn.calls("submit").length, 1);
    assert.equal(standIn.calls("cancel").length, 1, "the late-accepted request is cancelled");
    assert.equal(standIn.stats().inProgress, 0);
  });
});

Deno.test("createFalGenerator() records what fal billed for results it cannot use", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator(options);
    const empty = await providerError(generator.generate(request({ prompt: faulty("no-images") })));
    assert.equal(empty.retryable, false);
    assert.match(empty.message, /holds no image URL/);
    assert.equal(empty.costUsd, 0.003);
    const nsfw = await providerError(generator.generate(request({ prompt: faulty("nsfw") })));
    assert.equal(nsfw.costUsd, 0.003);
    const rejected = await providerError(generator.generate(request({ prompt: faulty("422") })));
    assert.equal(rejected.costUsd ?? 0, 0, "a rejection is not an output");
    assert.equal(standIn.calls("submit").length, 3);
  });
});

Deno.test("createFalGenerator() fetches a billed image it lost once more instead of paying again", async () => {
  await withStandIn(async (standIn, options) => {
    let files = 0;
    const flakyFiles: typeof fetch = (input, init) => {
      if (String(input).includes("/files/") && files++ === 0) {
        return Promise.resolve(new Response("busy", { status: 503 }));
      }
      return fetch(input, init);
    };
    const generator = createFalGenerator({ ...options, fetch: flakyFiles });
    const lost = await providerError(generator.generate(request()));
    assert.equal(lost.retryable, true);
    assert.equal(lost.costUsd, 0.003, "fal billed the request whose image was lost");
    // The next attempt with the same input: fal's result again, no new request, nothing owed.
    const image = await generator.generate(request());
    await bytesOf(image);
    assert.equal(image.costUsd, 0);
    assert.equal(image.requestId, lost.requestId);
    assert.equal(standIn.calls("submit").length, 1);
    // Once delivered, the same input is a new request again.
    await bytesOf(await generator.generate(request()));
    assert.equal(standIn.calls("submit").length, 2);
  });
});

Deno.test("createFalGenerator() stops the run on an endpoint fal does not have; a submit there is free", async () => {
  await withStandIn(async (standIn, options) => {
    const error = await providerError(
      createFalGenerator(options).generate(request({ model: "fal-ai/flux/nope" })),
    );
    assert.equal(error.fatal, true);
    assert.equal(error.status, 404);
    assert.match(error.message, /no endpoint 'fal-ai\/flux\/nope'.*check --model/);
    assert.equal(standIn.stats().submitted, 0);
  }, { endpoints: ["fal-ai/flux/schnell"] });
});

Deno.test("createFalGenerator().check() tells a wrong key and an unknown endpoint for free", async () => {
  await withStandIn(async (standIn, options) => {
    const signal = new AbortController().signal;
    await createFalGenerator({ ...options, models: ["flux-schnell", "flux-dev"] }).check!(signal);
    const wrong = "wrong-key-id:wrong-secret-77aa";
    const badKey = await providerError(
      createFalGenerator({ ...options, apiKey: wrong }).check!(signal),
    );
    assert.equal(badKey.fatal, true);
    assert.match(badKey.message, /FAL_KEY.*fal\.ai\/dashboard\/keys/);
    assert.ok(!badKey.message.includes(wrong));
    const unknown = await providerError(
      createFalGenerator({ ...options, models: ["fal-ai/flux/typo"] }).check!(signal),
    );
    assert.equal(unknown.fatal, true);
    assert.match(unknown.message, /model 'fal-ai\/flux\/typo' as fal has no such endpoint/);
    // Someone's own app is not in fal's public catalogue: left to the first (free) submit.
    await createFalGenerator({ ...options, models: ["someone/private-app"] }).check!(signal);
    assert.equal(standIn.stats().submitted, 0, "checking costs nothing");
    assert.ok(standIn.requests.every((r) => r.kind === "models" || r.kind === "pricing"));
  }, { endpoints: ["fal-ai/flux/schnell", "fal-ai/flux/dev"] });
});

Deno.test("createFalGenerator().check() goes on when fal's Platform API cannot answer", async () => {
  await withStandIn(async (standIn, options) => {
    const noPlatform: typeof fetch = (input, init) =>
      String(input).includes("/v1/models")
        ? Promise.resolve(Response.json({ detail: "down" }, { status: 503 }))
        : fetch(input, init);
    await createFalGenerator({ ...options, fetch: noPlatform }).check!(
      new AbortController().signal,
    );
    assert.equal(standIn.requests.length, 0);
  });
});

Deno.test("createFalGenerator() estimates a step's cost from the price table, and learns fal's price", async () => {
  await withStandIn(async (_standIn, options) => {
    const generator = createFalGenerator(options);
    assert.equal(
      generator.estimateCostUsd!({ model: "flux-dev", width: 1440, height: 1440 }),
      0.05,
    );
    assert.equal(
      generator.estimateCostUsd!({ model: "someone/new-model", width: 512, height: 512 }),
      undefined,
    );
    // fal's pricing API knows a price the table does not: the check takes it.
    const learning = createFalGenerator({
      ...options,
      models: ["someone/new-model"],
      fetch: (input, init) =>
        String(input).includes("/v1/models/pricing")
          ? Promise.resolve(Response.json({
            prices: [{ endpoint_id: "someone/new-model", unit_price: 0.01, unit: "image" }],
          }))
          : fetch(input, init),
    });
    await learning.check!(new AbortController().signal);
    assert.equal(
      learning.estimateCostUsd!({ model: "someone/new-model", width: 512, height: 512 }),
      0.01,
    );
  });
});

Deno.test("createFalGenerator() prices each call as the endpoint it went to: an edit at its edit endpoint's price", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator({
      ...options,
      prices: { "fal-ai/flux-2-pro": { usd: 0.03, unit: "megapixel", extraMegapixelUsd: 0.015 } },
    });
    const size = { width: 1024, height: 768 };
    const edit = {
      imagePath: "/nowhere.png",
      imageUrl: `${standIn.url}/files/x.png`,
      instruction: "make the boat red",
    };
    // fal.ai/models/fal-ai/flux-pro/kontext: $0.04 per image, whatever FLUX.1 model drew it.
    assert.equal(generator.estimateCostUsd!({ model: "flux-schnell", ...size }), 0.003);
    assert.equal(generator.estimateCostUsd!({ model: "flux-schnell", ...size, edit: true }), 0.04);
    // Nano Banana 2's edit endpoint: $0.08 an image, ×1.5 at 2K, the tier of the image it edits.
    assert.equal(
      generator.estimateCostUsd!({ model: "nano-banana-2", width: 2048, height: 2048, edit: true }),
      0.12,
    );
    // No confirmed price for FLUX.2's edit endpoint: unknown, not FLUX.2 [pro]'s $0.03.
    assert.equal(
      generator.estimateCostUsd!({ model: "flux-2-pro", ...size, edit: true }),
      undefined,
    );
    // A family without an edit endpoint always redraws: the drawing's price.
    assert.equal(generator.estimateCostUsd!({ model: "recraft-v3", ...size, edit: true }), 0.04);

    const kontext = await generator.generate(request({ model: "flux-schnell", ...size, edit }));
    await bytesOf(kontext);
    assert.equal(kontext.model, "fal-ai/flux-pro/kontext");
    assert.equal(kontext.costUsd, 0.04, "the edit at Kontext's price, not FLUX.1 [schnell]'s");
    const flux2 = await generator.generate(request({ model: "flux-2-pro", ...size, edit }));
    await bytesOf(flux2);
    assert.equal(flux2.model, "fal-ai/flux-2/edit");
    assert.equal(flux2.costUsd, 0);
    assert.equal(flux2.costUnknown, true, "an unknown edit price is unknown, not the drawing's");
    assert.deepEqual(standIn.calls("submit").map((r) => [r.endpoint, r.status]), [
      ["fal-ai/flux-pro/kontext", 200],
      ["fal-ai/flux-2/edit", 200],
    ]);
  });
});

Deno.test("createFalGenerator().check() covers the edit endpoints of a run that may edit, for free", async () => {
  await withStandIn(async (standIn, options) => {
    const signal = new AbortController().signal;
    const models = ["flux-2-pro", "flux-2-flash"];
    // fal's pricing API knows FLUX.2's edit price, which retake's table lacks.
    const learning = createFalGenerator({
      ...options,
      models,
      edits: true,
      fetch: (input, init) =>
        String(input).includes("/v1/models/pricing")
          ? fetch(input, init).then(() =>
            Response.json({
              prices: [{
                endpoint_id: "fal-ai/flux-2/edit",
                unit_price: 0.012,
                unit: "megapixels",
              }],
            })
          )
          : fetch(input, init),
    });
    await learning.check!(signal);
    const [pricing] = standIn.calls("pricing");
    assert.deepEqual(pricing!.query.replace(/^endpoint_id=/, "").split(","), [
      "fal-ai/flux-2-pro",
      "fal-ai/flux-2/flash",
      "fal-ai/flux-2/edit",
    ], "each edit endpoint once");
    assert.equal(
      learning.estimateCostUsd!({ model: "flux-2-pro", width: 1024, height: 768, edit: true }),
      0.012,
    );
    // An edit endpoint fal does not list stops a run that may edit, before any paid call.
    standIn.reset();
    const missing = await providerError(
      createFalGenerator({ ...options, models: ["flux-schnell"], edits: true }).check!(signal),
    );
    assert.equal(missing.fatal, true);
    assert.match(
      missing.message,
      /fal model 'fal-ai\/flux\/schnell' as fal has no endpoint 'fal-ai\/flux-pro\/kontext'.*--refine regenerate/,
    );
    // A run that only redraws does not need it.
    await createFalGenerator({ ...options, models: ["flux-schnell"] }).check!(signal);
    assert.equal(standIn.stats().submitted, 0, "checking costs nothing");
  }, {
    endpoints: [
      "fal-ai/flux/schnell",
      "fal-ai/flux-2-pro",
      "fal-ai/flux-2/flash",
      "fal-ai/flux-2/edit",
    ],
  });
});

Deno.test("checkFalSize() refuses sizes a model family cannot make", () => {
  checkFalSize("fal-ai/flux/schnell", 4096, 4096);
  checkFalSize("fal-ai/flux-pro/v1.1", 1440, 256);
  assert.throws(
    () => checkFalSize("fal-ai/flux-pro/v1.1", 2048, 1024),
    (e: unknown) =>
      e instanceof InputError && /FLUX1\.1 \[pro\] makes 256 to 1440 px a side/.test(e.message) &&
      /--size/.test(e.message),
  );
});

/** The InputError `fn` throws, for its message. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof InputError, `expected an InputError, got ${error}`);
    return error.message;
  }
  return assert.fail("expected the size to be refused");
}

Deno.test("checkFalSize() names each family's limits: FLUX.2's sides, Seedream's area", () => {
  checkFalSize("fal-ai/flux-2", 512, 2048);
  assert.match(
    refusal(() => checkFalSize("fal-ai/flux-2-pro", 4096, 1024)),
    /^Cannot generate 4096x1024 images with fal endpoint 'fal-ai\/flux-2-pro' as FLUX\.2 \[pro\] makes 512 to 2048 px a side: current width is 4096; choose another --size$/,
  );
  assert.match(
    refusal(() => checkFalSize("fal-ai/flux-2/flash", 1024, 256)),
    /current height is 256/,
  );
  // Seedream 4.5: each side 1920–4096, or 2560x1440–4096x4096 px in all.
  checkFalSize("fal-ai/bytedance/seedream/v4.5/text-to-image", 1920, 1920);
  checkFalSize("fal-ai/bytedance/seedream/v4.5/text-to-image", 2560, 1440);
  assert.match(
    refusal(() => checkFalSize("fal-ai/bytedance/seedream/v4.5/text-to-image", 1024, 768)),
    /Seedream 4\.5 makes 1920 to 4096 px a side, or 2560x1440 to 4096x4096 px in all \(3\.69 to 16\.78 MP\): current size is 1024x768 \(0\.79 MP\)/,
  );
  assert.match(
    refusal(() => checkFalSize("fal-ai/bytedance/seedream/v5/lite/text-to-image", 4096, 4096)),
    /Seedream 5 Lite makes 2560x1440 to 3072x3072 px in all/,
  );
  // Endpoints retake does not know are left to fal.
  checkFalSize("someone/new-model", 64, 4096);
});

Deno.test("checkFalSize() maps a size to the nearest ratio and tier, refusing one more than 5% off", () => {
  checkFalSize("fal-ai/nano-banana-2", 1024, 576); // 16:9
  checkFalSize("fal-ai/nano-banana-2", 4096, 1024); // 4:1, only Nano Banana 2 has it
  checkFalSize("fal-ai/imagen4/preview", 1000, 760); // 4:3 is 1.3% off
  const off = refusal(() => checkFalSize("fal-ai/nano-banana-pro", 4096, 1024));
  assert.match(off, /Nano Banana Pro makes only the aspect ratios 21:9, 16:9, 3:2/);
  assert.match(off, /the nearest to 4\.000 is 21:9, 71\.4% off \(at most 5%\)/);
  assert.match(off, /choose another --size, e\.g\. \d+x\d+$/);
  assert.match(
    refusal(() => checkFalSize("fal-ai/imagen4/preview", 1100, 1000)),
    /nearest to 1\.100 is 1:1, 10\.0% off/,
  );
  const small = refusal(() => checkFalSize("fal-ai/nano-banana-pro", 256, 256));
  assert.match(small, /makes the sizes 1K \(1024x1024 at 1:1\), 2K \(2048x2048 at 1:1\), 4K/);
  assert.match(small, /256x256 is more than twice a side off the nearest, 1K; .*e\.g\. 1024x1024$/);
  checkFalSize("fal-ai/nano-banana-2", 256, 256); // 0.5K is twice 256 a side: close enough
});

Deno.test("falProvider.create() refuses a size the model cannot make before any call", async () => {
  const { falProvider } = await import("./fal.ts");
  const settings = falProvider.schema.parse({ key: "k-123456" });
  await assert.rejects(
    () =>
      falProvider.create({
        settings,
        roles: new Set(["generate"]),
        models: ["fal-ai/flux/schnell", "fal-ai/nano-banana-pro"],
        size: { width: 1000, height: 300 },
        criticModel: undefined,
        timeoutMs: 1000,
      }),
    (e: unknown) => e instanceof InputError && /fal-ai\/nano-banana-pro/.test(e.message),
  );
});

Deno.test("estimateFalCost() and estimateCostUsd() price per image, megapixel and tier", () => {
  const generator = createFalGenerator({ apiKey: "k-123456" });
  const estimate = (model: string, width: number, height: number) =>
    generator.estimateCostUsd!({ model, width, height });
  assert.equal(estimate("flux-dev", 1024, 1024), 0.025);
  assert.equal(estimate("flux-dev", 1100, 1000), 0.05, "megapixels are started ones");
  // FLUX.2 [pro]: $0.03 the first megapixel, $0.015 each one after it.
  assert.equal(estimate("flux-2-pro", 1024, 1024), 0.03);
  assert.equal(estimate("flux-2-pro", 2048, 2048), 0.075);
  // Nano Banana 2: per image, by the resolution tier the size maps to.
  assert.equal(estimate("nano-banana-2", 512, 512), 0.06);
  assert.equal(estimate("nano-banana-2", 1024, 768), 0.08);
  assert.equal(estimate("nano-banana-2", 2048, 1152), 0.12);
  assert.equal(estimate("nano-banana-2", 4096, 4096), 0.16);
  assert.equal(estimate("seedream-4.5", 2048, 2048), 0.04);
  // No published price: unknown, never 0.
  for (const model of ["flux-2", "nano-banana-pro", "imagen-4", "qwen-image", "someone/app"]) {
    assert.equal(estimate(model, 1024, 1024), undefined, model);
  }
  assert.equal(
    estimateFalCost({ usd: 0.1, unit: "image", tierFactors: { "4K": 2 } }, [
      { width: 1, height: 1 },
      { width: 1, height: 1 },
    ], "4K"),
    0.4,
  );
  // A bare number overrides the amount and keeps the unit and the tiers.
  const overridden = createFalGenerator({
    apiKey: "k-123456",
    prices: { "fal-ai/nano-banana-2": 0.1 },
  });
  assert.equal(
    overridden.estimateCostUsd!({ model: "nano-banana-2", width: 4096, height: 4096 }),
    0.2,
  );
});

Deno.test("createFalGenerator() prices a per-megapixel image at the size of the file when fal's answer has none", async () => {
  await withStandIn(async (standIn, options) => {
    // fal says nothing of the size, and the image it made is not the size asked for.
    const made = new Uint8Array(
      await sharp({ create: { width: 1500, height: 1000, channels: 3, background: "teal" } })
        .png().toBuffer(),
    );
    const served: typeof fetch = (input, init) =>
      String(input).includes("/files/")
        ? Promise.resolve(new Response(made, { headers: { "content-type": "image/png" } }))
        : fetch(input, init);
    const image = await createFalGenerator({ ...options, fetch: served }).generate(
      request({ model: "flux-dev", width: 1024, height: 1024, prompt: faulty("no-size") }),
    );
    assert.deepEqual(await bytesOf(image), made, "every byte still arrives");
    assert.deepEqual([image.width, image.height], [1500, 1000]);
    assert.equal(image.costUsd, 0.05, "2 started megapixels, not the 1 asked for");
    const result = JSON.parse(JSON.stringify(standIn.calls("result")[0]));
    assert.equal(result.status, 200);
  });
});

Deno.test("createFalGenerator() submits with x-fal-no-retry, so a failed run is an attempt of its own", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator(options);
    const prompt = faulty("runner-503-once");
    const error = await providerError(generator.generate(request({ prompt })));
    assert.equal(error.status, 503);
    assert.equal(error.retryable, true);
    assert.equal(error.costUsd ?? 0, 0, "fal bills no server error");
    const first = standIn.calls("submit")[0]!;
    assert.equal(first.falHeaders["x-fal-no-retry"], "1");
    assert.equal(standIn.job(first.requestId!)!.runs, 1, "fal did not rerun it behind our back");
    // The pipeline's retry is a new submit, and it is recorded as the second attempt.
    await bytesOf(await generator.generate(request({ prompt })));
    assert.equal(standIn.calls("submit").length, 2);
  });
});

Deno.test("createFalGenerator() follows the status stream: one status request per generation", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator(options);
    for (let i = 0; i < 3; i++) await bytesOf(await generator.generate(request({ seed: i })));
    assert.equal(standIn.calls("stream").length, 3);
    assert.equal(standIn.calls("status").length, 0);
    // Polling, for comparison: at least one status call per generation, more while it runs.
    standIn.reset();
    const polling = createFalGenerator({ ...options, statusUpdates: "poll" });
    for (let i = 0; i < 3; i++) await bytesOf(await polling.generate(request({ seed: i })));
    assert.equal(standIn.calls("stream").length, 0);
    assert.ok(standIn.calls("status").length >= 6, `${standIn.calls("status").length} polls`);
  }, { latencyMs: 20 });
});

Deno.test("createFalGenerator() polls for the rest of the run where the status stream is not served", async () => {
  await withLogs("fal", "info", async (records) => {
    await withStandIn(async (standIn, options) => {
      const generator = createFalGenerator(options);
      for (let i = 0; i < 3; i++) await bytesOf(await generator.generate(request({ seed: i })));
      assert.deepEqual(standIn.calls("stream").map((r) => r.status), [404], "tried once");
      assert.ok(standIn.calls("status").length >= 3);
      assert.equal(standIn.calls("submit").length, 3);
      const said = records.filter((r) => String(r.message.join("")).includes("status stream"));
      assert.equal(said.length, 1);
    }, { statusStream: false });
  });
});

Deno.test("createFalGenerator() sends FLUX.1-style input to an endpoint it does not know, with a warning", async () => {
  await withLogs("fal", "warning", async (records) => {
    await withStandIn(async (standIn, options) => {
      const generator = createFalGenerator(options);
      for (let i = 0; i < 2; i++) {
        await bytesOf(await generator.generate(request({ model: "someone/new-model" })));
      }
      assert.deepEqual(standIn.calls("submit")[0]!.input, FLUX_1_INPUT);
      const warned = records.filter((r) =>
        r.message.join("").includes("does not know fal endpoint")
      );
      assert.equal(warned.length, 1, "once per endpoint");
      assert.equal(warned[0]!.properties.model, "someone/new-model");
    });
  });
});
