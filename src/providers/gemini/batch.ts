/**
 * Gemini's Batch API behind `generateContent` (`--batch-api`): every call the critic, the
 * brief, the refiner and the image generator make goes through {@linkcode Batcher}, which sends
 * each wave as a Gemini batch job per model, billed at half the interactive price, and answers
 * each call as `generateContent` would have, so everything above works and saves unchanged.
 *
 * Inline requests where a job's requests are small text (under 10 MB, half Gemini's 20 MB
 * limit); a JSONL file of `{"key", "request"}` lines through the Files API otherwise, and always
 * for images, whose answers then come back as a file (large inline answers of images are
 * reported to time out). A job is found again by its display name. The SDK's `BatchJob` carries
 * no `batchStats`: failed lines are read from the answers themselves (each has its `error`).
 *
 * @module
 */
import type {
  BatchJob,
  Content,
  GenerateContentConfig,
  GenerateContentResponse,
  GoogleGenAI,
} from "@google/genai/web";
import {
  answeredInBatch,
  type AnswerLine,
  Batcher,
  type BatcherOptions,
  type BatchLine,
  type BatchService,
} from "../../batch_api/batcher.ts";
import type { JobState } from "../../batch_api/ledger.ts";
import { ProviderError } from "../../errors.ts";
import { inlineRequest, restRequest } from "./batch_request.ts";

export { answeredInBatch };

const PROVIDER = "gemini";

/** What Gemini bills a batch call, as a share of the interactive price. */
export const BATCH_PRICE = 0.5;

/** One `generateContent` call. */
export interface GenerateParams {
  model: string;
  contents: Content[];
  config?: GenerateContentConfig;
}

/** What the batcher needs of the Gemini connection. */
export interface GeminiBatchTransport {
  /** The SDK client, loaded on first use. */
  client(): Promise<GoogleGenAI>;
  /** Makes the call at once, at the interactive price. */
  interactive(params: GenerateParams): Promise<GenerateContentResponse>;
  /** `error` as a {@linkcode ProviderError}. */
  classify(error: unknown, operation: string, model: string): unknown;
}

/** Options for {@linkcode GeminiBatcher}. */
export type GeminiBatcherOptions = BatcherOptions;

/** Sends Gemini calls in batch jobs. */
export class GeminiBatcher extends Batcher<GenerateParams, GenerateContentResponse, BatchJob> {
  constructor(transport: GeminiBatchTransport, options: GeminiBatcherOptions = {}) {
    super(geminiBatchService(transport), options);
  }

  /** `models.generateContent`, through the next batch job while the session is open. */
  generateContent(params: GenerateParams): Promise<GenerateContentResponse> {
    return this.call(params);
  }
}

