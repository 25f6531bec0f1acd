/**
 * Property tests of `transition` over random event sequences (fast-check): it never changes the
 * record it is given, and the money on a record only moves where the event says it does.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { newRecord, type PromptRecord, totalCost } from "../output/record.ts";
import { uniformCritique } from "../../tests/critique_fixture.ts";
import { type PromptEvent, transition } from "./state.ts";

const step = (costUsd: number) => ({
  provider: "fake",
  model: "m",
  durationMs: 1,
  attempts: 1,
  costUsd,
  startedAt: "t",
});

/** Random events, numbered against the rounds the record will have when each comes. */
const eventArb: fc.Arbitrary<PromptEvent> = fc.oneof(
  fc.record({
    type: fc.constant("request-recorded" as const),
    pending: fc.record({
      iteration: fc.integer({ min: 1, max: 5 }),
      model: fc.constant("m"),
      requestId: fc.constantFrom("r1", "r2"),
      acceptedAt: fc.constant("t"),
      costUsd: fc.constantFrom(0, 0.01, 0.04),
    }),
  }),
  fc.record({ type: fc.constant("request-dropped" as const) }),
  fc.record({
    type: fc.constant("request-dropped" as const),
    requestId: fc.constantFrom("r1", "r2"),
  }),
  fc.record({ type: fc.constant("request-charged" as const), reason: fc.constant("lost") }),
  fc.record({
    type: fc.constant("attempt-charged" as const),
    charge: fc.record({
      step: fc.constantFrom("generate" as const, "critique" as const),
      iteration: fc.integer({ min: 1, max: 5 }),
      costUsd: fc.constantFrom(0.001, 0.02),
      reason: fc.constant("billed failure"),
    }),
  }),
  fc.constantFrom(
    { type: "image-saved" } as unknown as PromptEvent,
    { type: "critique-saved" } as unknown as PromptEvent,
    { type: "refined" } as unknown as PromptEvent,
  ),
  fc.record({
    type: fc.constant("stopped" as const),
    cause: fc.constantFrom("interrupt" as const),
  }),
  fc.record({ type: fc.constant("totals" as const), durationMs: fc.nat(10_000) }),
);

/** Fills in a round event so it names a round the record has (or the next one, for an image). */
function concrete(record: PromptRecord, event: PromptEvent, score: number): PromptEvent {
  const last = record.iterations.at(-1)?.iteration ?? 0;
  if (event.type === "image-saved") {
    const iteration = last + 1;
    return {
      type: "image-saved",
      round: { iteration, prompt: "p", model: "m", steps: { generate: step(0.03) } },
    };
  }
  if (event.type === "critique-saved" && last > 0) {
    return {
      type: "critique-saved",
      iteration: last,
      critique: uniformCritique(score),
      step: step(0.002),
    };
  }
  if (event.type === "refined" && last > 0) {
    return {
      type: "refined",
      iteration: last,
      prompt: "p2",
      changes: [],
      next: { action: "redraw", reason: "r" },
      step: step(0.001),
    };
  }
  if (event.type === "critique-saved" || event.type === "refined") {
    return { type: "totals", durationMs: 1 };
  }
  return event;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

const fresh = () =>
  newRecord(
    { id: "p1", prompt: "a kite", extra: {} },
    "p1",
    {
      generator: "g",
      critic: "c",
      refiner: "r",
    },
    "t0",
    "h",
  );

Deno.test("transition() never changes the record it is given, and moves money only as told", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(eventArb, fc.integer({ min: 1, max: 10 })), { maxLength: 40 }),
      (events) => {
        let record = deepFreeze(fresh());
        for (const [raw, score] of events) {
          const event = concrete(record, raw, score);
          const before = JSON.stringify(record);
          // A frozen record: any write to it throws here, in strict mode.
          const after = deepFreeze(transition(record, event));
          assert.equal(JSON.stringify(record), before);
          const pending = record.pending?.costUsd ?? 0;
          const spent = (r: PromptRecord) => Math.round(totalCost(r) * 1e6);
          if (event.type === "request-charged") {
            // What a lost request was estimated at stays spent: it moves to the charges.
            assert.equal(spent(after), spent(record));
            assert.equal(after.pending, undefined);
          }
          if (event.type === "request-recorded") assert.deepEqual(after.pending, event.pending);
          if (event.type === "image-saved") {
            assert.equal(after.pending, undefined);
            assert.equal(after.iterations.length, record.iterations.length + 1);
          }
          if (event.type === "attempt-charged") {
            assert.equal(spent(after), spent(record) + Math.round(event.charge.costUsd * 1e6));
          }
          if (event.type === "request-dropped") {
            const matches = event.requestId === undefined ||
              record.pending?.requestId === event.requestId;
            const dropped = matches ? Math.round(pending * 1e6) : 0;
            assert.equal(spent(after), spent(record) - dropped);
          }
          if (event.type === "totals") {
            assert.equal(after.costUsd, totalCost(record));
            const scored = record.iterations.filter((it) => it.critique !== undefined);
            if (scored.length > 0) {
              assert.equal(after.bestScore, Math.max(...scored.map((it) => it.critique!.score)));
            }
          }
          record = after;
        }
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("transition() completes a resumed prompt with its stop cause cleared", () => {
  let record = transition(fresh(), { type: "stopped", cause: "budget" });
  record = transition({ ...record, status: "interrupted", finishedAt: "t1" }, { type: "resumed" });
  assert.equal(record.status, "running");
  assert.equal(record.stopCause, undefined);
  assert.equal(record.finishedAt, undefined);
  record = transition(record, { type: "completed", at: "t2", bestImage: "best.png" });
  assert.equal(record.status, "completed");
  assert.equal(record.endReason, "iterations");
  assert.equal(record.bestImage, "best.png");
  assert.equal(transition(record, { type: "interrupted" }).status, "completed");
});
