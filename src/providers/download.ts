/**
 * Fetches a generated image for saving: only from `https:` URLs (plus explicitly trusted origins
 * such as a local stand-in) or inline `data:` URIs, only image content, and as a byte-capped
 * stream so it goes straight to disk and a runaway response cannot fill memory.
 *
 * Failures are {@linkcode ProviderError}s so the pipeline's backoff can tell a flaky transfer
 * (retryable) from a response that will never be an image (final).
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { ProviderError } from "../errors.ts";
import type { ImageFormat } from "./provider.ts";

const defaultLog = getLogger(["retake", "download"]);

/** Options for {@linkcode downloadImage}. */
export interface DownloadOptions {
  /** Provider name put on errors, e.g. `fal`. */
  provider: string;
  /** Largest body accepted, in bytes; a larger one fails the stream. @default {20971520} */
  maxBytes?: number;
  /**
   * Origins allowed besides any `https:` URL, e.g. `http://127.0.0.1:8080` for a stand-in.
   * @default {[]}
   */
  allowedOrigins?: readonly string[];
  /** Cancels the transfer, body included. */
  signal?: AbortSignal;
  /**
   * Deadline for the whole transfer, body included, in ms; running over fails as retryable.
   * @default {120000}
   */
  timeoutMs?: number;
  /** Redirects followed (each target is checked like the first URL). @default {5} */
  maxRedirects?: number;
  /** The fetch to use. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Where each HTTP call is logged at debug level. @default {getLogger(["retake", "download"])} */
  logger?: Logger;
}

/** A downloaded image, still streaming. */
export interface DownloadedImage {
  /** The body, capped at `maxBytes`; consume or cancel it. */
  data: ReadableStream<Uint8Array>;
  format: ImageFormat;
  /** `Content-Length` (or decoded size of a `data:` URI), where known. */
  bytes?: number;
}

/** 20 MiB: a 4 MP PNG is well under this; anything bigger is not what we asked for. */
export const DEFAULT_MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024;

const CONTENT_TYPES: Record<string, ImageFormat> = {
  "image/png": "png",
  "image/jpeg": "jpeg",
  "image/jpg": "jpeg",
  "image/pjpeg": "jpeg",
};

/**
 * Opens a generated image for streaming to disk.
 *
 * @example
 * ```ts
 * import { downloadImage } from "./download.ts";
 * const png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
 * const image = await downloadImage(png, { provider: "example" });
 * const bytes = new Uint8Array(await new Response(image.data).arrayBuffer());
 * if (image.format !== "png" || bytes.length !== 70) throw new Error("expected a 1×1 PNG");
 * ```
 */
export async function downloadImage(
  url: string,
  options: DownloadOptions,
): Promise<DownloadedImage> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const provider = options.provider;
  if (!(maxBytes > 0) || !(timeoutMs > 0)) {
    throw new RangeError(
      `Cannot download as 'maxBytes' and 'timeoutMs' must be positive: current values are ${maxBytes} and ${timeoutMs}`,
    );
  }
  if (url.startsWith("data:")) return _fromDataUri(url, maxBytes, provider);

  const allowed = new Set((options.allowedOrigins ?? []).map((o) => new URL(o).origin));
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(new DOMException(`Download timed out after ${timeoutMs} ms`, "TimeoutError")),
    timeoutMs,
  );
  const signal = options.signal
    ? AbortSignal.any([options.signal, deadline.signal])
    : deadline.signal;
  // Translates whatever ended the transfer into the error the pipeline should see.
  const classify = (error: unknown): unknown => {
    if (options.signal?.aborted) return options.signal.reason ?? error;
    if (error instanceof ProviderError) return error;
    if (deadline.signal.aborted) {
      return _fail(
        provider,
        `Cannot download the image as it took longer than ${timeoutMs} ms`,
        true,
        {
          cause: error,
        },
      );
    }
    return _fail(
      provider,
      `Cannot download the image as the transfer failed: ${(error as Error)?.message ?? error}`,
      true,
      { cause: error },
    );
  };

  let settled = false;
  const finish = () => {
    settled = true;
    clearTimeout(timer);
  };
  try {
    const { response, host } = await _follow(url, allowed, options, signal);
    const { format, length } = await _checkAnswer(response, host, maxBytes, provider);
    if (response.body === null) {
      throw _fail(provider, "Cannot download the image as the body is empty", true);
    }
    const data = limitBytes(response.body, maxBytes, {
      provider,
      classify,
      onEnd: finish,
    });
    return { data, format, ...(Number.isFinite(length) && { bytes: length }) };
  } catch (error) {
    if (!settled) finish();
    throw classify(error);
  }
}

