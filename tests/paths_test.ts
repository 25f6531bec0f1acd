/**
 * Nothing escapes the batch folder, nothing crashes the batch: links, reserved names, hash
 * twins, control characters, deep nesting, `--name`, `retake gallery`, base URLs, closed pipes
 * and stale temporary files. The real CLI as a subprocess, on real files and real links.
 */
import assert from "node:assert/strict";
import type { Config } from "../src/config.ts";
import type { PromptRecord } from "../src/output/record.ts";
import { seedFor } from "../src/batch/run.ts";
import { formatSummary } from "../src/batch/summary.ts";
import { cliCommand, runCli } from "./cli.ts";
import { startFalStandIn } from "./fal_standin.ts";
import { startGeminiStandIn } from "./gemini_standin.ts";

const CONTROLS =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

async function inTempDir(fn: (cwd: string) => Promise<void>): Promise<void> {
  const cwd = await Deno.makeTempDir({ prefix: "retake-paths-" });
  try {
    await fn(cwd);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

async function writePrompts(path: string, ids: string[]): Promise<void> {
  await Deno.writeTextFile(
    path,
    JSON.stringify({ prompts: ids.map((id, i) => ({ id, prompt: `a red fox number ${i}` })) }),
  );
}

/** Every file below `dir`, links included, as paths relative to it; links are not entered. */
async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = prefix + entry.name;
    if (entry.isDirectory) out.push(...await listTree(`${dir}/${entry.name}`, `${path}/`));
    else out.push(path);
  }
  return out.sort();
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function readJson<T = Record<string, unknown>>(path: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(path));
}

// --- 1. links ----------------------------------------------------------------------------------

Deno.test("retake refuses a prompt folder linked outside the batch, writing nothing there", async () => {
  await inTempDir(async (cwd) => {
    await writePrompts(`${cwd}/p.json`, ["p1", "p2"]);
    await Deno.mkdir(`${cwd}/outside`);
    await Deno.writeTextFile(`${cwd}/outside/.keep.deadbeef.tmp`, "mine");
    await Deno.mkdir(`${cwd}/out/p`, { recursive: true });
    await Deno.symlink(`${cwd}/outside`, `${cwd}/out/p/p1`);

    const result = await runCli(["--out", "out", "p.json"], { cwd });

    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /'out\/p\/p1' is a symbolic link/);
    assert.deepEqual(await listTree(`${cwd}/outside`), [".keep.deadbeef.tmp"]);
    assert.deepEqual(await listTree(`${cwd}/out/p`), ["p1"], "nothing written in the batch");
  });
});

Deno.test("retake refuses a log.jsonl linked to an outside file, leaving that file as it was", async () => {
  await inTempDir(async (cwd) => {
    await writePrompts(`${cwd}/p.json`, ["p1"]);
    await Deno.writeTextFile(`${cwd}/precious.txt`, "line one\nhalf a line");
    await Deno.mkdir(`${cwd}/out/p`, { recursive: true });
    await Deno.symlink(`${cwd}/precious.txt`, `${cwd}/out/p/log.jsonl`);

    const result = await runCli(["--out", "out", "p.json"], { cwd });

    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /'out\/p\/log\.jsonl' is a symbolic link/);
    assert.equal(await Deno.readTextFile(`${cwd}/precious.txt`), "line one\nhalf a line");
  });
});

Deno.test("retake refuses a batch folder that is itself a link, and accepts a linked --out", async () => {
  await inTempDir(async (cwd) => {
    await writePrompts(`${cwd}/p.json`, ["p1"]);
    await Deno.mkdir(`${cwd}/elsewhere`);
    await Deno.mkdir(`${cwd}/out`);
    await Deno.symlink(`${cwd}/elsewhere`, `${cwd}/out/p`);
    const linkedBatch = await runCli(["--out", "out", "p.json"], { cwd });
    assert.equal(linkedBatch.code, 2, linkedBatch.stderr);
    assert.match(linkedBatch.stderr, /'out\/p' is a symbolic link/);
    assert.deepEqual(await listTree(`${cwd}/elsewhere`), []);

    // --out is the user's own choice of place: a link there is followed on purpose.
    await Deno.mkdir(`${cwd}/disk`);
    await Deno.symlink(`${cwd}/disk`, `${cwd}/big`);
    const linkedOut = await runCli(["--out", "big", "p.json"], { cwd });
    assert.equal(linkedOut.code, 0, linkedOut.stderr);
    assert.ok(await exists(`${cwd}/disk/p/p1/metadata.json`));
  });
});

