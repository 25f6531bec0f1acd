/**
 * The Gemini provider, through the real SDK, against answers recorded from the real service:
 * each test names where its body was published.
 */
import assert from "node:assert/strict";
import type { PromptSpec } from "../../prompts/mod.ts";
import { startGeminiStandIn } from "../../../tests/gemini_standin.ts";
import { createGeminiProviders, defaultGeminiPrices } from "./gemini.ts";
import type { RefineRequest } from "../provider.ts";
import { textOf, withLogs } from "../_test_logs.ts";

const SPEC: PromptSpec = { id: "harbour", prompt: "a blue boat in a harbour", extra: {} };
const CRITIQUE = {
  score: 6,
  criteria: { promptAdherence: 6, composition: 6, lighting: 6, mood: 6, technicalQuality: 6 },
  summary: "A boat.",
  strengths: [],
  problems: ["the boat is grey"],
  suggestions: ["a blue hull"],
};

function refineRequest(): RefineRequest {
  return {
    prompt: SPEC.prompt,
    spec: SPEC,
    critique: CRITIQUE,
    history: [{ iteration: 1, prompt: SPEC.prompt, critique: CRITIQUE }],
    iteration: 1,
    signal: new AbortController().signal,
  };
}

async function warningsDuring(fn: () => Promise<void>): Promise<string[]> {
  let warnings: string[] = [];
  await withLogs("gemini", "warning", async (records) => {
    await fn();
    warnings = records.map(textOf);
  });
  return warnings;
}

Deno.test("gemini keeps working after a MAX_TOKENS answer with no parts and no candidatesTokenCount (google/adk-python#1357)", async () => {
  const standIn = await startGeminiStandIn();
  try {
    // The body quoted in google/adk-python#1357 (2025-06-12), as Gemini sent it: thinking used
    // the whole limit, so the candidate has no parts and usage no candidatesTokenCount.
    standIn.replay({
      status: 200,
      body: {
        candidates: [{ content: { role: "model" }, finishReason: "MAX_TOKENS" }],
        createTime: "2025-06-12T20:56:46.627184Z",
        modelVersion: "gemini-2.5-pro-preview-05-06",
        responseId: "Dj9LaPCjJsCvgLUPgeGuqAU",
        usageMetadata: {
          billablePromptUsage: { textCount: 5080 },
          promptTokenCount: 1706,
          promptTokensDetails: [{ modality: "TEXT", tokenCount: 1706 }],
          thoughtsTokenCount: 2999,
          totalTokenCount: 4705,
          trafficType: "ON_DEMAND",
        },
      },
    }, 1);
    const model = "gemini-2.5-pro-preview-05-06";
    const rates = { input: 1.25, output: 10 };
    const { refiner } = createGeminiProviders({
      apiKey: standIn.key,
      baseUrl: standIn.url,
      model,
      prices: { [model]: rates },
      maxOutputTokens: 3000,
    });
    const result = await refiner.refine(refineRequest());
    assert.ok(result.prompt.length > 0);
    // Asked once more, with double the room, as for any cut-off answer.
    assert.equal(standIn.requests.length, 2);
    assert.equal(standIn.requests[0]!.generationConfig.maxOutputTokens, 3000);
    assert.equal(standIn.requests[1]!.generationConfig.maxOutputTokens, 6000);
    // The cut-off answer is billed by its tokens: 1706 in, 2999 thinking.
    assert.ok(result.usage!.inputTokens > 1706 && result.usage!.outputTokens > 2999);
    const first = (1706 * rates.input + 2999 * rates.output) / 1e6;
    assert.ok(result.costUsd > first);
  } finally {
    await standIn.close();
  }
});

Deno.test("gemini bills tokens read from its cache at the cached rate (usage quoted on discuss.ai.google.dev)", async () => {
  const standIn = await startGeminiStandIn();
  try {
    // `usageMetadata` as a user quoted it from a real answer, discuss.ai.google.dev/t/107349:
    // 10,000 of the 11,500 prompt tokens were read from the cache.
    standIn.replay({
      status: 200,
      body: {
        candidates: [{
          content: {
            role: "model",
            parts: [{ text: JSON.stringify({ changes: [], prompt: "a bright blue boat" }) }],
          },
          finishReason: "STOP",
          index: 0,
        }],
        modelVersion: "gemini-3.8-flash",
        responseId: "cached-1",
        usageMetadata: {
          promptTokenCount: 11500,
          candidatesTokenCount: 1000,
          totalTokenCount: 22500,
          cachedContentTokenCount: 10000,
          thoughtsTokenCount: 10000,
        },
      },
    }, 1);
    const { refiner } = createGeminiProviders({ apiKey: standIn.key, baseUrl: standIn.url });
    const result = await refiner.refine(refineRequest());
    assert.equal(result.prompt, "a bright blue boat");
    const rates = defaultGeminiPrices()["gemini-3.8-flash"]!;
    // Cached input at a tenth of the input rate (Google's pricing page), the rest at full rate.
    const expected = (1500 * rates.input + 10000 * rates.input / 10 + 11000 * rates.output) / 1e6;
    assert.ok(Math.abs(result.costUsd - expected) < 1e-12, `${result.costUsd} vs ${expected}`);
    assert.equal(result.usage!.cachedTokens, 10000);
  } finally {
    await standIn.close();
  }
});

Deno.test("gemini takes a modelVersion with a dated suffix for the model asked for: no warning", async () => {
  const model = "gemini-2.0-flash-thinking-exp";
  const standIn = await startGeminiStandIn({ routes: { [model]: `${model}-01-21` } });
  try {
    const warnings = await warningsDuring(async () => {
      const { refiner } = createGeminiProviders({
        apiKey: standIn.key,
        baseUrl: standIn.url,
        model,
        prices: { [model]: { input: 0.1, output: 0.4 } },
      });
      const result = await refiner.refine(refineRequest());
      assert.equal(result.modelVersion, `${model}-01-21`);
      // Billed at the rates of the model asked for: it is the same model.
      assert.ok(result.costUsd > 0);
    });
    assert.deepEqual(warnings.filter((w) => /answers requests for/.test(w)), []);
  } finally {
    await standIn.close();
  }
});

Deno.test("gemini still warns when a different model answers", async () => {
  const standIn = await startGeminiStandIn({ routes: { "gemini-3.6-flash": "gemini-3.8-flash" } });
  try {
    const warnings = await warningsDuring(async () => {
      const { refiner } = createGeminiProviders({
        apiKey: standIn.key,
        baseUrl: standIn.url,
        model: "gemini-3.6-flash",
      });
      await refiner.refine(refineRequest());
    });
    assert.equal(warnings.filter((w) => /answers requests for/.test(w)).length, 1);
  } finally {
    await standIn.close();
  }
});
