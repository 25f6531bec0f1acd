import assert from "node:assert/strict";
import { report } from "./_test_report.ts";
import { OFFLINE_CAVEAT } from "./report.ts";
import { formatEvalSummary } from "./summary.ts";

Deno.test("formatEvalSummary() shows the strategies' table, the win rate and the caveat", () => {
  const text = formatEvalSummary(report(0), { json: "out/x/eval.json", page: "out/x/eval.html" });
  const lines = text.split("\n");
  assert.match(lines[0]!, /2 prompts, judge local:local-metrics-v1 \(the loop's own critic\)/);
  assert.match(text, /^ {2}single +1\.0 +6\.00 /m);
  assert.match(text, /^ {2}refine +2\.0 +8\.00 /m);
  assert.match(text, /refine vs best-of-n: win rate 1\.00 \(95% CI 1\.00–1\.00\) over 2 prompts/);
  assert.ok(text.includes(OFFLINE_CAVEAT));
  assert.match(text, /Wrote out\/x\/eval.json and out\/x\/eval.html\n$/);
});
