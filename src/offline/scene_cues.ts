/**
 * Scene cues read from prompt text: colours, time of day, weather, subjects and moods, each with
 * how strongly it is asked for. The local generator renders them, the local critic checks an
 * image against them and the local refiner strengthens them, so all three share this vocabulary.
 *
 * @module
 */
import { fnv1a32 } from "../util/hash.ts";
import type { PromptSpec } from "../prompts/mod.ts";

/** The kinds of cue a prompt can carry. */
export type CueKind = "colour" | "time" | "weather" | "subject" | "mood";

/** An RGB triple, 0–255 per channel. */
export type Rgb = readonly [number, number, number];

/** Times of day the local providers know, in order through the day. */
export const TIMES = ["dawn", "morning", "noon", "afternoon", "sunset", "dusk", "night"] as const;
/** One time of day. */
export type TimeOfDay = typeof TIMES[number];

/** Weather the local providers know. */
export const WEATHERS = ["mist", "rain", "snow", "storm", "clear"] as const;
/** One kind of weather. */
export type Weather = typeof WEATHERS[number];

/** Subjects the local providers know. */
export const SUBJECTS = [
  "sky",
  "sun",
  "rays",
  "moon",
  "stars",
  "clouds",
  "mountains",
  "snowcaps",
  "hills",
  "dunes",
  "water",
  "waves",
  "reflections",
  "trees",
  "path",
  "house",
  "windows",
  "buildings",
  "signs",
  "lighthouse",
  "boats",
  "figure",
  "animal",
  "rocks",
  "ground",
  "lightning",
  "shimmer",
] as const;
/** One subject. */
export type Subject = typeof SUBJECTS[number];

/** One cue found in a text. */
export interface Cue {
  kind: CueKind;
  /** Canonical name, e.g. `orange`, `dawn`, `mist`, `trees`, `peaceful`. */
  name: string;
  /** Every word in the text that asked for this cue, lower case, first one first. */
  words: string[];
  /**
   * How strongly the cue is asked for: 1 when mentioned, plus 1 for each emphasis word in front
   * of it ("vivid", "bright", "prominent"), plus 0.5 for each repeated mention; at most 4.
   */
  strength: number;
  /** For colours: the subjects the colour was said of ("orange dunes" → `dunes`). */
  subjects: Subject[];
}

/** A range of a measured image property. */
export interface Range {
  min: number;
  max: number;
}

/**
 * Image properties a cue implies, each a range: mean luma (0–1), contrast as the standard
 * deviation of luma (0–0.5), mean HSV saturation (0–1), and warmth as mean (R − B) / 255.
 */
export interface Look {
  brightness?: Range;
  contrast?: Range;
  saturation?: Range;
  warmth?: Range;
}

/** The properties of a {@linkcode Look}. */
export const LOOK_PROPERTIES = ["brightness", "contrast", "saturation", "warmth"] as const;
/** One property of a {@linkcode Look}. */
export type LookProperty = typeof LOOK_PROPERTIES[number];

/** A colour the local providers know: its RGB, and which pixels count as that colour. */
export interface ColourInfo {
  rgb: Rgb;
  /** Hue interval in degrees (may wrap past 360), or undefined for achromatic colours. */
  hue?: readonly [number, number];
  /** Least saturation (HSV) a pixel needs. */
  minSaturation: number;
  /** Greatest saturation (HSV) a pixel may have. */
  maxSaturation: number;
  /** Value (HSV) interval a pixel needs. */
  value: readonly [number, number];
}

