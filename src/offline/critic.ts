/**
 * The offline critic: measures a saved image with sharp (brightness, contrast, saturation,
 * warmth, colour shares, bright points, streaks, edge and Laplacian energy) and scores it
 * against the scene cues of the prompt and its context (title, scene, mood). Every problem names
 * the cue in quotes with the measured and the expected value, so the refiner knows what to
 * strengthen, and a check fails exactly when the value it shows is outside the range it states:
 * each check is judged on the rounded numbers its message prints. Deterministic: the same image
 * and prompt always get the same critique.
 *
 * Small subjects (figures, boats, animals, lighthouses, paths) are not verified: pixel statistics
 * cannot find them reliably, so they neither earn nor lose points.
 *
 * @module
 */
import sharp from "sharp";
import { type Criterion, type Critique, critiqueSchema } from "../providers/critique.ts";
import { ProviderError } from "../errors.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import {
  type Band,
  colourShare,
  countBrightPoints,
  edgeEnergy,
  horizonRow,
  laplacianEnergy,
  laplacianMap,
  meanAndDeviation,
  measureLook,
  percentile,
  type PixelMap,
  pixelMap,
  shareWhere,
  WHOLE,
} from "./image_stats.ts";
import type { CritiqueRequest, CritiqueResult, ImageCritic } from "../providers/provider.ts";
import { answerBrief, localBrief } from "./brief.ts";
import type { Check } from "./check.ts";
import {
  COLOURS,
  combineRanges,
  contextText,
  type Cue,
  cueKey,
  extractCues,
  type LookProperty,
  type LookSource,
  lookSources,
  mergeCues,
  type Subject,
} from "./scene_cues.ts";
import { andList, be, cueList, cueNoun, cuePhrase, isPlural, quote } from "./wording.ts";

/** Model id the local critic reports. */
export const LOCAL_CRITIC_MODEL = "local-metrics-v1";

/** Width the critic measures images at; enough for stars and rain, small enough to be quick. */
const ANALYSIS_WIDTH = 320;

/** How much each criterion counts toward the overall score. */
export const CRITERION_WEIGHTS: Readonly<Record<Criterion, number>> = {
  promptAdherence: 0.35,
  composition: 0.15,
  lighting: 0.2,
  mood: 0.2,
  technicalQuality: 0.1,
};

/** A check scoring below this is reported as a problem. */
const PASS = 0.8;
/** Each reported problem costs this much of the overall score, as it would with a person. */
const PROBLEM_COST = 0.2;
/** Exponent applied to check scores before averaging. */
const CHECK_EXPONENT = 1.5;

/** One measured check of an image against an expectation. */
/**
 * Creates the offline critic (`local`).
 *
 * @example
 * ```ts
 * import { createLocalCritic } from "./critic.ts";
 * const critic = createLocalCritic();
 * if (critic.name !== "local") throw new Error("unexpected name");
 * ```
 */
export function createLocalCritic(
  weights: Readonly<Record<Criterion, number>> = CRITERION_WEIGHTS,
): ImageCritic {
  return {
    name: "local",
    critique: (request) => critiqueLocal(request, weights),
    brief: (request) => {
      request.signal.throwIfAborted();
      return Promise.resolve({
        brief: localBrief(request.spec),
        model: LOCAL_CRITIC_MODEL,
        costUsd: 0,
      });
    },
  };
}

/** Critiques one saved image; see {@linkcode createLocalCritic}. */
export async function critiqueLocal(
  request: CritiqueRequest,
  weights: Readonly<Record<Criterion, number>> = CRITERION_WEIGHTS,
): Promise<CritiqueResult> {
  request.signal.throwIfAborted();
  let map: PixelMap;
  try {
    const { data, info } = await sharp(request.imagePath)
      .flatten({ background: "#000000" })
      .resize({ width: ANALYSIS_WIDTH, withoutEnlargement: true })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    map = pixelMap(data, info.width, info.height, info.channels);
  } catch (error) {
    throw new ProviderError(
      `Cannot critique '${request.imagePath}' as it could not be read as an image: ${
        (error as Error).message
      }`,
      { provider: "local", retryable: false, cause: error },
    );
  }
  request.signal.throwIfAborted();
  // Judged against what was asked for, never against the refined prompt it was drawn from.
  const cues = expectedCues(request.spec);
  const critique = critiqueMap(map, cues, weights);
  if (request.brief) critique.checks = answerBrief(request.brief, assess(map, cues));
  return { critique, model: LOCAL_CRITIC_MODEL, costUsd: 0 };
}

