import assert from "node:assert/strict";
import sharp from "sharp";
import { geminiImageTokens, startGeminiStandIn } from "./gemini_standin.ts";

async function png(width: number, height: number): Promise<string> {
  const bytes = await sharp({
    create: { width, height, channels: 3, background: { r: 30, g: 90, b: 200 } },
  }).png().toBuffer();
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
}

async function post(
  url: string,
  model: string,
  body: unknown,
  key: string | null,
): Promise<{ status: number; json: Record<string, unknown>; type: string | null }> {
  const response = await fetch(`${url}/v1beta/models/${model}:generateContent`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key !== null && { "x-goog-api-key": key }) },
    body: JSON.stringify(body),
  });
  const type = response.headers.get("content-type");
  const text = await response.text();
  return { status: response.status, json: type?.includes("json") ? JSON.parse(text) : {}, type };
}

const textBody = (text: string, extra: Record<string, unknown> = {}) => ({
  contents: [{ role: "user", parts: [{ text }] }],
  ...extra,
});

Deno.test("geminiImageTokens() follows the published rule per model generation", () => {
  assert.equal(geminiImageTokens("gemini-2.5-flash", 384, 384), 258);
  assert.equal(geminiImageTokens("gemini-2.5-flash", 385, 200), 258);
  assert.equal(geminiImageTokens("gemini-2.5-flash", 1024, 1024), 1032);
  assert.equal(geminiImageTokens("gemini-2.5-flash-lite", 1536, 768), 516);
  assert.equal(geminiImageTokens("gemini-3.8-flash", 256, 256), 1120);
  assert.equal(geminiImageTokens("gemini-3.8-flash", 256, 256, "MEDIA_RESOLUTION_LOW"), 280);
  assert.equal(
    geminiImageTokens("gemini-3.5-flash-lite", 2048, 2048, "MEDIA_RESOLUTION_MEDIUM"),
    560,
  );
  assert.equal(geminiImageTokens("gemini-3.8-flash", 10, 10, "MEDIA_RESOLUTION_ULTRA_HIGH"), 2240);
});

Deno.test("startGeminiStandIn() checks the key and the route like the real API", async () => {
  const standIn = await startGeminiStandIn({ key: "right" });
  try {
    const wrong = await post(standIn.url, "gemini-3.8-flash", textBody("hi"), "wrong");
    assert.equal(wrong.status, 400);
    const error = wrong.json.error as { status: string; details: Array<Record<string, unknown>> };
    assert.equal(error.status, "INVALID_ARGUMENT");
    assert.equal(error.details[0]!.reason, "API_KEY_INVALID");

    const missing = await post(standIn.url, "gemini-3.8-flash", textBody("hi"), null);
    assert.equal(missing.status, 403);

    const route = await fetch(`${standIn.url}/v1beta/models/gemini-3.8-flash:countTokens`, {
      method: "POST",
      body: "{}",
    });
    await route.body?.cancel();
    assert.equal(route.status, 404);

    const noMime = await post(
      standIn.url,
      "gemini-3.8-flash",
      textBody("hi", { generationConfig: { responseJsonSchema: { type: "object" } } }),
      "right",
    );
    assert.equal(noMime.status, 400);
  } finally {
    await standIn.close();
  }
});

Deno.test("startGeminiStandIn() times every answer in server-timing, as Google's front end does", async () => {
  const standIn = await startGeminiStandIn({ key: "right", latencyMs: 30 });
  try {
    for (const key of ["right", "wrong"]) {
      const response = await fetch(
        `${standIn.url}/v1beta/models/gemini-3.8-flash:generateContent`,
        {
          method: "POST",
          headers: { "content-type": "application/json", "x-goog-api-key": key },
          body: JSON.stringify(textBody("hi")),
        },
      );
      await response.body?.cancel();
      const timing = /^gfet4t7; dur=(\d+)$/.exec(response.headers.get("server-timing") ?? "");
      assert.ok(timing, `server-timing: ${response.headers.get("server-timing")}`);
      // The answer waited its set latency; a refused key is answered at once.
      if (key === "right") assert.ok(Number(timing[1]) >= 30, timing[0]);
    }
  } finally {
    await standIn.close();
  }
});

