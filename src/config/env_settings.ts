/**
 * The environment variables retake reads, the setting each feeds, and the warning for one that
 * looks like a typo of them (`RETAKE_ITERATION`): set, read by nothing, it would otherwise be
 * ignored without a word.
 *
 * @module
 */
import { DESCRIPTORS } from "../providers/catalog.ts";
import { FLAGS } from "./flags.ts";
import { editDistance } from "./parse_args.ts";

/**
 * Environment variables and the setting each feeds: each provider's own, then the core ones.
 * First name listed wins.
 */
export const ENV_SETTINGS: ReadonlyArray<readonly [readonly string[], readonly string[]]> = [
  ...DESCRIPTORS.flatMap((p) => p.env.map((e) => [e.names, [p.name, e.setting]] as const)),
  [["RETAKE_OUT"], ["out"]],
  [["RETAKE_SIZE"], ["size"]],
  [["RETAKE_FORMAT"], ["format"]],
  [["RETAKE_MODEL"], ["model"]],
  [["RETAKE_CRITIC_MODEL"], ["criticModel"]],
  [["RETAKE_CONCURRENCY", "BATCH_SIZE"], ["concurrency"]],
  [["RETAKE_ITERATIONS"], ["iterations"]],
  [["RETAKE_GENERATOR"], ["generator"]],
  [["RETAKE_CRITIC"], ["critic"]],
  [["RETAKE_TIMEOUT_MS"], ["timeoutMs"]],
  [["RETAKE_MAX_COST"], ["maxCost"]],
  [["RETAKE_RETRY_TIME_SCALE"], ["retry", "timeScale"]],
];

/** Set to `1` or `true`: as `--offline`. */
export const OFFLINE_ENV = "RETAKE_OFFLINE";

/**
 * Every environment variable retake reads; `main.ts` reads exactly these, and the `run` task's
 * `--allow-env` must grant them (a test checks).
 */
export const ENV_NAMES: string[] = ENV_SETTINGS.flatMap(([names]) => names).concat(OFFLINE_ENV);

const PREFIX = "RETAKE_";
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";

/**
 * The `RETAKE_*` names a typo of a real one could be: one letter added, dropped, changed or
 * swapped, an underscore dropped, and every flag as a variable (`RETAKE_SEED`). The process may
 * only read `RETAKE_*` variables, one by one (the `run` task's `--allow-env`), so it cannot list
 * the environment: it asks for these.
 */
export function typoCandidates(): string[] {
  const known = new Set(ENV_NAMES);
  const out = new Set<string>();
  const add = (name: string) => {
    if (name.startsWith(PREFIX) && name.length > PREFIX.length && !known.has(name)) out.add(name);
  };
  for (const name of ENV_NAMES.filter((n) => n.startsWith(PREFIX))) {
    const tail = name.slice(PREFIX.length);
    for (let i = 0; i <= tail.length; i++) {
      const [head, rest] = [tail.slice(0, i), tail.slice(i)];
      if (rest !== "") add(PREFIX + head + rest.slice(1));
      if (rest.length > 1) add(PREFIX + head + rest[1] + rest[0] + rest.slice(2));
      for (const c of ALPHABET) {
        add(PREFIX + head + c + rest);
        if (rest !== "") add(PREFIX + head + c + rest.slice(1));
      }
    }
    add(name.replaceAll("_", "").replace(/^RETAKE/, PREFIX));
  }
  for (const flag of FLAGS) add(PREFIX + flag.name.toUpperCase().replaceAll("-", "_"));
  return [...out];
}

/**
 * A warning for each name in `names` that retake does not read but that looks meant for it (it
 * starts with `RETAKE_`, or is close to a name retake reads), naming the nearest real one;
 * `where` says where it was set.
 */
export function typoWarnings(names: Iterable<string>, where: string): string[] {
  const known = new Set(ENV_NAMES);
  const warnings: string[] = [];
  for (const name of names) {
    if (known.has(name)) continue;
    const near = nearestName(name);
    if (near === undefined && !name.startsWith(PREFIX)) continue;
    warnings.push(
      `warning: ignoring ${name} ${where}: retake reads no such variable${
        near === undefined ? " (see README, Configuration)" : `; did you mean ${near}?`
      }`,
    );
  }
  return warnings;
}

/** The real variable (or flag) `name` is most likely a typo of, if any. */
function nearestName(name: string): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const real of ENV_NAMES) {
    const d = editDistance(name, real);
    if (d < bestDistance) [best, bestDistance] = [real, d];
  }
  if (bestDistance <= Math.min(3, Math.max(1, Math.floor(name.length / 6)))) return best;
  if (best !== undefined && name.replaceAll("_", "") === best.replaceAll("_", "")) return best;
  const longer = ENV_NAMES.filter((real) => real.startsWith(name));
  if (longer.length === 1) return longer[0];
  const flag = FLAGS.find((f) => PREFIX + f.name.toUpperCase().replaceAll("-", "_") === name);
  if (flag === undefined) return undefined;
  return flag.setting === undefined
    ? `--${flag.name}`
    : `--${flag.name}, or '${flag.setting.join(".")}' in the config file`;
}
