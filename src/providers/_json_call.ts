/**
 * One question to a JSON-answering model, as every {@linkcode JsonClient} asks it: at most two
 * attempts (a cut-off or malformed answer gets one more, anything else is final), what the
 * attempts used and cost added up, and the answer read. Only sending one attempt and reading its
 * finish differ by service.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { ProviderError } from "../errors.ts";
import type { Parsed } from "./_llm_answers.ts";
import type { JsonAnswer, JsonQuestion } from "./_llm_roles.ts";
import type { TokenUsage } from "./provider.ts";

/** What one question's attempts used, cost and learned so far. */
export interface JsonCall {
  usage: TokenUsage;
  /** What the answers so far were billed, in USD (at the batch price when from a batch). */
  spent: number;
  requestId: string | undefined;
  /** The model that answered, where the service names one other than the model asked. */
  modelVersion: string | undefined;
  /** Output tokens the next attempt may use. */
  limit: number;
  /** Whether the last answer came from a batch job. */
  inBatch: boolean;
  /** The last answer's latency at the service, where the client measured it. */
  serviceMs?: number | undefined;
}

/** One attempt's outcome: the answer, or the problem a second attempt may fix. */
export type AttemptResult<T> = { answer: JsonAnswer<T> } | { problem: string };

/** How a client names itself in messages, and sends and reads one attempt. */
export interface JsonAsker {
  /** Provider name for errors and the log, e.g. `gemini`. */
  provider: string;
  /** The service as messages name it: `Gemini`, `OpenAI`, `The server at …`. */
  server: string;
  model: string;
  maxOutputTokens: number;
  attempt<T>(question: JsonQuestion<T>, call: JsonCall, attempt: number): Promise<AttemptResult<T>>;
}

/** Asks `question` through `asker`, twice at most; throws a final error with what was billed. */
export async function askJson<T>(
  asker: JsonAsker,
  question: JsonQuestion<T>,
): Promise<JsonAnswer<T>> {
  const call: JsonCall = {
    usage: { inputTokens: 0, outputTokens: 0 },
    spent: 0,
    requestId: undefined,
    modelVersion: undefined,
    limit: asker.maxOutputTokens,
    inBatch: false,
  };
  let problem = "";
  for (let attempt = 1; attempt <= 2; attempt++) {
    if (question.signal.aborted) throw question.signal.reason;
    const read = await asker.attempt(question, call, attempt);
    if ("answer" in read) return read.answer;
    problem = read.problem;
  }
  throw new ProviderError(
    `${asker.server} gave no usable ${question.operation} in 2 attempts: ${problem}`,
    { provider: asker.provider, retryable: false, ...spentSoFar(call) },
  );
}

/**
 * The most tokens one question can use, to reserve before it is asked: {@linkcode askJson} may
 * send it twice, the second time with double the room.
 */
export function mostTokens(inputTokens: number, maxOutputTokens: number): TokenUsage {
  return { inputTokens: 2 * inputTokens, outputTokens: maxOutputTokens + 2 * maxOutputTokens };
}

/** What the answers so far were billed, and the last request id, for an error that ends a call. */
export function spentSoFar(call: JsonCall): { requestId?: string; costUsd?: number } {
  return {
    ...(call.requestId !== undefined && { requestId: call.requestId }),
    ...(call.spent > 0 && { costUsd: call.spent }),
  };
}

/** The answer `checked` holds, with what the call cost; a lenient reading is logged. */
export function answerOf<T>(
  asker: Pick<JsonAsker, "provider" | "server" | "model">,
  operation: string,
  checked: Parsed<T>,
  call: JsonCall,
): AttemptResult<T> {
  if (!checked.ok) return { problem: checked.problem };
  if (checked.normalised.length > 0) {
    getLogger(["retake", asker.provider]).warn(
      "{server}'s {operation} answer was read leniently: {normalised}",
      {
        server: asker.server,
        operation,
        model: asker.model,
        normalised: checked.normalised.join("; "),
        requestId: call.requestId,
      },
    );
  }
  return {
    answer: {
      value: checked.value,
      meta: {
        model: asker.model,
        ...(call.modelVersion !== undefined && { modelVersion: call.modelVersion }),
        costUsd: call.spent,
        usage: call.usage,
        ...(call.requestId !== undefined && { requestId: call.requestId }),
        ...(call.inBatch && { batch: true as const }),
        ...(call.serviceMs !== undefined && { serviceMs: call.serviceMs }),
        ...(checked.normalised.length > 0 && { normalised: checked.normalised }),
      },
    },
  };
}