/**
 * The cues an image is judged against: the original prompt and its context. A refined prompt
 * only says how to get there; judging by it would let the loop drift from what was asked.
 */
export function expectedCues(spec: PromptSpec): Cue[] {
  return mergeCues(extractCues(spec.prompt), extractCues(contextText(spec)));
}

/** Scores measured pixels against cues and builds the critique. */
export function critiqueMap(
  map: PixelMap,
  cues: readonly Cue[],
  weights: Readonly<Record<Criterion, number>> = CRITERION_WEIGHTS,
): Critique {
  const checks = assess(map, cues);
  const criteria = {} as Record<Criterion, number>;
  for (const criterion of Object.keys(CRITERION_WEIGHTS) as Criterion[]) {
    const mine = checks.filter((c) => c.criterion === criterion);
    const total = mine.reduce((s, c) => s + c.weight, 0);
    // A half-met expectation is worth less than half: partial renders should read as problems.
    const mean = total === 0
      ? 0.7
      : mine.reduce((s, c) => s + c.weight * Math.pow(c.score, CHECK_EXPONENT), 0) / total;
    criteria[criterion] = round1(10 * mean);
  }
  const weighted = (Object.keys(CRITERION_WEIGHTS) as Criterion[]).reduce(
    (s, c) => s + weights[c] * criteria[c],
    0,
  );
  const failingCount = checks.filter((c) => c.score < PASS).length;
  const score = round1(Math.max(0, weighted - PROBLEM_COST * failingCount));
  const ranked = [...checks].sort((a, b) =>
    (a.score - b.score) * 10 + (b.weight - a.weight) || a.problem.localeCompare(b.problem)
  );
  const failing = ranked.filter((c) => c.score < PASS);
  const passing = ranked.filter((c) => c.score >= 0.85).reverse();
  const best = (Object.keys(CRITERION_WEIGHTS) as Criterion[])
    .sort((a, b) => criteria[b] - criteria[a])[0]!;
  const summary = failing.length === 0
    ? `Scores ${score}/10: the image matches what was asked for; strongest on ${label(best)}.`
    : `Scores ${score}/10: strongest on ${label(best)}; the main problem is that ${
      failing[0]!.problem
    }.`;
  return critiqueSchema.parse({
    score,
    criteria,
    summary,
    strengths: unique(passing.map((c) => c.strength)).slice(0, 6),
    problems: unique(failing.map((c) => c.problem)).slice(0, 8),
    suggestions: unique(failing.map((c) => c.suggestion)).slice(0, 8),
  });
}

/** Every check the image gets for these cues. */
export function assess(map: PixelMap, cues: readonly Cue[]): Check[] {
  return [
    ...colourChecks(map, cues),
    ...subjectChecks(map, cues),
    ...weatherChecks(map, cues),
    ...lightingChecks(map, cues),
    ...moodChecks(map, cues),
    ...compositionChecks(map, cues),
    ...technicalChecks(map),
  ];
}

const SUBJECT_SIZE: Partial<Record<Subject, number>> = {
  sky: 0.35,
  dunes: 0.5,
  water: 0.35,
  mountains: 0.15,
  trees: 0.25,
  clouds: 0.35,
  ground: 0.25,
  hills: 0.2,
  rays: 0.12,
  buildings: 0.2,
  signs: 0.05,
  house: 0.04,
  rocks: 0.12,
  waves: 0.08,
  snowcaps: 0.06,
  path: 0.06,
  windows: 0.008,
};

