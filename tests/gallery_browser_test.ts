/**
 * The gallery page in a real browser: headless Chromium opens `index.html` from `file://`,
 * lazy-loads every thumbnail, logs no error, and leaves a screenshot to look at.
 */
import assert from "node:assert/strict";
import { writeGallery } from "../src/gallery/gallery.ts";
import { Browser, CHROMIUM, hasChromium as chromiumInstalled } from "./browser.ts";
import { EXAMPLE, runCli } from "./cli.ts";

const SCREENSHOT_COPY = "/tmp/gallery-screenshot.png";
const VIEWPORT = { width: 1366, height: 800 };

const hasChromium = await chromiumInstalled();

Deno.test({
  name: hasChromium
    ? "gallery page loads every thumbnail from file:// in headless Chromium with no console error"
    : `gallery page in headless Chromium (skipped: ${CHROMIUM} is missing; apt-get install chromium)`,
  ignore: !hasChromium,
  async fn() {
    const cwd = await Deno.makeTempDir({ prefix: "retake-gallery-browser-" });
    const result = await runCli(["--out", "out", EXAMPLE], { cwd });
    assert.equal(result.code, 0, result.stderr);
    const page = await writeGallery(`${cwd}/out/example`);

    const browser = await Browser.launch(`${cwd}/profile`);
    try {
      const problems: string[] = [];
      const offsite: string[] = [];
      browser.on("Runtime.consoleAPICalled", (p) => {
        if (p.type === "error") problems.push(`console: ${JSON.stringify(p.args)}`);
      });
      browser.on(
        "Runtime.exceptionThrown",
        (p) => problems.push(`exception: ${JSON.stringify(p)}`),
      );
      browser.on("Log.entryAdded", (p) => {
        const entry = p.entry as { level: string; text: string; url?: string };
        if (entry.level === "error") problems.push(`log: ${entry.text} ${entry.url ?? ""}`);
      });
      browser.on("Network.requestWillBeSent", (p) => {
        const url = (p.request as { url: string }).url;
        if (!/^(file|data):/.test(url)) offsite.push(url);
      });
      browser.on("Network.loadingFailed", (p) => problems.push(`failed: ${JSON.stringify(p)}`));
      for (const domain of ["Page", "Runtime", "Log", "Network"]) {
        await browser.send(`${domain}.enable`);
      }
      await browser.send("Emulation.setDeviceMetricsOverride", {
        ...VIEWPORT,
        deviceScaleFactor: 1,
        mobile: false,
      });

      const loadedEvent = browser.once("Page.loadEventFired");
      await browser.send("Page.navigate", { url: new URL(`file://${page}`).href });
      await loadedEvent;

      const LOADED = "[...document.images].filter((i) => i.complete && i.naturalWidth > 0).length";
      assert.equal(await browser.evaluate("document.images.length"), 14);
      assert.equal(
        await browser.evaluate(`[...document.images].every((i) => i.loading === "lazy")`),
        true,
      );
      assert.ok(
        (await browser.evaluate(LOADED) as number) < 14,
        "thumbnails far below the fold wait until scrolled to",
      );

      // Scroll through the page so every lazy thumbnail comes into view, then wait for them.
      const height = await browser.evaluate("document.documentElement.scrollHeight") as number;
      for (let y = 0; y <= height; y += VIEWPORT.height / 2) {
        await browser.evaluate(
          `window.scrollTo(0, ${y}); new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))`,
        );
      }
      const allLoaded = await browser.evaluate(`new Promise((resolve) => {
        const done = () => ${LOADED} === document.images.length;
        const started = Date.now();
        const tick = () => done() || Date.now() - started > 10000 ? resolve(done()) : setTimeout(tick, 50);
        tick();
      })`);
      assert.equal(allLoaded, true, "every thumbnail loads within 10 s");
      assert.equal(await browser.evaluate(LOADED), 14);
      assert.equal(
        await browser.evaluate(`document.querySelectorAll("article.iteration.best").length`),
        7,
      );
      assert.ok((await browser.evaluate(`document.querySelectorAll("ins").length`) as number) > 0);
      const overflow = await browser.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth",
      );
      assert.equal(overflow, 0, "no horizontal scrolling on a laptop-sized window");

      await browser.evaluate("window.scrollTo(0, 0)");
      // The screenshot outlives the test's folder: it is the artifact to look at.
      const shot = `${await Deno.makeTempDir({ prefix: "retake-gallery-shot-" })}/gallery.png`;
      await Deno.writeFile(shot, await browser.screenshot(VIEWPORT.width, height));
      await Deno.copyFile(shot, SCREENSHOT_COPY);
      // deno-lint-ignore no-console
      console.log(`gallery screenshot: ${shot} (copied to ${SCREENSHOT_COPY})`);

      assert.deepEqual(problems, []);
      assert.deepEqual(offsite, [], "the page reaches nothing outside file://");
    } finally {
      await browser.close();
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
