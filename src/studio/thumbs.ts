/**
 * The gallery's thumbnails (`_thumbs/<folder>/<image>.jpg`), used by the studio's pages when
 * they are there and up to date: a page of fifty prompts then loads small JPEGs, not every
 * full-size image. Rounds saved since the gallery was written show the full image.
 *
 * @module
 */
import { type Entry, imagesOf } from "../gallery/gallery.ts";
import type { ThumbLookup } from "./page.ts";

/** The thumbnails of every round of `entries` that has a current one. */
export async function thumbsFor(dir: string, entries: Entry[]): Promise<ThumbLookup> {
  const images = imagesOf(entries);
  const found = new Map<string, string>();
  await Promise.all(images.map(async (rel) => {
    const thumb = `_thumbs/${rel.replace(/\.[^./]*$/, "")}.jpg`;
    const [source, target] = await Promise.all([
      Deno.lstat(`${dir}/${rel}`).catch(() => undefined),
      Deno.lstat(`${dir}/${thumb}`).catch(() => undefined),
    ]);
    const made = target?.isFile ? target.mtime?.getTime() ?? -Infinity : -Infinity;
    if (made >= (source?.mtime?.getTime() ?? Infinity)) found.set(rel, thumb);
  }));
  return (rel) => found.get(rel);
}