/** Share of the image a colour should cover, from the largest subject it was said of. */
export function expectedColourShare(cue: Cue): number {
  if (cue.subjects.length === 0) return 0.1;
  return Math.max(...cue.subjects.map((s) => SUBJECT_SIZE[s] ?? 0.025));
}

function colourChecks(map: PixelMap, cues: readonly Cue[]): Check[] {
  const out: Check[] = [];
  for (const cue of cues) {
    if (cue.kind !== "colour") continue;
    const info = COLOURS[cue.name];
    if (!info) continue;
    const share = shownPct(colourShare(map, info));
    const expected = expectedColourShare(cue);
    const colour = cuePhrase(cue);
    const where = cue.subjects.length > 0 ? `the ${andList(cue.subjects.map(subjectName))}` : "";
    const shows = where === ""
      ? "the image shows"
      : `${where} ${isPlural(where) ? "show" : "shows"}`;
    const word = cue.words[0] ?? cue.name;
    out.push({
      cue: cueKey(cue),
      criterion: "promptAdherence",
      score: ratio(share, expected),
      weight: 1,
      strength: `the requested ${colour} is clearly there (${pct(share)} of pixels)`,
      problem: `${shows} little of the requested ${colour}: ${
        pct(share)
      } of pixels, expected at least ${pct(expected)}`,
      suggestion: where === ""
        ? `make the ${word} colour stronger and let it fill more of the frame`
        : `give ${where} a stronger ${word} colour and let it fill more of the frame`,
    });
  }
  return out;
}

/** How a message names a subject; the vocabulary's own name where it reads as English. */
function subjectName(subject: Subject): string {
  return subject === "snowcaps" ? "snow caps" : subject;
}

interface SubjectProbe {
  measure: (map: PixelMap, cue: Cue, cues: readonly Cue[]) => number;
  expected: number;
  unit: "share" | "count";
  what: string;
  fix: string;
}

const TOP: Band = { top: 0, bottom: 0.6 };
const LOW: Band = { top: 0.62, bottom: 1 };

