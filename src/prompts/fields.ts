/**
 * Which field of a prompt file holds the prompt, the id and the checks: the usual names are
 * found (PartiPrompts' `Prompt`, DSG's `text`, `item_id` and `question_natural_language`), others
 * are named with `--prompt-field`, `--id-field` and `--checks-field`; every other field is the
 * prompt's context. Each entry is then put in the shape {@linkcode validateEntries} checks.
 *
 * @module
 */
import { InputError } from "../errors.ts";
import { escapeControls } from "../util/terminal_text.ts";
import { checkKindOf, checksFromInclude, isInclude } from "./checks.ts";
import { FORMAT_NAMES, type PromptFormat } from "./detect.ts";
import type { PromptFields } from "./spec.ts";
import type { RawEntry } from "./validate.ts";

/** Names the prompt text goes by, in the order they are looked for. */
export const PROMPT_FIELDS = ["prompt", "Prompt", "text", "caption", "description"] as const;
/** Names the id goes by; `id` in any case too. */
export const ID_FIELDS = ["id", "item_id", "prompt_id"] as const;
/** Names a field of checks goes by: a list, or one question a row. */
export const CHECKS_FIELDS = ["checks", "question", "question_natural_language"] as const;

/** Which field holds what in one file. */
export interface FileShape {
  prompt: string;
  /** Undefined: the file has no ids, and each prompt's is made from its text. */
  id?: string;
  checks?: string;
  /** The checks come from GenEval's `include` (class, count, colour, position). */
  include?: boolean;
  /** The column that says what each row's check is about (`kind`, DSG's `category_broad`). */
  kind?: string;
  /** DSG's `category_detailed`, which tells a count or text apart within a broad kind. */
  kindDetail?: string;
}

/**
 * The shape of a file whose fields (a header's columns, or every key its entries use) are
 * `names`, under the names the user gave. A name the user gave that the file lacks is an error;
 * so is a table with no prompt column.
 *
 * @param table whether `names` is a header row, which must then name the prompt's column
 */
export function shapeOf(
  path: string,
  names: readonly string[],
  fields: PromptFields,
  table: boolean,
): FileShape {
  const has = new Set(names);
  const given = (setting: string, flag: string, name: string | undefined) => {
    if (name === undefined || has.has(name)) return name;
    throw new InputError(
      `Cannot use prompt file '${escapeControls(path)}' as its ${setting} '${
        escapeControls(name)
      }' (${flag}) is not one of its fields: ${fieldList(names)}`,
    );
  };
  const prompt = given("prompt field", "--prompt-field", fields.promptField) ??
    PROMPT_FIELDS.find((name) => has.has(name));
  if (prompt === undefined && table) {
    throw new InputError(
      `Cannot use prompt file '${
        escapeControls(path)
      }' as its header row has no prompt column: current header is '${
        escapeControls(names.join(","))
      }'; expected a column named ${
        PROMPT_FIELDS.map((n) => `'${n}'`).join(", ")
      }, or name yours with --prompt-field, as in a header row such as id,title,scene,mood,prompt`,
    );
  }
  const id = given("id field", "--id-field", fields.idField) ??
    ID_FIELDS.find((name) => has.has(name)) ?? names.find((name) => name.toLowerCase() === "id");
  const checks = given("checks field", "--checks-field", fields.checksField) ??
    CHECKS_FIELDS.find((name) => has.has(name));
  const kind = checks === undefined
    ? undefined
    : ["kind", "check_kind", "category_broad"].find((name) => has.has(name));
  return {
    // JSON entries without any: each is told its 'prompt' field is required.
    prompt: prompt ?? "prompt",
    ...(id !== undefined && { id }),
    ...(checks !== undefined && { checks }),
    ...(checks === undefined && has.has("include") && { include: true }),
    ...(kind !== undefined && { kind }),
    ...(kind === "category_broad" && has.has("category_detailed") &&
      { kindDetail: "category_detailed" }),
  };
}

