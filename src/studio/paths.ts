/**
 * Which files the studio may serve: images inside a batch folder under the output folder, by
 * plain names only, never through a symbolic link.
 *
 * @module
 */
import { type InsideFile, isPlainName, openInside, UnsafeFileError } from "../output/safe_read.ts";

export { isPlainName };

/** Image types the studio serves, by extension. */
export const IMAGE_TYPES: Readonly<Record<string, string>> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
};

/**
 * The path of batch folder `name` under `out`, when it is a real folder (not a link) holding a
 * `run.json`; otherwise undefined.
 */
export async function batchPath(out: string, name: string): Promise<string | undefined> {
  if (!isPlainName(name) || name.startsWith(".")) return undefined;
  const dir = `${out}/${name}`;
  const info = await Deno.lstat(dir).catch(() => undefined);
  if (!info?.isDirectory) return undefined;
  const run = await Deno.lstat(`${dir}/run.json`).catch(() => undefined);
  return run?.isFile ? dir : undefined;
}

/**
 * An image inside `batchDir` from its URL segments (already decoded), opened, with its content
 * type; undefined when a segment is not a plain name, the type is not an image's, it is not
 * there, or any part of the way is a symbolic link (checked on the open file itself).
 */
export async function openImage(
  batchDir: string,
  segments: string[],
): Promise<{ file: InsideFile; type: string } | undefined> {
  if (segments.length === 0 || segments.length > 4 || !segments.every(isPlainName)) {
    return undefined;
  }
  const name = segments.at(-1)!;
  const type = IMAGE_TYPES[name.slice(name.lastIndexOf(".") + 1).toLowerCase()];
  if (!name.includes(".") || type === undefined) return undefined;
  try {
    const file = await openInside(batchDir, segments.join("/"));
    return file && { file, type };
  } catch (error) {
    // A link anywhere on the way, or not a file: as if it were not there.
    if (error instanceof UnsafeFileError) return undefined;
    throw error;
  }
}

/** URL segments of a path, decoded; undefined when one does not decode. */
export function decodeSegments(path: string): string[] | undefined {
  try {
    return path.split("/").filter((s) => s !== "").map(decodeURIComponent);
  } catch {
    return undefined;
  }
}