/** Colour names and the pixels that count as each. */
export const COLOURS: Readonly<Record<string, ColourInfo>> = {
  red: {
    rgb: [214, 40, 40],
    hue: [340, 372],
    minSaturation: 0.35,
    maxSaturation: 1,
    value: [0.25, 1],
  },
  orange: {
    rgb: [245, 130, 32],
    hue: [12, 40],
    minSaturation: 0.4,
    maxSaturation: 1,
    value: [0.35, 1],
  },
  golden: {
    rgb: [240, 180, 50],
    hue: [32, 55],
    minSaturation: 0.35,
    maxSaturation: 1,
    value: [0.4, 1],
  },
  yellow: {
    rgb: [250, 215, 60],
    hue: [44, 66],
    minSaturation: 0.35,
    maxSaturation: 1,
    value: [0.45, 1],
  },
  green: {
    rgb: [60, 150, 60],
    hue: [70, 165],
    minSaturation: 0.2,
    maxSaturation: 1,
    value: [0.15, 1],
  },
  teal: {
    rgb: [30, 160, 160],
    hue: [165, 198],
    minSaturation: 0.25,
    maxSaturation: 1,
    value: [0.15, 1],
  },
  blue: {
    rgb: [40, 90, 210],
    hue: [198, 250],
    minSaturation: 0.25,
    maxSaturation: 1,
    value: [0.12, 1],
  },
  purple: {
    rgb: [140, 70, 190],
    hue: [255, 300],
    minSaturation: 0.2,
    maxSaturation: 1,
    value: [0.15, 1],
  },
  pink: {
    rgb: [250, 60, 170],
    hue: [300, 345],
    minSaturation: 0.3,
    maxSaturation: 1,
    value: [0.35, 1],
  },
  brown: {
    rgb: [130, 85, 45],
    hue: [15, 45],
    minSaturation: 0.3,
    maxSaturation: 1,
    value: [0.12, 0.58],
  },
  white: { rgb: [245, 245, 248], minSaturation: 0, maxSaturation: 0.22, value: [0.45, 1] },
  grey: { rgb: [128, 130, 135], minSaturation: 0, maxSaturation: 0.2, value: [0.2, 0.45] },
  black: { rgb: [10, 10, 14], minSaturation: 0, maxSaturation: 1, value: [0, 0.12] },
  dark: { rgb: [28, 30, 40], minSaturation: 0, maxSaturation: 1, value: [0, 0.24] },
};

const COLOUR_WORDS: Record<string, string> = {
  red: "red",
  crimson: "red",
  scarlet: "red",
  orange: "orange",
  amber: "orange",
  golden: "golden",
  gold: "golden",
  yellow: "yellow",
  green: "green",
  emerald: "green",
  mossy: "green",
  teal: "teal",
  turquoise: "teal",
  cyan: "teal",
  blue: "blue",
  navy: "blue",
  azure: "blue",
  cobalt: "blue",
  purple: "purple",
  violet: "purple",
  lavender: "purple",
  pink: "pink",
  magenta: "pink",
  rose: "pink",
  brown: "brown",
  wooden: "brown",
  white: "white",
  grey: "grey",
  gray: "grey",
  silver: "grey",
  black: "black",
  dark: "dark",
};

const TIME_WORDS: Record<string, TimeOfDay> = {
  dawn: "dawn",
  sunrise: "dawn",
  daybreak: "dawn",
  morning: "morning",
  noon: "noon",
  midday: "noon",
  afternoon: "afternoon",
  sunset: "sunset",
  sundown: "sunset",
  dusk: "dusk",
  twilight: "dusk",
  evening: "dusk",
  night: "night",
  midnight: "night",
  nighttime: "night",
};

const WEATHER_WORDS: Record<string, Weather> = {
  mist: "mist",
  misty: "mist",
  fog: "mist",
  foggy: "mist",
  haze: "mist",
  hazy: "mist",
  rain: "rain",
  rainy: "rain",
  raining: "rain",
  rainfall: "rain",
  drizzle: "rain",
  downpour: "rain",
  snow: "snow",
  snowy: "snow",
  snowfall: "snow",
  snowing: "snow",
  snowflakes: "snow",
  winter: "snow",
  storm: "storm",
  stormy: "storm",
  thunderstorm: "storm",
  lightning: "storm",
  thunder: "storm",
  clear: "clear",
  cloudless: "clear",
  sunny: "clear",
};

