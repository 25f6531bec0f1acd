/**
 * A prompt's content hash: equal hashes mean an earlier result can be reused.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { PromptSpec } from "./spec.ts";

/**
 * Content hash of a prompt, its context, its own settings and checks, and the batch settings that change
 * its result: equal hashes mean an earlier result can be reused, so resume and watch mode redo
 * only what changed. A prompt's own `iterations` and `targetScore` are left out, as the batch's
 * are: asking for more rounds continues from the saved ones.
 */
export function promptHash(spec: PromptSpec, settings: Record<string, unknown>): string {
  const { id, prompt, title, scene, mood, extra, checks } = spec;
  const { iterations: _i, targetScore: _t, ...own } = spec.settings ?? {};
  return createHash("sha256")
    .update(canonicalJson({
      id,
      prompt,
      title,
      scene,
      mood,
      extra,
      settings,
      // Absent when empty, so a prompt without settings hashes as it did before they existed.
      ...(Object.keys(own).length > 0 && { own }),
      // Its own checks are its brief: other checks judge other images.
      ...(checks !== undefined && checks.length > 0 && { checks }),
    }))
    .digest("hex")
    .slice(0, 16);
}

/** JSON with object keys sorted, so equal content always hashes equal. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
