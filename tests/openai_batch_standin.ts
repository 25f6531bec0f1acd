/**
 * A local stand-in for OpenAI's Batch API and Files API, in front of the Chat Completions
 * stand-in (`openai_standin.ts`), speaking the HTTP protocol the `openai` SDK's `batches` and
 * `files` use. Built from OpenAI's reference (platform.openai.com/docs/guides/batch and
 * /docs/api-reference/batch, /files) and the SDK's types (`openai` 7 `resources/batches.d.ts`,
 * `resources/files.d.ts`):
 *
 * - `POST /v1/files` (multipart `file`, `purpose=batch`) keeps a JSONL file of
 *   `{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}` lines (one model
 *   per file, unique `custom_id`s); `GET /v1/files/{id}` and `/v1/files/{id}/content`.
 * - `POST /v1/batches` (`input_file_id`, `endpoint`, `completion_window: "24h"`, `metadata`)
 *   answers a `Batch` (`validating`); `GET /v1/batches/{id}` moves it on as the client polls
 *   (`validating` → `in_progress` → `finalizing` → `completed`, `pollsPerState` gets each), with
 *   `request_counts`; `GET /v1/batches` lists newest first (`after`, `limit`, `has_more`);
 *   `POST /v1/batches/{id}/cancel` (`cancelling`, then `cancelled`).
 * - Each line is answered by the Chat Completions stand-in: answers go to `output_file_id` as
 *   `{"id", "custom_id", "response": {"status_code": 200, "request_id", "body"}, "error": null}`;
 *   failures to `error_file_id`, with their status code and error body. A line whose text holds
 *   `[batch:fail-once]` fails (500) the first time its content is answered in a job.
 * - {@linkcode OpenAIBatchStandIn.hold} keeps every batch `validating` until `release()`.
 * - {@linkcode OpenAIBatchStandIn.expireNext}: the job answers its first half, then expires: the
 *   rest go to the error file as `batch_expired`, as OpenAI reports a window that ran out.
 *
 * @module
 */
import { type OpenAIStandIn, startOpenAIStandIn } from "./openai_standin.ts";

/** Options for {@linkcode startOpenAIBatchStandIn}. */
export interface OpenAIBatchStandInOptions {
  key?: string;
  /** `GET /v1/batches/{id}` calls a batch answers in each of its states. @default {1} */
  pollsPerState?: number;
}

/** One batch as the stand-in holds it. */
export interface OpenAIBatchRecord {
  id: string;
  status: string;
  model: string;
  metadata: Record<string, string> | null;
  /** Each line's `custom_id`, in order. */
  customIds: string[];
}

/** A running batch stand-in. */
export interface OpenAIBatchStandIn {
  /** API root for the SDK's `baseURL`, `/v1` included. */
  url: string;
  key: string;
  /** The Chat Completions stand-in behind it. */
  chat: OpenAIStandIn;
  batches: OpenAIBatchRecord[];
  /** Every call, in order: `upload`, `create`, `get`, `list`, `cancel`, `content`. */
  events: Array<{ type: string; id?: string }>;
  /** Calls `listener` with each event as it happens; returns what stops it. */
  onEvent(listener: (event: { type: string; id?: string }) => void): () => void;
  /** Keeps every batch `validating` until {@linkcode OpenAIBatchStandIn.release}. */
  hold(): void;
  release(): void;
  expireNext(n?: number): void;
  close(): Promise<void>;
}

interface Batch extends OpenAIBatchRecord {
  inputFileId: string;
  lines: Array<{ custom_id: string; body: Record<string, unknown> }>;
  polls: number;
  createdAt: number;
  expire: boolean;
  processing?: Promise<void>;
  outputFileId?: string | undefined;
  errorFileId?: string | undefined;
  counts: { total: number; completed: number; failed: number };
}

const ENDED = new Set(["completed", "failed", "expired", "cancelled"]);

