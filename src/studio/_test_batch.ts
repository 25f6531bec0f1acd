/**
 * A batch folder made of fake records, for the studio's tests and the bench: what a run
 * writes (`run.json`, one folder per prompt with `metadata.json` and its images), without
 * running one.
 *
 * @module
 */
import type { PromptRecord } from "../output/record.ts";

/** A 1×1 PNG. */
export const TINY_PNG: Uint8Array = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  ),
  (c) => c.charCodeAt(0),
);

/** Options for {@linkcode makeBatch}. */
export interface FakeBatchOptions {
  /** Writes each round's PNG too. @default {true} */
  images?: boolean;
  /** The record of prompt `i` (from 0), changed as a test needs. */
  edit?: (record: PromptRecord, i: number) => void;
  targetScore?: number;
}

/** The id of fake prompt `i`. */
export function fakeId(i: number): string {
  return `p${String(i + 1).padStart(5, "0")}`;
}

/** Writes `<out>/<name>` with `count` prompts of two rounds each; returns the folder. */
export async function makeBatch(
  out: string,
  name: string,
  count: number,
  options: FakeBatchOptions = {},
): Promise<string> {
  const dir = `${out}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  const records: PromptRecord[] = [];
  for (let i = 0; i < count; i++) {
    const id = fakeId(i);
    const record: PromptRecord = {
      id,
      folder: id,
      status: i % 10 === 3 ? "failed" : "completed",
      endReason: "iterations",
      inputHash: "0",
      prompt: `a lighthouse at dusk, number ${i + 1}`,
      extra: {},
      providers: { generator: "local", critic: "local", refiner: "local" },
      iterations: [1, 2].map((n) => ({
        iteration: n,
        prompt: `a lighthouse at dusk, number ${i + 1}${n === 2 ? ", warmer light" : ""}`,
        image: `iteration-${n}.png`,
        ...(n === 2 && { action: "redraw" as const, actionReason: "the light is flat" }),
        critique: {
          score: 5 + ((i * 7 + n * 3) % 50) / 10,
          criteria: {
            promptAdherence: 7,
            composition: 7,
            lighting: 7,
            mood: 7,
            technicalQuality: 7,
          },
          summary: `Round ${n} of ${id}.`,
          strengths: [],
          problems: [],
          suggestions: [],
        },
        steps: {},
      })),
      bestIteration: 2,
      bestScore: 5 + ((i * 7 + 6) % 50) / 10,
      costUsd: 0.01,
      durationMs: 1000,
      startedAt: "2026-01-01T00:00:00.000Z",
    };
    if (record.status === "failed") {
      record.error = { step: "generate", iteration: 2, message: "the service said no" };
      delete record.endReason;
    }
    options.edit?.(record, i);
    records.push(record);
  }
  // Written a few at a time: thousands of small files, without thousands of open handles.
  for (let start = 0; start < records.length; start += 64) {
    await Promise.all(
      records.slice(start, start + 64).map(async (record) => {
        const folder = `${dir}/${record.folder}`;
        await Deno.mkdir(folder, { recursive: true });
        await Deno.writeTextFile(`${folder}/metadata.json`, JSON.stringify(record));
        if (options.images ?? true) {
          for (const it of record.iterations) {
            if (it.image) await Deno.writeFile(`${folder}/${it.image}`, TINY_PNG);
          }
        }
      }),
    );
  }
  await Deno.writeTextFile(
    `${dir}/run.json`,
    JSON.stringify({
      version: "0.1.0",
      batch: dir,
      status: "completed",
      promptFiles: ["prompts.json"],
      startedAt: "2026-01-01T00:00:00.000Z",
      durationMs: 1000,
      providers: { generator: "local", critic: "local", refiner: "local", model: "local" },
      settings: options.targetScore === undefined ? {} : { targetScore: options.targetScore },
      totals: {
        prompts: count,
        completed: records.filter((r) => r.status === "completed").length,
        failed: records.filter((r) => r.status === "failed").length,
        interrupted: 0,
        skipped: 0,
        costUsd: count * 0.01,
        thisRunCostUsd: count * 0.01,
      },
      prompts: records.map((r) => ({ id: r.id, model: "local", status: r.status })),
    }),
  );
  return dir;
}
