/**
 * The loop a user would write without retake: the same SDKs, one prompt at a time, each call
 * awaited — generate, critique, refine, generate, critique — sending the original image to the
 * critic. The benchmark's baseline for speed and for critique cost.
 *
 * @module
 */
import { createFalClient } from "@fal-ai/client";
import { GoogleGenAI } from "@google/genai/web";
import { CRITIQUE_JSON_SCHEMA, REFINEMENT_JSON_SCHEMA } from "../../src/providers/gemini/schema.ts";
import type { PromptSpec } from "../../src/prompts/mod.ts";

/** Where the services are and how to call them. */
export interface BaselineOptions {
  falUrl: string;
  falKey: string;
  geminiUrl: string;
  geminiKey: string;
  width: number;
  height: number;
  /** fal status poll interval, ms: the same as retake's, so only the orchestration differs. */
  pollIntervalMs: number;
  dir: string;
  model?: string;
}

const FAL_HOSTS = /^https:\/\/(?:queue\.fal\.run|fal\.run|rest\.fal\.ai)(?=[/?]|$)/;

/** Runs every prompt through the loop in turn; resolves with the prompts done per second. */
export async function runBaseline(specs: PromptSpec[], options: BaselineOptions): Promise<number> {
  const fal = createFalClient({
    credentials: options.falKey,
    suppressLocalCredentialsWarning: true,
    requestMiddleware: (req) =>
      Promise.resolve({ ...req, url: req.url.replace(FAL_HOSTS, options.falUrl) }),
  });
  const ai = new GoogleGenAI({
    apiKey: options.geminiKey,
    vertexai: false,
    apiVersion: "v1beta",
    httpOptions: { baseUrl: options.geminiUrl },
  });
  const model = options.model ?? "gemini-3.8-flash";
  const started = performance.now();
  for (const spec of specs) {
    let prompt = spec.prompt;
    for (let round = 1; round <= 2; round++) {
      const result = await fal.subscribe("fal-ai/flux/schnell", {
        input: {
          prompt,
          image_size: { width: options.width, height: options.height },
          seed: 7,
          output_format: "png",
        },
        pollInterval: options.pollIntervalMs,
      });
      const url = (result.data as { images: Array<{ url: string }> }).images[0]!.url;
      const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
      await Deno.writeFile(`${options.dir}/${spec.id}-${round}.png`, bytes);
      const critique = await ai.models.generateContent({
        model,
        contents: [{
          role: "user",
          parts: [
            { inlineData: { mimeType: "image/png", data: _base64(bytes) } },
            { text: `Critique this image. Prompt: ${prompt}` },
          ],
        }],
        config: { responseMimeType: "application/json", responseJsonSchema: CRITIQUE_JSON_SCHEMA },
      });
      if (round === 2) break;
      const refined = await ai.models.generateContent({
        model,
        contents: [{
          role: "user",
          parts: [{
            text: `Prompt: ${prompt}\nCritique:\n${critique.text}\nWrite a better prompt.`,
          }],
        }],
        config: {
          responseMimeType: "application/json",
          responseJsonSchema: REFINEMENT_JSON_SCHEMA,
        },
      });
      prompt = (JSON.parse(refined.text ?? "{}") as { prompt?: string }).prompt ?? prompt;
    }
  }
  return specs.length / ((performance.now() - started) / 1000);
}

function _base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
