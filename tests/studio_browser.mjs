// The studio in a real browser: Playwright (playwright-core) drives Debian's Chromium against a
// live `retake run --ui`. Run by tests/studio_browser_test.ts under Node, as playwright-core
// reads /proc files that Deno allows only with --allow-all. Prints one JSON line per step on
// stdout; the last is {"done": true, ...} or {"error": "..."}.
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const report = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const problems = [];
/** What the page showed when a step failed, for the report. */
let lastSeen = () => Promise.resolve(undefined);
// Waits on what the page or the disk shows, never on the clock: the cap only turns a hang into
// a clear failure.
const CAP = { timeout: cfg.capMs };

async function main() {
  const browser = await chromium.launch({ executablePath: cfg.chromium, args: ["--no-sandbox"] });
  try {
    // The token is required: a browser without it gets 401, whatever the path.
    const stranger = await browser.newContext();
    const anonymous = await stranger.request.get(`${cfg.origin}/`);
    const anonymousBatch = await stranger.request.get(`${cfg.origin}/b/${cfg.batch}/`);
    report({ step: "no token", status: anonymous.status(), batchStatus: anonymousBatch.status() });
    await stranger.close();

    const context = await browser.newContext({ viewport: cfg.viewport });
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("requestfailed", (r) => {
      // An event stream cut by navigation is no fault.
      if (!r.url().includes("/events")) problems.push(`request failed: ${r.url()}`);
    });

    await page.goto(cfg.url);
    report({ step: "first visit", url: page.url() });
    // The studio lives under its session's own path, which the first visit was sent to.
    const base = new URL(page.url()).pathname;
    const batchUrl = `${cfg.origin}${base}b/${encodeURIComponent(cfg.batch)}/`;
    // The batch folder appears once the run has written its run.json.
    for (;;) {
      const response = await page.request.get(batchUrl);
      if (response.status() === 200) break;
      await page.waitForTimeout(50);
    }
    await page.goto(batchUrl);
    await page.waitForSelector("body[data-connected='true']", CAP);
    await page.evaluate(() => {
      globalThis.__sameDocument = true;
      // A second stream, to see the order of events as the server sent them.
      globalThis.__events = [];
      const root = document.querySelector('meta[name="base"]').content;
      const source = new EventSource(
        `${root}events?batch=${encodeURIComponent(document.body.dataset.batch)}`,
      );
      for (const type of ["step-start", "step-end", "feedback"]) {
        source.addEventListener(
          type,
          (e) => globalThis.__events.push({ type, ...JSON.parse(e.data) }),
        );
      }
      globalThis.__ready = new Promise((resolve) => source.onopen = resolve);
    });
    await page.evaluate(() => globalThis.__ready);
    report({ step: "batch page", url: page.url() });

    // A POST without the page's CSRF token is refused.
    const noCsrf = await page.evaluate(async (url) =>
      (await fetch(`${url}action`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "pause" }),
      })).status, batchUrl);
    report({ step: "no csrf", status: noCsrf });
    // The refusal just asked for is the one console error expected.
    const expected = problems.findIndex((p) => p.includes("status of 403"));
    if (expected !== -1) problems.splice(expected, 1);

    // Pause: no step starts after the pause reached the stream; calls in flight finish.
    await page.click("#pause");
    await page.waitForSelector("body[data-paused='true']", CAP);
    await page.waitForFunction(
      () => globalThis.__events.some((e) => e.type === "feedback" && e.action.type === "pause"),
      undefined,
      CAP,
    );
    // Watched until the stream has been quiet for a second: calls in flight had time to end.
    await page.waitForFunction(
      () => {
        const now = performance.now();
        if (globalThis.__count !== globalThis.__events.length) {
          globalThis.__count = globalThis.__events.length;
          globalThis.__since = now;
        }
        return now - globalThis.__since > 1000;
      },
      undefined,
      { ...CAP, polling: 100 },
    );
    await page.screenshot({ path: cfg.pausedShot });
    const startsAfterPause = await page.evaluate(() => {
      const at = globalThis.__events.findIndex((e) =>
        e.type === "feedback" && e.action.type === "pause"
      );
      return globalThis.__events.slice(at).filter((e) => e.type === "step-start").length;
    });
    report({ step: "paused", startsAfterPause });
    await page.click("#pause");
    await page.waitForSelector("body[data-paused='false']", CAP);
    await page.waitForFunction(
      () => {
        const at = globalThis.__events.findLastIndex((e) =>
          e.type === "feedback" && e.action.type === "resume"
        );
        return at !== -1 && globalThis.__events.slice(at).some((e) => e.type === "step-start");
      },
      undefined,
      CAP,
    );
    report({ step: "resumed" });

    // Reject a finished prompt with a note: a new round with the note appears in its row,
    // image and all, without a reload.
    const row = page.locator("section.row[data-status='completed']").first();
    await row.waitFor(CAP);
    const id = await row.getAttribute("data-id");
    const folder = await row.getAttribute("data-folder");
    lastSeen = () =>
      page.locator(`#row-${folder}`).evaluate((e) => e.outerHTML).catch(() => undefined);
    // By its folder from now on: the row is replaced whenever its prompt changes.
    const mine = page.locator(`#row-${folder}`);
    await mine.locator("textarea").fill(cfg.note);
    await mine.locator("form.reject button").click();
    // The row is replaced as each step of the new round lands: looked up afresh at every poll.
    const iteration = await (await page.waitForFunction(
      ({ folder, note }) => {
        const round = [...document.querySelectorAll(`#row-${folder} article.round`)]
          .find((r) => r.querySelector("p.note")?.textContent.includes(note));
        const img = round?.querySelector("img");
        if (!img) return false;
        // A lazy image loads once it is near the viewport.
        img.scrollIntoView({ block: "nearest" });
        return img.complete && img.naturalWidth > 0 && Number(round.dataset.iteration);
      },
      { folder, note: cfg.note },
      { ...CAP, polling: 100 },
    )).jsonValue();
    const sameDocument = await page.evaluate(() => globalThis.__sameDocument === true);
    report({ step: "rejected", id, folder, iteration, sameDocument });

    await page.evaluate(() => globalThis.scrollTo(0, 0));
    // Every image in view has loaded before the screenshot is taken.
    await page.waitForFunction(
      () =>
        [...document.images].filter((img) => img.getBoundingClientRect().top < innerHeight)
          .every((img) => img.complete && img.naturalWidth > 0),
      undefined,
      CAP,
    );
    await page.screenshot({ path: cfg.screenshot });
    report({ done: true, problems });
  } catch (error) {
    error.row = await lastSeen();
    throw error;
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  report({ error: String(error?.stack ?? error), problems, row: error?.row });
  process.exitCode = 1;
});
