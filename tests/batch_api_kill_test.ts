/**
 * `kill -9` at 20 random moments of `--batch-api` runs never makes Gemini run the same request in
 * a second job: counted at the stand-in, by request key, over every job created. Each moment is
 * an event, never a delay: the n-th call the stand-in answers (a poll, an upload, a create, a
 * download: the run is waiting), or the n-th file written in the batch folder (the run is saving).
 * Every batch then completes with its files whole.
 */
import assert from "node:assert/strict";
import type { PromptRecord } from "../src/output/record.ts";
import { cliCommand, runCli } from "./cli.ts";
import { type GeminiBatchStandIn, startGeminiBatchStandIn } from "./gemini_batch_standin.ts";
import { seeded } from "./schema_answers.ts";

const KEY = "AQ.Ab8RN6-batch-kill-key";
const KILLS = 20;
const PROMPTS = 5;

function promptFile(set: number): string {
  const things = ["fox", "whale", "tower", "forest", "harbour"];
  return JSON.stringify({
    prompts: things.slice(0, PROMPTS).map((thing, i) => ({
      id: thing,
      prompt: `a ${thing} in light number ${i}, set ${set}`,
    })),
  });
}

/**
 * Resolves on the n-th call (of `type`, or any) the stand-in answers from now; `cancel` stops
 * listening. A kill on a `create` lands as Gemini makes the job, before the run hears its name.
 */
function nthCall(standIn: GeminiBatchStandIn, n: number, type?: string) {
  let stop = () => {};
  const reached = new Promise<string>((resolve) => {
    let seen = 0;
    stop = standIn.onEvent((event) => {
      if (type !== undefined && event.type !== type) return;
      if (++seen === n) resolve(`${event.type} ${event.name ?? ""}`);
    });
  });
  return { reached, cancel: () => stop() };
}

/** Files of the batch the run writes at every start: not a save of an answer. */
const HOUSEKEEPING =
  /\/(?:\.retake\.lock|log\.jsonl|\.?run\.json[^/]*|\.retake-write-check-[^/]*)$/;

/**
 * Resolves on the n-th write from now of the files answers are saved to: the prompts' files,
 * the record of jobs and the answers kept.
 */
function nthWrite(dir: string, n: number) {
  const watcher = Deno.watchFs(dir, { recursive: true });
  const reached = (async () => {
    let seen = 0;
    for await (const event of watcher) {
      if (event.kind !== "create" && event.kind !== "modify") continue;
      seen += event.paths.filter((p) => !HOUSEKEEPING.test(p)).length;
      if (seen >= n) return `write ${event.paths[0]?.slice(dir.length)}`;
    }
    return "watch closed";
  })();
  return { reached, cancel: () => watcher.close() };
}

Deno.test(`kill -9 at ${KILLS} random moments of --batch-api runs never sends a request in a second job`, async () => {
  const seed = Number(Deno.env.get("RETAKE_KILL_SEED") ?? Date.now() % 1_000_000);
  const random = seeded(seed);
  const standIn = await startGeminiBatchStandIn({ key: KEY, pollsPerState: 2 });
  const cwd = await Deno.makeTempDir({ prefix: "retake-batch-kill-" });
  const env = { GEMINI_API_KEY: KEY, GEMINI_BASE_URL: standIn.url };
  await Deno.writeTextFile(
    `${cwd}/retake.config.json`,
    JSON.stringify({ batchPollMs: 20, batchGatherMs: 300 }),
  );
  const moments: string[] = [];
  let set = 0;
  const argsOf = (n: number) => [
    "--out",
    "out",
    "--name",
    `set${n}`,
    "--batch-api",
    "--generator",
    "gemini",
    "--critic",
    "gemini",
    "--model",
    "nano-banana-2",
    "--size",
    "512x512",
    "-n",
    "2",
    `set${n}.json`,
  ];
  try {
    await Deno.writeTextFile(`${cwd}/set0.json`, promptFile(0));
    while (moments.length < KILLS) {
      const dir = `${cwd}/out/set${set}`;
      const onSave = random() < 0.5 && await Deno.stat(dir).then(() => true, () => false);
      // The first kill, and some after, as a job is created: the moment a run can lose a name.
      const onCreate = !onSave && (moments.length === 0 || random() < 0.4);
      const n = onCreate
        ? 1 + Math.floor(random() * 2)
        : 1 + Math.floor(random() * (onSave ? 30 : 10));
      const trigger = onSave
        ? nthWrite(dir, n)
        : nthCall(standIn, n, onCreate ? "create" : undefined);
      const child = cliCommand(argsOf(set), { cwd, env, output: "null" }).spawn();
      const outcome = await Promise.race([
        trigger.reached.then((moment) => ({ moment })),
        child.status.then((status) => ({ status })),
      ]);
      trigger.cancel();
      if ("moment" in outcome) {
        child.kill("SIGKILL");
        await child.status;
        moments.push(`set${set}: ${outcome.moment}`);
      } else {
        // The batch ran to its end before the moment came: the next kills go to a new batch.
        assert.equal(outcome.status.code, 0, `set${set} ended with ${outcome.status.code}`);
        await Deno.writeTextFile(`${cwd}/set${++set}.json`, promptFile(set));
      }
    }
    // Every batch, run to its end, is whole.
    let steps = 0;
    for (let s = 0; s <= set; s++) {
      const result = await runCli(argsOf(s), { cwd, env });
      assert.equal(result.code, 0, result.stderr);
      for (const id of ["fox", "whale", "tower", "forest", "harbour"]) {
        const record: PromptRecord = JSON.parse(
          await Deno.readTextFile(`${cwd}/out/set${s}/${id}/metadata.json`),
        );
        assert.equal(record.status, "completed", `set${s}/${id}`);
        assert.equal(record.iterations.length, 2);
        for (const it of record.iterations) await Deno.stat(`${cwd}/out/set${s}/${id}/${it.image}`);
        steps += 1 + record.iterations.flatMap((it) => Object.values(it.steps)).length;
      }
    }
    // Counted where money is spent: no request went in two jobs.
    const jobsOf = new Map<string, string[]>();
    for (const job of standIn.jobs) {
      for (const line of job.lines) {
        jobsOf.set(line.key!, [...(jobsOf.get(line.key!) ?? []), job.name]);
      }
    }
    const twice = [...jobsOf].filter(([, jobs]) => jobs.length > 1);
    assert.deepEqual(
      twice,
      [],
      `seed ${seed}; kills at: ${moments.join("; ")}`,
    );
    // One request per step saved, each in one job.
    assert.equal(jobsOf.size, steps);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await standIn.close();
  }
});
