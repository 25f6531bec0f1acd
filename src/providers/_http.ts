/**
 * What every HTTP provider needs alike: telling a network fault from an answer, reading a
 * server's retry hint, and checking the options a client is made with.
 *
 * @module
 */

/** Messages of `fetch` and SDK errors that mean the network failed, not the service. */
export const NETWORK_FAULT =
  /fetch failed|error reading a body|error sending request|connection|network|dns|tcp|tls|socket|refused|reset/i;

/**
 * Reads a `Retry-After` header (delay in seconds, or an HTTP date) as ms from `now`.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from "./_http.ts";
 * if (parseRetryAfter("2") !== 2000) throw new Error("seconds");
 * const now = Date.parse("Wed, 21 Oct 2026 07:28:00 GMT");
 * if (parseRetryAfter("Wed, 21 Oct 2026 07:28:30 GMT", now) !== 30_000) throw new Error("date");
 * ```
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value === null || value === undefined || value.trim() === "") return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** `value`, when it is a positive number; else a `RangeError` naming the option and its owner. */
export function positiveOption(owner: string, name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `Cannot create the ${owner} as '${name}' must be a positive number: current value is ${value}`,
    );
  }
  return value;
}

/** The origin of a base URL option; a `TypeError` naming it when it is not a URL. */
export function originOf(owner: string, base: string): string {
  return parseBaseUrl(owner, base).origin;
}

/** A base URL option, parsed; a `TypeError` naming it when it is not a URL. */
export function parseBaseUrl(owner: string, value: string): URL {
  try {
    return new URL(value);
  } catch (error) {
    throw new TypeError(
      `Cannot create the ${owner} as 'baseUrl' is not a URL: current value is '${value}'`,
      { cause: error },
    );
  }
}
