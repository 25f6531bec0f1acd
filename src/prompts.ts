/**
 * Prompt files: reading (JSON, JSON Lines, CSV, TSV, text), checking, ids, each prompt's own
 * checks, and its content hash. The one import for the rest of retake; the parts live in
 * `prompts/`.
 *
 * @module
 */
export * from "./prompts/spec.ts";
export * from "./prompts/read.ts";
export { problemsError, type RawEntry, type ReadResult } from "./prompts/validate.ts";
export { promptHash } from "./prompts/hash.ts";
export * from "./prompts/settings.ts";
export { givenBrief } from "./prompts/checks.ts";
export { idFromText } from "./prompts/ids.ts";
export { selectPrompts } from "./prompts/select.ts";
