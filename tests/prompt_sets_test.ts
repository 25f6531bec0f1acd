/**
 * Public prompt sets through the real CLI, as their authors publish them (samples of each in
 * `tests/data/prompt_sets/`): PartiPrompts' TSV, GenEval's JSON Lines, T2I-CompBench's text and
 * DSG-1k's CSV. Their checks are the brief, with no brief call (counted at the Gemini
 * stand-in); a prompt on the command line or on stdin; a text file of 100,000 lines.
 */
import assert from "node:assert/strict";
import { parse as parseCsv } from "csv-parse/sync";
import { stringify as stringifyCsv } from "csv-stringify/sync";
import type { Plan } from "../src/batch/dry_run.ts";
import type { PromptRecord } from "../src/output/record.ts";
import { cliCommand, runCli } from "./cli.ts";
import { startGeminiStandIn } from "./gemini_standin.ts";

const DATA = new URL("./data/prompt_sets/", import.meta.url).pathname;
const GEMINI_KEY = "AQ.Ab8RN6-prompt-sets-key";

const SETS = [
  { file: "PartiPrompts-sample.tsv", prompts: 13, checked: 0, note: /as TSV: 13 prompts/ },
  {
    file: "evaluation_metadata-sample.jsonl",
    prompts: 12,
    checked: 12,
    note: /as JSON Lines: 12 prompts .*checks from 'include'/,
  },
  { file: "color_val-sample.txt", prompts: 8, checked: 0, note: /as text, one prompt a line/ },
  {
    file: "dsg-1k-anns-sample.csv",
    prompts: 5,
    checked: 5,
    note: /as CSV: 5 prompts .*74 rows/,
  },
] as const;

async function inTempDir(body: (cwd: string) => Promise<void>): Promise<void> {
  const cwd = await Deno.makeTempDir({ prefix: "retake-prompt-sets-" });
  try {
    await body(cwd);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await Deno.readTextFile(path));
}

/** The prompt folders of a batch. */
async function folders(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory && !entry.name.startsWith("_")) names.push(entry.name);
  }
  return names.sort();
}

for (const set of SETS) {
  Deno.test(`retake --dry-run plans ${set.file} as published: ${set.prompts} prompts, briefs only where it gives no checks`, () =>
    inTempDir(async (cwd) => {
      const result = await runCli(
        ["--offline", "--dry-run", "--json", `${DATA}${set.file}`],
        { cwd },
      );
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, set.note);
      const plan: Plan = JSON.parse(result.stdout);
      assert.equal(plan.prompts, set.prompts);
      assert.equal(plan.givenBriefs, set.checked);
      const briefs = plan.steps.find((s) => s.step === "brief")?.maxCalls ?? 0;
      assert.equal(briefs, set.prompts - set.checked);
    }));

  Deno.test(`retake --offline runs ${set.file} as published`, () =>
    inTempDir(async (cwd) => {
      const result = await runCli(["--offline", "-n", "1", "--out", "out", `${DATA}${set.file}`], {
        cwd,
      });
      assert.equal(result.code, 0, result.stderr);
      const batch = `${cwd}/out/${set.file.replace(/\.[^.]*$/, "")}`;
      const run = await readJson<{ prompts: Array<{ id: string; status: string }> }>(
        `${batch}/run.json`,
      );
      assert.equal(run.prompts.length, set.prompts);
      assert.ok(run.prompts.every((p) => p.status === "completed"), JSON.stringify(run.prompts));
      assert.deepEqual(await folders(batch), run.prompts.map((p) => p.id).sort());
    }));
}

