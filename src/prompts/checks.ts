/**
 * A prompt's own checks: the yes/no questions a prompt file asks of its images (DSG's question
 * column, a `checks` list, GenEval's `include`). They are the prompt's brief as they stand: no
 * call writes one, and every critique answers them.
 *
 * @module
 */
import { type Brief, CHECK_KINDS, type CheckKind } from "../providers/critique.ts";
import type { GivenCheck, PromptSpec } from "./spec.ts";

/**
 * The brief a prompt's own checks make, ids `c1`, `c2`, … in the file's order; undefined for a
 * prompt that gives none.
 *
 * @example
 * ```ts
 * import { givenBrief } from "./checks.ts";
 * const brief = givenBrief({
 *   checks: [{ question: "Is there a rubix cube?", kind: "entity" }],
 * });
 * if (brief?.checks[0]?.id !== "c1") throw new Error("not numbered");
 * ```
 */
export function givenBrief(spec: Pick<PromptSpec, "checks">): Brief | undefined {
  if (spec.checks === undefined || spec.checks.length === 0) return undefined;
  return {
    checks: spec.checks.map((check, i) => ({
      id: `c${i + 1}`,
      question: check.question,
      kind: check.kind,
    })),
  };
}

/**
 * A check's kind from a file's kind column: one of retake's kinds as it is, or DSG's categories
 * (`entity`, `attribute`, `relation`, `global`, `other`, refined by `category_detailed`: a
 * count, text rendering). Anything else is `entity`, which a failed check redraws for rather
 * than edits.
 */
export function checkKindOf(kind: string, detail?: string): CheckKind {
  const broad = kind.trim().toLowerCase();
  const fine = detail?.trim().toLowerCase() ?? "";
  if ((CHECK_KINDS as readonly string[]).includes(broad) && fine === "") return broad as CheckKind;
  if (fine === "count") return "count";
  if (fine === "text rendering" || fine === "font") return "text";
  if (fine === "lighting") return "lighting";
  if (fine === "style" || fine === "artist") return "style";
  if (broad === "global") return "style";
  if (broad === "attribute" || broad === "other") return "attribute";
  if ((CHECK_KINDS as readonly string[]).includes(broad)) return broad as CheckKind;
  return "entity";
}

/** One object GenEval asks for: its class, how many, and maybe a colour or a position. */
interface Included {
  class: string;
  count: number;
  color?: string;
  /** Where it is relative to another included object: `["left of", 0]`. */
  position?: [string, number];
}

/** Whether `value` is GenEval's `include`: a list of objects each with a `class`. */
export function isInclude(value: unknown): value is Included[] {
  return Array.isArray(value) && value.length > 0 &&
    value.every((item) =>
      item !== null && typeof item === "object" &&
      typeof (item as { class?: unknown }).class === "string" &&
      (item as { class: string }).class.trim() !== ""
    );
}

/**
 * GenEval's `include` as checks: each object is there (as many as asked), in its colour, where
 * it should be. GenEval's `exclude` only says "no more than that", which "exactly" already asks.
 */
export function checksFromInclude(include: readonly Included[]): GivenCheck[] {
  const checks: GivenCheck[] = [];
  for (const item of include) {
    const name = item.class.trim();
    const count = Number.isInteger(item.count) && item.count > 0 ? item.count : 1;
    checks.push(
      count === 1
        ? { question: `Is there ${article(name)} ${name}?`, kind: "entity" }
        : { question: `Are there exactly ${numberWord(count)} ${plural(name)}?`, kind: "count" },
    );
    if (typeof item.color === "string" && item.color.trim() !== "") {
      checks.push({
        question: count === 1
          ? `Is the ${name} ${item.color.trim()}?`
          : `Are the ${plural(name)} ${item.color.trim()}?`,
        kind: "attribute",
      });
    }
    const [relation, index] = Array.isArray(item.position) ? item.position : [];
    const other = typeof index === "number" ? include[index]?.class : undefined;
    if (typeof relation === "string" && typeof other === "string") {
      checks.push({
        question: `Is the ${name} ${RELATIONS[relation] ?? relation} the ${other.trim()}?`,
        kind: "relation",
      });
    }
  }
  return checks;
}

const RELATIONS: Record<string, string> = {
  "left of": "to the left of",
  "right of": "to the right of",
};

const NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

function numberWord(n: number): string {
  return NUMBERS[n] ?? String(n);
}

function article(noun: string): string {
  return /^[aeiou]/i.test(noun) ? "an" : "a";
}

/** COCO's class names (GenEval's) that do not take an `s`. */
const IRREGULAR: Record<string, string> = {
  person: "people",
  mouse: "mice",
  knife: "knives",
  sheep: "sheep",
  skis: "skis",
  scissors: "scissors",
  broccoli: "broccoli",
};

function plural(noun: string): string {
  const words = noun.split(" ");
  const last = words.pop()!;
  const many = IRREGULAR[last] ??
    (/(s|x|z|ch|sh)$/.test(last)
      ? `${last}es`
      : /[^aeiou]y$/.test(last)
      ? `${last.slice(0, -1)}ies`
      : `${last}s`);
  return [...words, many].join(" ");
}
