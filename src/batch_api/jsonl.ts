/**
 * The lines of a JSON Lines file kept on disk (a batch job's answers, one image each at a few
 * megabytes): read once for their places, then each one alone when it is needed, so the whole
 * file is never in memory.
 *
 * @module
 */

/** Where one line lies in its file. */
export interface LinePlace {
  offset: number;
  length: number;
}

/**
 * Every non-empty line of `path` with its place, in order.
 *
 * @example
 * ```ts
 * import { jsonlLines, readLine } from "./jsonl.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, '{"a":1}\n\n{"b":2}\n');
 * const lines = await Array.fromAsync(jsonlLines(path));
 * if (lines.length !== 2 || await readLine(path, lines[1]!) !== '{"b":2}') throw new Error("lines");
 * await Deno.remove(path);
 * ```
 */
export async function* jsonlLines(path: string): AsyncGenerator<LinePlace & { text: string }> {
  // The stream closes the file when it ends or is cancelled.
  const file = await Deno.open(path, { read: true });
  const decoder = new TextDecoder();
  let pending: Uint8Array[] = [];
  let pendingLength = 0;
  let lineStart = 0;
  let position = 0;
  const emit = (): (LinePlace & { text: string }) | undefined => {
    const bytes = new Uint8Array(pendingLength);
    let at = 0;
    for (const chunk of pending) (bytes.set(chunk, at), at += chunk.length);
    pending = [];
    pendingLength = 0;
    const text = decoder.decode(bytes).replace(/\r$/, "");
    return text.trim() === "" ? undefined : { offset: lineStart, length: bytes.length, text };
  };
  for await (const chunk of file.readable) {
    let from = 0;
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, from)) {
      pending.push(chunk.subarray(from, i));
      pendingLength += i - from;
      const line = emit();
      if (line) yield line;
      lineStart = position + i + 1;
      from = i + 1;
    }
    if (from < chunk.length) {
      pending.push(chunk.slice(from));
      pendingLength += chunk.length - from;
    }
    position += chunk.length;
  }
  const last = emit();
  if (last) yield last;
}

/** The text of one line of `path`, from its place. */
export async function readLine(path: string, place: LinePlace): Promise<string> {
  using file = await Deno.open(path, { read: true });
  await file.seek(place.offset, Deno.SeekMode.Start);
  const bytes = new Uint8Array(place.length);
  for (let at = 0; at < bytes.length;) {
    const n = await file.read(bytes.subarray(at));
    if (n === null) {
      throw new Error(`Cannot read line at ${place.offset} of '${path}': the file ends early`);
    }
    at += n;
  }
  return new TextDecoder().decode(bytes).replace(/\r$/, "");
}
