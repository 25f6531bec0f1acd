/**
 * Gemini's Batch API behind `generateContent` (`--batch-api`): every call the critic, the
 * brief, the refiner and the image generator make waits in a wave; a wave goes to Gemini as one
 * batch job per model (or a few, within the size limits), billed at half the interactive price;
 * each call gets its own answer back once the job ends, exactly as `generateContent` would have
 * answered it, so everything above this file works and saves as it does interactively.
 *
 * Money first: a job is recorded in the batch folder (`_batch_api/jobs.json`) with the key of
 * every request in it before it is created, and its name as soon as Gemini gives one. A call is
 * keyed by its model and request, so a later run that makes the same call (after Ctrl-C, a
 * crash, `kill -9`) finds the job that holds it and waits for that job, or takes its answer,
 * instead of sending it again; a job the dead run was creating is looked for by its display name
 * (`batches.list`) before anything is sent. Ctrl-C leaves the jobs running (the run says so);
 * `--cancel-batch-jobs` cancels them.
 *
 * Inline requests where a job's requests are small text (under 10 MB, half Gemini's 20 MB
 * limit); a JSONL file through the Files API otherwise, and always for images, whose answers
 * then come back as a file (large inline answers of images are reported to time out). The
 * answers of a job are kept in `_batch_api/` until a run that used them finishes, and read one
 * line at a time. A request that fails in a job is sent once more: interactively when only a
 * few failed, else in the next job; a job that fails or expires (48 hours pending) is sent
 * again once.
 *
 * @module
 */
import type {
  BatchJob,
  Content,
  GenerateContentConfig,
  GenerateContentResponse,
  GoogleGenAI,
} from "@google/genai/web";
import { getLogger } from "@logtape/logtape";
import { removeQuietly, writeFileAtomic, writeStreamAtomic } from "../artifacts.ts";
import { type BatchClock, realClock } from "../batch_api/clock.ts";
import { jsonlLines, type LinePlace, readLine } from "../batch_api/jsonl.ts";
import {
  BATCH_API_DIR,
  BatchLedger,
  ENDED,
  type JobEntry,
  type JobState,
} from "../batch_api/ledger.ts";
import type {
  BatchApiSession,
  BatchApiSettings,
  BatchWait,
  RunningJob,
} from "../batch_api/session.ts";
import { Wave } from "../batch_api/wave.ts";
import { messageOf, ProviderError } from "../errors.ts";
import { StopRequested } from "../pipeline.ts";
import { inlineRequest, requestKey, restRequest } from "./gemini_batch_request.ts";

const PROVIDER = "gemini";
const log = getLogger(["retake", "batch"]);

/** What Gemini bills a batch call, as a share of the interactive price. */
export const BATCH_PRICE = 0.5;

const BATCH_ANSWERS = new WeakSet<object>();

/** Whether `response` came from a batch job (billed at {@linkcode BATCH_PRICE}). */
export function answeredInBatch(response: object): boolean {
  return BATCH_ANSWERS.has(response);
}

/** One `generateContent` call. */
export interface GenerateParams {
  model: string;
  contents: Content[];
  config?: GenerateContentConfig;
}

/** What the batcher needs of the Gemini connection. */
export interface GeminiBatchTransport {
  /** The SDK client, loaded on first use. */
  client(): Promise<GoogleGenAI>;
  /** Makes the call at once, at the interactive price. */
  interactive(params: GenerateParams): Promise<GenerateContentResponse>;
  /** `error` as a {@linkcode ProviderError}. */
  classify(error: unknown, operation: string, model: string): unknown;
}

/** Options for {@linkcode GeminiBatcher}. */
export interface GeminiBatcherOptions extends Partial<BatchApiSettings> {
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
  /** Bytes of requests in one job, at most (Gemini takes files up to 2 GB). @default {1 GiB} */
  maxFileBytes?: number;
}

interface Waiter {
  resolve(response: GenerateContentResponse): void;
  reject(error: unknown): void;
}

