/**
 * Progress: a snapshot fed by pipeline events, a pure formatter, and a renderer that redraws
 * one line on a terminal or prints a plain line every few seconds elsewhere.
 *
 * @module
 */
import { formatDuration } from "../util/duration.ts";
import type { PipelineEvent } from "../pipeline/pipeline.ts";

export { formatDuration };
import type { StepName } from "../output/record.ts";
import { escapeControls } from "../util/terminal_text.ts";

/** What the progress line shows. */
export interface ProgressSnapshot {
  total: number;
  /** Prompts an earlier run had completed: done, but no guide to the pace. @default {0} */
  skipped?: number;
  completed: number;
  failed: number;
  inFlight: Record<StepName, number>;
  /**
   * Of those, the calls waiting for a server that runs one job at a time (a GPU on this
   * machine). @default {undefined} (none)
   */
  queued?: Partial<Record<StepName, number>>;
  retries: number;
  costUsd: number;
  elapsedMs: number;
  /** Time left, from recent throughput against the work left; absent until there is a rate. */
  etaMs?: number;
  /** No new work starts (Ctrl-C, the budget): calls in flight finish, so no ETA holds. */
  draining?: boolean;
  /** What the run waits for in batch jobs (`--batch-api`). */
  waiting?: BatchWaiting;
}

/** Batch jobs the run waits for, as the progress line shows them. */
export interface BatchWaiting {
  /** Jobs sent and not answered yet (0 while a wave is still gathered). */
  jobs: number;
  /** Requests waiting in them, or gathered for the next. */
  requests: number;
  /** Local time the oldest was sent, `HH:MM`. */
  since?: string;
  /** How long ago that was, in ms. */
  forMs?: number;
}

/** What a prompt can take at most, counted in provider calls. */
export interface StepsPerPromptOptions {
  iterations: number;
  /** Whether rounds are refined (not `sample` mode): one refinement between two rounds. */
  refine: boolean;
  /** Whether the critic writes a brief once per prompt. */
  brief: boolean;
}

/**
 * Provider calls a prompt makes when it runs every round: an image and a critique per round,
 * a refinement between rounds, and the brief.
 *
 * @example
 * ```ts
 * import { stepsPerPrompt } from "./progress.ts";
 * if (stepsPerPrompt({ iterations: 2, refine: true, brief: true }) !== 6) throw new Error("steps");
 * ```
 */
export function stepsPerPrompt(options: StepsPerPromptOptions): number {
  const { iterations, refine, brief } = options;
  return 2 * iterations + (refine ? Math.max(0, iterations - 1) : 0) + (brief ? 1 : 0);
}

/** Options for {@linkcode ProgressTracker}. */
export interface ProgressTrackerOptions {
  /** Monotonic clock in ms. @default {performance.now} */
  now?: () => number;
  /** Calls a prompt makes at most (see {@linkcode stepsPerPrompt}). @default {1} */
  stepsPerPrompt?: number;
  /** Whether the run is draining: asked at every snapshot. @default {() => false} */
  draining?: () => boolean;
  /**
   * What the run waits for in batch jobs, asked at every snapshot (`since`: ms since the
   * epoch). @default {undefined}
   */
  waiting?: () => { jobs: number; requests: number; since?: number } | undefined;
  /** Wall clock in ms, for how long a batch job has been waited for. @default {Date.now} */
  wallNow?: () => number;
  /**
   * How far back the throughput is measured, in ms: short enough to follow a run that speeds
   * up as its concurrency grows. @default {10000}
   */
  rateWindowMs?: number;
  /** Steps ended that the throughput is measured on at least, however long ago. @default {20} */
  minRateSamples?: number;
  /**
   * Steps that must have ended before any ETA shows: the first few come while a service is
   * still probed one call at a time, and say little of the pace. @default {5}
   */
  minEtaSteps?: number;
}

