/**
 * Calls sent in batch jobs, for any service that sells them ({@linkcode BatchService}: Gemini's
 * Batch API, OpenAI's): each call waits in a wave; a wave goes as one job per model (or a few,
 * within the service's limits), billed at the batch price; each call gets its own answer back
 * once the job ends, as the interactive call would have answered it, so the provider above it
 * works and saves as it does interactively.
 *
 * Money first: a job is recorded in the batch folder (`_batch_api/jobs.json`) with the key of
 * every request in it before it is created, and its name as soon as the service gives one. A
 * call is keyed by its model and request, so a later run that makes the same call (after
 * Ctrl-C, a crash, `kill -9`) finds the job that holds it and waits for that job, or takes its
 * answer, instead of sending it again; a job the dead run was creating is looked for by the name
 * retake gave it (the service's list) before anything is sent. Ctrl-C leaves the jobs running
 * (the run says so); `--cancel-batch-jobs` cancels them.
 *
 * The answers of a job are kept in `_batch_api/` until a run that used them finishes, and read
 * one line at a time. A request whose line fails is sent once more: interactively when only a
 * few failed, else in the next job; a job that fails or expires as a whole is sent again once.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { removeQuietly, writeFileAtomic, writeStreamAtomic } from "../output/atomic_write.ts";
import { messageOf, ProviderError, StopRequested } from "../errors.ts";
import { type BatchClock, realClock } from "./clock.ts";
import { jsonlLines, type LinePlace, readLine } from "./jsonl.ts";
import { BatchLedger, ENDED, type JobEntry, type JobState } from "./ledger.ts";
import type { BatchApiSession, BatchApiSettings, BatchWait, RunningJob } from "./session.ts";
import { Wave } from "./wave.ts";

const log = getLogger(["retake", "batch"]);

/** One call as a line of a job. */
export interface BatchLine<Req> {
  /** The model, which a job is made for. */
  model: string;
  /** What is sent, as the service's REST request: what the key is made from. */
  body: Record<string, unknown>;
  /** It asks for an image: its job takes file input, its answers come back as a file. */
  images: boolean;
  /** The caller's own signal: aborted, the caller stops waiting (the job goes on). */
  signal?: AbortSignal | undefined;
  request: Req;
}

/** A job's answer for one request, as kept: `response` or `error`. */
export interface AnswerLine {
  key?: string;
  response?: Record<string, unknown>;
  error?: { code?: number | string; message?: string; status?: string };
}

/** What a service must do for {@linkcode Batcher}. */
export interface BatchService<Req, Res, Job> {
  /** Provider name, e.g. `gemini`. */
  readonly provider: string;
  /** Its name for people, e.g. `Gemini`. */
  readonly title: string;
  /** Whether small jobs may go inline (Gemini); else always a file (OpenAI). */
  readonly inline: boolean;
  /** A call as a line. */
  line(request: Req): BatchLine<Req>;
  /** Makes the call at once, at the interactive price. */
  interactive(request: Req, signal: AbortSignal): Promise<Res>;
  /** `error` as a {@linkcode ProviderError}. */
  classify(error: unknown, operation: string, model: string): unknown;
  /** A failed line's error as a {@linkcode ProviderError}. */
  lineError(error: NonNullable<AnswerLine["error"]>, model: string): ProviderError;
  /**
   * Creates job `id` for `lines` (its file uploaded first, recorded with `recordFile`); resolves
   * with the job as created.
   */
  create(
    job: {
      id: string;
      model: string;
      input: "inline" | "file";
      lines: Array<{ key: string; line: BatchLine<Req> }>;
    },
    recordFile: (name: string) => Promise<void>,
  ): Promise<Job>;
  nameOf(job: Job): string | undefined;
  stateOf(job: Job): JobState;
  get(name: string, signal?: AbortSignal): Promise<Job>;
  /** Every job at the service, newest first as the service lists them. */
  list(): Promise<AsyncIterable<Job>>;
  /** The id retake gave a job (Gemini's display name, OpenAI's `metadata.retake_job`). */
  retakeIdOf(job: Job): string | undefined;
  cancel(name: string, signal: AbortSignal): Promise<Job>;
  /**
   * The answers of an ended job as JSON Lines of {@linkcode AnswerLine}s; undefined when it has
   * none (Gemini's expired jobs; OpenAI's expired ones keep what they answered).
   */
  answers(
    job: Job,
    keys: readonly string[],
  ): Promise<ReadableStream<Uint8Array> | string | undefined>;
  /** An answer line's response as the caller's answer. */
  toAnswer(response: Record<string, unknown>): Promise<Res>;
}