/** A call waiting for its answer; several callers of the same request share one. */
interface Call {
  key: string;
  model: string;
  params: GenerateParams;
  rest: Record<string, unknown>;
  bytes: number;
  images: boolean;
  waiters: Set<Waiter>;
}

/** One line of a job's answers. */
interface AnswerLine {
  key?: string;
  response?: Record<string, unknown>;
  error?: { code?: number; message?: string; status?: string };
}

/** Sends Gemini calls in batch jobs; see the module doc. */
export class GeminiBatcher implements BatchApiSession {
  readonly provider = PROVIDER;
  readonly #transport: GeminiBatchTransport;
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
  readonly #calls = new Map<string, Call>();
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
  #sdk: Promise<typeof import("@google/genai/web")> | undefined;

  constructor(transport: GeminiBatchTransport, options: GeminiBatcherOptions = {}) {
    this.#transport = transport;
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
    const creating = ledger.jobs.filter((e) => e.provider === PROVIDER && e.state === "creating");
    if (creating.length > 0) {
      // A run died while creating these: each was created or not; Gemini's list says which.
      let found: Map<string, BatchJob>;
      try {
        found = await this.#listByName(new Set(creating.map((e) => e.id)));
      } catch (error) {
        throw new ProviderError(
          `Cannot tell whether the batch job ${
            creating[0]!.id
          } an earlier run was creating exists: ${
            messageOf(this.#transport.classify(error, "batch list", creating[0]!.model))
          }; run again once Gemini answers, so no request is sent twice`,
          { provider: PROVIDER, retryable: false, fatal: true, cause: error },
        );
      }
      for (const entry of creating) {
        const job = found.get(entry.id);
        if (job?.name !== undefined) {
          await ledger.update(entry.id, { name: job.name, state: stateOf(job) });
          log.info("Found batch job {name} that an earlier run created as it stopped", {
            name: job.name,
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
  async generateContent(params: GenerateParams): Promise<GenerateContentResponse> {
    if (this.#ledger === undefined) return await this.#transport.interactive(params);
    const signal = params.config?.abortSignal;
    if (signal?.aborted) throw signal.reason;
    if (this.#stop.signal.aborted) throw new StopRequested();
    const model = params.model.replace(/^models\//, "");
    const rest = restRequest(params.contents, params.config);
    const key = await requestKey(model, rest);
    return await new Promise<GenerateContentResponse>((resolve, reject) => {
      let call = this.#calls.get(key);
      const fresh = call === undefined;
      call ??= {
        key,
        model,
        params,
        rest,
        bytes: JSON.stringify(rest).length,
        images: _images(params),
        waiters: new Set(),
      };
      const onAbort = () => {
        call.waiters.delete(waiter);
        if (call.waiters.size === 0 && this.#calls.get(key) === call) {
          // Not sent yet: it never will be. Sent: its job goes on, its answer is kept.
          this.#calls.delete(key);
          this.#wave?.remove(key);
        }
        reject(signal!.reason);
      };
      const waiter: Waiter = {
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
        if (entry.provider !== PROVIDER || entry.collected || !ENDED.has(entry.state)) continue;
        if (entry.results !== undefined) await removeQuietly(ledger.path(entry.results));
        await ledger.update(entry.id, { collected: true, results: undefined });
      }
    }
    return this.#running(ledger);
  }

  async cancelAll(batchDir: string, signal: AbortSignal): Promise<RunningJob[]> {
    const ledger = this.#ledger ?? await BatchLedger.open(batchDir);
    const live = ledger.jobs.filter((e) => e.provider === PROVIDER && !ENDED.has(e.state));
    if (live.length === 0) return [];
    const ai = await this.#transport.client();
    const unnamed = live.filter((e) => e.name === undefined);
    const found = unnamed.length > 0
      ? await this.#listByName(new Set(unnamed.map((e) => e.id)))
      : new Map<string, BatchJob>();
    const cancelled: RunningJob[] = [];
    for (const entry of live) {
      const name = entry.name ?? found.get(entry.id)?.name;
      if (name === undefined) {
        await ledger.update(entry.id, { state: "abandoned" });
        continue;
      }
      try {
        await ai.batches.cancel({ name, config: { abortSignal: signal } });
        const job = await ai.batches.get({ name, config: { abortSignal: signal } });
        await ledger.update(entry.id, { name, state: stateOf(job) });
      } catch (error) {
        throw this.#transport.classify(error, "batch cancel", entry.model);
      }
      cancelled.push({ provider: PROVIDER, name, requests: entry.keys.length });
    }
    return cancelled;
  }

  /** Ctrl-C: nothing more is sent, every wait ends now; the jobs go on at Gemini. */
  #halt(): void {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    this.#wave?.drain();
    for (const key of [...this.#calls.keys()]) this.#settle(key, { error: new StopRequested() });
  }

  #running(ledger: BatchLedger): RunningJob[] {
    return ledger.jobs.filter((e) =>
      e.provider === PROVIDER && e.name !== undefined && !ENDED.has(e.state)
    ).map((e) => ({ provider: PROVIDER, name: e.name!, requests: e.keys.length }));
  }

  #track<T>(work: Promise<T>): void {
    const tracked = work.catch((error) =>
      log.error("A Gemini batch job could not be handled: {reason}", { reason: messageOf(error) })
    ).finally(() => this.#busy.delete(tracked));
    this.#busy.add(tracked);
  }

  #keysOf(entry: JobEntry): Set<string> {
    let keys = this.#keySets.get(entry);
    if (keys === undefined) this.#keySets.set(entry, keys = new Set(entry.keys));
    return keys;
  }

  /** Where a new call goes: an answer kept, a job that holds it, or the next wave. */
  #route(call: Call): void {
    const ledger = this.#ledger!;
    const jobs = ledger.jobs;
    for (let i = jobs.length - 1; i >= 0; i--) {
      const entry = jobs[i]!;
      if (entry.provider !== PROVIDER || entry.collected || !this.#keysOf(entry).has(call.key)) {
        continue;
      }
      if (entry.state === "JOB_STATE_SUCCEEDED" && entry.failed?.[call.key] === undefined) {
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
      if (e.provider !== PROVIDER || e.collected || !this.#keysOf(e).has(key)) continue;
      if (e.failed?.[key] !== undefined) lines++;
      else if (e.state === "JOB_STATE_FAILED" || e.state === "JOB_STATE_EXPIRED") jobs++;
    }
    return lines >= 2 || jobs >= 2;
  }

  #flush(keys: string[]): void {
    const byModel = new Map<string, Call[]>();
    for (const key of keys) {
      const call = this.#calls.get(key);
      if (call === undefined) continue;
      byModel.set(call.model, [...(byModel.get(call.model) ?? []), call]);
    }
    for (const [model, calls] of byModel) {
      let chunk: Call[] = [];
      let bytes = 0;
      for (const call of calls) {
        const limit = chunk.some((c) => c.images) || call.images
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
  async #submit(model: string, calls: Call[]): Promise<void> {
    const ledger = this.#ledger!;
    const keys = calls.map((c) => c.key);
    const base = `retake-${(await requestKey(model, { keys: [...keys].sort() })).slice(0, 24)}`;
    let id = base;
    for (let n = 2; ledger.get(id) !== undefined; n++) id = `${base}-${n}`;
    const bytes = calls.reduce((n, c) => n + c.bytes, 0);
    const input = calls.some((c) => c.images) || bytes > this.#inlineMaxBytes ? "file" : "inline";
    for (const key of keys) this.#sentIn.set(key, id);
    try {
      await ledger.add({ id, provider: PROVIDER, model, keys, input, state: "creating" });
    } catch (error) {
      for (const key of keys) this.#settle(key, { error });
      return;
    }
    try {
      const ai = await this.#transport.client();
      let src: string | ReturnType<typeof inlineRequest>[];
      if (input === "file") {
        const text = calls.map((c) => JSON.stringify({ key: c.key, request: c.rest })).join("\n");
        const file = await ai.files.upload({
          file: new Blob([text, "\n"], { type: "application/jsonl" }),
          config: { mimeType: "application/jsonl", displayName: id },
        });
        if (file.name === undefined) throw new Error("Gemini kept the file without a name");
        await ledger.update(id, { inputFile: file.name });
        src = file.name;
      } else {
        src = calls.map((c) => inlineRequest(c.params.contents, c.params.config ?? {}, c.key));
      }
      const job = await ai.batches.create({ model, src, config: { displayName: id } });
      if (job.name === undefined) throw new Error("Gemini created the job without a name");
      await ledger.update(id, { name: job.name, state: stateOf(job) });
      log.info(
        "Sent {count} requests to {model} in Gemini batch job {name} ({input} input), at half the interactive price",
        { count: calls.length, model, name: job.name, input, id },
      );
      this.#watch(id);
    } catch (error) {
      const classified = this.#transport.classify(error, "batch job", model);
      const status = classified instanceof ProviderError ? classified.status : undefined;
      // A refusal (4xx) says the job was not created; anything else may have created it.
      const refused = status !== undefined && status >= 400 && status < 500 && status !== 408;
      if (!refused) {
        const found = await this.#listByName(new Set([id])).then((m) => m.get(id), () => undefined);
        if (found?.name !== undefined) {
          await ledger.update(id, { name: found.name, state: stateOf(found) });
          this.#watch(id);
          return;
        }
      }
      await ledger.update(id, { state: refused ? "refused" : "abandoned" });
      log.warn("Could not create a Gemini batch job for {count} requests: {reason}", {
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
      const ai = await this.#transport.client();
      for (const id of [...this.#watched]) {
        const entry = ledger.get(id)!;
        if (entry.name === undefined) continue;
        let job: BatchJob;
        try {
          job = await ai.batches.get({
            name: entry.name,
            config: { abortSignal: this.#stop.signal },
          });
        } catch (error) {
          if (this.#stop.signal.aborted) return;
          log.warn("Could not look at Gemini batch job {name}: {reason}; looking again later", {
            name: entry.name,
            reason: messageOf(this.#transport.classify(error, "batch poll", entry.model)),
          });
          continue;
        }
        const state = stateOf(job);
        if (state !== entry.state) await ledger.update(id, { state });
        if (!ENDED.has(state)) continue;
        this.#watched.delete(id);
        await this.#ended(entry, job);
      }
    }
  }

  async #ended(entry: JobEntry, job: BatchJob): Promise<void> {
    const waiting = entry.keys.filter((k) =>
      this.#calls.has(k) && this.#sentIn.get(k) === entry.id
    );
    switch (entry.state) {
      case "JOB_STATE_SUCCEEDED":
        await this.#collect(entry, job);
        return;
      case "JOB_STATE_CANCELLED":
        for (const key of waiting) {
          this.#settle(key, {
            error: new ProviderError(
              `Gemini batch job ${entry.name} was cancelled before it answered; run again to send its requests anew`,
              { provider: PROVIDER, retryable: false },
            ),
          });
        }
        return;
      default: {
        const why = entry.state === "JOB_STATE_EXPIRED"
          ? "it expired (not run within 48 hours)"
          : "it failed";
        log.warn("Gemini batch job {name} ended without answers as {reason}", {
          name: entry.name,
          reason: why,
          requests: entry.keys.length,
        });
        this.#again(waiting, `batch job ${entry.name} ${why}`);
      }
    }
  }

  /** Keeps a finished job's answers in the batch folder, then answers the calls waiting. */
  async #collect(entry: JobEntry, job: BatchJob): Promise<void> {
    const ledger = this.#ledger!;
    const file = `${entry.id}.jsonl`;
    const path = ledger.path(file);
    const within = this.#batchDir;
    const inline = job.dest?.inlinedResponses;
    try {
      if (inline !== undefined) {
        const lines = inline.map((r, i) =>
          JSON.stringify({
            key: r.metadata?.key ?? entry.keys[i],
            ...(r.error !== undefined ? { error: r.error } : { response: r.response }),
          })
        );
        await writeFileAtomic(path, lines.join("\n") + "\n", { within });
      } else if (job.dest?.fileName !== undefined) {
        const response = await _download(await this.#transport.client(), job.dest.fileName);
        if (response.body === null) throw new Error("the answers file is empty");
        await writeStreamAtomic(path, response.body, undefined, { within });
      } else {
        throw new Error("the job ended without answers");
      }
    } catch (error) {
      const reason = messageOf(this.#transport.classify(error, "batch answers", entry.model));
      log.warn("Could not fetch the answers of Gemini batch job {name}: {reason}", {
        name: entry.name,
        reason,
      });
      // The job stays answered at Gemini for a while: a later look may fetch them.
      const waiting = entry.keys.filter((k) => this.#calls.has(k));
      for (const key of waiting) {
        this.#settle(key, {
          error: new ProviderError(
            `Cannot fetch the answers of Gemini batch job ${entry.name}: ${reason}`,
            { provider: PROVIDER, retryable: true },
          ),
        });
      }
      return;
    }
    await ledger.update(entry.id, { results: file });
    this.#indexed.set(entry.id, this.#read(entry));
    await this.#indexed.get(entry.id);
  }

  /** Answers a call from a finished job's kept answers (fetching them again if they are gone). */
  async #fromKept(entry: JobEntry, key: string): Promise<void> {
    let reading = this.#indexed.get(entry.id);
    if (reading === undefined) {
      const kept = entry.results !== undefined &&
        await Deno.stat(this.#ledger!.path(entry.results)).then(() => true, () => false);
      reading = kept ? this.#read(entry) : this.#refetch(entry);
      this.#indexed.set(entry.id, reading);
    }
    await reading;
    const place = this.#answers.get(key);
    if (!this.#calls.has(key)) return;
    if (place === undefined) {
      this.#again([key], `batch job ${entry.name} has no answer for it`);
      return;
    }
    const line = JSON.parse(await readLine(this.#ledger!.path(place.file), place.place));
    await this.#answer(entry, [line]);
  }

  async #refetch(entry: JobEntry): Promise<void> {
    const ai = await this.#transport.client();
    const job = await ai.batches.get({ name: entry.name! });
    await this.#collect(entry, job);
  }

  /** Reads a job's kept answers: notes where each is, answers the calls waiting for them. */
  async #read(entry: JobEntry): Promise<void> {
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
      seen.add(line.key);
      if (line.response !== undefined) {
        this.#answers.set(line.key, { file, place: { offset, length } });
      }
      if (this.#calls.has(line.key)) now.push(line);
    }
    const missing = entry.keys.filter((k) => !seen.has(k));
    for (const key of missing) {
      now.push({ key, error: { code: 500, message: "the job's answers have no line for it" } });
    }
    await this.#answer(entry, now);
  }

  /** Resolves the calls answered, records the lines that failed and sends them again. */
  async #answer(entry: JobEntry, lines: AnswerLine[]): Promise<void> {
    const sdk = await (this.#sdk ??= import("@google/genai/web"));
    const failed: Record<string, string> = {};
    const retry: string[] = [];
    for (const line of lines) {
      const key = line.key!;
      if (line.response !== undefined) {
        const response = Object.assign(new sdk.GenerateContentResponse(), line.response);
        BATCH_ANSWERS.add(response);
        this.#settle(key, { response });
        continue;
      }
      const code = line.error?.code ?? 500;
      const message = line.error?.message ?? "no answer";
      failed[key] = `${code} ${message}`;
      if (!this.#calls.has(key)) continue;
      const error = this.#transport.classify(
        { name: "ApiError", status: code, message: JSON.stringify({ error: line.error ?? {} }) },
        "batch request",
        entry.model,
      );
      if (error instanceof ProviderError && !error.retryable) this.#settle(key, { error });
      else retry.push(key);
    }
    if (Object.keys(failed).length > 0) {
      await this.#ledger!.update(entry.id, { failed: { ...entry.failed, ...failed } });
      log.warn("Gemini batch job {name} answered {failed} of {count} requests with an error", {
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
            `Gemini's Batch API failed this request twice (last: ${why}); run again later, or without --batch-api`,
            { provider: PROVIDER, retryable: false },
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

  #interactive(call: Call): void {
    const config = { ...call.params.config, abortSignal: this.#stop.signal };
    this.#track(
      this.#transport.interactive({ ...call.params, config }).then(
        (response) => this.#settle(call.key, { response }),
        (error) =>
          this.#settle(call.key, {
            error: this.#stop.signal.aborted
              ? new StopRequested()
              : this.#transport.classify(error, "request", call.model),
          }),
      ),
    );
  }

  #settle(
    key: string,
    outcome: { response: GenerateContentResponse } | { error: unknown },
  ): void {
    const call = this.#calls.get(key);
    if (call === undefined) return;
    this.#calls.delete(key);
    this.#sentIn.delete(key);
    for (const waiter of call.waiters) {
      if ("response" in outcome) waiter.resolve(outcome.response);
      else waiter.reject(outcome.error);
    }
  }

  /** Batch jobs whose display name is in `ids`, from Gemini's list. */
  async #listByName(ids: Set<string>): Promise<Map<string, BatchJob>> {
    const ai = await this.#transport.client();
    const found = new Map<string, BatchJob>();
    for await (const job of await ai.batches.list({ config: { pageSize: 100 } })) {
      if (job.displayName !== undefined && ids.has(job.displayName)) {
        found.set(job.displayName, job);
        if (found.size === ids.size) break;
      }
    }
    return found;
  }
}

/** The job's state as recorded: the transient states count as the one they belong to. */
function stateOf(job: BatchJob): JobState {
  switch (String(job.state)) {
    case "JOB_STATE_SUCCEEDED":
      return "JOB_STATE_SUCCEEDED";
    case "JOB_STATE_FAILED":
      return "JOB_STATE_FAILED";
    case "JOB_STATE_CANCELLED":
      return "JOB_STATE_CANCELLED";
    case "JOB_STATE_EXPIRED":
      return "JOB_STATE_EXPIRED";
    case "JOB_STATE_RUNNING":
    case "JOB_STATE_CANCELLING":
    case "JOB_STATE_UPDATING":
    case "JOB_STATE_PAUSED":
      return "JOB_STATE_RUNNING";
    default:
      return "JOB_STATE_PENDING";
  }
}

/**
 * Whether a call asks for an image: its job takes file input, so its answers (megabytes each)
 * come back as a file. Images sent (a critic's small copy, an edit's source) only count by size.
 */
function _images(params: GenerateParams): boolean {
  const modalities = params.config?.responseModalities ?? [];
  return modalities.some((m) => String(m).toUpperCase() === "IMAGE");
}

/**
 * A file's bytes, asked for as the Node SDK's `files.download` asks (the web build the provider
 * uses has no download): `GET files/{id}:download?alt=media`, through the SDK's own client.
 */
async function _download(ai: GoogleGenAI, name: string): Promise<Response> {
  const api = (ai as unknown as {
    apiClient: { request(r: Record<string, unknown>): Promise<{ responseInternal: Response }> };
  }).apiClient;
  const response = await api.request({
    path: `files/${name.replace(/^files\//, "")}:download`,
    httpMethod: "GET",
    queryParams: { alt: "media" },
  });
  return response.responseInternal;
}

export { BATCH_API_DIR };
