/**
 * `retake serve` as a user runs it: the real CLI in a subprocess, over batches an offline run
 * made. It refuses bad input with exit 2, prints its one line, needs the token, streams rows a
 * `retake run` in another process saves, runs the round a reject asks for with the note, and
 * stops on SIGTERM.
 */
import assert from "node:assert/strict";
import { login } from "../src/studio/_test_session.ts";
import { cliCommand, EXAMPLE, runCli } from "./cli.ts";

Deno.test("retake serve refuses a missing folder and a bad --port with exit 2", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-serve-" });
  try {
    const missing = await runCli(["serve", "nowhere"], { cwd });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Cannot serve 'nowhere' as it is not a folder/);
    await Deno.mkdir(`${cwd}/out`);
    const port = await runCli(["serve", "out", "--port", "http"], { cwd });
    assert.equal(port.code, 2);
    assert.match(port.stderr, /Invalid setting 'port'.*current value is 'http'/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

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

Deno.test("retake serve: token, live rows from another run, and a reject's new round", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-serve-" });
  const first = await runCli(["--offline", "--out", "out", "-n", "1", EXAMPLE], { cwd });
  assert.equal(first.code, 0, first.stderr);
  const child = cliCommand(["serve", "out"], { cwd }).spawn();
  const stderr = new Reader(child.stderr);
  const stdout = new Reader(child.stdout);
  let events: Reader | undefined;
  try {
    const url = new URL(
      (await stderr.until(/Studio: (http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64})\n/))[1]!,
    );
    const origin = url.origin;

    const refused = await fetch(`${origin}/b/example/`);
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const session = await login(url.href);
    const page = await (await session.get("/b/example/")).text();
    assert.match(page, /id="row-forest-awakening"/);

    const stream = await session.get("/events?batch=example");
    events = new Reader(stream.body!);
    await events.until(/: connected/);

    // A run in another process adds a second round: its saved records reach the page's stream.
    const second = await runCli(["--offline", "--out", "out", "-n", "2", EXAMPLE], { cwd });
    assert.equal(second.code, 0, second.stderr);
    await events.until(/event: row\ndata: \{"folder":"forest-awakening"\}/);

    const note = "add a small red boat on the path";
    const action = { type: "reject", id: "neon-rain", note };
    const noCsrf = await session.post("/b/example/action", action, { "x-csrf-token": "" });
    assert.equal(noCsrf.status, 403);
    await noCsrf.body?.cancel();
    const accepted = await session.post("/b/example/action", action);
    assert.equal(accepted.status, 200, await accepted.clone().text());
    await accepted.body?.cancel();

    // The round the note asked for runs in the studio's process, with the batch's settings.
    await events.until(
      /"id":"neon-rain","step":"generate","iteration":3[\s\S]*event: prompt-end\ndata: \{[^\n]*"id":"neon-rain"/,
    );
    const record = JSON.parse(
      await Deno.readTextFile(`${cwd}/out/example/neon-rain/metadata.json`),
    );
    assert.equal(record.iterations.length, 3);
    assert.equal(record.iterations[2].note, note);
    assert.equal(record.iterations[1].next.note, note, "the refiner took the note");
    assert.ok(record.iterations[2].image, "the new round has its image");
    const others = JSON.parse(
      await Deno.readTextFile(`${cwd}/out/example/forest-awakening/metadata.json`),
    );
    assert.equal(others.iterations.length, 2, "only the rejected prompt got a round");
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    await Promise.all([stderr.finished, stdout.finished]);
    await Deno.remove(cwd, { recursive: true });
    assert.equal(status.code, 0, stderr.text);
    void events;
  }
});
