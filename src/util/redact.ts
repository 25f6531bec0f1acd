/**
 * Keys never reach a log, a file or a terminal: the one place that knows how to take them out of
 * a text. The log sinks and every provider's error messages use it.
 *
 * @module
 */

/** What a secret is replaced with. */
export const REDACTED = "[REDACTED]";

/**
 * One pattern matching any of `secrets`, or undefined when there are none. Values shorter than
 * four characters are left alone: they would match ordinary text.
 */
export function secretPattern(secrets: readonly string[]): RegExp | undefined {
  const usable = secrets.filter((s) => s.length >= 4);
  if (usable.length === 0) return undefined;
  return new RegExp(usable.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
}

/**
 * A function that replaces every secret in a text with {@linkcode REDACTED}.
 *
 * @example
 * ```ts
 * import { redactor } from "./redact.ts";
 * const redact = redactor(["sk-12345"]);
 * if (redact("key sk-12345 refused") !== "key [REDACTED] refused") throw new Error("redacted");
 * ```
 */
export function redactor(secrets: readonly string[]): (text: string) => string {
  const pattern = secretPattern(secrets);
  return pattern === undefined ? (text) => text : (text) => text.replace(pattern, REDACTED);
}
