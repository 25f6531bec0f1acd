import assert from "node:assert/strict";
import type { PipelineEvent } from "./pipeline.ts";
import {
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

Deno.test("formatProgress() estimates the time left from the pace so far", () => {
  // 2 of 10 done in 30 s: 15 s each, 8 left, 2 min to go.
  const line = formatProgress(snapshot({ completed: 2, elapsedMs: 30_000 }));
  assert.equal(
    line,
    "2/10 prompts | generating 0 · critiquing 0 · refining 0 | $0.0000 | 30s elapsed | ETA 2m00s",
  );
});

Deno.test("formatProgress() shows no ETA before the first prompt is done", () => {
  const line = formatProgress(
    snapshot({ elapsedMs: 90_000, inFlight: { generate: 2, critique: 0, refine: 0 } }),
  );
  assert.ok(!line.includes("ETA"), line);
});

Deno.test("formatProgress() shows no ETA once every prompt is done", () => {
  const line = formatProgress(snapshot({ total: 3, completed: 2, failed: 1, elapsedMs: 9000 }));
  assert.ok(!line.includes("ETA"), line);
  assert.ok(line.startsWith("3/3 prompts"), line);
});

Deno.test("formatProgress() counts failures in the pace for the ETA", () => {
  const line = formatProgress(snapshot({ total: 4, completed: 1, failed: 1, elapsedMs: 20_000 }));
  assert.ok(line.endsWith(" | ETA 20s"), line);
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
  const tracker = new ProgressTracker(3, clock.now);
  assert.equal(tracker.snapshot().elapsedMs, 0);
  clock.advance(1234);
  assert.equal(tracker.snapshot().elapsedMs, 1234);
  assert.equal(tracker.snapshot().total, 3);
});

Deno.test("ProgressTracker counts steps in flight per stage", () => {
  const tracker = new ProgressTracker(3, fakeClock().now);
  tracker.update(stepStart("generate", "a"));
  tracker.update(stepStart("generate", "b"));
  tracker.update(stepStart("critique", "c"));
  assert.deepEqual(tracker.snapshot().inFlight, { generate: 2, critique: 1, refine: 0 });
  tracker.update(stepEnd("generate", 0, "a"));
  tracker.update(stepStart("refine", "a"));
  assert.deepEqual(tracker.snapshot().inFlight, { generate: 1, critique: 1, refine: 1 });
});

Deno.test("ProgressTracker never counts a stage below zero", () => {
  const tracker = new ProgressTracker(1, fakeClock().now);
  tracker.update(stepEnd("refine"));
  assert.equal(tracker.snapshot().inFlight.refine, 0);
  tracker.update(stepStart("refine"));
  assert.equal(tracker.snapshot().inFlight.refine, 1);
});

Deno.test("ProgressTracker adds up cost from finished steps only", () => {
  const tracker = new ProgressTracker(2, fakeClock().now);
  tracker.update(stepStart("generate"));
  tracker.update(stepEnd("generate", 0.003));
  tracker.update(stepStart("critique"));
  tracker.update(stepEnd("critique", 0.0005));
  // prompt-end repeats the prompt's total; counting it again would double the cost.
  tracker.update(promptEnd("completed", "a", 0.0035));
  assert.equal(tracker.snapshot().costUsd.toFixed(4), "0.0035");
});

Deno.test("ProgressTracker counts retries, completed and failed prompts", () => {
  const tracker = new ProgressTracker(4, fakeClock().now);
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
  const tracker = new ProgressTracker(2, fakeClock().now);
  tracker.update(promptEnd("completed", "a"));
  tracker.update(promptEnd("interrupted", "b"));
  const s = tracker.snapshot();
  assert.equal(s.completed, 1);
  assert.equal(s.failed, 0);
  assert.ok(!formatProgress(s).includes("failed"), formatProgress(s));
});

Deno.test("ProgressTracker snapshots are copies", () => {
  const tracker = new ProgressTracker(1, fakeClock().now);
  const first = tracker.snapshot();
  first.inFlight.generate = 99;
  tracker.update(stepStart("generate"));
  assert.equal(tracker.snapshot().inFlight.generate, 1);
  assert.equal(first.inFlight.generate, 99);
});

Deno.test("ProgressTracker feeds formatProgress() with a meaningful ETA", () => {
  const clock = fakeClock();
  const tracker = new ProgressTracker(3, clock.now);
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

// --- ProgressLine ------------------------------------------------------------------------------

function captured() {
  const writes: string[] = [];
  return { writes, write: (text: string) => void writes.push(text) };
}

function tracked(total = 2) {
  const clock = fakeClock();
  return { clock, tracker: new ProgressTracker(total, clock.now) };
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
    `${CLEAR}1/2 prompts | generating 0 · critiquing 0 · refining 0 | $0.0000 | 3s elapsed | ETA 3s`,
  ]);
  assert.ok(out.writes.every((w) => !w.includes("\n")));
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
    "progress: 1/2 prompts | generating 0 · critiquing 0 · refining 0 | 1 failed | $0.0000 | 5s elapsed | ETA 5s\n",
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

Deno.test("formatProgress() leaves prompts skipped by resume out of the ETA's pace", () => {
  const line = formatProgress({
    total: 10,
    completed: 6,
    failed: 0,
    skipped: 5,
    inFlight: { generate: 1, critique: 0, refine: 0 },
    retries: 0,
    costUsd: 0,
    elapsedMs: 10_000,
  });
  // One prompt of real work took 10 s; 4 remain.
  assert.match(line, /ETA 40s/);
});
