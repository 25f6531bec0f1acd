/**
 * The user's hand on a batch: favourite a round, reject one with a note, pause and resume the
 * queue, move a prompt to the front, cancel a prompt. Every action is written to
 * `feedback.jsonl` before it takes effect; a run reads the state here (`paused`, `cancelled`,
 * `pendingNotes`) and a studio subscribes to what happens.
 *
 * What lasts: favourites, cancels and notes not yet acted on are read back by every later
 * process on the batch. Pause and move-to-front act on the live queue only: a later
 * `retake run` has no studio to resume it from, so it never starts paused.
 *
 * A note costs a round. A studio's steering (`fileNotes: "confirm"`) runs only the notes sent
 * through it: the file may come with a batch folder from elsewhere, so the notes read from it
 * wait until the user confirms each one ({@linkcode Steering.heldNotes}).
 *
 * @module
 */
import { isRoundImageName } from "../output/folder_names.ts";
import { FolderSink } from "../output/artifacts.ts";
import { verifyImageFile } from "../output/image_check.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { PromptRecord } from "../output/record.ts";
import {
  type FeedbackEntry,
  FeedbackLog,
  type SteeringAction,
  steeringActionSchema,
} from "./feedback.ts";

export type { FeedbackEntry, SteeringAction } from "./feedback.ts";

/**
 * What the notes read from `feedback.jsonl` do: `run` (a plain `retake run`: the user chose to
 * run the batch) or `confirm` (a studio: they wait until the user confirms each).
 */
export type FileNotes = "run" | "confirm";

/** What a live run tells the steering, so a favourite of a running prompt goes through it. */
export interface RunHooks {
  /** Whether a run is working on the prompt now (its record is in the run's hands). */
  isLive(id: string): boolean;
}

/** The state of one batch's steering; see the module docs. */
export class Steering {
  readonly batchDir: string;
  readonly #log: FeedbackLog;
  readonly #entries: FeedbackEntry[];
  readonly #done: Set<number>;
  /** Each cancelled prompt's latest cancel, by its sequence number. */
  readonly #cancelled = new Map<string, number>();
  readonly #chosen = new Map<string, number>();
  readonly #listeners = new Set<(entry: FeedbackEntry) => void>();
  readonly #waiters = new Set<() => void>();
  /** Favourites of prompts a run held when they came: settled once the run lets go. */
  readonly #deferred = new Set<string>();
  readonly #sink: FolderSink;
  #paused = false;
  #run: RunHooks | undefined;
  /** Whether notes read from the file run (a plain `retake run`) or wait to be confirmed. */
  readonly #fileNotes: FileNotes;
  /** Sequence numbers of the actions this instance wrote: this session's. */
  readonly #mine = new Set<number>();
  /** Actions being written: a run about to end waits for them, so none comes too late. */
  readonly #applying = new Set<Promise<unknown>>();

  private constructor(
    batchDir: string,
    log: FeedbackLog,
    entries: FeedbackEntry[],
    done: Set<number>,
    fileNotes: FileNotes,
  ) {
    this.batchDir = batchDir;
    this.#fileNotes = fileNotes;
    this.#log = log;
    this.#entries = entries;
    this.#done = done;
    this.#sink = new FolderSink(batchDir, verifyImageFile);
    for (const entry of entries) this.#remember(entry);
    // An earlier process's pause ends with it: nothing could resume this one.
    this.#paused = false;
  }

  /**
   * Reads the batch's `feedback.jsonl` (none yet is fine) and returns its steering. With
   * `fileNotes: "confirm"` (a studio) the notes read from the file are held, not run.
   */
  static async open(
    batchDir: string,
    options: { now?: () => string; fileNotes?: FileNotes } = {},
  ): Promise<Steering> {
    const { log, contents } = await FeedbackLog.open(batchDir, options);
    return new Steering(
      batchDir,
      log,
      contents.entries,
      contents.done,
      options.fileNotes ?? "run",
    );
  }

