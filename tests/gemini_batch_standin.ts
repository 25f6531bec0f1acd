/**
 * A local stand-in for the Gemini Developer API's Batch API and Files API, in front of the
 * `generateContent` stand-in (`gemini_standin.ts`), speaking the HTTP protocol the
 * `@google/genai` SDK's `batches.*` and `files.*` use, so batch runs are tested without a key
 * or a network. Built from:
 *
 * - the guide, ai.google.dev/gemini-api/docs/batch-api: inline requests (under 20 MB) or a
 *   JSONL file of `{"key", "request"}` lines uploaded through the Files API; results inline
 *   (`inlinedResponses`) or as a JSONL file (`responsesFile`) of `{"key", "response"}` or
 *   `{"key", "error"}` lines; 50% of the interactive price; a job still pending after 48 hours
 *   expires;
 * - the REST reference, ai.google.dev/api/batch-api: `models.batchGenerateContent` answers an
 *   `Operation` whose `metadata` is the `GenerateContentBatch` (`name`, `displayName`, `model`,
 *   `state` as `BATCH_STATE_*`, `batchStats` with int64 counts as strings, `output`);
 *   `batches.get`, `batches.list` (`operations`, `nextPageToken`), `batches.cancel` (the
 *   operation ends with `error.code` 1, CANCELLED), `batches.delete`;
 * - ai.google.dev/api/files: the resumable upload (`X-Goog-Upload-Protocol: resumable`, a
 *   `start` that answers `x-goog-upload-url`, then `upload, finalize` answering
 *   `x-goog-upload-status: final` and the `File`), `files.get`, and the download
 *   (`files/{id}:download?alt=media`);
 * - the SDK's own sources (`@google/genai` 3.1 `dist/web/index.mjs`: `batchJobFromMldev`,
 *   `tJobState`, `uploadBlobInternal`, and the Node `downloadFile`), which read exactly these
 *   fields and map `BATCH_STATE_*` to `JOB_STATE_*`.
 *
 * Job states advance as the client polls: `PENDING` for `pollsPerState` gets, then `RUNNING`
 * while the lines are answered (each by the `generateContent` stand-in, so a batch answer is
 * what the interactive call would have answered), then `SUCCEEDED`. `hold()` keeps jobs
 * pending; a job pending longer than `expiryMs` by the stand-in's clock, or marked with
 * {@linkcode GeminiBatchStandIn.expireNext}, ends `EXPIRED` with no output;
 * {@linkcode GeminiBatchStandIn.failNext} ends one `FAILED`. A line whose text holds
 * `[batch:fail-once]` fails the first time its content is answered in a job (500 INTERNAL in
 * its `error`), `[batch:fail]` every time; the `[gemini:…]` faults of the `generateContent`
 * stand-in turn into line errors as the batch reports them.
 *
 * Every call is an {@linkcode BatchEvent}, in order, so a test can act on what the stand-in
 * saw (kill the client on the 7th poll) rather than on time.
 *
 * @module
 */
import {
  type GeminiStandIn,
  type GeminiStandInOptions,
  startGeminiStandIn,
} from "./gemini_standin.ts";

/** Options for {@linkcode startGeminiBatchStandIn}. */
export interface GeminiBatchStandInOptions extends GeminiStandInOptions {
  /** `batches.get` calls a job answers in each of `PENDING` and `RUNNING`. @default {1} */
  pollsPerState?: number;
  /** A job pending longer than this (by `now`) expires. @default {48 hours} */
  expiryMs?: number;
  /** Wall clock in ms, for expiry and timestamps. @default {Date.now} */
  clock?: () => number;
  /** Lines answered side by side while a job runs. @default {8} */
  concurrency?: number;
}

/** One call the stand-in saw. */
export interface BatchEvent {
  seq: number;
  type: "upload" | "create" | "get" | "list" | "cancel" | "delete" | "file-get" | "download";
  /** The job or file the call was about. */
  name?: string;
  /** The job's state after the call. */
  state?: string;
}