// --- 2. reserved names -------------------------------------------------------------------------

Deno.test("retake gives ids named like the batch's own files folders of their own", async () => {
  await inTempDir(async (cwd) => {
    const ids = [
      "index.html",
      "run.json",
      "log.jsonl",
      "comparison.json",
      "_previous",
      "_thumbs",
      ".retake.lock",
    ];
    await writePrompts(`${cwd}/r.json`, ids);

    const result = await runCli(["--out", "out", "r.json"], { cwd });

    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /7\/7 prompts completed, 0 failed/);
    const batch = `${cwd}/out/r`;
    for (const file of ["index.html", "run.json", "log.jsonl"]) {
      assert.ok((await Deno.lstat(`${batch}/${file}`)).isFile, `${file} is the batch's file`);
    }
    const run = await readJson<{ prompts: Array<{ id: string; folder: string }> }>(
      `${batch}/run.json`,
    );
    const folders = run.prompts.map((p) => p.folder);
    assert.equal(new Set(folders.map((f) => f.toLowerCase())).size, ids.length);
    for (const { id, folder } of run.prompts) {
      assert.equal((await readJson<PromptRecord>(`${batch}/${folder}/metadata.json`)).id, id);
    }
    const html = await Deno.readTextFile(`${batch}/index.html`);
    for (const id of ids) assert.ok(html.includes(`<code>${id}</code>`), `${id} on the page`);
  });
});

// --- 3. hash twins -----------------------------------------------------------------------------

Deno.test("retake keeps ids whose 32-bit hashes collide apart, and a rerun pays for neither", async () => {
  await inTempDir(async (cwd) => {
    const twins = ["twin%:;$#!!x", "twin%^$@$!!x"];
    await writePrompts(`${cwd}/t.json`, twins);

    const first = await runCli(["--out", "out", "t.json"], { cwd });
    assert.equal(first.code, 0, first.stderr);
    const folders = (await listTree(`${cwd}/out/t`)).filter((f) => f.endsWith("/metadata.json"));
    assert.equal(folders.length, 2, folders.join(", "));
    const saved = await Promise.all(
      folders.map((f) => readJson<PromptRecord>(`${cwd}/out/t/${f}`)),
    );
    assert.deepEqual(saved.map((r) => r.id).sort(), [...twins].sort());

    const again = await runCli(["--out", "out", "t.json"], { cwd });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.match(/unchanged since the last run/g)?.length, 2, again.stdout);
  });
});

Deno.test("retake never uses a folder whose metadata.json belongs to another id", async () => {
  await inTempDir(async (cwd) => {
    await writePrompts(`${cwd}/p.json`, ["p1", "p2"]);
    const first = await runCli(["--out", "out", "p.json"], { cwd });
    assert.equal(first.code, 0, first.stderr);
    // As a hash collision under the old naming left it: p1's folder holds another id's record.
    const path = `${cwd}/out/p/p1/metadata.json`;
    const theirs = JSON.stringify({ ...await readJson(path), id: "someone-else" });
    await Deno.writeTextFile(path, theirs);

    const again = await runCli(["--out", "out", "p.json"], { cwd });

    assert.equal(again.code, 1, again.stdout);
    assert.match(again.stdout, /FAILED {2}p1: .*belongs to prompt 'someone-else'/);
    assert.equal(await Deno.readTextFile(path), theirs, "the other id's record is untouched");
    const run = await readJson<{ prompts: Array<{ id: string; status: string }> }>(
      `${cwd}/out/p/run.json`,
    );
    assert.deepEqual(run.prompts.map((p) => [p.id, p.status]), [
      ["p1", "failed"],
      ["p2", "completed"],
    ]);
  });
});

Deno.test("seedFor() still derives each prompt's seed from the 32-bit hash of its id", () => {
  const config = { varySeed: false } as Config;
  const spec = (id: string) => ({ id, prompt: "x", extra: {} });
  // The values earlier versions gave: a user's reproducible seeds must not move with folder names.
  assert.equal(seedFor(config, spec(""), 1), 0x811c9dc5);
  assert.equal(seedFor(config, spec("a"), 1), 0xe40c292c);
  assert.equal(seedFor(config, spec("twin%:;$#!!x"), 1), seedFor(config, spec("twin%^$@$!!x"), 1));
  assert.equal(seedFor({ varySeed: true } as Config, spec("a"), 3), 0xe40c292e);
});

// --- 4. control characters ---------------------------------------------------------------------

