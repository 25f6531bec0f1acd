/**
 * The offline refiner: rewrites the original prompt to strengthen what the critique found
 * missing. Cues the critique names in quotes get an emphasis word in front of their own word
 * ("vivid", "prominent", "heavy"); cues in the prompt's context (title, scene, mood) that the
 * prompt leaves out are added as short clauses; cues that earlier rounds' prompts carried are
 * kept at least as strong, so a refinement never undoes a fix. Each round starts again from the
 * original, within a length budget, so refinements never pile up.
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
  tokenize,
} from "./scene_cues.ts";
import { cueNoun } from "./wording.ts";

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
  const notes = request.notes?.map((n) => n.trim()).filter((n) => n !== "") ?? [];
  const refined = refinePrompt(request);
  // The user's note leads the prompt: the words the generator weighs most.
  const prompt = notes.length > 0 ? `${notes.join(", ")}, ${refined.prompt}` : refined.prompt;
  const changes = notes.length > 0
    ? [
      ...notes.map((note) => ({ change: `put first '${note}'`, reason: "the user's note" })),
      ...refined.changes,
    ]
    : refined.changes;
  if (request.mode !== "edit") return { prompt, changes, model: LOCAL_REFINER_MODEL, costUsd: 0 };
  // The edit asks for what the failed checks say would fix them, nothing more.
  const fixes = (request.critique.checks ?? []).filter((c) => !c.passed && c.fix).map((c) =>
    c.fix!
  );
  const instruction = [
    ...new Set([...notes, ...(fixes.length > 0 ? fixes : request.critique.suggestions)]),
  ].slice(0, 4 + notes.length).join("; ");
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

/**
 * A refined prompt holds at most this many times the original prompt's words (counted as runs
 * of non-space characters, so "snow-capped" is one word and punctuation is none).
 */
export const MAX_LENGTH_RATIO = 1.5;

/** Most emphasis words in front of one noun; past two a phrase reads as a pile of adjectives. */
const MAX_RUN_EMPHASIS = 2;

const EMPHASIS_BY_KIND: Record<string, readonly string[]> = {
  colour: ["vivid", "saturated", "rich", "intense"],
  light: ["bright", "brilliant", "glowing", "blazing"],
  subject: ["prominent", "large"],
  rain: ["heavy", "dense", "driving"],
  snow: ["heavy", "dense", "thick"],
  mist: ["thick", "dense", "heavy"],
  storm: ["intense", "violent", "raging"],
  clear: ["deep", "vivid", "rich"],
  time: ["strong", "deep", "rich"],
  mood: ["deeply", "intensely", "profoundly"],
};

/** Words that give a size, and the emphasis words that would contradict one. */
const SIZE_WORDS = new Set(["small", "tiny", "little", "single", "lone", "distant", "narrow"]);
const GROWING = new Set(["large", "big", "huge", "dominant"]);

const LIGHTS = new Set(["sun", "moon", "stars", "lightning", "windows", "signs"]);

