/**
 * The offline refiner: rewrites a prompt to strengthen what the critique found missing. Cues the
 * critique names in quotes get an emphasis word ("vivid", "prominent", "heavy"); cues in the
 * prompt's context (title, scene, mood) that the prompt leaves out are added; cues that earlier
 * rounds' prompts carried are kept at least as strong, so a refinement never undoes a fix.
 *
 * @module
 */
import type {
  PromptChange,
  PromptRefiner,
  RefineRequest,
  RefineResult,
} from "../providers/provider.ts";
import {
  contextText,
  type Cue,
  cueKey,
  EMPHASIS_WORDS,
  extractCues,
  mergeCues,
  strengthOf,
} from "./scene_cues.ts";

/** Model id the local refiner reports. */
export const LOCAL_REFINER_MODEL = "local-rules-v1";

/** Strength the refiner stops raising a cue at; past it prompts only get longer. */
export const MAX_REFINED_STRENGTH = 3.5;

/**
 * Creates the offline refiner (`local`).
 *
 * @example
 * ```ts
 * import { createLocalRefiner } from "./refiner.ts";
 * if (createLocalRefiner().name !== "local") throw new Error("unexpected name");
 * ```
 */
export function createLocalRefiner(): PromptRefiner {
  return { name: "local", refine: (request) => Promise.resolve(refineLocal(request)) };
}

/** Refines one prompt; see {@linkcode createLocalRefiner}. */
export function refineLocal(request: RefineRequest): RefineResult {
  request.signal.throwIfAborted();
  const { prompt, changes } = refinePrompt(request);
  if (request.mode !== "edit") return { prompt, changes, model: LOCAL_REFINER_MODEL, costUsd: 0 };
  // The edit asks for what the failed checks say would fix them, nothing more.
  const fixes = (request.critique.checks ?? []).filter((c) => !c.passed && c.fix).map((c) =>
    c.fix!
  );
  const instruction = [...new Set(fixes.length > 0 ? fixes : request.critique.suggestions)]
    .slice(0, 4).join("; ");
  return {
    prompt,
    changes,
    ...(instruction !== "" && { instruction }),
    model: LOCAL_REFINER_MODEL,
    costUsd: 0,
  };
}

/** The words a critique puts in quotes, each mapped to the cues it names. */
export function flaggedCues(problems: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const problem of problems) {
    for (const match of problem.matchAll(/'([^']+)'/g)) {
      for (const cue of extractCues(match[1]!)) {
        const key = cueKey(cue);
        if (!out.has(key)) out.set(key, problem);
      }
    }
  }
  return out;
}

const EMPHASIS_BY_KIND: Record<string, readonly string[]> = {
  colour: ["vivid", "saturated", "intense"],
  light: ["bright", "brilliant", "glowing"],
  subject: ["prominent", "large", "dominant"],
  rain: ["heavy", "dense", "driving"],
  snow: ["heavy", "dense", "thick"],
  mist: ["thick", "dense", "heavy"],
  storm: ["intense", "violent", "raging"],
  clear: ["deep", "vivid", "rich"],
  time: ["strong", "intense", "deep"],
  mood: ["deeply", "intensely", "profoundly"],
};

const LIGHTS = new Set(["sun", "moon", "stars", "lightning", "windows", "signs"]);

/** How a missing subject is written when added, where its own word would read badly. */
const SUBJECT_PHRASES: Record<string, string> = {
  snowcaps: "snow-capped peaks",
  rays: "rays of light",
  reflections: "reflections",
  shimmer: "heat shimmer",
  windows: "lit windows",
};

const TIME_NOUNS: Record<string, string> = {
  dawn: "dawn light",
  morning: "morning light",
  noon: "midday light",
  afternoon: "afternoon light",
  sunset: "sunset glow",
  dusk: "dusk light",
  night: "night darkness",
};

function emphasisFor(cue: Cue): readonly string[] {
  if (cue.kind === "subject" && LIGHTS.has(cue.name)) return EMPHASIS_BY_KIND.light!;
  if (cue.kind === "weather") return EMPHASIS_BY_KIND[cue.name] ?? EMPHASIS_BY_KIND.subject!;
  return EMPHASIS_BY_KIND[cue.kind] ?? EMPHASIS_BY_KIND.subject!;
}