Deno.test("retake shows a TSV's other columns in the gallery and selects prompts by them", () =>
  inTempDir(async (cwd) => {
    const file = `${DATA}PartiPrompts-sample.tsv`;
    const dry = await runCli(
      ["--offline", "--dry-run", "--json", "--only", "Category=animals", file],
      { cwd },
    );
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal((JSON.parse(dry.stdout) as Plan).prompts, 1);
    const result = await runCli(
      [
        "--offline",
        "-n",
        "1",
        "--out",
        "out",
        "--only",
        "Category=Animals,Challenge=Writing & Symbols",
        file,
      ],
      { cwd },
    );
    assert.equal(result.code, 0, result.stderr);
    const batch = `${cwd}/out/PartiPrompts-sample`;
    const names = await folders(batch);
    assert.equal(names.length, 2, names.join());
    const shiba = names.find((n) => n.startsWith("a-shiba-inu-"))!;
    const record = await readJson<PromptRecord>(`${batch}/${shiba}/metadata.json`);
    assert.deepEqual(record.extra, { Category: "Animals", Challenge: "Basic" });
    const html = await Deno.readTextFile(`${batch}/index.html`);
    assert.match(html, /<dt>Category<\/dt><dd>Animals<\/dd>/);
    assert.match(html, /<dt>Challenge<\/dt><dd>Writing &#38; Symbols<\/dd>/);
    const typo = await runCli(["--offline", "--dry-run", "--only", "Category=Animls", file], {
      cwd,
    });
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /'Category=Animls' matched no prompt: values of 'Category' include/);
  }));

Deno.test("a DSG-style CSV's questions are the brief: no brief call at the Gemini stand-in, every critique answers them", async () => {
  const gemini = await startGeminiStandIn({ key: GEMINI_KEY });
  try {
    await inTempDir(async (cwd) => {
      const env = { GEMINI_API_KEY: GEMINI_KEY, GEMINI_BASE_URL: gemini.url };
      const rows: Array<Record<string, string>> = parseCsv(
        await Deno.readTextFile(`${DATA}dsg-1k-anns-sample.csv`),
        { columns: true },
      );
      const questions = new Map<string, string[]>();
      for (const row of rows) {
        const id = row.item_id!;
        questions.set(id, [...questions.get(id) ?? [], row.question_natural_language!]);
      }
      assert.equal(questions.size, 5);
      const ids = ["whoops_5", "drawtext_55", "midjourney_40"];
      const result = await runCli(
        ["-n", "1", "--out", "out", "--only", ids.join(","), `${DATA}dsg-1k-anns-sample.csv`],
        { cwd, env },
      );
      assert.equal(result.code, 0, result.stderr);
      const count = (kind: string) => gemini.requests.filter((r) => r.kind === kind).length;
      assert.equal(count("brief"), 0, "the file's questions are the brief: no call makes one");
      assert.equal(count("critique"), ids.length);
      for (const id of ids) {
        const dir = `${cwd}/out/dsg-1k-anns-sample/${id}`;
        const brief = await readJson<{ checks: Array<{ id: string; question: string }> }>(
          `${dir}/brief.json`,
        );
        assert.deepEqual(brief.checks.map((c) => c.question), questions.get(id), id);
        assert.deepEqual(brief.checks.map((c) => c.id), brief.checks.map((_, i) => `c${i + 1}`));
        // The critique was asked every question, and answered each.
        const asked = gemini.requests.find((r) =>
          r.kind === "critique" && r.prompt.includes(brief.checks[0]!.question)
        )!;
        for (const check of brief.checks) {
          assert.ok(asked.prompt.includes(`${check.id} (`), `${id}: ${check.id} asked`);
          assert.ok(asked.prompt.includes(check.question), `${id}: ${check.question}`);
        }
        const record = await readJson<PromptRecord>(`${dir}/metadata.json`);
        assert.equal(record.briefStep, undefined, "no brief step was paid for");
        assert.deepEqual(
          record.iterations[0]!.critique!.checks!.map((c) => c.id),
          brief.checks.map((c) => c.id),
        );
      }
      assert.equal(questions.get("midjourney_40")!.length, 52);

      // The same prompts without their questions: one brief call each.
      const texts = new Map(rows.map((r) => [r.item_id!, r.text!]));
      await Deno.writeTextFile(
        `${cwd}/plain.csv`,
        stringifyCsv([...texts].map(([item_id, text]) => ({ item_id, text })), { header: true }),
      );
      const before = count("brief");
      const second = await runCli(
        ["-n", "1", "--out", "out", "--only", ids.join(","), "plain.csv"],
        { cwd, env },
      );
      assert.equal(second.code, 0, second.stderr);
      assert.equal(count("brief") - before, ids.length);
    });
  } finally {
    await gemini.close();
  }
});