Deno.test("startGeminiStandIn() bills images by model and mediaResolution, text by chars / 4", async () => {
  const standIn = await startGeminiStandIn();
  try {
    const data = await png(1024, 1024);
    const text = "Critique this image against: a blue square.";
    const snake = {
      contents: [{
        role: "user",
        parts: [{ inline_data: { mime_type: "image/png", data } }, { text }],
      }],
      generation_config: { response_mime_type: "application/json" },
    };
    const cases: Array<[string, unknown, number]> = [
      ["gemini-2.5-flash-lite", snake, 1032],
      ["gemini-3.8-flash", snake, 1120],
      [
        "gemini-3.8-flash",
        { ...snake, generationConfig: { mediaResolution: "MEDIA_RESOLUTION_MEDIUM" } },
        560,
      ],
      [
        "gemini-3.8-flash",
        {
          contents: [{
            role: "user",
            parts: [
              {
                inlineData: { mimeType: "image/png", data },
                mediaResolution: { level: "MEDIA_RESOLUTION_LOW" },
              },
              { text },
            ],
          }],
        },
        280,
      ],
    ];
    for (const [model, body, tokens] of cases) {
      const { status, json } = await post(standIn.url, model, body, standIn.key);
      assert.equal(status, 200);
      const usage = json.usageMetadata as {
        promptTokenCount: number;
        promptTokensDetails: Array<{ modality: string; tokenCount: number }>;
      };
      assert.deepEqual(usage.promptTokensDetails, [
        { modality: "TEXT", tokenCount: Math.ceil(text.length / 4) },
        { modality: "IMAGE", tokenCount: tokens },
      ]);
      assert.equal(usage.promptTokenCount, Math.ceil(text.length / 4) + tokens);
      assert.equal(json.modelVersion, model);
      assert.equal(typeof json.responseId, "string");
    }
    assert.deepEqual(standIn.requests.map((r) => r.imageTokens), [1032, 1120, 560, 280]);
    assert.deepEqual(standIn.requests[0]!.image, {
      width: 1024,
      height: 1024,
      bytes: standIn.requests[0]!.image!.bytes,
      mimeType: "image/png",
    });
  } finally {
    await standIn.close();
  }
});

Deno.test("startGeminiStandIn() fits its answer to the requested responseJsonSchema", async () => {
  const standIn = await startGeminiStandIn();
  try {
    const schema = {
      type: "object",
      properties: {
        prompt: { type: "string" },
        level: { type: "integer", minimum: 1, maximum: 3 },
        tags: { type: "array", items: { type: "string" }, minItems: 1 },
      },
      required: ["prompt", "level", "tags"],
    };
    const { json } = await post(
      standIn.url,
      "gemini-3.8-flash",
      textBody("Prompt: a red fox\nCritique: too dark", {
        generationConfig: { responseMimeType: "application/json", responseJsonSchema: schema },
      }),
      standIn.key,
    );
    const candidate = (json.candidates as Array<Record<string, unknown>>)[0]!;
    assert.equal(candidate.finishReason, "STOP");
    const parts = (candidate.content as { parts: Array<{ text: string }> }).parts;
    const answer = JSON.parse(parts[0]!.text);
    assert.deepEqual(Object.keys(answer), ["prompt", "level", "tags"]);
    assert.match(answer.prompt, /^a red fox/);
    assert.equal(answer.level, 2);
    assert.equal(answer.tags.length, 1);
  } finally {
    await standIn.close();
  }
});

