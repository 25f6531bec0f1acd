/**
 * The studio's door on 127.0.0.1: every process on the machine can reach it, so it holds a
 * bounded number of connections, drops one that sends no complete request head in time, and
 * never fails on a full file table. Bytes pass to the studio's HTTP server, which listens on a
 * Unix socket in a folder only this user can enter. (`Deno.serve` has no header or idle
 * timeout, and its accept loop dies on `Too many open files`, taking the process and a run
 * under it along.)
 *
 * Each connection carries one request: the door adds `Connection: close` to it, so the server
 * closes the connection once it has answered. A connection is thus either sending its head
 * (timed) or the server's until it closes it: no one can hold one open idle after an answer.
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
  /** Time a new connection has to send its request head, in ms. @default {10_000} */
  headMs?: number;
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
/** Added after the request line: the server answers this one request, then closes. */
const CLOSE = new TextEncoder().encode("Connection: close\r\n");
/** The longest request line taken: a studio URL is a few hundred bytes. */
const MAX_REQUEST_LINE = 8192;

/** Opens the door; throws `Deno.errors.AddrInUse` when the port is taken. */
export function openFront(options: FrontOptions): Front {
  const max = options.maxConnections ?? 64;
  const headMs = options.headMs ?? 10_000;
  const onError = options.onError ?? (() => {});
  const listener = Deno.listen({ hostname: "127.0.0.1", port: options.port });
  const open = new Set<Passage>();
  let closed = false;
  let sweeper: ReturnType<typeof setInterval> | undefined;
  const sweep = () => {
    const now = performance.now();
    for (const passage of open) {
      if (!passage.headSeen && now - passage.opened > headMs) passage.end();
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
      sweeper ??= setInterval(sweep, Math.max(50, headMs / 4));
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
  /** Whether the request head came whole. */
  headSeen = false;
  #matched = 0;
  /** Bytes of the request line seen before its end; -1 once it has ended. */
  #lineBytes = 0;
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
      let bytes = buffer.subarray(0, n);
      if (fromClient && !this.headSeen) {
        this.#look(bytes);
        if (this.#lineBytes !== -1) {
          const lf = bytes.indexOf(10);
          if (lf === -1) {
            this.#lineBytes += bytes.length;
            if (this.#lineBytes > MAX_REQUEST_LINE) return this.end();
          } else {
            this.#lineBytes = -1;
            await writeAll(to, bytes.subarray(0, lf + 1));
            await writeAll(to, CLOSE);
            bytes = bytes.subarray(lf + 1);
          }
        }
      }
      await writeAll(to, bytes);
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

async function writeAll(to: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await to.write(bytes.subarray(written));
  }
}

function close(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Closed already.
  }
}
