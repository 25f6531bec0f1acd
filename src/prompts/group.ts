/**
 * Rows that share an id are one prompt: a table with one question a row (DSG-1k) gives each
 * prompt its checklist this way, and a line a text file repeats is drawn once.
 *
 * @module
 */
import { escapeControls } from "../util/terminal_text.ts";
import { HASH_DIGITS, idFromText } from "./ids.ts";
import { PROMPT_LIMITS, type PromptSpec } from "./spec.ts";

/** Options for {@linkcode groupRows}. */
export interface GroupOptions {
  /** The file's own name of a field, for messages (`{prompt: "text"}`). @default {{}} */
  names?: Readonly<Record<string, string>>;
  /** The ids were made from the text ({@linkcode idFromText}). @default {false} */
  derivedIds?: boolean;
}

/** One checked entry of a file, with where it is (`prompt at row 5`). */
export interface Row {
  /** What the file held there; its label is only made for a message. */
  source: { readonly label: string };
  spec: PromptSpec;
}

/**
 * The prompts `rows` make, in the order each first appears: rows with the same id (ids are
 * compared ignoring case, as folders on some systems are) must agree on the prompt, its context
 * and settings; their checks add up, in order. A field of the context that differs between the
 * rows of one prompt describes the rows, not the prompt (DSG's `category_broad`), and is left
 * out of every prompt of the file.
 *
 * With ids made from the text, equal texts are one prompt, and in the rare case two different
 * texts' short hashes agree, the later text gets more digits.
 */
export function groupRows(
  path: string,
  rows: readonly Row[],
  options: GroupOptions = {},
): { specs: PromptSpec[]; problems: string[] } {
  const names = options.names ?? {};
  const specs: PromptSpec[] = [];
  const problems: string[] = [];
  const firsts = new Map<string, Row>();
  const varying = new Set<string>();
  const shown = escapeControls(path);
  for (const row of rows) {
    const { spec } = row;
    // Ids made from the text are lower-case already.
    let key = options.derivedIds ? spec.id : spec.id.toLowerCase();
    let first = firsts.get(key);
    // 11, 15, … digits: never the 8 or 16 a folder name would be hashed again for.
    for (
      let digits = HASH_DIGITS;
      options.derivedIds && first && first.spec.prompt !== spec.prompt;
    ) {
      spec.id = idFromText(spec.prompt, digits += 4);
      key = spec.id.toLowerCase();
      first = firsts.get(key);
    }
    if (first === undefined) {
      firsts.set(key, row);
      specs.push(spec);
      continue;
    }
    const where = `${row.source.label} (id '${escapeControls(spec.id)}') in '${shown}'`;
    const kept = first.spec;
    if (kept.id !== spec.id || kept.prompt !== spec.prompt) {
      problems.push(
        `Invalid ${where}: field '${names.id ?? "id"}' duplicates ${first.source.label}` +
          (kept.id === spec.id ? "" : ` ('${escapeControls(kept.id)}', ids differ only by case)`) +
          "; ids must be unique" +
          (kept.id === spec.id
            ? ` (rows that share an id are one prompt, and these differ in '${
              names.prompt ?? "prompt"
            }')`
            : ""),
      );
      continue;
    }
    const differs = (["title", "scene", "mood"] as const).find((f) => kept[f] !== spec[f]) ??
      (same(kept.settings, spec.settings) ? undefined : "settings");
    if (differs !== undefined) {
      problems.push(
        `Invalid ${where}: ${
          differs === "settings" ? "its settings differ" : `field '${differs}' differs`
        } from ${first.source.label}, which has the same id; rows that share an id are one prompt: give them the same ${differs}, or each its own id`,
      );
      continue;
    }
    if (spec.checks !== undefined) kept.checks = [...kept.checks ?? [], ...spec.checks];
    for (const name of new Set([...Object.keys(kept.extra), ...Object.keys(spec.extra)])) {
      if (!same(kept.extra[name], spec.extra[name])) varying.add(name);
    }
  }
  for (const spec of specs) {
    for (const name of varying) delete spec.extra[name];
    const count = spec.checks?.length ?? 0;
    if (count > PROMPT_LIMITS.checks) {
      problems.push(
        `Invalid prompt '${
          escapeControls(spec.id)
        }' in '${shown}': it has ${count} checks, the limit is ${PROMPT_LIMITS.checks}; keep the most important`,
      );
    }
  }
  return { specs, problems };
}

function same(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}
