/**
 * Watch mode: watched prompt files as an observable of change batches, and the loop that
 * re-processes only the prompts that were added or edited. Like lume's watcher it debounces,
 * never starts a pass while one runs, and runs again if changes piled up meanwhile.
 *
 * @module
 */
import { Observable } from "rxjs";

/** Options for {@linkcode watchFiles}. */
export interface WatchFilesOptions {
  /** Quiet time after the last change before emitting, in ms. @default {200} */
  debounceMs?: number;
  /** The file-system watcher; injected for tests. @default {Deno.watchFs} */
  watchFs?: (paths: string[]) => AsyncIterable<Deno.FsEvent> & { close(): void };
}

/**
 * Emits the set of changed files (from `files`) after each burst of changes. Watches the parent
 * folders, because editors often save by writing a new file and renaming it over the old one.
 */
export function watchFiles(
  files: string[],
  options: WatchFilesOptions = {},
): Observable<Set<string>> {
  const debounceMs = options.debounceMs ?? 200;
  const watchFs = options.watchFs ?? ((paths: string[]) => Deno.watchFs(paths));
  return new Observable<Set<string>>((subscriber) => {
    const targets = new Map(files.map((f) => [absolute(f), f]));
    const dirs = [
      ...new Set([...targets.keys()].map((p) => p.slice(0, p.lastIndexOf("/")) || "/")),
    ];
    const watcher = watchFs(dirs);
    let changed = new Set<string>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    (async () => {
      for await (const event of watcher) {
        for (const path of event.paths) {
          const file = targets.get(path);
          if (file === undefined) continue;
          changed.add(file);
          clearTimeout(timer);
          timer = setTimeout(() => {
            const batch = changed;
            changed = new Set();
            subscriber.next(batch);
          }, debounceMs);
        }
      }
    })().catch((error) => subscriber.error(error));
    return () => {
      clearTimeout(timer);
      watcher.close();
    };
  });
}

/**
 * Runs `pass` for each change, one at a time: changes that arrive during a pass are collected
 * and trigger exactly one more pass when it ends. Resolves when `signal` aborts and no pass runs.
 */
export function runOnChanges(
  changes: Observable<Set<string>>,
  pass: (changed: Set<string>) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let running = false;
    let pending = new Set<string>();
    const finishIfStopped = () => {
      if (signal.aborted && !running) {
        subscription.unsubscribe();
        resolve();
      }
    };
    const drain = async () => {
      running = true;
      try {
        while (pending.size > 0 && !signal.aborted) {
          const batch = pending;
          pending = new Set();
          await pass(batch);
        }
      } catch (error) {
        subscription.unsubscribe();
        reject(error);
        return;
      } finally {
        running = false;
      }
      finishIfStopped();
    };
    const subscription = changes.subscribe({
      next: (batch) => {
        for (const file of batch) pending.add(file);
        if (!running) void drain();
      },
      error: reject,
    });
    signal.addEventListener("abort", finishIfStopped, { once: true });
    finishIfStopped();
  });
}

function absolute(path: string): string {
  const full = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  // Normalise "./" and "a/../" so watcher paths match.
  const parts: string[] = [];
  for (const part of full.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}
