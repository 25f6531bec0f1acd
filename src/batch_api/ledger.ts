/**
 * The batch folder's record of the batch jobs it sent (`_batch_api/jobs.json`): for every job,
 * its display name and the key of every request in it, written (atomically) before the job is
 * created, then the name the service gave it and how it ended. A run that stops at any moment,
 * `kill -9` included, leaves enough to find every job it created, so no later run pays for the
 * same requests twice: a job being created when the run died is found by its display name.
 *
 * @module
 */
import { writeJsonAtomic } from "../output/atomic_write.ts";
import { readTextInside } from "../output/safe_read.ts";

/** The folder, inside the batch folder, with the record and the answers kept. */
export const BATCH_API_DIR = "_batch_api";
const FILE = "jobs.json";
/** A record of thousands of jobs of thousands of keys stays well under this. */
const MAX_BYTES = 256 * 1024 * 1024;

/**
 * Where a job stands: `creating` (recorded, maybe not yet created), the service's own state
 * (`JOB_STATE_…`), `abandoned` (never created: the run died before it was), or `refused` (the
 * service would not create it).
 */
export type JobState =
  | "creating"
  | "abandoned"
  | "refused"
  | "JOB_STATE_PENDING"
  | "JOB_STATE_RUNNING"
  | "JOB_STATE_SUCCEEDED"
  | "JOB_STATE_FAILED"
  | "JOB_STATE_CANCELLED"
  | "JOB_STATE_EXPIRED";

/** One job as recorded. */
export interface JobEntry {
  /** The job's display name at the service, chosen by retake: unique in the folder. */
  id: string;
  /** The provider that sent it, e.g. `gemini`. */
  provider: string;
  model: string;
  /** The key of every request, in the order sent. */
  keys: string[];
  input: "inline" | "file";
  state: JobState;
  /** The service's name for it (`batches/…`), once created. */
  name?: string;
  /** The uploaded input file (`files/…`), for file input. */
  inputFile?: string;
  /** The answers kept in the folder (a file name in {@linkcode BATCH_API_DIR}), once fetched. */
  results?: string;
  /** Keys whose line failed, with why. */
  failed?: Record<string, string>;
  /** Every answer it had was used by a run that finished: no later run looks in it. */
  collected?: true;
  createdAt: string;
  updatedAt: string;
}

/** What `jobs.json` holds. */
interface LedgerFile {
  version: 1;
  jobs: JobEntry[];
}

/** States in which the service will not answer any more of a job's requests. */
export const ENDED: ReadonlySet<JobState> = new Set([
  "abandoned",
  "refused",
  "JOB_STATE_SUCCEEDED",
  "JOB_STATE_FAILED",
  "JOB_STATE_CANCELLED",
  "JOB_STATE_EXPIRED",
]);

/**
 * The record of one batch folder's jobs. Every change is written before the call it prepares
 * is made, one write at a time, each atomic.
 */
export class BatchLedger {
  readonly dir: string;
  #jobs: JobEntry[];
  #writing: Promise<void> = Promise.resolve();
  readonly #now: () => string;

  private constructor(dir: string, jobs: JobEntry[], now: () => string) {
    this.dir = dir;
    this.#jobs = jobs;
    this.#now = now;
  }

  /**
   * Opens the record of `batchDir`, creating its folder. A record that cannot be read is an
   * error, never an empty one: that would forget jobs that are running.
   */
  static async open(
    batchDir: string,
    now: () => string = () => new Date().toISOString(),
  ): Promise<BatchLedger> {
    const dir = `${batchDir}/${BATCH_API_DIR}`;
    await Deno.mkdir(dir, { recursive: true });
    const text = await readTextInside(batchDir, `${BATCH_API_DIR}/${FILE}`, MAX_BYTES);
    if (text === undefined) return new BatchLedger(dir, [], now);
    let parsed: LedgerFile;
    try {
      parsed = JSON.parse(text) as LedgerFile;
      if (parsed?.version !== 1 || !Array.isArray(parsed.jobs)) throw new TypeError("no jobs");
    } catch (error) {
      throw new Error(
        `Cannot read the batch jobs of '${batchDir}' in ${BATCH_API_DIR}/${FILE}: ${
          (error as Error).message
        }; it lists the jobs this batch sent, so retake will not start without it: restore it, or move the folder aside and cancel the jobs at aistudio.google.com`,
        { cause: error },
      );
    }
    return new BatchLedger(dir, parsed.jobs.filter(isEntry), now);
  }

  /** Every job, oldest first. */
  get jobs(): readonly JobEntry[] {
    return this.#jobs;
  }

  /** The job named `id`. */
  get(id: string): JobEntry | undefined {
    return this.#jobs.find((j) => j.id === id);
  }

  /** Records a new job; resolves once it is on disk. */
  add(entry: Omit<JobEntry, "createdAt" | "updatedAt">): Promise<JobEntry> {
    const at = this.#now();
    const full: JobEntry = { ...entry, createdAt: at, updatedAt: at };
    this.#jobs.push(full);
    return this.#save().then(() => full);
  }

  /** Changes job `id` (a field given as undefined is removed); resolves once it is on disk. */
  update(
    id: string,
    change: { [K in keyof Omit<JobEntry, "id" | "createdAt">]?: JobEntry[K] | undefined },
  ): Promise<JobEntry> {
    const entry = this.get(id);
    if (entry === undefined) {
      return Promise.reject(new Error(`Cannot update batch job '${id}' as it is not recorded`));
    }
    for (const [field, value] of Object.entries(change)) {
      if (value === undefined) delete (entry as unknown as Record<string, unknown>)[field];
      else (entry as unknown as Record<string, unknown>)[field] = value;
    }
    entry.updatedAt = this.#now();
    return this.#save().then(() => entry);
  }

  /** Path of a file kept beside the record. */
  path(name: string): string {
    return `${this.dir}/${name}`;
  }

  #save(): Promise<void> {
    // One write at a time, each of the whole record as it is when the write starts.
    const next = this.#writing.then(() =>
      writeJsonAtomic(`${this.dir}/${FILE}`, { version: 1, jobs: this.#jobs }, {
        within: this.dir.slice(0, -BATCH_API_DIR.length - 1),
      })
    );
    this.#writing = next.catch(() => {});
    return next;
  }
}

function isEntry(value: unknown): value is JobEntry {
  const e = value as JobEntry;
  return typeof e === "object" && e !== null && typeof e.id === "string" &&
    typeof e.provider === "string" && typeof e.model === "string" && Array.isArray(e.keys) &&
    e.keys.every((k) => typeof k === "string") && typeof e.state === "string" &&
    (e.name === undefined || typeof e.name === "string") &&
    (e.results === undefined || /^[\w.-]+$/.test(e.results));
}
