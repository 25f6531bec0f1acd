/**
 * An image's size read off its first bytes, before the rest arrives: for a price per megapixel
 * when the service did not say how large the image it made is.
 *
 * @module
 */
import sharp from "sharp";

/** `data` as it was (every byte still to come), and the image's size when its head told it. */
export interface SizedImage {
  data: Uint8Array | ReadableStream<Uint8Array>;
  size?: { width: number; height: number };
}

/**
 * Reads the image's header from `data` (at most `maxBytes` of it) and returns its size with a
 * stream that still yields every byte, the ones read first included. A failure while reading
 * is not raised here: the returned stream ends with it, where the caller reads the image.
 *
 * @example
 * ```ts
 * import sharp from "sharp";
 * import { withImageSize } from "./_image_size.ts";
 * const png = new Uint8Array(await sharp({ create: { width: 6, height: 4, channels: 3, background: "red" } }).png().toBuffer());
 * const { size, data } = await withImageSize(ReadableStream.from([png.subarray(0, 40), png.subarray(40)]));
 * if (size?.width !== 6 || size.height !== 4) throw new Error("expected 6×4");
 * if (data instanceof Uint8Array) throw new Error("a stream stays a stream");
 * if ((await new Response(data).arrayBuffer()).byteLength !== png.length) throw new Error("bytes lost");
 * ```
 */
export async function withImageSize(
  data: Uint8Array | ReadableStream<Uint8Array>,
  maxBytes: number = 1 << 20,
): Promise<SizedImage> {
  if (data instanceof Uint8Array) {
    const size = await _sizeOf(data);
    return { data, ...(size !== undefined && { size }) };
  }
  const reader = data.getReader();
  const head: Uint8Array[] = [];
  let length = 0;
  let size: SizedImage["size"];
  let ended = false;
  let failure: { error: unknown } | undefined;
  while (size === undefined && length < maxBytes) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (error) {
      failure = { error };
      break;
    }
    if (chunk.done) {
      ended = true;
      break;
    }
    head.push(chunk.value);
    length += chunk.value.byteLength;
    size = await _sizeOf(_concat(head, length));
  }
  const rest = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = head.shift();
      if (next !== undefined) return controller.enqueue(next);
      if (failure !== undefined) return controller.error(failure.error);
      if (ended) return controller.close();
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(error);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { data: rest, ...(size !== undefined && { size }) };
}

async function _sizeOf(bytes: Uint8Array): Promise<SizedImage["size"]> {
  try {
    const { width, height } = await sharp(bytes).metadata();
    return width > 0 && height > 0 ? { width, height } : undefined;
  } catch {
    return undefined; // Not enough of the header yet, or not an image: the save step will say.
  }
}

function _concat(chunks: Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const whole = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    whole.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return whole;
}
