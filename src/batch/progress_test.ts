import assert from "node:assert/strict";
import type { PipelineEvent } from "../pipeline/pipeline.ts";
import {
  displayWidth,
  formatDuration,
  formatProgress,
  ProgressLine,
  type ProgressSnapshot,
  ProgressTracker,
} from "./progress.ts";

const CLEAR = "\r\x1b[2K";

function snapshot(overrides: Partial<ProgressSnapshot> = {}): ProgressSnapshot {
  return {
    total: 10,
    completed: 0,
    failed: 0,
    inFlight: { generate: 0, critique: 0, refine: 0 },
    retries: 0,
    costUsd: 0,
    elapsedMs: 0,
    ...overrides,
  };
}

// --- formatProgress ----------------------------------------------------------------------------

Deno.test("formatProgress() shows counts, stages, cost and elapsed time at the start", () => {
  assert.equal(
    formatProgress(snapshot()),
    "0/10 prompts | generating 0 · critiquing 0 · refining 0 | $0.0000 | 0s elapsed",
  );
});

Deno.test("formatProgress() shows work in flight per stage", () => {
  const line = formatProgress(snapshot({ inFlight: { generate: 3, critique: 2, refine: 1 } }));
  assert.ok(line.includes("generating 3 · critiquing 2 · refining 1"), line);
});

Deno.test("formatProgress() counts failed prompts as done and names them", () => {
  const line = formatProgress(snapshot({ completed: 4, failed: 2, elapsedMs: 60_000 }));
  assert.ok(line.startsWith("6/10 prompts | "), line);
  assert.ok(line.includes(" | 2 failed | "), line);
});

Deno.test("formatProgress() leaves out failures and retries while there are none", () => {
  const line = formatProgress(snapshot({ completed: 1, elapsedMs: 1000 }));
  assert.ok(!line.includes("failed"), line);
  assert.ok(!line.includes("retries"), line);
});

Deno.test("formatProgress() shows retries once there are some", () => {
  const line = formatProgress(snapshot({ retries: 3 }));
  assert.ok(line.includes(" | 3 retries | "), line);
});

Deno.test("formatProgress() shows the cost in dollars to four places", () => {
  assert.ok(formatProgress(snapshot({ costUsd: 0.003 })).includes(" | $0.0030 | "));
  assert.ok(formatProgress(snapshot({ costUsd: 12.5 })).includes(" | $12.5000 | "));
});

Deno.test("formatProgress() shows the snapshot's estimate of the time left", () => {
  const line = formatProgress(snapshot({ completed: 2, elapsedMs: 30_000, etaMs: 120_000 }));
  assert.equal(
    line,
    "2/10 prompts | generating 0 · critiquing 0 · refining 0 | $0.0000 | 30s elapsed | ETA 2m00s",
  );
});

Deno.test("formatProgress() shows no ETA until there is a rate", () => {
  const line = formatProgress(
    snapshot({ elapsedMs: 90_000, inFlight: { generate: 2, critique: 0, refine: 0 } }),
  );
  assert.ok(!line.includes("ETA"), line);
});

Deno.test("formatProgress() shows no ETA once every prompt is done", () => {
  const line = formatProgress(
    snapshot({ total: 3, completed: 2, failed: 1, elapsedMs: 9000, etaMs: 1000 }),
  );
  assert.ok(!line.includes("ETA"), line);
  assert.ok(line.startsWith("3/3 prompts"), line);
});

Deno.test("formatProgress() says draining instead of an ETA while the run drains", () => {
  const line = formatProgress(snapshot({ completed: 4, elapsedMs: 9000, draining: true }));
  assert.ok(line.endsWith(" | 9s elapsed | draining"), line);
  assert.ok(!line.includes("ETA"), line);
});

// --- formatProgress within the terminal's width ------------------------------------------------

const busy = snapshot({
  total: 5,
  completed: 3,
  failed: 1,
  retries: 7,
  costUsd: 0.0421,
  elapsedMs: 9_000,
  etaMs: 10_000,
  inFlight: { generate: 0, critique: 1, refine: 0 },
});

Deno.test("formatProgress() shows every field at 120 columns", () => {
  const line = formatProgress(busy, 120);
  assert.equal(
    line,
    "4/5 prompts | generating 0 · critiquing 1 · refining 0 | 1 failed | 7 retries | $0.0421 | 9s elapsed | ETA 10s",
  );
});

