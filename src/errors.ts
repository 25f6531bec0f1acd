/**
 * Error types callers catch: provider failures (with their retry classification) and input or
 * usage errors (exit code 2).
 *
 * @module
 */

/** Options for {@linkcode ProviderError}. */
export interface ProviderErrorOptions {
  /** Provider name, e.g. `fal`, `gemini`, `local`. */
  provider: string;
  /** Whether trying again may succeed (rate limit, 5xx, network fault, timeout). */
  retryable: boolean;
  /**
   * Whether the whole run must stop now (bad key, locked account).
   *
   * @default {false}
   */
  fatal?: boolean;
  /** The server's hint for when to try again, in ms. */
  retryAfterMs?: number;
  /** HTTP status, where there was one. */
  status?: number;
  /** Provider request id, where one was assigned. */
  requestId?: string;
  /**
   * What the service billed for the failed call, in USD, where it bills failures (an NSFW-flagged
   * image, an answer cut at MAX_TOKENS or blocked for SAFETY). The pipeline records it.
   */
  costUsd?: number;
  /** The error underneath (a network fault, the SDK's error), kept as the error's `cause`. */
  cause?: unknown;
}

/** A provider call failed; says whether a retry can help. */
export class ProviderError extends Error {
  /** Provider name, e.g. `fal`, `gemini`, `local`. */
  readonly provider: string;
  /** Whether trying again may succeed (rate limit, 5xx, network fault, timeout). */
  readonly retryable: boolean;
  /** Whether the whole run must stop now (bad key, locked account). */
  readonly fatal: boolean;
  /** The server's hint for when to try again, in ms. */
  readonly retryAfterMs: number | undefined;
  /** HTTP status, where there was one. */
  readonly status: number | undefined;
  /** Provider request id, where one was assigned. */
  readonly requestId: string | undefined;
  /** What the service billed for the failed call, in USD, where it bills failures. */
  readonly costUsd: number | undefined;

  /**
   * Makes the error of a failed call.
   *
   * @param message What failed, for a person.
   * @param options The provider, the retry classification and what is known of the call.
   */
  constructor(message: string, options: ProviderErrorOptions) {
    super(message, { cause: options.cause });
    this.name = "ProviderError";
    this.provider = options.provider;
    this.retryable = options.retryable;
    this.fatal = options.fatal ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
    this.requestId = options.requestId;
    this.costUsd = options.costUsd;
  }
}

/** A service saying it is over its quota: HTTP 429, or any answer with a retry hint. */
export function isOverload(error: unknown): boolean {
  return error instanceof ProviderError &&
    (error.status === 429 || error.retryAfterMs !== undefined);
}

/** What the service billed for a failed call (`costUsd` on the error), or 0. */
export function billedCost(error: unknown): number {
  const cost = (error as { costUsd?: unknown } | null)?.costUsd;
  return typeof cost === "number" && cost > 0 ? cost : 0;
}

/**
 * Marks an error that happened after the service billed the call (an image that could not be
 * saved, say), so the cost is recorded with the failure.
 */
export function withBilledCost(error: unknown, costUsd: number): unknown {
  if (costUsd > 0 && error instanceof Error && billedCost(error) === 0) {
    Object.defineProperty(error, "costUsd", { value: costUsd, enumerable: true });
  }
  return error;
}

/** Bad input or usage: the CLI exits with code 2 and writes nothing. */
export class InputError extends Error {
  /** The exit code the CLI ends with: `EXIT.input`. */
  readonly exitCode = 2;
  /**
   * Makes an input error.
   *
   * @param message What is wrong and how to fix it, for a person.
   * @param options The error underneath, if any, as `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InputError";
  }
}

/** A bad key, a locked account or a full disk: going on would only waste money. */
export function isFatal(error: unknown): boolean {
  return error instanceof Error && "fatal" in error && error.fatal === true;
}

/** A one-line reason for a person. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * The exit code an error asks for: its own `exitCode` (an input error: 2), 3 for a fatal error
 * (bad key, unknown model, full disk), else 1.
 */
export function exitCodeOf(error: unknown): number {
  const own = (error as { exitCode?: unknown } | null)?.exitCode;
  if (typeof own === "number") return own;
  return isFatal(error) ? 3 : 1;
}

/** The user asked to stop (Ctrl-C): a call that had not started yet is not started. */
export class StopRequested extends Error {
  constructor() {
    super("Interrupted before the call started");
    this.name = "StopRequested";
  }
}
