/**
 * Read and validate prompt files. Every error names the file, the prompt (index and id) and
 * the field, and says what was expected.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { InputError } from "./errors.ts";
import { CONTROL_CHARS, escapeControls } from "./terminal_text.ts";

/** One prompt entry with its context. */
export interface PromptSpec {
  id: string;
  prompt: string;
  title?: string;
  scene?: string;
  mood?: string;
  /** Fields beyond the known ones, kept and passed through to metadata. */
  extra: Record<string, unknown>;
}

/** Limits that keep a typo (or a hostile file) from costing money or memory. */
export const PROMPT_LIMITS = {
  /** Largest prompt file read, in bytes. */
  fileBytes: 10 * 1024 * 1024,
  /** Most prompts in one file. */
  prompts: 10_000,
  /** Longest prompt text, in characters. */
  promptChars: 4_000,
  /** Longest id, in characters. */
  idChars: 200,
  /**
   * Deepest nesting of objects and arrays in a field: the hash, the copies and the JSON written
   * for a prompt all walk its fields, and a field thousands of levels deep would overflow the
   * stack half-way through the batch.
   */
  depth: 32,
} as const;

const KNOWN = new Set(["id", "prompt", "title", "scene", "mood"]);

const optionalText = z.string({ error: "expected a string" }).optional();

const entrySchema = z.looseObject({
  id: z.string({
    error: (i) => i.input === undefined ? "is required (a non-empty string)" : "expected a string",
  })
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
  prompt: z.string({
    error: (i) => i.input === undefined ? "is required (a non-empty string)" : "expected a string",
  })
    .trim()
    .min(1, "must not be empty")
    .max(
      PROMPT_LIMITS.promptChars,
      `must be at most ${PROMPT_LIMITS.promptChars} characters`,
    ),
  title: optionalText,
  scene: optionalText,
  mood: optionalText,
});

/** Reads and validates one prompt file; throws {@linkcode InputError} naming what is wrong. */
export async function loadPromptFile(path: string): Promise<PromptSpec[]> {
  let bytes: Uint8Array;
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) {
      throw new InputError(`Cannot read prompt file '${path}': it is a directory, not a file`);
    }
    if (info.size > PROMPT_LIMITS.fileBytes) {
      throw new InputError(
        `Cannot read prompt file '${path}': it is ${info.size} bytes, the limit is ${PROMPT_LIMITS.fileBytes}`,
      );
    }
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof InputError) throw error;
    if (error instanceof Deno.errors.NotFound) {
      throw new InputError(`Cannot read prompt file '${path}': no such file`, { cause: error });
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new InputError(`Cannot read prompt file '${path}': permission denied`, {
        cause: error,
      });
    }
    throw new InputError(`Cannot read prompt file '${path}': ${(error as Error).message}`, {
      cause: error,
    });
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new InputError(`Cannot read prompt file '${path}': it is not valid UTF-8 text`, {
      cause: error,
    });
  }
  return parsePrompts(text, path);
}

/** Parses and validates prompt file text; `path` is only used in messages. */
export function parsePrompts(text: string, path: string): PromptSpec[] {
  if (text.trim() === "") {
    throw new InputError(
      `Cannot use prompt file '${path}': it is empty; expected {"prompts": [...]}`,
    );
  }
  // Strip the BOM before parsing and before counting columns, so line 1 is not off by one.
  const json = text.replace(/^\uFEFF/, "");
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (error) {
    throw new InputError(
      `Cannot parse prompt file '${path}': ${describeJsonError(json, error as Error)}`,
      { cause: error },
    );
  }
  if (Array.isArray(data)) {
    throw new InputError(
      `Cannot use prompt file '${path}': the top level is an array; expected an object {"prompts": [...]}`,
    );
  }
  if (data === null || typeof data !== "object") {
    throw new InputError(
      `Cannot use prompt file '${path}': the top level is ${
        typeName(data)
      }; expected an object {"prompts": [...]}`,
    );
  }
  const list = (data as Record<string, unknown>).prompts;
  if (list === undefined) {
    throw new InputError(
      `Cannot use prompt file '${path}': field 'prompts' is missing; expected {"prompts": [...]}`,
    );
  }
  if (!Array.isArray(list)) {
    throw new InputError(
      `Cannot use prompt file '${path}': field 'prompts' is ${typeName(list)}; expected an array`,
    );
  }
  if (list.length === 0) {
    throw new InputError(
      `Cannot use prompt file '${path}': field 'prompts' is an empty list; add at least one prompt`,
    );
  }
  if (list.length > PROMPT_LIMITS.prompts) {
    throw new InputError(
      `Cannot use prompt file '${path}': it has ${list.length} prompts, the limit is ${PROMPT_LIMITS.prompts}; split it into several files`,
    );
  }
  const specs: PromptSpec[] = [];
  const seen = new Map<string, number>();
  list.forEach((entry, index) => {
    const where = describeEntry(path, index, entry);
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      throw new InputError(`Invalid ${where}: expected an object, got ${typeName(entry)}`);
    }
    const parsed = entrySchema.safeParse(entry);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.path.join(".") || "(entry)";
      throw new InputError(`Invalid ${where}: field '${field}' ${issue.message}`);
    }
    for (const [field, value] of Object.entries(entry)) {
      if (nestingDepth(value, PROMPT_LIMITS.depth) > PROMPT_LIMITS.depth) {
        throw new InputError(
          `Invalid ${where}: field '${
            escapeControls(field)
          }' is nested more than ${PROMPT_LIMITS.depth} levels deep; flatten it`,
        );
      }
    }
    const { id, prompt, title, scene, mood } = parsed.data;
    const key = id.toLowerCase();
    const first = seen.get(key);
    if (first !== undefined) {
      throw new InputError(
        `Invalid ${where}: field 'id' duplicates prompt #${first + 1}` +
          (specs[first]!.id === id ? "" : ` ('${specs[first]!.id}', ids differ only by case)`) +
          "; ids must be unique",
      );
    }
    seen.set(key, index);
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(entry)) if (!KNOWN.has(k)) extra[k] = v;
    specs.push({
      id,
      prompt,
      ...(title !== undefined && { title }),
      ...(scene !== undefined && { scene }),
      ...(mood !== undefined && { mood }),
      extra,
    });
  });
  return specs;
}