Deno.test("formatProgress() fits 80 columns by dropping retries and shortening the stages", () => {
  const line = formatProgress(busy, 80);
  assert.equal(
    line,
    "4/5 prompts | gen 0 · crit 1 · ref 0 | 1 failed | $0.0421 | 9s elapsed | ETA 10s",
  );
  assert.ok(displayWidth(line) <= 80);
});

Deno.test("formatProgress() keeps done/total, cost and ETA longest", () => {
  const narrow = formatProgress(busy, 35);
  assert.equal(narrow, "4/5 | 1 failed | $0.0421 | ETA 10s");
  assert.equal(formatProgress(busy, 24), "4/5 | $0.0421 | ETA 10s");
  assert.equal(formatProgress(busy, 14), "4/5 | $0.0421");
  assert.equal(formatProgress(busy, 5), "4/5");
  assert.equal(formatProgress(busy, 2), "4…");
});

Deno.test("formatProgress() keeps the elapsed time while there is no ETA yet", () => {
  const { etaMs: _etaMs, ...early } = busy;
  assert.equal(formatProgress(early, 38), "4/5 | 1 failed | $0.0421 | 9s elapsed");
});

/** A small deterministic generator, so a failure can be replayed. */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("formatProgress() never returns a line wider than the columns it is given", () => {
  const random = mulberry32(14);
  const big = (max: number) => Math.floor(random() ** 3 * max);
  for (let i = 0; i < 2000; i++) {
    const total = 1 + big(10_000_000);
    const s = snapshot({
      total,
      completed: big(total),
      failed: big(total),
      skipped: big(total),
      retries: big(1_000_000),
      costUsd: random() ** 3 * 100_000,
      elapsedMs: big(1000 * 3600 * 1000),
      inFlight: { generate: big(100_000), critique: big(100_000), refine: big(100_000) },
      ...(random() < 0.7 && { etaMs: big(1000 * 3600 * 10_000) }),
      ...(random() < 0.2 && { draining: true }),
    });
    const columns = 1 + Math.floor(random() * 200);
    const line = formatProgress(s, columns);
    assert.ok(displayWidth(line) <= columns, `${displayWidth(line)} > ${columns}: ${line}`);
    assert.ok(!line.includes("\n"), line);
    if (columns >= 80) {
      // Cost and time left fit any realistic count at 80 columns.
      assert.ok(line.includes("$"), line);
    }
  }
});

Deno.test("displayWidth() counts columns, not code units or escape codes", () => {
  assert.equal(displayWidth("4/5 · $0.01"), 11);
  assert.equal(displayWidth("\x1b[2K\x1b[32mok\x1b[0m"), 2);
  assert.equal(displayWidth("漢字"), 4);
  assert.equal(displayWidth("e\u0301"), 1);
  assert.equal(displayWidth("🙂"), 2);
});

// --- formatDuration ----------------------------------------------------------------------------

Deno.test("formatDuration() shows seconds below a minute", () => {
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(499), "0s");
  assert.equal(formatDuration(500), "1s");
  assert.equal(formatDuration(59_000), "59s");
});

Deno.test("formatDuration() shows minutes and padded seconds below an hour", () => {
  assert.equal(formatDuration(59_500), "1m00s");
  assert.equal(formatDuration(75_000), "1m15s");
  assert.equal(formatDuration(605_000), "10m05s");
  assert.equal(formatDuration(3_599_000), "59m59s");
});

Deno.test("formatDuration() shows hours and padded minutes from an hour", () => {
  assert.equal(formatDuration(3_600_000), "1h00m");
  assert.equal(formatDuration(3_599_600), "1h00m");
  assert.equal(formatDuration(2 * 3_600_000 + 5 * 60_000 + 59_000), "2h05m");
  assert.equal(formatDuration(30 * 3_600_000), "30h00m");
});

// --- ProgressTracker ---------------------------------------------------------------------------

function fakeClock(start = 1000) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const stepStart = (step: "generate" | "critique" | "refine", id = "a"): PipelineEvent => ({
  type: "step-start",
  id,
  step,
  iteration: 1,
});

