/**
 * The studio: a local web app on 127.0.0.1 that browses every batch under the output folder,
 * shows a live run's images as they are saved, and steers it. `retake serve` starts it alone;
 * `retake run --ui` starts it beside the run it watches.
 *
 * @module
 */
import { promptFolder } from "../output/folder_names.ts";
import { readRunFile } from "../output/run_file.ts";
import { InputError, messageOf } from "../errors.ts";
import type { PipelineEvent } from "../pipeline/pipeline.ts";
import { formatProgress, ProgressTracker } from "../batch/progress.ts";
import { steeringActionSchema } from "../steering/feedback.ts";
import type { FeedbackEntry, Steering, SteeringAction } from "../steering/steering.ts";
import { APP_CSS, APP_JS } from "./assets.ts";
import { StudioAuth } from "./auth.ts";
import { BatchReader, type Filter, FILTERS, listBatches } from "./batch.ts";
import { EventHub, watchBatchFolder } from "./events.ts";
import { exportZip } from "./export.ts";
import { type Front, openFront } from "./front.ts";
import { readLogTail } from "./log_tail.ts";
import {
  type HeldNotes,
  type LiveState,
  renderBatches,
  renderBatchPage,
  renderRow,
} from "./page.ts";
import { batchPath, decodeSegments, isPlainName, openImage } from "./paths.ts";
import { thumbsFor } from "./thumbs.ts";

/** Where the page's script, styles, images and requests may come from: only the studio. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  "cache-control": "no-store",
};

/** Log lines a batch page shows. */
const LOG_LINES = 100;
/** Progress events per second at most, however fast the pipeline's events come. */
const PROGRESS_EVERY_MS = 250;
/** A POST body larger than this is refused: an action is a few hundred bytes. */
const MAX_BODY = 16_384;

/** The run this process is making, when the studio is attached to it (`--ui`). */
export interface LiveRun {
  /** The batch folder's name under `out`. */
  batch: string;
  /** Prompts × models the run works through, for the progress bar. */
  total: number;
  /** Models each prompt runs with (`--models`). @default {1} */
  models?: number;
  /** The run's steering: every action goes through it. */
  steering?: Steering;
}

/** Options for {@linkcode startStudio}. */
export interface StudioOptions {
  /** The output folder whose batches the studio shows. */
  out: string;
  /**
   * The port on 127.0.0.1; 0 picks a free one.
   *
   * @default {0}
   */
  port?: number;
  /**
   * Where problems the studio cannot show on a page go (stderr).
   *
   * @default {() => {}}
   */
  onError?: (message: string) => void;
}

/** {@linkcode StudioOptions}, and what retake's own commands and tests wire in. */
export interface StudioWiring extends StudioOptions {
  /** The run this process is making, for `retake run --ui`. */
  live?: LiveRun;
  /** Opens a batch's steering, for a batch no run here is making. */
  openSteering?: (batchDir: string) => Promise<Steering>;
  /**
   * Runs one more round of each prompt with a note not yet acted on, for a batch no run here is
   * making (`retake serve`); it takes the batch's lock, so it waits for no live `retake run`.
   */
  runPendingRejects?: (
    batchDir: string,
    steering: Steering,
    onEvent: (event: PipelineEvent) => void,
  ) => Promise<void>;
  /** For tests: fixed secrets instead of random ones. */
  secrets?: { token: string; csrf: string; session?: string };
  /** For tests: the door's limits (see {@linkcode openFront}). */
  limits?: { maxConnections?: number; headMs?: number };
}

/** A running studio. */
export interface Studio {
  /** The URL to open, token included: it signs the browser in. */
  url: string;
  /** The port it listens on, on 127.0.0.1. */
  port: number;
  /** Stops serving; open event streams end. */
  close(): Promise<void>;
}

