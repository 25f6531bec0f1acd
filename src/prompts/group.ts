/**
 * Rows that share an id are one prompt: a table with one question a row (DSG-1k) gives each
 * prompt its checklist this way, and a line a text file repeats is drawn once.
 *
 * @module
 */
import { escapeControls } from "../terminal_text.ts";
import { PROMPT_LIMITS, type PromptSpec } from "./spec.ts";

/** One checked entry of a file, with where it is (`prompt at row 5`). */
export interface Row {
  label: string;
  spec: PromptSpec;
}

/**
 * The prompts `rows` make, in the order each first appears: rows with the same id (ids are
 * compared ignoring case, as folders on some systems are) must agree on the prompt, its context
 * and settings; their checks add up, in order. A field of the context that differs between the
 * rows of one prompt describes the rows, not the prompt (DSG's `category_broad`), and is left
 * out of every prompt of the file.
 *
 * @param names the file's own name of a field, for messages (`{prompt: "text"}`)
 */
export function groupRows(
  path: string,
  rows: readonly Row[],
  names: Readonly<Record<string, string>> = {},
): { specs: PromptSpec[]; problems: string[] } {
  const specs: PromptSpec[] = [];
  const problems: string[] = [];
  const firsts = new Map<string, Row>();
  const varying = new Set<string>();
  const shown = escapeControls(path);
  for (const row of rows) {
    const { spec, label } = row;
    const key = spec.id.toLowerCase();
    const first = firsts.get(key);
    if (first === undefined) {
      firsts.set(key, row);
      specs.push(spec);
      continue;
    }
    const where = `${label} (id '${escapeControls(spec.id)}') in '${shown}'`;
    const kept = first.spec;
    if (kept.id !== spec.id || kept.prompt !== spec.prompt) {
      problems.push(
        `Invalid ${where}: field '${names.id ?? "id"}' duplicates ${first.label}` +
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
        } from ${first.label}, which has the same id; rows that share an id are one prompt: give them the same ${differs}, or each its own id`,
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
