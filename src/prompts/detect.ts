/**
 * Which format a prompt file is in: by its extension, and by its content when the extension
 * says nothing (or is wrong about the separator), so files run as their authors published them.
 *
 * @module
 */
import { InputError } from "../errors.ts";
import { escapeControls } from "../util/terminal_text.ts";

/** The formats a prompt file may have. */
export type PromptFormat = "json" | "jsonl" | "csv" | "tsv" | "txt";

/** The name prompt files read from standard input go by. */
export const STDIN = "-";

/** What each format is called in messages. */
export const FORMAT_NAMES: Record<PromptFormat, string> = {
  json: "JSON",
  jsonl: "JSON Lines",
  csv: "CSV",
  tsv: "TSV",
  txt: "text, one prompt a line",
};

const BY_EXTENSION: Record<string, PromptFormat> = {
  json: "json",
  jsonl: "jsonl",
  ndjson: "jsonl",
  csv: "csv",
  tsv: "tsv",
  tab: "tsv",
  txt: "txt",
  text: "txt",
};

/** The format an extension names, or undefined for any other (or none). */
export function formatOf(path: string): PromptFormat | undefined {
  const ext = /\.([^./\\]+)$/.exec(path)?.[1]?.toLowerCase();
  return ext === undefined ? undefined : BY_EXTENSION[ext];
}

/**
 * The format of a prompt file's text (without its byte order mark): its extension's, except
 * that a `.csv` whose header has tabs and no commas is TSV, and the other way round. With
 * another extension or none, the content decides: `{` or `[` is JSON (JSON Lines when the
 * whole text is not one document but its first line is), a header naming a prompt field is TSV
 * or CSV, and standard input is otherwise one prompt a line; any other file is refused, with
 * its first line shown, rather than guessed at and paid for.
 *
 * @param promptFields the names a header's prompt column may have
 */
export function detectFormat(
  path: string,
  text: string,
  promptFields: readonly string[],
): PromptFormat {
  const named = formatOf(path);
  const first = firstLine(text);
  if (named === "csv" || named === "tsv") {
    const tabs = first.includes("\t");
    const commas = first.includes(",");
    if (named === "csv" && tabs && !commas) return "tsv";
    if (named === "tsv" && commas && !tabs) return "csv";
    return named;
  }
  if (named !== undefined) return named;
  const start = text.trimStart()[0];
  if (start === "{" || start === "[") {
    if (start === "{" && !parses(text) && isJsonObject(first)) return "jsonl";
    return "json";
  }
  const header = first.split(first.includes("\t") ? "\t" : ",")
    .map((name) => name.trim().replace(/^"(.*)"$/, "$1"));
  if (header.length > 1 && header.some((name) => promptFields.includes(name))) {
    return first.includes("\t") ? "tsv" : "csv";
  }
  if (path === STDIN) return "txt";
  throw new InputError(
    `Cannot tell the format of prompt file '${
      escapeControls(path)
    }': expected a .json, .jsonl, .csv, .tsv or .txt file, or text that starts with '{' or '[', or a header row with a 'prompt' column: its first line is '${
      escapeControls(clip(first, 80))
    }'; for one prompt a line, name it .txt`,
  );
}

/** The first line that is not blank, without its line break. */
export function firstLine(text: string): string {
  for (const line of text.split("\n", 50)) if (line.trim() !== "") return line.replace(/\r$/, "");
  return "";
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function isJsonObject(line: string): boolean {
  try {
    const value = JSON.parse(line);
    return value !== null && typeof value === "object" && !Array.isArray(value);
  } catch {
    return false;
  }
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