/** A running {@linkcode Studio}, with what retake's own commands and tests use of it. */
export interface StudioControl extends Studio {
  /** The secrets the studio checks every request against. */
  auth: StudioAuth;
  /** Feeds one pipeline event of the live run. */
  onEvent(event: PipelineEvent): void;
  /**
   * Tells the studio the live run has ended: its batch is then steered as any other (a reject
   * runs one more round through `runPendingRejects`; pause, front and cancel are refused).
   */
  runEnded(): void;
}

/** Starts the studio; resolves once it listens. */
export async function startStudio(options: StudioWiring): Promise<StudioControl> {
  const onError = options.onError ?? (() => {});
  const app = new StudioApp(options, onError);
  const backend = await _serve((request) => app.answer(request), onError);
  let front: Front;
  try {
    front = openFront({
      port: options.port ?? 0,
      backend: backend.address,
      ...options.limits,
      onError,
    });
  } catch (error) {
    app.unsubscribe();
    await backend.stop();
    if (error instanceof Deno.errors.AddrInUse) {
      throw new InputError(
        `Cannot start the studio on port ${options.port} as it is in use: choose another with --port, or leave it out for a free one`,
        { cause: error },
      );
    }
    throw error;
  }
  const port = front.port;
  const auth = app.auth = new StudioAuth(
    port,
    options.secrets?.token,
    options.secrets?.csrf,
    options.secrets?.session,
  );
  return {
    url: `${auth.origin}/?token=${auth.token}`,
    port,
    auth,
    onEvent(event: PipelineEvent) {
      app.onEvent(event);
    },
    runEnded() {
      app.runEnded();
    },
    async close() {
      await app.close();
      await front.close();
      await backend.stop();
    },
  };
}

/**
 * The HTTP server behind the door. It listens where only this user can reach it (a unix socket
 * in a private folder); the door on 127.0.0.1, which every process on the machine can reach,
 * passes bytes on within its limits.
 */