const SUBJECT_WORDS: Record<string, Subject> = {
  sky: "sky",
  skies: "sky",
  sun: "sun",
  sunlight: "rays",
  sunshine: "rays",
  sunbeams: "rays",
  rays: "rays",
  beams: "rays",
  moon: "moon",
  moonlight: "moon",
  moonlit: "moon",
  star: "stars",
  stars: "stars",
  starry: "stars",
  starlight: "stars",
  cloud: "clouds",
  clouds: "clouds",
  cloudy: "clouds",
  overcast: "clouds",
  mountain: "mountains",
  mountains: "mountains",
  peak: "mountains",
  peaks: "mountains",
  alpine: "mountains",
  hill: "hills",
  hills: "hills",
  dune: "dunes",
  dunes: "dunes",
  sand: "dunes",
  sandy: "dunes",
  desert: "dunes",
  lake: "water",
  sea: "water",
  ocean: "water",
  river: "water",
  water: "water",
  pond: "water",
  bay: "water",
  harbor: "water",
  harbour: "water",
  wave: "waves",
  waves: "waves",
  surf: "waves",
  reflection: "reflections",
  reflections: "reflections",
  reflected: "reflections",
  reflecting: "reflections",
  tree: "trees",
  trees: "trees",
  forest: "trees",
  woods: "trees",
  woodland: "trees",
  pine: "trees",
  pines: "trees",
  path: "path",
  trail: "path",
  road: "path",
  pathway: "path",
  house: "house",
  cabin: "house",
  cottage: "house",
  hut: "house",
  window: "windows",
  windows: "windows",
  building: "buildings",
  buildings: "buildings",
  city: "buildings",
  skyscrapers: "buildings",
  town: "buildings",
  sign: "signs",
  signs: "signs",
  neon: "signs",
  lighthouse: "lighthouse",
  boat: "boats",
  boats: "boats",
  ship: "boats",
  ships: "boats",
  sailboat: "boats",
  figure: "figure",
  person: "figure",
  man: "figure",
  woman: "figure",
  silhouette: "figure",
  umbrella: "figure",
  animal: "animal",
  camel: "animal",
  deer: "animal",
  horse: "animal",
  wolf: "animal",
  fox: "animal",
  rock: "rocks",
  rocks: "rocks",
  rocky: "rocks",
  cliff: "rocks",
  cliffs: "rocks",
  coast: "rocks",
  coastline: "rocks",
  ground: "ground",
  pavement: "ground",
  street: "ground",
  clearing: "ground",
  field: "ground",
  meadow: "ground",
  shore: "ground",
  lightning: "lightning",
  shimmer: "shimmer",
};

/** Mood words and the look each implies. */
export const MOODS: Readonly<Record<string, Look>> = {
  peaceful: { contrast: { min: 0.1, max: 0.2 }, saturation: { min: 0.2, max: 0.45 } },
  hopeful: { brightness: { min: 0.5, max: 0.72 }, warmth: { min: 0.04, max: 0.16 } },
  cheerful: { brightness: { min: 0.55, max: 0.8 }, saturation: { min: 0.4, max: 0.7 } },
  moody: { brightness: { min: 0.08, max: 0.28 }, saturation: { min: 0.15, max: 0.4 } },
  mysterious: { brightness: { min: 0.06, max: 0.26 }, contrast: { min: 0.14, max: 0.26 } },
  harsh: { brightness: { min: 0.55, max: 0.85 }, contrast: { min: 0.16, max: 0.3 } },
  vast: { contrast: { min: 0.08, max: 0.2 } },
  majestic: { contrast: { min: 0.18, max: 0.3 }, saturation: { min: 0.3, max: 0.6 } },
  cozy: { warmth: { min: 0.04, max: 0.16 } },
  warm: { warmth: { min: 0.03, max: 0.15 } },
  dreamy: { contrast: { min: 0.08, max: 0.18 }, saturation: { min: 0.25, max: 0.5 } },
  dramatic: { contrast: { min: 0.2, max: 0.34 }, brightness: { min: 0.1, max: 0.32 } },
  tense: { contrast: { min: 0.2, max: 0.34 }, saturation: { min: 0.05, max: 0.25 } },
  gloomy: { brightness: { min: 0.08, max: 0.3 }, saturation: { min: 0.05, max: 0.25 } },
  vibrant: { saturation: { min: 0.5, max: 0.85 } },
};