/** How a missing subject is written when added, where its own word would read badly. */
const SUBJECT_PHRASES: Record<string, string> = {
  snowcaps: "snow-capped peaks",
  rays: "rays of light",
  reflections: "reflections",
  shimmer: "heat shimmer",
  windows: "lit windows",
  sky: "open sky",
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

/** One cue the refined prompt should carry at a strength, and why. */
interface Plan {
  cue: Cue;
  target: number;
  reason: string;
  /** Higher goes first while the length budget lasts. */
  priority: number;
}

/** A refined prompt in the making: the original text, edited in place, then added clauses. */
interface Draft {
  text: string;
  clauses: { key: string; text: string }[];
  moods: { word: string; emphasised: boolean }[];
}

/**
 * Computes the refined prompt and the list of changes. Every round rewrites the original
 * prompt rather than appending to the last one: the strengths the cues should have are worked
 * out first (what earlier rounds reached, one more for each cue the critique flags, the
 * context's cues the prompt lacks), then written into the original, most needed first, until
 * the length budget ({@linkcode MAX_LENGTH_RATIO}) is spent. Emphasis goes in front of the
 * cue's own word, no emphasis word twice, so the prompt reads as a description and keeps the
 * original's words in order.
 */
export function refinePrompt(request: RefineRequest): { prompt: string; changes: PromptChange[] } {
  const { spec, critique, history } = request;
  const original = spec.prompt.trim();
  const flagged = flaggedCues(critique.problems);
  const base = extractCues(original);
  const wanted = mergeCues(base, extractCues(contextText(spec)));
  // What earlier rounds' prompts reached, the prompt passed in included: a fix stays.
  const carried = mergeCues(
    ...history.map((h) => extractCues(h.prompt)),
    extractCues(request.prompt),
  );
  const plans: Plan[] = [];
  for (const cue of mergeCues(wanted, carried.filter((c) => flagged.has(cueKey(c))))) {
    const now = strengthOf(base, cue.kind, cue.name);
    const before = Math.min(strengthOf(carried, cue.kind, cue.name), MAX_REFINED_STRENGTH);
    const problem = flagged.get(cueKey(cue));
    // What earlier rounds reached is written first: a new fix that does not fit the length
    // budget waits rather than pushing out an old one, so rounds do not undo each other.
    if (before > now) {
      plans.push({
        cue,
        target: before,
        priority: 3,
        reason: "an earlier round's prompt had it this strong; weakening it would undo a fix",
      });
    }
    if (problem !== undefined) {
      const target = Math.min(Math.max(now, before, 1) + 1, MAX_REFINED_STRENGTH);
      if (target > now) {
        plans.push({ cue, target, priority: 2, reason: `the critique found: ${problem}` });
      }
    } else if (now === 0 && before === 0) {
      plans.push({
        cue,
        target: 1,
        priority: 1,
        reason: `the prompt's ${contextSource(spec, cue)} asks for it`,
      });
    }
  }
  // Stable: within a priority, cues keep the order the critique and the prompt name them.
  const flaggedOrder = [...flagged.keys()];
  const rank = (p: Plan) => {
    const i = flaggedOrder.indexOf(cueKey(p.cue));
    return i < 0 ? flaggedOrder.length : i;
  };
  plans.sort((a, b) => b.priority - a.priority || rank(a) - rank(b));

  const budget = Math.floor(MAX_LENGTH_RATIO * wordCount(original));
  let draft: Draft = { text: original, clauses: [], moods: [] };
  const changes: PromptChange[] = [];
  const moodReasons: string[] = [];
  for (const plan of plans) {
    const { kind, name } = plan.cue;
    const had = strengthOf(extractCues(compose(draft)), kind, name);
    if (had >= plan.target) continue;
    let best: { draft: Draft; change: string; strength: number } | undefined;
    for (const option of options(draft, plan.cue, spec, request.prompt)) {
      const prompt = compose(option.draft);
      if (wordCount(prompt) > budget) continue;
      const cues = extractCues(prompt);
      const strength = strengthOf(cues, kind, name);
      if (strength <= had || (best && strength <= best.strength)) continue;
      if (!bindingsKept(extractCues(compose(draft)), cues)) continue;
      best = { ...option, strength };
      if (strength >= plan.target) break;
    }
    if (!best) continue;
    draft = best.draft;
    if (kind === "mood") moodReasons.push(plan.reason);
    else changes.push({ change: best.change, reason: plan.reason });
  }
  if (draft.moods.length > 0) {
    changes.push({
      change: `added '${moodClause(draft.moods)}'`,
      reason: [...new Set(moodReasons)].join("; "),
    });
  }
  const prompt = compose(draft);
  // A rewrite that makes no cue stronger than the prompt passed in has nothing to offer: that
  // prompt stays, word for word, so the wording does not drift between rounds.
  const current = request.prompt.trim();
  const [mine, theirs] = [extractCues(prompt), extractCues(current)];
  if (
    current === prompt ||
    wordCount(current) <= budget && keepsWords(original, current) &&
      plans.every((p) =>
        strengthOf(theirs, p.cue.kind, p.cue.name) >= strengthOf(mine, p.cue.kind, p.cue.name)
      )
  ) {
    return { prompt: current, changes: [] };
  }
  return { prompt, changes };
}

/** Ways to strengthen one cue, fewest added words first. */
function options(
  draft: Draft,
  cue: Cue,
  spec: RefineRequest["spec"],
  current: string,
): { draft: Draft; change: string }[] {
  const used = new Set(tokenize(compose(draft)).flat());
  // The words the last prompt used for this cue come first, so its wording carries over.
  const last = findInText(current, cue);
  const kept = last
    ? tokenize(current.slice(last.start, last.index)).flat().filter((w) => w in EMPHASIS_WORDS)
    : [];
  const pool = emphasisFor(cue).filter((w) => !used.has(w));
  const placed = [...new Set([...kept, ...pool])].filter((w) => !used.has(w));
  const out: { draft: Draft; change: string }[] = [];
  if (cue.kind === "mood") {
    const word = cue.words.find((w) =>
      spec.mood !== undefined && tokenize(spec.mood).flat().includes(w)
    ) ??
      cue.words[0] ?? cue.name;
    const others = draft.moods.filter((m) => m.word !== word);
    for (const emphasised of [false, true]) {
      out.push({
        draft: { ...draft, moods: [...others, { word, emphasised }] },
        change: `added '${word}' to the mood`,
      });
    }
    return out;
  }
  const inPlace = cue.kind !== "time" ? findInText(draft.text, cue) : undefined;
  let before = draft;
  let left = pool;
  if (inPlace) {
    const room = MAX_RUN_EMPHASIS - inPlace.emphasis;
    // "A small large house" contradicts itself: a size the prompt gives is kept.
    const sized = tokenize(draft.text.slice(0, inPlace.start)).at(-1)?.slice(-2)
      .some((w) => SIZE_WORDS.has(w));
    const fitting = placed.filter((w) => !(sized && GROWING.has(w)));
    let reached = strengthOf(extractCues(compose(draft)), cue.kind, cue.name);
    for (let k = 1; k <= Math.min(room, fitting.length); k++) {
      const words = fitting.slice(0, k);
      const edited = { ...draft, text: insertAt(draft.text, inPlace.start, words.join(" ")) };
      const strength = strengthOf(extractCues(compose(edited)), cue.kind, cue.name);
      // A word that does not reach the cue would only lengthen the prompt.
      if (strength <= reached) break;
      reached = strength;
      before = edited;
      left = pool.filter((w) => !words.includes(w));
      out.push({
        draft: before,
        change: `added '${words.join(" ")}' before the word '${inPlace.word}'`,
      });
    }
  }
  // Said again in a clause of its own only where emphasis in place cannot reach the target;
  // a cue has one clause at most, rewritten when it needs more.
  const key = cueKey(cue);
  const others = before.clauses.filter((c) => c.key !== key);
  const noun = phraseFor(cue);
  for (let k = inPlace ? 1 : 0; k <= Math.min(MAX_RUN_EMPHASIS, left.length); k++) {
    const text = [...left.slice(0, k), noun].join(" ");
    out.push({
      draft: { ...before, clauses: [...others, { key, text }] },
      change: `${before === draft ? "" : `${out.at(-1)!.change}, `}added '${text}'`,
    });
  }
  return out;
}

/** The prompt a draft reads as. */
function compose(draft: Draft): string {
  const tail = [
    ...draft.clauses.map((c) => c.text),
    ...(draft.moods.length > 0 ? [moodClause(draft.moods)] : []),
  ];
  if (tail.length === 0) return draft.text;
  return `${draft.text.replace(/[\s,.;]+$/, "")}, ${tail.join(", ")}`;
}

/**
 * The moods as one clause: "deeply harsh and vast mood", "deeply calm, dreamy mood". One
 * adverb reaches the two moods after it, so none is written twice.
 */
function moodClause(moods: readonly { word: string; emphasised: boolean }[]): string {
  const strong = moods.filter((m) => m.emphasised).map((m) => m.word);
  const plain = moods.filter((m) => !m.emphasised).map((m) => m.word);
  const parts: string[] = [];
  const adverbs = EMPHASIS_BY_KIND.mood!;
  for (let i = 0; i < strong.length; i += 2) {
    parts.push(`${adverbs[(i / 2) % adverbs.length]} ${strong.slice(i, i + 2).join(" and ")}`);
  }
  if (plain.length > 0) parts.push(plain.join(" and "));
  return `${parts.join(", ")} mood`;
}

/** Whether every colour still describes what it described: emphasis must not unbind it. */
function bindingsKept(before: readonly Cue[], after: readonly Cue[]): boolean {
  return before.every((cue) => {
    if (cue.kind !== "colour") return true;
    const now = after.find((c) => cueKey(c) === cueKey(cue));
    return now !== undefined && cue.subjects.every((s) => now.subjects.includes(s));
  });
}

/** Whether every word of `original` is still in `text`, in order. */
export function keepsWords(original: string, text: string): boolean {
  const words = tokenize(text).flat();
  let at = 0;
  for (const word of tokenize(original).flat()) {
    at = words.indexOf(word, at);
    if (at < 0) return false;
    at++;
  }
  return true;
}

function wordCount(text: string): number {
  return text.split(/\s+/).filter((w) => w.length > 0).length;
}

function contextSource(spec: RefineRequest["spec"], cue: Cue): string {
  for (const [field, text] of [["scene", spec.scene], ["mood", spec.mood], ["title", spec.title]]) {
    if (text !== undefined && extractCues(text).some((c) => cueKey(c) === cueKey(cue))) {
      return `${field} ('${text}')`;
    }
  }
  return "original text";
}

/** How a cue the text lacks is written as a clause of its own. */
function phraseFor(cue: Cue): string {
  const word = cue.words[0] ?? cue.name;
  if (cue.kind === "time") return TIME_NOUNS[cue.name] ?? word;
  if (cue.kind === "colour") {
    const on = cue.subjects[0];
    return on ? `${word} ${SUBJECT_PHRASES[on] ?? on}` : `${word} tones`;
  }
  if (cue.kind === "subject") return SUBJECT_PHRASES[cue.name] ?? cueNoun(cue);
  if (cue.kind === "weather" && cue.name === "clear") return "clear sky";
  return cueNoun(cue);
}

/**
 * Where emphasis for a cue goes in the text: in front of the adjective run holding its first
 * mention, with how many emphasis words that run already has.
 */
function findInText(
  text: string,
  cue: Cue,
): { start: number; index: number; word: string; emphasis: number } | undefined {
  for (const word of cue.words) {
    const match = new RegExp(`\\b${escape(word)}\\b`, "i").exec(text);
    if (!match) continue;
    const start = phraseStart(text, match.index);
    const emphasis = tokenize(text.slice(start, match.index)).flat()
      .filter((w) => w in EMPHASIS_WORDS).length;
    return { start, index: match.index, word, emphasis };
  }
  return undefined;
}

function insertAt(text: string, start: number, words: string): string {
  const tail = text.slice(start);
  // "a house" becomes "an intense house", not "a intense house".
  const head = text.slice(0, start).replace(
    /\b(a|an)(\s+)$/i,
    (_, article: string, space: string) => {
      const an = /^[aeiou]/i.test(words);
      const fitted = an ? "an" : "a";
      return (article[0] === "A" ? upperFirst(fitted) : fitted) + space;
    },
  );
  const edited = head + words + " " + (start === 0 ? lowerFirst(tail) : tail);
  return start === 0 ? upperFirst(edited) : edited;
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
