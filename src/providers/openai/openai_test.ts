import assert from "node:assert/strict";
import sharp from "sharp";
import { critiqueSchema } from "../critique.ts";
import {
  type OpenAIFault,
  type OpenAIStandIn,
  type OpenAIStandInOptions,
  startOpenAIStandIn,
} from "../../../tests/openai_standin.ts";
import { CRITIC_INSTRUCTION, REFINER_INSTRUCTION } from "../_llm_prompts.ts";
import { CRITIQUE_JSON_SCHEMA } from "../gemini/schema.ts";
import { type Brief, briefSchema } from "../critique.ts";
import {
  createOpenAIProviders,
  DEFAULT_OPENAI_MODEL,
  DEFAULT_OPENAI_PRICES,
  isLoopbackUrl,
  NO_KEY,
  type OpenAIOptions,
  openaiProvider,
  parseHeaders,
  strictJsonSchema,
} from "./openai.ts";
import type { EnvVar } from "../provider.ts";
import {
  assertTokenCost,
  critiqueRequest,
  providerErrorFrom,
  refineRequest,
  rejection,
  SPEC,
} from "../_test_llm.ts";
import { withLogs } from "../_test_logs.ts";

const providerError = (promise: Promise<unknown>) => providerErrorFrom("openai", promise);

interface Fixture {
  standIn: OpenAIStandIn;
  image: string;
  options: OpenAIOptions;
}

async function withStandIn(
  fn: (f: Fixture) => Promise<void>,
  standInOptions: OpenAIStandInOptions = {},
): Promise<void> {
  const standIn = await startOpenAIStandIn({ retryAfterMs: 1500, ...standInOptions });
  const dir = await Deno.makeTempDir({ prefix: "retake_openai_" });
  try {
    const image = `${dir}/big.png`;
    await sharp({
      create: { width: 1024, height: 768, channels: 3, background: { r: 60, g: 90, b: 170 } },
    }).png().toFile(image);
    await fn({
      standIn,
      image,
      options: { apiKey: standIn.key, baseUrl: standIn.url, timeoutMs: 5_000 },
    });
  } finally {
    await standIn.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every object in a JSON Schema, depth first. */
function objects(schema: unknown): Array<Record<string, unknown>> {
  if (schema === null || typeof schema !== "object") return [];
  const s = schema as Record<string, unknown>;
  const children = Object.values(s).flatMap((v) =>
    Array.isArray(v) ? v.flatMap(objects) : objects(v)
  );
  return s.type === "object" ? [s, ...children] : children;
}

Deno.test("openai critic sends a downscaled JPEG data URL and a strict json_schema, and prices the answer", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const { critic } = createOpenAIProviders(options);
    assert.equal(critic.name, "openai");
    const result = await critic.critique(critiqueRequest(image));

    assert.deepEqual(critiqueSchema.parse(result.critique), result.critique);
    assert.equal(result.model, DEFAULT_OPENAI_MODEL);
    assert.match(result.requestId ?? "", /^req_standin_/);
    assert.equal(standIn.requests.length, 1);
    const seen = standIn.requests[0]!;
    assert.equal(seen.authorization, `Bearer ${standIn.key}`);
    assert.equal(seen.model, "gpt-5.4-mini");
    assert.equal(seen.imageUrlPrefix, "data:image/jpeg;base64");
    assert.deepEqual(
      { width: seen.image?.width, height: seen.image?.height, detail: seen.image?.detail },
      { width: 384, height: 288, detail: "low" },
    );
    assert.ok(seen.image!.bytes < 60_000, `sent ${seen.image!.bytes} bytes`);
    assert.equal(seen.system, CRITIC_INSTRUCTION);
    assert.match(seen.prompt, /a blue fishing boat in a quiet harbour at dawn/);
    assert.match(seen.prompt, /Title: Harbour/);
    assert.match(seen.prompt, /Mood: calm/);

    const format = seen.responseFormat as {
      type: string;
      json_schema: { name: string; strict: boolean; schema: Record<string, unknown> };
    };
    assert.equal(format.type, "json_schema");
    assert.equal(format.json_schema.name, "critique");
    assert.equal(format.json_schema.strict, true);
    const schema = format.json_schema.schema;
    assert.deepEqual(
      Object.keys(schema.properties as object).sort(),
      Object.keys(CRITIQUE_JSON_SCHEMA.properties).sort(),
    );
    // Strict mode: every object closed and every property required; no Gemini-only keywords.
    for (const object of objects(schema)) {
      assert.equal(object.additionalProperties, false);
      assert.deepEqual(
        [...object.required as string[]].sort(),
        Object.keys(object.properties as object).sort(),
      );
    }
    assert.doesNotMatch(JSON.stringify(schema), /propertyOrdering/);
    // A server that is not api.openai.com gets the widely supported max_tokens; a reasoning
    // model gets no temperature.
    assert.equal(seen.body.max_tokens, 4096);
    assert.equal(seen.body.max_completion_tokens, undefined);
    assert.equal(seen.body.temperature, undefined);

    assert.ok(result.usage!.inputTokens > 85);
    assert.ok(result.usage!.outputTokens > 0);
    const price = DEFAULT_OPENAI_PRICES["gpt-5.4-mini"]!;
    assertTokenCost(result, price);
    assert.ok(result.costUsd > 0);
  });
});

