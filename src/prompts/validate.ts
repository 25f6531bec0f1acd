/**
 * Checks the entries of a prompt file, whatever its format, and collects every problem: a file
 * with ten bad prompts is fixed in one pass, not ten.
 *
 * @module
 */
import { z } from "zod";
import { InputError } from "../errors.ts";
import { iterationsSchema, seedSchema, sizeSchema, targetScoreSchema } from "../config/schema.ts";
import { CHECK_KINDS } from "../providers/critique.ts";
import { CONTROL_CHARS, escapeControls } from "../util/terminal_text.ts";
import { groupRows, type Row } from "./group.ts";
import { idFromText } from "./ids.ts";
import { PROMPT_LIMITS, type PromptSettings, type PromptSpec, SETTING_NAMES } from "./spec.ts";

/** One entry as read from a file, with where it is (`prompt #3`, `prompt at line 5`). */
export interface RawEntry {
  label: string;
  value: unknown;
}

/** What a file held: the prompts that passed, and a message for each problem found. */
export interface ReadResult {
  specs: PromptSpec[];
  problems: string[];
  /** How the file was read, when anything was found rather than named as usual. */
  note?: string;
}

const KNOWN = new Set<string>([
  "id",
  "prompt",
  "title",
  "scene",
  "mood",
  "checks",
  ...SETTING_NAMES,
]);

/** {@linkcode CONTROL_CHARS} without its global flag, for a test that keeps no state. */
const CONTROL = new RegExp(CONTROL_CHARS.source);

const optionalText = z.string({ error: "expected a string" }).optional();

const required = (i: { input: unknown }) =>
  i.input === undefined ? "is required (a non-empty string)" : "expected a string";

/** The largest `steps` any endpoint takes; a typo of 5000 fails here, not at the service. */
const MAX_STEPS = 100;

const idSchema = z.string({ error: required })
  .trim()
  .min(1, "must not be empty")
  .max(PROMPT_LIMITS.idChars, `must be at most ${PROMPT_LIMITS.idChars} characters`)
  .superRefine((s, ctx) => {
    // An id is printed on terminals and in logs: an escape or a bidi override in it would
    // draw something other than the id there.
    const found = new RegExp(CONTROL_CHARS.source).exec(s);
    if (found) {
      ctx.addIssue({
        code: "custom",
        message:
          `must not contain control characters or bidirectional formatting characters: found U+${
            found[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")
          } at character ${found.index + 1}; remove it`,
      });
    }
  });

/** One check: a question, or `{"question": …, "kind": …}`. */
const checkSchema = z.preprocess(
  (value) => typeof value === "string" ? { question: value } : value,
  z.looseObject({
    question: z.string({ error: required })
      .trim()
      .min(1, "must not be empty")
      .max(PROMPT_LIMITS.checkChars, `must be at most ${PROMPT_LIMITS.checkChars} characters`),
    kind: z.enum(CHECK_KINDS, { error: `expected one of ${CHECK_KINDS.join(", ")}` })
      .default("entity"),
  }, { error: "expected a question or an object with a 'question'" }),
);

const entrySchema = z.looseObject({
  id: idSchema,
  prompt: z.string({ error: required })
    .trim()
    .min(1, "must not be empty")
    .max(PROMPT_LIMITS.promptChars, `must be at most ${PROMPT_LIMITS.promptChars} characters`),
  title: optionalText,
  scene: optionalText,
  mood: optionalText,
  // The same schemas as the flags, so `"size": "10x10"` fails as `--size 10x10` does.
  size: sizeSchema.optional(),
  seed: seedSchema.optional(),
  negativePrompt: z.string({ error: "expected a string" }).trim()
    .min(1, "must not be empty; leave the field out instead")
    .max(PROMPT_LIMITS.promptChars, `must be at most ${PROMPT_LIMITS.promptChars} characters`)
    .optional(),
  model: z.string({ error: "expected a model id or alias (see --help)" }).trim()
    .min(1, "must not be empty; leave the field out to use the batch's model")
    .max(200, "must be at most 200 characters")
    .optional(),
  iterations: iterationsSchema.optional(),
  targetScore: targetScoreSchema.optional(),
  steps: z.coerce.number().int().min(1).max(MAX_STEPS).optional(),
  // A question, or a list of them: a row of a table gives one, and rows sharing an id add up.
  checks: z.preprocess(
    (value) =>
      typeof value === "string" ||
        (value !== null && !Array.isArray(value) && typeof value === "object")
        ? [value]
        : value,
    z.array(checkSchema, { error: "expected a list of questions" })
      .max(PROMPT_LIMITS.checks, `must hold at most ${PROMPT_LIMITS.checks} checks`),
  ).optional(),
});

/** The same, for a file whose ids are made from the text: it has none to check. */
const noIdSchema = entrySchema.extend({ id: idSchema.optional() });

/** Options for {@linkcode validateEntries}. */
export interface ValidateOptions {
  /** The file has no ids: each prompt's is made from its text. @default {false} */
  derivedIds?: boolean;
  /** The file's own name of a field, for messages: `{prompt: "Prompt"}`. @default {{}} */
  names?: Readonly<Record<string, string>>;
}

/**
 * Checks every entry; a bad field or a too-deep value is one problem each. Entries that share an
 * id are one prompt (a table's rows, one question each); ones that share an id but not their
 * prompt are a problem, as ids must be unique.
 */