/**
 * One entry in the shape the checks expect: its prompt as `prompt`, its id as `id`, its checks
 * as `checks` (a list of `{question, kind}`), every other field as it was. A value that is not
 * an object is left for the checks to report.
 */
export function shapeEntry(entry: RawEntry, shape: FileShape): RawEntry {
  const value = entry.value;
  if (value === null || typeof value !== "object" || Array.isArray(value)) return entry;
  const row = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const taken = new Set<string>([shape.prompt, shape.id ?? "id", shape.checks ?? "checks"]);
  // Fields named as the canonical ones but not chosen (a `prompt` column beside the chosen
  // `caption`) would be read as them: they are left out.
  for (const [name, cell] of Object.entries(row)) {
    if (taken.has(name) || name === "prompt" || name === "id" || name === "checks") continue;
    out[name] = cell;
  }
  if (shape.id !== undefined && row[shape.id] !== undefined) out.id = row[shape.id];
  if (row[shape.prompt] !== undefined) out.prompt = row[shape.prompt];
  const checks = checksOf(row, shape);
  if (checks !== undefined) out.checks = checks;
  return { label: entry.label, value: out };
}

function checksOf(row: Record<string, unknown>, shape: FileShape): unknown {
  if (shape.include) return isInclude(row.include) ? checksFromInclude(row.include) : undefined;
  if (shape.checks === undefined) return undefined;
  const cell = row[shape.checks];
  if (typeof cell !== "string") return cell;
  // A table's question column: one check a row, its kind from the row's kind column.
  if (cell.trim() === "") return undefined;
  const kind = shape.kind === undefined ? undefined : row[shape.kind];
  const detail = shape.kindDetail === undefined ? undefined : row[shape.kindDetail];
  return [{
    question: cell,
    ...(typeof kind === "string" && kind.trim() !== "" &&
      { kind: checkKindOf(kind, typeof detail === "string" ? detail : undefined) }),
  }];
}

/** Every field name the entries use, in the order first met. */
export function fieldNames(entries: readonly RawEntry[]): string[] {
  const names = new Set<string>();
  for (const { value } of entries) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) continue;
    for (const name of Object.keys(value)) names.add(name);
  }
  return [...names];
}

/**
 * The line that says how a file was read, when anything was found rather than named as usual:
 * its format, the prompt field, how ids were made, where the checks came from, what is kept as
 * context. Undefined for a file read as it always was.
 */
export function describeShape(
  path: string,
  format: PromptFormat,
  shape: FileShape,
  counts: { prompts: number; rows: number; context: readonly string[] },
  usual: boolean,
): string | undefined {
  const derived = shape.id === undefined;
  if (usual && shape.prompt === "prompt" && !derived && !shape.checks && !shape.include) {
    return undefined;
  }
  const parts = [
    `${counts.prompts.toLocaleString("en-US")} prompt${counts.prompts === 1 ? "" : "s"}${
      format === "txt" ? "" : ` from field '${escapeControls(shape.prompt)}'`
    }`,
    derived ? "ids made from the text" : `ids from field '${escapeControls(shape.id!)}'`,
  ];
  if (counts.rows > counts.prompts) {
    parts.push(`${counts.rows.toLocaleString("en-US")} rows, those sharing an id as one prompt`);
  }
  if (shape.checks) parts.push(`checks from field '${escapeControls(shape.checks)}'`);
  if (shape.include) parts.push("checks from 'include'");
  if (counts.context.length > 0) {
    parts.push(`kept as context: ${counts.context.map(escapeControls).join(", ")}`);
  }
  return `Read '${escapeControls(path)}' as ${FORMAT_NAMES[format]}: ${parts.join("; ")}`;
}

function fieldList(names: readonly string[]): string {
  return names.length === 0
    ? "it has none"
    : `its fields are ${names.slice(0, 20).map((n) => `'${escapeControls(n)}'`).join(", ")}`;
}
