/**
 * What every HTTP provider needs alike: telling a network fault from an answer, reading a
 * server's retry hint, and checking the options a client is made with.
 *
 * @module
 */
import { ProviderError } from "../errors.ts";

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

/**
 * The wait a service states in an error's text, in ms: OpenAI's "Please try again in 114h18m0s"
 * (or `1m26.4s`, `8.64s`, `174ms`), Gemini's "Please retry in 38.96s".
 *
 * @example
 * ```ts
 * import { waitFromMessage } from "./_http.ts";
 * if (waitFromMessage("Please try again in 1m26.4s. Visit …") !== 86_400) throw new Error("m s");
 * if (waitFromMessage("Please retry in 38.96s.") !== 38_960) throw new Error("s");
 * if (waitFromMessage("Please try again in 174ms.") !== 174) throw new Error("ms");
 * if (waitFromMessage("Rate limit reached") !== undefined) throw new Error("none");
 * ```
 */
export function waitFromMessage(message: string): number | undefined {
  const match = /(?:try again|retry) (?:in|after) ((?:\d+(?:\.\d+)?(?:ms|h|m|s)\s*)+)/i.exec(
    message,
  );
  if (!match) return undefined;
  const unit = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;
  let ms = 0;
  for (const [, n, u] of match[1]!.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    ms += Number(n) * unit[u as keyof typeof unit];
  }
  return Math.round(ms);
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

/**
 * What the debug log says of a failed call: how long it took since `started` (from
 * `performance.now()`), and the status (else the message) of its {@linkcode ProviderError}, or
 * `aborted` for any other error.
 */
export function failedCall(
  started: number,
  error: unknown,
): { durationMs: number; status: number | string } {
  return {
    durationMs: Math.round(performance.now() - started),
    status: error instanceof ProviderError ? error.status ?? error.message : "aborted",
  };
}

/** How a GPU server of one's own is waited for: the settings ComfyUI and AUTOMATIC1111 share. */
export interface LocalServerTiming {
  timeoutMs: number;
  pollIntervalMs: number;
  maxConcurrency: number;
}

/**
 * The checked timing settings of a local GPU server's generator (`owner` names it in errors):
 * 120 s per image, a poll a second, one image at a time unless told otherwise.
 */
export function localServerTiming(
  owner: string,
  options: {
    timeoutMs?: number | undefined;
    pollIntervalMs?: number | undefined;
    maxConcurrency?: number | undefined;
  },
): LocalServerTiming {
  return {
    timeoutMs: positiveOption(owner, "timeoutMs", options.timeoutMs ?? 120_000),
    pollIntervalMs: positiveOption(owner, "pollIntervalMs", options.pollIntervalMs ?? 1000),
    maxConcurrency: positiveOption(owner, "maxConcurrency", options.maxConcurrency ?? 1),
  };
}