Deno.test("strictJsonSchema() closes objects and turns optional properties into required nullable ones", () => {
  const schema = strictJsonSchema({
    type: "object",
    properties: {
      score: { type: "number", minimum: 0 },
      checks: { type: "array", items: { type: "object", properties: { id: { type: "string" } } } },
    },
    required: ["score"],
    propertyOrdering: ["score", "checks"],
  });
  assert.deepEqual(schema, {
    type: "object",
    properties: {
      score: { type: "number", minimum: 0 },
      checks: {
        type: ["array", "null"],
        items: {
          type: "object",
          properties: { id: { type: ["string", "null"] } },
          required: ["id"],
          additionalProperties: false,
        },
      },
    },
    required: ["score", "checks"],
    additionalProperties: false,
  });
});

Deno.test("openai critic and refiner report each answer's time at the server, from openai-processing-ms", async () => {
  await withStandIn(async ({ image, options }) => {
    const { critic, refiner } = createOpenAIProviders(options);
    const started = performance.now();
    const critique = await critic.critique(critiqueRequest(image));
    const elapsed = performance.now() - started;
    // The stand-in's own time (its set latency and its work), within the whole call's.
    assert.ok(
      critique.serviceMs !== undefined && critique.serviceMs >= 40 && critique.serviceMs <= elapsed,
      `serviceMs ${critique.serviceMs} of a ${elapsed.toFixed(0)} ms call`,
    );
    const refined = await refiner.refine(refineRequest());
    assert.ok(refined.serviceMs !== undefined && refined.serviceMs >= 40);
  }, { latencyMs: 40 });
});

Deno.test("openai critic gives a non-reasoning model its temperature", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    await createOpenAIProviders({ ...options, model: "gpt-4o-mini" }).critic.critique(
      critiqueRequest(image),
    );
    assert.equal(standIn.requests[0]!.body.temperature, 0.2);
    assert.equal(standIn.requests[0]!.model, "gpt-4o-mini");
  });
});

Deno.test("openai refiner sends the critique and history as text and returns a validated prompt", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const { refiner } = createOpenAIProviders(options);
    const result = await refiner.refine(refineRequest());
    assert.equal(
      result.prompt,
      "a boat at dawn, soft light, a bright blue hull on the fishing boat",
    );
    assert.deepEqual(result.changes, [{
      change: 'Added "a bright blue hull on the fishing boat"',
      reason: "The boat in the centre is grey, not blue",
    }]);
    assert.ok(result.costUsd > 0);
    assert.equal(standIn.requests.length, 1);
    const seen = standIn.requests[0]!;
    assert.equal(seen.hasImage, false);
    assert.equal(seen.system, REFINER_INSTRUCTION);
    assert.match(seen.prompt, /Original prompt: a blue fishing boat/);
    assert.match(
      seen.prompt,
      /Round 1 \(score 4\).*\n\s+problems: The harbour is missing entirely/,
    );
    const format = seen.responseFormat as { json_schema: { name: string; schema: object } };
    assert.equal(format.json_schema.name, "refinement");
    assert.ok(objects(format.json_schema.schema).every((o) => o.additionalProperties === false));
  });
});

