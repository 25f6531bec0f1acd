/**
 * Never lose work or money: resume, kill -9 at random moments, Ctrl-C, the cost budget. The real
 * CLI as a subprocess against the stand-in servers.
 */
import assert from "node:assert/strict";
import sharp from "sharp";
import type { PromptRecord } from "../src/output/record.ts";
import { cliCommand, EXAMPLE, runCli } from "./cli.ts";
import { type FalStandIn, startFalStandIn } from "./fal_standin.ts";
import { type GeminiStandIn, startGeminiStandIn } from "./gemini_standin.ts";
import { fillDisk } from "../src/output/_test_small_disk.ts";

const FAL_KEY = "resume-fal-key-55aa";
const GEMINI_KEY = "resume-gemini-key-66bb";

const BATCH = {
  prompts: Array.from({ length: 6 }, (_, i) => ({
    id: `p${i}`,
    title: `Scene ${i}`,
    prompt: `A quiet lake number ${i} at sunset with pine trees`,
  })),
};

interface Servers {
  fal: FalStandIn;
  gemini: GeminiStandIn;
  env: Record<string, string>;
  close(): Promise<void>;
}

async function servers(latencyMs = 0): Promise<Servers> {
  const fal = await startFalStandIn({ key: FAL_KEY, latencyMs });
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY, latencyMs });
  return {
    fal,
    gemini,
    env: {
      FAL_KEY,
      GEMINI_API_KEY: GEMINI_KEY,
      FAL_BASE_URL: fal.url,
      GEMINI_BASE_URL: gemini.url,
      RETAKE_RETRY_TIME_SCALE: "0.001",
    },
    close: async () => {
      await fal.close();
      await gemini.close();
    },
  };
}

async function setup(): Promise<string> {
  const cwd = await Deno.makeTempDir({ prefix: "retake-resume-" });
  await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify(BATCH));
  await Deno.writeTextFile(
    `${cwd}/retake.config.json`,
    JSON.stringify({ fal: { pollIntervalMs: 5 }, retry: { minTimeoutMs: 5, maxTimeoutMs: 20 } }),
  );
  return cwd;
}

function paidCalls(s: Servers): number {
  return s.fal.calls("submit").length + s.gemini.requests.length;
}

async function record(dir: string, id: string): Promise<PromptRecord> {
  return JSON.parse(await Deno.readTextFile(`${dir}/${id}/metadata.json`));
}

/** Every JSON parses, every image decodes, metadata names only files that exist. */
async function assertNothingCorrupt(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) {
      await assertNothingCorrupt(path);
    } else if (entry.name.endsWith(".json")) {
      JSON.parse(await Deno.readTextFile(path));
    } else if (entry.name.endsWith(".jsonl")) {
      for (const line of (await Deno.readTextFile(path)).split("\n").filter(Boolean)) {
        JSON.parse(line);
      }
    } else if (/\.(png|jpg)$/.test(entry.name)) {
      const stats = await sharp(path).stats();
      assert.ok(stats.channels.length >= 3, `${path} decodes`);
    }
    if (entry.name === "metadata.json") {
      const rec: PromptRecord = JSON.parse(await Deno.readTextFile(path));
      for (const it of rec.iterations) {
        if (it.image) await Deno.stat(`${dir}/${it.image}`);
      }
    }
  }
}

