/**
 * The offline critic's checklist: a brief built from the scene cues of the prompt and its
 * context, and answered by measurement, so the whole checklist flow works without keys.
 *
 * A question names its cue in words the cue extractor reads back, so the same answering code
 * serves this critic's own brief and any other critic's questions it can measure.
 *
 * @module
 */
import type { Brief, CheckAnswer, CheckKind } from "../providers/critique.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { Check } from "./check.ts";
import { contextText, type Cue, cueKey, extractCues, mergeCues } from "./scene_cues.ts";
import { cueNoun, isPlural, isThere } from "./wording.ts";

/** Most checks a brief holds, as the DSG-style checklists do. */
const MAX_CHECKS = 12;
/** A measured check at or above this passes (the critic reports it as no problem). */
const PASS = 0.8;

/** The brief for a prompt: one check per cue, strongest first, then the image's basics. */
export function localBrief(spec: PromptSpec): Brief {
  const cues = mergeCues(extractCues(spec.prompt), extractCues(contextText(spec)))
    .filter((cue) => cue.kind !== "colour" || cue.subjects.length <= 2)
    .sort((a, b) => b.strength - a.strength);
  const questions = cues.map(question).filter((q) => q !== undefined).slice(0, MAX_CHECKS - 2);
  // Every image is also asked to hold together and be clean, so a short prompt still has 4.
  questions.push(
    { question: "Is the composition balanced, with a clear subject?", kind: "composition" },
    { question: "Is the image sharp, well exposed and free of artefacts?", kind: "style" },
  );
  return { checks: questions.map((q, i) => ({ id: `c${i + 1}`, ...q })) };
}

function question(cue: Cue): { question: string; kind: CheckKind } | undefined {
  const word = cue.words[0] ?? cue.name;
  switch (cue.kind) {
    case "subject":
      return { question: isThere(cueNoun(cue)), kind: "entity" };
    case "colour": {
      const on = cue.subjects.length > 0
        ? ` on the ${cue.subjects.map((s) => s === "snowcaps" ? "snow caps" : s).join(" and ")}`
        : "";
      return { question: `Is the ${word} colour clearly there${on}?`, kind: "attribute" };
    }
    case "weather": {
      if (cue.name === "clear") return { question: `Is the sky ${word}?`, kind: "attribute" };
      const noun = cueNoun(cue);
      return {
        question: `${isPlural(noun) ? "Do" : "Does"} the ${noun} show in the scene?`,
        kind: "attribute",
      };
    }
    case "time":
      return { question: `Is the light that of ${word}?`, kind: "lighting" };
    case "mood":
      return { question: `Does the image feel ${word}?`, kind: "mood" };
  }
}

/**
 * Answers each check of `brief` from the measured `checks`: a check passes when every
 * measurement of what it asks about passes.
 */
export function answerBrief(brief: Brief, measured: readonly Check[]): CheckAnswer[] {
  return brief.checks.map((check) => {
    const relevant = relevantChecks(check.question, check.kind, measured);
    if (relevant.length === 0) {
      return { id: check.id, passed: true, reason: "nothing in the image contradicts it" };
    }
    const failing = relevant.filter((c) => c.score < PASS).sort((a, b) => a.score - b.score);
    if (failing.length === 0) {
      return { id: check.id, passed: true, reason: relevant[0]!.strength };
    }
    return {
      id: check.id,
      passed: false,
      reason: failing[0]!.problem,
      fix: failing[0]!.suggestion,
    };
  });
}

function relevantChecks(text: string, kind: CheckKind, measured: readonly Check[]): Check[] {
  const cues = extractCues(text);
  const keys = new Set(cues.map(cueKey));
  const tagged = measured.filter((c) => c.cue !== undefined && keys.has(c.cue));
  if (tagged.length > 0) return tagged;
  if (cues.some((c) => c.kind === "time") || kind === "lighting") {
    return measured.filter((c) => c.criterion === "lighting");
  }
  if (cues.some((c) => c.kind === "mood") || kind === "mood") {
    return measured.filter((c) => c.criterion === "mood");
  }
  if (kind === "composition") return measured.filter((c) => c.criterion === "composition");
  if (kind === "style") return measured.filter((c) => c.criterion === "technicalQuality");
  return [];
}