/** Options for {@linkcode Batcher}. */
export interface BatcherOptions extends Partial<BatchApiSettings> {
  /** @default {realClock} */
  clock?: BatchClock;
  /** Failed lines of a job sent again interactively, at most; more go in the next job. @default {3} */
  fewRetries?: number;
  /** Largest inline job, in bytes of requests. @default {10 MiB} */
  inlineMaxBytes?: number;
  /** Requests in one job, at most. @default {2000} */
  maxRequestsPerJob?: number;
  /** Image requests in one job, at most: their answers are megabytes each. @default {500} */
  maxImageRequestsPerJob?: number;
  /** Bytes of requests in one job, at most. @default {1 GiB} */
  maxFileBytes?: number;
}

interface Waiter<Res> {
  resolve(response: Res): void;
  reject(error: unknown): void;
}

/** A call waiting for its answer; several callers of the same request share one. */
interface Call<Req, Res> {
  key: string;
  line: BatchLine<Req>;
  bytes: number;
  waiters: Set<Waiter<Res>>;
}

const BATCH_ANSWERS = new WeakSet<object>();

/** Whether `answer` came from a batch job (billed at the batch price). */
export function answeredInBatch(answer: object): boolean {
  return BATCH_ANSWERS.has(answer);
}

/** Sends calls in batch jobs; see the module doc. */
export class Batcher<Req, Res extends object, Job> implements BatchApiSession {
  readonly provider: string;
  readonly #service: BatchService<Req, Res, Job>;
  readonly #pollMs: number;
  readonly #gatherMs: number;
  readonly #clock: BatchClock;
  readonly #fewRetries: number;
  readonly #inlineMaxBytes: number;
  readonly #maxRequests: number;
  readonly #maxImageRequests: number;
  readonly #maxFileBytes: number;
  #batchDir = "";
  #ledger: BatchLedger | undefined;
  #wave: Wave<string> | undefined;
  #stop = new AbortController();
  /** Calls waiting for an answer, by key. */
  readonly #calls = new Map<string, Call<Req, Res>>();
  /** The job each sent call waits in, by key. */
  readonly #sentIn = new Map<string, string>();
  readonly #watched = new Set<string>();
  #polling: Promise<void> | undefined;
  readonly #busy = new Set<Promise<unknown>>();
  /** Answers kept on disk, by key. */
  readonly #answers = new Map<string, { file: string; place: LinePlace }>();
  /** Jobs whose kept answers have been read, or are being read. */
  readonly #indexed = new Map<string, Promise<void>>();
  readonly #keySets = new WeakMap<JobEntry, Set<string>>();

  constructor(service: BatchService<Req, Res, Job>, options: BatcherOptions = {}) {
    this.provider = service.provider;
    this.#service = service;
    this.#pollMs = options.pollMs ?? 30_000;
    this.#gatherMs = options.gatherMs ?? 2_000;
    this.#clock = options.clock ?? realClock;
    this.#fewRetries = options.fewRetries ?? 3;
    this.#inlineMaxBytes = options.inlineMaxBytes ?? 10 * 1024 * 1024;
    this.#maxRequests = options.maxRequestsPerJob ?? 2000;
    this.#maxImageRequests = options.maxImageRequestsPerJob ?? 500;
    this.#maxFileBytes = options.maxFileBytes ?? 1024 * 1024 * 1024;
  }