const stepEnd = (
  step: "generate" | "critique" | "refine",
  costUsd = 0,
  id = "a",
): PipelineEvent => ({
  type: "step-end",
  id,
  step,
  iteration: 1,
  ok: true,
  durationMs: 10,
  costUsd,
});

const promptEnd = (
  status: "completed" | "failed" | "interrupted",
  id = "a",
  costUsd = 0,
): PipelineEvent => ({ type: "prompt-end", id, status, costUsd, skipped: false });

Deno.test("ProgressTracker measures elapsed time from its creation on the injected clock", () => {
  const clock = fakeClock(5000);
  const tracker = new ProgressTracker(3, { now: clock.now });
  assert.equal(tracker.snapshot().elapsedMs, 0);
  clock.advance(1234);
  assert.equal(tracker.snapshot().elapsedMs, 1234);
  assert.equal(tracker.snapshot().total, 3);
});

Deno.test("ProgressTracker counts steps in flight per stage", () => {
  const tracker = new ProgressTracker(3, { now: fakeClock().now });
  tracker.update(stepStart("generate", "a"));
  tracker.update(stepStart("generate", "b"));
  tracker.update(stepStart("critique", "c"));
  assert.deepEqual(tracker.snapshot().inFlight, { generate: 2, critique: 1, refine: 0 });
  tracker.update(stepEnd("generate", 0, "a"));
  tracker.update(stepStart("refine", "a"));
  assert.deepEqual(tracker.snapshot().inFlight, { generate: 1, critique: 1, refine: 1 });
});

Deno.test("ProgressTracker never counts a stage below zero", () => {
  const tracker = new ProgressTracker(1, { now: fakeClock().now });
  tracker.update(stepEnd("refine"));
  assert.equal(tracker.snapshot().inFlight.refine, 0);
  tracker.update(stepStart("refine"));
  assert.equal(tracker.snapshot().inFlight.refine, 1);
});

Deno.test("ProgressTracker adds up cost from finished steps only", () => {
  const tracker = new ProgressTracker(2, { now: fakeClock().now });
  tracker.update(stepStart("generate"));
  tracker.update(stepEnd("generate", 0.003));
  tracker.update(stepStart("critique"));
  tracker.update(stepEnd("critique", 0.0005));
  // prompt-end repeats the prompt's total; counting it again would double the cost.
  tracker.update(promptEnd("completed", "a", 0.0035));
  assert.equal(tracker.snapshot().costUsd.toFixed(4), "0.0035");
});

Deno.test("ProgressTracker counts retries, completed and failed prompts", () => {
  const tracker = new ProgressTracker(4, { now: fakeClock().now });
  tracker.update({ type: "prompt-start", id: "a" });
  tracker.update({ type: "retry", id: "a", step: "generate", attempt: 1, delayMs: 100 });
  tracker.update({ type: "retry", id: "b", step: "critique", attempt: 1, delayMs: 100 });
  tracker.update(promptEnd("completed", "a"));
  tracker.update(promptEnd("failed", "b"));
  tracker.update(promptEnd("completed", "c"));
  const s = tracker.snapshot();
  assert.equal(s.retries, 2);
  assert.equal(s.completed, 2);
  assert.equal(s.failed, 1);
});

Deno.test("ProgressTracker does not count an interrupted prompt as failed", () => {
  const tracker = new ProgressTracker(2, { now: fakeClock().now });
  tracker.update(promptEnd("completed", "a"));
  tracker.update(promptEnd("interrupted", "b"));
  const s = tracker.snapshot();
  assert.equal(s.completed, 1);
  assert.equal(s.failed, 0);
  assert.ok(!formatProgress(s).includes("failed"), formatProgress(s));
});

Deno.test("ProgressTracker snapshots are copies", () => {
  const tracker = new ProgressTracker(1, { now: fakeClock().now });
  const first = tracker.snapshot();
  first.inFlight.generate = 99;
  tracker.update(stepStart("generate"));
  assert.equal(tracker.snapshot().inFlight.generate, 1);
  assert.equal(first.inFlight.generate, 99);
});

