/**
 * Reads prompt files as their authors publish them: JSON (`{"prompts": [...]}`, or a list),
 * JSON Lines, CSV and TSV (a header row naming the fields), and text (`.txt`, one prompt a
 * line); standard input as `-`. The prompt, id and checks are found among the usual field names
 * ({@linkcode shapeOf}); a file without ids gets them from the text. Every error names the file,
 * the prompt (its index, line or row, and id) and the field, and says what was expected.
 *
 * @module
 */
import { parse as parseCsv } from "csv-parse/sync";
import { InputError } from "../errors.ts";
import { escapeControls } from "../util/terminal_text.ts";
import { detectFormat, formatOf, type PromptFormat, STDIN } from "./detect.ts";
import {
  describeShape,
  fieldNames,
  type FileShape,
  PROMPT_FIELDS,
  shapeEntry,
  shapeOf,
} from "./fields.ts";
import { PROMPT_LIMITS, type PromptFields, type PromptSpec } from "./spec.ts";
import {
  problemsError,
  type RawEntry,
  type ReadResult,
  typeName,
  validateEntries,
} from "./validate.ts";

export { formatOf, type PromptFormat, STDIN };

/** Reads and validates one prompt file; throws {@linkcode InputError} naming what is wrong. */
export async function loadPromptFile(
  path: string,
  fields: PromptFields = {},
): Promise<PromptSpec[]> {
  const { specs, problems } = await readPromptFile(path, fields);
  if (problems.length > 0) throw problemsError(problems);
  return specs;
}

/**
 * Reads one prompt file (`-`: standard input) and checks every prompt in it, returning the
 * problems rather than throwing on the first, so several files are reported in one pass. A file
 * that cannot be read or parsed at all still throws {@linkcode InputError}.
 */
export async function readPromptFile(
  path: string,
  fields: PromptFields = {},
  stdin: () => ReadableStream<Uint8Array> = () => Deno.stdin.readable,
): Promise<ReadResult> {
  const shown = escapeControls(path);
  let bytes: Uint8Array;
  try {
    bytes = path === STDIN ? await readStream(stdin(), shown) : await readFile(path, shown);
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
  return parsePromptText(text, path, fields);
}

async function readFile(path: string, shown: string): Promise<Uint8Array> {
  const info = await Deno.stat(path);
  if (info.isDirectory) {
    throw new InputError(`Cannot read prompt file '${shown}': it is a directory, not a file`);
  }
  if (info.size > PROMPT_LIMITS.fileBytes) throw tooLarge(shown, info.size);
  return await Deno.readFile(path);
}

/** A stream's bytes, refused once past the file size limit rather than held. */
async function readStream(stream: ReadableStream<Uint8Array>, shown: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size > PROMPT_LIMITS.fileBytes) throw tooLarge(shown, size, "more than ");
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) bytes.set(chunk, (at += chunk.length) - chunk.length);
  return bytes;
}

function tooLarge(shown: string, size: number, more = ""): InputError {
  return new InputError(
    `Cannot read prompt file '${shown}': it is ${more}${size} bytes, the limit is ${PROMPT_LIMITS.fileBytes}`,
  );
}

/** Parses and validates prompt file text; throws one {@linkcode InputError} for every problem. */
export function parsePrompts(text: string, path: string, fields: PromptFields = {}): PromptSpec[] {
  const { specs, problems } = parsePromptText(text, path, fields);
  if (problems.length > 0) throw problemsError(problems);
  return specs;
}

/**
 * Parses prompt file text in the format its path names (or its content shows); `path` is also
 * used in messages.
 */
export function parsePromptText(
  text: string,
  path: string,
  fields: PromptFields = {},
): ReadResult {
  const shown = escapeControls(path);
  // Strip the BOM before parsing and before counting columns, so line 1 is not off by one.
  const body = text.replace(/^\uFEFF/, "");
  if (body.trim() === "") {
    throw new InputError(
      `Cannot use prompt file '${shown}': it is empty; expected ${SHAPE[formatOf(path) ?? "json"]}`,
    );
  }
  const candidates = [...PROMPT_FIELDS, ...(fields.promptField ? [fields.promptField] : [])];
  const format = detectFormat(path, body, candidates);
  const read = format === "jsonl"
    ? jsonLinesEntries(body, shown)
    : format === "csv" || format === "tsv"
    ? tableEntries(body, shown, format)
    : format === "txt"
    ? textEntries(body, shown)
    : { entries: jsonEntries(body, shown), problems: [] };
  if (read.entries.length + read.problems.length > PROMPT_LIMITS.prompts) {
    throw new InputError(
      `Cannot use prompt file '${shown}': it has ${
        read.entries.length + read.problems.length
      } prompts, the limit is ${PROMPT_LIMITS.prompts}; split it into several files`,
    );
  }
  const shape: FileShape = format === "txt"
    ? { prompt: "prompt" }
    : shapeOf(path, read.header ?? fieldNames(read.entries), fields, read.header !== undefined);
  const entries = format === "txt" ? read.entries : read.entries.map((e) => shapeEntry(e, shape));
  const checked = validateEntries(path, entries, {
    derivedIds: shape.id === undefined,
    names: {
      prompt: shape.prompt,
      ...(shape.id !== undefined && { id: shape.id }),
      ...(shape.checks !== undefined && { checks: shape.checks }),
    },
  });
  const note = describeShape(path, format, shape, {
    prompts: checked.specs.length,
    rows: entries.length,
    context: contextFields(checked.specs),
  }, formatOf(path) === format && format !== "tsv");
  return {
    specs: checked.specs,
    problems: [...read.problems, ...checked.problems],
    ...(note !== undefined && { note }),
  };
}