Deno.test("a finished batch run again makes zero provider calls; an edited prompt is redone and the old attempt kept", async () => {
  const s = await servers();
  const cwd = await setup();
  try {
    const first = await runCli(["--out", "out", "batch.json"], { cwd, env: s.env });
    assert.equal(first.code, 0, first.stderr);
    const callsAfterFirst = paidCalls(s);
    assert.ok(callsAfterFirst >= 6 * 4);

    const again = await runCli(["--out", "out", "batch.json"], { cwd, env: s.env });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(paidCalls(s), callsAfterFirst, "no paid call for a completed batch");
    assert.match(again.stdout, /unchanged since the last run/);

    const edited = structuredClone(BATCH);
    edited.prompts[2]!.prompt = "A stormy lake at night with lightning";
    await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify(edited));
    const third = await runCli(["--out", "out", "batch.json"], { cwd, env: s.env });
    assert.equal(third.code, 0, third.stderr);
    const newCalls = paidCalls(s) - callsAfterFirst;
    // One prompt: 2 generations + its brief + 2 critiques + 1 refinement.
    assert.equal(newCalls, 6);
    const rec = await record(`${cwd}/out/batch`, "p2");
    assert.equal(rec.iterations[0]!.prompt, "A stormy lake at night with lightning");
    const aside = [...Deno.readDirSync(`${cwd}/out/batch/_previous`)].map((e) => e.name);
    assert.equal(aside.length, 1);
    assert.match(aside[0]!, /^p2-\d{8}T\d{6}Z$/);
    const old: PromptRecord = JSON.parse(
      await Deno.readTextFile(`${cwd}/out/batch/_previous/${aside[0]}/metadata.json`),
    );
    assert.equal(old.iterations[0]!.prompt, BATCH.prompts[2]!.prompt);

    const only = await runCli(["--out", "out", "--force", "--only", "p0", "batch.json"], {
      cwd,
      env: s.env,
    });
    assert.equal(only.code, 0, only.stderr);
    assert.equal(paidCalls(s) - callsAfterFirst, 12, "--force --only p0 redoes just p0");
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("kill -9 at random moments, resume each time: no corrupt file, all complete, no saved step paid twice", async () => {
  const s = await servers(60);
  const cwd = await setup();
  let seed = 20261124;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  try {
    let kills = 0;
    for (let round = 0; round < 12; round++) {
      const child = cliCommand(["--out", "out", "-q", "-c", "2", "batch.json"], {
        cwd,
        env: s.env,
        output: "null",
      }).spawn();
      // Killed after it has made 1–4 more paid calls: at a moment of the run's own progress,
      // which a faster or slower machine reaches the same way.
      const target = paidCalls(s) + 1 + Math.floor(random() * 4);
      let exited = false;
      const status = child.status.finally(() => (exited = true));
      while (!exited && paidCalls(s) < target) await new Promise((r) => setTimeout(r, 2));
      if (!exited) {
        try {
          child.kill("SIGKILL");
          kills++;
        } catch {
          // It exited between the check and the kill: nothing to kill.
        }
      }
      const { success } = await status;
      await assertNothingCorrupt(`${cwd}/out`).catch((error) => {
        throw new Error(`corrupt after round ${round}: ${error.message}`);
      });
      if (success) break;
    }
    assert.ok(kills >= 3, `killed ${kills} times`);
    const final = await runCli(["--out", "out", "batch.json"], { cwd, env: s.env });
    assert.equal(final.code, 0, final.stderr);
    const dir = `${cwd}/out/batch`;
    for (const { id } of BATCH.prompts) {
      const rec = await record(dir, id);
      assert.equal(rec.status, "completed");
      assert.equal(rec.iterations.length, 2);
    }
    // A step, once saved, is never done again: across all runs the log shows at most one
    // successful end per (prompt, step, iteration).
    const ends = new Map<string, number>();
    for (const line of (await Deno.readTextFile(`${dir}/log.jsonl`)).split("\n")) {
      if (!line) continue;
      const r = JSON.parse(line);
      if (r.outcome !== "ok" || !r.operation) continue;
      const key = `${r.promptId}/${r.operation}/${r.iteration}`;
      ends.set(key, (ends.get(key) ?? 0) + 1);
    }
    for (const [key, count] of ends) assert.equal(count, 1, `${key} done ${count} times`);
    // Paid calls: at most one extra per kill (a call in flight when killed is lost).
    const needed = BATCH.prompts.length * 6;
    assert.ok(paidCalls(s) <= needed + kills * 4, `${paidCalls(s)} calls for ${needed} steps`);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("Ctrl-C drains: calls in flight are saved, exit 130, the next run resumes", async () => {
  const s = await servers(150);
  const cwd = await setup();
  try {
    const child = cliCommand(["--out", "out", "batch.json"], { cwd, env: s.env }).spawn();
    // Wait until the first generation is under way, then interrupt: for the event, however long
    // a busy machine takes to get there, not for a time.
    let exited = false;
    const output = child.output().finally(() => (exited = true));
    while (s.fal.calls("submit").length === 0 && !exited) {
      await new Promise((r) => setTimeout(r, 20));
    }
    if (!exited) child.kill("SIGINT");
    const out = await output;
    const stderr = new TextDecoder().decode(out.stderr);
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 130, stderr);
    assert.match(stderr, /Interrupted/);
    assert.match(stdout, /run again to resume/);
    const dir = `${cwd}/out/batch`;
    const run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
    assert.equal(run.status, "interrupted");
    const started = s.fal.calls("submit").length;
    // The generations in flight finished and were saved, not lost.
    let saved = 0;
    for (const { id } of BATCH.prompts) {
      try {
        const rec = await record(dir, id);
        assert.notEqual(rec.status, "failed");
        saved += rec.iterations.filter((it) => it.image).length;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    assert.equal(saved, started, "every generation started before Ctrl-C was saved");
    await assertNothingCorrupt(`${cwd}/out`);

    const resumed = await runCli(["--out", "out", "batch.json"], { cwd, env: s.env });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(
      s.fal.calls("submit").length,
      BATCH.prompts.length * 2,
      "resume generates only what was missing",
    );
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test("--max-cost stops starting paid steps once the budget is reached", async () => {
  const s = await servers();
  const cwd = await setup();
  try {
    const result = await runCli(["--out", "out", "-c", "1", "--max-cost", "0.005", "batch.json"], {
      cwd,
      env: s.env,
    });
    assert.equal(result.code, 4, result.stderr);
    assert.match(result.stderr, /max-cost/);
    const run = JSON.parse(await Deno.readTextFile(`${cwd}/out/batch/run.json`));
    assert.equal(run.status, "stopped at the cost budget");
    assert.ok(run.totals.costUsd < 0.02, `spent ${run.totals.costUsd}`);
    assert.ok(s.fal.calls("submit").length < BATCH.prompts.length * 2);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await s.close();
  }
});

Deno.test({
  name:
    "a full disk stops the run with a clear message, nothing corrupt; it resumes once space is freed",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const cwd = await Deno.makeTempDir({ prefix: "retake-diskfull-" });
    const mnt = `${cwd}/small`;
    await Deno.mkdir(mnt);
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=600k", "tmpfs", mnt],
      stderr: "null",
    }).output();
    if (!mount.success) {
      await Deno.remove(cwd, { recursive: true });
      return; // No mount permission in this sandbox: nothing to test here.
    }
    try {
      const full = await runCli(["--out", `${mnt}/out`, EXAMPLE], { cwd });
      assert.equal(full.code, 3, full.stderr);
      assert.match(full.stderr, /the disk is full; free some space and run again to resume/);
      await assertNothingCorrupt(`${mnt}/out`);

      const grow = await new Deno.Command("mount", {
        args: ["-o", "remount,size=20m", mnt],
      }).output();
      assert.ok(grow.success);
      const again = await runCli(
        ["--out", `${mnt}/out`, EXAMPLE],
        { cwd },
      );
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /7\/7 prompts completed/);
      // A write cut short by the stop leaves only a hidden temp file, which resume removes.
      const temps = [...Deno.readDirSync(`${mnt}/out/example`)].flatMap((e) =>
        e.isDirectory ? [...Deno.readDirSync(`${mnt}/out/example/${e.name}`)] : [e]
      ).filter((e) => e.name.endsWith(".tmp"));
      assert.deepEqual(temps, []);
    } finally {
      await new Deno.Command("umount", { args: [mnt] }).output();
      await Deno.remove(cwd, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a full disk with paid providers: the first failed write stops the run before the next paid call; run.json says so",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const s = await servers();
    const cwd = await setup();
    const mnt = `${cwd}/small`;
    await Deno.mkdir(mnt);
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=400k", "tmpfs", mnt],
      stderr: "null",
    }).output();
    if (!mount.success) {
      await Deno.remove(cwd, { recursive: true });
      await s.close();
      return; // No mount permission in this sandbox: nothing to test here.
    }
    try {
      const prompts = Array.from({ length: 12 }, (_, i) => ({
        id: `p${i}`,
        prompt: `A busy market number ${i} at noon with striped awnings`,
      }));
      await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify({ prompts }));
      const full = await runCli(["--out", `${mnt}/out`, "-c", "2", "batch.json"], {
        cwd,
        env: s.env,
      });
      assert.equal(full.code, 3, full.stderr);
      assert.match(full.stderr, /the disk is full; free some space and run again to resume/);
      // runCli has waited for the process to exit: this is the run's last word.
      const run = JSON.parse(await Deno.readTextFile(`${mnt}/out/batch/run.json`));
      assert.equal(run.status, "stopped", full.stderr);
      assert.match(run.stopReason, /the disk is full; free some space and run again to resume/);
      // With two generations in flight, at most the other one finishes after the failed write.
      let saved = 0;
      for await (const entry of Deno.readDir(`${mnt}/out/batch`)) {
        if (!entry.isDirectory) continue;
        for await (const file of Deno.readDir(`${mnt}/out/batch/${entry.name}`)) {
          if (/^iteration-\d+\.png$/.test(file.name)) saved++;
        }
      }
      const submitted = s.fal.calls("submit").length;
      assert.ok(submitted <= saved + 2, `${submitted} paid generations for ${saved} saved images`);
    } finally {
      await new Deno.Command("umount", { args: [mnt] }).output();
      await Deno.remove(cwd, { recursive: true });
      await s.close();
    }
  },
});

/** Mounts a tmpfs of `size` on a new folder in `cwd`; undefined without mount permission. */
async function smallDisk(cwd: string, size: string): Promise<string | undefined> {
  const mnt = `${cwd}/small`;
  await Deno.mkdir(mnt);
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", mnt],
    stderr: "null",
  }).output();
  return mount.success ? mnt : undefined;
}

/** A pass-through proxy to `target` that holds the first POST (the first paid call) until released. */
function holdFirstPost(target: string) {
  const arrived = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  let held = false;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      if (req.method === "POST" && !held) {
        held = true;
        arrived.resolve();
        await released.promise;
      }
      const url = new URL(req.url);
      const headers = new Headers(req.headers);
      headers.delete("host");
      const answer = await fetch(`${target}${url.pathname}${url.search}`, {
        method: req.method,
        headers,
        ...(req.method === "POST" && { body: await req.arrayBuffer() }),
      });
      // fetch has already decoded the body: pass it on as plain bytes.
      const out = new Headers(answer.headers);
      out.delete("content-encoding");
      out.delete("content-length");
      return new Response(await answer.arrayBuffer(), { status: answer.status, headers: out });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    arrived: arrived.promise,
    release: () => released.resolve(),
    close: () => server.shutdown(),
  };
}

/** Paid steps a prompt's files hold: its brief, and each round's image, critique and refinement. */
async function savedSteps(dir: string): Promise<{ fal: number; gemini: number }> {
  let fal = 0;
  let gemini = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isDirectory || !/^p\d+$/.test(entry.name)) continue;
    const rec = await record(dir, entry.name).catch(() => undefined);
    if (rec === undefined) continue;
    if (rec.brief !== undefined) gemini++;
    for (const it of rec.iterations) {
      if (it.image !== undefined) fal++;
      if (it.critique !== undefined) gemini++;
      if (it.refinedPrompt !== undefined) gemini++;
    }
  }
  return { fal, gemini };
}

