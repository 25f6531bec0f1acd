/**
 * Durations for people: the progress line, the summary and the gallery say them the same way.
 *
 * @module
 */

/**
 * `75_000` → `1m15s`; `2 h 5 min` → `2h05m`. With `subSecond`, short steps keep their detail:
 * `350` → `350ms`, `1_234` → `1.2s` (below 10 s).
 *
 * @example
 * ```ts
 * import { formatDuration } from "./duration.ts";
 * if (formatDuration(75_000) !== "1m15s") throw new Error("minutes");
 * if (formatDuration(350, { subSecond: true }) !== "350ms") throw new Error("ms");
 * ```
 */
export function formatDuration(ms: number, options: { subSecond?: boolean } = {}): string {
  if (options.subSecond && ms < 1000) return `${Math.round(ms)}ms`;
  if (options.subSecond && ms < 9_950) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}