Deno.test("openai faults are classified after exactly one request each: the SDK retries nothing", async () => {
  const cases: Array<[OpenAIFault, { retryable: boolean; fatal: boolean; message: RegExp }]> = [
    ["429", { retryable: true, fatal: false, message: /rate limit reached \(HTTP 429/ }],
    ["quota", { retryable: false, fatal: true, message: /no quota left.*add credit/ }],
    ["500", { retryable: true, fatal: false, message: /unavailable \(HTTP 500/ }],
    ["html-503-once", { retryable: true, fatal: false, message: /unavailable \(HTTP 503/ }],
    ["400-setting", {
      retryable: false,
      fatal: true,
      message: /response_format.*would fail alike/,
    }],
    ["400-image", { retryable: false, fatal: false, message: /unsupported image/ }],
    ["content-filter", { retryable: false, fatal: false, message: /content_filter/ }],
    ["refusal", { retryable: false, fatal: false, message: /refused the critique: I'm sorry/ }],
  ];
  await withStandIn(async ({ standIn, image, options }) => {
    const { critic } = createOpenAIProviders(options);
    for (const [fault, expected] of cases) {
      standIn.reset();
      const error = await providerError(
        critic.critique(critiqueRequest(image, `${SPEC.prompt} [openai:${fault}]`)),
      );
      assert.equal(standIn.requests.length, 1, `${fault}: one request, no hidden retry`);
      assert.equal(error.retryable, expected.retryable, fault);
      assert.equal(error.fatal, expected.fatal, fault);
      assert.match(error.message, expected.message, fault);
    }
  });
});

Deno.test("openai 429 carries the server's Retry-After; the next attempt succeeds", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const { refiner } = createOpenAIProviders(options);
    const request = refineRequest("a boat [openai:429-once]");
    const error = await providerError(refiner.refine(request));
    assert.equal(error.status, 429);
    assert.equal(error.retryAfterMs, 1500);
    assert.equal(error.retryable, true);
    assert.equal(error.costUsd, undefined, "a refused call is not billed");
    await refiner.refine(request);
    assert.deepEqual(standIn.requests.map((r) => r.status), [429, 200]);
  });
});

Deno.test("openai 500 once: one request fails retryable, the caller's retry is the only other", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const { critic } = createOpenAIProviders(options);
    const request = critiqueRequest(image, `${SPEC.prompt} [openai:500-once]`);
    const error = await providerError(critic.critique(request));
    assert.equal(error.retryable, true);
    assert.equal(error.status, 500);
    assert.equal(standIn.requests.length, 1);
    await critic.critique(request);
    assert.equal(standIn.requests.length, 2);
  });
});

Deno.test("openai bad JSON once is retried inside the call and succeeds after 2 requests", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const { critic } = createOpenAIProviders(options);
    const result = await critic.critique(
      critiqueRequest(image, `${SPEC.prompt} [openai:bad-json-once]`),
    );
    assert.deepEqual(critiqueSchema.parse(result.critique), result.critique);
    assert.equal(standIn.requests.length, 2);
    // Both answers were billed, so both count.
    const one = await critic.critique(critiqueRequest(image, SPEC.prompt));
    assert.ok(result.usage!.inputTokens > 1.5 * one.usage!.inputTokens);
  });
});

Deno.test("openai always-bad JSON fails after 2 requests, not retryable, billed", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const error = await providerError(
      createOpenAIProviders(options).critic.critique(
        critiqueRequest(image, `${SPEC.prompt} [openai:bad-json]`),
      ),
    );
    assert.equal(standIn.requests.length, 2);
    assert.equal(error.retryable, false);
    assert.match(error.message, /no usable critique in 2 attempts: the answer is not valid JSON/);
    assert.ok((error.costUsd ?? 0) > 0, "the answers were billed");
    assert.match(error.requestId ?? "", /^req_standin_/);
  });
});

Deno.test("openai length once is retried with double the room; always cut off fails billed", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const { refiner } = createOpenAIProviders({ ...options, maxOutputTokens: 1000 });
    await refiner.refine(refineRequest("a boat [openai:length-once]"));
    assert.deepEqual(standIn.requests.map((r) => r.maxTokens), [1000, 2000]);

    standIn.reset();
    const error = await providerError(refiner.refine(refineRequest("a boat [openai:length]")));
    assert.deepEqual(standIn.requests.map((r) => r.maxTokens), [1000, 2000]);
    assert.equal(error.retryable, false);
    assert.match(error.message, /cut off at 2000 output tokens \(finish_reason length\)/);
    // Both cut-off answers were billed in full: 1000 + 2000 output tokens, plus two prompts.
    const price = DEFAULT_OPENAI_PRICES["gpt-5.4-mini"]!;
    assert.ok(error.costUsd! > (3000 * price.output) / 1e6);
  });
});

