/**
 * The run's side of `--batch-api`: opens each provider's batch session on the batch folder,
 * shapes the pipeline for waves (every prompt's step in flight at once, so a round's calls meet
 * in one job; no deadline shorter than a job's turnaround), says what the run waits for, and at
 * the end which jobs keep running and how to collect or cancel them.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { StepName } from "../output/record.ts";
import type { BatchApiSession, BatchWait, RunningJob } from "./session.ts";

/** Prompts in flight at once, at most, in batch mode: each a request of the wave. */
export const BATCH_WAVE_LIMIT = 5_000;
/**
 * How long the pipeline waits for one call in batch mode before it gives up on it itself:
 * past the 48 hours after which Gemini expires a job, and the 24 hours of OpenAI's window.
 */
export const BATCH_WAIT_MS = 72 * 3_600_000;

/** The pipeline settings of batch mode, for `prompts` prompts (times models). */
export function batchPipeline(prompts: number): {
  batched: true;
  concurrency: Record<StepName, number>;
  timeoutSlackMs: number;
} {
  const n = Math.max(1, Math.min(prompts, BATCH_WAVE_LIMIT));
  return {
    batched: true,
    concurrency: { generate: n, critique: n, refine: n },
    timeoutSlackMs: BATCH_WAIT_MS,
  };
}

/** Opens every session on `batchDir`; closes those opened when one cannot open. */
export async function openSessions(
  sessions: readonly BatchApiSession[],
  batchDir: string,
  stop?: AbortSignal,
): Promise<void> {
  const opened: BatchApiSession[] = [];
  try {
    for (const session of sessions) {
      await session.open(batchDir, stop);
      opened.push(session);
    }
  } catch (error) {
    await Promise.allSettled(opened.map((s) => s.close(false)));
    throw error;
  }
}

/** What every session waits for, together. */
export function waitingFor(sessions: readonly BatchApiSession[]): BatchWait | undefined {
  let total: BatchWait | undefined;
  for (const session of sessions) {
    const wait = session.waiting();
    if (wait === undefined) continue;
    const since = [total?.since, wait.since].filter((t) => t !== undefined) as number[];
    total = {
      jobs: (total?.jobs ?? 0) + wait.jobs,
      requests: (total?.requests ?? 0) + wait.requests,
      ...(since.length > 0 && { since: Math.min(...since) }),
    };
  }
  return total;
}

/**
 * Closes every session and says which jobs keep running: they are paid for when they run, and
 * the next run with the same prompts collects their answers.
 */
export async function closeSessions(
  sessions: readonly BatchApiSession[],
  finished: boolean,
): Promise<RunningJob[]> {
  const log = getLogger(["retake", "batch"]);
  const running: RunningJob[] = [];
  for (const session of sessions) {
    try {
      running.push(...await session.close(finished));
    } catch (error) {
      log.error("Could not close the {provider} batch session: {reason}", {
        provider: session.provider,
        reason: (error as Error).message,
      });
    }
  }
  for (const job of running) {
    log.warn(
      "Batch job {name} ({requests} requests) keeps running at {provider}: run the same command again to collect its answers at the batch price, or add --cancel-batch-jobs to cancel it",
      { ...job },
    );
  }
  return running;
}

/** Cancels the jobs the batch left running; one line per job cancelled, for the user. */
export async function cancelJobs(
  sessions: readonly BatchApiSession[],
  batchDir: string,
  signal: AbortSignal,
): Promise<string> {
  const lines: string[] = [];
  for (const session of sessions) {
    for (const job of await session.cancelAll(batchDir, signal)) {
      lines.push(`Cancelled ${job.provider} batch job ${job.name} (${job.requests} requests)`);
    }
  }
  return lines.length > 0
    ? `${lines.join("\n")}\n`
    : `No batch job of '${batchDir}' is running: nothing to cancel\n`;
}
