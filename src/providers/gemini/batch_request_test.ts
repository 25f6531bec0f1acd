import assert from "node:assert/strict";
import { GoogleGenAI } from "@google/genai/web";
import type { Content, GenerateContentConfig } from "@google/genai/web";
import { inlineRequest, requestKey, restRequest } from "./batch_request.ts";

/** What the SDK itself sends for an inline batch request (its own conversion, used privately). */
function sdkRest(contents: Content[], config: GenerateContentConfig): unknown {
  const ai = new GoogleGenAI({ apiKey: "k", vertexai: false, apiVersion: "v1beta" });
  const batches = ai.batches as unknown as {
    createInlinedGenerateContentRequest(p: unknown): { body: Record<string, unknown> };
  };
  const { body } = batches.createInlinedGenerateContentRequest({
    model: "gemini-3.8-flash",
    src: [inlineRequest(contents, config, "k1")],
  });
  const requests = (body.batch as { inputConfig: { requests: { requests: unknown[] } } })
    .inputConfig.requests.requests;
  return (requests[0] as { request: unknown }).request;
}

const critique: [Content[], GenerateContentConfig] = [
  [{
    role: "user",
    parts: [{ inlineData: { mimeType: "image/jpeg", data: "AAAA" } }, { text: "Judge this." }],
  }],
  {
    systemInstruction: "You are a critic.",
    responseMimeType: "application/json",
    responseJsonSchema: { type: "object", properties: { score: { type: "number" } } },
    thinkingConfig: { thinkingLevel: "LOW" as never },
    mediaResolution: "MEDIA_RESOLUTION_LOW" as never,
    maxOutputTokens: 4096,
    abortSignal: new AbortController().signal,
  },
];
const image: [Content[], GenerateContentConfig] = [
  [{ role: "user", parts: [{ text: "a red fox" }] }],
  { responseModalities: ["IMAGE"], imageConfig: { aspectRatio: "4:3", imageSize: "1K" }, seed: 7 },
];

Deno.test("restRequest() writes a file line as the SDK converts the same call for an inline job", () => {
  for (const [contents, config] of [critique, image]) {
    assert.deepEqual(restRequest(contents, config), sdkRest(contents, config));
  }
});

Deno.test("requestKey() is the same for the same call and differs for any change that changes the answer", async () => {
  const [contents, config] = critique;
  const key = await requestKey("gemini-3.8-flash", restRequest(contents, config));
  // The abort signal is the caller's, not the request's.
  const { abortSignal: _, ...noSignal } = config;
  assert.equal(await requestKey("models/gemini-3.8-flash", restRequest(contents, noSignal)), key);
  assert.notEqual(await requestKey("gemini-3.5-flash-lite", restRequest(contents, config)), key);
  assert.notEqual(
    await requestKey(
      "gemini-3.8-flash",
      restRequest(contents, { ...config, maxOutputTokens: 8192 }),
    ),
    key,
  );
  const [imageContents, imageConfig] = image;
  assert.notEqual(
    await requestKey("m", restRequest(imageContents, { ...imageConfig, seed: 8 })),
    await requestKey("m", restRequest(imageContents, imageConfig)),
  );
});
