/**
 * The studio's door on 127.0.0.1: every process on the machine can reach it, so it holds a
 * bounded number of connections, drops one that sends no complete request head in time or goes
 * quiet, and never fails on a full file table. Bytes pass unchanged to the studio's HTTP server,
 * which listens on a Unix socket in a folder only this user can enter. (`Deno.serve` has no
 * header or idle timeout, and its accept loop dies on `Too many open files`, taking the process
 * and a run under it along.)
 *
 * @module
 */

/** Options for {@linkcode openFront}. */
export interface FrontOptions {
  /** The port on 127.0.0.1; 0 picks a free one. */
  port: number;
  /** Where the HTTP server listens. */
  backend: Deno.ConnectOptions | Deno.UnixConnectOptions;
  /** Connections open at once; one more is closed as it comes. @default {64} */
  maxConnections?: number;
  /** Time a new connection has to send its first request head, in ms. @default {10_000} */
  headMs?: number;
  /** A connection with no byte either way for this long is closed, in ms. @default {60_000} */
  idleMs?: number;
  /** Problems no request can report (the accept loop's). */
  onError?: (message: string) => void;
}

/** A door that is open. */
export interface Front {
  port: number;
  /** Connections open now. */
  readonly connections: number;
  /** Stops accepting and closes every connection. */
  close(): Promise<void>;
}

const CHUNK = 64 * 1024;
const HEAD_END = [13, 10, 13, 10];

/** Opens the door; throws `Deno.errors.AddrInUse` when the port is taken. */
export function openFront(options: FrontOptions): Front {
  const max = options.maxConnections ?? 64;
  const headMs = options.headMs ?? 10_000;
  const idleMs = options.idleMs ?? 60_000;
  const onError = options.onError ?? (() => {});
  const listener = Deno.listen({ hostname: "127.0.0.1", port: options.port });
  const open = new Set<Passage>();
  let closed = false;
  let sweeper: ReturnType<typeof setInterval> | undefined;
  const sweep = () => {
    const now = performance.now();
    for (const passage of open) {
      const quiet = now - passage.lastByte;
      if ((!passage.headSeen && now - passage.opened > headMs) || quiet > idleMs) passage.end();
    }
    if (open.size === 0 && sweeper !== undefined) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };
  const accepting = (async () => {
    let backoff = 10;
    while (!closed) {
      let client: Deno.Conn;
      try {
        client = await listener.accept();
        backoff = 10;
      } catch (error) {
        if (closed || error instanceof Deno.errors.BadResource) break;
        // Out of file handles, most likely: wait for some to close, and never stop accepting.
        onError(`The studio could not accept a connection: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, 1000);
        continue;
      }
      if (open.size >= max) {
        close(client);
        continue;
      }
      const passage = new Passage(client, () => open.delete(passage));
      open.add(passage);
      sweeper ??= setInterval(sweep, Math.max(50, Math.min(headMs, idleMs) / 4));
      passage.start(options.backend);
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get connections() {
      return open.size;
    },
    async close() {
      closed = true;
      close(listener);
      await accepting;
      for (const passage of [...open]) passage.end();
      if (sweeper !== undefined) clearInterval(sweeper);
      sweeper = undefined;
    },
  };
}

/** One client connection and its connection to the HTTP server. */
class Passage {
  readonly opened = performance.now();
  lastByte = performance.now();
  /** Whether the first request head came whole. */
  headSeen = false;
  #matched = 0;
  #backend: Deno.Conn | undefined;
  #ended = false;
  readonly #client: Deno.Conn;
  readonly #onEnd: () => void;

  constructor(client: Deno.Conn, onEnd: () => void) {
    this.#client = client;
    this.#onEnd = onEnd;
  }

  start(backend: Deno.ConnectOptions | Deno.UnixConnectOptions): void {
    (async () => {
      this.#backend = await Deno.connect(backend as Deno.ConnectOptions);
      if (this.#ended) {
        close(this.#backend);
        return;
      }
      await Promise.all([
        this.#pump(this.#client, this.#backend, true),
        this.#pump(this.#backend, this.#client, false),
      ]);
    })().catch(() => {}).finally(() => this.end());
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    close(this.#client);
    if (this.#backend) close(this.#backend);
    this.#onEnd();
  }

  async #pump(from: Deno.Conn, to: Deno.Conn, fromClient: boolean): Promise<void> {
    const buffer = new Uint8Array(CHUNK);
    while (!this.#ended) {
      const n = await from.read(buffer);
      if (n === null) {
        // The client is done sending: the server may still answer.
        if (fromClient) await to.closeWrite().catch(() => {});
        else this.end();
        return;
      }
      this.lastByte = performance.now();
      const bytes = buffer.subarray(0, n);
      if (fromClient && !this.headSeen) this.#look(bytes);
      for (let written = 0; written < n;) written += await to.write(bytes.subarray(written));
    }
  }

  /** Notes when the bytes so far hold a blank line: the end of a request head. */
  #look(bytes: Uint8Array): void {
    for (const byte of bytes) {
      this.#matched = byte === HEAD_END[this.#matched] ? this.#matched + 1 : byte === 13 ? 1 : 0;
      if (this.#matched === HEAD_END.length) {
        this.headSeen = true;
        return;
      }
    }
  }
}

function close(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Closed already.
  }
}