/** Computes the refined prompt and the list of changes. */
export function refinePrompt(request: RefineRequest): { prompt: string; changes: PromptChange[] } {
  const { spec, critique, history } = request;
  let prompt = request.prompt.trim();
  const changes: PromptChange[] = [];
  const flagged = flaggedCues(critique.problems);
  // Cues flagged in more than one round need more than one more emphasis word.
  const timesFlagged = new Map<string, number>();
  for (const round of history) {
    for (const key of flaggedCues(round.critique.problems).keys()) {
      timesFlagged.set(key, (timesFlagged.get(key) ?? 0) + 1);
    }
  }
  const wanted = mergeCues(extractCues(spec.prompt), extractCues(contextText(spec)));
  const earlier = mergeCues(...history.map((h) => extractCues(h.prompt)));
  const clauses: { text: string; change: PromptChange }[] = [];
  const moods: Cue[] = [];

  const all = mergeCues(wanted, earlier, extractCues(prompt));
  for (const cue of all) {
    const key = cueKey(cue);
    const now = strengthOf(extractCues(prompt), cue.kind, cue.name);
    const before = strengthOf(earlier, cue.kind, cue.name);
    const problem = flagged.get(key);
    let target = now;
    let reason = "";
    if (problem !== undefined) {
      const repeats = timesFlagged.get(key) ?? 1;
      target = Math.max(now + (repeats >= 2 && now >= 2 ? 1.5 : 1), 2);
      reason = `the critique found: ${problem}`;
    }
    if (before > target) {
      target = before;
      reason = `an earlier round's prompt had it this strong; weakening it would undo a fix`;
    }
    if (now === 0 && target === 0 && isWanted(wanted, cue)) {
      target = 1;
      reason = `the prompt's ${contextSource(spec, cue)} asks for it`;
    }
    target = Math.min(target, MAX_REFINED_STRENGTH);
    if (target <= now) continue;
    if (cue.kind === "mood" && now === 0) {
      moods.push({ ...cue, strength: target });
      continue;
    }
    if (now > 0 && cue.kind !== "time" && cue.kind !== "mood") {
      const edited = strengthenInPlace(prompt, cue, target);
      if (edited) {
        prompt = edited.prompt;
        changes.push({ change: edited.change, reason });
        continue;
      }
    }
    const text = phraseFor(cue, now > 0 ? target - 0.5 : target);
    clauses.push({ text, change: { change: `added '${text}'`, reason } });
  }
  if (moods.length > 0) {
    const text = moods.map((m) => withEmphasis(m, m.words[0] ?? m.name, m.strength)).join(" and ") +
      " mood";
    clauses.push({
      text,
      change: {
        change: `added '${text}'`,
        reason: `the prompt's mood asks for ${moods.map((m) => `'${m.words[0]}'`).join(" and ")}${
          moods.some((m) => flagged.has(cueKey(m))) ? " and the critique found the mood off" : ""
        }`,
      },
    });
  }
  for (const clause of clauses) {
    prompt = `${prompt.replace(/[\s,.;]+$/, "")}, ${clause.text}`;
    changes.push(clause.change);
  }
  return { prompt, changes };
}

function isWanted(wanted: readonly Cue[], cue: Cue): boolean {
  return wanted.some((w) => cueKey(w) === cueKey(cue));
}

function contextSource(spec: RefineRequest["spec"], cue: Cue): string {
  for (const [field, text] of [["scene", spec.scene], ["mood", spec.mood], ["title", spec.title]]) {
    if (text !== undefined && extractCues(text).some((c) => cueKey(c) === cueKey(cue))) {
      return `${field} ('${text}')`;
    }
  }
  return "original text";
}

/** Writes a cue with enough emphasis words in front to reach `strength` on its own. */
function withEmphasis(cue: Cue, word: string, strength: number): string {
  const pool = emphasisFor(cue);
  const count = Math.max(0, Math.min(pool.length, Math.ceil(strength - 1)));
  return [...pool.slice(0, count), word].join(" ");
}

function phraseFor(cue: Cue, strength: number): string {
  const word = cue.words[0] ?? cue.name;
  if (cue.kind === "time") {
    return withEmphasis(cue, TIME_NOUNS[cue.name] ?? word, Math.max(2, strength));
  }
  if (cue.kind === "colour") {
    const on = cue.subjects[0];
    return withEmphasis(cue, on ? `${word} ${on}` : word, strength);
  }
  if (cue.kind === "subject") {
    return withEmphasis(cue, SUBJECT_PHRASES[cue.name] ?? word, strength);
  }
  if (cue.kind === "weather" && cue.name === "clear") {
    return withEmphasis(cue, "clear sky", strength);
  }
  return withEmphasis(cue, word, strength);
}

/**
 * Puts emphasis words in front of the noun phrase holding the cue's first mention, and checks
 * the cue really got stronger; undefined when it did not (then a clause is added instead).
 */
function strengthenInPlace(
  prompt: string,
  cue: Cue,
  target: number,
): { prompt: string; change: string } | undefined {
  const now = strengthOf(extractCues(prompt), cue.kind, cue.name);
  const word = cue.words.find((w) => new RegExp(`\\b${escape(w)}\\b`, "i").test(prompt));
  if (!word) return undefined;
  const match = new RegExp(`\\b${escape(word)}\\b`, "i").exec(prompt)!;
  const start = phraseStart(prompt, match.index);
  const pool = emphasisFor(cue).filter((w) =>
    !new RegExp(`\\b${w}\\b`, "i").test(prompt.slice(start, match.index))
  );
  const words: string[] = [];
  for (const candidate of pool) {
    if (now + words.length >= target) break;
    words.push(candidate);
  }
  if (now + words.length < target) words.unshift("very");
  if (words.length === 0) return undefined;
  const inserted = words.join(" ");
  const head = prompt.slice(0, start);
  const tail = prompt.slice(start);
  const edited = head + inserted + " " + (start === 0 ? lowerFirst(tail) : tail);
  const finalText = start === 0 ? upperFirst(edited) : edited;
  if (strengthOf(extractCues(finalText), cue.kind, cue.name) <= now) return undefined;
  return { prompt: finalText, change: `added '${inserted}' before '${word}'` };
}

/** Start of the adjective run in front of `index`: back over cue and emphasis words only. */
function phraseStart(text: string, index: number): number {
  let start = index;
  for (let steps = 0; steps < 2; steps++) {
    const before = /([A-Za-z'-]+)\s+$/.exec(text.slice(0, start));
    if (!before) break;
    const word = before[1]!.toLowerCase();
    const known = word in EMPHASIS_WORDS || extractCues(word).length > 0;
    if (!known) break;
    start = before.index;
  }
  return start;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function lowerFirst(text: string): string {
  return /^[A-Z][a-z]/.test(text) ? text[0]!.toLowerCase() + text.slice(1) : text;
}

function upperFirst(text: string): string {
  return text.length === 0 ? text : text[0]!.toUpperCase() + text.slice(1);
}