/** Counts pipeline events into a snapshot, and estimates the time left. */
export class ProgressTracker {
  readonly #total: number;
  readonly #now: () => number;
  readonly #start: number;
  readonly #stepsPerPrompt: number;
  readonly #draining: () => boolean;
  readonly #waiting: ProgressTrackerOptions["waiting"];
  readonly #wallNow: () => number;
  readonly #rateWindowMs: number;
  readonly #minRateSamples: number;
  readonly #minEtaSteps: number;
  /** Steps ended so far. */
  #stepsEnded = 0;
  #completed = 0;
  #failed = 0;
  #skipped = 0;
  #interrupted = 0;
  #retries = 0;
  #costUsd = 0;
  #inFlight: Record<StepName, number> = { generate: 0, critique: 0, refine: 0 };
  #queued: Partial<Record<StepName, number>> = {};
  /** Steps each running prompt has finished, by id (`open`: pipelines running it, one per model). */
  #running = new Map<string, { open: number; steps: number }>();
  /** When recent steps ended: the throughput's window. */
  #stepEnds: number[] = [];
  /**
   * The shortest step so far, in ms: about a call's own length, as a step's length includes
   * its wait for a permit, which grows with the batch.
   */
  #shortestStepMs = Infinity;

  constructor(total: number, options: ProgressTrackerOptions = {}) {
    this.#total = total;
    this.#now = options.now ?? (() => performance.now());
    this.#stepsPerPrompt = Math.max(1, options.stepsPerPrompt ?? 1);
    this.#draining = options.draining ?? (() => false);
    this.#waiting = options.waiting;
    this.#wallNow = options.wallNow ?? Date.now;
    this.#rateWindowMs = options.rateWindowMs ?? 10_000;
    this.#minRateSamples = Math.max(1, options.minRateSamples ?? 20);
    this.#minEtaSteps = Math.max(1, options.minEtaSteps ?? 5);
    this.#start = this.#now();
  }

  /** Feeds one event. */
  update(event: PipelineEvent): void {
    switch (event.type) {
      case "prompt-start": {
        const entry = this.#running.get(event.id);
        if (entry) entry.open++;
        else this.#running.set(event.id, { open: 1, steps: 0 });
        break;
      }
      case "step-start":
        this.#inFlight[event.step]++;
        break;
      case "step-end": {
        this.#inFlight[event.step] = Math.max(0, this.#inFlight[event.step] - 1);
        this.#costUsd += event.costUsd;
        const entry = this.#running.get(event.id);
        if (entry) entry.steps++;
        if (event.ok) {
          this.#stepEnds.push(this.#now());
          this.#stepsEnded++;
          this.#trim();
          this.#shortestStepMs = Math.min(this.#shortestStepMs, event.durationMs);
        }
        break;
      }
      case "retry":
        this.#retries++;
        break;
      case "queue":
        this.#queued[event.step] = event.waiting;
        break;
      case "prompt-end": {
        // An interrupted prompt is neither done nor failed: the next run resumes it.
        if (event.status === "completed") this.#completed++;
        if (event.skipped) this.#skipped++;
        else if (event.status === "failed") this.#failed++;
        else if (event.status === "interrupted") this.#interrupted++;
        const entry = this.#running.get(event.id);
        if (entry && entry.open > 1) {
          entry.steps = Math.round((entry.steps * (entry.open - 1)) / entry.open);
          entry.open--;
        } else this.#running.delete(event.id);
        break;
      }
    }
  }

  /** Keeps the step ends in the window, at least the last few, and the one before them. */
  #trim(): void {
    const ends = this.#stepEnds;
    const from = this.#now() - this.#rateWindowMs;
    let drop = 0;
    while (ends.length - drop > this.#minRateSamples + 1 && ends[drop + 1]! < from) drop++;
    if (drop > 0) ends.splice(0, drop);
  }