function _fail(
  provider: string,
  message: string,
  retryable: boolean,
  extra: { status?: number; cause?: unknown } = {},
): ProviderError {
  return new ProviderError(message, { provider, retryable, ...extra });
}

/**
 * GETs `url`, following redirects (each target checked like the first URL), and logs each
 * call. Returns the final answer and the host that gave it.
 */
async function _follow(
  url: string,
  allowed: Set<string>,
  options: DownloadOptions,
  signal: AbortSignal,
): Promise<{ response: Response; host: string }> {
  const provider = options.provider;
  const doFetch = options.fetch ?? globalThis.fetch;
  const log = options.logger ?? defaultLog;
  let current = _checkUrl(url, allowed, provider);
  for (let redirects = 0;; redirects++) {
    const started = performance.now();
    const response = await doFetch(current.href, { redirect: "manual", signal });
    log.debug("GET {host}{path}: {status} in {durationMs} ms", {
      method: "GET",
      host: current.host,
      path: current.pathname,
      status: response.status,
      durationMs: Math.round(performance.now() - started),
    });
    const location = response.headers.get("location");
    if (response.status < 300 || response.status >= 400 || location === null) {
      return { response, host: current.host };
    }
    await response.body?.cancel();
    if (redirects >= (options.maxRedirects ?? 5)) {
      throw _fail(
        provider,
        `Cannot download the image as it redirected more than ${redirects} times`,
        false,
      );
    }
    current = _checkUrl(new URL(location, current).href, allowed, provider);
  }
}

/**
 * The image's format and declared length; throws (the body cancelled) for an answer that is
 * an error, not an image, or larger than `maxBytes`.
 */
async function _checkAnswer(
  response: Response,
  host: string,
  maxBytes: number,
  provider: string,
): Promise<{ format: ImageFormat; length: number }> {
  if (!response.ok) {
    await response.body?.cancel();
    const retryable = response.status === 408 || response.status === 429 ||
      response.status >= 500;
    throw _fail(
      provider,
      `Cannot download the image from ${host} as it answered HTTP ${response.status}`,
      retryable,
      { status: response.status },
    );
  }
  const contentType = (response.headers.get("content-type") ?? "").split(";")[0]!.trim()
    .toLowerCase();
  const format = CONTENT_TYPES[contentType];
  if (format === undefined) {
    await response.body?.cancel();
    throw _fail(
      provider,
      `Cannot use the downloaded file as an image as its content type is '${
        contentType || "missing"
      }': expected image/png or image/jpeg`,
      false,
    );
  }
  const length = Number(response.headers.get("content-length") ?? NaN);
  if (length > maxBytes) {
    await response.body?.cancel();
    throw _fail(
      provider,
      `Cannot download the image as it is ${length} bytes: the limit is ${maxBytes} (maxDownloadBytes)`,
      false,
    );
  }
  return { format, length };
}

/** Options for {@linkcode limitBytes}. */
export interface LimitBytesOptions {
  /** Provider name put on the size error. @default {"download"} */
  provider?: string;
  /** Maps a read failure to the error the stream ends with. @default {(e) => e} */
  classify?: (error: unknown) => unknown;
  /** Called once when the stream ends in any way (done, failed or cancelled). */
  onEnd?: () => void;
}