/** Starts the stand-in (and the Chat Completions stand-in behind it) on 127.0.0.1. */
export async function startOpenAIBatchStandIn(
  options: OpenAIBatchStandInOptions = {},
): Promise<OpenAIBatchStandIn> {
  const chat = await startOpenAIStandIn({ ...(options.key && { key: options.key }) });
  const key = chat.key;
  const polls = options.pollsPerState ?? 1;
  const files = new Map<string, { bytes: Uint8Array; filename: string; purpose: string }>();
  const batches: Batch[] = [];
  const events: OpenAIBatchStandIn["events"] = [];
  const listeners = new Set<(event: { type: string; id?: string }) => void>();
  let held = false;
  const emit = (event: { type: string; id?: string }) => {
    events.push(event);
    for (const listener of [...listeners]) listener(event);
  };
  const failedOnce = new Set<string>();
  let expireNext = 0;
  let counter = 0;
  const id = (prefix: string) =>
    `${prefix}_${(++counter).toString(36)}${crypto.randomUUID().slice(0, 8)}`;
  const now = () => Math.floor(Date.now() / 1000);

  const fileJson = (fileId: string) => {
    const file = files.get(fileId)!;
    return {
      id: fileId,
      object: "file",
      bytes: file.bytes.length,
      created_at: now(),
      filename: file.filename,
      purpose: file.purpose,
      status: "processed",
    };
  };
  const batchJson = (b: Batch) => ({
    id: b.id,
    object: "batch",
    endpoint: "/v1/chat/completions",
    errors: null,
    input_file_id: b.inputFileId,
    completion_window: "24h",
    status: b.status,
    output_file_id: b.outputFileId ?? null,
    error_file_id: b.errorFileId ?? null,
    created_at: b.createdAt,
    model: b.model,
    request_counts: b.counts,
    metadata: b.metadata,
  });
  const keep = (lines: unknown[], filename: string): string | undefined => {
    if (lines.length === 0) return undefined;
    const fileId = id("file");
    files.set(fileId, {
      bytes: new TextEncoder().encode(lines.map((l) => JSON.stringify(l)).join("\n") + "\n"),
      filename,
      purpose: "batch_output",
    });
    return fileId;
  };

  /** Answers every line through the chat stand-in; an expiring batch answers half. */
  const run = async (b: Batch) => {
    const output: unknown[] = [];
    const errors: unknown[] = [];
    const answered = b.expire ? Math.ceil(b.lines.length / 2) : b.lines.length;
    for (const [i, line] of b.lines.entries()) {
      if (i >= answered) {
        errors.push({
          id: id("batch_req"),
          custom_id: line.custom_id,
          response: null,
          error: {
            code: "batch_expired",
            message: "This request could not be executed before the completion window expired.",
          },
        });
        continue;
      }
      const text = JSON.stringify(line.body);
      const content = text;
      if (text.includes("[batch:fail-once]") && !failedOnce.has(content)) {
        failedOnce.add(content);
        errors.push({
          id: id("batch_req"),
          custom_id: line.custom_id,
          response: {
            status_code: 500,
            request_id: id("req"),
            body: {
              error: { message: "The server had an error.", type: "server_error", code: null },
            },
          },
          error: null,
        });
        b.counts.failed++;
        continue;
      }
      const response = await fetch(`${chat.url}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: text,
      });
      const body = await response.json();
      const entry = {
        id: id("batch_req"),
        custom_id: line.custom_id,
        response: { status_code: response.status, request_id: id("req"), body },
        error: null,
      };
      if (response.ok) (output.push(entry), b.counts.completed++);
      else (errors.push(entry), b.counts.failed++);
    }
    b.outputFileId = keep(output, `batch_${b.id}_output.jsonl`);
    b.errorFileId = keep(errors, `batch_${b.id}_error.jsonl`);
  };

  const advance = async (b: Batch) => {
    b.polls++;
    if (ENDED.has(b.status) || b.polls <= polls) return;
    if (held && b.status === "validating") return;
    b.polls = 1;
    switch (b.status) {
      case "validating":
        b.status = "in_progress";
        b.processing = run(b);
        break;
      case "in_progress":
        await b.processing;
        b.status = b.expire ? "expired" : "finalizing";
        break;
      case "finalizing":
        b.status = "completed";
        break;
      case "cancelling":
        b.status = "cancelled";
        break;
    }
  };

  const error = (status: number, message: string, code: string | null = null) =>
    Response.json({ error: { message, type: "invalid_request_error", param: null, code } }, {
      status,
    });

  let url = "";
  const handler = async (req: Request): Promise<Response> => {
    const u = new URL(req.url);
    const path = u.pathname;
    if (!/^\/v1\/(?:files|batches)\b/.test(path)) {
      const headers = new Headers(req.headers);
      headers.delete("host");
      return await fetch(`${chat.url.slice(0, -3)}${path}${u.search}`, {
        method: req.method,
        headers,
        ...(req.method !== "GET" && req.method !== "HEAD" && { body: await req.arrayBuffer() }),
      });
    }
    if (req.headers.get("authorization") !== `Bearer ${key}`) {
      return error(401, "Incorrect API key provided.", "invalid_api_key");
    }
    if (path === "/v1/files" && req.method === "POST") {
      const form = await req.formData();
      const file = form.get("file");
      if (!(file instanceof File) || form.get("purpose") !== "batch") {
        return error(400, "A file with purpose 'batch' is required.");
      }
      const fileId = id("file");
      files.set(fileId, {
        bytes: new Uint8Array(await file.arrayBuffer()),
        filename: file.name,
        purpose: "batch",
      });
      emit({ type: "upload", id: fileId });
      return Response.json(fileJson(fileId));
    }
    const fileMatch = /^\/v1\/files\/([^/]+)(\/content)?$/.exec(path);
    if (fileMatch && req.method === "GET") {
      const file = files.get(fileMatch[1]!);
      if (file === undefined) return error(404, `No such File object: ${fileMatch[1]}`);
      if (fileMatch[2] === undefined) return Response.json(fileJson(fileMatch[1]!));
      emit({ type: "content", id: fileMatch[1]! });
      return new Response(file.bytes.slice(), {
        headers: { "content-type": "application/octet-stream" },
      });
    }
    if (path === "/v1/batches" && req.method === "POST") {
      const body = await req.json() as Record<string, unknown>;
      if (body.endpoint !== "/v1/chat/completions" || body.completion_window !== "24h") {
        return error(400, "endpoint must be /v1/chat/completions and completion_window 24h.");
      }
      const input = files.get(String(body.input_file_id));
      if (input === undefined) return error(400, `No such File object: ${body.input_file_id}`);
      let lines: Batch["lines"];
      try {
        lines = new TextDecoder().decode(input.bytes).split("\n").filter((l) => l.trim() !== "")
          .map((l) => JSON.parse(l));
      } catch {
        return error(400, "The input file is not valid JSONL.");
      }
      const ids = new Set(lines.map((l) => l.custom_id));
      const models = new Set(lines.map((l) => String(l.body?.model)));
      if (ids.size !== lines.length || models.size !== 1) {
        return error(400, "custom_id must be unique, and every request must use the same model.");
      }
      const b: Batch = {
        id: id("batch"),
        status: "validating",
        model: [...models][0]!,
        metadata: (body.metadata ?? null) as Record<string, string> | null,
        customIds: lines.map((l) => l.custom_id),
        inputFileId: String(body.input_file_id),
        lines,
        polls: 0,
        createdAt: now(),
        expire: expireNext > 0 && expireNext-- > 0,
        counts: { total: lines.length, completed: 0, failed: 0 },
      };
      batches.push(b);
      emit({ type: "create", id: b.id });
      return Response.json(batchJson(b));
    }
    if (path === "/v1/batches" && req.method === "GET") {
      const all = [...batches].reverse();
      const after = u.searchParams.get("after");
      const from = after === null ? 0 : all.findIndex((b) => b.id === after) + 1;
      const limit = Number(u.searchParams.get("limit") ?? 20) || 20;
      const page = all.slice(from, from + limit);
      emit({ type: "list" });
      return Response.json({
        object: "list",
        data: page.map(batchJson),
        first_id: page[0]?.id ?? null,
        last_id: page.at(-1)?.id ?? null,
        has_more: from + limit < all.length,
      });
    }
    const batchMatch = /^\/v1\/batches\/([^/]+)(\/cancel)?$/.exec(path);
    if (batchMatch) {
      const b = batches.find((x) => x.id === batchMatch[1]);
      if (b === undefined) return error(404, `No batch found with id '${batchMatch[1]}'.`);
      if (batchMatch[2] !== undefined && req.method === "POST") {
        if (!ENDED.has(b.status)) (b.status = "cancelling", b.polls = polls);
        emit({ type: "cancel", id: b.id });
        return Response.json(batchJson(b));
      }
      if (req.method === "GET") {
        await advance(b);
        emit({ type: "get", id: b.id });
        return Response.json(batchJson(b));
      }
    }
    return error(404, `Invalid URL (${req.method} ${path})`);
  };

  const listening = Promise.withResolvers<void>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => {
      url = `http://127.0.0.1:${port}/v1`;
      listening.resolve();
    },
  }, handler);
  await listening.promise;
  return {
    url,
    key,
    chat,
    batches,
    events,
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    hold() {
      held = true;
    },
    release() {
      held = false;
    },
    expireNext(n = 1) {
      expireNext += n;
    },
    async close() {
      await Promise.allSettled(batches.map((b) => b.processing));
      await server.shutdown();
      await chat.close();
    },
  };
}
