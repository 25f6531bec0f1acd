/**
 * The studio in a real browser: `retake run --ui` on the offline providers, driven by
 * Playwright (playwright-core) in Debian's Chromium from a Node script (tests/studio_browser.mjs),
 * as playwright-core under Deno needs --allow-all. The page loads with no console error; the
 * token is required; a POST without the CSRF token is refused; pause stops new steps; a reject
 * with a note brings a new round, with the note, into the prompt's row while the page is open;
 * and a screenshot is left to look at.
 */
import assert from "node:assert/strict";
import { CHROMIUM, hasChromium } from "./browser.ts";
import { cliCommand, ROOT } from "./cli.ts";

const SCREENSHOT_COPY = "/tmp/studio-screenshot.png";
const NOTE = "make the sky a deep violet, with one bright star";
/** Enough prompts that the run is still going when the page is open and paused. */
const PROMPTS = 40;

async function which(command: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(command, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return success;
  } catch {
    return false;
  }
}

/**
 * Whether playwright-core is in node_modules. Only Node imports it, so a fresh clone's first
 * `deno test` has not installed it: `deno install` puts every package deno.json names there.
 */
async function hasPlaywright(): Promise<boolean> {
  const path = `${ROOT}node_modules/playwright-core/package.json`;
  const installed = () => Deno.stat(path).then(() => true, () => false);
  if (await installed()) return true;
  await new Deno.Command(Deno.execPath(), {
    args: ["install", "--quiet"],
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  }).output();
  return await installed();
}

const chromium = await hasChromium();
const node = await which("node");
const playwright = chromium && node && await hasPlaywright();
const missing = !chromium
  ? `${CHROMIUM} is missing; apt-get install chromium`
  : !node
  ? "node is not on PATH"
  : !playwright
  ? "node_modules/playwright-core is missing; run deno install"
  : undefined;

/** Prompts made from the example's, each id once, so the run is long enough to steer. */
async function writePrompts(path: string): Promise<void> {
  const example = JSON.parse(await Deno.readTextFile(`${ROOT}prompts/example.json`)).prompts;
  const prompts = Array.from({ length: PROMPTS }, (_, i) => {
    const p = example[i % example.length];
    return { ...p, id: `${p.id}-${String(i + 1).padStart(3, "0")}` };
  });
  await Deno.writeTextFile(path, JSON.stringify({ prompts }));
}

Deno.test({
  name: missing
    ? `studio in headless Chromium (skipped only because no browser can be run: ${missing})`
    : "studio: live rows, pause, reject with a note, token and CSRF, in headless Chromium",
  ignore: missing !== undefined,
  async fn() {
    const cwd = await Deno.makeTempDir({ prefix: "retake-studio-browser-" });
    await writePrompts(`${cwd}/many.json`);
    const child = cliCommand(["--offline", "--out", "out", "-n", "2", "--ui", "many.json"], { cwd })
      .spawn();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    let ended = false;
    let wake = () => {};
    const drained = (async () => {
      for (;;) {
        const { value, done } = await stderr.read();
        if (done) break;
        seen += value;
        wake();
      }
      ended = true;
      wake();
    })();
    const stdout = child.stdout.pipeThrough(new TextDecoderStream());
    const out = stdout.pipeTo(new WritableStream());
    try {
      // The one line both commands print, then the page to open.
      while (!/Studio: http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}\n/.test(seen)) {
        if (ended) throw new Error(`retake ended before printing the studio's URL: ${seen}`);
        await new Promise<void>((resolve) => wake = resolve);
      }
      const url = /Studio: (\S+)\n/.exec(seen)![1]!;
      const origin = new URL(url).origin;
      const shots = await Deno.makeTempDir({ prefix: "retake-studio-shot-" });
      const config = {
        url,
        origin,
        batch: "many",
        batchDir: `${cwd}/out/many`,
        chromium: CHROMIUM,
        note: NOTE,
        viewport: { width: 1366, height: 900 },
        screenshot: `${shots}/studio.png`,
        pausedShot: `${shots}/studio-paused.png`,
        capMs: 120_000,
      };
      const browser = await new Deno.Command("node", {
        args: [`${ROOT}tests/studio_browser.mjs`, JSON.stringify(config)],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const lines = new TextDecoder().decode(browser.stdout).trim().split("\n").filter(Boolean)
        .map((l) => JSON.parse(l));
      const step = (name: string) => lines.find((l) => l.step === name);
      const last = lines.at(-1);
      assert.ok(
        last?.done,
        `the browser script failed: ${JSON.stringify(lines, null, 1)}\n${
          new TextDecoder().decode(browser.stderr)
        }`,
      );
      assert.deepEqual(last.problems, [], "no console error, no failed request");
      assert.equal(step("no token").status, 401);
      assert.equal(step("no token").batchStatus, 401);
      assert.equal(new URL(step("first visit").url).search, "", "the token left the address bar");
      assert.equal(step("no csrf").status, 403);
      const paused = step("paused");
      assert.equal(paused.startsAfterPause, 0, "no step started while paused");
      const rejected = step("rejected");
      assert.equal(rejected.sameDocument, true, "the new round came in without a reload");
      assert.equal(rejected.iteration, 3, "a finished prompt of 2 rounds got a third");

      const record = JSON.parse(
        await Deno.readTextFile(`${cwd}/out/many/${rejected.folder}/metadata.json`),
      );
      const third = record.iterations.find((it: { iteration: number }) => it.iteration === 3);
      assert.equal(third.note, NOTE, "the round records the note it was made for");
      const second = record.iterations.find((it: { iteration: number }) => it.iteration === 2);
      assert.match(second.next?.note ?? "", new RegExp(NOTE), "the refiner took the note");
      const feedback = (await Deno.readTextFile(`${cwd}/out/many/feedback.jsonl`)).trim()
        .split("\n").map((l) => JSON.parse(l));
      const reject = feedback.find((f) => f.action?.type === "reject");
      assert.equal(reject.action.note, NOTE);
      assert.ok(feedback.some((f) => f.done === reject.seq), "the note is marked acted on");

      await Deno.copyFile(config.screenshot, SCREENSHOT_COPY);
      // deno-lint-ignore no-console
      console.log(`studio screenshot: ${config.screenshot} (copied to ${SCREENSHOT_COPY})`);
    } finally {
      // The first SIGTERM drains the run and closes the studio, as Ctrl-C does.
      try {
        child.kill("SIGTERM");
      } catch {
        // It has exited already.
      }
      await child.status;
      await drained;
      await out;
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
