/**
 * One `generateContent` call as a line of a Gemini batch: the REST `GenerateContentRequest` a
 * JSONL input file holds (the SDK converts inline requests itself, but a file is written by
 * hand), the line's key made from it (`requestKey`).
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

/** The key of a call, as every batch service makes it. */
export { requestKey } from "../../batch_api/batcher.ts";
