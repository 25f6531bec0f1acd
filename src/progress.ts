/**
 * Progress: a snapshot fed by pipeline events, a pure formatter, and a renderer that redraws
 * one line on a terminal or prints a plain line every few seconds elsewhere.
 *
 * @module
 */
import { formatDuration } from "./duration.ts";
import type { PipelineEvent } from "./pipeline.ts";

export { formatDuration };
import type { StepName } from "./record.ts";
import { escapeControls } from "./terminal_text.ts";

/** What the progress line shows. */
export interface ProgressSnapshot {
  total: number;
  /** Prompts an earlier run had completed: done, but no guide to the pace. @default {0} */
  skipped?: number;
  completed: number;
  failed: number;
  inFlight: Record<StepName, number>;
  retries: number;
  costUsd: number;
  elapsedMs: number;
}

/** Counts pipeline events into a snapshot. */
export class ProgressTracker {
  readonly #total: number;
  readonly #now: () => number;
  readonly #start: number;
  #completed = 0;
  #failed = 0;
  #skipped = 0;
  #retries = 0;
  #costUsd = 0;
  #inFlight: Record<StepName, number> = { generate: 0, critique: 0, refine: 0 };

  constructor(total: number, now: () => number = () => performance.now()) {
    this.#total = total;
    this.#now = now;
    this.#start = now();
  }

  /** Feeds one event. */
  update(event: PipelineEvent): void {
    switch (event.type) {
      case "step-start":
        this.#inFlight[event.step]++;
        break;
      case "step-end":
        this.#inFlight[event.step] = Math.max(0, this.#inFlight[event.step] - 1);
        this.#costUsd += event.costUsd;
        break;
      case "retry":
        this.#retries++;
        break;
      case "prompt-end":
        // An interrupted prompt is neither done nor failed: the next run resumes it.
        if (event.status === "completed") this.#completed++;
        if (event.skipped) this.#skipped++;
        else if (event.status === "failed") this.#failed++;
        break;
    }
  }

  /** The current counts. */
  snapshot(): ProgressSnapshot {
    return {
      total: this.#total,
      completed: this.#completed,
      failed: this.#failed,
      skipped: this.#skipped,
      inFlight: { ...this.#inFlight },
      retries: this.#retries,
      costUsd: this.#costUsd,
      elapsedMs: this.#now() - this.#start,
    };
  }
}

/** One line for a person: done/total, per-stage work in flight, failures, time, ETA, cost. */
export function formatProgress(s: ProgressSnapshot): string {
  const done = s.completed + s.failed;
  const parts = [
    `${done}/${s.total} prompts`,
    `generating ${s.inFlight.generate} · critiquing ${s.inFlight.critique} · refining ${s.inFlight.refine}`,
  ];
  if (s.failed > 0) parts.push(`${s.failed} failed`);
  if (s.retries > 0) parts.push(`${s.retries} retries`);
  parts.push(`$${s.costUsd.toFixed(4)}`);
  parts.push(`${formatDuration(s.elapsedMs)} elapsed`);
  const worked = done - (s.skipped ?? 0);
  if (worked > 0 && done < s.total) {
    parts.push(`ETA ${formatDuration((s.elapsedMs / worked) * (s.total - done))}`);
  }
  return parts.join(" | ");
}

/** Options for {@linkcode ProgressLine}. */
export interface ProgressLineOptions {
  /** Where the line goes (stderr). */
  write: (text: string) => void;
  /** Redraw in place (a terminal) or print a plain line now and then (pipes, CI). */
  interactive: boolean;
  /** Redraw period on a terminal, in ms. @default {100} */
  refreshMs?: number;
  /** Plain-line period elsewhere, in ms. @default {5000} */
  plainEveryMs?: number;
}

/** Draws the progress line until stopped. */
export class ProgressLine {
  readonly #tracker: ProgressTracker;
  readonly #options: ProgressLineOptions;
  #timer: ReturnType<typeof setInterval> | undefined;
  #visible = false;

  constructor(tracker: ProgressTracker, options: ProgressLineOptions) {
    this.#tracker = tracker;
    this.#options = options;
  }

  /** Starts drawing. */
  start(): void {
    const period = this.#options.interactive
      ? this.#options.refreshMs ?? 100
      : this.#options.plainEveryMs ?? 5000;
    this.#timer = setInterval(() => this.draw(), period);
  }

  /** Draws once now. */
  draw(): void {
    // Only this renderer's own control sequences may reach the terminal.
    const line = escapeControls(formatProgress(this.#tracker.snapshot()));
    if (this.#options.interactive) {
      this.#options.write(`\r\x1b[2K${line}`);
      this.#visible = true;
    } else {
      this.#options.write(`progress: ${line}\n`);
    }
  }

  /** Clears the line so log output is not drawn over it; the next draw restores it. */
  clear(): void {
    if (this.#options.interactive && this.#visible) {
      this.#options.write("\r\x1b[2K");
      this.#visible = false;
    }
  }

  /** Stops drawing and leaves the final line in place. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.draw();
    if (this.#options.interactive) this.#options.write("\n");
    this.#visible = false;
  }
}
