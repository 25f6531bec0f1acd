/**
 * What a finished ComfyUI prompt gave: its image, fetched from `/view`, with the time it waited
 * and the time the GPU spent; or the error it ended with.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { downloadImage } from "../download.ts";
import { ProviderError } from "../../errors.ts";
import { escapeControls } from "../../util/terminal_text.ts";
import { withImageSize } from "../_image_size.ts";
import type { GeneratedImage, GenerateRequest } from "../provider.ts";
import type { ComfyApi, ComfyHistoryEntry, ComfyImageRef } from "./api.ts";
import type { ComfyJob } from "./job.ts";
import { modelFilesOf, type Workflow, type WorkflowGraph } from "./workflow.ts";

const PROVIDER = "comfyui";
const log = getLogger(["retake", "comfyui"]);

/** Where and how a finished prompt's image is fetched. */
export interface ResultSource {
  api: ComfyApi;
  /** The node whose images are the result, if set. */
  outputNode: string | undefined;
  maxBytes: number;
  timeoutMs: number;
  fetch: typeof fetch;
}

/** The image of a finished prompt, or the error it ended with. */
export async function deliver(
  source: ResultSource,
  job: ComfyJob,
  entry: ComfyHistoryEntry,
  workflow: Workflow,
  graph: WorkflowGraph,
  request: GenerateRequest,
  signal: AbortSignal,
): Promise<GeneratedImage> {
  const requestId = job.id!;
  const image = _savedImage(entry, workflow, source.outputNode, requestId);
  const download = await downloadImage(source.api.viewUrl(image), {
    provider: PROVIDER,
    maxBytes: source.maxBytes,
    allowedOrigins: [source.api.origin],
    signal,
    timeoutMs: source.timeoutMs,
    fetch: source.fetch,
    logger: log,
  });
  const sized = await withImageSize(download.data);
  const { queueMs, gpuMs } = job.timings(entry);
  const files = modelFilesOf(graph);
  log.debug("ComfyUI prompt {requestId} done: queued {queueMs} ms, GPU {inferenceMs} ms", {
    requestId,
    promptId: request.spec.id,
    queueMs,
    inferenceMs: gpuMs,
    image: image.filename,
  });
  return {
    data: sized.data,
    format: download.format,
    width: sized.size?.width ?? request.width,
    height: sized.size?.height ?? request.height,
    // Recorded only where the workflow took it: else the workflow's own seed made the image.
    ...(workflow.targets.has("seed") && { seed: request.seed }),
    model: request.model,
    ...(files.length > 0 && { modelVersion: files.join(", ") }),
    requestId,
    costUsd: 0,
    ...(queueMs !== undefined && { queueMs: Math.round(queueMs) }),
    ...(gpuMs !== undefined && gpuMs >= 0 && { inferenceMs: Math.round(gpuMs) }),
  };
}

/** The image a finished prompt saved; throws what it ended with when it saved none. */
function _savedImage(
  entry: ComfyHistoryEntry,
  workflow: Workflow,
  outputNode: string | undefined,
  requestId: string,
): ComfyImageRef {
  if (entry.error !== undefined) {
    const e = entry.error;
    throw new ProviderError(
      `ComfyUI failed prompt ${requestId} at node '${escapeControls(e.node ?? "?")}'${
        e.nodeType ? ` (${escapeControls(e.nodeType)})` : ""
      }: ${e.exceptionType ? `${escapeControls(e.exceptionType)}: ` : ""}${
        escapeControls(e.message.slice(0, 300))
      }`,
      { provider: PROVIDER, retryable: false, requestId },
    );
  }
  if (entry.interrupted || entry.status === "error") {
    throw new ProviderError(
      `ComfyUI stopped prompt ${requestId} before it made an image (interrupted on the server)`,
      { provider: PROVIDER, retryable: true, requestId },
    );
  }
  const image = _chooseImage(entry, workflow, outputNode);
  if (image === undefined) {
    throw new ProviderError(
      `Cannot use ComfyUI's result for prompt ${requestId} as the workflow '${
        escapeControls(workflow.path)
      }' saved no image${
        outputNode ? ` at node '${escapeControls(outputNode)}'` : ""
      }: end it with a SaveImage node, or set comfyui.outputNode to the node that saves the image`,
      { provider: PROVIDER, retryable: false, fatal: true, requestId },
    );
  }
  return image;
}

/**
 * The image that is the result: the output node's, else the first node's (in id order) that
 * saved one to the output folder, else any node's (a PreviewImage's temp file).
 */
function _chooseImage(
  entry: ComfyHistoryEntry,
  workflow: Workflow,
  outputNode: string | undefined,
): ComfyImageRef | undefined {
  if (outputNode !== undefined) return entry.outputs[outputNode]?.[0];
  const nodes = Object.keys(entry.outputs).sort((a, b) =>
    a.localeCompare(b, "en", { numeric: true })
  );
  const inWorkflow = nodes.filter((n) => n in workflow.graph);
  const ordered = [...inWorkflow, ...nodes.filter((n) => !inWorkflow.includes(n))];
  for (const type of ["output", undefined]) {
    for (const node of ordered) {
      const image = entry.outputs[node]!.find((i) => type === undefined || i.type === type);
      if (image !== undefined) return image;
    }
  }
  return undefined;
}
