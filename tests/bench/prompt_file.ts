/**
 * The bench's prompt file part: a text file of 100,000 prompts (one a line, as T2I-CompBench
 * publishes them) read in the memory of a small one, and how soon a run of it starts its first
 * generation (informational: the time depends on the machine).
 *
 * @module
 */
import { cliCommand } from "../cli.ts";

/** One row of the bench's table. */
export interface PromptFileRow {
  metric: string;
  value: number;
  target?: { op: ">=" | "<="; value: number };
  unit: string;
  detail: string;
}

const SMALL = 100;
const LARGE = 100_000;

/** Writes a text file of `n` prompts shaped like T2I-CompBench's. */
async function writeLines(path: string, n: number): Promise<void> {
  const colours = ["red", "green", "blue", "brown", "black", "white", "pink", "purple"];
  const things = ["bench", "bowl", "fox", "owl", "car", "cake", "horse", "vase", "cow", "lamp"];
  const lines = Array.from(
    { length: n },
    (_, i) =>
      `a ${colours[i % 8]} ${things[i % 10]} and a ${colours[(i >> 3) % 8]} ${
        things[(i >> 4) % 10]
      } number ${i}`,
  );
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
}

/** Milliseconds from spawning `retake --offline` on `file` to its first "Started generate". */
async function firstGenerationMs(file: string, cwd: string): Promise<number> {
  const started = performance.now();
  const child = cliCommand(["--offline", "-v", "-q", "-n", "1", "--out", "out", file], {
    cwd,
  }).spawn();
  const reader = child.stderr.getReader();
  const decoder = new TextDecoder();
  let log = "";
  while (!/Started generate 1 of /.test(log)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Cannot time ${file}: retake ended first:\n${log.slice(-2000)}`);
    log += decoder.decode(value, { stream: true });
  }
  const ms = performance.now() - started;
  child.kill("SIGINT");
  while (!(await reader.read()).done) { /* drain */ }
  await child.stdout.cancel();
  await child.status;
  await Deno.remove(`${cwd}/out`, { recursive: true });
  return ms;
}

/**
 * The rows: the JS heap the prompts of 100,000 lines keep over those of 100, against the
 * memory target of the batch rows (30 MB); the peak RSS of reading them; and the first
 * generation's time, without a target.
 *
 * @param child runs `tests/bench/child.ts` with the run task's flags and returns its JSON line
 */
export async function promptFile(
  child: (args: string[]) => Promise<Record<string, number>>,
  work: string,
): Promise<PromptFileRow[]> {
  const read: Record<number, Record<string, number>> = {};
  for (const n of [SMALL, LARGE]) {
    await writeLines(`${work}/lines-${n}.txt`, n);
    read[n] = await child(["read", "--file", `${work}/lines-${n}.txt`]);
  }
  const small = read[SMALL]!;
  const large = read[LARGE]!;
  const firstSmall = await firstGenerationMs(`lines-${SMALL}.txt`, work);
  const firstLarge = await firstGenerationMs(`lines-${LARGE}.txt`, work);
  return [
    {
      metric: `Prompt file: retained JS heap growth, ${SMALL} → ${LARGE} text lines read`,
      value: large.retainedHeapMb! - small.retainedHeapMb!,
      target: { op: "<=", value: 30 },
      unit: "MB",
      detail:
        `every prompt kept, checked, with its id made from the text; read in ${large.durationMs} ms`,
    },
    {
      metric: `Prompt file: peak RSS growth, ${SMALL} → ${LARGE} text lines read`,
      value: large.peakRssMb! - small.peakRssMb!,
      unit: "MB",
      detail: `sampled peak RSS ${small.peakRssMb!.toFixed(0)} MB → ${
        large.peakRssMb!.toFixed(0)
      } MB`,
    },
    {
      metric: `Prompt file: first generation of a ${LARGE}-line .txt, from process start`,
      value: firstLarge,
      unit: "ms",
      detail: `${
        Math.round(firstSmall)
      } ms for ${SMALL} lines; includes reading and checking every line and run.json's start (its room on disk for the final record grows with the batch)`,
    },
  ];
}