  /** The current counts. */
  snapshot(): ProgressSnapshot {
    const elapsedMs = this.#now() - this.#start;
    const draining = this.#draining();
    const etaMs = draining ? undefined : this.#etaMs();
    const wait = this.#waiting?.();
    const waiting: BatchWaiting | undefined = wait && {
      jobs: wait.jobs,
      requests: wait.requests,
      ...(wait.since !== undefined && {
        since: new Date(wait.since).toTimeString().slice(0, 5),
        forMs: Math.max(0, this.#wallNow() - wait.since),
      }),
    };
    return {
      ...(waiting && { waiting }),
      total: this.#total,
      completed: this.#completed,
      failed: this.#failed,
      skipped: this.#skipped,
      inFlight: { ...this.#inFlight },
      ...(Object.values(this.#queued).some((n) => n > 0) && { queued: { ...this.#queued } }),
      retries: this.#retries,
      costUsd: this.#costUsd,
      elapsedMs,
      ...(etaMs !== undefined && { etaMs }),
      ...(draining && { draining }),
    };
  }

  /**
   * Steps left ÷ steps per ms over the recent window; at the tail, never less than the longest
   * chain still to run at the shortest step's length, since a prompt's steps follow one
   * another.
   */
  #etaMs(): number | undefined {
    const now = this.#now();
    this.#trim();
    const ends = this.#stepEnds;
    if (ends.length === 0 || this.#stepsEnded < this.#minEtaSteps) return undefined;
    // The steps that ended in the window (or the last few), counted from the end before them.
    const first = ends.length > this.#minRateSamples ? 1 : 0;
    const recent = ends.length - first;
    const since = first === 1 ? ends[0]! : this.#start;
    // Skipped prompts are counted among the completed ones.
    const ended = this.#completed + this.#failed + this.#interrupted;
    const open = [...this.#running.values()];
    const runningCount = open.reduce((n, e) => n + e.open, 0);
    const queued = Math.max(0, this.#total - ended - runningCount);
    if (queued === 0 && runningCount === 0) return undefined;
    let left = queued * this.#stepsPerPrompt;
    let longest = 0;
    for (const entry of open) {
      const each = Math.max(1, this.#stepsPerPrompt - Math.round(entry.steps / entry.open));
      left += each * entry.open;
      longest = Math.max(longest, each);
    }
    const byRate = left * (Math.max(1, now - since) / recent);
    // Only at the tail: before it, the rate is what counts.
    const byChain = queued > 0 ? 0 : longest * this.#shortestStepMs;
    return Math.max(byRate, byChain);
  }
}

/** One field of the progress line, from its fullest form to its shortest. */
type Field = { forms: string[] };

/**
 * One line for a person: done/total, per-stage work in flight, failures, cost, time, ETA —
 * within `columns`, dropping the least useful detail first: retries, then the stages in
 * flight (shortened, then summed, then gone), the word "prompts", elapsed time once an ETA
 * shows, failures, elapsed time, the ETA, and the cost; done/total stays.
 */
export function formatProgress(s: ProgressSnapshot, columns = Infinity): string {
  const done = s.completed + s.failed;
  const { generate, critique, refine } = s.inFlight;
  // Calls waiting for a local server are in flight but not running: shown as its queue.
  const waiting = Math.min(generate, s.queued?.generate ?? 0);
  const queue = waiting > 0 ? ` (${waiting} queued)` : "";
  const fields: Record<string, Field> = {
    done: { forms: [`${done}/${s.total} prompts`, `${done}/${s.total}`] },
    stages: {
      forms: [
        `generating ${generate - waiting}${queue} · critiquing ${critique} · refining ${refine}`,
        `gen ${generate - waiting}${queue} · crit ${critique} · ref ${refine}`,
        `${generate + critique + refine} running`,
        "",
      ],
    },
    failed: { forms: s.failed > 0 ? [`${s.failed} failed`, ""] : [""] },
    retries: { forms: s.retries > 0 ? [`${s.retries} retries`, ""] : [""] },
    cost: { forms: [`$${s.costUsd.toFixed(4)}`, ""] },
    elapsed: { forms: [`${formatDuration(s.elapsedMs)} elapsed`, ""] },
    waiting: { forms: waitingForms(s.waiting) },
    eta: {
      forms: s.draining
        ? ["draining", ""]
        : s.etaMs !== undefined && done < s.total
        ? [`ETA ${formatDuration(s.etaMs)}`, ""]
        : [""],
    },
  };
  const order = ["done", "stages", "waiting", "failed", "retries", "cost", "elapsed", "eta"];
  const hasEta = fields.eta!.forms[0] !== "";
  // Each step shortens one field by one form, least useful first.
  const steps = [
    "retries",
    "stages",
    "stages",
    "done",
    "stages",
    ...(hasEta ? ["elapsed"] : []),
    "waiting",
    "failed",
    ...(hasEta ? [] : ["elapsed"]),
    "waiting",
    "eta",
    "waiting",
    "cost",
  ];
  const chosen: Record<string, number> = Object.fromEntries(order.map((name) => [name, 0]));
  const render = () =>
    order.map((name) => {
      const forms = fields[name]!.forms;
      return forms[Math.min(chosen[name]!, forms.length - 1)]!;
    }).filter((text) => text !== "").join(" | ");
  let line = render();
  for (const name of steps) {
    if (displayWidth(line) <= columns) return line;
    chosen[name]!++;
    line = render();
  }
  return displayWidth(line) <= columns ? line : truncate(line, columns);
}

/** The batch wait, from its fullest form to none: what, since when, for how long. */
function waitingForms(w: BatchWaiting | undefined): string[] {
  if (w === undefined) return [""];
  const requests = `${w.requests} request${w.requests === 1 ? "" : "s"}`;
  if (w.jobs === 0) return [`gathering ${requests} for a batch job`, "gathering", ""];
  const jobs = `${w.jobs} batch job${w.jobs === 1 ? "" : "s"}`;
  const since = w.since !== undefined ? ` since ${w.since}` : "";
  const long = w.forMs !== undefined ? ` (${formatDuration(w.forMs)})` : "";
  return [
    `waiting for ${jobs} (${requests})${since}${long}`,
    `waiting for ${jobs}${since}`,
    `batch${since}`,
    "",
  ];
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;
// deno-lint-ignore no-control-regex
const ZERO_WIDTH = /^(?:\p{M}|\p{Cf}|[\u0000-\u001f\u007f-\u009f])$/u;
const WIDE =
  /^(?:[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]|[\u{1f300}-\u{1faff}\u{20000}-\u{3fffd}])$/u;

/**
 * Columns `text` takes on a terminal: escape sequences take none, marks and controls none,
 * East Asian wide characters and emoji two, everything else one.
 *
 * @example
 * ```ts
 * import { displayWidth } from "./progress.ts";
 * // "ok" 2, the spaces and the dot 3, the wide character 2; the colour codes none.
 * if (displayWidth("\x1b[32mok\x1b[0m · 漢") !== 7) throw new Error("width");
 * ```
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const char of text.replace(ANSI, "")) {
    width += ZERO_WIDTH.test(char) ? 0 : WIDE.test(char) ? 2 : 1;
  }
  return width;
}

/** Cuts `text` to `columns`, ending with an ellipsis. */
function truncate(text: string, columns: number): string {
  if (columns <= 0) return "";
  let out = "";
  let width = 0;
  for (const char of text.replace(ANSI, "")) {
    const w = ZERO_WIDTH.test(char) ? 0 : WIDE.test(char) ? 2 : 1;
    if (width + w > columns - 1) break;
    out += char;
    width += w;
  }
  return `${out}…`;
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
  /** The terminal's width, asked at every redraw (a window can be resized). @default {() => 80} */
  columns?: () => number;
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
    const snapshot = this.#tracker.snapshot();
    if (this.#options.interactive) {
      // One column short of the width: some terminals wrap as soon as the last one is written.
      const columns = Math.max(1, (this.#options.columns?.() || 80) - 1);
      const line = escapeControls(formatProgress(snapshot, columns));
      this.#options.write(`\r\x1b[2K${line}`);
      this.#visible = true;
    } else {
      // A log or a pipe has no width: the whole line.
      this.#options.write(`progress: ${escapeControls(formatProgress(snapshot))}\n`);
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
