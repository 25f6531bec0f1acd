/**
 * `--only`: the prompts a run takes, by id or by a field of their context (`Category=Animals`
 * in PartiPrompts, `tag=counting` in GenEval).
 *
 * @module
 */
import { InputError } from "../errors.ts";
import { escapeControls } from "../util/terminal_text.ts";
import type { PromptSpec } from "./spec.ts";

/**
 * The prompts `only` names, in the files' order: an entry that is a prompt's id takes it, and
 * `FIELD=VALUE` takes every prompt whose field (`title`, `scene`, `mood`, or one of its context,
 * a list matching any of its items) has that value, ignoring case. An entry that matches
 * nothing is an input error that lists what would.
 *
 * @example
 * ```ts
 * import { selectPrompts } from "./select.ts";
 * const specs = [
 *   { id: "a", prompt: "a cat", extra: { Category: "Animals" } },
 *   { id: "b", prompt: "a bond", extra: { Category: "Abstract" } },
 * ];
 * const picked = selectPrompts(specs, ["category=animals"]);
 * if (picked.length !== 1 || picked[0]!.id !== "a") throw new Error("not selected");
 * ```
 */
export function selectPrompts(specs: PromptSpec[], only: string[] | undefined): PromptSpec[] {
  if (!only || only.length === 0) return specs;
  const known = new Set(specs.map((s) => s.id));
  const ids = new Set<string>();
  const filters: Array<{ entry: string; field: string; value: string }> = [];
  const unknown: string[] = [];
  for (const entry of only) {
    const at = entry.indexOf("=");
    if (known.has(entry)) ids.add(entry);
    else if (at > 0) {
      filters.push({ entry, field: entry.slice(0, at).trim(), value: entry.slice(at + 1).trim() });
    } else unknown.push(entry);
  }
  if (unknown.length > 0) {
    throw new InputError(
      `Cannot select prompts with --only as ${
        unknown.map((id) => `'${escapeControls(id)}'`).join(", ")
      } matched no prompt id: known ids are ${
        [...known].slice(0, 20).map(escapeControls).join(", ")
      }; to select by a field, write FIELD=VALUE (Category=Animals)`,
    );
  }
  const matched = new Set<PromptSpec>();
  for (const { entry, field, value } of filters) {
    const before = matched.size;
    const seen = new Set<string>();
    let found = false;
    for (const spec of specs) {
      const cell = fieldOf(spec, field);
      if (cell === undefined) continue;
      found = true;
      const values = (Array.isArray(cell) ? cell : [cell]).map(textOf);
      for (const v of values) if (seen.size < 20) seen.add(v);
      if (values.some((v) => v.toLowerCase() === value.toLowerCase())) matched.add(spec);
    }
    if (matched.size > before) continue;
    throw new InputError(
      found
        ? `Cannot select prompts with --only as '${
          escapeControls(entry)
        }' matched no prompt: values of '${escapeControls(field)}' include ${
          [...seen].map((v) => `'${escapeControls(v)}'`).join(", ")
        }`
        : `Cannot select prompts with --only as no prompt has a field '${escapeControls(field)}': ${
          fieldsOf(specs)
        }`,
    );
  }
  return specs.filter((spec) => ids.has(spec.id) || matched.has(spec));
}

/** A prompt's field by name, exactly or else ignoring case. */
function fieldOf(spec: PromptSpec, field: string): unknown {
  const own: Record<string, unknown> = {
    ...spec.extra,
    ...(spec.title !== undefined && { title: spec.title }),
    ...(spec.scene !== undefined && { scene: spec.scene }),
    ...(spec.mood !== undefined && { mood: spec.mood }),
  };
  if (own[field] !== undefined) return own[field];
  const name = Object.keys(own).find((k) => k.toLowerCase() === field.toLowerCase());
  return name === undefined ? undefined : own[name];
}

function textOf(value: unknown): string {
  return (typeof value === "string" ? value : JSON.stringify(value) ?? "").trim();
}

function fieldsOf(specs: readonly PromptSpec[]): string {
  const names = new Set<string>();
  for (const spec of specs.slice(0, 1000)) {
    for (const name of ["title", "scene", "mood"] as const) if (spec[name]) names.add(name);
    for (const name in spec.extra) names.add(name);
  }
  return names.size === 0
    ? "the prompts have no context fields"
    : `fields are ${[...names].slice(0, 20).map(escapeControls).join(", ")}`;
}
