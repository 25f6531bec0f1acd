/**
 * Reading an LLM critic's or refiner's JSON answer. The rule: an answer that fits the JSON
 * Schema that was sent is used, and so is one that a person would read the same way (a score as
 * `"7.5"`, `10.2` for a 0–10 score, a check id the brief did not use, text around the JSON). What
 * had to be read leniently is named in `normalised`, which the run records with the step; only an
 * answer that cannot be used at all (no JSON, no score, no prompt) is asked again, and paid again.
 *
 * The schemas sent to the services (`gemini_schema.ts`, and their strict OpenAI form) carry no
 * rule stricter than what is checked here: no id length, no minimum count of checks.
 *
 * @module
 */
import { type Brief, CHECK_KINDS, type CheckKind, CRITERIA, type Critique } from "./critique.ts";
import { PROMPT_LIMITS } from "../prompts/mod.ts";
import { clip } from "./_llm_prompts.ts";
import type { Refinement } from "./gemini/schema.ts";

/** A usable answer and what had to be read leniently, or why it cannot be used. */
export type Parsed<T> =
  | { ok: true; value: T; normalised: string[] }
  | { ok: false; problem: string };

/**
 * Turns a parsed JSON value into the answer, noting every lenient reading with `note`; returns
 * a {@linkcode Problem} when the value cannot be used.
 */
export type AnswerReader<T> = (data: unknown, note: (what: string) => void) => T | Problem;

/** Why an answer cannot be used. */
export class Problem {
  constructor(readonly text: string) {}
}

/**
 * Parses an answer's text as JSON (taking the JSON out of a code fence or prose around it) and
 * reads it with `reader`.
 *
 * @example
 * ```ts
 * import { parseAnswer, readRefinement } from "./_llm_answers.ts";
 * const parsed = parseAnswer('Sure! {"prompt": "a red door", "changes": []}', readRefinement(false, ""));
 * if (!parsed.ok || parsed.value.prompt !== "a red door") throw new Error("expected the prompt");
 * if (parsed.normalised.length !== 1) throw new Error("expected the prose to be noted");
 * ```
 */
export function parseAnswer<T>(
  text: string | null | undefined,
  reader: AnswerReader<T>,
): Parsed<T> {
  if (text === undefined || text === null || text.trim() === "") {
    return { ok: false, problem: "the answer had no text" };
  }
  const normalised: string[] = [];
  const note = (what: string) => {
    if (!normalised.includes(what)) normalised.push(what);
  };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    const inner = _embeddedJson(text);
    if (inner === undefined) {
      return {
        ok: false,
        problem: `the answer is not valid JSON (${(error as Error).message}): '${clip(text, 80)}'`,
      };
    }
    data = inner;
    note("the JSON was taken from text around it");
  }
  const value = reader(data, note);
  if (value instanceof Problem) return { ok: false, problem: value.text };
  return { ok: true, value, normalised };
}

/** The first JSON object in `text` (a ```json fence, or prose before and after), if any. */
function _embeddedJson(text: string): unknown {
  const fence = /```(?:json)?\s*([\s\S]*?)```/i.exec(text);
  const candidates = fence?.[1] !== undefined ? [fence[1]] : [];
  const start = text.indexOf("{");
  const end = text.lastIndexOf("}");
  if (start >= 0 && end > start) candidates.push(text.slice(start, end + 1));
  for (const candidate of candidates) {
    try {
      const value = JSON.parse(candidate);
      if (value !== null && typeof value === "object") return value;
    } catch {
      // Not this one: try the next reading.
    }
  }
  return undefined;
}

function _object(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined;
}

/** A 0–10 score from a number or a numeric string (`"7.5"`, `"8/10"`), clamped to 0–10. */
function _score(value: unknown, field: string, note: (what: string) => void): number | undefined {
  let n: number | undefined;
  if (typeof value === "number") n = value;
  else if (typeof value === "string") {
    const match = /^\s*(-?\d+(?:\.\d+)?)\s*(?:\/\s*10\s*)?$/.exec(value);
    if (match) {
      n = Number(match[1]);
      note(`'${field}' was a string`);
    }
  }
  if (n === undefined || !Number.isFinite(n)) return undefined;
  if (n < 0 || n > 10) {
    note(`'${field}' was ${n}, outside 0–10`);
    return Math.min(10, Math.max(0, n));
  }
  return n;
}

