/**
 * The gallery's thumbnails (`_thumbs/<folder>/<image>.jpg`), used by the studio's pages when
 * they are there and up to date: a page of fifty prompts then loads small JPEGs, not every
 * full-size image. Rounds saved since the gallery was written show the full image.
 *
 * @module
 */
import { type Entry, imageName, iterationsOf } from "../gallery.ts";
import type { PromptRecord } from "../record.ts";
import type { ThumbLookup } from "./page.ts";

/** The thumbnails of every round of `entries` that has a current one. */
export async function thumbsFor(dir: string, entries: Entry[]): Promise<ThumbLookup> {
  const images: string[] = [];
  const add = (rel: string, record: PromptRecord) => {
    for (const it of iterationsOf(record)) {
      const image = imageName(it);
      if (image) images.push(`${rel}/${image}`);
    }
  };
  for (const entry of entries) {
    if (entry.kind === "single") add(entry.folder, entry.record);
    if (entry.kind === "comparison") {
      for (const run of entry.runs) if (run.record) add(run.rel, run.record);
    }
  }
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
