/**
 * Watch mode with a real file edited while the CLI runs.
 */
import assert from "node:assert/strict";
import type { PromptRecord } from "../src/output/record.ts";
import { cliCommand } from "./cli.ts";

/** Collects a stream's text so a test can wait for a pattern. */
function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const decoder = new TextDecoder();
  const done = stream.pipeTo(
    new WritableStream({ write: (chunk) => void (text += decoder.decode(chunk)) }),
  );
  return { text: () => text, done };
}

// Generous: a pass on a loaded single core takes seconds; the wait ends as soon as the text shows.
async function waitFor(read: () => string, pattern: RegExp, what: string, ms = 120_000) {
  const until = performance.now() + ms;
  while (!pattern.test(read())) {
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}:\n${read()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const count = (text: string, pattern: RegExp) => (text.match(pattern) ?? []).length;

Deno.test("--watch re-processes only edited and added prompts, survives an invalid edit, exits on Ctrl-C", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-watch-" });
  const file = `${cwd}/w.json`;
  const prompts = [
    { id: "a", prompt: "A red barn in a green field at noon" },
    { id: "b", prompt: "A lighthouse at night under stars" },
    { id: "c", prompt: "Snowy mountains at dawn" },
  ];
  await Deno.writeTextFile(file, JSON.stringify({ prompts }));
  const child = cliCommand(
    ["--out", "out", "--size", "256x192", "-q", "--watch", "w.json"],
    { cwd },
  ).spawn();
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  try {
    await waitFor(out.text, /3\/3 prompts completed/, "the first pass");
    await waitFor(err.text, /Watching/, "the watching notice");
    const firstA: PromptRecord = JSON.parse(
      await Deno.readTextFile(`${cwd}/out/w/a/metadata.json`),
    );

    // Edit one prompt and add one; the third stays as it was.
    prompts[1]!.prompt = "A lighthouse at dusk in fog";
    prompts.push({ id: "d", prompt: "A desert with orange dunes" });
    await Deno.writeTextFile(file, JSON.stringify({ prompts }));
    await waitFor(
      () => `${out.text()}\n--- stderr ---\n${err.text()}`,
      /2\/2 prompts completed/,
      "the second pass",
    );
    assert.match(err.text(), /Re-processing 2 added or edited prompt\(s\): b, d/);
    const b: PromptRecord = JSON.parse(await Deno.readTextFile(`${cwd}/out/w/b/metadata.json`));
    assert.equal(b.iterations[0]!.prompt, "A lighthouse at dusk in fog");
    await Deno.stat(`${cwd}/out/w/d/metadata.json`);
    const a: PromptRecord = JSON.parse(await Deno.readTextFile(`${cwd}/out/w/a/metadata.json`));
    assert.equal(a.startedAt, firstA.startedAt, "an unchanged prompt is not redone");

    // An invalid edit: the error is shown and watching goes on.
    await Deno.writeTextFile(file, `{"prompts": [ {"id": "a", "prompt": 5} ]}`);
    await waitFor(err.text, /field 'prompt' expected a string/, "the validation error");
    await waitFor(err.text, /Still watching/, "the still-watching notice");
    await Deno.writeTextFile(file, JSON.stringify({ prompts }));
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(count(out.text(), /prompts completed/g), 2, "no pass when nothing changed");

    child.kill("SIGINT");
    const status = await child.status;
    assert.equal(status.code, 0, err.text());
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await out.done.catch(() => {});
    await err.done.catch(() => {});
    await Deno.remove(cwd, { recursive: true });
  }
});