Deno.test("ProgressTracker feeds formatProgress() an ETA once a step has ended", () => {
  const clock = fakeClock();
  const tracker = new ProgressTracker(3, { now: clock.now, minEtaSteps: 1 });
  tracker.update(stepStart("generate"));
  clock.advance(10_000);
  assert.ok(!formatProgress(tracker.snapshot()).includes("ETA"));
  tracker.update(stepEnd("generate", 0.01));
  tracker.update(promptEnd("completed"));
  assert.equal(
    formatProgress(tracker.snapshot()),
    "1/3 prompts | generating 0 · critiquing 0 · refining 0 | $0.0100 | 10s elapsed | ETA 20s",
  );
});

const start = (id: string): PipelineEvent => ({ type: "prompt-start", id });
const skippedEnd = (id: string): PipelineEvent => ({
  type: "prompt-end",
  id,
  status: "completed",
  costUsd: 0,
  skipped: true,
});

Deno.test("ProgressTracker counts the steps running prompts still need, and the queued ones", () => {
  const clock = fakeClock();
  const tracker = new ProgressTracker(2, { now: clock.now, stepsPerPrompt: 4, minEtaSteps: 1 });
  tracker.update(start("a"));
  for (let i = 0; i < 2; i++) {
    tracker.update(stepStart("generate", "a"));
    clock.advance(1000);
    tracker.update(stepEnd("generate", 0, "a"));
  }
  // a has 2 of 4 steps left, b all 4: 6 steps at one a second.
  assert.equal(tracker.snapshot().etaMs, 6000);
});

Deno.test("ProgressTracker leaves prompts skipped by resume out of the work left", () => {
  const clock = fakeClock();
  const tracker = new ProgressTracker(10, { now: clock.now, stepsPerPrompt: 2, minEtaSteps: 1 });
  for (let i = 0; i < 5; i++) tracker.update(skippedEnd(`done-${i}`));
  tracker.update(start("a"));
  tracker.update(stepStart("generate", "a"));
  clock.advance(2000);
  tracker.update(stepEnd("generate", 0, "a"));
  // a has 1 step left, 4 prompts 2 each: 9 steps at 2 s.
  assert.equal(tracker.snapshot().etaMs, 18_000);
  assert.equal(tracker.snapshot().skipped, 5);
});

Deno.test("ProgressTracker follows the recent rate, not the slow start", () => {
  const clock = fakeClock();
  const tracker = new ProgressTracker(1000, {
    now: clock.now,
    rateWindowMs: 10_000,
    minRateSamples: 5,
  });
  // One step every 5 s for a minute (the service's first call alone), then 10 a second.
  for (let i = 0; i < 12; i++) {
    clock.advance(5000);
    tracker.update(stepEnd("generate", 0, `slow-${i}`));
    tracker.update(promptEnd("completed", `slow-${i}`));
  }
  for (let i = 0; i < 200; i++) {
    clock.advance(100);
    tracker.update(stepEnd("generate", 0, `fast-${i}`));
    tracker.update(promptEnd("completed", `fast-${i}`));
  }
  // 788 prompts of one step left at 10 a second.
  assert.equal(Math.round(tracker.snapshot().etaMs!), 78_800);
});

Deno.test("ProgressTracker gives no ETA until a few steps have ended", () => {
  const clock = fakeClock();
  const tracker = new ProgressTracker(100, { now: clock.now, stepsPerPrompt: 3 });
  for (let i = 0; i < 4; i++) {
    clock.advance(1000);
    tracker.update(stepEnd("generate", 0, `p${i}`));
    assert.equal(tracker.snapshot().etaMs, undefined, `after ${i + 1} steps`);
  }
  clock.advance(1000);
  tracker.update(stepEnd("generate", 0, "p4"));
  assert.ok(tracker.snapshot().etaMs! > 0);
});

Deno.test("ProgressTracker says draining and gives no ETA once the run drains", () => {
  const clock = fakeClock();
  let draining = false;
  const tracker = new ProgressTracker(4, {
    now: clock.now,
    draining: () => draining,
    minEtaSteps: 1,
  });
  tracker.update(start("a"));
  clock.advance(1000);
  tracker.update(stepEnd("generate", 0, "a"));
  assert.ok(tracker.snapshot().etaMs !== undefined);
  draining = true;
  const s = tracker.snapshot();
  assert.equal(s.draining, true);
  assert.equal(s.etaMs, undefined);
  assert.ok(formatProgress(s).endsWith(" | draining"), formatProgress(s));
});