Deno.test({
  name:
    "a disk another program fills to the last byte while a paid call runs: the run stops at the failed write, run.json says stopped and why",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const s = await servers();
    const proxy = holdFirstPost(s.gemini.url);
    const cwd = await setup();
    const mnt = await smallDisk(cwd, "3m");
    if (mnt === undefined) {
      await Deno.remove(cwd, { recursive: true });
      await proxy.close();
      await s.close();
      return; // No mount permission in this sandbox: nothing to test here.
    }
    try {
      await Deno.writeTextFile(
        `${cwd}/batch.json`,
        JSON.stringify({ prompts: BATCH.prompts.slice(0, 1) }),
      );
      const env = { ...s.env, GEMINI_BASE_URL: proxy.url };
      const child = cliCommand(["--out", `${mnt}/out`, "batch.json"], { cwd, env }).spawn();
      const output = child.output();
      // The first Gemini call (the brief, after the first image) waits here while the disk fills.
      const exited = await Promise.race([proxy.arrived.then(() => false), output.then(() => true)]);
      if (exited) assert.fail(new TextDecoder().decode((await output).stderr));
      await fillDisk(mnt);
      proxy.release();
      const full = await output;
      const stderr = new TextDecoder().decode(full.stderr);
      assert.equal(full.code, 3, stderr);
      assert.match(stderr, /the disk is full; free some space and run again to resume/);
      const run = JSON.parse(await Deno.readTextFile(`${mnt}/out/batch/run.json`));
      assert.equal(run.status, "stopped", stderr);
      assert.match(run.stopReason, /brief\.json': the disk is full/);
      assert.equal(run.prompts[0].status, "failed");
      assert.match(run.prompts[0].error.message, /the disk is full/);
      // Paid: the image, saved, and the brief the full disk refused; nothing after.
      assert.equal(s.fal.calls("submit").length, 1);
      assert.equal(s.gemini.requests.length, 1);
      await assertNothingCorrupt(`${mnt}/out`);

      await Deno.remove(`${mnt}/filler`);
      const grow = await new Deno.Command("mount", { args: ["-o", "remount,size=20m", mnt] })
        .output();
      assert.ok(grow.success);
      const again = await runCli(["--out", `${mnt}/out`, "batch.json"], { cwd, env: s.env });
      assert.equal(again.code, 0, again.stderr);
      const done = JSON.parse(await Deno.readTextFile(`${mnt}/out/batch/run.json`));
      assert.equal(done.status, "completed");
      assert.equal(done.stopReason, undefined);
      // The minimum for one prompt is 2 images + brief + 2 critiques + 1 refinement; only the
      // brief the full disk refused is paid twice.
      assert.equal(s.fal.calls("submit").length, 2);
      assert.equal(s.gemini.requests.length, 4 + 1);
      const leftovers = [...Deno.readDirSync(`${mnt}/out/batch`)].filter((e) =>
        e.name.endsWith(".tmp")
      );
      assert.deepEqual(leftovers, []);
    } finally {
      await new Deno.Command("umount", { args: [mnt] }).output();
      await Deno.remove(cwd, { recursive: true });
      await proxy.close();
      await s.close();
    }
  },
});

