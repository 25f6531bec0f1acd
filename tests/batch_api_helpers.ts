/**
 * What the tests of `--batch-api` share, whichever service's stand-in they run against: prompt
 * files, the batch folder's ledger, the clock moved to each wait, and the comparison of a batch
 * run with the interactive run of the same prompts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { BATCH_API_DIR, type JobEntry } from "../src/batch_api/ledger.ts";
import type { PromptRecord } from "../src/output/record.ts";
import { runCli } from "./cli.ts";
import { type ManualClock, waitFor } from "./manual_clock.ts";

/** A prompt file of `n` distinct prompts, `p000`…; `extra` adds to a prompt's text. */
export function batchPrompts(n: number, extra: (i: number) => string = () => ""): string {
  const words = ["red", "blue", "green", "golden", "dark", "misty", "bright", "quiet"];
  const things = ["fox", "whale", "tower", "forest", "harbour", "mountain", "lantern", "garden"];
  return JSON.stringify({
    prompts: Array.from({ length: n }, (_, i) => ({
      id: `p${String(i).padStart(3, "0")}`,
      prompt: `a ${words[i % 8]} ${things[Math.floor(i / 8) % 8]} number ${i}${extra(i)}`,
    })),
  });
}

/** The jobs recorded in batch folder `dir`. */
export function readLedger(dir: string): JobEntry[] {
  return JSON.parse(Deno.readTextFileSync(`${dir}/${BATCH_API_DIR}/jobs.json`)).jobs;
}

/** Moves the clock from one wait to the next until every call has its outcome. */
export async function settle<T>(
  clock: ManualClock,
  calls: Promise<T>[],
): Promise<PromiseSettledResult<T>[]> {
  let done = false;
  const all = Promise.allSettled(calls).then((results) => ((done = true), results));
  while (!done) {
    await waitFor(() => done || clock.sleeping > 0, "the batch to wait or end");
    if (!done) await clock.next();
  }
  return await all;
}

/** A batch folder's files that hold results (not times, costs or ids), by path. */
async function resultFiles(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    for await (const file of Deno.readDir(`${dir}/${entry.name}`)) {
      if (file.name === "metadata.json") continue;
      files.set(
        `${entry.name}/${file.name}`,
        await Deno.readFile(`${dir}/${entry.name}/${file.name}`),
      );
    }
  }
  return files;
}

/**
 * Checks that batch folder `batched` holds the same files as `live`, the interactive run of the
 * same prompts, at half its cost (±1%), and that the `--json` summary (`stdout`), `run.json` and
 * every `metadata.json` agree; resolves with each prompt's record.
 */
export async function sameFilesAtHalfPrice(
  live: string,
  batched: string,
  stdout: string,
): Promise<PromptRecord[]> {
  const liveFiles = await resultFiles(live);
  const batchFiles = await resultFiles(batched);
  assert.deepEqual([...batchFiles.keys()].sort(), [...liveFiles.keys()].sort());
  for (const [path, bytes] of liveFiles) assert.deepEqual(batchFiles.get(path), bytes, path);

  const runJson = (dir: string) => JSON.parse(Deno.readTextFileSync(`${dir}/run.json`));
  const liveCost = runJson(live).totals.costUsd;
  const batchRun = runJson(batched);
  assert.ok(liveCost > 0);
  const ratio = batchRun.totals.costUsd / liveCost;
  assert.ok(Math.abs(ratio - 0.5) <= 0.005, `batch ÷ interactive = ${ratio}`);
  const summary = JSON.parse(stdout);
  assert.equal(summary.totals.batchCostUsd, batchRun.totals.costUsd);
  // This run's spend sums unrounded steps; run.json sums each prompt's cost rounded to 1e-6.
  assert.ok(
    Math.abs(summary.totals.costUsd - batchRun.totals.costUsd) <= batchRun.prompts.length * 1e-6,
  );
  let sum = 0;
  const records: PromptRecord[] = [];
  for (const entry of batchRun.prompts) {
    const record: PromptRecord = JSON.parse(
      await Deno.readTextFile(`${batched}/${entry.folder}/metadata.json`),
    );
    assert.equal(record.costUsd, entry.costUsd, entry.id);
    sum += record.costUsd;
    records.push(record);
  }
  assert.ok(Math.abs(sum - batchRun.totals.costUsd) < 1e-6);
  return records;
}

/** Runs `fn` with a stand-in started by `start` and a temporary folder; then removes both. */
export async function withStandInAndDir<S extends { close(): Promise<void> }>(
  start: () => Promise<S>,
  prefix: string,
  fn: (standIn: S, dir: string) => Promise<void>,
): Promise<void> {
  const standIn = await start();
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(standIn, dir);
  } finally {
    await standIn.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** What {@linkcode interactiveThenBatch} counts at the stand-in. */
export interface StandInCounts {
  /** Requests the service answered (interactively or in a job). */
  requests(): number;
  /** Jobs created. */
  jobs(): number;
}

/**
 * Runs `args` interactively into `live/`, then with `--batch-api --json` into `batched/`, and
 * checks that the interactive run sent no job, the batch run never showed `key`, and every call
 * of the batch run was answered once; resolves with the batch run's output.
 */
export async function interactiveThenBatch(
  args: string[],
  options: { cwd: string; env: Record<string, string>; key: string; counts: StandInCounts },
): Promise<{ stdout: string; stderr: string }> {
  const { cwd, env, key, counts } = options;
  const interactive = await runCli(["--out", "live", ...args], { cwd, env });
  assert.equal(interactive.code, 0, interactive.stderr);
  assert.equal(counts.jobs(), 0, "the interactive run sends no job");
  const answered = counts.requests();
  assert.ok(answered > 0);
  const batch = await runCli(["--out", "batched", "--batch-api", "--json", ...args], { cwd, env });
  assert.equal(batch.code, 0, batch.stderr);
  assert.ok(!(batch.stderr + batch.stdout).includes(key), "the key never shows");
  assert.equal(counts.requests() - answered, answered, "every call answered once, in a job");
  return batch;
}
