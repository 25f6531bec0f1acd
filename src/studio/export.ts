/**
 * Export: the chosen image of every prompt (the user's pick, else the critic's best) in one
 * ZIP, with `prompts.csv` listing id, prompt, score and cost. Streamed: one image in memory
 * at a time, whatever the batch's size.
 *
 * @module
 */
import { stringify } from "csv-stringify/sync";
import { Zip, ZipDeflate, ZipPassThrough } from "fflate";
import { safeFolderName } from "../output/folder_names.ts";
import { readRunFile } from "../output/run_file.ts";
import { type Entry, imageName, listEntries, readEntry } from "../gallery/gallery.ts";
import type { PromptRecord } from "../output/record.ts";
import { openImage } from "./paths.ts";
import { chosenOf } from "./page.ts";

/** One line of `prompts.csv`. */
export interface ExportRow {
  id: string;
  model: string;
  prompt: string;
  iteration: number | "";
  score: number | "";
  costUsd: number;
  /** The image's name in the ZIP, or empty when the prompt has none. */
  file: string;
  chosenBy: "user" | "critic" | "";
}

/** `prompts.csv`'s text: a header, then one quoted-where-needed line per row. */
export function exportCsv(rows: ExportRow[]): string {
  // Ids, prompts and model folder names come from files: one starting like a formula is a
  // string when a spreadsheet opens the file, not a formula it runs (OWASP's CSV injection
  // advice). Every text column, so a column added later is not forgotten.
  const safe = rows.map((row) =>
    Object.fromEntries(
      Object.entries(row).map((
        [key, value],
      ) => [key, typeof value === "string" ? inert(value) : value]),
    )
  );
  return stringify(safe, {
    header: true,
    columns: ["id", "model", "prompt", "iteration", "score", "costUsd", "file", "chosenBy"],
    // Every line ends the same, and a text with a newline stays one quoted field.
    record_delimiter: "\r\n",
  });
}

function inert(text: string): string {
  return /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
}

/** The round to export: the user's pick when it has an image, else the critic's best. */
export function exportRound(
  record: PromptRecord,
): { iteration: number; image: string; by: "user" | "critic" } | undefined {
  const rounds = Array.isArray(record.iterations) ? record.iterations : [];
  const pick = chosenOf(record);
  const picked = rounds.find((it) => it.iteration === pick);
  if (picked && imageName(picked)) {
    return { iteration: picked.iteration, image: imageName(picked)!, by: "user" };
  }
  const best = rounds.find((it) => it.iteration === record.bestIteration);
  if (best && imageName(best)) {
    return { iteration: best.iteration, image: imageName(best)!, by: "critic" };
  }
  return undefined;
}

/** The batch's export as a stream of ZIP bytes. */
export function exportZip(batchDir: string): ReadableStream<Uint8Array> {
  return ReadableStream.from(zipChunks(batchDir));
}

async function* zipChunks(batchDir: string): AsyncGenerator<Uint8Array> {
  const out: Uint8Array[] = [];
  let failure: unknown;
  const zip = new Zip((error, chunk) => {
    if (error) failure = error;
    else out.push(chunk);
  });
  const drain = function* () {
    if (failure) throw failure;
    yield* out.splice(0);
  };
  const rows: ExportRow[] = [];
  const run = await readRunFile(batchDir);
  const { folders } = await listEntries(batchDir, run.value);
  for (const folder of folders) {
    const entry: Entry | undefined = await readEntry(batchDir, folder.name, true);
    const runs = entry?.kind === "single"
      ? [{ rel: entry.folder, record: entry.record, model: "" }]
      : entry?.kind === "comparison"
      ? entry.runs.flatMap((r) =>
        r.record ? [{ rel: r.rel, record: r.record, model: r.subfolder }] : []
      )
      : [];
    for (const { rel, record, model } of runs) {
      const round = exportRound(record);
      const ext = round?.image.slice(round.image.lastIndexOf(".")) ?? "";
      // Folder names from elsewhere may hold anything (`..\\x` is a way up when unzipped on
      // Windows): each part of the name in the ZIP is one a prompt folder could have.
      const file = round ? `images/${rel.split("/").map(safeFolderName).join("/")}${ext}` : "";
      const found = round && await openImage(batchDir, [...rel.split("/"), round.image]);
      const it = round && record.iterations.find((r) => r.iteration === round.iteration);
      rows.push({
        id: record.id,
        model,
        prompt: typeof record.prompt === "string" ? record.prompt : "",
        iteration: round?.iteration ?? "",
        score: typeof it?.critique?.score === "number" ? it.critique.score : "",
        costUsd: typeof record.costUsd === "number" ? record.costUsd : 0,
        file: found ? file : "",
        chosenBy: found ? round.by : "",
      });
      if (!found) continue;
      // Images are compressed already: stored as they are.
      const member = new ZipPassThrough(file);
      zip.add(member);
      // A chunk at a time: an image of any size costs the same memory.
      const reader = found.file.stream().getReader();
      try {
        for (let chunk = await reader.read();; chunk = await reader.read()) {
          if (chunk.done) {
            member.push(new Uint8Array(0), true);
            break;
          }
          member.push(chunk.value);
          yield* drain();
        }
      } finally {
        // Also when the download is cancelled mid-image.
        await reader.cancel().catch(() => {});
        await found.file.close();
      }
      yield* drain();
    }
  }
  const csv = new ZipDeflate("prompts.csv", { level: 6 });
  zip.add(csv);
  csv.push(new TextEncoder().encode(exportCsv(rows)), true);
  zip.end();
  yield* drain();
}
