/**
 * What a txt2img or img2img answer holds: its image (base64, in the server's own
 * `samples_format`), decoded and checked, and the parameters it was made with (`info`).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { Buffer } from "node:buffer";
import sharp from "sharp";
import { ProviderError } from "../../errors.ts";
import type { GeneratedImage, GenerateRequest } from "../provider.ts";

const PROVIDER = "a1111";
const log = getLogger(["retake", "a1111"]);

/** The answer's image, decoded and checked, with what its `info` says of it. */
export async function imageOf(
  answer: unknown,
  request: GenerateRequest,
  taskId: string,
  elapsedMs: number,
): Promise<GeneratedImage> {
  const images = (answer as { images?: unknown } | undefined)?.images;
  const first = Array.isArray(images) ? images[0] : undefined;
  if (typeof first !== "string" || first === "") {
    throw new ProviderError(
      `Cannot use AUTOMATIC1111's answer as it holds no image (task ${taskId})`,
      { provider: PROVIDER, retryable: false, requestId: taskId },
    );
  }
  let bytes: Uint8Array = Buffer.from(first.replace(/^data:image\/\w+;base64,/, ""), "base64");
  let meta;
  try {
    meta = await sharp(bytes).metadata();
  } catch (error) {
    throw new ProviderError(
      `Cannot use AUTOMATIC1111's image as it does not decode (task ${taskId}): ${
        (error as Error).message
      }`,
      { provider: PROVIDER, retryable: true, requestId: taskId, cause: error },
    );
  }
  let format = meta.format === "jpeg" ? "jpeg" as const : "png" as const;
  if (meta.format !== "png" && meta.format !== "jpeg") {
    // The server's own `samples_format` (webp, say): saved as what retake asks for.
    format = request.format;
    const converted = format === "png"
      ? sharp(bytes).png()
      : sharp(bytes).flatten({ background: "#ffffff" }).jpeg({ quality: 92 });
    bytes = new Uint8Array(await converted.toBuffer());
  }
  const info = _info((answer as { info?: unknown }).info);
  const seed = typeof info.seed === "number" ? info.seed : request.seed;
  const modelName = typeof info.sd_model_name === "string" ? info.sd_model_name : undefined;
  log.debug("AUTOMATIC1111 task {requestId} of {promptId} done in {durationMs} ms", {
    requestId: taskId,
    promptId: request.spec.id,
    durationMs: Math.round(elapsedMs),
    seed,
    model: modelName,
  });
  return {
    data: bytes,
    format,
    width: meta.width ?? request.width,
    height: meta.height ?? request.height,
    seed,
    model: request.model,
    ...(modelName !== undefined && { modelVersion: modelName }),
    requestId: taskId,
    costUsd: 0,
    inferenceMs: Math.round(elapsedMs),
  };
}

/** The `info` of an answer: a JSON text of the parameters the image was made with. */
function _info(info: unknown): Record<string, unknown> {
  if (typeof info !== "string") {
    return info !== null && typeof info === "object" ? info as Record<string, unknown> : {};
  }
  try {
    const parsed = JSON.parse(info);
    return parsed !== null && typeof parsed === "object" ? parsed : {};
  } catch {
    return {};
  }
}
