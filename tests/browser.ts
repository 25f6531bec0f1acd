/**
 * Headless Chromium driven over the DevTools protocol with Deno's own WebSocket, for the page
 * tests. Not playwright-core: it probes `/proc/sys/fs/binfmt_misc/WSLInterop` when it loads,
 * which Deno only allows with `--allow-all`, so it cannot run under the `test` task's
 * permissions.
 *
 * @module
 */

/** Debian's Chromium. */
export const CHROMIUM = "/usr/bin/chromium";

/** Whether Chromium is installed. */
export async function hasChromium(): Promise<boolean> {
  try {
    await Deno.stat(CHROMIUM);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** A DevTools message's parameters. */
export type Params = Record<string, unknown>;

/** Just enough of the DevTools protocol to drive one headless Chromium page. */
export class Browser {
  readonly #child: Deno.ChildProcess;
  readonly #stderrDrained: Promise<void>;
  readonly #socket: WebSocket;
  readonly #closed: Promise<void>;
  readonly #pending = new Map<
    number,
    { resolve: (v: Params) => void; reject: (e: Error) => void }
  >();
  readonly #listeners = new Map<string, Array<(params: Params) => void>>();
  #sessionId = "";
  #nextId = 1;

  private constructor(child: Deno.ChildProcess, stderrDrained: Promise<void>, socket: WebSocket) {
    this.#child = child;
    this.#stderrDrained = stderrDrained;
    this.#socket = socket;
    socket.onmessage = (event) => this.#receive(JSON.parse(event.data));
    this.#closed = new Promise((resolve) => {
      socket.onclose = () => {
        for (const { reject } of this.#pending.values()) {
          reject(new Error("Chromium closed the DevTools connection"));
        }
        this.#pending.clear();
        resolve();
      };
    });
  }

  /** Starts Chromium and opens one blank page to drive. */
  static async launch(profile: string): Promise<Browser> {
    const child = new Deno.Command(CHROMIUM, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const { endpoint, drained } = await endpointOf(child);
    const socket = new WebSocket(endpoint);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`Cannot connect to Chromium at '${endpoint}'`));
    });
    const browser = new Browser(child, drained, socket);
    const { targetId } = await browser.#call("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await browser.#call("Target.attachToTarget", { targetId, flatten: true });
    browser.#sessionId = sessionId as string;
    return browser;
  }

  /** Sends a command to the page. */
  send(method: string, params: Params = {}): Promise<Params> {
    return this.#call(method, params, this.#sessionId);
  }

  on(method: string, listener: (params: Params) => void): void {
    this.#listeners.set(method, [...this.#listeners.get(method) ?? [], listener]);
  }

  once(method: string): Promise<Params> {
    return new Promise((resolve) => {
      const listener = (params: Params) => {
        this.#listeners.set(method, this.#listeners.get(method)!.filter((l) => l !== listener));
        resolve(params);
      };
      this.on(method, listener);
    });
  }

  /** The value of a page expression; promises are awaited. */
  async evaluate(expression: string): Promise<unknown> {
    const { result, exceptionDetails } = await this.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    if (exceptionDetails) {
      throw new Error(`Cannot evaluate '${expression}': ${JSON.stringify(exceptionDetails)}`);
    }
    return (result as { value?: unknown }).value;
  }

  /** A PNG of the page from the top, `width` × `height` CSS pixels. */
  async screenshot(width: number, height: number): Promise<Uint8Array> {
    const { data } = await this.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip: { x: 0, y: 0, width, height, scale: 1 },
    });
    return Uint8Array.from(atob(data as string), (c) => c.charCodeAt(0));
  }

  /** Closes Chromium, killing it if it does not close, and waits for it to exit. */
  async close(): Promise<void> {
    try {
      await this.#call("Browser.close");
    } catch (error) {
      // The connection may drop before the answer arrives; only a live process needs killing.
      if (!(error instanceof Error && /closed the DevTools connection/.test(error.message))) {
        this.#child.kill("SIGKILL");
      }
    }
    if (this.#socket.readyState !== WebSocket.CLOSED) this.#socket.close();
    await this.#closed;
    await this.#child.status;
    await this.#stderrDrained;
  }

  #call(method: string, params: Params = {}, sessionId?: string): Promise<Params> {
    const id = this.#nextId++;
    const message = { id, method, params, ...(sessionId && { sessionId }) };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`Chromium did not answer '${method}' within 20 s`));
      }, 20_000);
      this.#pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#socket.send(JSON.stringify(message));
    });
  }

  #receive(
    message: { id?: number; method?: string; params?: Params; result?: Params; error?: unknown },
  ): void {
    if (message.id !== undefined) {
      const pending = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.error) {
        pending?.reject(new Error(`DevTools error: ${JSON.stringify(message.error)}`));
      } else {
        pending?.resolve(message.result ?? {});
      }
    } else if (message.method) {
      for (const listener of this.#listeners.get(message.method) ?? []) {
        listener(message.params ?? {});
      }
    }
  }
}

/** Reads Chromium's stderr until it names its DevTools endpoint, then drains the rest. */
async function endpointOf(
  child: Deno.ChildProcess,
): Promise<{ endpoint: string; drained: Promise<void> }> {
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Cannot start Chromium: it exited saying ${JSON.stringify(seen)}`);
    seen += value;
    const match = /DevTools listening on (ws:\/\/\S+)/.exec(seen);
    if (match) {
      const drained = (async () => {
        while (!(await reader.read()).done) {
          // Chromium's log lines are not needed once the endpoint is known.
        }
      })();
      return { endpoint: match[1]!, drained };
    }
  }
}