Deno.test("retake --prompt runs one prompt from the command line, its id made from the text", () =>
  inTempDir(async (cwd) => {
    const result = await runCli(
      ["--offline", "-n", "1", "--out", "out", "--prompt", "a red fox in snow"],
      { cwd },
    );
    assert.equal(result.code, 0, result.stderr);
    const [folder, ...more] = await folders(`${cwd}/out/prompt`);
    assert.equal(more.length, 0);
    assert.match(folder!, /^a-red-fox-in-snow-[0-9a-f]{7}$/);
    const record = await readJson<PromptRecord>(`${cwd}/out/prompt/${folder}/metadata.json`);
    assert.equal(record.status, "completed");
    assert.equal(record.prompt, "a red fox in snow");
  }));

Deno.test("retake - reads prompts from standard input, one a line", () =>
  inTempDir(async (cwd) => {
    const child = cliCommand(["--offline", "-n", "1", "--out", "out", "-"], {
      cwd,
      stdin: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("a red fox in snow\n\na blue owl at night\n"));
    await writer.close();
    const { code, stderr } = await child.output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const names = await folders(`${cwd}/out/stdin`);
    assert.equal(names.length, 2);
    assert.ok(names.some((n) => n.startsWith("a-blue-owl-at-night-")), names.join());
  }));

Deno.test("retake refuses a prompt file of unknown shape, showing its first line, and writes nothing", () =>
  inTempDir(async (cwd) => {
    await Deno.writeTextFile(`${cwd}/notes.md`, "# My prompts\n- a red fox\n");
    const result = await runCli(["--offline", "--out", "out", "notes.md"], { cwd });
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /Cannot tell the format of prompt file 'notes\.md': expected .*its first line is '# My prompts'/,
    );
    await assert.rejects(Deno.stat(`${cwd}/out`), Deno.errors.NotFound);
  }));

Deno.test("a text file's prompts resume after lines are added and reordered: only the new one runs", () =>
  inTempDir(async (cwd) => {
    const run = async () => {
      const result = await runCli(["--offline", "-n", "1", "--out", "out", "set.txt"], { cwd });
      assert.equal(result.code, 0, result.stderr);
      return (await readJson<{ prompts: Array<{ status: string; skipped?: boolean }> }>(
        `${cwd}/out/set/run.json`,
      )).prompts;
    };
    await Deno.writeTextFile(`${cwd}/set.txt`, "a green bench\na blue bowl\na red fox\n");
    assert.equal((await run()).filter((p) => !p.skipped).length, 3);
    await Deno.writeTextFile(
      `${cwd}/set.txt`,
      "# reordered, one added\na red fox\na purple cow\na green bench\na blue bowl\n",
    );
    const second = await run();
    assert.equal(second.length, 4);
    assert.equal(second.filter((p) => p.skipped).length, 3, JSON.stringify(second));
  }));

Deno.test("a 100,000-line text file starts its first generation before the batch ends", () =>
  inTempDir(async (cwd) => {
    const lines = Array.from({ length: 100_000 }, (_, i) => `a small red boat number ${i}`);
    await Deno.writeTextFile(`${cwd}/big.txt`, lines.join("\n"));
    const child = cliCommand(["--offline", "-v", "-q", "-n", "1", "--out", "out", "big.txt"], {
      cwd,
    }).spawn();
    // The event: retake's own log line as the first generation starts.
    let log = "";
    const decoder = new TextDecoder();
    const reader = child.stderr.getReader();
    while (!/Started generate 1 of /.test(log)) {
      const { value, done } = await reader.read();
      assert.ok(!done, `retake ended before any generation:\n${log.slice(-2000)}`);
      log += decoder.decode(value, { stream: true });
    }
    child.kill("SIGINT");
    // Drain stderr so the process can finish writing it.
    while (!(await reader.read()).done) { /* keep reading */ }
    const { code } = await child.status;
    assert.equal(code, 130, "interrupted, as a Ctrl-C does");
    await child.stdout.cancel();
    const run = await readJson<{ prompts: unknown[]; status: string }>(`${cwd}/out/big/run.json`);
    assert.equal(run.prompts.length, 100_000);
    assert.equal(run.status, "interrupted");
  }));