for (
  const [label, id] of [
    ["ESC", "a\u001b[31mb"],
    ["a C1 control (U+009B)", "a\u009b31mb"],
    ["a bidi override (U+202E)", "abc\u202etxt.exe"],
  ] as const
) {
  Deno.test(`retake rejects ${label} in an id without echoing it, writing nothing`, async () => {
    await inTempDir(async (cwd) => {
      await writePrompts(`${cwd}/c.json`, ["fine", id]);
      const result = await runCli(["--out", "out", "c.json"], { cwd });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /prompt #2 .*field 'id' must not contain control/);
      assert.doesNotMatch(result.stderr + result.stdout, CONTROLS);
      assert.ok(!(await exists(`${cwd}/out`)), "nothing written");
    });
  });
}

Deno.test("retake shows a prompt file name with control characters escaped", async () => {
  await inTempDir(async (cwd) => {
    const name = "bad\u001b]0;owned\u0007.json";
    await Deno.writeTextFile(`${cwd}/${name}`, "{ nope");
    const result = await runCli(["--out", "out", name], { cwd });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /bad\\u001b\]0;owned\\u0007\.json/);
    assert.doesNotMatch(result.stderr, CONTROLS);
  });
});

Deno.test("formatSummary() shows a service's error text and the paths with controls escaped", () => {
  const text = formatSummary(
    "out/b\u001b[2J",
    2,
    [
      {
        id: "p1",
        folder: "p1",
        status: "failed",
        skipped: false,
        model: "m\u202e",
        durationMs: 1,
        costUsd: 0,
        iterations: 1,
        error: { step: "generate", iteration: 1, message: "bad\u001b]0;owned\u0007 \u009b2J" },
      },
      {
        id: "p2",
        folder: "p2",
        status: "completed",
        skipped: false,
        model: "m2",
        durationMs: 1,
        costUsd: 0,
        iterations: 1,
      },
    ],
    "completed with failures",
    { thisRunUsd: 0, batchUsd: 0 },
  );
  assert.doesNotMatch(text, CONTROLS);
  assert.match(text, /bad\\u001b\]0;owned\\u0007 \\u009b2J/);
  assert.match(text, /p1 \[m\\u202e\]/);
  assert.match(text, /Output: out\/b\\u001b\[2J /);
});

// --- 5. deep nesting ---------------------------------------------------------------------------

Deno.test("retake rejects a 5,000-level field naming file, prompt and field, writing nothing", async () => {
  await inTempDir(async (cwd) => {
    let deep: unknown = 1;
    for (let i = 0; i < 5000; i++) deep = { a: deep };
    await Deno.writeTextFile(
      `${cwd}/d.json`,
      JSON.stringify({
        prompts: [{ id: "ok", prompt: "x" }, { id: "deep", prompt: "y", extra: deep }],
      }),
    );
    const result = await runCli(["--out", "out", "d.json"], { cwd });
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /Invalid prompt #2 \(id 'deep'\) in 'd\.json': field 'extra' is nested more than 32 levels deep/,
    );
    assert.doesNotMatch(result.stderr, /Maximum call stack/);
    assert.ok(!(await exists(`${cwd}/out`)), "nothing written");
  });
});

// --- 6. --name ---------------------------------------------------------------------------------

Deno.test("retake keeps a --name with a path inside --out", async () => {
  await inTempDir(async (cwd) => {
    await Deno.mkdir(`${cwd}/work/a/b`, { recursive: true });
    await writePrompts(`${cwd}/work/a/b/p.json`, ["p1"]);
    const result = await runCli(["--out", "out", "--name", "../../escape", "p.json"], {
      cwd: `${cwd}/work/a/b`,
    });
    assert.equal(result.code, 0, result.stderr);
    const batches = [...(await Array.fromAsync(Deno.readDir(`${cwd}/work/a/b/out`)))];
    assert.equal(batches.length, 1);
    assert.match(batches[0]!.name, /^escape-[0-9a-f]{16}$/);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(`${cwd}/work/a`))).map((e) => e.name),
      ["b"],
      "nothing beside the working folder",
    );
    assert.match(result.stdout, /Output: out\/escape-[0-9a-f]{16} /);
  });
});

Deno.test("retake keeps a plain --name, spaces included, as given", async () => {
  await inTempDir(async (cwd) => {
    await writePrompts(`${cwd}/p.json`, ["p1"]);
    const result = await runCli(["--out", "out", "--name", "june shoot", "p.json"], { cwd });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(await exists(`${cwd}/out/june shoot/run.json`));
  });
});

// --- 7. retake gallery -------------------------------------------------------------------------