/**
 * A batch run breadth first, as a FIFO queue of steps serves it: `slots` steps at a time,
 * each `stepMs` long once it has a slot; a prompt's next step joins the back of the queue when
 * one ends.
 * Returns the ETA the tracker gave at each whole second, beside the time really left.
 */
function simulate(
  prompts: number,
  steps: number,
  slots: number,
  stepMs: number,
  order: "breadth" | "depth" = "breadth",
) {
  const clock = fakeClock(0);
  const tracker = new ProgressTracker(prompts, { now: clock.now, stepsPerPrompt: steps });
  const queue = Array.from({ length: prompts }, (_, i) => ({ id: `p${i}`, step: 0, queuedAt: 0 }));
  const running: Array<{ id: string; step: number; queuedAt: number; endsAt: number }> = [];
  const samples: Array<{ at: number; etaMs: number | undefined }> = [];
  let nextSample = 0;
  while (queue.length > 0 || running.length > 0) {
    while (running.length < slots && queue.length > 0) {
      const item = queue.shift()!;
      if (item.step === 0) tracker.update(start(item.id));
      tracker.update(stepStart("generate", item.id));
      running.push({ ...item, endsAt: clock.now() + stepMs });
    }
    running.sort((a, b) => a.endsAt - b.endsAt);
    const next = running.shift()!;
    while (nextSample < next.endsAt) {
      clock.advance(nextSample - clock.now());
      samples.push({ at: nextSample, etaMs: tracker.snapshot().etaMs });
      nextSample += 1000;
    }
    clock.advance(next.endsAt - clock.now());
    tracker.update({
      type: "step-end",
      id: next.id,
      step: "generate",
      iteration: 1,
      ok: true,
      // As the pipeline reports it: from the step's start, its wait for a permit included.
      durationMs: next.endsAt - next.queuedAt,
      costUsd: 0,
    });
    if (next.step + 1 < steps) {
      const item = { id: next.id, step: next.step + 1, queuedAt: clock.now() };
      if (order === "depth") queue.unshift(item);
      else queue.push(item);
    } else tracker.update(promptEnd("completed", next.id));
  }
  return { endsAt: clock.now(), samples };
}

Deno.test("ProgressTracker's ETA stays near the time left for a run that ends in seconds", () => {
  // The run: about 20 s, every prompt under way and few finished for most of it.
  const { endsAt, samples } = simulate(30, 6, 8, 1000);
  assert.ok(endsAt > 15_000 && endsAt < 30_000, `${endsAt}`);
  const given = samples.filter((s) => s.etaMs !== undefined);
  assert.ok(given.length >= samples.length - 2, "an ETA from the first step on");
  for (const { at, etaMs } of given) {
    const left = endsAt - at;
    assert.ok(etaMs! <= 2 * left + 2000, `at ${at} ms the ETA was ${etaMs} ms, ${left} ms left`);
    assert.ok(etaMs! >= left / 2 - 2000, `at ${at} ms the ETA was ${etaMs} ms, ${left} ms left`);
  }
});

Deno.test("ProgressTracker's ETA holds for a long batch at a steady pace, in either order", () => {
  for (const order of ["breadth", "depth"] as const) {
    const { endsAt, samples } = simulate(400, 5, 16, 700, order);
    for (const { at, etaMs } of samples.filter((s) => s.etaMs !== undefined && s.at > 5000)) {
      const left = endsAt - at;
      assert.ok(
        Math.abs(etaMs! - left) <= 0.25 * left + 2000,
        `${order}: at ${at} ms the ETA was ${etaMs} ms, ${left} ms left`,
      );
    }
  }
});

// --- ProgressLine ------------------------------------------------------------------------------

function captured() {
  const writes: string[] = [];
  return { writes, write: (text: string) => void writes.push(text) };
}

function tracked(total = 2) {
  const clock = fakeClock();
  return { clock, tracker: new ProgressTracker(total, { now: clock.now }) };
}

