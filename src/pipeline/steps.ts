/**
 * The steps: generate, brief, critique and refine each make one call and return what it gave
 * as a value (`StepOutcome`); the stage saves it. Only a generation's request is put on record
 * while its call runs, so a process that dies mid-call leaves it for the next run to fetch.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { briefSchema } from "../providers/critique.ts";
import { billedCost, messageOf, withBilledCost } from "../errors.ts";
import { chooseNextRound } from "./next_round.ts";
import type {
  EditSource,
  GeneratedImage,
  GenerateRequest,
  TokenUsage,
} from "../providers/provider.ts";
import {
  bestIteration,
  type IterationRecord,
  type NextRound,
  type StepRecord,
} from "../output/record.ts";
import {
  type Ctx,
  estimateFor,
  ownOf,
  record,
  type State,
  type StepOutcome,
  type StepResult,
} from "./context.ts";
import { saveRecord } from "./lifecycle.ts";

const log = getLogger(["retake", "pipeline"]);

export async function generateStep(
  ctx: Ctx,
  state: State,
  iteration: number,
  signal: AbortSignal,
): Promise<StepResult> {
  const startedAt = ctx.isoNow();
  const prompt = state.nextPrompt;
  const edit = editSource(ctx, state, iteration);
  const recoverRequestId = requestToRecover(ctx, state, iteration);
  const requests = pendingRequests(ctx, state, iteration, edit !== undefined);
  const image = await ctx.generator.generate({
    ...generateRequest(ctx, state, iteration, prompt, signal),
    ...(edit !== undefined && { edit: edit.source }),
    ...(recoverRequestId !== undefined && { recoverRequestId }),
    onSubmitting: requests.onSubmitting,
    onAccepted: requests.onAccepted,
  }).catch((error: unknown) => {
    requests.failed(error, signal, recoverRequestId !== undefined);
    throw error;
  });
  // Saving is part of the attempt: a download that breaks mid-stream is retried like the call.
  const saved = await ctx.sink.saveImage(state.record, iteration, image).catch((error) => {
    if (image.requestId !== undefined) {
      record(state, { type: "request-dropped", requestId: image.requestId });
    }
    // The service billed the image even though it could not be saved.
    throw withBilledCost(error, image.costUsd);
  });
  await requests.saving();
  const round = imageIteration(iteration, prompt, image, saved, actionOf(state, iteration, edit));
  return {
    step: imageStep(ctx, image, startedAt),
    outcome: { kind: "image", round },
    ...(image.queueMs !== undefined && { queueMs: image.queueMs }),
    ...(image.serviceMs !== undefined && { serviceMs: image.serviceMs }),
  };
}

/**
 * The request an earlier run left accepted for this round and model, to fetch instead of paying
 * again; one of another round or model counts as spent.
 */
function requestToRecover(ctx: Ctx, state: State, iteration: number): string | undefined {
  const own = ownOf(ctx, state.spec);
  const pending = state.record.pending;
  const earlier = state.recoverRequestId;
  // Tried once: if it cannot be recovered, this run pays for a new request instead.
  delete state.recoverRequestId;
  const recoverRequestId = earlier !== undefined && pending?.iteration === iteration &&
      pending.model === own.model
    ? earlier
    : undefined;
  if (earlier !== undefined && recoverRequestId === undefined) {
    record(state, { type: "request-charged", reason: EARLIER_RUN });
  }
  return recoverRequestId;
}

/** What the generator is asked for this round, before the edit, recovery and callbacks. */
function generateRequest(
  ctx: Ctx,
  state: State,
  iteration: number,
  prompt: string,
  signal: AbortSignal,
): GenerateRequest {
  const own = ownOf(ctx, state.spec);
  const { negativePrompt, steps } = state.spec.settings ?? {};
  return {
    prompt,
    spec: state.spec,
    iteration,
    width: own.width,
    height: own.height,
    seed: ctx.seedFor(state.spec, iteration),
    model: own.model,
    format: ctx.format,
    ...(negativePrompt !== undefined && { negativePrompt }),
    ...(steps !== undefined && { steps }),
    signal,
  };
}

/**
 * The generation's request on record (`pending`) while the call runs: saved when the client names
 * it or the service accepts it, and settled when the call fails.
 */
