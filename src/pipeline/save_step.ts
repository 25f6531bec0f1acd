/**
 * A step's outcome kept: its files written, then its event recorded on the prompt's record, the
 * prompt's next action decided, and `metadata.json` saved.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { messageOf } from "../errors.ts";
import type { StepRecord } from "../output/record.ts";
import { type Ctx, record, type State, type StepOutcome } from "./context.ts";
import { decide, saveRecord } from "./lifecycle.ts";

const log = getLogger(["retake", "pipeline"]);

/** Saves what a step returned; `step` is its record with attempts and duration filled in. */
export async function saveStep(
  ctx: Ctx,
  state: State,
  outcome: StepOutcome,
  step: StepRecord,
): Promise<void> {
  switch (outcome.kind) {
    case "image":
      // The image itself was saved as part of the call (a broken download is retried).
      record(state, {
        type: "image-saved",
        round: { ...outcome.round, steps: { generate: step } },
      });
      break;
    case "brief":
      await ctx.sink.saveBrief(state.record, outcome.brief);
      record(state, { type: "brief-saved", brief: outcome.brief, step });
      break;
    case "critique":
      await ctx.sink.saveCritique(state.record, outcome.iteration, outcome.critique);
      record(state, { type: "critique-saved", ...outcome, step });
      decide(ctx, state);
      break;
    case "refinement": {
      const { notes, kind: _kind, ...refined } = outcome;
      await ctx.sink.saveRefinedPrompt(state.record, outcome.iteration, outcome.prompt);
      record(state, { type: "refined", ...refined, step });
      state.nextPrompt = outcome.prompt;
      // The same prompt (and seed) drawn anew would only buy the same image again.
      decide(ctx, state);
      await saveRecord(ctx, state);
      // Only once the refinement that took them is saved: a crash before leaves them pending.
      if (notes.length > 0) await markNotesDone(ctx, state, notes);
      return;
    }
  }
  await saveRecord(ctx, state);
}

async function markNotesDone(ctx: Ctx, state: State, seqs: number[]): Promise<void> {
  try {
    await ctx.steering!.markDone(seqs);
  } catch (error) {
    // The round has the note; at worst a later run gives the prompt one round more.
    log.warn("Could not mark the notes of {promptId} done in feedback.jsonl: {reason}", {
      promptId: state.spec.id,
      reason: messageOf(error),
    });
  }
}