const SUBJECT_PROBES: Partial<Record<Subject, SubjectProbe>> = {
  sun: {
    measure: (m) => shareWhere(m, TOP, (i) => m.luma[i]! > 0.88),
    expected: 0.12,
    unit: "share",
    what: "bright sun disc and glow in the sky",
    fix: "make the sun bright and large, with a strong glow",
  },
  moon: {
    measure: (m) => shareWhere(m, TOP, (i) => m.luma[i]! > 0.72),
    expected: 0.025,
    unit: "share",
    what: "bright moon in the sky",
    fix: "make the moon large and bright against the dark sky",
  },
  stars: {
    measure: (m) => countBrightPoints(m, TOP, 0.1),
    expected: 240,
    unit: "count",
    what: "visible stars",
    fix: "fill the sky with many bright stars",
  },
  water: {
    measure: (m) => waterShare(m),
    expected: 0.55,
    unit: "share",
    what: "water (blue or mirroring the sky) in the lower part",
    fix: "give the water a larger, clearly reflective surface",
  },
  trees: {
    measure: (m, _cue, cues) => {
      const dark = cues.some((c) =>
        c.kind === "colour" && c.name === "dark" && c.subjects.includes("trees")
      );
      return shareWhere(
        m,
        { top: 0.2, bottom: 1 },
        (i) =>
          (m.hue[i]! >= 70 && m.hue[i]! <= 170 && m.saturation[i]! > 0.18 && m.value[i]! > 0.1) ||
          (dark && m.value[i]! < 0.2 && m.saturation[i]! > 0.2),
      );
    },
    expected: 0.2,
    unit: "share",
    what: "foliage",
    fix: "add more, larger trees with clear foliage",
  },
  dunes: {
    measure: (m) =>
      shareWhere(
        m,
        { top: 0.55, bottom: 1 },
        (i) => m.hue[i]! >= 12 && m.hue[i]! <= 50 && m.saturation[i]! > 0.35 && m.value[i]! > 0.35,
      ),
    expected: 0.7,
    unit: "share",
    what: "sand in the lower half",
    fix: "make the dunes larger and clearly sand-coloured",
  },
  snowcaps: {
    measure: (m) =>
      shareWhere(
        m,
        { top: 0.1, bottom: 0.6 },
        (i) => m.saturation[i]! < 0.25 && m.value[i]! > 0.7,
      ),
    expected: 0.05,
    unit: "share",
    what: "snow on the peaks",
    fix: "put bright snow caps on the mountain peaks",
  },
  clouds: {
    measure: (m) =>
      shareWhere(
        m,
        { top: 0, bottom: 0.45 },
        (i) => m.saturation[i]! < 0.22 && m.value[i]! > 0.15,
      ),
    expected: 0.45,
    unit: "share",
    what: "cloud cover in the sky",
    fix: "fill the sky with heavy clouds",
  },
  waves: {
    measure: (m) => shareWhere(m, LOW, (i) => m.saturation[i]! < 0.2 && m.value[i]! > 0.68),
    expected: 0.07,
    unit: "share",
    what: "white foam on the water",
    fix: "add large crashing waves with white foam",
  },
  rocks: {
    measure: (m) =>
      shareWhere(
        m,
        { top: 0.55, bottom: 1 },
        (i) => m.saturation[i]! * m.value[i]! < 0.07 && m.value[i]! < 0.4,
      ),
    expected: 0.2,
    unit: "share",
    what: "dark rock in the foreground",
    fix: "make the rocks larger and more prominent",
  },
  lightning: {
    measure: (m) =>
      shareWhere(
        m,
        { top: 0, bottom: 0.7 },
        (i) => m.luma[i]! > 0.7 && m.saturation[i]! < 0.3,
      ),
    expected: 0.012,
    unit: "share",
    what: "bright lightning",
    fix: "add bright, forked lightning bolts",
  },
  windows: {
    measure: (m) => warmLightShare(m),
    expected: 0.008,
    unit: "share",
    what: "glowing windows",
    fix: "make the windows glow brightly",
  },
  house: {
    measure: (m) => warmLightShare(m),
    expected: 0.008,
    unit: "share",
    what: "lit house",
    fix: "make the house larger with glowing windows",
  },
  buildings: {
    measure: (m) => edgeEnergy(m, { top: 0.15, bottom: 0.72 }).dx,
    expected: 0.035,
    unit: "count",
    what: "building edges (horizontal luma change)",
    fix: "make the buildings taller and more defined",
  },
};

/** Pixels below the horizon that are blue, or that mirror the pixel as far above it. */
function waterShare(m: PixelMap): number {
  const horizon = horizonRow(m, 0.3, 0.8);
  const hy = Math.round(horizon * m.height);
  return shareWhere(m, { top: horizon + 0.02, bottom: 1 }, (i) => {
    if (m.hue[i]! >= 175 && m.hue[i]! <= 265 && m.saturation[i]! > 0.15) return true;
    const y = Math.floor(i / m.width);
    const mirror = 2 * hy - y;
    if (mirror < 0) return false;
    return Math.abs(m.luma[mirror * m.width + (i % m.width)]! - m.luma[i]!) < 0.06 &&
      m.saturation[i]! > 0.1;
  });
}

function warmLightShare(m: PixelMap): number {
  return shareWhere(
    m,
    { top: 0.3, bottom: 1 },
    (i) => m.hue[i]! >= 25 && m.hue[i]! <= 62 && m.saturation[i]! > 0.4 && m.value[i]! > 0.7,
  );
}