function pendingRequests(ctx: Ctx, state: State, iteration: number, edit: boolean) {
  const model = ownOf(ctx, state.spec).model;
  let pendingSave: Promise<void> = Promise.resolve();
  let accepted: string | undefined;
  let submitting: string | undefined;
  const pendingOf = (requestId: string) => ({
    iteration,
    model,
    requestId,
    acceptedAt: ctx.isoNow(),
    // Billed from here on even if this process dies before the result: the estimate counts.
    costUsd: estimateFor(ctx, "generate", state.spec, edit),
  });
  return {
    // A request the client names itself is on disk before it is sent (see `onSubmitting`).
    onSubmitting: async (requestId: string) => {
      submitting = requestId;
      record(state, { type: "request-recorded", pending: pendingOf(requestId) });
      await saveRecord(ctx, state);
    },
    onAccepted: (requestId: string) => {
      accepted = requestId;
      // The service took the request, key and model included: others may go side by side.
      ctx.gates.generate.succeeded();
      record(state, { type: "request-recorded", pending: pendingOf(requestId) });
      pendingSave = saveRecord(ctx, state).catch((error) =>
        log.warn("Could not record the accepted request {requestId} of {promptId}: {reason}", {
          promptId: state.spec.id,
          requestId,
          reason: messageOf(error),
        })
      );
    },
    saving: () => pendingSave,
    failed: (error: unknown, signal: AbortSignal, recovering: boolean) =>
      settleFailedRequest(state, error, signal, recovering, { accepted, submitting }),
  };
}

/** What a failed generation leaves on record of its request: kept, charged, or removed. */
function settleFailedRequest(
  state: State,
  error: unknown,
  signal: AbortSignal,
  recovering: boolean,
  { accepted, submitting }: { accepted: string | undefined; submitting: string | undefined },
): void {
  const pending = state.record.pending?.requestId;
  if (recovering) {
    // What fal billed for it, the error says when it knows; else its estimate counts.
    record(
      state,
      billedCost(error) > 0
        ? { type: "request-dropped" }
        : { type: "request-charged", reason: EARLIER_RUN },
    );
  } else if (accepted !== undefined && pending === accepted) {
    // Cut off (a hard stop): fal may bill what it had started. Otherwise the request failed
    // on its own terms, and what it billed, the error carries.
    record(
      state,
      signal.aborted
        ? { type: "request-charged", reason: "cancelled by a hard stop after fal accepted it" }
        : { type: "request-dropped" },
    );
  } else if (submitting !== undefined && pending === submitting) {
    // Recorded, then refused or never answered: a hard stop keeps it, as the service may have it.
    if (!signal.aborted) record(state, { type: "request-dropped" });
  }
}

/** The generation's step record before the stage fills in attempts and duration. */
function imageStep(ctx: Ctx, image: GeneratedImage, startedAt: string): StepRecord {
  return {
    provider: ctx.generator.name,
    model: image.model,
    durationMs: 0,
    attempts: 0,
    costUsd: image.costUsd,
    ...(image.costUnknown && { costUnknown: true }),
    startedAt,
    ...(image.requestId !== undefined && { requestId: image.requestId }),
    ...(image.modelVersion !== undefined && { modelVersion: image.modelVersion }),
    ...(image.batch && { batch: true }),
  };
}

/** The round a saved image makes: what was drawn and how (its step is added when it is kept). */
function imageIteration(
  iteration: number,
  prompt: string,
  image: GeneratedImage,
  saved: { file: string; width: number; height: number },
  action: Partial<IterationRecord>,
): IterationRecord {
  return {
    iteration,
    prompt,
    ...(image.seed !== undefined && { seed: image.seed }),
    model: image.model,
    image: saved.file,
    width: saved.width,
    height: saved.height,
    ...(image.queueMs !== undefined && { queueMs: image.queueMs }),
    ...(image.inferenceMs !== undefined && { inferenceMs: image.inferenceMs }),
    ...(image.nsfw !== undefined && { nsfw: image.nsfw }),
    ...(image.url !== undefined && { imageUrl: image.url }),
    ...action,
    steps: {},
  };
}

const EARLIER_RUN = "accepted before an earlier run stopped; its result could not be fetched";

/** What the round before `iteration` decided: the image this one edits, if it is an edit. */
export function editSource(
  ctx: Ctx,
  state: State,
  iteration: number,
): { source: EditSource; of: number } | undefined {
  const next = state.record.iterations.find((r) => r.iteration === iteration - 1)?.next;
  if (next?.action !== "edit" || next.instruction === undefined) return undefined;
  // The best image so far, not just the last: an edit builds on what works best.
  const best = bestIteration(state.record);
  if (best?.image === undefined) return undefined;
  return {
    of: best.iteration,
    source: {
      imagePath: ctx.sink.imagePath(state.record, best.image),
      instruction: next.instruction,
      ...(best.imageUrl !== undefined && { imageUrl: best.imageUrl }),
    },
  };
}

/** The fields that say how a round was made. */
function actionOf(
  state: State,
  iteration: number,
  edit: { source: EditSource; of: number } | undefined,
): Partial<IterationRecord> {
  if (iteration === 1) return {};
  const next = state.record.iterations.find((r) => r.iteration === iteration - 1)?.next;
  const note = next?.note !== undefined && { note: next.note };
  if (edit !== undefined) {
    return {
      action: "edit",
      editOf: edit.of,
      instruction: edit.source.instruction,
      ...(next && { actionReason: next.reason }),
      ...note,
    };
  }
  return { action: "redraw", ...(next && { actionReason: next.reason }), ...note };
}

