/**
 * Turns a signal-taking async call into an observable whose unsubscribe aborts the call, so
 * cancellation flows down from the pipeline to every provider request and sleep.
 *
 * @module
 */
import { Observable } from "rxjs";

/**
 * Runs `call` on subscribe with a fresh `AbortSignal` (linked to `parent` when given); aborts it
 * when the subscriber unsubscribes before the call settles.
 */
export function fromAbortable<T>(
  call: (signal: AbortSignal) => Promise<T>,
  parent?: AbortSignal,
): Observable<T> {
  return new Observable<T>((subscriber) => {
    const controller = new AbortController();
    const onParentAbort = () => controller.abort(parent?.reason);
    if (parent?.aborted) controller.abort(parent.reason);
    else parent?.addEventListener("abort", onParentAbort, { once: true });
    let settled = false;
    call(controller.signal).then(
      (value) => {
        settled = true;
        subscriber.next(value);
        subscriber.complete();
      },
      (error) => {
        settled = true;
        subscriber.error(error);
      },
    );
    return () => {
      parent?.removeEventListener("abort", onParentAbort);
      if (!settled) controller.abort(new DOMException("Cancelled by the pipeline", "AbortError"));
    };
  });
}
