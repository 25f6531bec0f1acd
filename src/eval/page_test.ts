import assert from "node:assert/strict";
import { report } from "./_test_report.ts";
import { renderEvalPage, writeEvalPage } from "./page.ts";
import { OFFLINE_CAVEAT } from "./report.ts";
import { STRATEGIES } from "./strategies.ts";

Deno.test("renderEvalPage() plots one point per strategy, against images when every call was free", () => {
  const html = renderEvalPage(report(0), "example");
  assert.equal(html.match(/<circle class="point"/g)?.length, 3);
  for (const s of STRATEGIES) assert.match(html, new RegExp(`data-strategy="${s}"`));
  assert.match(html, /images per prompt \(offline: every call is free\)/);
  assert.ok(html.includes(OFFLINE_CAVEAT.replaceAll("'", "&#39;")), "the caveat, in plain words");
  assert.match(html, /won <b>2<\/b>, tied <b>0<\/b> and lost <b>0<\/b> of 2/);
  assert.match(html, /<a href="eval\/refine\/index.html">gallery<\/a>/);
  assert.doesNotMatch(html, /<script|https?:\/\//, "no script and nothing off the page");
});

Deno.test("renderEvalPage() plots against dollars when the strategies cost something", () => {
  const html = renderEvalPage(report(0.01), "example");
  assert.match(html, /cost per prompt \(USD\)/);
  assert.match(html, /Quality against dollars/);
  // Higher scores sit higher: refine's point is above single's.
  const cy = (s: string) =>
    Number(new RegExp(`data-strategy="${s}" cx="[\\d.]+" cy="([\\d.]+)"`).exec(html)![1]);
  assert.ok(cy("refine") < cy("best-of-n") && cy("best-of-n") < cy("single"));
  assert.doesNotMatch(html, /offline/);
});

Deno.test("renderEvalPage() escapes prompt ids", () => {
  const html = renderEvalPage(report(0, ["<img src=x onerror=alert(1)>"]), "<b>");
  assert.doesNotMatch(html, /<img src=x/);
  assert.match(html, /&#60;img src=x onerror=alert\(1\)&#62;/);
});

Deno.test("writeEvalPage() writes eval.html into the batch folder", async () => {
  const root = await Deno.makeTempDir({ prefix: "retake-eval-page-" });
  try {
    const path = await writeEvalPage(root, report(0));
    assert.equal(path, `${root}/eval.html`);
    assert.match(await Deno.readTextFile(path), /^<!doctype html>/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