const MOOD_WORDS: Record<string, string> = {
  peaceful: "peaceful",
  serene: "peaceful",
  calm: "peaceful",
  tranquil: "peaceful",
  quiet: "peaceful",
  still: "peaceful",
  hopeful: "hopeful",
  uplifting: "hopeful",
  cheerful: "cheerful",
  joyful: "cheerful",
  happy: "cheerful",
  moody: "moody",
  melancholic: "moody",
  somber: "moody",
  mysterious: "mysterious",
  eerie: "mysterious",
  ominous: "mysterious",
  harsh: "harsh",
  scorching: "harsh",
  vast: "vast",
  majestic: "majestic",
  epic: "majestic",
  grand: "majestic",
  cozy: "cozy",
  cosy: "cozy",
  warm: "warm",
  dreamy: "dreamy",
  ethereal: "dreamy",
  dramatic: "dramatic",
  tense: "tense",
  gloomy: "gloomy",
  vibrant: "vibrant",
};

/** Every word the cue extractor reads, so wording can be checked for each. */
export function cueVocabulary(): string[] {
  return [
    ...new Set([
      ...Object.keys(COLOUR_WORDS),
      ...Object.keys(TIME_WORDS),
      ...Object.keys(WEATHER_WORDS),
      ...Object.keys(SUBJECT_WORDS),
      ...Object.keys(MOOD_WORDS),
    ]),
  ];
}

/** Words that strengthen the cues right after them, and by how much. */
export const EMPHASIS_WORDS: Readonly<Record<string, number>> = {
  vivid: 1,
  saturated: 1,
  intense: 1,
  intensely: 1,
  bright: 1,
  brilliant: 1,
  large: 1,
  huge: 1,
  big: 1,
  prominent: 1,
  dominant: 1,
  heavy: 1,
  dense: 1,
  thick: 1,
  driving: 1,
  violent: 1,
  raging: 1,
  strong: 1,
  deep: 1,
  deeply: 1,
  profoundly: 1,
  rich: 1,
  glowing: 1,
  blazing: 1,
  neon: 1,
  many: 1,
  countless: 1,
  crashing: 1,
  very: 0.5,
  full: 0.5,
};

/** Words that end the reach of an emphasis word. */
const STOP_WORDS = new Set([
  "a",
  "an",
  "the",
  "on",
  "in",
  "of",
  "with",
  "at",
  "over",
  "under",
  "into",
  "through",
  "between",
  "from",
  "to",
  "by",
  "around",
  "above",
  "below",
  "behind",
  "near",
  "leading",
  "covered",
]);

/** How many following words an emphasis word reaches. */
const EMPHASIS_REACH = 3;
/** Colours bind to a subject this many words after them (or, failing that, before them). */
const BIND_REACH = 4;
const MAX_STRENGTH = 4;

interface Hit {
  kind: CueKind;
  name: string;
  word: string;
  emphasis: number;
  subject?: Subject;
}