  /** Whether calls go in batch jobs (the session is open). */
  get active(): boolean {
    return this.#ledger !== undefined && !this.#stop.signal.aborted;
  }

  async open(batchDir: string, stop?: AbortSignal): Promise<void> {
    // A session per run: a watch runs the batch again on the same providers.
    this.#stop = new AbortController();
    this.#answers.clear();
    this.#indexed.clear();
    this.#batchDir = batchDir;
    const ledger = await BatchLedger.open(batchDir);
    const creating = ledger.jobs.filter((e) => this.#mine(e) && e.state === "creating");
    if (creating.length > 0) {
      // A run died while creating these: each was created or not; the service's list says which.
      let found: Map<string, Job>;
      try {
        found = await this.#find(new Set(creating.map((e) => e.id)));
      } catch (error) {
        throw new ProviderError(
          `Cannot tell whether the batch job ${
            creating[0]!.id
          } an earlier run was creating exists: ${
            messageOf(this.#service.classify(error, "batch list", creating[0]!.model))
          }; run again once ${this.#service.title} answers, so no request is sent twice`,
          { provider: this.provider, retryable: false, fatal: true, cause: error },
        );
      }
      for (const entry of creating) {
        const job = found.get(entry.id);
        const name = job === undefined ? undefined : this.#service.nameOf(job);
        if (job !== undefined && name !== undefined) {
          await ledger.update(entry.id, { name, state: this.#service.stateOf(job) });
          log.info("Found batch job {name} that an earlier run created as it stopped", {
            name,
            id: entry.id,
          });
        } else {
          await ledger.update(entry.id, { state: "abandoned" });
        }
      }
    }
    this.#ledger = ledger;
    this.#wave = new Wave<string>({
      gatherMs: this.#gatherMs,
      flush: (keys) => this.#flush(keys),
      clock: this.#clock,
      signal: this.#stop.signal,
    });
    if (stop?.aborted) this.#halt();
    else stop?.addEventListener("abort", () => this.#halt(), { once: true });
  }

  /** Makes the call in the next batch job, or interactively when no session is open. */
  async call(request: Req): Promise<Res> {
    const line = this.#service.line(request);
    const signal = line.signal;
    if (this.#ledger === undefined) {
      return await this.#service.interactive(request, signal ?? new AbortController().signal);
    }
    if (signal?.aborted) throw signal.reason;
    if (this.#stop.signal.aborted) throw new StopRequested();
    const key = await requestKey(line.model, line.body);
    return await new Promise<Res>((resolve, reject) => {
      let call = this.#calls.get(key);
      const fresh = call === undefined;
      call ??= { key, line, bytes: JSON.stringify(line.body).length, waiters: new Set() };
      const onAbort = () => {
        call.waiters.delete(waiter);
        if (call.waiters.size === 0 && this.#calls.get(key) === call) {
          // Not sent yet: it never will be. Sent: its job goes on, its answer is kept.
          this.#calls.delete(key);
          this.#wave?.remove(key);
        }
        reject(signal!.reason);
      };
      const waiter: Waiter<Res> = {
        resolve: (response) => (signal?.removeEventListener("abort", onAbort), resolve(response)),
        reject: (error) => (signal?.removeEventListener("abort", onAbort), reject(error)),
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      call.waiters.add(waiter);
      if (fresh) {
        this.#calls.set(key, call);
        this.#route(call);
      }
    });
  }

  waiting(): BatchWait | undefined {
    if (this.#calls.size === 0) return undefined;
    const ids = new Set<string>();
    for (const key of this.#calls.keys()) {
      const id = this.#sentIn.get(key);
      if (id !== undefined) ids.add(id);
    }
    const times = [...ids].map((id) => Date.parse(this.#ledger?.get(id)?.createdAt ?? ""))
      .filter((t) => Number.isFinite(t));
    return {
      jobs: ids.size,
      requests: this.#calls.size,
      ...(times.length > 0 && { since: Math.min(...times) }),
    };
  }

  async close(finished: boolean): Promise<RunningJob[]> {
    this.#halt();
    // A job being created is recorded with its name before the run ends.
    while (this.#busy.size > 0 || this.#polling) {
      await Promise.allSettled([...this.#busy, this.#polling]);
    }
    const ledger = this.#ledger;
    if (ledger === undefined) return [];
    if (finished) {
      // Every prompt went through: no answer kept is asked for again.
      for (const entry of ledger.jobs) {
        if (!this.#mine(entry) || entry.collected || !ENDED.has(entry.state)) continue;
        if (entry.results !== undefined) await removeQuietly(ledger.path(entry.results));
        await ledger.update(entry.id, { collected: true, results: undefined });
      }
    }
    return this.#running(ledger);
  }

  async cancelAll(batchDir: string, signal: AbortSignal): Promise<RunningJob[]> {
    const ledger = this.#ledger ?? await BatchLedger.open(batchDir);
    const live = ledger.jobs.filter((e) => this.#mine(e) && !ENDED.has(e.state));
    if (live.length === 0) return [];
    const unnamed = live.filter((e) => e.name === undefined);
    const found = unnamed.length > 0
      ? await this.#find(new Set(unnamed.map((e) => e.id)))
      : new Map<string, Job>();
    const cancelled: RunningJob[] = [];
    for (const entry of live) {
      const job = found.get(entry.id);
      const name = entry.name ?? (job === undefined ? undefined : this.#service.nameOf(job));
      if (name === undefined) {
        await ledger.update(entry.id, { state: "abandoned" });
        continue;
      }
      try {
        const ended = await this.#service.cancel(name, signal);
        await ledger.update(entry.id, { name, state: this.#service.stateOf(ended) });
      } catch (error) {
        throw this.#service.classify(error, "batch cancel", entry.model);
      }
      cancelled.push({ provider: this.provider, name, requests: entry.keys.length });
    }
    return cancelled;
  }

  /** The jobs at the service whose retake id is in `ids`. */
  async #find(ids: ReadonlySet<string>): Promise<Map<string, Job>> {
    const found = new Map<string, Job>();
    for await (const job of await this.#service.list()) {
      const id = this.#service.retakeIdOf(job);
      if (id === undefined || !ids.has(id)) continue;
      found.set(id, job);
      if (found.size === ids.size) break;
    }
    return found;
  }

  #mine(entry: JobEntry): boolean {
    return entry.provider === this.provider;
  }

  /** Ctrl-C: nothing more is sent, every wait ends now; the jobs go on at the service. */
  #halt(): void {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    this.#wave?.drain();
    for (const key of [...this.#calls.keys()]) this.#settle(key, { error: new StopRequested() });
  }

  #running(ledger: BatchLedger): RunningJob[] {
    return ledger.jobs.filter((e) => this.#mine(e) && e.name !== undefined && !ENDED.has(e.state))
      .map((e) => ({ provider: this.provider, name: e.name!, requests: e.keys.length }));
  }

  #track<T>(work: Promise<T>): void {
    const tracked = work.catch((error) =>
      log.error("A {provider} batch job could not be handled: {reason}", {
        provider: this.#service.title,
        reason: messageOf(error),
      })
    ).finally(() => this.#busy.delete(tracked));
    this.#busy.add(tracked);
  }

  #keysOf(entry: JobEntry): Set<string> {
    let keys = this.#keySets.get(entry);
    if (keys === undefined) this.#keySets.set(entry, keys = new Set(entry.keys));
    return keys;
  }

  /** Where a new call goes: an answer kept, a job that holds it, or the next wave. */
  #route(call: Call<Req, Res>): void {
    const jobs = this.#ledger!.jobs;
    for (let i = jobs.length - 1; i >= 0; i--) {
      const entry = jobs[i]!;
      if (!this.#mine(entry) || entry.collected || !this.#keysOf(entry).has(call.key)) continue;
      if (entry.results !== undefined && entry.failed?.[call.key] === undefined) {
        this.#sentIn.set(call.key, entry.id);
        this.#track(this.#fromKept(entry, call.key));
        return;
      }
      if (entry.state === "JOB_STATE_SUCCEEDED" && entry.failed?.[call.key] === undefined) {
        // Answered, but its answers are not kept (yet): fetch them.
        this.#sentIn.set(call.key, entry.id);
        this.#track(this.#fromKept(entry, call.key));
        return;
      }
      if (!ENDED.has(entry.state)) {
        // Sent by an earlier run (or being created by this one): its answer comes from there.
        this.#sentIn.set(call.key, entry.id);
        if (entry.name !== undefined) this.#watch(entry.id);
        return;
      }
    }
    if (this.#spent(call.key)) this.#interactive(call);
    else this.#wave!.add(call.key);
  }

  /**
   * Whether `key` has had its tries in batch jobs not yet collected: two whose line for it
   * failed, or two that failed or expired as a whole (which says nothing of the request).
   */
  #spent(key: string): boolean {
    let lines = 0;
    let jobs = 0;
    for (const e of this.#ledger!.jobs) {
      if (!this.#mine(e) || e.collected || !this.#keysOf(e).has(key)) continue;
      if (e.failed?.[key] !== undefined) lines++;
      else if (e.state === "JOB_STATE_FAILED" || e.state === "JOB_STATE_EXPIRED") jobs++;
    }
    return lines >= 2 || jobs >= 2;
  }

  #flush(keys: string[]): void {
    const byModel = new Map<string, Call<Req, Res>[]>();
    for (const key of keys) {
      const call = this.#calls.get(key);
      if (call === undefined) continue;
      byModel.set(call.line.model, [...(byModel.get(call.line.model) ?? []), call]);
    }
    for (const [model, calls] of byModel) {
      let chunk: Call<Req, Res>[] = [];
      let bytes = 0;
      for (const call of calls) {
        const limit = chunk.some((c) => c.line.images) || call.line.images
          ? this.#maxImageRequests
          : this.#maxRequests;
        if (
          chunk.length > 0 && (chunk.length >= limit || bytes + call.bytes > this.#maxFileBytes)
        ) {
          this.#track(this.#submit(model, chunk));
          chunk = [];
          bytes = 0;
        }
        chunk.push(call);
        bytes += call.bytes;
      }
      if (chunk.length > 0) this.#track(this.#submit(model, chunk));
    }
  }

  /** Records, then creates, one job. */
  async #submit(model: string, calls: Call<Req, Res>[]): Promise<void> {
    const ledger = this.#ledger!;
    const keys = calls.map((c) => c.key);
    const base = `retake-${(await requestKey(model, { keys: [...keys].sort() })).slice(0, 24)}`;
    let id = base;
    for (let n = 2; ledger.get(id) !== undefined; n++) id = `${base}-${n}`;
    const bytes = calls.reduce((n, c) => n + c.bytes, 0);
    const input = this.#service.inline && !calls.some((c) => c.line.images) &&
        bytes <= this.#inlineMaxBytes
      ? "inline"
      : "file";
    for (const key of keys) this.#sentIn.set(key, id);
    try {
      await ledger.add({ id, provider: this.provider, model, keys, input, state: "creating" });
    } catch (error) {
      for (const key of keys) this.#settle(key, { error });
      return;
    }
    try {
      const job = await this.#service.create(
        { id, model, input, lines: calls.map((c) => ({ key: c.key, line: c.line })) },
        (inputFile) => ledger.update(id, { inputFile }).then(() => {}),
      );
      const name = this.#service.nameOf(job);
      if (name === undefined) {
        throw new Error(`${this.#service.title} created the job without a name`);
      }
      await ledger.update(id, { name, state: this.#service.stateOf(job) });
      log.info(
        "Sent {count} requests to {model} in {provider} batch job {name} ({input} input), at the batch price",
        { count: calls.length, model, provider: this.#service.title, name, input, id },
      );
      this.#watch(id);
    } catch (error) {
      const classified = this.#service.classify(error, "batch job", model);
      const status = classified instanceof ProviderError ? classified.status : undefined;
      // A refusal (4xx) says the job was not created; anything else may have created it.
      const refused = status !== undefined && status >= 400 && status < 500 && status !== 408;
      if (!refused) {
        const found = await this.#find(new Set([id])).then(
          (m) => m.get(id),
          () => undefined,
        );
        const name = found === undefined ? undefined : this.#service.nameOf(found);
        if (found !== undefined && name !== undefined) {
          await ledger.update(id, { name, state: this.#service.stateOf(found) });
          this.#watch(id);
          return;
        }
      }
      await ledger.update(id, { state: refused ? "refused" : "abandoned" });
      log.warn("Could not create a {provider} batch job for {count} requests: {reason}", {
        provider: this.#service.title,
        count: calls.length,
        model,
        id,
        reason: messageOf(classified),
      });
      for (const key of keys) this.#settle(key, { error: classified });
    }
  }

  #watch(id: string): void {
    this.#watched.add(id);
    this.#polling ??= this.#poll().finally(() => (this.#polling = undefined));
  }

  /** Looks at every watched job each `pollMs`, and collects those that ended. */
  async #poll(): Promise<void> {
    const ledger = this.#ledger!;
    while (this.#watched.size > 0) {
      try {
        await this.#clock.sleep(this.#pollMs, this.#stop.signal);
      } catch {
        return;
      }
      for (const id of [...this.#watched]) {
        const entry = ledger.get(id)!;
        if (entry.name === undefined) continue;
        let job: Job;
        try {
          job = await this.#service.get(entry.name, this.#stop.signal);
        } catch (error) {
          if (this.#stop.signal.aborted) return;
          log.warn("Could not look at batch job {name}: {reason}; looking again later", {
            name: entry.name,
            reason: messageOf(this.#service.classify(error, "batch poll", entry.model)),
          });
          continue;
        }
        const state = this.#service.stateOf(job);
        if (state !== entry.state) await ledger.update(id, { state });
        if (!ENDED.has(state)) continue;
        this.#watched.delete(id);
        await this.#ended(entry, job);
      }
    }
  }

  async #ended(entry: JobEntry, job: Job): Promise<void> {
    const title = this.#service.title;
    if (entry.state === "JOB_STATE_SUCCEEDED") {
      await this.#collect(entry, job);
      return;
    }
    if (entry.state === "JOB_STATE_CANCELLED") {
      for (const key of entry.keys.filter((k) => this.#sentIn.get(k) === entry.id)) {
        this.#settle(key, {
          error: new ProviderError(
            `${title} batch job ${entry.name} was cancelled before it answered; run again to send its requests anew`,
            { provider: this.provider, retryable: false },
          ),
        });
      }
      return;
    }
    const why = entry.state === "JOB_STATE_EXPIRED" ? "it expired (not run in time)" : "it failed";
    log.warn("{provider} batch job {name} ended as {reason}", {
      provider: title,
      name: entry.name,
      reason: why,
      requests: entry.keys.length,
    });
    // What it did answer (OpenAI keeps it), it answers; the rest goes again.
    await this.#collect(entry, job, true);
    const left = entry.keys.filter((k) => this.#calls.has(k) && this.#sentIn.get(k) === entry.id);
    this.#again(left, `batch job ${entry.name} ${why}`);
  }

  /**
   * Keeps an ended job's answers in the batch folder, then answers the calls waiting. `partial`:
   * a job that failed or expired, whose requests without an answer are sent again by the caller.
   */
  async #collect(entry: JobEntry, job: Job, partial = false): Promise<void> {
    const ledger = this.#ledger!;
    const file = `${entry.id}.jsonl`;
    const path = ledger.path(file);
    const within = this.#batchDir;
    try {
      const answers = await this.#service.answers(job, entry.keys);
      if (answers === undefined) {
        if (partial) return;
        throw new Error("the job ended without answers");
      }
      if (typeof answers === "string") await writeFileAtomic(path, answers, { within });
      else await writeStreamAtomic(path, answers, undefined, { within });
    } catch (error) {
      const reason = messageOf(this.#service.classify(error, "batch answers", entry.model));
      log.warn("Could not fetch the answers of batch job {name}: {reason}", {
        name: entry.name,
        reason,
      });
      if (partial) return;
      // The job stays answered at the service for a while: a later run may fetch them.
      for (const key of entry.keys.filter((k) => this.#calls.has(k))) {
        this.#settle(key, {
          error: new ProviderError(
            `Cannot fetch the answers of ${this.#service.title} batch job ${entry.name}: ${reason}`,
            { provider: this.provider, retryable: true },
          ),
        });
      }
      return;
    }
    await ledger.update(entry.id, { results: file });
    this.#indexed.set(entry.id, this.#read(entry, partial));
    await this.#indexed.get(entry.id);
  }

  /** Answers a call from a job's kept answers (fetching them again if they are gone). */
  async #fromKept(entry: JobEntry, key: string): Promise<void> {
    let reading = this.#indexed.get(entry.id);
    if (reading === undefined) {
      const kept = entry.results !== undefined &&
        await Deno.stat(this.#ledger!.path(entry.results)).then(() => true, () => false);
      reading = kept
        ? this.#read(entry, entry.state !== "JOB_STATE_SUCCEEDED")
        : this.#refetch(entry);
      this.#indexed.set(entry.id, reading);
    }
    await reading;
    if (!this.#calls.has(key)) return;
    const place = this.#answers.get(key);
    if (place === undefined) {
      this.#again([key], `batch job ${entry.name} has no answer for it`);
      return;
    }
    const line = JSON.parse(await readLine(this.#ledger!.path(place.file), place.place));
    await this.#answer(entry, [line]);
  }

  async #refetch(entry: JobEntry): Promise<void> {
    const job = await this.#service.get(entry.name!);
    await this.#collect(entry, job, entry.state !== "JOB_STATE_SUCCEEDED");
  }

  /** Reads a job's kept answers: notes where each is, answers the calls waiting for them. */
  async #read(entry: JobEntry, partial: boolean): Promise<void> {
    const file = `${entry.id}.jsonl`;
    const path = this.#ledger!.path(file);
    const now: AnswerLine[] = [];
    const seen = new Set<string>();
    for await (const { text, offset, length } of jsonlLines(path)) {
      let line: AnswerLine;
      try {
        line = JSON.parse(text) as AnswerLine;
      } catch {
        continue;
      }
      if (typeof line.key !== "string") continue;
      if (partial && line.response === undefined) continue;
      seen.add(line.key);
      if (line.response !== undefined) {
        this.#answers.set(line.key, { file, place: { offset, length } });
      }
      if (this.#calls.has(line.key)) now.push(line);
    }
    if (!partial) {
      for (const key of entry.keys.filter((k) => !seen.has(k))) {
        now.push({ key, error: { code: 500, message: "the job's answers have no line for it" } });
      }
    }
    await this.#answer(entry, now);
  }

  /** Resolves the calls answered, records the lines that failed and sends them again. */
  async #answer(entry: JobEntry, lines: AnswerLine[]): Promise<void> {
    const failed: Record<string, string> = {};
    const retry: string[] = [];
    for (const line of lines) {
      const key = line.key!;
      if (line.response !== undefined) {
        if (!this.#calls.has(key)) continue;
        const answer = await this.#service.toAnswer(line.response);
        BATCH_ANSWERS.add(answer);
        this.#settle(key, { response: answer });
        continue;
      }
      const error = line.error ?? {};
      failed[key] = `${error.code ?? "?"} ${error.message ?? "no answer"}`;
      if (!this.#calls.has(key)) continue;
      const classified = this.#service.lineError(error, entry.model);
      if (!classified.retryable) this.#settle(key, { error: classified });
      else retry.push(key);
    }
    if (Object.keys(failed).length > 0) {
      await this.#ledger!.update(entry.id, { failed: { ...entry.failed, ...failed } });
      log.warn("{provider} batch job {name} answered {failed} of {count} requests with an error", {
        provider: this.#service.title,
        name: entry.name,
        failed: Object.keys(failed).length,
        count: entry.keys.length,
      });
    }
    this.#again(retry, `its line in batch job ${entry.name} failed`);
  }

  /**
   * Sends again calls a job did not answer: once more in a batch (the next job, or at once at
   * the interactive price when only a few), then never.
   */
  #again(keys: string[], why: string): void {
    const retry: string[] = [];
    for (const key of keys) {
      if (!this.#calls.has(key)) continue;
      this.#sentIn.delete(key);
      if (this.#spent(key)) {
        this.#settle(key, {
          error: new ProviderError(
            `${this.#service.title}'s Batch API failed this request twice (last: ${why}); run again later, or without --batch-api`,
            { provider: this.provider, retryable: false },
          ),
        });
      } else retry.push(key);
    }
    if (retry.length === 0) return;
    if (retry.length <= this.#fewRetries) {
      log.info("Sending {count} request(s) again at once, at the interactive price: {reason}", {
        count: retry.length,
        reason: why,
      });
      for (const key of retry) this.#interactive(this.#calls.get(key)!);
    } else {
      log.info("Sending {count} requests again in the next batch job: {reason}", {
        count: retry.length,
        reason: why,
      });
      for (const key of retry) this.#wave!.add(key);
    }
  }

  #interactive(call: Call<Req, Res>): void {
    this.#track(
      this.#service.interactive(call.line.request, this.#stop.signal).then(
        (response) => this.#settle(call.key, { response }),
        (error) =>
          this.#settle(call.key, {
            error: this.#stop.signal.aborted
              ? new StopRequested()
              : this.#service.classify(error, "request", call.line.model),
          }),
      ),
    );
  }

  #settle(key: string, outcome: { response: Res } | { error: unknown }): void {
    const call = this.#calls.get(key);
    if (call === undefined) return;
    this.#calls.delete(key);
    this.#sentIn.delete(key);
    for (const waiter of call.waiters) {
      if ("response" in outcome) waiter.resolve(outcome.response);
      else waiter.reject(outcome.error);
    }
  }
}

/**
 * The key of a call: the first 32 hex digits of the SHA-256 of the model and the request in
 * canonical JSON (keys sorted), so the same call made again, by a later run, has the same key.
 *
 * @example
 * ```ts
 * import { requestKey } from "./batcher.ts";
 * const a = await requestKey("m", { contents: [{ parts: [{ text: "a fox" }] }], n: 1 });
 * const b = await requestKey("models/m", { n: 1, contents: [{ parts: [{ text: "a fox" }] }] });
 * if (a !== b || !/^[0-9a-f]{32}$/.test(a)) throw new Error("same call, same key");
 * ```
 */
export async function requestKey(model: string, request: Record<string, unknown>): Promise<string> {
  const text = JSON.stringify(
    [model.replace(/^models\//, ""), request],
    (_key, value) =>
      value !== null && typeof value === "object" && !Array.isArray(value)
        ? Object.fromEntries(
          Object.keys(value).sort().map((k) => [k, (value as Record<string, unknown>)[k]]),
        )
        : value,
  );
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest).subarray(0, 16), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}
