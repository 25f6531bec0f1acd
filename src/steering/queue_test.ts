import assert from "node:assert/strict";
import type { PromptSpec } from "../prompts/mod.ts";
import { PromptQueue } from "./queue.ts";

const specs = (n: number): PromptSpec[] =>
  Array.from({ length: n }, (_, i) => ({ id: `p${i}`, prompt: `prompt ${i}`, extra: {} }));

Deno.test("PromptQueue gives prompts in order, a moved one first, each once", () => {
  const queue = new PromptQueue(specs(5));
  assert.equal(queue.take()?.id, "p0");
  assert.equal(queue.front("p3"), true);
  assert.equal(queue.front("p0"), false, "a prompt already taken cannot move");
  assert.equal(queue.front("nope"), false);
  assert.equal(queue.size, 4);
  assert.equal(queue.front("p4"), true);
  assert.equal(queue.front("p3"), true, "moving again puts it before the later move");
  const order = [];
  for (let spec = queue.take(); spec; spec = queue.take()) order.push(spec.id);
  assert.deepEqual(order, ["p3", "p4", "p1", "p2"]);
  assert.equal(queue.size, 0);
});