Deno.test("startGeminiStandIn() fails '-once' faults once per distinct content", async () => {
  const standIn = await startGeminiStandIn();
  try {
    const statuses = [];
    for (const text of ["a [gemini:503-once]", "a [gemini:503-once]", "b [gemini:503-once]"]) {
      statuses.push(
        (await post(standIn.url, "gemini-3.8-flash", textBody(text), standIn.key)).status,
      );
    }
    assert.deepEqual(statuses, [503, 200, 503]);
    const html = await post(
      standIn.url,
      "gemini-3.8-flash",
      textBody("[gemini:html-502-once]"),
      standIn.key,
    );
    assert.equal(html.status, 502);
    assert.match(html.type ?? "", /text\/html/);
  } finally {
    await standIn.close();
  }
});

Deno.test("startGeminiStandIn() waits latencyMs and ends hanging requests on close()", async () => {
  const standIn = await startGeminiStandIn({ latencyMs: 60 });
  const started = performance.now();
  await post(standIn.url, "gemini-3.8-flash", textBody("hello"), standIn.key);
  assert.ok(performance.now() - started >= 55);
  const hanging = post(standIn.url, "gemini-3.8-flash", textBody("[gemini:hang]"), standIn.key);
  while (standIn.requests.length < 2) await new Promise((r) => setTimeout(r, 5));
  await standIn.close();
  assert.equal((await hanging).status, 503);
});

Deno.test({
  name: "gemini_standin.ts runs as a script and prints its URL",
  ignore: Deno.permissions.querySync({ name: "run" }).state !== "granted",
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-ffi",
        "--allow-env",
        "--allow-read",
        "--allow-sys",
        new URL("./gemini_standin.ts", import.meta.url).pathname,
        "--port",
        "0",
        "--key",
        "script-key",
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    const url = out.trim();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const { status } = await post(url, "gemini-3.8-flash", textBody("hi"), "script-key");
    assert.equal(status, 200);
    child.kill("SIGINT");
    await reader.cancel();
    assert.equal((await child.status).code, 0);
  },
});

Deno.test("startGeminiStandIn() answers models.get, and 404 for a model it does not have", async () => {
  const standIn = await startGeminiStandIn({ key: "right", models: ["gemini-3.8-flash"] });
  try {
    const get = (model: string, key = "right") =>
      fetch(`${standIn.url}/v1beta/models/${model}`, { headers: { "x-goog-api-key": key } });
    const known = await get("gemini-3.8-flash");
    assert.equal(known.status, 200);
    const info = await known.json();
    assert.equal(info.name, "models/gemini-3.8-flash");
    assert.ok(info.supportedGenerationMethods.includes("generateContent"));
    const unknown = await get("custom-model-x");
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).error.status, "NOT_FOUND");
    const badKey = await get("gemini-3.8-flash", "wrong");
    assert.equal(badKey.status, 400);
    await badKey.body?.cancel();
    assert.deepEqual(standIn.modelGets.map((g) => g.status), [200, 404, 400]);
    assert.equal(standIn.requests.length, 0, "models.get is not a generateContent call");
    const generate = await post(standIn.url, "custom-model-x", textBody("hi"), "right");
    assert.equal(generate.status, 404);
  } finally {
    await standIn.close();
  }
});

Deno.test("startGeminiStandIn() refuses each content 5 times with `429x5`, then answers", async () => {
  const standIn = await startGeminiStandIn({ retryDelayMs: 2000 });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const answer = await post(
        standIn.url,
        "gemini-3.8-flash",
        textBody("a heron [gemini:429x5]"),
        standIn.key,
      );
      statuses.push(answer.status);
      if (answer.status === 429) {
        const details = (answer.json.error as { details: Array<Record<string, unknown>> }).details;
        assert.equal(details.at(-1)!.retryDelay, "2s");
      }
    }
    assert.deepEqual(statuses, [429, 429, 429, 429, 429, 200]);
    const other = await post(
      standIn.url,
      "gemini-3.8-flash",
      textBody("an egret [gemini:429x5]"),
      standIn.key,
    );
    assert.equal(other.status, 429, "counted per content");
  } finally {
    await standIn.close();
  }
});

