/**
 * OpenAI's Batch API behind `chat.completions.create` (`--batch-api`, critic and refiner on
 * api.openai.com): {@linkcode Batcher} sends each wave as one batch per model, a JSONL file of
 * `{"custom_id", "method", "url", "body"}` lines uploaded through the Files API, with a 24-hour
 * window at half the interactive price; answers come back in the batch's output file, failures in
 * its error file. A batch is found again by `metadata.retake_job`. An expired batch keeps what
 * it answered; the rest goes again.
 *
 * @module
 */
import type OpenAI from "openai";
import type { Batch } from "openai/resources/batches";
import type {
  ChatCompletion,
  ChatCompletionCreateParamsNonStreaming,
} from "openai/resources/chat/completions";
import {
  answeredInBatch,
  type AnswerLine,
  Batcher,
  type BatcherOptions,
  type BatchService,
} from "../../batch_api/batcher.ts";
import type { JobState } from "../../batch_api/ledger.ts";
import { ProviderError } from "../../errors.ts";

export { answeredInBatch };

const PROVIDER = "openai";
const ENDPOINT = "/v1/chat/completions";

/** What OpenAI bills a batch call, as a share of the interactive price. */
export const OPENAI_BATCH_PRICE = 0.5;

/** Bytes of requests in one batch's file, at most: OpenAI takes up to 200 MB. */
export const OPENAI_MAX_FILE_BYTES = 150 * 1024 * 1024;

/** One chat completion call. */
export interface ChatCall {
  body: ChatCompletionCreateParamsNonStreaming;
  signal: AbortSignal;
}

/** What the batcher needs of the OpenAI client. */
export interface OpenAIBatchTransport {
  client(): Promise<OpenAI>;
  toFile(
    bytes: Uint8Array,
    name: string,
  ): Promise<Parameters<OpenAI["files"]["create"]>[0]["file"]>;
  /** `error` as a {@linkcode ProviderError}. */
  classify(error: unknown, operation: string): unknown;
}

/** Sends OpenAI chat completions in batches. */
export class OpenAIBatcher extends Batcher<ChatCall, ChatCompletion, Batch> {
  constructor(transport: OpenAIBatchTransport, options: BatcherOptions = {}) {
    super(openaiBatchService(transport), { maxFileBytes: OPENAI_MAX_FILE_BYTES, ...options });
  }
}

/** OpenAI's Batch API and Files API, as {@linkcode Batcher} uses them. */
export function openaiBatchService(
  transport: OpenAIBatchTransport,
): BatchService<ChatCall, ChatCompletion, Batch> {
  const content = async (fileId: string | null | undefined): Promise<string> =>
    fileId ? await (await (await transport.client()).files.content(fileId)).text() : "";
  return {
    provider: PROVIDER,
    title: "OpenAI",
    inline: false,
    line: (call) => ({
      model: call.body.model,
      body: call.body as unknown as Record<string, unknown>,
      images: false,
      signal: call.signal,
      request: call,
    }),
    interactive: async (call, signal) =>
      await (await transport.client()).chat.completions.create(call.body, { signal }),
    classify: (error, operation) => transport.classify(error, operation),
    lineError(error) {
      const status = typeof error.code === "number" ? error.code : undefined;
      return new ProviderError(
        `OpenAI's batch answered the request with an error${
          status !== undefined ? ` (HTTP ${status})` : ""
        }: ${error.message ?? "no message"}`,
        {
          provider: PROVIDER,
          // A refusal of the request itself (4xx but 408 and 429) would come back alike.
          retryable: status === undefined || status === 408 || status === 429 || status >= 500,
          ...(status !== undefined && { status }),
        },
      );
    },
    async create({ id, lines }, recordFile) {
      const client = await transport.client();
      const text =
        lines.map(({ key, line }) =>
          JSON.stringify({ custom_id: key, method: "POST", url: ENDPOINT, body: line.body })
        ).join("\n") + "\n";
      const file = await client.files.create({
        file: await transport.toFile(new TextEncoder().encode(text), `${id}.jsonl`),
        purpose: "batch",
      });
      await recordFile(file.id);
      return await client.batches.create({
        input_file_id: file.id,
        endpoint: ENDPOINT,
        completion_window: "24h",
        metadata: { retake_job: id },
      });
    },
    nameOf: (batch) => batch.id,
    stateOf,
    get: async (name, signal) =>
      await (await transport.client()).batches.retrieve(name, signal ? { signal } : {}),
    list: async () => (await transport.client()).batches.list({ limit: 100 }),
    retakeIdOf: (batch) => batch.metadata?.retake_job,
    async cancel(name, signal) {
      const client = await transport.client();
      await client.batches.cancel(name, { signal });
      return await client.batches.retrieve(name, { signal });
    },
    async answers(batch) {
      if (!batch.output_file_id && !batch.error_file_id) return undefined;
      const lines: string[] = [];
      for (
        const text of [await content(batch.output_file_id), await content(batch.error_file_id)]
      ) {
        for (const raw of text.split("\n")) {
          if (raw.trim() === "") continue;
          const line = JSON.parse(raw) as {
            custom_id?: string;
            response?: { status_code?: number; body?: Record<string, unknown> } | null;
            error?: { code?: string; message?: string } | null;
          };
          const status = line.response?.status_code;
          const body = line.response?.body;
          const answer: AnswerLine = {
            ...(line.custom_id !== undefined && { key: line.custom_id }),
          };
          if (status === 200 && body !== undefined) answer.response = body;
          else {
            const apiError = (body?.error ?? line.error ?? {}) as {
              message?: string;
              code?: unknown;
            };
            answer.error = {
              code: status ?? String(line.error?.code ?? "error"),
              message: String(apiError.message ?? "no answer"),
            };
          }
          lines.push(JSON.stringify(answer));
        }
      }
      return lines.join("\n") + "\n";
    },
    toAnswer: (response) => Promise.resolve(structuredClone(response) as unknown as ChatCompletion),
  };
}

function stateOf(batch: Batch): JobState {
  switch (batch.status) {
    case "validating":
      return "JOB_STATE_PENDING";
    case "completed":
      return "JOB_STATE_SUCCEEDED";
    case "failed":
      return "JOB_STATE_FAILED";
    case "expired":
      return "JOB_STATE_EXPIRED";
    case "cancelled":
      return "JOB_STATE_CANCELLED";
    default:
      return "JOB_STATE_RUNNING";
  }
}
