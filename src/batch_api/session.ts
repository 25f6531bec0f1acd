/**
 * What a provider that sends its calls in batch jobs (`--batch-api`) offers the run: it opens
 * on the batch folder, where its jobs are recorded, says what the run waits for, and on close
 * says which jobs it leaves running.
 *
 * @module
 */

/** Settings of the batch mode, from the config. */
export interface BatchApiSettings {
  /** Time between two looks at a running job, in ms. */
  pollMs: number;
  /** Quiet time after the last request that ends a wave, in ms. */
  gatherMs: number;
}

/** What the run is waiting for, for the progress line. */
export interface BatchWait {
  /** Jobs sent that have not answered yet. */
  jobs: number;
  /** Requests waiting: in those jobs, or gathered for the next. */
  requests: number;
  /** When the oldest of those jobs was sent, ms since the epoch. */
  since?: number;
}

/** A job left running at the service when the run ended. */
export interface RunningJob {
  provider: string;
  name: string;
  requests: number;
}

/** One provider's batch mode for one run. */
export interface BatchApiSession {
  /** The provider's name, e.g. `gemini`. */
  readonly provider: string;
  /**
   * From now on calls go in batch jobs recorded in `batchDir`; jobs an earlier run left are
   * found (a job it was creating when it died, by its display name). `stop` (Ctrl-C) ends every
   * wait at once and leaves the jobs running.
   */
  open(batchDir: string, stop?: AbortSignal): Promise<void>;
  /** What the run waits for; undefined when nothing. */
  waiting(): BatchWait | undefined;
  /**
   * Ends the session. `finished`: the run went through every prompt, so no answer kept is
   * needed any more. Resolves with the jobs left running at the service.
   */
  close(finished: boolean): Promise<RunningJob[]>;
  /** Cancels every job recorded in `batchDir` that is still running; resolves with them. */
  cancelAll(batchDir: string, signal: AbortSignal): Promise<RunningJob[]>;
}