Deno.test("openai a filtered answer records its billed prompt on the error", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const { critic } = createOpenAIProviders(options);
    const error = await providerError(
      critic.critique(critiqueRequest(image, `${SPEC.prompt} [openai:content-filter]`)),
    );
    assert.equal(standIn.requests.length, 1);
    assert.ok((error.costUsd ?? 0) > 0, "the prompt tokens of a filtered answer are billed");
  });
});

Deno.test("openai unknown model on a chat call is fatal and names the model", async () => {
  await withStandIn(async ({ image, options }) => {
    const error = await providerError(
      createOpenAIProviders({ ...options, model: "gpt-nope" }).critic.critique(
        critiqueRequest(image),
      ),
    );
    assert.equal(error.fatal, true);
    assert.equal(error.status, 404);
    assert.match(error.message, /model 'gpt-nope'.*--critic-model/);
  });
});

Deno.test("openai bad key is fatal, names OPENAI_API_KEY, and never echoes the key", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const apiKey = "sk-wrong-0123456789abcdef";
    const error = await providerError(
      createOpenAIProviders({ ...options, apiKey }).critic.critique(critiqueRequest(image)),
    );
    assert.equal(error.fatal, true);
    assert.equal(error.retryable, false);
    assert.equal(error.status, 401);
    assert.match(error.message, /rejected the API key.*OPENAI_API_KEY.*platform\.openai\.com/);
    assert.ok(!error.message.includes(apiKey));
    assert.equal(standIn.requests.length, 1);
  });
});

Deno.test("openai timeout is retryable and sent once", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const { critic } = createOpenAIProviders({ ...options, timeoutMs: 200 });
    const error = await providerError(
      critic.critique(critiqueRequest(image, `${SPEC.prompt} [openai:hang]`)),
    );
    assert.equal(error.retryable, true);
    assert.match(error.message, /timed out after 200 ms/);
    assert.equal(standIn.requests.length, 1);
  });
});

Deno.test("openai network failure is retryable and names OPENAI_BASE_URL", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const { refiner } = createOpenAIProviders({ baseUrl: `http://127.0.0.1:${port}/v1` });
  const error = await providerError(refiner.refine(refineRequest()));
  assert.equal(error.retryable, true);
  assert.match(
    error.message,
    /Cannot reach the server at http:\/\/127\.0\.0\.1:\d+\/v1.*OPENAI_BASE_URL/,
  );
});

Deno.test("openai caller abort rejects with the abort reason, not a ProviderError", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const { critic } = createOpenAIProviders(options);
    const controller = new AbortController();
    const request = {
      ...critiqueRequest(image, `${SPEC.prompt} [openai:hang]`),
      signal: controller.signal,
    };
    const pending = rejection(critic.critique(request));
    while (standIn.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    const reason = new Error("run cancelled");
    controller.abort(reason);
    assert.equal(await pending, reason);

    assert.equal(
      await rejection(critic.critique({ ...request, signal: AbortSignal.abort(reason) })),
      reason,
    );
    assert.equal(standIn.requests.length, 1);
  });
});

Deno.test("openai check() lists models once, for free, and stops on a wrong key or model", async () => {
  await withStandIn(async ({ standIn, options }) => {
    await createOpenAIProviders(options).critic.check!(AbortSignal.timeout(5_000));
    // Ollama lists `llava:latest` and answers to `llava`.
    await createOpenAIProviders({ ...options, model: "llava" }).critic.check!(
      AbortSignal.timeout(5_000),
    );
    assert.equal(standIn.modelLists.length, 2);
    assert.equal(standIn.requests.length, 0, "no paid call");

    const bad = await providerError(
      createOpenAIProviders({ ...options, apiKey: "sk-bad-key-000000" }).critic.check!(
        AbortSignal.timeout(5_000),
      ),
    );
    assert.equal(bad.fatal, true);
    assert.match(bad.message, /OPENAI_API_KEY/);
    assert.match(bad.message, /platform\.openai\.com\/api-keys/);

    const unknown = await providerError(
      createOpenAIProviders({ ...options, model: "gpt-nope" }).refiner.check!(
        AbortSignal.timeout(5_000),
      ),
    );
    assert.equal(unknown.fatal, true);
    assert.match(
      unknown.message,
      /model 'gpt-nope'.*does not list it.*--critic-model.*gpt-5\.4-mini/,
    );
    assert.equal(standIn.requests.length, 0);
  });
});

