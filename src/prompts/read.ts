/**
 * Reads prompt files: JSON (`{"prompts": [...]}`, the default), JSON Lines (`.jsonl`, one
 * prompt per line) and CSV (`.csv`, a header row naming the fields). Every error names the
 * file, the prompt (its index, line or row, and id) and the field, and says what was expected.
 *
 * @module
 */
import { parse as parseCsv } from "csv-parse/sync";
import { InputError } from "../errors.ts";
import { escapeControls } from "../terminal_text.ts";
import { PROMPT_LIMITS, type PromptSpec } from "./spec.ts";
import {
  problemsError,
  type RawEntry,
  type ReadResult,
  typeName,
  validateEntries,
} from "./validate.ts";

/** The formats a prompt file may have, told apart by the file's extension. */
export type PromptFormat = "json" | "jsonl" | "csv";

/** `.jsonl` (or `.ndjson`) and `.csv` by extension, any other file JSON. */
export function formatOf(path: string): PromptFormat {
  const ext = /\.([^./\\]+)$/.exec(path)?.[1]?.toLowerCase();
  return ext === "jsonl" || ext === "ndjson" ? "jsonl" : ext === "csv" ? "csv" : "json";
}

/** Reads and validates one prompt file; throws {@linkcode InputError} naming what is wrong. */
export async function loadPromptFile(path: string): Promise<PromptSpec[]> {
  const { specs, problems } = await readPromptFile(path);
  if (problems.length > 0) throw problemsError(problems);
  return specs;
}

/**
 * Reads one prompt file and checks every prompt in it, returning the problems rather than
 * throwing on the first, so several files are reported in one pass. A file that cannot be
 * read or parsed at all still throws {@linkcode InputError}.
 */
export async function readPromptFile(path: string): Promise<ReadResult> {
  const shown = escapeControls(path);
  let bytes: Uint8Array;
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) {
      throw new InputError(`Cannot read prompt file '${shown}': it is a directory, not a file`);
    }
    if (info.size > PROMPT_LIMITS.fileBytes) {
      throw new InputError(
        `Cannot read prompt file '${shown}': it is ${info.size} bytes, the limit is ${PROMPT_LIMITS.fileBytes}`,
      );
    }
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof InputError) throw error;
    if (error instanceof Deno.errors.NotFound) {
      throw new InputError(`Cannot read prompt file '${shown}': no such file`, { cause: error });
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new InputError(`Cannot read prompt file '${shown}': permission denied`, {
        cause: error,
      });
    }
    throw new InputError(`Cannot read prompt file '${shown}': ${(error as Error).message}`, {
      cause: error,
    });
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new InputError(`Cannot read prompt file '${shown}': it is not valid UTF-8 text`, {
      cause: error,
    });
  }
  return parsePromptText(text, path);
}

/** Parses and validates prompt file text; throws one {@linkcode InputError} for every problem. */
export function parsePrompts(text: string, path: string): PromptSpec[] {
  const { specs, problems } = parsePromptText(text, path);
  if (problems.length > 0) throw problemsError(problems);
  return specs;
}

/** Parses prompt file text in the format its path names; `path` is also used in messages. */
export function parsePromptText(text: string, path: string): ReadResult {
  const shown = escapeControls(path);
  const format = formatOf(path);
  if (text.trim() === "" || text.replace(/^\uFEFF/, "").trim() === "") {
    throw new InputError(
      `Cannot use prompt file '${shown}': it is empty; expected ${SHAPE[format]}`,
    );
  }
  // Strip the BOM before parsing and before counting columns, so line 1 is not off by one.
  const body = text.replace(/^\uFEFF/, "");
  const read = format === "jsonl"
    ? jsonLinesEntries(body, shown)
    : format === "csv"
    ? csvEntries(body, shown)
    : { entries: jsonEntries(body, shown), problems: [] };
  if (read.entries.length + read.problems.length > PROMPT_LIMITS.prompts) {
    throw new InputError(
      `Cannot use prompt file '${shown}': it has ${
        read.entries.length + read.problems.length
      } prompts, the limit is ${PROMPT_LIMITS.prompts}; split it into several files`,
    );
  }
  const checked = validateEntries(path, read.entries);
  return { specs: checked.specs, problems: [...read.problems, ...checked.problems] };
}

/** What each format looks like, for a message about a file that holds none of it. */
const SHAPE: Record<PromptFormat, string> = {
  json: `{"prompts": [...]}`,
  jsonl: `one JSON object per line, such as {"id": "fox", "prompt": "a red fox"}`,
  csv: "a header row such as id,title,scene,mood,prompt, then one prompt per row",
};

function jsonEntries(json: string, path: string): RawEntry[] {
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
  return list.map((value, index) => ({ label: `prompt #${index + 1}`, value }));
}

/** One prompt per line; blank lines are skipped, and a line that is not JSON is one problem. */
function jsonLinesEntries(text: string, path: string): { entries: RawEntry[]; problems: string[] } {
  const entries: RawEntry[] = [];
  const problems: string[] = [];
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") continue;
    const label = `prompt at line ${index + 1}`;
    try {
      entries.push({ label, value: JSON.parse(line) });
    } catch (error) {
      // Positions are within the line: "line 7, column 12" of the file.
      const described = describeJsonError(line, error as Error).replace(
        /^invalid JSON at line 1, column (\d+)/,
        "invalid JSON at column $1",
      );
      problems.push(`Invalid ${label} in '${path}': ${described}`);
    }
    if (entries.length + problems.length > PROMPT_LIMITS.prompts) break;
  }
  return { entries, problems };
}

/**
 * A header row naming the fields (`id,title,scene,mood,prompt`, and any per-prompt setting or
 * other column), then one prompt per row; quoted fields may hold commas, quotes and newlines.
 * An empty cell is a field left out.
 */
function csvEntries(text: string, path: string): { entries: RawEntry[]; problems: string[] } {
  let rows: Array<{ record: Record<string, string>; info: { records: number } }>;
  let header: string[] = [];
  try {
    rows = parseCsv(text, {
      columns: (names: string[]) => (header = names.map((n) => String(n).trim())),
      info: true,
      skip_empty_lines: true,
      bom: true,
    });
  } catch (error) {
    throw new InputError(
      `Cannot parse prompt file '${path}': ${
        escapeControls((error as Error).message)
      }; check the quotes and the number of fields on that line`,
      { cause: error },
    );
  }
  const missing = ["id", "prompt"].filter((name) => !header.includes(name));
  if (missing.length > 0) {
    throw new InputError(
      `Cannot use prompt file '${path}': its header row has no ${
        missing.map((m) => `'${m}'`).join(" or ")
      } column: current header is '${escapeControls(header.join(","))}'; expected ${SHAPE.csv}`,
    );
  }
  if (rows.length === 0) {
    throw new InputError(
      `Cannot use prompt file '${path}': it has a header row but no prompts; add at least one row`,
    );
  }
  const entries = rows.map(({ record, info }) => {
    const value: Record<string, string> = {};
    for (const [name, cell] of Object.entries(record)) {
      if (name !== "" && cell.trim() !== "") value[name] = cell;
    }
    // Rows as a spreadsheet numbers them: the header is row 1.
    return { label: `prompt at row ${info.records + 1}`, value };
  });
  return { entries, problems: [] };
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