/** One request of a job as the stand-in received it. */
export interface BatchLine {
  /** The line's `key` (file input) or `metadata.key` (inline). */
  key?: string;
  /** SHA-256 of the request in canonical JSON (keys sorted): the same request, the same hash. */
  content: string;
  /** The user text of the request. */
  prompt: string;
  /** The line's outcome once the job ran: answered, or failed with this status. */
  outcome?: "ok" | number;
}

/** One job as the stand-in holds it. */
export interface BatchJobRecord {
  /** `batches/…`. */
  name: string;
  displayName: string;
  /** Model id without `models/`. */
  model: string;
  source: "inline" | "file";
  /** The input file, for file input. */
  inputFile?: string;
  lines: BatchLine[];
  state: string;
  createdAt: number;
  polls: number;
  /** The responses file, once a file-input job succeeded. */
  responsesFile?: string;
}

/** A running batch stand-in. */
export interface GeminiBatchStandIn {
  /** Base URL for the SDK's `httpOptions.baseUrl`. */
  url: string;
  key: string;
  /** The `generateContent` stand-in behind it: every line answered is one of its requests. */
  gemini: GeminiStandIn;
  /** Every job created, in order. */
  jobs: BatchJobRecord[];
  /** Every call, in order. */
  events: BatchEvent[];
  /** Calls `listener` on every event from now on; returns a function that stops it. */
  onEvent(listener: (event: BatchEvent) => void): () => void;
  /** The next `n` jobs created expire instead of running. */
  expireNext(n?: number): void;
  /** The next `n` jobs created fail as a whole (`JOB_STATE_FAILED`). */
  failNext(n?: number): void;
  /** Keeps every job pending until {@linkcode GeminiBatchStandIn.release}. */
  hold(): void;
  release(): void;
  /** Moves the stand-in's clock forward (for expiry). */
  advanceClock(ms: number): void;
  close(): Promise<void>;
}

interface StoredFile {
  name: string;
  displayName?: string;
  mimeType: string;
  bytes: Uint8Array;
  createTime: string;
  source: "UPLOADED" | "GENERATED";
}

interface Job extends BatchJobRecord {
  requests: Array<{ key?: string; request: Record<string, unknown> }>;
  processing?: Promise<void>;
  output?: Array<{ key?: string; response?: unknown; error?: unknown }>;
  expire: boolean;
  fail: boolean;
  updateTime: number;
  endTime?: number;
}

const TERMINAL = new Set([
  "BATCH_STATE_SUCCEEDED",
  "BATCH_STATE_FAILED",
  "BATCH_STATE_CANCELLED",
  "BATCH_STATE_EXPIRED",
]);

