/**
 * The studio's cookie in a real browser (Debian's Chromium over the DevTools protocol, see
 * tests/browser.ts) beside a second local server. A browser sends a cookie of 127.0.0.1 to every
 * port: the studio's must reach no other server, neither when a `run.json` from elsewhere tries
 * to send the studio's tab there, nor when the user opens that server themselves.
 */
import assert from "node:assert/strict";
import { makeBatch } from "../src/studio/_test_batch.ts";
import { startStudio } from "../src/studio/server.ts";
import { Browser, CHROMIUM, hasChromium } from "./browser.ts";

const chromium = await hasChromium();

Deno.test({
  name: chromium
    ? "case 2: the studio's cookie never reaches another local server, in headless Chromium"
    : `studio cookie in Chromium (skipped only because ${CHROMIUM} is missing)`,
  ignore: !chromium,
  async fn() {
    const cwd = await Deno.makeTempDir({ prefix: "retake-studio-cookie-" });
    // The other local server: records what every request brought.
    const seen: Array<{ path: string; cookie: string }> = [];
    let arrived = (_path: string) => {};
    const evil = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
      const path = new URL(request.url).pathname;
      seen.push({ path, cookie: request.headers.get("cookie") ?? "" });
      arrived(path);
      return new Response("<!doctype html><title>elsewhere</title>", {
        headers: { "content-type": "text/html" },
      });
    });
    const elsewhere = `http://127.0.0.1:${evil.addr.port}`;
    const out = `${cwd}/out`;
    await makeBatch(out, "batch", 1);
    // A received run.json whose count is markup that sends the page elsewhere.
    const run = JSON.parse(await Deno.readTextFile(`${out}/batch/run.json`));
    run.totals.prompts = `<meta http-equiv="refresh" content="0;url=${elsewhere}/stolen">`;
    await Deno.writeTextFile(`${out}/batch/run.json`, JSON.stringify(run));
    const studio = await startStudio({ out });
    const browser = await Browser.launch(`${cwd}/profile`);
    try {
      await browser.send("Page.enable");
      const loaded = browser.once("Page.loadEventFired");
      await browser.send("Page.navigate", { url: studio.url });
      await loaded;
      const shown = await browser.evaluate(
        `[location.origin, document.querySelector("meta[http-equiv]") === null, document.querySelector("table.batches td.num")?.textContent]`,
      ).catch((error) => [String(error)]);

      // The user opens the other server in the same browser: the request it gets is waited for.
      const direct = new Promise<void>((resolve) =>
        arrived = (path) => path === "/direct" && resolve()
      );
      await browser.send("Page.navigate", { url: `${elsewhere}/direct` });
      await direct;
      for (const request of seen) {
        assert.doesNotMatch(request.cookie, /retake_studio/, `${request.path} got the cookie`);
      }
      assert.ok(!seen.some((r) => r.path === "/stolen"), "the studio's tab was sent elsewhere");
      // The count was escaped: shown as no number, on the studio's own page.
      assert.deepEqual(shown, [`http://127.0.0.1:${studio.port}`, true, "–"]);
    } finally {
      await browser.close();
      await studio.close();
      await evil.shutdown();
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
