/**
 * What a person sees on the terminal around a run: the task line before it, warnings with
 * `-q`, and a summary that stays short.
 */
import assert from "node:assert/strict";
import { EXAMPLE, ROOT, runCli } from "./cli.ts";

async function inTempDir(fn: (cwd: string) => Promise<void>): Promise<void> {
  const cwd = await Deno.makeTempDir({ prefix: "retake-terminal-" });
  try {
    await fn(cwd);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

Deno.test("retake -q hides the progress line but still shows warnings", async () => {
  await inTempDir(async (cwd) => {
    const first = await runCli(["--out", "out", "-n", "1", "-q", EXAMPLE], { cwd });
    assert.equal(first.code, 0, first.stderr);
    assert.doesNotMatch(first.stderr, /progress:/);
    // A damaged run.json: the next run of some prompts says so, and goes on.
    await Deno.writeTextFile(`${cwd}/out/example/run.json`, "{ not json");
    const again = await runCli(
      ["--out", "out", "-n", "1", "-q", "--only", "neon-rain", EXAMPLE],
      { cwd },
    );
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /Could not read the earlier .*run\.json/);
    assert.doesNotMatch(again.stderr, /progress:/);
  });
});

/** `deno task …` in the project, as a user types it; colour off, as in a file. */
async function task(args: string[], cwd = ROOT) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--config", `${ROOT}deno.json`, ...args],
    cwd,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

Deno.test("deno task run says one short line before retake's own output, and no warning", async () => {
  const result = await task(["run", "--version"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^retake \d+\.\d+\.\d+/);
  const lines = result.stderr.split("\n").filter(Boolean);
  assert.equal(lines.length, 1, result.stderr);
  // The task's own line fits 80 columns, the arguments and glibc's settings aside (README:
  // Performance says why those are there).
  const line = lines[0]!;
  assert.match(line, /^Task run /);
  assert.ok(line.replace(/ '--version'$/, "").replace(/ MALLOC_\w+=\d+/g, "").length <= 80, line);
  assert.doesNotMatch(result.stderr, /warning/i);
});

Deno.test("deno task -q run says nothing before retake's output, and keeps retake's warnings", async () => {
  const quiet = await task(["-q", "run", "--version"]);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stderr, "");
  await inTempDir(async (cwd) => {
    // A variable meant for retake with a typo: retake's warning comes through deno's -q.
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      // The task runs in the project's folder: every path absolute.
      args: [
        "task",
        "--config",
        `${ROOT}deno.json`,
        "-q",
        "run",
        "--offline",
        "-n",
        "1",
        "--out",
        `${cwd}/out`,
        EXAMPLE,
      ],
      cwd,
      env: { NO_COLOR: "1", RETAKE_ITERATION: "3" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(stderr);
    assert.equal(code, 0, text);
    assert.match(text, /warning: ignoring RETAKE_ITERATION .*did you mean RETAKE_ITERATIONS\?/);
    assert.doesNotMatch(text, /^Task /m);
  });
});

Deno.test("deno task install makes a retake command with the run task's permissions", async () => {
  await inTempDir(async (home) => {
    // A home of its own, so the test installs nothing for the user; the same module cache.
    const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
    const env = { NO_COLOR: "1", HOME: home, DENO_DIR: denoDir };
    const install = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--config", `${ROOT}deno.json`, "-q", "install"],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
    const shim = await Deno.readTextFile(`${home}/.deno/bin/retake`);
    assert.match(shim, /--allow-ffi=\S*\/\.deno\/bin\/\.retake\/node_modules /);
    assert.doesNotMatch(shim, /--allow-all|-A |--allow-run/);
    await Deno.mkdir(`${home}/work`);
    const run = await new Deno.Command(`${home}/.deno/bin/retake`, {
      args: ["--offline", "-n", "1", "--out", "out", EXAMPLE],
      cwd: `${home}/work`,
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, stderr);
    assert.match(stdout, /7\/7 prompts completed, 0 failed/);
    assert.doesNotMatch(stderr, /warning/i);
  });
});
