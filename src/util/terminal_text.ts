/**
 * Text from prompt files, paths and services shown on a terminal or in a log: control and
 * bidirectional formatting characters are shown as `\uXXXX`, so no id, file name or error text
 * can move the cursor, recolour the screen or make a line read differently from what it holds.
 *
 * @module
 */

/**
 * C0 controls, DEL, C1 controls (U+009B is a one-character escape sequence on many terminals),
 * the bidirectional marks, embeddings, overrides and isolates, and the Unicode line separators.
 */
export const CONTROL_CHARS =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `\u001b` for ESC: how a control character is shown. */
export function escapeChar(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/**
 * Shows every control and bidirectional formatting character in `text` as `\uXXXX`.
 *
 * @example
 * ```ts
 * import { escapeControls } from "./terminal_text.ts";
 * if (escapeControls("a\u001b[31mb") !== "a\\u001b[31mb") throw new Error("not escaped");
 * ```
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROL_CHARS, escapeChar);
}

/**
 * {@linkcode escapeControls} for whole lines of output: each line's own ending and tabs stay,
 * everything else is escaped.
 */
export function escapeLines(text: string): string {
  return text.replace(
    CONTROL_CHARS,
    (char) => char === "\n" || char === "\t" ? char : escapeChar(char),
  );
}
