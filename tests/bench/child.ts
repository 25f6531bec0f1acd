/**
 * One measurement in a fresh process, for `tests/bench.ts`; prints one JSON line.
 *
 * - `memory --prompts N --dir DIR`: a whole batch through `runBatch` (prompt file, config,
 *   folder output, run.json, log) with instant providers; reports the peak RSS, sampled. The
 *   batch file `DIR/batch.json` is written beforehand by {@linkcode writeMemoryBatch}, so the
 *   peak is retake's alone, not that of making 10,000 prompts.
 * - `overhead --prompts N`: `runPipeline` with instant providers and a sink that keeps nothing;
 *   reports the process CPU time per prompt, i.e. the orchestration alone.
 * - `read --file FILE`: reads and checks one prompt file as a run does; reports the peak RSS,
 *   sampled, and the JS heap the prompts keep after a full collection.
 *
 * @module
 */
import { cpuUsage } from "node:process";
import { from, lastValueFrom, toArray } from "rxjs";
import { loadConfig } from "../../src/config/load.ts";
import { runPipeline } from "../../src/pipeline/pipeline.ts";
import type { PromptSpec } from "../../src/prompts/mod.ts";
import { loadPrompts, runBatch } from "../../src/batch/run.ts";
import { instantProviders, NullSink } from "./fakes.ts";

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

/** Prompts shaped like real ones: a few hundred characters with context. */
export function benchPrompts(n: number, tag = ""): PromptSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `prompt-${String(i).padStart(5, "0")}`,
    title: `Scene ${i}`,
    scene: `A harbour town at dawn, boats number ${i} drifting out past the lighthouse`,
    mood: "calm, hopeful",
    prompt:
      `Golden morning light over a small harbour town ${i}${tag}, fishing boats leaving past a red lighthouse, mist on the water, gulls, soft pastel sky, detailed, cinematic`,
    extra: {},
  }));
}

/**
 * Samples this process's resident set size every few ms; `stop()` returns the peak, in MB.
 * (getrusage's maxrss would do, but on Linux a child inherits its parent's peak across exec,
 * and /proc/self/status needs --allow-all.)
 */
function rssSampler(): { stop(): number } {
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 5);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, Deno.memoryUsage().rss) / 2 ** 20;
    },
  };
}

/** Writes the batch file for `memory`, so the measured process does not make it itself. */
export async function writeMemoryBatch(n: number, dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const prompts = benchPrompts(n).map(({ extra: _extra, ...rest }) => rest);
  await Deno.writeTextFile(`${dir}/batch.json`, JSON.stringify({ prompts }));
}

async function memory(n: number, dir: string): Promise<Record<string, number>> {
  const sampler = rssSampler();
  const file = `${dir}/batch.json`;
  const { config } = await loadConfig({
    args: ["--out", `${dir}/out`, "--quiet", "--offline", file],
    env: {},
    cwd: dir,
    readTextFile: Deno.readTextFile,
  });
  const specs = await loadPrompts([file]);
  const providers = await instantProviders();
  const started = performance.now();
  const result = await runBatch(config, [file], {
    writeOut: () => {},
    writeErr: () => {},
    isTerminal: false,
  }, {
    specs,
    providers: { ...providers, model: "instant", resolveModel: (name) => name },
  });
  return {
    prompts: n,
    completed: result.outcomes.filter((o) => o.status === "completed").length,
    durationMs: Math.round(performance.now() - started),
    peakRssMb: sampler.stop(),
    heapTotalMb: Deno.memoryUsage().heapTotal / 2 ** 20,
    retainedHeapMb: _retainedHeapMb(),
  };
}

/** JS heap still in use after a full collection (the child runs with --expose-gc), in MB. */
function _retainedHeapMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Deno.memoryUsage().heapUsed / 2 ** 20;
}

async function overhead(n: number): Promise<Record<string, number>> {
  const providers = await instantProviders();
  const specs = benchPrompts(n);
  const options = {
    ...providers,
    sink: new NullSink(),
    iterations: 2,
    concurrency: "auto" as const,
    width: 1024,
    height: 768,
    format: "png" as const,
    model: "instant",
    seedFor: () => 1,
    retry: { maxAttempts: 4 },
    timeoutMs: 60_000,
    hashFor: (spec: PromptSpec) => spec.id,
  };
  // Warm up the JIT on a small batch first, as a long batch would be warm too.
  await lastValueFrom(runPipeline(from(benchPrompts(200, "w")), options).pipe(toArray()));
  const before = cpuUsage();
  const started = performance.now();
  const outcomes = await lastValueFrom(runPipeline(from(specs), options).pipe(toArray()));
  const cpu = cpuUsage(before);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    prompts: n,
    completed: outcomes.filter((o) => o.status === "completed").length,
    wallMs: Math.round(performance.now() - started),
    cpuMs: Math.round(cpuMs),
    cpuMsPerPrompt: cpuMs / n,
  };
}

async function read(file: string): Promise<Record<string, number>> {
  _retainedHeapMb();
  const before = _retainedHeapMb();
  const sampler = rssSampler();
  const started = performance.now();
  const specs = await loadPrompts([file]);
  const durationMs = Math.round(performance.now() - started);
  return {
    prompts: specs.length,
    durationMs,
    peakRssMb: sampler.stop(),
    retainedHeapMb: _retainedHeapMb() - before,
  };
}

if (import.meta.main) {
  const mode = Deno.args[0];
  const n = Number(flag("prompts") ?? 100);
  const result = mode === "memory"
    ? await memory(n, flag("dir")!)
    : mode === "overhead"
    ? await overhead(n)
    : mode === "read"
    ? await read(flag("file")!)
    : undefined;
  if (!result) {
    throw new TypeError(`Cannot run bench child mode '${mode}': expected memory, overhead or read`);
  }
  // deno-lint-ignore no-console
  console.log(JSON.stringify(result));
}