function subjectChecks(map: PixelMap, cues: readonly Cue[]): Check[] {
  const out: Check[] = [];
  for (const cue of cues) {
    if (cue.kind !== "subject") continue;
    const probe = SUBJECT_PROBES[cue.name as Subject];
    if (!probe) continue;
    const value = probe.unit === "share"
      ? shownPct(probe.measure(map, cue, cues))
      : shownFixed(probe.measure(map, cue, cues));
    const shown = probe.unit === "share" ? pct(value) : fixed(value);
    const expected = probe.unit === "share" ? pct(probe.expected) : fixed(probe.expected);
    const noun = cueNoun(cue);
    out.push({
      cue: cueKey(cue),
      criterion: "promptAdherence",
      score: ratio(value, probe.expected),
      weight: 1,
      strength: `the requested ${quote(noun)} ${
        be(noun)
      } clearly rendered (${probe.what}: ${shown})`,
      problem: `the requested ${quote(noun)} ${
        be(noun)
      } too faint: ${probe.what} at ${shown}, expected at least ${expected}`,
      suggestion: probe.fix,
    });
  }
  return out;
}

function weatherChecks(map: PixelMap, cues: readonly Cue[]): Check[] {
  const out: Check[] = [];
  for (const cue of cues) {
    if (cue.kind !== "weather") continue;
    const noun = cueNoun(cue);
    const the = `the requested ${quote(noun)}`;
    if (cue.name === "mist") {
      const deviation = shownFixed(
        meanAndDeviation(map, "luma", { top: 0.25, bottom: 0.85 }).deviation,
      );
      out.push({
        cue: cueKey(cue),
        criterion: "promptAdherence",
        score: inverseRatio(deviation, 0.11, 0.22),
        weight: 1,
        strength: `${the} softens the scene (mid-ground contrast ${fixed(deviation)})`,
        problem: `${the} barely ${isPlural(noun) ? "show" : "shows"}: mid-ground contrast ${
          fixed(deviation)
        }, expected at most 0.11 for a hazy scene`,
        suggestion: "add thick mist drifting through the middle of the scene",
      });
    } else if (cue.name === "rain") {
      const streaks = shownPct(streakShare(map));
      out.push({
        cue: cueKey(cue),
        criterion: "promptAdherence",
        score: ratio(streaks, 0.05),
        weight: 1,
        strength: `${the} ${be(noun)} visible as streaks (${pct(streaks)} of pixels)`,
        problem: `${the} barely ${isPlural(noun) ? "show" : "shows"}: rain streaks on ${
          pct(streaks)
        } of pixels, expected at least 5%`,
        suggestion: "show heavy rain as dense streaks over the whole scene",
      });
    } else if (cue.name === "snow") {
      const ground = shownPct(shareWhere(
        map,
        { top: 0.75, bottom: 1 },
        (i) => map.saturation[i]! < 0.25 && map.value[i]! > 0.45,
      ));
      const flakes = countBrightPoints(map, { top: 0, bottom: 0.7 }, 0.08);
      // Name only the half that falls short: the other is no problem.
      const short = [
        ...(ground < 0.6
          ? [`${pct(ground)} of the ground is snow-white (expected at least 60%)`]
          : []),
        ...(flakes < 120
          ? [
            `${
              flakes === 1 ? "1 flake is" : `${flakes} flakes are`
            } visible (expected at least 120)`,
          ]
          : []),
      ];
      out.push({
        cue: cueKey(cue),
        criterion: "promptAdherence",
        score: 0.5 * ratio(ground, 0.6) + 0.5 * ratio(flakes, 120),
        weight: 1,
        strength: `${the} ${be(noun)} on the ground and in the air`,
        problem: `${the} ${be(noun)} thin: ${andList(short)}`,
        suggestion: ground < 0.6 && flakes < 120
          ? "cover the ground in white snow and add heavy falling snow"
          : ground < 0.6
          ? "cover the ground in white snow"
          : "add heavy falling snow",
      });
    } else if (cue.name === "storm") {
      const sky = shownFixed(meanAndDeviation(map, "luma", { top: 0, bottom: 0.45 }).mean);
      out.push({
        cue: cueKey(cue),
        criterion: "promptAdherence",
        score: inverseRatio(sky, 0.32, 0.6),
        weight: 1,
        strength: `the sky is dark and heavy, as ${the} asks (mean brightness ${fixed(sky)})`,
        problem: `the sky is too light for ${the}: mean brightness ${
          fixed(sky)
        }, expected at most 0.32`,
        suggestion: "darken the sky with heavy storm clouds",
      });
    } else if (cue.name === "clear") {
      const sky = shownFixed(meanAndDeviation(map, "saturation", { top: 0, bottom: 0.4 }).mean);
      const phrase = `the requested ${cuePhrase(cue).replace(/^a /, "")}`;
      out.push({
        cue: cueKey(cue),
        criterion: "promptAdherence",
        score: ratio(sky, 0.4),
        weight: 1,
        strength: `${phrase} is clean and saturated`,
        problem: `${phrase} is washed out: sky saturation ${fixed(sky)}, expected at least 0.40`,
        suggestion: "make the sky clear and deeply coloured",
      });
    }
  }
  return out;
}

