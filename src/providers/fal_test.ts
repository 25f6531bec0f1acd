import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import sharp from "sharp";
import { InputError, ProviderError } from "../errors.ts";
import type { PromptSpec } from "../prompts.ts";
import {
  type FalFault,
  type FalStandIn,
  type FalStandInOptions,
  startFalStandIn,
} from "../../tests/fal_standin.ts";
import {
  checkFalSize,
  createFalGenerator,
  DEFAULT_FAL_PRICES,
  estimateFalCost,
  type FalGeneratorOptions,
  FalNsfwError,
  parseRetryAfter,
  resolveFalModel,
} from "./fal.ts";
import type { GeneratedImage, GenerateRequest } from "./provider.ts";

const SPEC: PromptSpec = {
  id: "harbour",
  prompt: "a blue fishing boat in a quiet harbour at dawn",
  extra: {},
};

function request(overrides: Partial<GenerateRequest> = {}): GenerateRequest {
  return {
    prompt: SPEC.prompt,
    spec: SPEC,
    iteration: 1,
    width: 256,
    height: 192,
    seed: 42,
    model: "flux-schnell",
    format: "png",
    signal: new AbortController().signal,
    ...overrides,
  };
}

async function bytesOf(image: GeneratedImage): Promise<Uint8Array> {
  return image.data instanceof Uint8Array
    ? image.data
    : new Uint8Array(await new Response(image.data).arrayBuffer());
}

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
    assert.deepEqual(submit!.input, {
      prompt: SPEC.prompt,
      image_size: { width: 256, height: 192 },
      seed: 42,
      num_images: 1,
      output_format: "png",
      enable_safety_checker: true,
    });
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

Deno.test("createFalGenerator() uses each endpoint's field names for format and steps", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator({ ...options, steps: 8, enableSafetyChecker: false });
    for (const model of ["sdxl", "sd-1.5", "flux-pro", "flux-dev"]) {
      const image = await generator.generate(request({ model, format: "jpeg" }));
      await bytesOf(image);
    }
    const inputs = standIn.calls("submit").map((r) => [r.endpoint, r.input]);
    assert.deepEqual(inputs.map(([endpoint]) => endpoint), [
      "fal-ai/fast-sdxl",
      "fal-ai/stable-diffusion-v15",
      "fal-ai/flux-pro/v1.1",
      "fal-ai/flux/dev",
    ]);
    const [sdxl, sd15, pro, dev] = inputs.map(([, input]) => input as Record<string, unknown>);
    assert.equal(sdxl!.format, "jpeg");
    assert.equal(sdxl!.output_format, undefined);
    assert.equal(sdxl!.num_inference_steps, 8);
    assert.equal(sd15!.format, "jpeg");
    assert.equal(pro!.num_inference_steps, undefined);
    assert.equal(pro!.output_format, "jpeg");
    assert.equal(dev!.num_inference_steps, 8);
    assert.equal(dev!.enable_safety_checker, false);
  });
});

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

Deno.test("createFalGenerator() sends each 429/5xx exactly once and leaves the retry to the caller", async () => {
  await withStandIn(async (standIn, options) => {
    const generator = createFalGenerator(options);
    const cases: Array<{ fault: FalFault; kind: "submit" | "status" | "result"; status: number }> =
      [
        { fault: "429", kind: "submit", status: 429 },
        { fault: "429-once", kind: "submit", status: 429 },
        { fault: "503-once", kind: "submit", status: 503 },
        { fault: "500", kind: "status", status: 500 },
        { fault: "500-once", kind: "status", status: 500 },
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
    while (standIn.calls("status").length < 2) await new Promise((r) => setTimeout(r, 2));
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
  const records: LogRecord[] = [];
  await configure({
    sinks: { buffer: (record) => records.push(record) },
    loggers: [
      { category: ["retake", "fal"], lowestLevel: "debug", sinks: ["buffer"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
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
  } finally {
    await reset();
  }
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
    assert.ok(queued[0]! < 30, `one ran at once: ${queued}`);
    assert.ok(queued[1]! >= 30, `the other waited for the slot: ${queued}`);
    assert.equal(standIn.stats().maxInProgress, 1);
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
    const polled = () => standIn.calls("status").filter((r) => r.requestId === cancelledId).length;
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
    await until(() => standIn.calls("status").length > 0);
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
