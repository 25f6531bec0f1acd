/**
 * Which files the studio may serve: images inside a batch folder under the output folder, by
 * plain names only, never through a symbolic link.
 *
 * @module
 */
import { refuseLinks } from "../artifacts.ts";

/** Image types the studio serves, by extension. */
export const IMAGE_TYPES: Readonly<Record<string, string>> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
};

/** Whether `name` is one plain folder or file name: no separator, not `.` or `..`, no NUL. */
export function isPlainName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !/[\\/\0]/.test(name);
}

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
 * The path of an image inside `batchDir` from its URL segments (already decoded), with its
 * content type; undefined when a segment is not a plain name, the type is not an image's, or
 * any part of the way is a symbolic link.
 */
export async function imagePath(
  batchDir: string,
  segments: string[],
): Promise<{ path: string; type: string } | undefined> {
  if (segments.length === 0 || segments.length > 4 || !segments.every(isPlainName)) {
    return undefined;
  }
  const name = segments.at(-1)!;
  const type = IMAGE_TYPES[name.slice(name.lastIndexOf(".") + 1).toLowerCase()];
  if (!name.includes(".") || type === undefined) return undefined;
  const path = `${batchDir}/${segments.join("/")}`;
  try {
    await refuseLinks(path, batchDir);
  } catch {
    // A link anywhere on the way: as if the file were not there.
    return undefined;
  }
  const info = await Deno.lstat(path).catch(() => undefined);
  return info?.isFile ? { path, type } : undefined;
}

/** URL segments of a path, decoded; undefined when one does not decode. */
export function decodeSegments(path: string): string[] | undefined {
  try {
    return path.split("/").filter((s) => s !== "").map(decodeURIComponent);
  } catch {
    return undefined;
  }
}