Deno.test("retake gallery refuses a folder without run.json and writes no page anywhere", async () => {
  await inTempDir(async (cwd) => {
    await Deno.mkdir(`${cwd}/prompts`);
    await writePrompts(`${cwd}/prompts/p.json`, ["p1"]);
    const refused = await runCli(["gallery", "prompts"], { cwd });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /Cannot build a gallery for 'prompts' as it has no run\.json/);
    assert.deepEqual(await listTree(`${cwd}/prompts`), ["p.json"]);

    const run = await runCli(["--out", "out", "prompts/p.json"], { cwd });
    assert.equal(run.code, 0, run.stderr);
    // One bad folder among good ones: no page is written at all.
    await Deno.remove(`${cwd}/out/p/index.html`);
    const mixed = await runCli(["gallery", "out/p", "out"], { cwd });
    assert.equal(mixed.code, 2, mixed.stderr);
    assert.ok(!(await exists(`${cwd}/out/p/index.html`)));
    assert.ok(!(await exists(`${cwd}/out/index.html`)));

    const rebuilt = await runCli(["gallery", "out/p"], { cwd });
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    assert.match(rebuilt.stdout, /Wrote out\/p\/index\.html/);
  });
});

// --- 8. base URLs ------------------------------------------------------------------------------

Deno.test("retake refuses a plain-http FAL_BASE_URL from .env before any request", async () => {
  await inTempDir(async (cwd) => {
    await writePrompts(`${cwd}/p.json`, ["p1"]);
    await Deno.writeTextFile(
      `${cwd}/.env`,
      "FAL_KEY=real-fal-key-123\nFAL_BASE_URL=http://fal-proxy.example.test\n",
    );
    const result = await runCli(["--out", "out", "p.json"], { cwd });
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /Cannot use FAL_BASE_URL=http:\/\/fal-proxy\.example\.test from \.env: expected an https:\/\/ URL/,
    );
    assert.doesNotMatch(result.stderr, /real-fal-key-123/);
    assert.ok(!(await exists(`${cwd}/out`)), "nothing written, nothing sent");
  });
});

Deno.test("retake says on stderr which base URLs are overridden and from where", async () => {
  await inTempDir(async (cwd) => {
    const fal = await startFalStandIn({ key: "paths-fal-key" });
    const gemini = await startGeminiStandIn({ key: "paths-gemini-key" });
    try {
      await writePrompts(`${cwd}/p.json`, ["p1"]);
      await Deno.writeTextFile(`${cwd}/.env`, `FAL_BASE_URL=${fal.url}\n`);
      await Deno.writeTextFile(
        `${cwd}/retake.config.json`,
        JSON.stringify({ gemini: { baseUrl: gemini.url }, fal: { pollIntervalMs: 5 } }),
      );
      const result = await runCli(["--out", "out", "p.json"], {
        cwd,
        env: { FAL_KEY: "paths-fal-key", GEMINI_API_KEY: "paths-gemini-key" },
      });
      assert.equal(result.code, 0, result.stderr);
      assert.ok(
        result.stderr.includes(
          `Sending fal.ai requests to ${fal.url} (fal.baseUrl from environment variable FAL_BASE_URL (from .env))`,
        ),
        result.stderr,
      );
      assert.ok(
        result.stderr.includes(
          `Sending Gemini requests to ${gemini.url} (gemini.baseUrl from config file '${cwd}/retake.config.json')`,
        ),
        result.stderr,
      );
    } finally {
      await fal.close();
      await gemini.close();
    }
  });
});

// --- 9. pipes ----------------------------------------------------------------------------------

Deno.test("retake with its stdout closed (| head) finishes the batch and exits 0", async () => {
  await inTempDir(async (cwd) => {
    await writePrompts(`${cwd}/p.json`, ["p1", "p2", "p3"]);
    const child = cliCommand(["--out", "out", "p.json"], { cwd }).spawn();
    await child.stdout.cancel();
    const stderr = await new Response(child.stderr).text();
    const status = await child.status;
    assert.equal(status.code, 0, stderr);
    assert.doesNotMatch(stderr, /Broken pipe/);
    assert.equal((await readJson(`${cwd}/out/p/run.json`)).status, "completed");
  });
});

Deno.test("retake with its stderr closed after the first bytes finishes the batch and exits 0", async () => {
  await inTempDir(async (cwd) => {
    await writePrompts(`${cwd}/p.json`, ["p1", "p2", "p3"]);
    const child = cliCommand(["--out", "out", "p.json"], { cwd }).spawn();
    const reader = child.stderr.getReader();
    await reader.read();
    await reader.cancel();
    const stdout = await new Response(child.stdout).text();
    const status = await child.status;
    assert.equal(status.code, 0, stdout);
    assert.match(stdout, /3\/3 prompts completed/);
    assert.equal((await readJson(`${cwd}/out/p/run.json`)).status, "completed");
  });
});