export async function briefStep(ctx: Ctx, state: State, signal: AbortSignal): Promise<StepResult> {
  const startedAt = ctx.isoNow();
  const result = await ctx.critic.brief!({ spec: state.spec, signal });
  const brief = briefSchema.parse(result.brief);
  return answered(ctx.critic.name, result, startedAt, { kind: "brief", brief });
}

export async function critiqueStep(
  ctx: Ctx,
  state: State,
  iteration: number,
  signal: AbortSignal,
): Promise<StepResult> {
  const startedAt = ctx.isoNow();
  const it = currentIteration(state, iteration);
  const result = await ctx.critic.critique({
    imagePath: ctx.sink.imagePath(state.record, it.image!),
    format: ctx.format,
    prompt: it.prompt,
    spec: state.spec,
    // A brief the service wrote no usable check for judges nothing: the critique goes without.
    ...(state.record.brief?.checks.length && { brief: state.record.brief }),
    iteration,
    signal,
  });
  return answered(ctx.critic.name, result, startedAt, {
    kind: "critique",
    iteration,
    critique: result.critique,
  });
}

export async function refineStep(
  ctx: Ctx,
  state: State,
  iteration: number,
  signal: AbortSignal,
): Promise<StepResult> {
  const startedAt = ctx.isoNow();
  const it = currentIteration(state, iteration);
  const history = state.record.iterations
    .filter((r) => r.critique)
    .map((r) => ({ iteration: r.iteration, prompt: r.prompt, critique: r.critique! }));
  const kinds = new Map((state.record.brief?.checks ?? []).map((c) => [c.id, c.kind]));
  const canEdit = ctx.generator.editModel?.(ownOf(ctx, state.spec).model) !== undefined;
  const next = chooseNextRound(
    ctx.refineMode ?? "auto",
    canEdit,
    state.record.iterations.filter((r) => r.iteration <= iteration),
    kinds,
  );
  // The user's notes (rejects in the studio) come first: they say what the critic missed.
  const notes = ctx.steering?.pendingNotes(state.spec.id) ?? [];
  const noteTexts = notes.map((e) => e.action.type === "reject" ? e.action.note : "");
  const result = await ctx.refiner.refine({
    ...(notes.length > 0 && { notes: noteTexts }),
    prompt: it.prompt,
    spec: state.spec,
    critique: it.critique!,
    history,
    iteration,
    signal,
    mode: next.action === "edit" ? "edit" : "regenerate",
  });
  const instruction = result.instruction?.trim();
  // An edit without an instruction would only change the seed's noise: draw anew instead.
  const decided: NextRound = next.action === "edit" && !instruction
    ? { action: "redraw", reason: "the refiner wrote no edit instruction" }
    : { ...next, ...(next.action === "edit" && { instruction: instruction! }) };
  return answered(ctx.refiner.name, result, startedAt, {
    kind: "refinement",
    iteration,
    prompt: result.prompt,
    changes: result.changes,
    next: notes.length > 0 ? { ...decided, note: noteTexts.join("\n") } : decided,
    notes: notes.map((e) => e.seq),
  });
}

/** What a critic's or refiner's call gave: its step record, its outcome, its service time. */
function answered(
  provider: string,
  result: Parameters<typeof stepRecord>[1] & { serviceMs?: number },
  startedAt: string,
  outcome: StepOutcome,
): StepResult {
  return {
    step: stepRecord(provider, result, startedAt),
    outcome,
    ...(result.serviceMs !== undefined && { serviceMs: result.serviceMs }),
  };
}

/** A step's record before the stage fills in attempts and duration. */
function stepRecord(
  provider: string,
  result: {
    model: string;
    modelVersion?: string;
    costUsd: number;
    requestId?: string;
    usage?: TokenUsage;
    normalised?: string[];
    batch?: true;
  },
  startedAt: string,
): StepRecord {
  return {
    provider,
    model: result.model,
    ...(result.modelVersion !== undefined && { modelVersion: result.modelVersion }),
    durationMs: 0,
    attempts: 0,
    costUsd: result.costUsd,
    startedAt,
    ...(result.requestId !== undefined && { requestId: result.requestId }),
    ...(result.usage !== undefined && { usage: result.usage }),
    ...(result.normalised !== undefined && { normalised: result.normalised }),
    ...(result.batch && { batch: true }),
  };
}

function currentIteration(state: State, iteration: number): IterationRecord {
  const it = state.record.iterations.find((r) => r.iteration === iteration);
  if (!it) throw new Error(`Cannot find iteration ${iteration} of '${state.spec.id}'`);
  return it;
}