Deno.test("openai check() goes on with a warning when the server lists no models, or has no list", async () => {
  for (const standInOptions of [{ listModels: "empty" as const }, { listModels: false }]) {
    await withLogs("openai", "debug", async (records) => {
      await withStandIn(async ({ standIn, options }) => {
        const { critic, refiner } = createOpenAIProviders({ ...options, model: "gpt-4o-mini" });
        await critic.check!(AbortSignal.timeout(5_000));
        assert.equal(standIn.modelLists.length, 1);
        // The check runs before the run's logging is set up: its warning comes with the first
        // paid call.
        assert.equal(records.filter((r) => r.level === "warning").length, 0);
        await refiner.refine(refineRequest());
        const warnings = records.filter((r) => r.level === "warning");
        assert.ok(
          warnings.some((r) => /not checked/.test(String(r.message.join("")))),
          JSON.stringify(standInOptions),
        );
      }, standInOptions);
    });
  }
});

Deno.test("openai check() goes on when the server cannot be reached", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await createOpenAIProviders({ baseUrl: `http://127.0.0.1:${port}/v1` }).critic.check!(
    AbortSignal.timeout(5_000),
  );
});

Deno.test("openai without a key works against a server on this machine, with a placeholder token", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const { refiner } = createOpenAIProviders({ baseUrl: options.baseUrl });
    await rejection(refiner.refine(refineRequest()));
    assert.equal(standIn.requests[0]!.authorization, `Bearer ${NO_KEY}`);
  });
  assert.throws(
    () => createOpenAIProviders({ baseUrl: "https://openrouter.ai/api/v1" }),
    /'apiKey' is empty.*OPENAI_API_KEY/,
  );
  // A base URL is shown without its user name, password or query.
  assert.throws(
    () => createOpenAIProviders({ baseUrl: "https://me:hunter2@proxy.example/v1?token=t0k" }),
    (error: Error) =>
      /'https:\/\/proxy\.example\/v1' is not on this machine/.test(error.message) &&
      !/hunter2|t0k/.test(error.message),
  );
  assert.throws(
    () => createOpenAIProviders({ apiKey: "k", maxOutputTokens: 0 }),
    /'maxOutputTokens' must be a positive number: current value is 0/,
  );
});

Deno.test("openai sends the configured extra headers", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const headers = parseHeaders(
      "HTTP-Referer: https://example.org\nX-Title:  retake \n\nbad line",
    );
    assert.deepEqual(headers, { "HTTP-Referer": "https://example.org", "X-Title": "retake" });
    await createOpenAIProviders({ ...options, headers }).refiner.refine(refineRequest());
    assert.equal(standIn.requests[0]!.headers["x-title"], "retake");
    assert.equal(standIn.requests[0]!.headers["http-referer"], "https://example.org");
  });
});

Deno.test("openai an unpriced model costs 0 with one warning, and the budget cannot price it", async () => {
  await withLogs("openai", "debug", async (records) => {
    await withStandIn(async ({ options }) => {
      // As if the server were elsewhere (the stand-in is on this machine, which bills nothing).
      const { critic, refiner } = createOpenAIProviders({
        ...options,
        model: "my-finetune",
        local: false,
      });
      const result = await refiner.refine(refineRequest());
      await refiner.refine(refineRequest());
      assert.equal(result.costUsd, 0);
      assert.ok(result.usage!.inputTokens > 0);
      assert.equal(critic.estimateCostUsd!(), undefined);
      assert.equal(refiner.estimateCostUsd!(), undefined);
      const warnings = records.filter((r) => r.level === "warning");
      assert.equal(warnings.length, 1, "one warning per client, not per call");
      assert.match(String(warnings[0]!.message.join("")), /No price known for model my-finetune/);
    }, { models: ["my-finetune"] });
  });
});

Deno.test("openai an unpriced model on this machine is free, and the budget reserves 0", async () => {
  await withStandIn(async ({ image, options }) => {
    const { critic } = createOpenAIProviders({ ...options, model: "llava" });
    assert.equal(critic.estimateCostUsd!(), 0);
    assert.equal((await critic.critique(critiqueRequest(image))).costUsd, 0);
  });
});