async function _serve(
  answer: (request: Request) => Promise<Response>,
  onError: (message: string) => void,
): Promise<{ address: Parameters<typeof openFront>[0]["backend"]; stop(): Promise<void> }> {
  const unix = Deno.build.os !== "windows";
  const socketDir = unix ? await Deno.makeTempDir({ prefix: "retake-studio-" }) : undefined;
  const server = unix
    ? Deno.serve({ transport: "unix", path: `${socketDir}/http.sock`, onListen: () => {} }, answer)
    : Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, answer);
  // Its accept loop ends on an error (a full file table): never an unhandled rejection.
  server.finished.catch((error) => onError(`The studio stopped serving: ${messageOf(error)}`));
  return {
    address: unix
      ? { transport: "unix", path: `${socketDir}/http.sock` }
      : { hostname: "127.0.0.1", port: (server.addr as Deno.NetAddr).port },
    async stop() {
      await server.shutdown().catch(() => {});
      if (socketDir) await Deno.remove(socketDir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * What the studio knows and does behind its HTTP server: answers requests, feeds the live
 * run's events to the pages, and opens (and remembers) each batch's reader, steering and
 * folder watcher.
 */
class StudioApp {
  /** Known once the door's port is: no request comes through before it opens. */
  auth: StudioAuth | undefined;
  readonly #out: string;
  readonly #live: LiveRun | undefined;
  readonly #options: StudioWiring;
  readonly #onError: (message: string) => void;
  /** Whether the live run is still running (until {@linkcode runEnded}). */
  #running: boolean;
  readonly #tracker: ProgressTracker | undefined;
  /** How many times each prompt of the live run ended. */
  readonly #ends = new Map<string, number>();
  readonly #readers = new Map<string, BatchReader>();
  readonly #steerings = new Map<string, Promise<Steering>>();
  /** Stops watching a batch folder, by batch: those some page listens to. */
  readonly #watchers = new Map<string, () => void>();
  /** The re-runs of rejected prompts, one after another. */
  #rejects: Promise<void> = Promise.resolve();
  readonly #hub: EventHub;
  #progressTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #unsubscribe: (() => void) | undefined;

  constructor(options: StudioWiring, onError: (message: string) => void) {
    this.#out = options.out.replace(/\/+$/, "") || ".";
    this.#live = options.live;
    this.#options = options;
    this.#onError = onError;
    this.#running = this.#live !== undefined;
    this.#tracker = this.#live ? new ProgressTracker(this.#live.total) : undefined;
    this.#hub = new EventHub((batch, watching) => this.#watch(batch, watching));
    this.#unsubscribe = this.#live?.steering?.subscribe(this.#feedbackListener(this.#live.batch));
  }

  /** Answers one request; a fault becomes a 500 and a message, never a dropped connection. */
  async answer(request: Request): Promise<Response> {
    try {
      return await this.#handle(request);
    } catch (error) {
      this.#onError(
        `The studio could not answer ${new URL(request.url).pathname}: ${messageOf(error)}`,
      );
      return text(500, `Cannot answer: ${messageOf(error)}`);
    }
  }

  /** Feeds one pipeline event of the live run. */
  onEvent(event: PipelineEvent): void {
    const live = this.#live;
    if (!live || !this.#tracker) return;
    // The run calls this for every event: nothing the studio does may throw into it.
    try {
      // A prompt given one more round for a note ends again: it is still one prompt done.
      let repeat = false;
      if (event.type === "prompt-end") {
        const seen = (this.#ends.get(event.id) ?? 0) + 1;
        this.#ends.set(event.id, seen);
        repeat = seen > (live.models ?? 1);
      }
      if (!repeat) this.#tracker.update(event);
      this.#hub.publish(live.batch, event.type, { ...event, folder: promptFolder(event.id) });
      this.#scheduleProgress();
    } catch (error) {
      this.#onError(`The studio could not show an event of the run: ${messageOf(error)}`);
    }
  }

  runEnded(): void {
    this.#running = false;
    if (this.#live) this.#hub.publish(this.#live.batch, "ended", {});
  }

  /** Stops listening to the live run's steering. */
  unsubscribe(): void {
    this.#unsubscribe?.();
  }

  /** Ends every stream and watcher, and waits for re-runs under way. */
  async close(): Promise<void> {
    if (this.#progressTimer !== undefined) clearTimeout(this.#progressTimer);
    this.#unsubscribe?.();
    for (const stop of this.#watchers.values()) stop();
    this.#watchers.clear();
    this.#hub.close();
    await this.#rejects;
  }

  /** Whether `batch` is the run this process is making now. */
  #isRunning(batch: string): boolean {
    return this.#running && batch === this.#live?.batch;
  }

  /**
   * Starts or stops watching `batch`'s folder as pages start or stop listening. A batch this
   * process runs has the pipeline's own events; others are watched on disk.
   */
  #watch(batch: string, watching: boolean): void {
    if (batch === this.#live?.batch) return;
    if (!watching) {
      this.#watchers.get(batch)?.();
      this.#watchers.delete(batch);
      return;
    }
    (async () => {
      const dir = await batchPath(this.#out, batch);
      if (!dir || !this.#hub.listening(batch) || this.#watchers.has(batch)) return;
      const real = await Deno.realPath(dir);
      this.#watchers.set(
        batch,
        watchBatchFolder(real, (folder) => this.#hub.publish(batch, "row", { folder }), (error) => {
          this.#hub.publish(batch, "notice", {
            text: `Live updates stopped: ${messageOf(error)}`,
          });
        }),
      );
    })().catch((error) => this.#onError(`Cannot watch batch '${batch}': ${messageOf(error)}`));
  }

  #liveState(): LiveState | undefined {
    return this.#tracker && this.#running
      ? { snapshot: this.#tracker.snapshot(), paused: this.#live?.steering?.paused ?? false }
      : undefined;
  }

  #publishProgress(): void {
    this.#progressTimer = undefined;
    const state = this.#liveState();
    if (!state || !this.#live) return;
    const s = state.snapshot;
    this.#hub.publish(this.#live.batch, "progress", {
      done: s.completed + s.failed,
      total: s.total,
      costUsd: s.costUsd,
      paused: state.paused,
      text: formatLine(state),
    });
  }

  /** Publishes progress soon: at most every `PROGRESS_EVERY_MS`, however fast events come. */
  #scheduleProgress(): void {
    this.#progressTimer ??= setTimeout(() => this.#publishProgress(), PROGRESS_EVERY_MS);
  }

  #feedbackListener(batch: string): (entry: FeedbackEntry) => void {
    return (entry) => {
      const id = "id" in entry.action ? entry.action.id : undefined;
      this.#hub.publish(batch, "feedback", { ...entry, ...(id && { folder: promptFolder(id) }) });
      if (batch === this.#live?.batch) this.#scheduleProgress();
    };
  }

  #readerFor(dir: string): BatchReader {
    let reader = this.#readers.get(dir);
    if (!reader) this.#readers.set(dir, reader = new BatchReader(dir));
    return reader;
  }

  #steeringFor(batch: string, dir: string): Promise<Steering> | undefined {
    const live = this.#live;
    if (batch === live?.batch) return live.steering && Promise.resolve(live.steering);
    const open = this.#options.openSteering;
    if (!open) return undefined;
    let opened = this.#steerings.get(dir);
    if (!opened) {
      opened = open(dir).then((steering) => {
        steering.subscribe(this.#feedbackListener(batch));
        return steering;
      });
      opened.catch(() => this.#steerings.delete(dir));
      this.#steerings.set(dir, opened);
    }
    return opened;
  }

  /** Checks the request's credentials, then routes it: the studio's own paths, or a batch's. */
  async #handle(request: Request): Promise<Response> {
    const auth = this.auth;
    if (!auth) return text(503, "The studio is starting: try again");
    const checked = auth.check(request);
    if (checked.kind !== "ok") return checked.response;
    const url = new URL(request.url);
    const path = checked.path;
    if (request.method !== "GET" && request.method !== "POST") {
      return text(405, `Cannot ${request.method} ${path}: only GET and POST are served`);
    }
    if (request.method === "GET") {
      const own = await this.#studioPath(path, url, auth);
      if (own) return own;
    }
    const match = /^\/b\/([^/]+)(\/.*)?$/.exec(path);
    const segments = match && decodeSegments(match[1]!);
    if (!match || !segments || segments.length !== 1) return text(404, "Not found");
    const batch = segments[0]!;
    const dir = await batchPath(this.#out, batch);
    if (!dir) {
      return text(
        404,
        `Cannot show batch '${batch}': there is no batch folder of that name in '${this.#out}'${
          batch === this.#live?.batch ? " yet: the run is starting, reload in a moment" : ""
        }`,
      );
    }
    return await this.#batchPath(batch, dir, match[2] ?? "", request, url);
  }

  /** A GET of the studio's own (not a batch's): assets, the batch list, event streams. */
  async #studioPath(path: string, url: URL, auth: StudioAuth): Promise<Response | undefined> {
    if (path === "/app.js") return asset(APP_JS, "text/javascript; charset=utf-8");
    if (path === "/app.css") return asset(APP_CSS, "text/css; charset=utf-8");
    if (path === "/") {
      return html(
        renderBatches(this.#out, await listBatches(this.#out), {
          csrf: auth.csrf,
          base: auth.base,
        }),
      );
    }
    if (path === "/events") {
      const batch = url.searchParams.get("batch") ?? "";
      if (!isPlainName(batch)) return text(400, "Cannot stream events without ?batch=NAME");
      return new Response(this.#hub.stream(batch), {
        headers: { ...SECURITY_HEADERS, "content-type": "text/event-stream; charset=utf-8" },
      });
    }
    return undefined;
  }

  /** A request under `/b/<batch>`: `rest` is the path after it. */
  async #batchPath(
    batch: string,
    dir: string,
    rest: string,
    request: Request,
    url: URL,
  ): Promise<Response> {
    if (rest === "") return redirect(`${this.auth!.base}b/${encodeURIComponent(batch)}/`);
    if (request.method === "POST") {
      if (rest !== "/action") return text(404, "Not found");
      return await this.#act(batch, dir, request);
    }
    if (rest === "/") return await this.#batchPage(batch, dir, url);
    if (rest === "/export.zip") {
      return new Response(exportZip(dir), {
        headers: {
          ...SECURITY_HEADERS,
          "content-type": "application/zip",
          "content-disposition": `attachment; filename="${
            batch.replace(/[^A-Za-z0-9._-]/g, "_")
          }.zip"`,
        },
      });
    }
    const row = /^\/row\/([^/]+)$/.exec(rest);
    if (row) return await this.#row(batch, dir, row[1]!);
    if (rest.startsWith("/f/")) return await _image(dir, rest.slice(3));
    return text(404, "Not found");
  }

  /** One prompt's row of the batch page, for a page to swap in as it changes. */
  async #row(batch: string, dir: string, segment: string): Promise<Response> {
    const folder = decodeSegments(segment)?.[0];
    if (!folder || !isPlainName(folder)) return text(404, "Not found");
    const entry = await this.#readerFor(dir).entry(folder);
    if (!entry) return text(404, `Cannot show prompt folder '${folder}': it has no record`);
    const thumbs = await thumbsFor(dir, [entry]);
    const held = await this.#heldFor(batch, dir);
    return html(renderRow(batch, entry, {
      thumbs,
      live: this.#isRunning(batch),
      base: this.auth!.base,
      ...(held && { held }),
    }));
  }

  /** The notes of `batch` waiting for confirmation, when its steering can be opened. */
  async #heldFor(batch: string, dir: string): Promise<HeldNotes | undefined> {
    const steering = await this.#steeringFor(batch, dir)?.catch(() => undefined);
    if (!steering) return undefined;
    return (id) =>
      steering.heldNotes(id).map((e) => ({
        seq: e.seq,
        note: e.action.type === "reject" ? e.action.note : "",
      }));
  }

  /** Whether `batch` has prompt `id`: a record of it, or a line of its run.json. */
  async #hasPrompt(dir: string, id: string): Promise<boolean> {
    const entry = await this.#readerFor(dir).entry(promptFolder(id)).catch(() => undefined);
    if (entry?.kind === "single" && entry.record.id === id) return true;
    if (entry?.kind === "comparison" && entry.runs.some((r) => r.record?.id === id)) return true;
    const prompts: unknown = (await readRunFile(dir)).value?.prompts;
    return Array.isArray(prompts) &&
      prompts.some((p) => typeof p === "object" && p !== null && p.id === id);
  }

  async #batchPage(batch: string, dir: string, url: URL): Promise<Response> {
    const asked = url.searchParams.get("filter") ?? "all";
    const filter: Filter = (FILTERS as readonly string[]).includes(asked) ? asked as Filter : "all";
    const number = Number(url.searchParams.get("page") ?? "1");
    const page = await this.#readerFor(dir).page(filter, Number.isInteger(number) ? number : 1);
    const state = this.#isRunning(batch) ? this.#liveState() : undefined;
    const held = await this.#heldFor(batch, dir);
    return html(renderBatchPage({
      name: batch,
      filter,
      page,
      ...(state && { live: state }),
      logLines: await readLogTail(dir, LOG_LINES),
      thumbs: await thumbsFor(dir, page.entries),
      ...(held && { held }),
    }, { csrf: this.auth!.csrf, base: this.auth!.base }));
  }

  /** Applies a steering action posted to `batch`; a reject outside a live run runs a round. */
  async #act(batch: string, dir: string, request: Request): Promise<Response> {
    const action = await _readAction(request);
    if (action instanceof Response) return action;
    const isLive = this.#isRunning(batch);
    if (!isLive && action.type !== "favourite" && action.type !== "reject") {
      return text(
        409,
        `Cannot ${action.type} in batch '${batch}' as no run of it is attached to this studio: start it with 'retake run … --ui'`,
      );
    }
    if ("id" in action && !await this.#hasPrompt(dir, action.id)) {
      // Saved, it would stand in every later round's way: refused, and nothing written.
      return text(
        404,
        `Cannot ${action.type} prompt '${action.id}' as batch '${batch}' has no prompt of that id`,
      );
    }
    const opened = this.#steeringFor(batch, dir);
    if (!opened) return text(501, "Cannot steer: this studio was started without steering");
    let entry: FeedbackEntry;
    let steering: Steering;
    try {
      steering = await opened;
      entry = await steering.apply(action);
    } catch (error) {
      const status = error instanceof TypeError || error instanceof RangeError ? 400 : 500;
      return text(status, messageOf(error));
    }
    if (!isLive && action.type === "reject") this.#runRejects(batch, dir, steering);
    return new Response(JSON.stringify(entry), {
      headers: { ...SECURITY_HEADERS, "content-type": "application/json" },
    });
  }

  /**
   * Queues one more round of `batch`'s rejected prompts, where the studio can run them. One
   * re-run at a time; each takes every note pending by then.
   */
  #runRejects(batch: string, dir: string, steering: Steering): void {
    const run = this.#options.runPendingRejects;
    if (!run) return;
    const onEvent = (event: PipelineEvent) =>
      this.#hub.publish(batch, event.type, { ...event, folder: promptFolder(event.id) });
    this.#rejects = this.#rejects.then(() => run(dir, steering, onEvent)).catch((error) => {
      const message = `Cannot run the rejected prompts of '${batch}': ${messageOf(error)}`;
      this.#hub.publish(batch, "notice", { text: message });
      this.#onError(message);
    });
  }
}