Deno.test({
  name:
    "a 3 MB disk with paid providers: the run stops at the first failed write, run.json says stopped and why, and the resume pays only for what was lost",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const s = await servers();
    const cwd = await setup();
    const mnt = await smallDisk(cwd, "3m");
    if (mnt === undefined) {
      await Deno.remove(cwd, { recursive: true });
      await s.close();
      return; // No mount permission in this sandbox: nothing to test here.
    }
    try {
      const prompts = Array.from({ length: 12 }, (_, i) => ({
        id: `p${i}`,
        prompt: `A busy market number ${i} at noon with striped awnings`,
      }));
      await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify({ prompts }));
      const full = await runCli(["--out", `${mnt}/out`, "-c", "2", "batch.json"], {
        cwd,
        env: s.env,
      });
      assert.equal(full.code, 3, full.stderr);
      assert.match(full.stderr, /the disk is full; free some space and run again to resume/);
      const dir = `${mnt}/out/batch`;
      const run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
      assert.equal(run.status, "stopped", full.stderr);
      assert.match(run.stopReason, /the disk is full; free some space and run again to resume/);
      await assertNothingCorrupt(`${mnt}/out`);
      // Paid calls beyond what was saved: at most the calls in flight when the first write
      // failed (-c 2: two generations; two critiques or briefs and two refinements).
      const saved = await savedSteps(dir);
      const fal = s.fal.calls("submit").length;
      const gemini = s.gemini.requests.length;
      assert.ok(fal <= saved.fal + 2, `${fal} generations paid, ${saved.fal} saved`);
      assert.ok(gemini <= saved.gemini + 4, `${gemini} Gemini calls paid, ${saved.gemini} saved`);

      const grow = await new Deno.Command("mount", { args: ["-o", "remount,size=100m", mnt] })
        .output();
      assert.ok(grow.success);
      const again = await runCli(["--out", `${mnt}/out`, "-c", "2", "batch.json"], {
        cwd,
        env: s.env,
      });
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /12\/12 prompts completed/);
      // The minimum for the batch: per prompt 2 images, a brief, 2 critiques, a refinement.
      // Only the calls whose result the full disk refused are paid twice.
      const lostFal = fal - saved.fal;
      const lostGemini = gemini - saved.gemini;
      // (A generation fal accepted but the disk refused may be fetched again unpaid.)
      const totalFal = s.fal.calls("submit").length;
      const totalGemini = s.gemini.requests.length;
      assert.ok(totalFal >= 12 * 2 && totalFal <= 12 * 2 + lostFal, `${totalFal} generations`);
      assert.ok(
        totalGemini >= 12 * 4 && totalGemini <= 12 * 4 + lostGemini,
        `${totalGemini} Gemini calls`,
      );
    } finally {
      await new Deno.Command("umount", { args: [mnt] }).output();
      await Deno.remove(cwd, { recursive: true });
      await s.close();
    }
  },
});

