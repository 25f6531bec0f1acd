import assert from "node:assert/strict";
import { sleep } from "./sleep.ts";

Deno.test("sleep() resolves after its time, and rejects with the abort reason at once", async () => {
  await sleep(1, new AbortController().signal);
  const reason = new Error("cancelled");
  await assert.rejects(sleep(1, AbortSignal.abort(reason)), (error) => error === reason);
  const controller = new AbortController();
  const started = Date.now();
  const waiting = sleep(60_000, controller.signal);
  controller.abort(reason);
  await assert.rejects(waiting, (error) => error === reason);
  assert.ok(Date.now() - started < 30_000, "the timer does not keep it waiting");
});