/** The steering action a POST carries, or the answer refusing it. */
async function _readAction(request: Request): Promise<SteeringAction | Response> {
  const body = await readBody(request, MAX_BODY);
  if (body === undefined) {
    return text(413, `Cannot take an action of more than ${MAX_BODY} bytes`);
  }
  let parsed;
  try {
    parsed = steeringActionSchema.safeParse(JSON.parse(body));
  } catch (error) {
    return text(400, `Cannot read the action: ${messageOf(error)}`);
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return text(
      400,
      `Cannot apply the action as field '${
        issue.path.join(".") || "type"
      }' is invalid: ${issue.message}`,
    );
  }
  return parsed.data as SteeringAction;
}

/** An image of the batch folder, `path` below it; nothing else is served from there. */
async function _image(dir: string, path: string): Promise<Response> {
  const parts = decodeSegments(path);
  const image = parts && await openImage(dir, parts);
  if (!image) return text(404, "Cannot serve that file: only images inside the batch folder");
  // Streamed from the handle that was checked: an image of any size costs the same memory.
  return new Response(image.file.stream(), {
    headers: {
      ...SECURITY_HEADERS,
      "content-type": image.type,
      "content-length": String(image.file.size),
    },
  });
}

/** The terminal's own progress line, so the page and the terminal agree. */
function formatLine(state: LiveState): string {
  return `${state.paused ? "paused · " : ""}${formatProgress(state.snapshot)}`;
}

function html(body: string): Response {
  return new Response(body, {
    headers: { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8" },
  });
}

function asset(body: string, type: string): Response {
  return new Response(body, { headers: { ...SECURITY_HEADERS, "content-type": type } });
}

function text(status: number, message: string): Response {
  return new Response(`${message}\n`, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8" },
  });
}

/** The body's text, read no further than `max` bytes; undefined when it is longer. */
async function readBody(request: Request, max: number): Promise<string | undefined> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (!(declared <= max)) return undefined;
  if (!request.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.length;
    // Checked while reading: a body that says nothing of its length is cut off here too.
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder().decode(bytes);
}

function redirect(location: string): Response {
  return new Response(null, { status: 303, headers: { ...SECURITY_HEADERS, location } });
}
