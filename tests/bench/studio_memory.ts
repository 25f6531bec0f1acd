/**
 * `retake serve` over a batch of 50,000 prompts with one 1 GB image (a sparse file): the real
 * CLI in a subprocess, driven through every page a user opens — the batches list, the batch
 * page, a filter that reads every record, a row, the 1 GB image, the export (which streams the
 * image into the ZIP), a favourite — and its peak resident memory (`VmHWM`) measured.
 *
 *     deno run -A tests/bench/studio_memory.ts [prompts]
 *
 * Prints one JSON line; exits 1 when the peak is 200 MB or more.
 *
 * @module
 */
import { fakeId, makeBatch } from "../../src/studio/_test_batch.ts";
import { login } from "../../src/studio/_test_session.ts";
import { cliCommand } from "../cli.ts";

const LIMIT_MB = 200;
const prompts = Number(Deno.args[0] ?? 50_000);
const cwd = await Deno.makeTempDir({ prefix: "retake-studio-memory-" });

function peakMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

async function drain(response: Response): Promise<number> {
  let bytes = 0;
  for await (const chunk of response.body!) bytes += chunk.length;
  if (!response.ok) throw new Error(`${response.url}: ${response.status}`);
  return bytes;
}

const timings: Record<string, number> = {};
async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await fn();
  } finally {
    timings[name] = Math.round(performance.now() - started);
  }
}

try {
  await timed("make batch", () => makeBatch(`${cwd}/out`, "big", prompts, { images: false }));
  const folder = `${cwd}/out/big/${fakeId(0)}`;
  const huge = await Deno.open(`${folder}/iteration-2.png`, { write: true, create: true });
  await huge.truncate(1024 ** 3);
  huge.close();
  await Deno.writeFile(`${folder}/iteration-1.png`, new Uint8Array(64));

  const child = cliCommand(["serve", "out"], { cwd, output: "piped" }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!/Studio: (\S+)\n/.test(seen)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`retake serve ended: ${seen}`);
    seen += value;
  }
  const draining = (async () => {
    while (!(await reader.read()).done) { /* stderr after the URL */ }
  })();
  const out = child.stdout.pipeTo(new WritableStream());
  const session = await login(/Studio: (\S+)\n/.exec(seen)![1]!);
  const steps: Record<string, number> = {};
  const step = async (name: string, fn: () => Promise<unknown>) => {
    await timed(name, fn);
    steps[name] = Math.round(peakMb(child.pid));
  };
  try {
    await step("batches list", async () => drain(await session.get("/")));
    await step("batch page", async () => drain(await session.get("/b/big/")));
    await step(
      "filter: failed (every record)",
      async () => drain(await session.get("/b/big/?filter=failed")),
    );
    await step("row", async () => drain(await session.get(`/b/big/row/${fakeId(0)}`)));
    await step(
      "1 GB image",
      async () => drain(await session.get(`/b/big/f/${fakeId(0)}/iteration-2.png`)),
    );
    await step("export.zip", async () => drain(await session.get("/b/big/export.zip")));
    await step("favourite", async () => {
      const response = await session.post("/b/big/action", {
        type: "favourite",
        id: fakeId(1),
        iteration: 1,
      });
      await response.body?.cancel();
    });
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await draining;
    await out;
  }
  const peak = Math.max(...Object.values(steps));
  // deno-lint-ignore no-console
  console.log(JSON.stringify({ prompts, peakMb: peak, limitMb: LIMIT_MB, steps, timings }));
  if (peak >= LIMIT_MB) Deno.exitCode = 1;
} finally {
  await Deno.remove(cwd, { recursive: true });
}