function _text(value: unknown, field: string, note: (what: string) => void): string {
  if (typeof value === "string") return value;
  if (value === undefined || value === null) {
    note(`'${field}' was missing`);
    return "";
  }
  note(`'${field}' was not text`);
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function _texts(value: unknown, field: string, note: (what: string) => void): string[] {
  if (value === undefined || value === null) {
    note(`'${field}' was missing`);
    return [];
  }
  if (!Array.isArray(value)) {
    note(`'${field}' was not a list`);
    return typeof value === "string" && value.trim() !== "" ? [value] : [];
  }
  const texts = value.map((item) =>
    typeof item === "string" ? item : _text(item, `${field}[]`, note)
  );
  return texts.filter((t) => t.trim() !== "");
}

function _boolean(value: unknown, field: string, note: (what: string) => void): boolean {
  if (typeof value === "boolean") return value;
  const text = String(value).trim().toLowerCase();
  note(`'${field}' was not true or false`);
  return text === "true" || text === "yes" || text === "1" || text === "pass" ||
    text === "passed";
}

/** Reads a brief: its checks, with ids made unique and questions that are empty dropped. */
export const readBrief: AnswerReader<Brief> = (data, note) => {
  const checks = _object(data)?.checks;
  if (!Array.isArray(checks)) return new Problem("the answer has no list of checks");
  const out: Brief["checks"] = [];
  const ids = new Set<string>();
  for (const [index, raw] of checks.entries()) {
    const check = _object(raw);
    const question = typeof check?.question === "string" ? check.question.trim() : "";
    if (question === "") {
      note("a check without a question was dropped");
      continue;
    }
    if (out.length === 12) {
      note("checks after the 12th were dropped");
      break;
    }
    let id = typeof check?.id === "string" || typeof check?.id === "number"
      ? String(check.id).trim()
      : "";
    if (id === "" || ids.has(id)) {
      note("a check's id was missing or repeated");
      id = `c${index + 1}`;
      while (ids.has(id)) id = `${id}_`;
    }
    ids.add(id);
    out.push({ id, question, kind: _kind(check?.kind, note) });
  }
  return { checks: out };
};

function _kind(value: unknown, note: (what: string) => void): CheckKind {
  const text = typeof value === "string" ? value.trim().toLowerCase() : "";
  const known = CHECK_KINDS.find((k) => k === text) ??
    CHECK_KINDS.find((k) => text !== "" && (text.startsWith(k) || k.startsWith(text)));
  if (known !== undefined) {
    if (known !== value) note("a check's kind was read as the nearest known kind");
    return known;
  }
  note("a check's kind was unknown and read as 'attribute'");
  return "attribute";
}

/**
 * Reads a critique and lines its answers up with the brief's checks, in the brief's order:
 * answers matched by id (exactly, then ignoring case and spaces, then by position when no id
 * matches and the counts agree); a check answered twice keeps its first answer, one not answered
 * counts as failed, answers to checks the brief does not have are dropped.
 */
export function readCritique(brief: Brief | undefined): AnswerReader<Critique> {
  return (data, note) => {
    const answer = _object(data);
    if (answer === undefined) return new Problem("the answer is not a JSON object");
    const criteriaIn = _object(answer.criteria);
    if (criteriaIn === undefined && answer.criteria !== undefined) {
      note("'criteria' was not an object");
    }
    const scores = Object.fromEntries(
      CRITERIA.map((c) => [c, _score(criteriaIn?.[c], `criteria.${c}`, note)]),
    );
    const known = Object.values(scores).filter((s): s is number => s !== undefined);
    let score = _score(answer.score, "score", note);
    if (score === undefined) {
      if (known.length === 0) return new Problem("the answer has no score the critic gave");
      score = Math.round(known.reduce((a, b) => a + b, 0) / known.length * 10) / 10;
      note("'score' was missing: the mean of the criteria");
    }
    const criteria = Object.fromEntries(CRITERIA.map((c) => {
      if (scores[c] !== undefined) return [c, scores[c]];
      note(`'criteria.${c}' was missing: the overall score`);
      return [c, score];
    })) as Critique["criteria"];
    const critique: Critique = {
      score,
      criteria,
      summary: _text(answer.summary, "summary", note),
      strengths: _texts(answer.strengths, "strengths", note),
      problems: _texts(answer.problems, "problems", note),
      suggestions: _texts(answer.suggestions, "suggestions", note),
    };
    if (brief !== undefined && brief.checks.length > 0) {
      critique.checks = _alignChecks(answer.checks, brief, note);
    }
    return critique;
  };
}

function _alignChecks(
  value: unknown,
  brief: Brief,
  note: (what: string) => void,
): NonNullable<Critique["checks"]> {
  const answers = (Array.isArray(value) ? value : []).flatMap((raw) => {
    const a = _object(raw);
    if (a === undefined) return [];
    const fix = typeof a.fix === "string" && a.fix.trim() !== "" ? a.fix : undefined;
    return [{
      id: typeof a.id === "string" || typeof a.id === "number" ? String(a.id) : "",
      passed: _boolean(a.passed, "checks[].passed", note),
      reason: _text(a.reason, "checks[].reason", note),
      ...(fix !== undefined && { fix }),
    }];
  });
  const loose = (id: string) => id.toLowerCase().replace(/[\s_-]+/g, "");
  const exact = new Map<string, typeof answers[number]>();
  const byLoose = new Map<string, typeof answers[number]>();
  for (const a of answers) {
    if (exact.has(a.id)) note("a check was answered twice: the first answer counts");
    else exact.set(a.id, a);
    if (!byLoose.has(loose(a.id))) byLoose.set(loose(a.id), a);
  }
  const matched = brief.checks.map((c) => exact.get(c.id) ?? byLoose.get(loose(c.id)));
  const byPosition = matched.every((m) => m === undefined) &&
    answers.length === brief.checks.length;
  if (byPosition) note("the checks' answers were matched to the brief by position");
  const used = new Set<unknown>();
  const aligned = brief.checks.map((check, i) => {
    const found = byPosition ? answers[i] : matched[i];
    if (found === undefined) {
      note("a check was not answered: it counts as failed");
      return { id: check.id, passed: false, reason: "the critic gave no answer" };
    }
    used.add(found);
    return { ...found, id: check.id };
  });
  if (answers.some((a) => !used.has(a) && exact.get(a.id) === a)) {
    note("answers to checks the brief does not have were dropped");
  }
  return aligned;
}

/**
 * Reads a refinement: the next prompt (cut at a word to the prompt limit when longer; the
 * round's own prompt, `current`, when the answer's is empty), its changes, and for an edit the
 * instruction.
 */
export function readRefinement(edit: boolean, current: string): AnswerReader<Refinement> {
  return (data, note) => {
    const answer = _object(data);
    if (answer === undefined) return new Problem("the answer is not a JSON object");
    if (typeof answer.prompt !== "string") return new Problem("the answer has no prompt");
    let prompt = answer.prompt.trim();
    if (prompt === "") {
      note("'prompt' was empty: the round's prompt is kept");
      prompt = current;
    }
    const max = PROMPT_LIMITS.promptChars;
    if (prompt.length > max) {
      const cut = prompt.slice(0, max);
      const space = cut.lastIndexOf(" ");
      prompt = (space > max * 0.8 ? cut.slice(0, space) : cut).trim();
      note(`'prompt' was longer than ${max} characters: cut at a word`);
    }
    const changesIn = answer.changes;
    if (!Array.isArray(changesIn)) note("'changes' was missing");
    const changes = (Array.isArray(changesIn) ? changesIn : []).flatMap((raw) => {
      if (typeof raw === "string") {
        note("a change was text, not an object");
        return raw.trim() === "" ? [] : [{ change: raw, reason: "" }];
      }
      const c = _object(raw);
      if (c === undefined) return [];
      return [{
        change: _text(c.change, "changes[].change", note),
        reason: _text(c.reason, "changes[].reason", note),
      }];
    });
    const refinement: Refinement = { prompt, changes };
    const instruction = typeof answer.instruction === "string" ? answer.instruction.trim() : "";
    // Without an instruction the pipeline draws the next image anew instead of editing.
    if (edit && instruction === "") note("'instruction' was missing: a new drawing");
    if (edit && instruction !== "") refinement.instruction = instruction;
    return refinement;
  };
}