/** Runs `fn` with setInterval/clearInterval replaced by hand-written fakes. */
function withFakeInterval(
  fn: (
    timers: { tick: () => void; period: () => number | undefined; active: () => boolean },
  ) => void,
): void {
  const realSet = globalThis.setInterval;
  const realClear = globalThis.clearInterval;
  let callback: (() => void) | undefined;
  let period: number | undefined;
  let active = false;
  const handle = { fake: true };
  globalThis.setInterval = ((cb: () => void, ms?: number) => {
    callback = cb;
    period = ms;
    active = true;
    return handle;
  }) as unknown as typeof setInterval;
  globalThis.clearInterval = ((cleared?: unknown) => {
    if (cleared === handle) active = false;
  }) as typeof clearInterval;
  try {
    fn({
      tick: () => {
        assert.ok(active && callback, "no interval is running");
        callback();
      },
      period: () => period,
      active: () => active,
    });
  } finally {
    globalThis.setInterval = realSet;
    globalThis.clearInterval = realClear;
  }
}

Deno.test("ProgressLine redraws one line in place on a terminal", () => {
  const { tracker, clock } = tracked();
  const out = captured();
  const line = new ProgressLine(tracker, { write: out.write, interactive: true });
  line.draw();
  clock.advance(3000);
  tracker.update(promptEnd("completed"));
  line.draw();
  assert.deepEqual(out.writes, [
    `${CLEAR}0/2 prompts | generating 0 · critiquing 0 · refining 0 | $0.0000 | 0s elapsed`,
    `${CLEAR}1/2 prompts | generating 0 · critiquing 0 · refining 0 | $0.0000 | 3s elapsed`,
  ]);
  assert.ok(out.writes.every((w) => !w.includes("\n")));
});

Deno.test("ProgressLine asks the width at every redraw and stays one column inside it", () => {
  const { tracker } = tracked();
  tracker.update({ type: "retry", id: "a", step: "generate", attempt: 1, delayMs: 1 });
  const out = captured();
  let columns = 120;
  const line = new ProgressLine(tracker, {
    write: out.write,
    interactive: true,
    columns: () => columns,
  });
  line.draw();
  columns = 40;
  line.draw();
  columns = 0; // No size known: 80.
  line.draw();
  const texts = out.writes.map((w) => w.slice(CLEAR.length));
  const wide = texts[0]!, narrow = texts[1]!, fallback = texts[2]!;
  assert.ok(wide.includes("generating 0"), wide);
  assert.ok(displayWidth(narrow) <= 39, narrow);
  assert.ok(narrow.startsWith("0/2"), narrow);
  assert.equal(fallback, formatProgress(tracker.snapshot(), 79));
  assert.ok(!fallback.includes("retries") && wide.includes("1 retries"), fallback);
});

Deno.test("ProgressLine prints the whole line when not on a terminal, whatever the width", () => {
  const { tracker } = tracked();
  const out = captured();
  const line = new ProgressLine(tracker, {
    write: out.write,
    interactive: false,
    columns: () => 20,
  });
  line.draw();
  const text = out.writes[0]!;
  assert.ok(text.includes("generating 0 · critiquing 0 · refining 0"), text);
});

Deno.test("ProgressLine clears a visible line once, and draws it again on the next draw", () => {
  const { tracker } = tracked();
  const out = captured();
  const line = new ProgressLine(tracker, { write: out.write, interactive: true });
  line.clear();
  assert.equal(out.writes.length, 0, "nothing to clear before the first draw");
  line.draw();
  line.clear();
  line.clear();
  assert.equal(out.writes.length, 2);
  assert.equal(out.writes[1], CLEAR);
  line.draw();
  assert.ok(out.writes[2]!.startsWith(`${CLEAR}0/2 prompts`), out.writes[2]!);
});

Deno.test("ProgressLine stop() leaves the final line and ends it with a newline on a terminal", () => {
  const { tracker } = tracked(1);
  const out = captured();
  const line = new ProgressLine(tracker, { write: out.write, interactive: true });
  tracker.update(promptEnd("completed"));
  line.stop();
  assert.deepEqual(out.writes, [
    `${CLEAR}1/1 prompts | generating 0 · critiquing 0 · refining 0 | $0.0000 | 0s elapsed`,
    "\n",
  ]);
  line.clear();
  assert.equal(out.writes.length, 2, "a stopped line is not cleared");
});

