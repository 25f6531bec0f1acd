/**
 * The prompts of a run not yet started, in the order they will start: the steering moves one
 * to the front or drops a cancelled one; the pipeline takes from the front only when a
 * generation slot frees, so a move takes effect on the very next start.
 *
 * @module
 */
import type { PromptSpec } from "../prompts/mod.ts";

/** A reorderable queue of prompts, taken from the front. */
export class PromptQueue {
  /** Prompts moved to the front, the latest move first. */
  #front: PromptSpec[] = [];
  readonly #rest: PromptSpec[];
  #next = 0;
  /** Ids already taken or moved: skipped when met again in `#rest`. */
  readonly #gone = new Set<string>();

  constructor(specs: readonly PromptSpec[]) {
    this.#rest = [...specs];
  }

  /** How many prompts are left. */
  get size(): number {
    let left = this.#front.length;
    for (let i = this.#next; i < this.#rest.length; i++) {
      if (!this.#gone.has(this.#rest[i]!.id)) left++;
    }
    return left;
  }

  /** The next prompt to start, or undefined when none is left. */
  take(): PromptSpec | undefined {
    const moved = this.#front.shift();
    if (moved) return moved;
    while (this.#next < this.#rest.length) {
      const spec = this.#rest[this.#next++]!;
      if (this.#gone.has(spec.id)) continue;
      this.#gone.add(spec.id);
      return spec;
    }
    return undefined;
  }

  /** Moves a prompt not yet taken to the front; returns false when it is not in the queue. */
  front(id: string): boolean {
    const index = this.#front.findIndex((s) => s.id === id);
    if (index >= 0) {
      this.#front.unshift(...this.#front.splice(index, 1));
      return true;
    }
    if (this.#gone.has(id)) return false;
    const spec = this.#rest.slice(this.#next).find((s) => s.id === id);
    if (!spec) return false;
    this.#gone.add(id);
    this.#front.unshift(spec);
    return true;
  }
}
