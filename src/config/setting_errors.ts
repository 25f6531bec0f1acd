/**
 * A failed settings check as a message a person can act on: which flag, variable or config
 * key, what it expects (read from the setting's own schema, so the text cannot drift from the
 * check) and what it got. zod's own wording ("Too small: expected number to be >0") never
 * reaches the user.
 *
 * @module
 */
import type { z } from "zod";
import { nearest } from "./parse_args.ts";

/** Where a value came from: a flag, an environment variable, or a file. */
export interface Origin {
  /** `command line`, `config file 'x.json'`, `replayed run 'run.json'`, `environment variable X`. */
  label: string;
  /** The flag that gave it, as typed: `--max-cost`. */
  flag?: string;
  /** The environment variable that gave it, and whether it came from `.env`. */
  env?: { name: string; dotenv: boolean };
}

/** What {@linkcode settingMessage} needs about the failed check. */
export interface SettingProblem {
  issue: z.core.$ZodIssue;
  /** The whole schema the settings were checked against. */
  schema: z.ZodType;
  /** The merged settings as given, before any transform. */
  input: Record<string, unknown>;
  /** Where the failing value came from, and the path of the value that source gave. */
  origin?: { origin: Origin; path: readonly PropertyKey[] };
  /** Whether the value is a key, never to be shown. */
  secret?: boolean;
}

/** The message for one failed settings check, in the project's style. */
export function settingMessage(problem: SettingProblem): string {
  const { issue, schema, input } = problem;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    const path = [...issue.path, key];
    const known = keysOf(schemaAt(schema, issue.path));
    const near = nearest(key, known);
    return `Cannot use '${path.join(".")}'${
      from(problem.origin?.origin)
    }: there is no such setting${
      near === undefined ? "" : `; did you mean '${[...issue.path, near].join(".")}'?`
    } (see README, Configuration)`;
  }
  const path = issue.path;
  const expects = expectation(issue, schemaAt(schema, path), path);
  const source = problem.origin;
  const given = source?.path ?? path;
  // What the source gave can sit above the failing part: `--size 10x10` fails at size.width.
  const part = path.slice(given.length).map(String);
  const want = part.length === 0 ? expects : `'${part.join(".")}' to be ${expects}`;
  const current = valueAt(input, given);
  const origin = source?.origin;
  if (problem.secret) {
    const name = origin?.flag ?? origin?.env?.name ?? `'${path.join(".")}'${from(origin)}`;
    return `Cannot use ${name}: expected ${want} (the value is a key, so it is not shown)`;
  }
  if (origin?.flag !== undefined) {
    return `Cannot use ${origin.flag} ${typed(current)}: expected ${want}`;
  }
  if (origin?.env !== undefined) {
    return `Cannot use ${origin.env.name}=${typed(current)}${
      origin.env.dotenv ? " from .env" : " from the environment"
    }: expected ${want}`;
  }
  return `Cannot use '${path.join(".") || "(settings)"}'${
    from(origin)
  }: expected ${want}: current value is ${
    show(part.length === 0 ? current : valueAt(input, path) ?? current)
  }`;
}

function from(origin: Origin | undefined): string {
  return origin === undefined ? "" : ` from ${origin.label}`;
}

/** The value, quoted as a person would type it. */
function show(value: unknown): string {
  if (typeof value === "string") return `'${value}'`;
  if (value === undefined) return "nothing";
  return JSON.stringify(value);
}

/** A command-line or environment value as typed: bare, unless it needs quotes to be seen. */
function typed(value: unknown): string {
  return typeof value === "string" && /^[\w.,:/+@-]+$/.test(value) ? value : show(value);
}

/**
 * What the setting expects: a message the schema wrote for people (it starts with
 * "expected"), else a description of the schema, else zod's words without its jargon.
 */
function expectation(
  issue: z.core.$ZodIssue,
  schema: z.ZodType | undefined,
  path: readonly PropertyKey[],
): string {
  const own = /^expected (.*?)(?:: current value is .*)?$/s.exec(issue.message);
  if (own) return own[1]!;
  const described = schema === undefined ? undefined : describe(schema, path);
  if (described !== undefined) return described;
  return issue.message.replace(/^(Invalid input|Invalid option|Too small|Too big): expected /, "");
}

/** A schema's accepted values in words: "a whole number from 1 to 20", "one of png, jpeg". */
export function describe(schema: z.ZodType, path: readonly PropertyKey[] = []): string | undefined {
  const s = unwrap(schema);
  const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case "number":
      return describeNumber(s as unknown as z.ZodNumber, unitOf(path));
    case "string": {
      if (def.format === "url") return "a URL such as https://example.com";
      return (s as unknown as z.ZodString).minLength ? "a non-empty text" : "a text";
    }
    case "boolean":
      return "true or false";
    case "enum":
      return `one of ${Object.values(def.entries as Record<string, string>).join(", ")}`;
    case "literal":
      return (def.values as unknown[]).map((v) => JSON.stringify(v)).join(" or ");
    case "array": {
      const each = describe(def.element as z.ZodType);
      if (each === undefined) return "a list";
      return /^a (non-empty )?text$/.test(each)
        ? "a list of texts"
        : `a list whose every item is ${each}`;
    }
    case "record": {
      const each = describe(def.valueType as z.ZodType, path);
      return each === undefined ? "an object" : `an object whose every value is ${each}`;
    }
    case "object":
      return `an object with ${Object.keys(def.shape as object).join(", ")}`;
    case "union": {
      const parts = (def.options as z.ZodType[]).map((o) => describe(o, path));
      return parts.every((p) => p !== undefined) ? parts.join(", or ") : undefined;
    }
    case "pipe":
      return describe(def.in as z.ZodType, path);
    default:
      return undefined;
  }
}