Deno.test("ProgressLine prints plain progress lines when not on a terminal", () => {
  const { tracker, clock } = tracked();
  const out = captured();
  const line = new ProgressLine(tracker, { write: out.write, interactive: false });
  line.draw();
  clock.advance(5000);
  tracker.update(promptEnd("failed"));
  line.clear();
  line.stop();
  assert.deepEqual(out.writes, [
    "progress: 0/2 prompts | generating 0 · critiquing 0 · refining 0 | $0.0000 | 0s elapsed\n",
    "progress: 1/2 prompts | generating 0 · critiquing 0 · refining 0 | 1 failed | $0.0000 | 5s elapsed\n",
  ]);
  assert.ok(out.writes.every((w) => !w.includes("\x1b")), "no escape codes in plain mode");
});

Deno.test("ProgressLine start() redraws every refreshMs on a terminal until stopped", () => {
  withFakeInterval((timers) => {
    const { tracker } = tracked();
    const out = captured();
    const line = new ProgressLine(tracker, { write: out.write, interactive: true, refreshMs: 250 });
    line.start();
    assert.equal(timers.period(), 250);
    assert.equal(out.writes.length, 0);
    timers.tick();
    timers.tick();
    assert.equal(out.writes.length, 2);
    line.stop();
    assert.equal(timers.active(), false);
    assert.equal(out.writes.length, 4);
    assert.equal(out.writes[3], "\n");
  });
});

Deno.test("ProgressLine start() uses the default periods", () => {
  withFakeInterval((timers) => {
    const { tracker } = tracked();
    const terminal = new ProgressLine(tracker, { write: () => {}, interactive: true });
    terminal.start();
    assert.equal(timers.period(), 100);
    terminal.stop();
    const plain = new ProgressLine(tracker, { write: () => {}, interactive: false });
    plain.start();
    assert.equal(timers.period(), 5000);
    plain.stop();
    assert.equal(timers.active(), false);
  });
});

Deno.test("ProgressLine start() prints a plain line every plainEveryMs elsewhere", () => {
  withFakeInterval((timers) => {
    const { tracker } = tracked();
    const out = captured();
    const line = new ProgressLine(tracker, {
      write: out.write,
      interactive: false,
      plainEveryMs: 1000,
    });
    line.start();
    assert.equal(timers.period(), 1000);
    timers.tick();
    assert.equal(out.writes.length, 1);
    assert.ok(out.writes[0]!.startsWith("progress: 0/2 prompts"), out.writes[0]!);
    line.stop();
    assert.equal(out.writes.length, 2);
    assert.ok(out.writes[1]!.endsWith("\n"));
  });
});

// --- batch jobs (--batch-api) ------------------------------------------------------------------

Deno.test("formatProgress() says which batch jobs the run waits for, since when and how long", () => {
  const waiting = { jobs: 2, requests: 400, since: "14:02", forMs: 200_000 };
  const line = formatProgress(
    snapshot({ waiting, inFlight: { generate: 400, critique: 0, refine: 0 } }),
  );
  assert.match(line, /waiting for 2 batch jobs \(400 requests\) since 14:02 \(3m20s\)/);
  assert.match(
    formatProgress(snapshot({ waiting: { jobs: 0, requests: 3 } })),
    /gathering 3 requests for a batch job/,
  );
  // Narrow: the wait shortens before the cost goes, and never wraps.
  for (const columns of [100, 80, 60, 40]) {
    const narrow = formatProgress(snapshot({ waiting, costUsd: 1.5 }), columns);
    assert.ok(displayWidth(narrow) <= columns, `${columns}: ${narrow}`);
  }
  assert.match(formatProgress(snapshot({ waiting, costUsd: 1.5 }), 60), /since 14:02/);
});

Deno.test("ProgressTracker asks what the run waits for at every snapshot", () => {
  const run: { wait?: { jobs: number; requests: number; since?: number } } = {};
  const since = new Date(2026, 11, 1, 14, 2).getTime();
  const tracker = new ProgressTracker(5, {
    waiting: () => run.wait,
    wallNow: () => since + 65_000,
  });
  assert.equal(tracker.snapshot().waiting, undefined);
  run.wait = { jobs: 1, requests: 5, since };
  assert.deepEqual(tracker.snapshot().waiting, {
    jobs: 1,
    requests: 5,
    since: "14:02",
    forMs: 65_000,
  });
});