  /**
   * Checks an action, writes it to `feedback.jsonl` (on disk before anything else happens),
   * then lets it take effect and tells the subscribers. Throws `TypeError` for a malformed
   * action and `RangeError` for a favourite of a round that has no image, before writing.
   */
  apply(action: SteeringAction): Promise<FeedbackEntry> {
    const applying = this.#apply(action);
    const settled = applying.catch(() => {}).finally(() => this.#applying.delete(settled));
    this.#applying.add(settled);
    return applying;
  }

  /** Resolves once every action applied so far has taken effect (or failed). */
  async idle(): Promise<void> {
    while (this.#applying.size > 0) await Promise.all(this.#applying);
  }

  async #apply(action: SteeringAction): Promise<FeedbackEntry> {
    const parsed = steeringActionSchema.safeParse(action);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new TypeError(
        `Cannot apply the steering action as field '${
          issue.path.join(".") || "type"
        }' is invalid: ${issue.message}`,
      );
    }
    const checked = parsed.data as SteeringAction;
    let record: PromptRecord | undefined;
    if (checked.type === "favourite") record = await this.#recordWithImage(checked);
    const confirms = checked.type === "reject" ? checked.confirms : undefined;
    if (checked.type === "reject" && confirms !== undefined) {
      if (!this.heldNotes(checked.id).some((e) => e.seq === confirms)) {
        throw new RangeError(
          `Cannot confirm note ${confirms} of prompt '${checked.id}' as it is not a note waiting for confirmation: reload the page`,
        );
      }
    }
    const entry = await this.#log.append(checked);
    this.#mine.add(entry.seq);
    this.#entries.push(entry);
    this.#remember(entry);
    // The confirmed note runs as this one: it is not held any more.
    if (confirms !== undefined) await this.markDone([confirms]);
    if (checked.type === "resume") this.#wake();
    if (checked.type === "favourite") {
      // A running prompt's record is the run's: its next save carries the choice, and the run
      // settles it once the prompt is done.
      if (this.#run?.isLive(checked.id)) this.#deferred.add(checked.id);
      else await this.#sink.choose(record!, checked.iteration);
    }
    for (const listener of this.#listeners) listener(entry);
    return entry;
  }

  /** Whether the queue is paused: no new step starts. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Resolves once the queue is not paused, or when `signal` aborts (a Ctrl-C drains). */
  resumed(signal: AbortSignal): Promise<void> {
    if (!this.#paused || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Whether the user cancelled the prompt; with `since`, only a cancel after that sequence
   * number counts (a `--force` run ignores the cancels before it, not those during it).
   */
  cancelled(id: string, since = 0): boolean {
    return (this.#cancelled.get(id) ?? 0) > since;
  }

  /** The sequence number of the latest action, 0 for none. */
  get lastSeq(): number {
    return this.#entries.at(-1)?.seq ?? 0;
  }

  /** The user's favourite round of the prompt, if any. */
  chosen(id: string): number | undefined {
    return this.#chosen.get(id);
  }

  /** The prompt's rejects whose notes no round has taken yet and may run, oldest first. */
  pendingNotes(id: string): FeedbackEntry[] {
    return this.#entries.filter((e) =>
      e.action.type === "reject" && e.action.id === id && this.#runs(e)
    );
  }

  /** Every prompt with a note not yet acted on that may run, in the order the notes came. */
  pendingIds(): string[] {
    const ids = new Set<string>();
    for (const e of this.#entries) {
      if (e.action.type === "reject" && this.#runs(e)) ids.add(e.action.id);
    }
    return [...ids];
  }

  /**
   * The prompt's notes read from the file that wait for the user to confirm them (a studio's
   * steering), oldest first: shown, never run until confirmed.
   */
  heldNotes(id: string): FeedbackEntry[] {
    if (this.#fileNotes === "run") return [];
    return this.#entries.filter((e) =>
      e.action.type === "reject" && e.action.id === id && !this.#done.has(e.seq) &&
      !this.#mine.has(e.seq)
    );
  }

  /** Whether a note not yet acted on may run: this session's, or any for a plain run. */
  #runs(entry: FeedbackEntry): boolean {
    return !this.#done.has(entry.seq) && (this.#fileNotes === "run" || this.#mine.has(entry.seq));
  }

  /** Every action so far, this process's and earlier ones', oldest first. */
  get entries(): readonly FeedbackEntry[] {
    return this.#entries;
  }

  /** Records that the actions were acted on (a round took the notes), durably. */
  async markDone(seqs: readonly number[]): Promise<void> {
    for (const seq of seqs) {
      if (this.#done.has(seq)) continue;
      await this.#log.markDone(seq);
      this.#done.add(seq);
    }
  }

  /** Calls `listener` after each action takes effect; returns the unsubscribe. */
  subscribe(listener: (entry: FeedbackEntry) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Lets a run tell which prompts it holds; returns the detach. */
  attach(run: RunHooks): () => void {
    this.#run = run;
    return () => {
      if (this.#run === run) this.#run = undefined;
    };
  }

  /**
   * Writes the favourites that came while a run held their prompt, now that it has let go: the
   * run may have copied `best.<ext>` before the choice came.
   */
  async settleFavourites(): Promise<void> {
    for (const id of [...this.#deferred]) {
      if (this.#run?.isLive(id)) continue;
      this.#deferred.delete(id);
      const iteration = this.#chosen.get(id)!;
      const record = await this.#recordWithImage({ id, iteration });
      await this.#sink.choose(record, iteration);
    }
  }

  #remember({ seq, action }: FeedbackEntry): void {
    if (action.type === "cancel") this.#cancelled.set(action.id, seq);
    else if (action.type === "favourite") this.#chosen.set(action.id, action.iteration);
    else if (action.type === "pause") this.#paused = true;
    else if (action.type === "resume") this.#paused = false;
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  async #recordWithImage(action: { id: string; iteration: number }): Promise<PromptRecord> {
    const folder = this.#sink.folderFor({ id: action.id } as PromptSpec);
    const record = await this.#sink.load(folder);
    if (record === undefined || record.id !== action.id) {
      throw new RangeError(
        `Cannot choose a favourite of prompt '${action.id}' as it has no results in '${this.batchDir}': run the batch first`,
      );
    }
    const it = record.iterations.find((r) => r.iteration === action.iteration);
    if (it?.image !== undefined && !isRoundImageName(it.image)) {
      throw new RangeError(
        `Cannot choose iteration ${action.iteration} of prompt '${action.id}' as its record names image '${it.image}', which is not a round's image (iteration-<n>.png or .jpg): the record was edited`,
      );
    }
    if (it?.image === undefined) {
      const saved = record.iterations.filter((r) => r.image !== undefined).map((r) => r.iteration);
      throw new RangeError(
        `Cannot choose iteration ${action.iteration} of prompt '${action.id}' as it has no saved image: saved iterations are ${
          saved.length > 0 ? saved.join(", ") : "none"
        }`,
      );
    }
    return record;
  }
}