/** The context fields the prompts keep, in the order first met. */
function contextFields(specs: readonly PromptSpec[]): string[] {
  const names = new Set<string>();
  for (const spec of specs) for (const name in spec.extra) names.add(name);
  return [...names];
}

/** What each format looks like, for a message about a file that holds none of it. */
const SHAPE: Record<PromptFormat, string> = {
  json: `{"prompts": [...]} or a list of prompts`,
  jsonl: `one JSON object per line, such as {"id": "fox", "prompt": "a red fox"}`,
  csv: "a header row such as id,title,scene,mood,prompt, then one prompt per row",
  tsv: "a header row such as id<TAB>prompt, then one prompt per row",
  txt: "one prompt a line",
};

/** What a format's reader found: entries, the lines it could not parse, a table's header. */
interface Read {
  entries: RawEntry[];
  problems: string[];
  header?: string[];
}

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
    if (data.length === 0) {
      throw new InputError(
        `Cannot use prompt file '${path}': the top level is an empty list; add at least one prompt`,
      );
    }
    return data.map((value, index) => ({ label: `prompt #${index + 1}`, value }));
  }
  if (data === null || typeof data !== "object") {
    throw new InputError(
      `Cannot use prompt file '${path}': the top level is ${
        typeName(data)
      }; expected an object {"prompts": [...]} or a list of prompts`,
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
function jsonLinesEntries(text: string, path: string): Read {
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
 * One prompt a line (T2I-CompBench's `.txt` files): surrounding space is dropped, blank lines
 * and lines starting with `#` are skipped. Each line is read as the text alone, never as JSON or
 * a table, so any text is a prompt.
 */
function textEntries(text: string, path: string): Read {
  const entries: RawEntry[] = [];
  let line = 0;
  for (let start = 0; start <= text.length; line++) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const prompt = text.slice(start, end).trim();
    start = end + 1;
    if (prompt === "" || prompt.startsWith("#")) continue;
    entries.push(new LineEntry(line + 1, { prompt }));
    if (entries.length > PROMPT_LIMITS.prompts) break;
  }
  if (entries.length === 0) {
    throw new InputError(
      `Cannot use prompt file '${path}': it has only blank and comment lines; add one prompt a line`,
    );
  }
  return { entries, problems: [] };
}

/** A line of a text file: its label is made only for a message, not for each of 100,000 lines. */
class LineEntry implements RawEntry {
  constructor(readonly line: number, readonly value: { prompt: string }) {}

  get label(): string {
    return `prompt at line ${this.line}`;
  }
}

/**
 * A header row naming the fields (`id,title,scene,mood,prompt`, and any per-prompt setting or
 * other column), then one prompt per row. In CSV, quoted fields may hold commas, quotes and
 * newlines; in TSV a quote is a quote unless it wraps the whole field (PartiPrompts starts a
 * prompt with `"G I G G L E" painted …`). An empty cell is a field left out.
 */
function tableEntries(text: string, path: string, format: "csv" | "tsv"): Read {
  let rows: Array<{ record: Record<string, string>; info: { records: number } }>;
  let header: string[] = [];
  try {
    rows = parseCsv(text, {
      columns: (names: string[]) => (header = names.map((n) => String(n).trim())),
      info: true,
      skip_empty_lines: true,
      bom: true,
      ...(format === "tsv" && { delimiter: "\t", relax_quotes: true }),
    });
  } catch (error) {
    throw new InputError(
      `Cannot parse prompt file '${path}': ${
        escapeControls((error as Error).message)
      }; check the quotes and the number of fields on that line`,
      { cause: error },
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
  return { entries, problems: [], header: header.filter((name) => name !== "") };
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
