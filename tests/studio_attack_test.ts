/**
 * The studio as a user runs it, attacked from outside: the real CLI in a subprocess. A run with
 * `--ui` survives hundreds of idle connections from another process on a small file table, and
 * the round a reject asks for in `retake serve` spends as this machine's settings say, whatever
 * the batch's `run.json` says.
 */
import assert from "node:assert/strict";
import { login } from "../src/studio/_test_session.ts";
import { cliCommand, EXAMPLE, MAIN, ROOT, RUN_ENV, RUN_PERMISSIONS, runCli } from "./cli.ts";

/** Reads a stream's text as it comes, and waits for what it should say. */
class Reader {
  text = "";
  #done = false;
  #wake = () => {};
  readonly finished: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    this.finished = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.text += value;
        this.#wake();
      }
      this.#done = true;
      this.#wake();
    })();
  }

  async until(pattern: RegExp): Promise<RegExpExecArray> {
    for (;;) {
      const match = pattern.exec(this.text);
      if (match) return match;
      if (this.#done) throw new Error(`the stream ended before ${pattern}: ${this.text}`);
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }
}

const URL_LINE = /Studio: (http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64})\n/;

Deno.test("case 3: retake --ui finishes its run while another process holds 700 idle connections", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-studio-flood-" });
  const example = JSON.parse(await Deno.readTextFile(`${ROOT}prompts/example.json`)).prompts;
  const prompts = Array.from({ length: 30 }, (_, i) => ({
    ...example[i % example.length],
    id: `p-${String(i + 1).padStart(3, "0")}`,
  }));
  await Deno.writeTextFile(`${cwd}/many.json`, JSON.stringify({ prompts }));
  // A small file table, as on many desktops: 512 handles for the run and the studio together.
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      'ulimit -n 512 && exec "$0" "$@"',
      Deno.execPath(),
      "run",
      "--quiet",
      ...RUN_PERMISSIONS,
      MAIN,
      "--offline",
      "--out",
      "out",
      "-n",
      "2",
      "--ui",
      "many.json",
    ],
    cwd,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/tmp", ...RUN_ENV },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Reader(child.stderr);
  const stdout = new Reader(child.stdout);
  const idle: Deno.Conn[] = [];
  try {
    const url = new URL((await stderr.until(URL_LINE))[1]!);
    const port = Number(url.port);
    const head = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (let i = 0; i < 700; i++) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        idle.push(conn);
        await conn.write(head).catch(() => 0);
      } catch {
        // Refused or reset: the studio keeps its table for the run.
      }
    }
    await stderr.until(/The studio stays open/);
    const run = JSON.parse(await Deno.readTextFile(`${cwd}/out/many/run.json`));
    assert.equal(run.status, "completed", stderr.text);
    assert.doesNotMatch(stderr.text, /Uncaught|Too many open files/);
    for (const conn of idle) {
      try {
        conn.close();
      } catch {
        // Closed by the studio already.
      }
    }
    idle.length = 0;
    const session = await login(url.href);
    const page = await session.get("/b/many/");
    assert.equal(page.status, 200, "the studio still answers");
    await page.body?.cancel();
  } finally {
    for (const conn of idle) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    try {
      child.kill("SIGTERM");
    } catch {
      // It has exited.
    }
    await child.status;
    await Promise.all([stderr.finished, stdout.finished]);
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("case 4: a reject's round in retake serve never takes offline or max-cost from the batch", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-serve-money-" });
  const first = await runCli(["--offline", "--out", "out", "-n", "1", EXAMPLE], { cwd });
  assert.equal(first.code, 0, first.stderr);
  // The batch as a colleague might send it: its run.json asks for paid calls and no limit.
  const runPath = `${cwd}/out/example/run.json`;
  const run = JSON.parse(await Deno.readTextFile(runPath));
  run.settings = { ...run.settings, offline: false, maxCost: 100000, retry: { maxAttempts: 20 } };
  await Deno.writeTextFile(runPath, JSON.stringify(run));
  // This user's own settings: offline, and at most a dollar a run.
  await Deno.writeTextFile(
    `${cwd}/retake.config.json`,
    JSON.stringify({ offline: true, maxCost: 1 }),
  );
  const child = cliCommand(["serve", "out"], { cwd }).spawn();
  const stderr = new Reader(child.stderr);
  const stdout = new Reader(child.stdout);
  let events: Reader | undefined;
  try {
    const session = await login((await stderr.until(URL_LINE))[1]!);
    const stream = await session.get("/events?batch=example");
    events = new Reader(stream.body!);
    await events.until(/: connected/);
    const response = await session.post("/b/example/action", {
      type: "reject",
      id: "neon-rain",
      note: "a red boat",
    });
    assert.equal(response.status, 200, await response.clone().text());
    await response.body?.cancel();
    // The round ran, or the studio said why it could not.
    await events.until(/event: (prompt-end\ndata: [^\n]*"neon-rain"|notice)/);
    assert.doesNotMatch(events.text, /event: notice/, events.text);
    const after = JSON.parse(await Deno.readTextFile(runPath));
    assert.equal(after.settings.offline, true);
    assert.equal(after.settings.maxCost, 1);
    assert.notEqual(after.settings.retry?.maxAttempts, 20);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await Promise.all([stderr.finished, stdout.finished, events?.finished]);
    await Deno.remove(cwd, { recursive: true });
  }
});
