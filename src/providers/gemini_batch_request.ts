/**
 * One `generateContent` call as a line of a Gemini batch: the REST `GenerateContentRequest` a
 * JSONL input file holds (the SDK converts inline requests itself, but a file is written by
 * hand), and the request's key: a hash of the model and the request, so the same call made
 * again, by a later run after a crash, has the same key and finds the job that holds it.
 *
 * @module
 */
import type { Content, GenerateContentConfig, InlinedRequest } from "@google/genai/web";

/** Fields of the SDK's config that REST sends beside `contents`, not in `generationConfig`. */
const REQUEST_LEVEL = new Set([
  "systemInstruction",
  "safetySettings",
  "tools",
  "toolConfig",
  "labels",
  "cachedContent",
  "serviceTier",
]);
/** Fields of the SDK's config that only steer the client. */
const CLIENT_ONLY = new Set(["abortSignal", "httpOptions", "shouldReturnHttpResponse"]);

/** The REST `GenerateContentRequest` of a call, as the SDK would send it. */
export function restRequest(
  contents: Content[],
  config: GenerateContentConfig = {},
): Record<string, unknown> {
  const request: Record<string, unknown> = {
    contents: contents.map((c) => ({ parts: c.parts ?? [], ...(c.role && { role: c.role }) })),
  };
  const generation: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(config)) {
    if (value === undefined || CLIENT_ONLY.has(field)) continue;
    if (field === "systemInstruction") {
      request.systemInstruction = typeof value === "string"
        ? { parts: [{ text: value }], role: "user" }
        : value;
    } else if (REQUEST_LEVEL.has(field)) {
      request[field] = value;
    } else {
      generation[field] = value;
    }
  }
  if (Object.keys(generation).length > 0) request.generationConfig = generation;
  return request;
}

/** The config as an inline batch request takes it: without what only steers the client. */
export function inlineRequest(
  contents: Content[],
  config: GenerateContentConfig,
  key: string,
): InlinedRequest {
  const sent = Object.fromEntries(
    Object.entries(config).filter(([field, value]) =>
      value !== undefined && !CLIENT_ONLY.has(field)
    ),
  );
  return { contents, config: sent, metadata: { key } };
}

/**
 * The key of a call: the first 32 hex digits of the SHA-256 of the model and the REST request
 * in canonical JSON (keys sorted).
 *
 * @example
 * ```ts
 * import { requestKey, restRequest } from "./gemini_batch_request.ts";
 * const contents = [{ role: "user", parts: [{ text: "a fox" }] }];
 * const a = await requestKey("gemini-3.8-flash", restRequest(contents, { temperature: 0.2 }));
 * const b = await requestKey("gemini-3.8-flash", restRequest(contents, { temperature: 0.2 }));
 * if (a !== b || !/^[0-9a-f]{32}$/.test(a)) throw new Error("same call, same key");
 * ```
 */
export async function requestKey(model: string, request: Record<string, unknown>): Promise<string> {
  const text = JSON.stringify(
    [model.replace(/^models\//, ""), request],
    (_key, value) =>
      value !== null && typeof value === "object" && !Array.isArray(value)
        ? Object.fromEntries(
          Object.keys(value).sort().map((k) => [k, (value as Record<string, unknown>)[k]]),
        )
        : value,
  );
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest).subarray(0, 16), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}
