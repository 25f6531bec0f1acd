/**
 * The real CLI as a subprocess, on real files: what a user gets from `deno task run`.
 */
import assert from "node:assert/strict";
import sharp from "sharp";
import type { PromptRecord } from "../src/output/record.ts";
import { EXAMPLE, runCli } from "./cli.ts";

async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = prefix + entry.name;
    if (entry.isDirectory) out.push(...await listTree(`${dir}/${entry.name}`, `${path}/`));
    else out.push(path);
  }
  return out.sort();
}

Deno.test("retake runs prompts/example.json offline and writes the full tree for every prompt", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-cli-" });
  try {
    const result = await runCli(["--out", "out", EXAMPLE], { cwd });
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /Running offline with the embedded local generator and local critic and refiner/,
    );
    assert.match(result.stdout, /7\/7 prompts completed, 0 failed/);

    const example = JSON.parse(await Deno.readTextFile(EXAMPLE)).prompts as Array<
      { id: string; prompt: string; title: string }
    >;
    const tree = await listTree(`${cwd}/out/example`);
    assert.ok(tree.includes("run.json"));
    assert.ok(tree.includes("log.jsonl"));
    assert.ok(!tree.some((f) => f.endsWith(".tmp")), "no temp files left behind");
    for (const { id, prompt, title } of example) {
      for (
        const file of [
          "prompt.json",
          "iteration-1.png",
          "iteration-1.critique.json",
          "iteration-1.refined-prompt.txt",
          "iteration-2.png",
          "iteration-2.critique.json",
          "metadata.json",
        ]
      ) {
        assert.ok(tree.includes(`${id}/${file}`), `${id}/${file} missing`);
      }
      assert.ok(!tree.includes(`${id}/iteration-2.refined-prompt.txt`));
      const meta: PromptRecord = JSON.parse(
        await Deno.readTextFile(`${cwd}/out/example/${id}/metadata.json`),
      );
      assert.equal(meta.status, "completed");
      assert.equal(meta.title, title);
      assert.equal(meta.iterations.length, 2);
      const [first, second] = meta.iterations;
      assert.equal(first!.prompt, prompt);
      assert.equal(second!.prompt, first!.refinedPrompt);
      assert.equal(first!.seed, second!.seed, "one seed per prompt by default");
      assert.equal(first!.image, "iteration-1.png");
      assert.ok(first!.critique!.score >= 0 && first!.critique!.score <= 10);
      assert.equal(first!.steps.generate!.provider, "local");
      assert.equal(first!.steps.generate!.attempts, 1);
      assert.equal(typeof first!.steps.critique!.durationMs, "number");
      const image = await sharp(`${cwd}/out/example/${id}/iteration-2.png`).metadata();
      assert.equal(image.format, "png");
      assert.equal(image.width, 1024);
      assert.equal(image.height, 768);
      const refined = await Deno.readTextFile(
        `${cwd}/out/example/${id}/iteration-1.refined-prompt.txt`,
      );
      assert.equal(refined.trim(), first!.refinedPrompt);
    }
    const run = JSON.parse(await Deno.readTextFile(`${cwd}/out/example/run.json`));
    assert.equal(run.status, "completed");
    assert.equal(run.totals.completed, 7);
    assert.equal(run.providers.generator, "local");
    const logLines = (await Deno.readTextFile(`${cwd}/out/example/log.jsonl`)).trim().split("\n");
    const records = logLines.map((l) => JSON.parse(l));
    const ends = records.filter((r) => r.operation === "generate" && r.outcome === "ok");
    assert.equal(ends.length, 14, "a log record for the end of every generation");
    assert.ok(ends.every((r) => r.provider === "local" && typeof r.durationMs === "number"));
    assert.ok(records.every((r) => typeof r["@timestamp"] === "string"));
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("retake exits 2 on a bad prompt file, names file, prompt and field, and writes nothing", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-cli-" });
  try {
    await Deno.writeTextFile(
      `${cwd}/bad.json`,
      JSON.stringify({ prompts: [{ id: "ok", prompt: "fine" }, { id: "two", prompt: 42 }] }),
    );
    const result = await runCli(["--out", "out", "bad.json"], { cwd });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /bad\.json/);
    assert.match(result.stderr, /prompt #2 \(id 'two'\)/);
    assert.match(result.stderr, /field 'prompt'/);
    await assert.rejects(Deno.stat(`${cwd}/out`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("retake exits 2 on usage errors: no file, unknown flag, bad size", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-cli-" });
  try {
    const none = await runCli([], { cwd });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no prompt file was given/);
    const flag = await runCli(["--bogus", EXAMPLE], { cwd });
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /bogus/);
    const size = await runCli(["--size", "huge", EXAMPLE], { cwd });
    assert.equal(size.code, 2);
    assert.match(size.stderr, /Cannot use --size huge: expected WIDTHxHEIGHT/);
    const missing = await runCli(["nope.json"], { cwd });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.json': no such file/);
    await assert.rejects(Deno.stat(`${cwd}/outputs`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("retake --help and --version print to stdout and exit 0", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-cli-" });
  try {
    const help = await runCli(["--help"], { cwd });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage:/);
    assert.match(help.stdout, /--iterations/);
    const version = await runCli(["--version"], { cwd });
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^retake \d+\.\d+\.\d+/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("retake asks for the key by name when a real provider is forced without one", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-cli-" });
  try {
    const fal = await runCli(["--generator", "fal", EXAMPLE], { cwd });
    assert.equal(fal.code, 2);
    assert.match(fal.stderr, /FAL_KEY is not set/);
    const gemini = await runCli(["--critic", "gemini", EXAMPLE], { cwd });
    assert.equal(gemini.code, 2);
    assert.match(gemini.stderr, /GEMINI_API_KEY is not set/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("hostile prompt ids never write outside the batch folder", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-cli-" });
  try {
    const ids = ["../escape", "/etc/passwd", "CON", "a/b\\c", "..", ".hidden", "x".repeat(150)];
    await Deno.writeTextFile(
      `${cwd}/hostile.json`,
      JSON.stringify({ prompts: ids.map((id) => ({ id, prompt: "A red house at noon" })) }),
    );
    const result = await runCli([
      "--out",
      "out/deep",
      "--size",
      "128x96",
      "-n",
      "1",
      "hostile.json",
    ], {
      cwd,
    });
    assert.equal(result.code, 0, result.stderr);
    // Nothing but the output folder and the prompt file in the working directory.
    assert.deepEqual([...Deno.readDirSync(cwd)].map((e) => e.name).sort(), ["hostile.json", "out"]);
    assert.deepEqual([...Deno.readDirSync(`${cwd}/out`)].map((e) => e.name), ["deep"]);
    const folders = [...Deno.readDirSync(`${cwd}/out/deep/hostile`)]
      .filter((e) => e.isDirectory && !e.name.startsWith("_")).map((e) => e.name);
    assert.equal(folders.length, ids.length);
    for (const folder of folders) {
      assert.match(folder, /^[A-Za-z0-9][A-Za-z0-9._-]*$/);
      assert.ok(folder.length <= 100);
      const meta: PromptRecord = JSON.parse(
        await Deno.readTextFile(`${cwd}/out/deep/hostile/${folder}/metadata.json`),
      );
      assert.ok(ids.includes(meta.id));
      assert.equal(meta.folder, folder);
    }
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("a run of some prompts (--only) updates run.json and the gallery for the whole batch", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-cli-only-" });
  try {
    assert.equal((await runCli(["--out", "out", EXAMPLE], { cwd })).code, 0);
    const batch = `${cwd}/out/example`;
    const before = JSON.parse(await Deno.readTextFile(`${batch}/run.json`));
    const result = await runCli(["--out", "out", "--force", "--only", "neon-rain", EXAMPLE], {
      cwd,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /1\/1 prompts completed/);

    const after = JSON.parse(await Deno.readTextFile(`${batch}/run.json`));
    assert.deepEqual(
      after.prompts.map((p: { id: string }) => p.id),
      before.prompts.map((p: { id: string }) => p.id),
      "every prompt of the batch, in the same order",
    );
    assert.equal(after.totals.prompts, 7);
    assert.equal(after.totals.completed, 7);
    const neon = after.prompts.find((p: { id: string }) => p.id === "neon-rain");
    const forest = after.prompts.find((p: { id: string }) => p.id === "forest-awakening");
    assert.equal(neon.skipped, false, "neon-rain was redone in this run");
    assert.deepEqual(
      forest,
      before.prompts.find((p: { id: string }) => p.id === "forest-awakening"),
    );
    const html = await Deno.readTextFile(`${batch}/index.html`);
    assert.match(html, /<dt>Prompts<\/dt><dd>7<\/dd>/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("a mistyped flag names the nearest real one, in a run and in retake eval", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-cli-" });
  try {
    const run = await runCli(["--itrations", "3", EXAMPLE], { cwd });
    assert.equal(run.code, 2);
    assert.equal(
      run.stderr,
      "error: Unknown option '--itrations': did you mean --iterations? (run retake --help)\n",
    );
    const evalRun = await runCli(["eval", "--itrations", "3", EXAMPLE], { cwd });
    assert.equal(evalRun.code, 2);
    assert.match(evalRun.stderr, /did you mean --iterations\? \(run retake eval --help\)/);
    const cost = await runCli(["--max-cost", "-1", EXAMPLE], { cwd });
    assert.equal(cost.code, 2);
    assert.equal(
      cost.stderr,
      "error: Cannot use --max-cost -1: expected a number of US dollars of 0 or more\n",
    );
    assert.deepEqual([...Deno.readDirSync(cwd)], [], "nothing written");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("retake --help and retake eval --help fit an 80-column terminal", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-cli-" });
  try {
    for (const args of [["--help"], ["eval", "--help"]]) {
      const help = await runCli(args, { cwd });
      assert.equal(help.code, 0, help.stderr);
      const wide = help.stdout.split("\n").filter((line) => [...line].length > 80);
      assert.deepEqual(wide, [], `${args.join(" ")}: lines over 80 columns`);
    }
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("--replay finds the run's prompt files from anywhere; a missing run file says so", async () => {
  const root = await Deno.makeTempDir({ prefix: "retake-cli-replay-" });
  try {
    await Deno.mkdir(`${root}/project/prompts`, { recursive: true });
    await Deno.mkdir(`${root}/elsewhere`);
    await Deno.copyFile(EXAMPLE, `${root}/project/prompts/example.json`);
    const first = await runCli(["-q", "-n", "1", "--only", "neon-rain", "prompts/example.json"], {
      cwd: `${root}/project`,
    });
    assert.equal(first.code, 0, first.stderr);
    const replay = await runCli(["-q", "--replay", "../project/outputs/example/run.json"], {
      cwd: `${root}/elsewhere`,
    });
    assert.equal(replay.code, 0, replay.stderr);
    const run = JSON.parse(
      await Deno.readTextFile(`${root}/elsewhere/outputs/example-replay/run.json`),
    );
    assert.deepEqual(run.promptFiles, [`${root}/project/prompts/example.json`]);
    assert.deepEqual(run.prompts.map((p: { id: string }) => p.id), ["neon-rain"]);

    const missing = await runCli(["--replay", "nope/run.json"], { cwd: `${root}/elsewhere` });
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr, "error: Cannot read run file 'nope/run.json': no such file\n");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a typo'd RETAKE_* variable in the environment or .env is warned of, even with -q", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-cli-" });
  try {
    await Deno.writeTextFile(`${cwd}/.env`, "RETAKE_MAXCOST=1\n");
    const result = await runCli(["-q", "--dry-run", EXAMPLE], {
      cwd,
      env: { RETAKE_ITERATION: "3" },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /^warning: ignoring RETAKE_ITERATION in the environment: retake reads no such variable; did you mean RETAKE_ITERATIONS\?$/m,
    );
    assert.match(
      result.stderr,
      /^warning: ignoring RETAKE_MAXCOST in \.env: .*RETAKE_MAX_COST\?$/m,
    );
    assert.match(result.stdout, /up to 2 round\(s\)/, "the typo set nothing");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
