/**
 * Prompt files: reading (JSON, JSON Lines, CSV, TSV, text), checking, ids, each prompt's own
 * checks, and its content hash. The one import for the rest of retake; the parts live in
 * `prompts/`.
 *
 * @module
 */
export * from "./spec.ts";
export * from "./read.ts";
export { problemsError, type RawEntry, type ReadResult } from "./validate.ts";
export { promptHash } from "./hash.ts";
export { givenBrief } from "./checks.ts";
export { idFromText } from "./ids.ts";
export { selectPrompts } from "./select.ts";