/**
 * Passes `source` through chunk by chunk, failing the stream with a non-retryable
 * {@linkcode ProviderError} once more than `maxBytes` have arrived. Pull-based, so nothing is read
 * ahead of the consumer and cancelling the result cancels the source.
 *
 * @example
 * ```ts
 * import { limitBytes } from "./download.ts";
 * const capped = limitBytes(new Blob([new Uint8Array(10)]).stream(), 4);
 * const failed = await new Response(capped).arrayBuffer().then(() => false, () => true);
 * if (!failed) throw new Error("expected the cap to fail the stream");
 * ```
 */
export function limitBytes(
  source: ReadableStream<Uint8Array>,
  maxBytes: number,
  options: LimitBytesOptions = {},
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const classify = options.classify ?? ((error: unknown) => error);
  let total = 0;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    options.onEnd?.();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        end();
        controller.error(classify(error));
        return;
      }
      if (chunk.done) {
        end();
        controller.close();
        return;
      }
      total += chunk.value.byteLength;
      if (total > maxBytes) {
        end();
        const error = new ProviderError(
          `Cannot download the image as it exceeds ${maxBytes} bytes (maxDownloadBytes)`,
          { provider: options.provider ?? "download", retryable: false },
        );
        controller.error(error);
        // The stream has already failed with the size error; a failing cancel adds nothing.
        await reader.cancel(error).catch(() => undefined);
        return;
      }
      controller.enqueue(chunk.value);
    },
    async cancel(reason) {
      end();
      await reader.cancel(reason);
    },
  });
}

function _checkUrl(url: string, allowed: Set<string>, provider: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new ProviderError(`Cannot download the image as its URL is not valid: '${url}'`, {
      provider,
      retryable: false,
      cause: error,
    });
  }
  if (parsed.protocol === "https:" || allowed.has(parsed.origin)) return parsed;
  throw new ProviderError(
    `Cannot download the image from '${parsed.protocol}//${parsed.host}' as only https URLs${
      allowed.size > 0 ? ` and ${[...allowed].join(", ")}` : ""
    } are allowed`,
    { provider, retryable: false },
  );
}

function _fromDataUri(uri: string, maxBytes: number, provider: string): DownloadedImage {
  const comma = uri.indexOf(",");
  const header = comma < 0 ? "" : uri.slice(5, comma).toLowerCase();
  const [mediaType = "", ...params] = header.split(";");
  const format = CONTENT_TYPES[mediaType.trim()];
  if (comma < 0 || format === undefined) {
    throw new ProviderError(
      `Cannot use the data URI as an image as its type is '${
        mediaType || "missing"
      }': expected image/png or image/jpeg`,
      { provider, retryable: false },
    );
  }
  const payload = uri.slice(comma + 1);
  const base64 = params.includes("base64");
  // Checked before decoding, so an oversized URI is never expanded in memory.
  const estimate = base64 ? Math.floor(payload.length * 3 / 4) : payload.length;
  if (estimate > maxBytes + 2) {
    throw new ProviderError(
      `Cannot use the data URI as an image as it holds about ${estimate} bytes: the limit is ${maxBytes} (maxDownloadBytes)`,
      { provider, retryable: false },
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = base64
      ? Uint8Array.from(atob(payload.replace(/\s/g, "")), (c) => c.charCodeAt(0))
      : _percentDecode(payload);
  } catch (error) {
    throw new ProviderError("Cannot decode the image's data URI: the base64 is malformed", {
      provider,
      retryable: false,
      cause: error,
    });
  }
  const whole = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  return { data: limitBytes(whole, maxBytes, { provider }), format, bytes: bytes.byteLength };
}

/** Percent-decodes to raw bytes (`decodeURIComponent` would insist on UTF-8). */
function _percentDecode(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25 && /^[0-9a-f]{2}$/i.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c > 0xff) {
      throw new TypeError(`Cannot percent-decode character ${c} as it is not a byte`);
    } else {
      out.push(c);
    }
  }
  return Uint8Array.from(out);
}