Deno.test("retake | tee with the reader gone, then Ctrl-C: drains, exits 130, run.json interrupted", async () => {
  await inTempDir(async (cwd) => {
    const fal = await startFalStandIn({ key: "pipes-fal-key", latencyMs: 200 });
    const gemini = await startGeminiStandIn({ key: "pipes-gemini-key" });
    try {
      await writePrompts(`${cwd}/p.json`, ["p1", "p2", "p3", "p4"]);
      await Deno.writeTextFile(
        `${cwd}/retake.config.json`,
        JSON.stringify({ fal: { pollIntervalMs: 5 } }),
      );
      const child = cliCommand(["--out", "out", "p.json"], {
        cwd,
        env: {
          FAL_KEY: "pipes-fal-key",
          GEMINI_API_KEY: "pipes-gemini-key",
          FAL_BASE_URL: fal.url,
          GEMINI_BASE_URL: gemini.url,
        },
      }).spawn();
      // `tee` dies with the same Ctrl-C: both ends are closed before retake hears it.
      const reader = child.stderr.getReader();
      await reader.read();
      await reader.cancel();
      await child.stdout.cancel();
      let exited = false;
      const ended = child.status.finally(() => exited = true);
      while (fal.calls("submit").length === 0 && !exited) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(!exited, "retake ended before its first generation");
      child.kill("SIGINT");
      const status = await ended;
      assert.equal(status.code, 130);
      const run = await readJson<{ status: string }>(`${cwd}/out/p/run.json`);
      assert.equal(run.status, "interrupted");
    } finally {
      await fal.close();
      await gemini.close();
    }
  });
});

// --- 11. temporary files -----------------------------------------------------------------------

Deno.test("retake removes the temporary files a killed run left in the batch folder", async () => {
  await inTempDir(async (cwd) => {
    await writePrompts(`${cwd}/p.json`, ["p1"]);
    const first = await runCli(["--out", "out", "p.json"], { cwd });
    assert.equal(first.code, 0, first.stderr);
    const batch = `${cwd}/out/p`;
    const stale = [
      ".index.html.deadbeef.tmp",
      ".run.json.0123abcd.tmp",
      "p1/.metadata.json.89abcdef.tmp",
      "_thumbs/p1/.iteration-1.jpg.01234567.tmp",
    ];
    for (const file of stale) await Deno.writeTextFile(`${batch}/${file}`, "half");
    await Deno.writeTextFile(`${batch}/notes.tmp`, "mine");

    const again = await runCli(["--out", "out", "p.json"], { cwd });

    assert.equal(again.code, 0, again.stderr);
    const tree = await listTree(batch);
    assert.deepEqual(tree.filter((f) => f.endsWith(".tmp")), ["notes.tmp"]);
  });
});

// --- issue 9, item 11: --force twice -----------------------------------------------------------

Deno.test("retake --force twice within a second keeps both earlier attempts", async () => {
  await inTempDir(async (cwd) => {
    await writePrompts(`${cwd}/p.json`, ["p1"]);
    const first = await runCli(["--out", "out", "p.json"], { cwd });
    assert.equal(first.code, 0, first.stderr);
    // Aside names carry a seconds stamp: take every name the next minutes could give, so the
    // run meets a taken name whatever the clock says.
    const taken = `${cwd}/out/p/_previous`;
    await Deno.mkdir(taken);
    const now = Date.now();
    for (let s = -5; s < 300; s++) {
      const stamp = new Date(now + s * 1000).toISOString().replace(/[-:]/g, "")
        .replace(/\.\d+Z$/, "Z");
      await Deno.mkdir(`${taken}/p1-${stamp}`);
      await Deno.writeTextFile(`${taken}/p1-${stamp}/metadata.json`, "earlier");
    }
    const before = (await Array.fromAsync(Deno.readDir(taken))).length;

    const forced = await runCli(["--out", "out", "--force", "p.json"], { cwd });

    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    const asides = (await Array.fromAsync(Deno.readDir(taken))).map((e) => e.name);
    assert.equal(asides.length, before + 1);
    const added = asides.filter((name) => /-2$/.test(name));
    assert.equal(added.length, 1, asides.join(", "));
    assert.equal((await readJson<PromptRecord>(`${taken}/${added[0]}/metadata.json`)).id, "p1");
  });
});
