/**
 * The command line's words into flag values and prompt files, with messages a person can act
 * on: an unknown flag names the nearest real one, a flag without its value says what it wants,
 * and a value that starts with a dash (`--max-cost -1`) is a value, left for the settings'
 * validation to judge.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InputError } from "../errors.ts";
import { FLAGS } from "./flags.ts";

/** A flag the parser knows: the table's, or a command's own (`retake eval --rounds`). */
export interface ParseFlag {
  readonly name: string;
  readonly short?: string;
  readonly type: "string" | "boolean";
  readonly arg?: string;
}

/** What {@linkcode parseCommandLine} found. */
export interface ParsedCommandLine {
  /** Each flag given, by long name: its text, or `true` for a boolean. */
  values: Record<string, string | boolean>;
  positionals: string[];
  /** Each flag's place in the arguments: the index of its word and whether its value was the next word. */
  places: Array<{ name: string; index: number; valueIndex?: number }>;
}

/** Options for {@linkcode parseCommandLine}. */
export interface ParseOptions {
  /** Flags besides the table's. */
  extra?: readonly ParseFlag[];
  /** The command a message tells the user to run for help. @default {"retake --help"} */
  help?: string;
}

/** Parses `args` against {@linkcode FLAGS} (plus `extra`); throws an {@linkcode InputError}. */
export function parseCommandLine(args: string[], options: ParseOptions = {}): ParsedCommandLine {
  const flags: readonly ParseFlag[] = [...FLAGS, ...(options.extra ?? [])];
  const help = options.help ?? "retake --help";
  const byName = new Map(flags.map((f) => [f.name, f]));
  // Not strict: strict mode refuses `--max-cost -1` as "ambiguous" and words its errors for
  // Node developers; every case it would refuse is checked below instead.
  const { tokens } = parseArgs({
    args,
    options: Object.fromEntries(
      flags.map((
        f,
      ) => [f.name, { type: f.type, ...(f.short !== undefined && { short: f.short }) }]),
    ),
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const values: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  const places: ParsedCommandLine["places"] = [];
  for (const token of tokens) {
    if (token.kind === "positional") positionals.push(token.value);
    if (token.kind !== "option") continue;
    const flag = byName.get(token.name);
    if (flag === undefined) {
      const near = nearest(token.name, flags.map((f) => f.name));
      throw new InputError(
        `Unknown option '${token.rawName}'${
          near === undefined ? "" : `: did you mean --${near}?`
        } (run ${help})`,
      );
    }
    const shown = `--${flag.name}`;
    if (flag.type === "boolean") {
      if (token.value !== undefined) {
        throw new InputError(
          `Cannot use ${shown}=${token.value}: ${shown} takes no value; write ${shown} alone (run ${help})`,
        );
      }
      values[flag.name] = true;
      places.push({ name: flag.name, index: token.index });
      continue;
    }
    const want = flag.arg ?? "a value";
    if (token.value === undefined) {
      throw new InputError(
        `Cannot use ${shown} without a value: expected ${shown} ${want} (run ${help})`,
      );
    }
    if (!token.inlineValue && /^-/.test(token.value) && !isNumber(token.value)) {
      // `--name --force`: far likelier a forgotten value than a name that starts with dashes.
      throw new InputError(
        `Cannot use ${shown} with '${token.value}', which is an option, as its value: expected ${shown} ${want}; for a value that starts with '-', write ${shown}=${token.value} (run ${help})`,
      );
    }
    values[flag.name] = token.value;
    places.push({
      name: flag.name,
      index: token.index,
      ...(!token.inlineValue && { valueIndex: token.index + 1 }),
    });
  }
  return { values, positionals, places };
}

function isNumber(text: string): boolean {
  return text.trim() !== "" && !Number.isNaN(Number(text));
}

/**
 * The candidate closest to `word` by edit distance (a swap of two neighbours counts as one),
 * when it is close enough to be a typo: at most a third of the word's length, at least 1, at
 * most 3; or a prefix of exactly one candidate (`--iter`).
 */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  const prefixed = candidates.filter((c) => word.length >= 3 && c.startsWith(word));
  if (prefixed.length === 1) return prefixed[0];
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= limit ? best : undefined;
}

/** Optimal-string-alignment distance: insertions, deletions, substitutions and swaps. */
export function editDistance(a: string, b: string): number {
  const rows = Array.from(
    { length: a.length + 1 },
    (_, i) => [i, ...Array<number>(b.length).fill(0)],
  );
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      }
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}