Deno.test("openai prices can be overridden per model", async () => {
  await withStandIn(async ({ options }) => {
    const { refiner } = createOpenAIProviders({
      ...options,
      model: "llava",
      prices: { llava: { input: 1_000_000, output: 0 } },
    });
    const result = await refiner.refine(refineRequest());
    assert.equal(result.costUsd, result.usage!.inputTokens);
  });
});

Deno.test("openai estimateCostUsd() bounds what a critique and a refinement cost", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const { critic, refiner } = createOpenAIProviders(options);
    const price = DEFAULT_OPENAI_PRICES["gpt-5.4-mini"]!;
    // Two attempts of (text + image) in, 4096 + 8192 out.
    assert.equal(
      critic.estimateCostUsd!(),
      (2 * 7_000 * price.input + 3 * 4096 * price.output) / 1e6,
    );
    assert.equal(
      refiner.estimateCostUsd!(),
      (2 * 8_000 * price.input + 3 * 4096 * price.output) / 1e6,
    );
    // The worst real call, two attempts both cut off, stays under the estimate.
    const error = await providerError(
      critic.critique(critiqueRequest(image, `${SPEC.prompt} [openai:length]`)),
    );
    assert.equal(standIn.requests.length, 2);
    assert.ok(error.costUsd! <= critic.estimateCostUsd!()!, `${error.costUsd} billed`);
    assert.equal(standIn.modelLists.length, 0, "estimates cost no call");
  });
});

Deno.test("openai calls are logged at debug level without the key", async () => {
  await withLogs("openai", "debug", async (records) => {
    await withStandIn(async ({ image, options }) => {
      await createOpenAIProviders(options).critic.critique(critiqueRequest(image));
      await rejection(
        createOpenAIProviders(options).critic.critique(critiqueRequest(image, "x [openai:500]")),
      );
      const calls = records.filter((r) => r.level === "debug");
      assert.equal(calls.length, 2);
      assert.equal(calls[0]!.properties.operation, "critique");
      assert.equal(calls[0]!.properties.model, "gpt-5.4-mini");
      assert.equal(calls[0]!.properties.status, "stop");
      assert.equal(typeof calls[0]!.properties.durationMs, "number");
      assert.equal(calls[1]!.properties.status, 500);
      const text = JSON.stringify(records.map((r) => [r.message, r.properties]));
      assert.ok(!text.includes(options.apiKey!));
    });
  });
});

Deno.test("openaiProvider describes its settings, secrets and availability", () => {
  const settings = openaiProvider.schema.parse({});
  assert.deepEqual(settings, {});
  assert.equal(openaiProvider.available(settings), false);
  assert.equal(openaiProvider.available({ key: "sk-x" }), true);
  assert.equal(openaiProvider.available({ baseUrl: "http://127.0.0.1:11434/v1" }), true);
  assert.equal(openaiProvider.available({ baseUrl: "https://openrouter.ai/api/v1" }), false);
  const env: Record<string, EnvVar> = Object.fromEntries(
    openaiProvider.env.map((e) => [e.names[0], e]),
  );
  assert.deepEqual(
    [env.OPENAI_API_KEY?.setting, env.OPENAI_API_KEY?.secret],
    ["key", true],
  );
  assert.equal(env.OPENAI_BASE_URL?.setting, "baseUrl");
  assert.ok(!env.OPENAI_BASE_URL?.secret);
  assert.match(openaiProvider.unavailable, /OPENAI_API_KEY.*OPENAI_BASE_URL.*--critic local/);
  assert.throws(() => openaiProvider.schema.parse({ keys: "x" }));
  assert.ok(openaiProvider.models.some((m) => m.id === DEFAULT_OPENAI_MODEL && m.price));
  assert.equal(isLoopbackUrl("http://localhost:1234/v1"), true);
  assert.equal(isLoopbackUrl("http://[::1]:1234/v1"), true);
  assert.equal(isLoopbackUrl("http://10.0.0.2:11434/v1"), false);
});

Deno.test("openaiProvider.create() builds a critic and a refiner that share one check", async () => {
  await withStandIn(async ({ standIn }) => {
    const parts = await openaiProvider.create({
      settings: { key: standIn.key, baseUrl: standIn.url },
      roles: new Set(["critique", "refine"]),
      models: [],
      size: { width: 512, height: 512 },
      criticModel: "gpt-4o-mini",
      timeoutMs: 5_000,
    });
    assert.ok(parts.critic && parts.refiner);
    assert.equal(parts.critic.check, parts.refiner.check);
    await parts.critic.check!(AbortSignal.timeout(5_000));
    await parts.refiner.refine(refineRequest());
    assert.equal(standIn.requests[0]!.model, "gpt-4o-mini");
  });
});

