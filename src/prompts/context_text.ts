/**
 * A prompt's context (the fields a prompt file gives beyond the known ones: PartiPrompts'
 * Category and Challenge, GenEval's tag) as lines of text for the gallery and the studio.
 *
 * @module
 */

/** Most fields shown. */
const MAX_FIELDS = 12;
/** Longest value shown, in characters. */
const MAX_CHARS = 200;

/**
 * Each context field as `[name, text]`, in the file's order: text as it is, numbers and
 * booleans written out, lists and objects as JSON, each cut to 200 characters; empty values
 * left out, 12 fields at most. `extra` is read from a `metadata.json`, so anything else gives
 * nothing.
 *
 * @example
 * ```ts
 * import { contextLines } from "./context_text.ts";
 * const lines = contextLines({ Category: "Animals", count: 2, Note: "" });
 * if (JSON.stringify(lines) !== '[["Category","Animals"],["count","2"]]') throw new Error();
 * ```
 */
export function contextLines(extra: unknown): Array<[string, string]> {
  if (extra === null || typeof extra !== "object" || Array.isArray(extra)) return [];
  const lines: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(extra)) {
    const text = typeof value === "string"
      ? value.trim()
      : typeof value === "number" || typeof value === "boolean"
      ? String(value)
      : value === null || value === undefined
      ? ""
      : JSON.stringify(value) ?? "";
    if (text === "") continue;
    lines.push([name, text.length > MAX_CHARS ? `${text.slice(0, MAX_CHARS)}…` : text]);
    if (lines.length === MAX_FIELDS) break;
  }
  return lines;
}