/** Starts a batch stand-in (and the `generateContent` stand-in behind it) on 127.0.0.1. */
export async function startGeminiBatchStandIn(
  options: GeminiBatchStandInOptions = {},
): Promise<GeminiBatchStandIn> {
  const { port, pollsPerState: polls = 1, concurrency = 8, ...inner } = options;
  const gemini = await startGeminiStandIn({ ...inner, port: 0 });
  const key = gemini.key;
  const expiryMs = options.expiryMs ?? 48 * 3_600_000;
  let skew = 0;
  const clock = () => (options.clock ?? Date.now)() + skew;
  const iso = (ms: number) => new Date(ms).toISOString();
  const jobs: Job[] = [];
  const files = new Map<string, StoredFile>();
  const uploads = new Map<string, { meta: Record<string, unknown>; chunks: Uint8Array[] }>();
  const events: BatchEvent[] = [];
  const listeners = new Set<(event: BatchEvent) => void>();
  const failedOnce = new Set<string>();
  let expireNext = 0;
  let failNext = 0;
  let held = false;
  let counter = 0;
  const id = () => `${(++counter).toString(36)}${crypto.randomUUID().slice(0, 8)}`;
  const emit = (event: Omit<BatchEvent, "seq">) => {
    const full = { seq: events.length + 1, ...event };
    events.push(full);
    for (const listener of listeners) listener(full);
  };

  const operation = (job: Job) => {
    const answered = job.lines.filter((l) => l.outcome !== undefined);
    const failed = answered.filter((l) => l.outcome !== "ok").length;
    const done = TERMINAL.has(job.state);
    const output = job.state !== "BATCH_STATE_SUCCEEDED"
      ? undefined
      : job.source === "file"
      ? { responsesFile: job.responsesFile }
      : {
        inlinedResponses: {
          inlinedResponses: job.output!.map((o) => ({
            ...(o.key !== undefined && { metadata: { key: o.key } }),
            ...(o.error !== undefined ? { error: o.error } : { response: o.response }),
          })),
        },
      };
    const metadata = {
      "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
      model: `models/${job.model}`,
      displayName: job.displayName,
      createTime: iso(job.createdAt),
      updateTime: iso(job.updateTime),
      ...(job.endTime !== undefined && { endTime: iso(job.endTime) }),
      batchStats: {
        requestCount: String(job.lines.length),
        ...(answered.length > failed && {
          successfulRequestCount: String(answered.length - failed),
        }),
        ...(failed > 0 && { failedRequestCount: String(failed) }),
        ...(!done && { pendingRequestCount: String(job.lines.length - answered.length) }),
      },
      state: job.state,
      name: job.name,
      ...(output && { output }),
    };
    return {
      name: job.name,
      metadata,
      ...(done && { done: true }),
      ...(output && {
        response: {
          "@type":
            "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
          ...output,
        },
      }),
      ...(job.state === "BATCH_STATE_CANCELLED" &&
        { error: { code: 1, message: "The batch was cancelled." } }),
      ...(job.state === "BATCH_STATE_FAILED" &&
        { error: { code: 13, message: "The batch failed: an internal error has occurred." } }),
    };
  };

  const setState = (job: Job, state: string) => {
    job.state = state;
    job.updateTime = clock();
    if (TERMINAL.has(state)) job.endTime = job.updateTime;
  };

  /** Answers every line through the generateContent stand-in, `concurrency` at a time. */
  const run = async (job: Job) => {
    const output: NonNullable<Job["output"]> = new Array(job.requests.length);
    job.output = output;
    let next = 0;
    const worker = async () => {
      while (next < job.requests.length) {
        const i = next++;
        const { key: lineKey, request } = job.requests[i]!;
        const line = job.lines[i]!;
        const once = line.prompt.includes("[batch:fail-once]") &&
          !failedOnce.has(line.content);
        if (once) failedOnce.add(line.content);
        if (once || line.prompt.includes("[batch:fail]")) {
          output[i] = {
            ...(lineKey !== undefined && { key: lineKey }),
            error: { code: 500, message: "Internal error encountered.", status: "INTERNAL" },
          };
          line.outcome = 500;
          continue;
        }
        const response = await fetch(`${gemini.url}/v1beta/models/${job.model}:generateContent`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-goog-api-key": key },
          body: JSON.stringify(request),
        });
        const body = await response.json() as Record<string, unknown>;
        if (response.ok) {
          output[i] = { ...(lineKey !== undefined && { key: lineKey }), response: body };
          line.outcome = "ok";
        } else {
          const error = body.error as Record<string, unknown> | undefined;
          output[i] = {
            ...(lineKey !== undefined && { key: lineKey }),
            error: {
              code: error?.code ?? response.status,
              message: error?.message ?? response.statusText,
              ...(error?.status !== undefined && { status: error.status }),
            },
          };
          line.outcome = response.status;
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    if (job.source === "file") {
      const name = `files/batch-${job.name.slice("batches/".length)}-responses`;
      const text = output.map((o) => JSON.stringify(o)).join("\n") + "\n";
      files.set(name, {
        name,
        mimeType: "application/jsonl",
        bytes: new TextEncoder().encode(text),
        createTime: iso(clock()),
        source: "GENERATED",
      });
      job.responsesFile = name;
    }
  };

  /** One poll: the job moves on as the client watches it. */
  const advance = async (job: Job) => {
    job.polls++;
    if (job.state === "BATCH_STATE_PENDING") {
      if (job.expire || clock() - job.createdAt > expiryMs) {
        setState(job, "BATCH_STATE_EXPIRED");
      } else if (!held && job.polls > polls) {
        if (job.fail) setState(job, "BATCH_STATE_FAILED");
        else {
          setState(job, "BATCH_STATE_RUNNING");
          // This answer is the first of the running ones.
          job.polls = 1;
          job.processing = run(job);
        }
      }
    } else if (job.state === "BATCH_STATE_RUNNING" && job.polls > polls) {
      await job.processing;
      setState(job, "BATCH_STATE_SUCCEEDED");
    }
  };

  const fileJson = (file: StoredFile) => ({
    name: file.name,
    ...(file.displayName !== undefined && { displayName: file.displayName }),
    mimeType: file.mimeType,
    sizeBytes: String(file.bytes.length),
    createTime: file.createTime,
    updateTime: file.createTime,
    expirationTime: iso(Date.parse(file.createTime) + 48 * 3_600_000),
    sha256Hash: "",
    uri: `${url}/v1beta/${file.name}`,
    state: "ACTIVE",
    source: file.source,
  });

  const create = async (model: string, body: Record<string, unknown>): Promise<Response> => {
    const batch = (body.batch ?? {}) as Record<string, unknown>;
    const input = (batch.inputConfig ?? {}) as Record<string, unknown>;
    const displayName = String(batch.displayName ?? "");
    let requests: Job["requests"];
    let source: Job["source"];
    let inputFile: string | undefined;
    if (typeof input.fileName === "string") {
      const file = files.get(input.fileName);
      if (file === undefined) {
        return _error(404, "NOT_FOUND", `File ${input.fileName} not found.`);
      }
      source = "file";
      inputFile = input.fileName;
      try {
        requests = new TextDecoder().decode(file.bytes).split("\n").filter((l) => l.trim() !== "")
          .map((l) => {
            const line = JSON.parse(l) as { key?: unknown; request?: unknown };
            if (typeof line.request !== "object" || line.request === null) {
              throw new TypeError("a line without a request");
            }
            return {
              ...(typeof line.key === "string" && { key: line.key }),
              request: line.request as Record<string, unknown>,
            };
          });
      } catch (error) {
        return _error(
          400,
          "INVALID_ARGUMENT",
          `Invalid JSONL input file: ${(error as Error).message}`,
        );
      }
    } else {
      const inline = ((input.requests ?? {}) as { requests?: unknown }).requests;
      if (!Array.isArray(inline) || inline.length === 0) {
        return _error(400, "INVALID_ARGUMENT", "* BatchGenerateContentRequest: no requests");
      }
      source = "inline";
      requests = inline.map((r: { request?: unknown; metadata?: { key?: unknown } }) => ({
        ...(typeof r.metadata?.key === "string" && { key: r.metadata.key }),
        request: (r.request ?? {}) as Record<string, unknown>,
      }));
      const size = new TextEncoder().encode(JSON.stringify(body)).length;
      if (size > 20 * 1024 * 1024) {
        return _error(
          400,
          "INVALID_ARGUMENT",
          `Request payload size exceeds the limit: ${size} bytes; use a file for batches over 20 MB.`,
        );
      }
    }
    if (displayName === "") {
      return _error(400, "INVALID_ARGUMENT", "* GenerateContentBatch.display_name: required");
    }
    const lines = await Promise.all(requests.map(async (r) => ({
      ...(r.key !== undefined && { key: r.key }),
      content: await _hash(_canonical(r.request)),
      prompt: _texts(r.request),
    })));
    const now = clock();
    const job: Job = {
      name: `batches/${id()}`,
      displayName,
      model,
      source,
      ...(inputFile !== undefined && { inputFile }),
      lines,
      requests,
      state: "BATCH_STATE_PENDING",
      createdAt: now,
      updateTime: now,
      polls: 0,
      expire: false,
      fail: false,
    };
    if (expireNext > 0) (expireNext--, job.expire = true);
    else if (failNext > 0) (failNext--, job.fail = true);
    jobs.push(job);
    emit({ type: "create", name: job.name, state: job.state });
    return Response.json(operation(job));
  };

  let url = "";
  const handler = async (req: Request): Promise<Response> => {
    const u = new URL(req.url);
    const path = u.pathname;
    const isBatch = /^\/v1beta\/(?:batches|files)\b/.test(path) ||
      /^\/(?:upload|download)\/v1beta\/files/.test(path) ||
      /:batchGenerateContent$/.test(path);
    if (!isBatch) {
      // generateContent and models.get: the interactive stand-in answers.
      const headers = new Headers(req.headers);
      headers.delete("host");
      return await fetch(`${gemini.url}${path}${u.search}`, {
        method: req.method,
        headers,
        ...(req.method !== "GET" && req.method !== "HEAD" && { body: await req.arrayBuffer() }),
      });
    }
    const sent = req.headers.get("x-goog-api-key") ?? u.searchParams.get("key");
    // The upload URL carries its own session, as Google's does.
    if (!(path.startsWith("/upload/") && u.searchParams.has("upload_id"))) {
      if (sent === null || sent === "") {
        return _error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.");
      }
      if (sent !== key) {
        return _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.");
      }
    }

    const createMatch = /^\/v1beta\/models\/([^/:]+):batchGenerateContent$/.exec(path);
    if (createMatch && req.method === "POST") {
      let body: Record<string, unknown>;
      try {
        body = await req.json();
      } catch {
        return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
      }
      return await create(createMatch[1]!, body);
    }

    if (path === "/upload/v1beta/files" && req.method === "POST") {
      const uploadId = u.searchParams.get("upload_id");
      if (uploadId === null) {
        if (req.headers.get("x-goog-upload-command") !== "start") {
          return _error(400, "INVALID_ARGUMENT", "Only resumable uploads are supported.");
        }
        const meta = ((await req.json()) as { file?: Record<string, unknown> }).file ?? {};
        const session = crypto.randomUUID();
        uploads.set(session, { meta, chunks: [] });
        return new Response(null, {
          headers: {
            "x-goog-upload-url": `${url}/upload/v1beta/files?upload_id=${session}`,
            "x-goog-upload-status": "active",
          },
        });
      }
      const session = uploads.get(uploadId);
      if (session === undefined) return _error(404, "NOT_FOUND", "Unknown upload session.");
      session.chunks.push(new Uint8Array(await req.arrayBuffer()));
      const command = req.headers.get("x-goog-upload-command") ?? "";
      if (!command.includes("finalize")) {
        return new Response(null, { headers: { "x-goog-upload-status": "active" } });
      }
      uploads.delete(uploadId);
      const bytes = new Uint8Array(session.chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const chunk of session.chunks) (bytes.set(chunk, at), at += chunk.length);
      const name = typeof session.meta.name === "string" ? session.meta.name : `files/${id()}`;
      const file: StoredFile = {
        name,
        ...(typeof session.meta.displayName === "string" &&
          { displayName: session.meta.displayName }),
        mimeType: String(session.meta.mimeType ?? "application/octet-stream"),
        bytes,
        createTime: iso(clock()),
        source: "UPLOADED",
      };
      files.set(name, file);
      emit({ type: "upload", name });
      return Response.json({ file: fileJson(file) }, {
        headers: { "x-goog-upload-status": "final" },
      });
    }

    const download = /^\/(?:download\/)?v1beta\/(files\/[^/:]+):download$/.exec(path);
    if (download && req.method === "GET") {
      const file = files.get(download[1]!);
      if (file === undefined) return _error(404, "NOT_FOUND", `File ${download[1]} not found.`);
      emit({ type: "download", name: file.name });
      return new Response(file.bytes.slice(), {
        headers: { "content-type": file.mimeType, "content-length": String(file.bytes.length) },
      });
    }
    const fileMatch = /^\/v1beta\/(files\/[^/:]+)$/.exec(path);
    if (fileMatch) {
      const file = files.get(fileMatch[1]!);
      if (file === undefined) return _error(404, "NOT_FOUND", `File ${fileMatch[1]} not found.`);
      if (req.method === "DELETE") {
        files.delete(file.name);
        return Response.json({});
      }
      emit({ type: "file-get", name: file.name });
      return Response.json(fileJson(file));
    }

    if (path === "/v1beta/batches" && req.method === "GET") {
      // Newest first, as the service lists operations.
      const all = [...jobs].reverse();
      const size = Math.min(Number(u.searchParams.get("pageSize") ?? 50) || 50, 1000);
      const from = Number(u.searchParams.get("pageToken") ?? 0) || 0;
      const page = all.slice(from, from + size);
      emit({ type: "list" });
      return Response.json({
        operations: page.map(operation),
        ...(from + size < all.length && { nextPageToken: String(from + size) }),
      });
    }
    const jobMatch = /^\/v1beta\/(batches\/[^/:]+)(:cancel)?$/.exec(path);
    if (jobMatch) {
      const job = jobs.find((j) => j.name === jobMatch[1]);
      if (job === undefined) {
        return _error(404, "NOT_FOUND", `Batch ${jobMatch[1]} not found.`);
      }
      if (jobMatch[2] === ":cancel" && req.method === "POST") {
        if (!TERMINAL.has(job.state)) setState(job, "BATCH_STATE_CANCELLED");
        emit({ type: "cancel", name: job.name, state: job.state });
        return Response.json({});
      }
      if (req.method === "DELETE") {
        jobs.splice(jobs.indexOf(job), 1);
        emit({ type: "delete", name: job.name });
        return Response.json({});
      }
      if (req.method === "GET") {
        await advance(job);
        emit({ type: "get", name: job.name, state: job.state });
        return Response.json(operation(job));
      }
    }
    return _error(404, "NOT_FOUND", `Requested entity was not found: ${req.method} ${path}`);
  };

  const listening = Promise.withResolvers<void>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: port ?? 0,
    onListen: ({ port }) => {
      url = `http://127.0.0.1:${port}`;
      listening.resolve();
    },
  }, handler);
  await listening.promise;
  return {
    url,
    key,
    gemini,
    jobs,
    events,
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    expireNext(n = 1) {
      expireNext += n;
    },
    failNext(n = 1) {
      failNext += n;
    },
    hold() {
      held = true;
    },
    release() {
      held = false;
    },
    advanceClock(ms) {
      skew += ms;
    },
    async close() {
      await Promise.allSettled(jobs.map((j) => j.processing));
      await server.shutdown();
      await gemini.close();
    },
  };
}

/** JSON with every object's keys sorted: the same request, the same text. */
function _canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      v !== null && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(
          Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]),
        )
        : v,
  );
}

async function _hash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The user text of a REST `GenerateContentRequest`. */
function _texts(request: Record<string, unknown>): string {
  const contents = Array.isArray(request.contents) ? request.contents : [];
  return contents.flatMap((c: { parts?: Array<{ text?: unknown }> }) =>
    (c.parts ?? []).map((p) => typeof p.text === "string" ? p.text : "")
  ).join("\n");
}

function _error(code: number, status: string, message: string): Response {
  return Response.json({ error: { code, message, status } }, { status: code });
}

/** Opens the canonical request hash to tests that compare a client's keys with it. */
export const canonicalHash = (request: Record<string, unknown>): Promise<string> =>
  _hash(_canonical(request));