Deno.test("a generation fal accepted before kill -9 is recovered from fal, not paid for again", async () => {
  const fal = await startFalStandIn({ key: FAL_KEY, latencyMs: 1500 });
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  const cwd = await setup();
  await Deno.writeTextFile(
    `${cwd}/batch.json`,
    JSON.stringify({ prompts: BATCH.prompts.slice(0, 1) }),
  );
  const env = {
    FAL_KEY,
    GEMINI_API_KEY: GEMINI_KEY,
    FAL_BASE_URL: fal.url,
    GEMINI_BASE_URL: gemini.url,
    RETAKE_RETRY_TIME_SCALE: "0.001",
  };
  try {
    const child = cliCommand(["--out", "out", "-q", "batch.json"], { cwd, env, output: "null" })
      .spawn();
    // Killed once it has recorded the request fal accepted (the job runs 1.5 s longer).
    const pendingSaved = async () => {
      try {
        return (await record(`${cwd}/out/batch`, "p0")).pending !== undefined;
      } catch {
        return false; // Not written yet, or caught mid-rename.
      }
    };
    while (!(await pendingSaved())) await new Promise((r) => setTimeout(r, 5));
    child.kill("SIGKILL");
    await child.status;
    const accepted = fal.calls("submit")[0]!.requestId!;
    const before: PromptRecord = await record(`${cwd}/out/batch`, "p0");
    assert.equal(before.pending?.requestId, accepted);
    assert.equal(before.iterations.length, 0);

    const resumed = await runCli(["--out", "out", "batch.json"], { cwd, env });
    assert.equal(resumed.code, 0, resumed.stderr);
    const after = await record(`${cwd}/out/batch`, "p0");
    assert.equal(after.iterations[0]!.steps.generate!.requestId, accepted);
    assert.equal(after.pending, undefined);
    // Two generations in all: the recovered one and iteration 2; no second payment.
    assert.equal(fal.calls("submit").length, 2);
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await fal.close();
    await gemini.close();
  }
});
