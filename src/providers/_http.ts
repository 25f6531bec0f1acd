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

/**
 * The service's own time for an answer, in ms, from its `Server-Timing` header (Google's front
 * end sends `gfet4t7; dur=911`): the longest `dur` it names, as a total is never shorter than
 * its parts. Undefined when it names none.
 *
 * @example
 * ```ts
 * import { serverTimingMs } from "./_http.ts";
 * if (serverTimingMs("gfet4t7; dur=911") !== 911) throw new Error("Google's front end");
 * if (serverTimingMs("db;dur=53.2, app;dur=47.2;desc=x, total;dur=123.4") !== 123.4) {
 *   throw new Error("several");
 * }
 * if (serverTimingMs("cache;desc=hit") !== undefined) throw new Error("none");
 * ```
 */
export function serverTimingMs(header: string | null | undefined): number | undefined {
  if (header === null || header === undefined) return undefined;
  let longest: number | undefined;
  for (const match of header.matchAll(/;\s*dur\s*=\s*"?(\d+(?:\.\d+)?)"?/gi)) {
    const ms = Number(match[1]);
    if (Number.isFinite(ms) && (longest === undefined || ms > longest)) longest = ms;
  }
  return longest;
}

/** A `fetch` that notes how long its last call took to get an answer's headers. */
export interface TimedFetch {
  fetch: typeof fetch;
  /**
   * Time from the last call to the answer's headers, in ms: the service's latency plus the
   * network's, without what the client does with the body. Undefined until an answer came.
   */
  firstByteMs(): number | undefined;
}

/**
 * Wraps `base` to time each answer's first byte (its headers). The promise settles on the
 * client's event loop, so a busy loop still adds its delay; a service's own timing, where it
 * sends one ({@linkcode serverTimingMs}), has none.
 *
 * @example
 * ```ts
 * import { timedFetch } from "./_http.ts";
 * const timed = timedFetch(() => Promise.resolve(new Response("ok")));
 * await timed.fetch("http://example.invalid/");
 * if (!(timed.firstByteMs()! >= 0)) throw new Error("timed");
 * ```
 */
export function timedFetch(base: typeof fetch = fetch): TimedFetch {
  let firstByteMs: number | undefined;
  return {
    fetch: async (input, init) => {
      const sent = performance.now();
      const response = await base(input, init);
      firstByteMs = performance.now() - sent;
      return response;
    },
    firstByteMs: () => firstByteMs,
  };
}

/**
 * An answer's latency at the service, in ms: its own timing where it sends one (never more than
 * the client waited for the first byte, should a header time something else), else the time to
 * its first byte; undefined when neither is known.
 *
 * @example
 * ```ts
 * import { serviceLatencyMs } from "./_http.ts";
 * if (serviceLatencyMs(60, 240) !== 60) throw new Error("the service's own");
 * if (serviceLatencyMs(undefined, 240) !== 240) throw new Error("first byte");
 * if (serviceLatencyMs(900, 240) !== 240) throw new Error("capped");
 * ```
 */
export function serviceLatencyMs(
  ownMs: number | undefined,
  firstByteMs: number | undefined,
): number | undefined {
  const own = ownMs !== undefined && Number.isFinite(ownMs) ? ownMs : undefined;
  const firstByte = firstByteMs !== undefined && Number.isFinite(firstByteMs)
    ? firstByteMs
    : undefined;
  const ms = own !== undefined && firstByte !== undefined
    ? Math.min(own, firstByte)
    : own ?? firstByte;
  return ms === undefined ? undefined : Math.round(Math.max(0, ms));
}