function describeNumber(n: z.ZodNumber, unit: string | undefined): string {
  const checks =
    ((n._zod.def.checks ?? []) as unknown as Array<{ _zod: { def: Record<string, unknown> } }>)
      .map((c) => c._zod.def);
  let min: number | undefined;
  let max: number | undefined;
  for (const c of checks) {
    const value = c.value as number;
    if (c.check === "greater_than") min = c.inclusive ? value : n.isInt ? value + 1 : value;
    if (c.check === "less_than") max = c.inclusive ? value : n.isInt ? value - 1 : value;
  }
  const exclusiveMin = checks.some((c) => c.check === "greater_than" && !c.inclusive) && !n.isInt;
  const kind = `${n.isInt ? "a whole number" : "a number"}${unit ? ` of ${unit}` : ""}`;
  if (min !== undefined && max !== undefined) return `${kind} from ${min} to ${max}`;
  if (min !== undefined) return exclusiveMin ? `${kind} above ${min}` : `${kind} of ${min} or more`;
  if (max !== undefined) return `${kind} of at most ${max}`;
  return kind;
}

/** The unit a numeric setting is in, from its name. */
function unitOf(path: readonly PropertyKey[]): string | undefined {
  const key = String(path.at(-1) ?? "");
  if (key.endsWith("Ms")) return "milliseconds";
  if (key === "maxCost" || key.endsWith("Usd")) return "US dollars";
  return undefined;
}

/** The schema below wrappers that do not change what is accepted (default, optional, …). */
function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (;;) {
    const def = s._zod.def as unknown as { type: string; innerType?: z.ZodType };
    if (def.innerType === undefined) return s;
    s = def.innerType;
  }
}

/** The keys an object setting takes: its shape's, or a record's named keys. */
function keysOf(schema: z.ZodType | undefined): string[] {
  if (schema === undefined) return [];
  const def = unwrap(schema)._zod.def as unknown as Record<string, unknown> & { type: string };
  if (def.type === "object") return Object.keys(def.shape as object);
  if (def.type === "record") {
    const keys = unwrap(def.keyType as z.ZodType)._zod.def as unknown as { entries?: object };
    return keys.entries === undefined ? [] : Object.values(keys.entries).map(String);
  }
  return [];
}

/** The schema of the setting at `path`, where one can be found. */
export function schemaAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let node: z.ZodType | undefined = schema;
  for (const key of path) {
    if (node === undefined) return undefined;
    node = childOf(node, String(key));
  }
  return node;
}

function childOf(schema: z.ZodType, key: string): z.ZodType | undefined {
  const def = unwrap(schema)._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case "object":
      return (def.shape as Record<string, z.ZodType>)[key];
    case "record":
      return def.valueType as z.ZodType;
    case "array":
      return def.element as z.ZodType;
    case "pipe":
      // The output's checks are the stricter: `--size 10x10` parses, then fails its range.
      return childOf(def.out as z.ZodType, key) ?? childOf(def.in as z.ZodType, key);
    case "union":
      for (const option of def.options as z.ZodType[]) {
        const child = childOf(option, key);
        if (child !== undefined) return child;
      }
      return undefined;
    default:
      return undefined;
  }
}

/**
 * A value that a coercing number setting would take though no one means it as a number:
 * `true` (1), `null`, `""` or `[]` (0), `[3]` (3). Numbers and numeric text pass; the first
 * other value is returned as an issue, for {@linkcode settingMessage}.
 */
export function looseNumberIssue(
  schema: z.ZodType,
  input: unknown,
  path: PropertyKey[] = [],
): z.core.$ZodIssue | undefined {
  const at = schemaAt(schema, path);
  if (at === undefined) return undefined;
  if (coercesNumber(at)) {
    // An object or other text is for the union's other options (`{"generate": 2}`, `"auto"`).
    const fine = typeof input === "number" || input === undefined ||
      (typeof input === "string" && input.trim() !== "") ||
      (input !== null && typeof input === "object" && !Array.isArray(input) &&
        !isNumberOnly(at));
    if (fine) return undefined;
    return {
      code: "invalid_type",
      expected: "number",
      path,
      input,
      message: "",
    } as z.core.$ZodIssue;
  }
  if (input === null || typeof input !== "object" || Array.isArray(input)) return undefined;
  for (const [key, value] of Object.entries(input)) {
    const issue = looseNumberIssue(schema, value, [...path, key]);
    if (issue !== undefined) return issue;
  }
  return undefined;
}

/** Whether `schema` (or one of its options) turns any input into a number. */
function coercesNumber(schema: z.ZodType): boolean {
  const def = unwrap(schema)._zod.def as unknown as Record<string, unknown> & { type: string };
  if (def.type === "number") return def.coerce === true;
  if (def.type === "pipe") return coercesNumber(def.in as z.ZodType);
  if (def.type === "union") return (def.options as z.ZodType[]).some(coercesNumber);
  return false;
}

function isNumberOnly(schema: z.ZodType): boolean {
  return (unwrap(schema)._zod.def as unknown as { type: string }).type === "number";
}

/** The value at `path` in `input`, or the last one on the way there. */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let node = input;
  for (const key of path) {
    if (node === null || typeof node !== "object") return node;
    node = (node as Record<string, unknown>)[key as string];
  }
  return node;
}
