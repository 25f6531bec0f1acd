/**
 * Checks the entries of a prompt file, whatever its format, and collects every problem: a file
 * with ten bad prompts is fixed in one pass, not ten.
 *
 * @module
 */
import { z } from "zod";
import { InputError } from "../errors.ts";
import { iterationsSchema, seedSchema, sizeSchema, targetScoreSchema } from "../schema.ts";
import { CONTROL_CHARS, escapeControls } from "../terminal_text.ts";
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
}

const KNOWN = new Set<string>(["id", "prompt", "title", "scene", "mood", ...SETTING_NAMES]);

const optionalText = z.string({ error: "expected a string" }).optional();

const required = (i: { input: unknown }) =>
  i.input === undefined ? "is required (a non-empty string)" : "expected a string";

/** The largest `steps` any endpoint takes; a typo of 5000 fails here, not at the service. */
const MAX_STEPS = 100;

const entrySchema = z.looseObject({
  id: z.string({ error: required })
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
    }),
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
});

/** Checks every entry; a duplicate id, a bad field or a too-deep value is one problem each. */
export function validateEntries(path: string, entries: RawEntry[]): ReadResult {
  const specs: PromptSpec[] = [];
  const problems: string[] = [];
  const seen = new Map<string, { id: string; label: string }>();
  for (const { label, value } of entries) {
    const where = describeEntry(path, label, value);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      problems.push(`Invalid ${where}: expected an object, got ${typeName(value)}`);
      continue;
    }
    const before = problems.length;
    const parsed = entrySchema.safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = escapeControls(issue.path.join(".")) || "(entry)";
        problems.push(`Invalid ${where}: field '${field}' ${readable(issue)}`);
      }
    }
    for (const [field, fieldValue] of Object.entries(value)) {
      if (nestingDepth(fieldValue, PROMPT_LIMITS.depth) > PROMPT_LIMITS.depth) {
        problems.push(
          `Invalid ${where}: field '${
            escapeControls(field)
          }' is nested more than ${PROMPT_LIMITS.depth} levels deep; flatten it`,
        );
      }
    }
    if (!parsed.success || problems.length > before) continue;
    const { id, prompt, title, scene, mood } = parsed.data;
    const key = id.toLowerCase();
    const first = seen.get(key);
    if (first !== undefined) {
      problems.push(
        `Invalid ${where}: field 'id' duplicates ${first.label}` +
          (first.id === id ? "" : ` ('${escapeControls(first.id)}', ids differ only by case)`) +
          "; ids must be unique",
      );
      continue;
    }
    seen.set(key, { id, label });
    const settings: PromptSettings = {};
    for (const name of SETTING_NAMES) {
      const setting = parsed.data[name];
      if (setting !== undefined) (settings as Record<string, unknown>)[name] = setting;
    }
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (!KNOWN.has(k)) extra[k] = v;
    specs.push({
      id,
      prompt,
      ...(title !== undefined && { title }),
      ...(scene !== undefined && { scene }),
      ...(mood !== undefined && { mood }),
      ...(Object.keys(settings).length > 0 && { settings }),
      extra,
    });
  }
  return { specs, problems };
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