const imageBody = (text: string, imageConfig: Record<string, unknown>, extra = {}) =>
  textBody(text, {
    generationConfig: { responseModalities: ["IMAGE"], imageConfig, ...extra },
  });

Deno.test("startGeminiStandIn() draws a PNG sized by aspect ratio and tier, billed as image tokens", async () => {
  const standIn = await startGeminiStandIn();
  try {
    const cases: Array<[string, Record<string, unknown>, [number, number], number]> = [
      ["gemini-nano-banana-2.1", { aspectRatio: "4:3", imageSize: "1K" }, [1184, 864], 1120],
      ["gemini-3.1-flash-image", { aspectRatio: "16:9", imageSize: "512" }, [672, 384], 747],
      ["gemini-3-pro-image", { aspectRatio: "1:1", imageSize: "2K" }, [2048, 2048], 1120],
    ];
    for (const [model, imageConfig, [width, height], tokens] of cases) {
      const { status, json } = await post(
        standIn.url,
        model,
        imageBody("a red kite", imageConfig, { seed: 7 }),
        standIn.key,
      );
      assert.equal(status, 200, model);
      const candidate = (json.candidates as Array<Record<string, unknown>>)[0]!;
      const part = (candidate.content as { parts: Array<Record<string, unknown>> }).parts[0]!;
      const inline = part.inlineData as { mimeType: string; data: string };
      assert.equal(inline.mimeType, "image/png");
      const bytes = Uint8Array.from(atob(inline.data), (c) => c.charCodeAt(0));
      const meta = await sharp(bytes).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ["png", width, height], model);
      const usage = json.usageMetadata as {
        candidatesTokensDetails: Array<{ modality: string; tokenCount: number }>;
      };
      assert.deepEqual(usage.candidatesTokensDetails, [{ modality: "IMAGE", tokenCount: tokens }]);
      assert.equal(json.modelVersion, model);
    }
    assert.deepEqual(standIn.requests.map((r) => r.kind), ["generate", "generate", "generate"]);
    assert.deepEqual(standIn.requests[0]!.output, {
      width: 1184,
      height: 864,
      aspectRatio: "4:3",
      imageSize: "1K",
    });

    const refused: Array<[string, unknown, RegExp]> = [
      ["gemini-3.8-flash", imageBody("a kite", {}), /response_modalities/],
      ["gemini-nano-banana-2.1", imageBody("a kite", { aspectRatio: "7:5" }), /aspect_ratio/],
      ["gemini-nano-banana-2.1", imageBody("a kite", {}, { seed: 2 ** 31 }), /TYPE_INT32/],
    ];
    for (const [model, body, message] of refused) {
      const { status, json } = await post(standIn.url, model, body, standIn.key);
      assert.equal(status, 400);
      assert.match((json.error as { message: string }).message, message);
    }

    const blocked = await post(
      standIn.url,
      "gemini-nano-banana-2.1",
      imageBody("a kite [gemini:image-safety]", {}),
      standIn.key,
    );
    const candidate = (blocked.json.candidates as Array<Record<string, unknown>>)[0]!;
    assert.equal(candidate.finishReason, "IMAGE_SAFETY");
    assert.equal(candidate.content, undefined);
  } finally {
    await standIn.close();
  }
});

Deno.test("startGeminiStandIn() answers a routed id with the model it goes to", async () => {
  const standIn = await startGeminiStandIn();
  try {
    const { json } = await post(standIn.url, "gemini-2.5-flash", textBody("hi"), standIn.key);
    assert.equal(json.modelVersion, "gemini-3.5-flash-lite");
    const rejected = await post(
      standIn.url,
      "gemini-3.8-flash",
      textBody("hi [gemini:standard-key]"),
      standIn.key,
    );
    assert.equal(rejected.status, 401);
    const error = rejected.json.error as { details: Array<Record<string, unknown>> };
    assert.equal(error.details[0]!.reason, "ACCESS_TOKEN_TYPE_UNSUPPORTED");
  } finally {
    await standIn.close();
  }
});
