/**
 * One call at a time to a service until one has succeeded: a wrong key, an unknown model or a
 * locked account then costs one call, not one per slot of the concurrency limit.
 *
 * @module
 */

/**
 * Lets one caller through at a time until {@linkcode FirstSuccessGate.succeeded} is called,
 * then everyone.
 *
 * @example
 * ```ts
 * import { FirstSuccessGate } from "./first_success.ts";
 * const gate = new FirstSuccessGate();
 * await gate.enter();
 * let second = false;
 * const waiting = gate.enter().then(() => (second = true));
 * await Promise.resolve();
 * if (second) throw new Error("only one caller before the first success");
 * gate.succeeded();
 * await waiting;
 * ```
 */
export class FirstSuccessGate {
  #open = false;
  #probing = false;
  #waiting: Array<() => void> = [];

  /** Resolves when the caller may make its call; it must then call `succeeded` or `failed`. */
  enter(signal?: AbortSignal): Promise<void> {
    if (this.#open) return Promise.resolve();
    if (!this.#probing) {
      this.#probing = true;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        this.#waiting = this.#waiting.filter((w) => w !== wake);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(wake);
    });
  }

  /** A call succeeded: everyone may call from now on. */
  succeeded(): void {
    if (this.#open) return;
    this.#open = true;
    this.#probing = false;
    for (const wake of this.#waiting.splice(0)) wake();
  }

  /** The call let through failed: the next caller in line tries. */
  failed(): void {
    if (this.#open) return;
    const next = this.#waiting.shift();
    if (next) next();
    else this.#probing = false;
  }
}