/** Splits text into clauses of lower-case words. */
export function tokenize(text: string): string[][] {
  return text
    .toLowerCase()
    .split(/[,.;:!?()\n]+/)
    .map((clause) =>
      clause
        .split(/[^a-z0-9']+/)
        .map((w) => w.replace(/'s$/, "").replace(/'/g, ""))
        .filter((w) => w.length > 0)
    )
    .filter((words) => words.length > 0);
}

/**
 * Reads the scene cues from a text, strongest emphasis per cue.
 *
 * @example
 * ```ts
 * import { extractCues } from "./scene_cues.ts";
 * const cues = extractCues("vivid orange sand dunes under a bright midday sun");
 * const orange = cues.find((c) => c.name === "orange");
 * if (orange?.strength !== 2 || orange.subjects[0] !== "dunes") throw new Error("unexpected");
 * ```
 */
export function extractCues(text: string): Cue[] {
  const hits: Hit[] = [];
  for (const clause of tokenize(text)) hits.push(...clauseHits(clause));
  const cues = new Map<string, Cue & { best: number; count: number }>();
  for (const hit of hits) {
    const key = `${hit.kind}:${hit.name}`;
    let cue = cues.get(key);
    if (!cue) {
      cue = {
        kind: hit.kind,
        name: hit.name,
        words: [],
        strength: 0,
        subjects: [],
        best: 0,
        count: 0,
      };
      cues.set(key, cue);
    }
    if (!cue.words.includes(hit.word)) cue.words.push(hit.word);
    if (hit.subject && !cue.subjects.includes(hit.subject)) cue.subjects.push(hit.subject);
    cue.best = Math.max(cue.best, 1 + hit.emphasis);
    cue.count++;
  }
  return [...cues.values()].map(({ best, count, ...cue }) => ({
    ...cue,
    strength: Math.min(MAX_STRENGTH, best + 0.5 * (count - 1)),
  }));
}

function clauseHits(words: string[]): Hit[] {
  const hits: Hit[] = [];
  // Subject positions, so colours can bind to what they describe.
  const subjectAt: (Subject | undefined)[] = words.map((w) => SUBJECT_WORDS[w]);
  const emphasisAt = (index: number): number => {
    let total = 0;
    for (let back = 1; back <= EMPHASIS_REACH; back++) {
      const word = words[index - back];
      if (word === undefined || STOP_WORDS.has(word)) break;
      total += EMPHASIS_WORDS[word] ?? 0;
    }
    return total;
  };
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const emphasis = emphasisAt(i);
    const next = words[i + 1];
    const afterNext = words[i + 2];
    // "snowy mountains" and "snow-capped peaks" are snow on the mountains, not falling snow.
    if (
      (word === "snow" || word === "snowy" || word === "snowcapped") &&
      [next, afterNext].some((w) => w !== undefined && SUBJECT_WORDS[w] === "mountains")
    ) {
      hits.push({ kind: "subject", name: "snowcaps", word, emphasis });
      continue;
    }
    const colour = COLOUR_WORDS[word];
    if (colour !== undefined) {
      const subject = bindSubject(subjectAt, i);
      hits.push({
        kind: "colour",
        name: colour,
        word,
        emphasis,
        ...(subject !== undefined && { subject }),
      });
    }
    const time = TIME_WORDS[word];
    if (time !== undefined) hits.push({ kind: "time", name: time, word, emphasis });
    const weather = WEATHER_WORDS[word];
    if (weather !== undefined) hits.push({ kind: "weather", name: weather, word, emphasis });
    const subject = subjectAt[i];
    if (subject !== undefined) hits.push({ kind: "subject", name: subject, word, emphasis });
    const mood = MOOD_WORDS[word];
    if (mood !== undefined) hits.push({ kind: "mood", name: mood, word, emphasis });
  }
  return hits;
}

function bindSubject(subjectAt: (Subject | undefined)[], index: number): Subject | undefined {
  for (let i = index + 1; i <= index + BIND_REACH && i < subjectAt.length; i++) {
    if (subjectAt[i] !== undefined) return subjectAt[i];
  }
  for (let i = index - 1; i >= 0 && i >= index - BIND_REACH; i--) {
    if (subjectAt[i] !== undefined) return subjectAt[i];
  }
  return undefined;
}

/** The text of a prompt's context (title, scene, mood), which the critic also judges against. */
export function contextText(spec: PromptSpec): string {
  return [spec.title, spec.scene, spec.mood].filter((s) => s !== undefined).join(". ");
}

/**
 * Merges cue lists, keeping each cue's greatest strength and every word and subject seen.
 */
export function mergeCues(...lists: Cue[][]): Cue[] {
  const merged = new Map<string, Cue>();
  for (const list of lists) {
    for (const cue of list) {
      const key = cueKey(cue);
      const seen = merged.get(key);
      if (!seen) {
        merged.set(key, { ...cue, words: [...cue.words], subjects: [...cue.subjects] });
        continue;
      }
      seen.strength = Math.max(seen.strength, cue.strength);
      for (const w of cue.words) if (!seen.words.includes(w)) seen.words.push(w);
      for (const s of cue.subjects) if (!seen.subjects.includes(s)) seen.subjects.push(s);
    }
  }
  return [...merged.values()];
}

/** A cue's identity: kind and name, e.g. `colour:orange`. */
export function cueKey(cue: Pick<Cue, "kind" | "name">): string {
  return `${cue.kind}:${cue.name}`;
}

/** Finds one cue by kind and name. */
export function findCue(cues: readonly Cue[], kind: CueKind, name: string): Cue | undefined {
  return cues.find((c) => c.kind === kind && c.name === name);
}

/** The strength of one cue, 0 when absent. */
export function strengthOf(cues: readonly Cue[], kind: CueKind, name: string): number {
  return findCue(cues, kind, name)?.strength ?? 0;
}

/**
 * How fully a cue of this strength is rendered, 0–1. A mention alone comes out faint, as it
 * does from real image models; each emphasis brings it closer to fully rendered.
 */
export function renderAmount(strength: number): number {
  if (strength <= 0) return 0;
  return 1 - Math.pow(0.55, strength);
}

/** Mean luma expected for each time of day. */
export const TIME_BRIGHTNESS: Readonly<Record<TimeOfDay, Range>> = {
  dawn: { min: 0.36, max: 0.58 },
  morning: { min: 0.48, max: 0.74 },
  noon: { min: 0.6, max: 0.86 },
  afternoon: { min: 0.5, max: 0.78 },
  sunset: { min: 0.28, max: 0.5 },
  dusk: { min: 0.16, max: 0.34 },
  night: { min: 0.04, max: 0.2 },
};

/** Warmth expected for each time of day. */
export const TIME_WARMTH: Readonly<Record<TimeOfDay, Range>> = {
  dawn: { min: 0.02, max: 0.16 },
  morning: { min: -0.02, max: 0.12 },
  noon: { min: -0.12, max: 0.08 },
  afternoon: { min: 0, max: 0.14 },
  sunset: { min: 0.06, max: 0.24 },
  dusk: { min: -0.1, max: 0.12 },
  night: { min: -0.2, max: -0.02 },
};

/** The look each kind of weather implies. */
export const WEATHER_LOOKS: Readonly<Record<Weather, Look>> = {
  mist: { contrast: { min: 0.06, max: 0.16 }, saturation: { min: 0.08, max: 0.32 } },
  rain: { saturation: { min: 0.1, max: 0.45 } },
  snow: { saturation: { min: 0.04, max: 0.3 } },
  storm: { brightness: { min: 0.1, max: 0.34 }, contrast: { min: 0.16, max: 0.32 } },
  clear: { saturation: { min: 0.35, max: 0.75 } },
};

/** One contribution to an expected property, and the cue it came from. */
export interface LookSource {
  range: Range;
  cue: Cue;
}

/**
 * The look a set of cues implies, per property, with where each expectation came from.
 * Time of day sets brightness and warmth; weather and moods add their own ranges.
 */
export function lookSources(cues: readonly Cue[]): Record<LookProperty, LookSource[]> {
  const out: Record<LookProperty, LookSource[]> = {
    brightness: [],
    contrast: [],
    saturation: [],
    warmth: [],
  };
  const add = (look: Look, cue: Cue) => {
    for (const p of LOOK_PROPERTIES) {
      const range = look[p];
      if (range) out[p].push({ range, cue });
    }
  };
  for (const cue of cues) {
    if (cue.kind === "time") {
      const time = cue.name as TimeOfDay;
      add({ brightness: TIME_BRIGHTNESS[time], warmth: TIME_WARMTH[time] }, cue);
    } else if (cue.kind === "weather") {
      add(WEATHER_LOOKS[cue.name as Weather], cue);
    } else if (cue.kind === "mood") {
      const look = MOODS[cue.name];
      if (look) add(look, cue);
    }
  }
  return out;
}

/**
 * Combines several ranges for one property into a single target: the centre is the mean of the
 * centres weighted by `weight`, the width the mean width.
 */
export function combineRanges(
  sources: readonly LookSource[],
  weight: (cue: Cue) => number = () => 1,
): Range | undefined {
  let total = 0;
  let centre = 0;
  let half = 0;
  for (const { range, cue } of sources) {
    const w = weight(cue);
    if (w <= 0) continue;
    total += w;
    centre += w * (range.min + range.max) / 2;
    half += w * (range.max - range.min) / 2;
  }
  if (total === 0) return undefined;
  centre /= total;
  half /= total;
  return { min: centre - half, max: centre + half };
}

/** The time of day most strongly asked for, if any (the first named wins a tie). */
export function dominantTime(cues: readonly Cue[]): Cue | undefined {
  let best: Cue | undefined;
  for (const cue of cues) {
    if (cue.kind === "time" && (!best || cue.strength > best.strength)) best = cue;
  }
  return best;
}

/** A small deterministic string hash, for seeding and for telling texts apart. */
export const hashString: (text: string) => number = fnv1a32;
