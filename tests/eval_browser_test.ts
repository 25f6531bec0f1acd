/**
 * The eval page in a real browser: headless Chromium opens `eval.html` from `file://` after an
 * offline `retake eval`, finds one chart point per strategy and the caveat on screen, logs no
 * error, reaches nothing off the page, and leaves a screenshot to look at.
 */
import assert from "node:assert/strict";
import { Browser, CHROMIUM, hasChromium } from "./browser.ts";
import { EXAMPLE, runCli } from "./cli.ts";

const SCREENSHOT_COPY = "/tmp/eval-screenshot.png";
const VIEWPORT = { width: 1366, height: 800 };
const installed = await hasChromium();

Deno.test({
  name: installed
    ? "eval page shows three chart points and the caveat from file:// in headless Chromium"
    : `eval page in headless Chromium (skipped: ${CHROMIUM} is missing; apt-get install chromium)`,
  ignore: !installed,
  async fn() {
    const cwd = await Deno.makeTempDir({ prefix: "retake-eval-browser-" });
    const result = await runCli(["eval", "--offline", "--out", "out", "--rounds", "2", EXAMPLE], {
      cwd,
    });
    assert.equal(result.code, 0, result.stderr);
    const page = `${cwd}/out/example/eval.html`;

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
      for (const domain of ["Page", "Runtime", "Log", "Network"]) {
        await browser.send(`${domain}.enable`);
      }
      await browser.send("Emulation.setDeviceMetricsOverride", {
        ...VIEWPORT,
        deviceScaleFactor: 1,
        mobile: false,
      });
      const loaded = browser.once("Page.loadEventFired");
      await browser.send("Page.navigate", { url: new URL(`file://${page}`).href });
      await loaded;

      assert.equal(
        await browser.evaluate(`document.querySelectorAll("svg circle.point").length`),
        3,
      );
      assert.deepEqual(
        await browser.evaluate(
          `[...document.querySelectorAll("svg circle.point")].map((c) => c.dataset.strategy)`,
        ),
        ["single", "best-of-n", "refine"],
      );
      // Every point is drawn inside the chart's plot area.
      assert.equal(
        await browser.evaluate(`(() => {
          const plot = document.querySelector("svg .plot").getBoundingClientRect();
          return [...document.querySelectorAll("svg circle.point")].every((c) => {
            const r = c.getBoundingClientRect();
            const x = r.left + r.width / 2, y = r.top + r.height / 2;
            return r.width > 0 && x >= plot.left && x <= plot.right && y >= plot.top && y <= plot.bottom;
          });
        })()`),
        true,
      );
      // The caveat is on the first screen, in plain words.
      const caveat = await browser.evaluate(`(() => {
        const el = document.querySelector(".caveat");
        const r = el.getBoundingClientRect();
        const style = getComputedStyle(el);
        return { text: el.innerText, top: r.top, height: r.height, shown: style.display !== "none" && style.visibility === "visible" };
      })()`) as { text: string; top: number; height: number; shown: boolean };
      assert.match(caveat.text, /these numbers show the harness works, not that refining pays/);
      assert.ok(caveat.shown && caveat.height > 0, "the caveat is drawn");
      assert.ok(caveat.top >= 0 && caveat.top + caveat.height <= VIEWPORT.height, "on screen");
      assert.equal(
        await browser.evaluate(`document.querySelectorAll("table.strategies tbody tr").length`),
        3,
      );
      assert.match(
        await browser.evaluate(`document.querySelector("svg").textContent`) as string,
        /images per prompt/,
      );
      const overflow = await browser.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth",
      );
      assert.equal(overflow, 0, "no horizontal scrolling on a laptop-sized window");

      const height = await browser.evaluate("document.documentElement.scrollHeight") as number;
      // The screenshot outlives the test's folder: it is the artifact to look at.
      const shot = `${await Deno.makeTempDir({ prefix: "retake-eval-shot-" })}/eval.png`;
      await Deno.writeFile(shot, await browser.screenshot(VIEWPORT.width, height));
      await Deno.copyFile(shot, SCREENSHOT_COPY);
      // deno-lint-ignore no-console
      console.log(`eval screenshot: ${shot} (copied to ${SCREENSHOT_COPY})`);

      assert.deepEqual(problems, []);
      assert.deepEqual(offsite, [], "the page reaches nothing outside file://");
    } finally {
      await browser.close();
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