/** Thin bright near-vertical lines: brighter than the pixels left and right, not above and below. */
function streakShare(m: PixelMap): number {
  const { width, luma } = m;
  return shareWhere(m, { top: 0.02, bottom: 0.98 }, (i) => {
    const x = i % width;
    if (x === 0 || x === width - 1) return false;
    const v = luma[i]!;
    const side = (luma[i - 1]! + luma[i + 1]!) / 2;
    const along = (luma[i - width]! + luma[i + width]!) / 2;
    return v - side > 0.025 && Math.abs(v - along) < 0.5 * (v - side);
  });
}

const TOLERANCE: Record<LookProperty, number> = {
  brightness: 0.12,
  contrast: 0.06,
  saturation: 0.12,
  warmth: 0.08,
};

const PROPERTY_WORDS: Record<LookProperty, [string, string]> = {
  brightness: ["too dark", "too bright"],
  contrast: ["too flat", "too contrasty"],
  saturation: ["too muted", "too saturated"],
  warmth: ["too cool", "too warm"],
};

/** What to do when a property is below or above its range. */
const PROPERTY_FIXES: Record<LookProperty, [string, string]> = {
  brightness: ["brighten the image", "darken the image"],
  contrast: ["raise the contrast", "lower the contrast"],
  saturation: ["make the colours richer", "mute the colours"],
  warmth: ["warm the colours", "cool the colours"],
};

/**
 * Scores a measured property against the range its cues imply. It passes exactly when the
 * value, as the message shows it, lies inside the range, as the message shows it: full marks
 * over the middle of the range, the pass mark at its edges, nothing once a tolerance beyond.
 */
function lookCheck(
  criterion: Criterion,
  property: LookProperty,
  sources: readonly LookSource[],
  measured: number,
): Check | undefined {
  const range = combineRanges(sources);
  if (!range) return undefined;
  const list = cueList(sources.map((s) => s.cue));
  const value = shownFixed(measured);
  const min = shownFixed(range.min);
  const max = shownFixed(range.max);
  const centre = (min + max) / 2;
  const half = (max - min) / 2;
  const low = value < min;
  let score: number;
  if (low || value > max) {
    const beyond = low ? min - value : value - max;
    score = Math.min(PASS - 0.01, PASS * (1 - beyond / TOLERANCE[property]));
  } else {
    const off = Math.max(0, Math.abs(value - centre) - 0.3 * half);
    score = half === 0 ? 1 : Math.max(PASS, 1 - (1 - PASS) * off / (0.7 * half));
  }
  const side = low ? 0 : 1;
  return {
    criterion,
    score: Math.max(0, score),
    weight: 1,
    strength: `${property} ${fixed(value)} suits ${list}`,
    problem: `the image is ${PROPERTY_WORDS[property][side]} for ${list}: ${property} ${
      fixed(value)
    }, expected ${fixed(min)}–${fixed(max)}`,
    suggestion: `${PROPERTY_FIXES[property][side]} to suit ${list}`,
  };
}