function describeEntry(path: string, index: number, entry: unknown): string {
  const id = entry && typeof entry === "object" && "id" in entry &&
      typeof (entry as { id: unknown }).id === "string"
    ? ` (id '${escapeControls((entry as { id: string }).id)}')`
    : "";
  return `prompt #${index + 1}${id} in '${escapeControls(path)}'`;
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

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const t = typeof value;
  return t === "object" ? "an object" : `a ${t}`;
}

/**
 * V8's JSON errors give a character position; people want line and column. Some V8 errors
 * ("Unexpected token ']', ... is not valid JSON", as for a trailing comma in an array) give no
 * position and quote the whole text instead, so the position is found by scanning.
 */
function describeJsonError(text: string, error: Error): string {
  const reason = error.message
    .replace(/\s*\(line \d+ column \d+\)$/, "")
    .replace(/, (\.\.\.)?"[\s\S]*" is not valid JSON$/, "");
  const match = /position (\d+)/.exec(error.message);
  const position = match ? Number(match[1]) : jsonErrorOffset(text);
  const before = text.slice(0, position);
  const line = before.split("\n").length;
  const column = position - before.lastIndexOf("\n");
  return `invalid JSON at line ${line}, column ${column}: ${reason}`;
}

/** Offset of the first JSON syntax error in `text` (its length when the text just ends). */
function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw new SyntaxError("JSON syntax error", { cause: i });
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const expect = (char: string) => text[i] === char ? i++ : fail();
  const string = () => {
    expect('"');
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) fail();
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? "x")) fail();
      }
      i++;
    }
    expect('"');
  };
  const value = (): void => {
    space();
    const char = text[i];
    if (char === "{" || char === "[") {
      const close = char === "{" ? "}" : "]";
      i++;
      space();
      if (text[i] === close) return void i++;
      for (;;) {
        if (close === "}") {
          space();
          string();
          space();
          expect(":");
        }
        value();
        space();
        if (text[i] === close) return void i++;
        expect(",");
      }
    }
    if (char === '"') return string();
    const token = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
    token.lastIndex = i;
    if (!token.test(text)) fail();
    i = token.lastIndex;
  };
  try {
    value();
    space();
    if (i < text.length) fail();
  } catch (error) {
    if (error instanceof SyntaxError) return Math.min(error.cause as number, text.length);
    // Nesting too deep to scan: the furthest point reached is the best guess.
    if (error instanceof RangeError) return i;
    throw error;
  }
  return text.length;
}

/**
 * Content hash of a prompt, its context and the settings that change its result: equal hashes
 * mean an earlier result can be reused, so resume and watch mode redo only what changed.
 */
export function promptHash(spec: PromptSpec, settings: Record<string, unknown>): string {
  const { id, prompt, title, scene, mood, extra } = spec;
  return createHash("sha256")
    .update(canonicalJson({ id, prompt, title, scene, mood, extra, settings }))
    .digest("hex")
    .slice(0, 16);
}

/** JSON with object keys sorted, so equal content always hashes equal. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
