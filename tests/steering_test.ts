/**
 * Steering a batch from outside the run: a reject with a note left in `feedback.jsonl` (as the
 * studio writes it) is honoured by the next plain `retake run` and by `runPendingRejects`, with
 * exactly one more round for that prompt and no call for the others.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../src/config/load.ts";
import type { PromptRecord } from "../src/output/record.ts";
import { runBatch, type SteeredIo } from "../src/batch/run.ts";
import { runPendingRejects } from "../src/studio/pending.ts";
import { Steering } from "../src/steering/steering.ts";
import { runCli } from "./cli.ts";
import { startFalStandIn } from "./fal_standin.ts";
import { startGeminiStandIn } from "./gemini_standin.ts";

const FAL_KEY = "steering-fal-key-77cc";
const GEMINI_KEY = "steering-gemini-key-88dd";
const NOTE = "Put a small red rowing boat on the water";

const BATCH = {
  prompts: Array.from({ length: 3 }, (_, i) => ({
    id: `p${i}`,
    title: `Scene ${i}`,
    prompt: `A quiet lake number ${i} at sunset with pine trees`,
  })),
};

async function setup(): Promise<string> {
  const cwd = await Deno.makeTempDir({ prefix: "retake-steering-" });
  await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify(BATCH));
  await Deno.writeTextFile(
    `${cwd}/retake.config.json`,
    JSON.stringify({ fal: { pollIntervalMs: 5 }, retry: { minTimeoutMs: 5, maxTimeoutMs: 20 } }),
  );
  return cwd;
}

async function record(batchDir: string, id: string): Promise<PromptRecord> {
  return JSON.parse(await Deno.readTextFile(`${batchDir}/${id}/metadata.json`));
}

async function feedbackLines(batchDir: string): Promise<Array<Record<string, unknown>>> {
  const text = await Deno.readTextFile(`${batchDir}/feedback.jsonl`);
  return text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

Deno.test("a plain retake run honours a pending note: one more round for that prompt, nothing for the others", async () => {
  const fal = await startFalStandIn({ key: FAL_KEY });
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  const env = {
    FAL_KEY,
    GEMINI_API_KEY: GEMINI_KEY,
    FAL_BASE_URL: fal.url,
    GEMINI_BASE_URL: gemini.url,
    RETAKE_RETRY_TIME_SCALE: "0.001",
  };
  const cwd = await setup();
  const batchDir = `${cwd}/out/batch`;
  try {
    const first = await runCli(["--out", "out", "-n", "2", "batch.json"], { cwd, env });
    assert.equal(first.code, 0, first.stderr);
    const before = { fal: fal.calls("submit").length, gemini: gemini.requests.length };

    const steering = await Steering.open(batchDir);
    const reject = await steering.apply({ type: "reject", id: "p1", note: NOTE, iteration: 2 });

    const second = await runCli(["--out", "out", "-n", "2", "batch.json"], { cwd, env });
    assert.equal(second.code, 0, second.stderr);
    // One round: a refinement of round 2 (with the note), a generation and a critique of round 3.
    assert.equal(fal.calls("submit").length - before.fal, 1);
    const added = gemini.requests.slice(before.gemini);
    assert.deepEqual(added.map((r) => r.kind).sort(), ["critique", "refine"]);
    const refine = added.find((r) => r.kind === "refine")!;
    assert.ok(refine.prompt.startsWith("The user rejected the image from round 2"), refine.prompt);
    assert.ok(refine.prompt.indexOf(NOTE) < refine.prompt.indexOf("Original prompt:"));
    // The new round is drawn from the refined prompt the note led.
    assert.equal(
      fal.calls("submit").at(-1)!.prompt,
      (await record(batchDir, "p1")).iterations[2]!.prompt,
    );

    const p1 = await record(batchDir, "p1");
    assert.equal(p1.status, "completed");
    assert.equal(p1.iterations.length, 3);
    assert.equal(p1.iterations[1]!.next?.note, NOTE);
    assert.equal(p1.iterations[2]!.note, NOTE);
    for (const id of ["p0", "p2"]) assert.equal((await record(batchDir, id)).iterations.length, 2);
    assert.ok(
      (await feedbackLines(batchDir)).some((line) => line.done === reject.seq),
      "feedback.jsonl marks the note done",
    );

    const third = await runCli(["--out", "out", "-n", "2", "batch.json"], { cwd, env });
    assert.equal(third.code, 0, third.stderr);
    assert.equal(fal.calls("submit").length - before.fal, 1, "a note is acted on once");
    assert.equal(gemini.requests.length - before.gemini, 2);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await fal.close();
    await gemini.close();
  }
});

Deno.test("runPendingRejects() gives an idle batch's rejected prompt its round, offline, with the note in its record", async () => {
  const cwd = await setup();
  const batchDir = `${cwd}/out/batch`;
  try {
    // Absolute, as `retake serve` may run from anywhere: run.json keeps the path as given.
    const first = await runCli(["--out", `${cwd}/out`, "-n", "2", `${cwd}/batch.json`], { cwd });
    assert.equal(first.code, 0, first.stderr);
    const steering = await Steering.open(batchDir);
    await steering.apply({ type: "reject", id: "p0", note: NOTE });
    await steering.apply({ type: "cancel", id: "p2" });
    const untouched = await Deno.readTextFile(`${batchDir}/p1/metadata.json`);

    const err: string[] = [];
    const io: SteeredIo = {
      writeOut: () => {},
      writeErr: (text) => err.push(text),
      isTerminal: false,
      steering,
    };
    const result = await runPendingRejects(batchDir, io, {
      env: {},
      cwd,
      readTextFile: (path) => Deno.readTextFile(path),
    });
    assert.equal(result?.exitCode, 0, err.join(""));
    const p0 = await record(batchDir, "p0");
    assert.equal(p0.iterations.length, 3);
    assert.equal(p0.iterations[2]!.note, NOTE);
    // The offline refiner puts the note first in the prompt it writes.
    assert.ok(p0.iterations[2]!.prompt.startsWith(NOTE), p0.iterations[2]!.prompt);
    assert.equal(await Deno.readTextFile(`${batchDir}/p1/metadata.json`), untouched);
    assert.deepEqual(steering.pendingIds(), []);
    assert.equal(
      await runPendingRejects(batchDir, io, {
        env: {},
        cwd,
        readTextFile: (path) => Deno.readTextFile(path),
      }),
      undefined,
      "nothing left to do",
    );
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("a note and a favourite sent during a run: one more round for the one, best.png follows the other", async () => {
  const cwd = await setup();
  const batchDir = `${cwd}/out/batch`;
  try {
    const { config, promptFiles } = await loadConfig({
      args: ["--out", `${cwd}/out`, "-n", "2", "--quiet", `${cwd}/batch.json`],
      env: {},
      cwd,
      readTextFile: (path) => Deno.readTextFile(path),
    });
    const steering = await Steering.open(batchDir);
    const ends: string[] = [];
    let sent: Promise<unknown> | undefined;
    let picked: Promise<unknown> | undefined;
    let other = 0;
    const io: SteeredIo = {
      writeOut: () => {},
      writeErr: () => {},
      isTerminal: false,
      steering,
      onEvent: (event) => {
        if (event.type !== "prompt-end") return;
        ends.push(event.id);
        // As the studio would: the user saw p0 finish and sent it back.
        if (event.id === "p0") sent ??= steering.apply({ type: "reject", id: "p0", note: NOTE });
        // Picked while the run still holds p1's record: the run must not lose it.
        // The round the critic did not pick, so best.png has to change.
        if (event.id === "p1" && !picked) {
          const best = JSON.parse(Deno.readTextFileSync(`${batchDir}/p1/metadata.json`))
            .bestIteration;
          other = best === 1 ? 2 : 1;
          picked = steering.apply({ type: "favourite", id: "p1", iteration: other });
        }
      },
    };
    const result = await runBatch(config, promptFiles, io);
    await sent;
    await picked;
    assert.equal(result.exitCode, 0);
    const p1 = await record(batchDir, "p1");
    assert.equal(p1.chosen, other);
    assert.notEqual(p1.bestIteration, other);
    assert.equal(p1.bestImage, "best.png");
    assert.deepEqual(
      await Deno.readFile(`${batchDir}/p1/best.png`),
      await Deno.readFile(`${batchDir}/p1/iteration-${other}.png`),
      "best.png follows the favourite",
    );
    assert.deepEqual(ends.filter((id) => id === "p0"), ["p0", "p0"], "p0 ended, then ended again");
    const p0 = await record(batchDir, "p0");
    assert.equal(p0.iterations.length, 3);
    assert.equal(p0.iterations[2]!.note, NOTE);
    assert.deepEqual(
      result.outcomes.map((o) => [o.id, o.iterations]).sort(),
      [["p0", 3], ["p1", 2], ["p2", 2]],
      "one outcome per prompt, p0's from its last round",
    );
    assert.deepEqual(steering.pendingIds(), []);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("a cancelled prompt is not run, not counted as failed, and stays cancelled until --force", async () => {
  const cwd = await setup();
  const batchDir = `${cwd}/out/batch`;
  try {
    await Deno.mkdir(batchDir, { recursive: true });
    await (await Steering.open(batchDir)).apply({ type: "cancel", id: "p2" });
    const first = await runCli(["--out", "out", "-n", "2", "batch.json"], { cwd });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /2\/3 prompts completed, 0 failed/);
    assert.match(first.stdout, /cancel {2}p2: cancelled in the studio after 0 iteration\(s\)/);
    const p2 = await record(batchDir, "p2");
    assert.equal(p2.status, "interrupted");
    assert.equal(p2.stopCause, "cancel");
    assert.deepEqual(p2.iterations, []);

    const again = await runCli(["--out", "out", "-n", "2", "batch.json"], { cwd });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((await record(batchDir, "p2")).iterations, [], "a later run leaves it be");

    const forced = await runCli([
      "--out",
      "out",
      "-n",
      "2",
      "--force",
      "--only",
      "p2",
      "batch.json",
    ], {
      cwd,
    });
    assert.equal(forced.code, 0, forced.stderr);
    const redone = await record(batchDir, "p2");
    assert.equal(redone.status, "completed");
    assert.equal(redone.iterations.length, 2);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