function lightingChecks(map: PixelMap, cues: readonly Cue[]): Check[] {
  const look = measureLook(map);
  const sources = lookSources(cues);
  const lighting = (s: LookSource) =>
    s.cue.kind === "time" || (s.cue.kind === "weather" && s.cue.name === "storm");
  const out: Check[] = [];
  for (const p of ["brightness", "warmth"] as const) {
    const check = lookCheck("lighting", p, sources[p].filter(lighting), look[p]);
    if (check) out.push(p === "brightness" ? { ...check, weight: 2 } : check);
  }
  if (out.length === 0) {
    // Without a time of day, only ask that the exposure be usable.
    const b = shownFixed(look.brightness);
    out.push({
      criterion: "lighting",
      score: Math.max(0, 1 - Math.max(0.2 - b, b - 0.8, 0) / 0.2),
      weight: 1,
      strength: `exposure is balanced (mean brightness ${fixed(b)})`,
      problem: `the image is ${b < 0.2 ? "underexposed" : "overexposed"}: mean brightness ${
        fixed(b)
      }, expected 0.20–0.80`,
      suggestion: b < 0.2 ? "brighten the image" : "darken the image",
    });
  }
  return out;
}

function moodChecks(map: PixelMap, cues: readonly Cue[]): Check[] {
  const look = measureLook(map);
  const sources = lookSources(cues);
  const out: Check[] = [];
  for (const p of ["brightness", "contrast", "saturation", "warmth"] as const) {
    const mine = sources[p].filter((s) => s.cue.kind === "mood" || s.cue.kind === "weather");
    const check = lookCheck("mood", p, mine, look[p]);
    if (check) out.push(check);
  }
  return out;
}

/** Detail (Laplacian energy) a scene needs to hold the eye without looking busy. */
const DETAIL = { min: 0.01, max: 0.14 };
/** Most of the detail one half of the frame may carry before it looks lopsided. */
const MAX_HALF_SHARE = 0.67;

function compositionChecks(map: PixelMap, cues: readonly Cue[]): Check[] {
  const left = edgeEnergyColumns(map, 0, 0.5);
  const right = edgeEnergyColumns(map, 0.5, 1);
  // A frame with no detail at all has nothing to weigh, so it is not lopsided.
  const heavier = shownPct(left + right === 0 ? 0.5 : Math.max(left, right) / (left + right));
  const horizon = shownPct(horizonRow(map));
  const detail = shownFixed(laplacianEnergy(map), 3);
  const subjects = subjectChecks(map, cues);
  const sparse = detail < DETAIL.min;
  const out: Check[] = [
    {
      criterion: "composition",
      score: passWhen(heavier <= MAX_HALF_SHARE, clamp01((1.7 - 2 * heavier) / 0.45)),
      weight: 1,
      strength: "visual weight is balanced across the frame",
      problem: `the frame is lopsided: the ${left > right ? "left" : "right"} half carries ${
        pct(heavier)
      } of the detail, expected at most ${pct(MAX_HALF_SHARE)}`,
      suggestion: "balance the scene with an element on the emptier side",
    },
    {
      criterion: "composition",
      score: horizon >= 0.3 && horizon <= 0.78
        ? 1
        : Math.max(0, 1 - Math.min(Math.abs(horizon - 0.3), Math.abs(horizon - 0.78)) / 0.2),
      weight: 1,
      strength: `the horizon sits well at ${pct(horizon)} of the height`,
      problem: `the horizon sits awkwardly at ${pct(horizon)} of the height, expected 30–78%`,
      suggestion: horizon < 0.3
        ? "lower the horizon toward a third of the frame"
        : "raise the horizon toward two thirds of the frame",
    },
    {
      criterion: "composition",
      score: passWhen(
        !sparse && detail <= DETAIL.max,
        detail < 0.012 ? detail / 0.012 : detail > 0.12 ? 1 - (detail - 0.12) / 0.1 : 1,
      ),
      weight: 1,
      strength: "the scene has enough detail to hold the eye",
      // Named by the side of the range it is on, so the advice never points the wrong way.
      problem: `the scene is ${
        sparse ? (detail < DETAIL.min / 2 ? "empty" : "sparse") : "cluttered"
      }: detail energy ${fixed(detail, 3)}, expected ${fixed(DETAIL.min, 3)}–${
        fixed(DETAIL.max, 3)
      }`,
      suggestion: sparse
        ? "add detail and texture, with a clear subject in the emptier areas"
        : "simplify the busiest areas",
    },
  ];
  if (subjects.length > 0) {
    // The requested subjects are what a composition is built around.
    const mean = shownPct(subjects.reduce((s, c) => s + c.score, 0) / subjects.length);
    out.push({
      criterion: "composition",
      score: mean,
      weight: 2,
      strength: "the requested subjects anchor the composition",
      problem: `the requested subjects are too faint to anchor the composition: ${
        pct(mean)
      } rendered, expected at least ${pct(PASS)}`,
      suggestion: "make the main subjects larger and more prominent",
    });
  }
  return out;
}

