/**
 * Ctrl-C and SIGTERM for the command line: the first drains (nothing new starts, calls in
 * flight finish and are saved), the second stops at once, a third exits.
 *
 * @module
 */
import { EXIT } from "../exit_codes.ts";

/** Signals closer together than this count as one Ctrl-C. */
const SAME_PRESS_MS = 500;

/** The signals a run follows, and the undoing of the listeners that abort them. */
export interface Interrupts {
  /** Aborted on the first Ctrl-C / SIGTERM: drain, then stop after the grace period. */
  signal: AbortSignal;
  /** Aborted on the second Ctrl-C: stop at once. */
  abortNow: AbortSignal;
  /** Removes the signal listeners. */
  dispose: () => void;
}

/** Listens for SIGINT (and SIGTERM, where there is one) until `dispose`. */
export function listenForInterrupts(writeErr: (text: string) => void): Interrupts {
  const interrupt = new AbortController();
  const abortNow = new AbortController();
  let interrupts = 0;
  let lastSignal = -Infinity;
  const onSignal = () => {
    // A terminal sends Ctrl-C to the whole process group, and a wrapper such as `deno task`
    // may pass it on: signals this close together are one press.
    const now = performance.now();
    const repeat = now - lastSignal < SAME_PRESS_MS;
    lastSignal = now;
    if (repeat) return;
    interrupts++;
    if (interrupts === 1) {
      writeErr(
        "\nInterrupted: starting nothing new, letting calls in flight finish and saving them (Ctrl-C again to stop now)\n",
      );
      interrupt.abort(new DOMException("Interrupted by the user", "AbortError"));
    } else if (interrupts === 2) {
      writeErr("\nStopping now: cancelling calls in flight\n");
      abortNow.abort(new DOMException("Interrupted by the user", "AbortError"));
    } else {
      Deno.exit(EXIT.interrupted);
    }
  };
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);
  return {
    signal: interrupt.signal,
    abortNow: abortNow.signal,
    dispose: () => {
      Deno.removeSignalListener("SIGINT", onSignal);
      if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGTERM", onSignal);
    },
  };
}