/** Gemini's Batch API and Files API, as {@linkcode Batcher} uses them. */
export function geminiBatchService(
  transport: GeminiBatchTransport,
): BatchService<GenerateParams, GenerateContentResponse, BatchJob> {
  let sdk: Promise<typeof import("@google/genai/web")> | undefined;
  return {
    provider: PROVIDER,
    title: "Gemini",
    inline: true,
    line(params): BatchLine<GenerateParams> {
      return {
        model: params.model.replace(/^models\//, ""),
        body: restRequest(params.contents, params.config),
        images: _asksForImage(params),
        signal: params.config?.abortSignal,
        request: params,
      };
    },
    interactive: (params, signal) =>
      transport.interactive({ ...params, config: { ...params.config, abortSignal: signal } }),
    classify: transport.classify,
    lineError(error, model) {
      const status = typeof error.code === "number" ? error.code : 500;
      const classified = transport.classify(
        { name: "ApiError", status, message: JSON.stringify({ error }) },
        "batch request",
        model,
      );
      return classified instanceof ProviderError
        ? classified
        : new ProviderError(String(error.message ?? "the request failed"), {
          provider: PROVIDER,
          retryable: true,
        });
    },
    async create({ id, model, input, lines }, recordFile) {
      const ai = await transport.client();
      let src: string | ReturnType<typeof inlineRequest>[];
      if (input === "file") {
        const text = lines.map(({ key, line }) => JSON.stringify({ key, request: line.body }))
          .join("\n");
        const file = await ai.files.upload({
          file: new Blob([text, "\n"], { type: "application/jsonl" }),
          config: { mimeType: "application/jsonl", displayName: id },
        });
        if (file.name === undefined) throw new Error("Gemini kept the file without a name");
        await recordFile(file.name);
        src = file.name;
      } else {
        src = lines.map(({ key, line }) =>
          inlineRequest(line.request.contents, line.request.config ?? {}, key)
        );
      }
      return await ai.batches.create({ model, src, config: { displayName: id } });
    },
    nameOf: (job) => job.name,
    stateOf,
    async get(name, signal) {
      const ai = await transport.client();
      return await ai.batches.get({ name, ...(signal && { config: { abortSignal: signal } }) });
    },
    list: async () => await (await transport.client()).batches.list({ config: { pageSize: 100 } }),
    retakeIdOf: (job) => job.displayName,
    async cancel(name, signal) {
      const ai = await transport.client();
      await ai.batches.cancel({ name, config: { abortSignal: signal } });
      return await ai.batches.get({ name, config: { abortSignal: signal } });
    },
    async answers(job, keys) {
      const inline = job.dest?.inlinedResponses;
      if (inline !== undefined) {
        return inline.map((r, i): string => {
          const line: AnswerLine = {
            key: r.metadata?.key ?? keys[i]!,
            ...(r.error !== undefined
              ? { error: r.error as NonNullable<AnswerLine["error"]> }
              : { response: r.response as unknown as Record<string, unknown> }),
          };
          return JSON.stringify(line);
        }).join("\n") + "\n";
      }
      if (job.dest?.fileName === undefined) return undefined;
      // Gemini's lines are already `{"key", "response"}` or `{"key", "error"}`.
      const response = await _download(await transport.client(), job.dest.fileName);
      if (response.body === null) throw new Error("the answers file is empty");
      return response.body;
    },
    async toAnswer(response) {
      const { GenerateContentResponse } = await (sdk ??= import("@google/genai/web"));
      return Object.assign(new GenerateContentResponse(), response);
    },
  };
}

/** The job's state as recorded: the transient states count as the one they belong to. */
function stateOf(job: BatchJob): JobState {
  switch (String(job.state)) {
    case "JOB_STATE_SUCCEEDED":
      return "JOB_STATE_SUCCEEDED";
    case "JOB_STATE_FAILED":
      return "JOB_STATE_FAILED";
    case "JOB_STATE_CANCELLED":
      return "JOB_STATE_CANCELLED";
    case "JOB_STATE_EXPIRED":
      return "JOB_STATE_EXPIRED";
    case "JOB_STATE_RUNNING":
    case "JOB_STATE_CANCELLING":
    case "JOB_STATE_UPDATING":
    case "JOB_STATE_PAUSED":
      return "JOB_STATE_RUNNING";
    default:
      return "JOB_STATE_PENDING";
  }
}

/**
 * Whether a call asks for an image: its job takes file input, so its answers (megabytes each)
 * come back as a file. Images sent (a critic's small copy, an edit's source) only count by size.
 */
function _asksForImage(params: GenerateParams): boolean {
  const modalities = params.config?.responseModalities ?? [];
  return modalities.some((m) => String(m).toUpperCase() === "IMAGE");
}

/**
 * A file's bytes, asked for as the Node SDK's `files.download` asks (the web build the provider
 * uses has no download): `GET files/{id}:download?alt=media`, through the SDK's own client.
 */
async function _download(ai: GoogleGenAI, name: string): Promise<Response> {
  const api = (ai as unknown as {
    apiClient: { request(r: Record<string, unknown>): Promise<{ responseInternal: Response }> };
  }).apiClient;
  const response = await api.request({
    path: `files/${name.replace(/^files\//, "")}:download`,
    httpMethod: "GET",
    queryParams: { alt: "media" },
  });
  return response.responseInternal;
}