/** A score that passes exactly when the condition the message states holds. */
function passWhen(inside: boolean, score: number): number {
  return inside ? Math.max(PASS, clamp01(score)) : Math.min(PASS - 0.01, clamp01(score));
}

function edgeEnergyColumns(map: PixelMap, from: number, to: number): number {
  const x0 = Math.floor(from * map.width);
  const x1 = Math.floor(to * map.width);
  let sum = 0;
  for (let y = 0; y < map.height - 1; y++) {
    for (let x = x0; x < Math.min(x1, map.width - 1); x++) {
      const i = y * map.width + x;
      sum += Math.abs(map.luma[i + 1]! - map.luma[i]!) +
        Math.abs(map.luma[i + map.width]! - map.luma[i]!);
    }
  }
  return sum;
}

function technicalChecks(map: PixelMap): Check[] {
  // Crispness is judged on the edges the image has, not on how many it has.
  const crisp = percentile(laplacianMap(map), 0.99);
  const clipped = shareWhere(
    map,
    WHOLE,
    (i) => (map.value[i]! > 0.995 && map.saturation[i]! < 0.02) || map.value[i]! < 0.005,
  );
  const low = percentile(map.luma, 0.02);
  const high = percentile(map.luma, 0.98);
  return [
    {
      criterion: "technicalQuality",
      score: ratio(crisp, 0.06),
      weight: 1,
      strength: "edges are crisp",
      problem: `the image is soft: edge Laplacian ${fixed(crisp, 3)}, expected at least 0.060`,
      suggestion: "sharpen the main shapes",
    },
    {
      criterion: "technicalQuality",
      score: clamp01(1 - (clipped - 0.04) / 0.2),
      weight: 1,
      strength: "highlights and shadows keep their detail",
      problem: `${pct(clipped)} of pixels are clipped to pure black or white, expected under 4%`,
      suggestion: "recover clipped highlights and shadows",
    },
    {
      criterion: "technicalQuality",
      score: ratio(high - low, 0.3),
      weight: 1,
      strength: "the tonal range is full",
      problem: `the tonal range is narrow: ${fixed(low)}–${
        fixed(high)
      }, expected a spread of at least 0.30`,
      suggestion: "widen the tonal range",
    },
  ];
}

function ratio(value: number, expected: number): number {
  return expected <= 0 ? 1 : clamp01(value / expected);
}

/** 1 at or below `good`, falling to 0 at `bad`. */
function inverseRatio(value: number, good: number, bad: number): number {
  return clamp01((bad - value) / (bad - good));
}

function clamp01(v: number): number {
  return Math.max(0, Math.min(1, v));
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

function pct(v: number): string {
  return v < 0.1 && v > 0 ? `${(v * 100).toFixed(1)}%` : `${Math.round(v * 100)}%`;
}

/** The share `pct` shows: checks judge this, so a message never contradicts its verdict. */
function shownPct(v: number): number {
  return v < 0.1 && v > 0 ? Math.round(v * 1000) / 1000 : Math.round(v * 100) / 100;
}

function fixed(v: number, digits = 2): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

/** The number `fixed` shows. */
function shownFixed(v: number, digits = 2): number {
  return Number.isInteger(v) ? v : Number(v.toFixed(digits));
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}

function label(criterion: Criterion): string {
  return criterion.replace(/[A-Z]/g, (c) => " " + c.toLowerCase());
}
