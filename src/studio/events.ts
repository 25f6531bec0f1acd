/**
 * Server-sent events: each open `/events` stream hears what happens to its batch — the
 * pipeline's own events, the steering's feedback entries, rows whose files changed, progress.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Comment lines keep idle connections (and proxies) from timing out. */
const HEARTBEAT_MS = 15_000;

interface Client {
  batch: string;
  controller: ReadableStreamDefaultController<Uint8Array>;
}

/** One SSE message as text: `event:` and one `data:` line of JSON. */
export function formatEvent(type: string, data: unknown): string {
  // JSON has no raw newline, so one data line carries it whole.
  return `event: ${type.replace(/[^A-Za-z0-9_-]/g, "")}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Fans events out to the open streams of each batch. */
export class EventHub {
  readonly #clients = new Set<Client>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** Called when a batch gains its first listener or loses its last. */
  readonly #onWatch: (batch: string, watching: boolean) => void;

  constructor(onWatch: (batch: string, watching: boolean) => void = () => {}) {
    this.#onWatch = onWatch;
  }

  /** Sends an event to every stream of `batch`. */
  publish(batch: string, type: string, data: unknown): void {
    const bytes = encoder.encode(formatEvent(type, data));
    for (const client of this.#clients) {
      if (client.batch === batch) this.#send(client, bytes);
    }
  }

  /** Whether any stream listens to `batch`. */
  listening(batch: string): boolean {
    for (const client of this.#clients) if (client.batch === batch) return true;
    return false;
  }

  /** A new stream for `batch`; it ends when the browser goes away or the hub closes. */
  stream(batch: string): ReadableStream<Uint8Array> {
    let client: Client;
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        const first = !this.listening(batch);
        client = { batch, controller };
        this.#clients.add(client);
        // The first bytes tell the browser the stream is open (EventSource's `open`).
        controller.enqueue(encoder.encode(": connected\n\n"));
        this.#heartbeat ??= setInterval(() => {
          const ping = encoder.encode(": ping\n\n");
          for (const c of this.#clients) this.#send(c, ping);
        }, HEARTBEAT_MS);
        if (first) this.#onWatch(batch, true);
      },
      cancel: () => this.#drop(client),
    });
  }

  /** Ends every stream. */
  close(): void {
    for (const client of [...this.#clients]) {
      try {
        client.controller.close();
      } catch {
        // Already closed by the browser going away.
      }
      this.#drop(client);
    }
  }

  #send(client: Client, bytes: Uint8Array): void {
    try {
      client.controller.enqueue(bytes);
    } catch {
      // The stream closed under us: the browser went away.
      this.#drop(client);
    }
  }

  #drop(client: Client): void {
    if (!this.#clients.delete(client)) return;
    if (!this.listening(client.batch)) this.#onWatch(client.batch, false);
    if (this.#clients.size === 0 && this.#heartbeat !== undefined) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
    }
  }
}

/**
 * Watches a batch folder for saved records, for a batch no run in this process works on (a
 * `retake run` in another terminal): calls `onRow` with the prompt folder whose
 * `metadata.json` changed. Returns the stop.
 */
export function watchBatchFolder(
  batchDir: string,
  onRow: (folder: string) => void,
  onError: (error: unknown) => void,
): () => void {
  let watcher: Deno.FsWatcher;
  try {
    watcher = Deno.watchFs(batchDir, { recursive: true });
  } catch (error) {
    onError(error);
    return () => {};
  }
  const prefix = `${batchDir.replace(/\/+$/, "")}/`;
  (async () => {
    for await (const event of watcher) {
      for (const path of event.paths) {
        const at = path.indexOf(prefix);
        const rel = at === -1 ? undefined : path.slice(at + prefix.length);
        // Records are renamed into place: the new name is metadata.json.
        if (rel?.endsWith("/metadata.json")) onRow(rel.split("/")[0]!);
      }
    }
  })().catch(onError);
  return () => {
    try {
      watcher.close();
    } catch {
      // Closed already.
    }
  };
}