export function validateEntries(
  path: string,
  entries: RawEntry[],
  options: ValidateOptions = {},
): ReadResult {
  const rows: Row[] = [];
  const problems: string[] = [];
  const names = options.names ?? {};
  const schema = options.derivedIds ? noIdSchema : entrySchema;
  const derived = options.derivedIds ?? false;
  for (const entry of entries) {
    const { value } = entry;
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      problems.push(
        `Invalid ${describeEntry(path, entry.label, value)}: expected an object, got ${
          typeName(value)
        }`,
      );
      continue;
    }
    const plain = plainSpec(value as Record<string, unknown>, derived);
    if (plain !== undefined) {
      rows.push({ source: entry, spec: plain });
      continue;
    }
    const where = describeEntry(path, entry.label, value);
    const before = problems.length;
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const [head, ...rest] = issue.path.map(String);
        const field = escapeControls([names[head ?? ""] ?? head, ...rest].join(".")) ||
          "(entry)";
        problems.push(`Invalid ${where}: field '${field}' ${readable(issue)}`);
      }
    }
    for (const [field, fieldValue] of Object.entries(value)) {
      if (nestingDepth(fieldValue, PROMPT_LIMITS.depth) > PROMPT_LIMITS.depth) {
        problems.push(
          `Invalid ${where}: field '${
            escapeControls(names[field] ?? field)
          }' is nested more than ${PROMPT_LIMITS.depth} levels deep; flatten it`,
        );
      }
    }
    if (!parsed.success || problems.length > before) continue;
    const { prompt, title, scene, mood, checks } = parsed.data;
    const id = parsed.data.id ?? idFromText(prompt);
    const settings: PromptSettings = {};
    for (const name of SETTING_NAMES) {
      const setting = parsed.data[name];
      if (setting !== undefined) (settings as Record<string, unknown>)[name] = setting;
    }
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (!KNOWN.has(k)) extra[k] = v;
    rows.push({
      source: entry,
      spec: {
        id,
        prompt,
        ...(title !== undefined && { title }),
        ...(scene !== undefined && { scene }),
        ...(mood !== undefined && { mood }),
        ...(Object.keys(settings).length > 0 && { settings }),
        ...(checks !== undefined && checks.length > 0 &&
          { checks: checks.map(({ question, kind }) => ({ question, kind })) }),
        extra,
      },
    });
  }
  const grouped = groupRows(path, rows, { names, derivedIds: derived });
  return { specs: grouped.specs, problems: [...problems, ...grouped.problems] };
}

/**
 * The spec of an entry that holds only an id and a prompt, both fine as they are, and context
 * of plain values: most entries of a large file, checked here at a fraction of the schema's
 * cost. Undefined for any other entry, which the schema then checks (and words any problem).
 */
function plainSpec(value: Record<string, unknown>, derived: boolean): PromptSpec | undefined {
  let extra: Record<string, unknown> | undefined;
  for (const key in value) {
    if (key === "id" || key === "prompt") continue;
    const cell = value[key];
    if (KNOWN.has(key) || (cell !== null && typeof cell === "object")) return undefined;
    (extra ??= {})[key] = cell;
  }
  const text = value.prompt;
  if (typeof text !== "string") return undefined;
  const prompt = text.trim();
  if (prompt === "" || prompt.length > PROMPT_LIMITS.promptChars) return undefined;
  let id: string;
  if (!derived || value.id !== undefined) {
    if (typeof value.id !== "string") return undefined;
    id = value.id.trim();
    if (id === "" || id.length > PROMPT_LIMITS.idChars || CONTROL.test(id)) return undefined;
  } else id = idFromText(prompt);
  return { id, prompt, extra: extra ?? {} };
}

/**
 * One error for every problem found, listing the first {@linkcode PROMPT_LIMITS.problems} and
 * counting the rest; a single problem is its own message.
 */
export function problemsError(problems: string[]): InputError {
  if (problems.length === 1) return new InputError(problems[0]!);
  const shown = problems.slice(0, PROMPT_LIMITS.problems);
  const more = problems.length - shown.length;
  return new InputError(
    [
      `Cannot use the prompt files as ${problems.length} problems were found; fix them and run again:`,
      ...shown.map((p) => `  ${p}`),
      ...(more > 0 ? [`  … and ${more} more`] : []),
    ].join("\n"),
  );
}

/** zod's text for a number says "expected number, received NaN": say it for people. */
function readable(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_type" && issue.expected === "number") {
    return "expected a number";
  }
  if (issue.code === "too_small" || issue.code === "too_big") {
    const { minimum, maximum, inclusive } = issue as {
      minimum?: unknown;
      maximum?: unknown;
      inclusive?: boolean;
    };
    const bound = issue.code === "too_small"
      ? (inclusive === false ? "more than" : "at least")
      : (inclusive === false ? "less than" : "at most");
    if (issue.origin === "number") return `must be ${bound} ${String(minimum ?? maximum)}`;
  }
  if (issue.code === "invalid_type" && issue.expected === "int") return "expected a whole number";
  return issue.message;
}

function describeEntry(path: string, label: string, entry: unknown): string {
  const id = entry && typeof entry === "object" && "id" in entry &&
      typeof (entry as { id: unknown }).id === "string"
    ? ` (id '${escapeControls((entry as { id: string }).id)}')`
    : "";
  return `${label}${id} in '${escapeControls(path)}'`;
}

/**
 * Levels of objects and arrays in `value` (0 for a scalar), counted without recursion and only
 * up to just past `limit`, so a hostile file costs no more than a legal one.
 */
function nestingDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== "object") continue;
    deepest = Math.max(deepest, depth);
    if (depth > limit) return depth;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** `a string`, `an array`, `null`: how a value's type reads in a message. */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const t = typeof value;
  return t === "object" ? "an object" : `a ${t}`;
}
