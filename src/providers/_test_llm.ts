/**
 * The harbour prompt, critique and requests the critic and refiner tests of every LLM provider
 * send, and the assertions the providers' tests share.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Critique } from "./critique.ts";
import { ProviderError } from "../errors.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { CritiqueRequest, RefineRequest, TokenUsage } from "./provider.ts";

/** The prompt every request is about. */
export const SPEC: PromptSpec = {
  id: "harbour",
  prompt: "a blue fishing boat in a quiet harbour at dawn",
  title: "Harbour",
  scene: "small fishing port, early morning",
  mood: "calm",
  extra: {},
};

/** A critique of a drawing of {@linkcode SPEC}. */
export const CRITIQUE: Critique = {
  score: 5.5,
  criteria: { promptAdherence: 6, composition: 5, lighting: 4, mood: 6, technicalQuality: 7 },
  summary: "A dim harbour with a boat.",
  strengths: ["Calm water"],
  problems: ["The boat in the centre is grey, not blue"],
  suggestions: ["a bright blue hull on the fishing boat"],
};

/** A first critique of the image at `imagePath`, drawn from `prompt`. */
export function critiqueRequest(imagePath: string, prompt = SPEC.prompt): CritiqueRequest {
  return {
    imagePath,
    format: "png",
    prompt,
    spec: SPEC,
    iteration: 1,
    signal: new AbortController().signal,
  };
}

/** A second refinement of `prompt`, with the history of two critiques. */
export function refineRequest(prompt = "a boat at dawn, soft light"): RefineRequest {
  return {
    prompt,
    spec: SPEC,
    critique: CRITIQUE,
    history: [
      {
        iteration: 1,
        prompt: SPEC.prompt,
        critique: { ...CRITIQUE, score: 4, problems: ["The harbour is missing entirely"] },
      },
      { iteration: 2, prompt, critique: CRITIQUE },
    ],
    iteration: 2,
    signal: new AbortController().signal,
  };
}

/** What `promise` rejects with; fails when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new assert.AssertionError({ message: "expected the call to fail" });
}

/** The {@linkcode ProviderError} `promise` rejects with, from `provider`. */
export async function providerErrorFrom(
  provider: string,
  promise: Promise<unknown>,
): Promise<ProviderError> {
  const error = await rejection(promise);
  assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${error}`);
  assert.equal(error.provider, provider);
  return error;
}

/** Asserts that `result` cost its tokens at `price` (USD a million input and output tokens). */
export function assertTokenCost(
  result: { costUsd: number; usage?: TokenUsage | undefined },
  price: { input: number; output: number },
): void {
  const expected = (result.usage!.inputTokens * price.input +
    result.usage!.outputTokens * price.output) / 1e6;
  assert.ok(Math.abs(result.costUsd - expected) < 1e-12, `${result.costUsd} vs ${expected}`);
}
