import assert from "node:assert/strict";
import type { Entry } from "../gallery/gallery.ts";
import type { PromptRecord } from "../output/record.ts";
import { renderRow, stopReason } from "./page.ts";

const HOSTILE = `<script>alert("x")</script> & 'q'`;

function record(partial: Partial<PromptRecord> = {}): PromptRecord {
  return {
    id: HOSTILE,
    folder: "f",
    status: "completed",
    endReason: "target",
    inputHash: "",
    title: HOSTILE,
    prompt: HOSTILE,
    extra: {},
    providers: { generator: "g", critic: "c", refiner: "r" },
    brief: { checks: [{ id: "c1", question: HOSTILE, kind: "entity" }] },
    iterations: [{
      iteration: 1,
      prompt: HOSTILE,
      image: "iteration-1.png",
      note: HOSTILE,
      action: "redraw",
      actionReason: HOSTILE,
      critique: {
        score: 7,
        summary: HOSTILE,
        checks: [{ id: "c1", passed: false, reason: HOSTILE }],
      } as unknown as NonNullable<PromptRecord["iterations"][number]["critique"]>,
      steps: {},
    }],
    bestIteration: 1,
    costUsd: 0,
    durationMs: 0,
    startedAt: "",
    ...partial,
  };
}

Deno.test("renderRow() escapes every string a record holds", () => {
  const entry: Entry = { kind: "single", folder: "f", record: record() };
  const html = renderRow("b<", entry, { thumbs: () => undefined, live: true });
  assert.doesNotMatch(html, /<script>/);
  assert.doesNotMatch(html, /"x"\)/);
  assert.match(html, /&#60;script&#62;alert\(&#34;x&#34;\)&#60;\/script&#62; &#38; &#39;q&#39;/);
  assert.match(html, /src="\/b\/b%3C\/f\/f\/iteration-1\.png"/);
  assert.match(html, /Your note: &#60;script&#62;/);
});

Deno.test("renderRow() offers front and cancel only for a running prompt of a live run", () => {
  const running: Entry = { kind: "single", folder: "f", record: record({ status: "running" }) };
  const done: Entry = { kind: "single", folder: "f", record: record() };
  const opts = { thumbs: () => undefined, live: true };
  assert.match(renderRow("b", running, opts), /data-action="front"/);
  assert.doesNotMatch(renderRow("b", done, opts), /data-action="front"/);
  assert.doesNotMatch(renderRow("b", running, { ...opts, live: false }), /data-action="cancel"/);
  assert.match(renderRow("b", done, opts), /data-action="reject"/);
});

Deno.test("renderRow() shows the prompt's context from its file, escaped", () => {
  const entry: Entry = {
    kind: "single",
    folder: "f",
    record: record({ extra: { Category: "Animals", [HOSTILE]: HOSTILE, include: [{ n: 1 }] } }),
  };
  const html = renderRow("b", entry, { thumbs: () => undefined, live: true });
  assert.match(html, /<dl class="context"><dt>Category<\/dt><dd>Animals<\/dd>/);
  assert.match(html, /<dt>include<\/dt><dd>\[\{&#34;n&#34;:1\}\]<\/dd>/);
  assert.doesNotMatch(html, /<script>/);
  const plain: Entry = { kind: "single", folder: "f", record: record() };
  assert.doesNotMatch(renderRow("b", plain, { thumbs: () => undefined, live: true }), /context/);
});

Deno.test("stopReason() says why a prompt stopped", () => {
  assert.equal(stopReason(record()), "Stopped: reached the target");
  assert.match(
    stopReason(record({
      status: "failed",
      error: { step: "generate", iteration: 2, message: "no" },
    } as Partial<PromptRecord>)),
    /^Failed at generate 2: no$/,
  );
});