const BRIEF: Brief = {
  checks: [
    { id: "c1", question: "Is there a blue fishing boat?", kind: "entity" },
    { id: "c2", question: "Is it dawn?", kind: "lighting" },
    { id: "c3", question: "Is the harbour quiet?", kind: "mood" },
  ],
};

Deno.test("openai critic makes the brief with a text-only call and a strict schema", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const { critic } = createOpenAIProviders(options);
    const result = await critic.brief!({ spec: SPEC, signal: new AbortController().signal });
    assert.deepEqual(briefSchema.parse(result.brief), result.brief);
    assert.deepEqual(result.brief.checks.map((c) => c.question), [
      "Does the image show a blue fishing boat in a quiet harbour at dawn?",
    ]);
    assert.ok(result.costUsd > 0);
    const seen = standIn.requests[0]!;
    assert.equal(seen.hasImage, false);
    assert.match(seen.system, /checklist/);
    assert.match(seen.prompt, /^Prompt: a blue fishing boat/);
    const format = seen.responseFormat as { json_schema: { name: string; schema: object } };
    assert.equal(format.json_schema.name, "brief");
    assert.ok(objects(format.json_schema.schema).every((o) => o.additionalProperties === false));
  });
});

Deno.test("openai critic answers every check of the brief; a null fix for a passed check is dropped", async () => {
  await withStandIn(async ({ standIn, image, options }) => {
    const { critic } = createOpenAIProviders(options);
    const result = await critic.critique({ ...critiqueRequest(image), brief: BRIEF });
    assert.deepEqual(result.critique.checks!.map((c) => c.id), ["c1", "c2", "c3"]);
    for (const check of result.critique.checks!) {
      assert.equal("fix" in check, !check.passed, JSON.stringify(check));
    }
    const seen = standIn.requests[0]!;
    assert.match(seen.prompt, /c2 \(lighting\): Is it dawn\?/);
    const schema = (seen.responseFormat as { json_schema: { schema: Record<string, unknown> } })
      .json_schema.schema;
    const item = (schema.properties as Record<string, { items: Record<string, unknown> }>).checks!
      .items.properties as Record<string, { type: unknown }>;
    // Strict mode requires every property: the optional fix may be null instead.
    assert.deepEqual(item.fix!.type, ["string", "null"]);
    for (const object of objects(schema)) {
      assert.deepEqual(
        [...object.required as string[]].sort(),
        Object.keys(object.properties as object).sort(),
      );
    }

    const plain = await critic.critique(critiqueRequest(image));
    assert.equal(plain.critique.checks, undefined);
    const plainSchema = standIn.requests[1]!.responseFormat as {
      json_schema: { schema: { properties: object } };
    };
    assert.ok(!("checks" in plainSchema.json_schema.schema.properties));
  });
});

Deno.test("openai refiner writes an edit instruction in edit mode only", async () => {
  await withStandIn(async ({ standIn, options }) => {
    const { refiner } = createOpenAIProviders(options);
    const edit = await refiner.refine({ ...refineRequest(), mode: "edit" });
    assert.equal(edit.instruction, "add a bright blue hull on the fishing boat");
    assert.match(standIn.requests[0]!.prompt, /write `instruction`/);
    const redraw = await refiner.refine(refineRequest());
    assert.equal(redraw.instruction, undefined);
    assert.equal("instruction" in redraw, false);
  });
});

Deno.test("openai records the snapshot that answered as modelVersion", async () => {
  await withStandIn(async ({ options }) => {
    const { refiner } = createOpenAIProviders({ ...options, model: "gpt-4o-mini" });
    const result = await refiner.refine(refineRequest());
    assert.equal(result.model, "gpt-4o-mini");
    assert.equal(result.modelVersion, "gpt-4o-mini-2024-07-18");
    // Priced by the id asked for.
    const price = DEFAULT_OPENAI_PRICES["gpt-4o-mini"]!;
    assertTokenCost(result, price);
  }, { answerModel: (m) => m === "gpt-4o-mini" ? "gpt-4o-mini-2024-07-18" : m });
});
