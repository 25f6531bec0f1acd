/**
 * Settings: built-in defaults < config file < environment (`.env` below the real environment)
 * < command-line flags, merged and validated once at start.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parse as parseDotenv } from "dotenv";
import { z } from "zod";
import { flagLines, FLAGS, parseArgsOptions } from "./cli/flags.ts";
import { InputError } from "./errors.ts";
import type { Role } from "./providers/provider.ts";
import type { RetryOptions } from "./retry.ts";
import { DESCRIPTORS, type PROVIDERS } from "./providers/registry.ts";
import { positiveInt } from "./schema.ts";
import { parseRunInfo } from "./run_file.ts";
import { SIZE_PRESETS } from "./sizes.ts";

export { SIZE_PRESETS };

const sizeMessage = (value: unknown) =>
  `expected WIDTHxHEIGHT (e.g. 1024x768) or one of ${
    Object.keys(SIZE_PRESETS).join(", ")
  }: current value is ${typeof value === "string" ? `'${value}'` : JSON.stringify(value)}`;

const sizeSchema = z.union([
  z.string().transform((value, ctx) => {
    const preset = SIZE_PRESETS[value];
    if (preset) return preset;
    const match = /^(\d{2,5})x(\d{2,5})$/.exec(value);
    if (!match) {
      ctx.addIssue({ code: "custom", message: sizeMessage(value) });
      return z.NEVER;
    }
    return { width: Number(match[1]), height: Number(match[2]) };
  }),
  z.object({ width: positiveInt, height: positiveInt }),
], { error: (issue) => sizeMessage(issue.input) }).pipe(
  z.object({
    width: z.number().int().min(64).max(4096),
    height: z.number().int().min(64).max(4096),
  }),
);

/** `"auto"` (adaptive, per provider), one number for every stage, or one per stage. */
const concurrencySchema = z.union([
  z.literal("auto"),
  positiveInt.max(64).transform((n) => ({ generate: n, critique: n, refine: n })),
  z.object({
    generate: positiveInt.max(64),
    critique: positiveInt.max(64),
    refine: positiveInt.max(64),
  }),
], {
  error: (issue) =>
    `expected "auto", a whole number from 1 to 64, or {"generate": N, "critique": N, "refine": N}: current value is ${
      JSON.stringify(issue.input)
    }`,
});

/** The settings every run has, whatever its providers. */
const coreSchema = z.object({
  /** Output base folder. */
  out: z.string().min(1).default("outputs"),
  /** Batch folder name; default: the first prompt file's name without extension. */
  name: z.string().min(1).optional(),
  size: sizeSchema.default(SIZE_PRESETS.landscape_4_3!),
  format: z.enum(["png", "jpeg"]).default("png"),
  /** Generation model; default depends on the generator. */
  model: z.string().min(1).optional(),
  /** Compare these generation models side by side (each prompt runs with each). */
  models: z.union([
    z.string().transform((s) => s.split(",").map((x) => x.trim()).filter(Boolean)),
    z.array(z.string().min(1)),
  ]).optional(),
  /** Critic/refiner model; default depends on the critic. */
  criticModel: z.string().min(1).optional(),
  /** Calls in flight per stage; `"auto"` finds each provider's quota while it runs. */
  concurrency: concurrencySchema.default("auto"),
  iterations: positiveInt.max(20).default(2),
  offline: z.boolean().default(false),
  /** Base seed; default derived from each prompt's id, so reruns are reproducible. */
  seed: z.coerce.number().int().min(0).max(2 ** 32 - 1).optional(),
  varySeed: z.boolean().default(false),
  /** Stop a prompt early once every check passes and a critique reaches this score. */
  targetScore: z.coerce.number().min(0).max(10).optional(),
  /** How refinements make the next image: edit the best one, draw anew, or choose per round. */
  refine: z.enum(["auto", "edit", "regenerate"]).default("auto"),
  /** Stop a prompt once its best round is this many rounds old. */
  patience: positiveInt.max(20).default(2),
  /** Per-criterion minimums that must also be met to stop early (config file only). */
  targetCriteria: z.partialRecord(
    z.enum(["promptAdherence", "composition", "lighting", "mood", "technicalQuality"]),
    z.number().min(0).max(10),
  ).optional(),
  /** Redo every prompt, moving earlier attempts aside. */
  force: z.boolean().default(false),
  /** Only these prompt ids. */
  only: z.union([
    z.string().transform((s) => s.split(",").map((x) => x.trim()).filter(Boolean)),
    z.array(z.string()),
  ]).optional(),
  /** Stop starting paid steps once the run has spent this much, in USD. */
  maxCost: z.coerce.number().nonnegative().optional(),
  /** Say what would run and what it could cost; make no call, write nothing. */
  dryRun: z.boolean().default(false),
  /** After an interrupt, how long calls in flight may take to finish, in ms. */
  graceMs: z.coerce.number().nonnegative().default(10_000),
  quiet: z.boolean().default(false),
  verbose: z.boolean().default(false),
  /** Deadline for one provider call, in ms. */
  timeoutMs: positiveInt.default(120_000),
  retry: z.strictObject({
    maxAttempts: positiveInt.max(20).default(4),
    /** Retries after refusals as over quota, per call: they spend no attempt or budget. */
    maxOverloadRetries: z.coerce.number().int().nonnegative().max(1000).default(30),
    minTimeoutMs: z.coerce.number().nonnegative().default(1000),
    maxTimeoutMs: z.coerce.number().nonnegative().default(30_000),
    multiplier: z.coerce.number().min(1).default(2),
    jitter: z.coerce.number().min(0).max(1).default(0.5),
    /** Retries allowed in the whole run. */
    budget: z.coerce.number().int().nonnegative().default(200),
    /** Multiplies every delay, server hints included: for tests. */
    timeScale: z.coerce.number().nonnegative().default(1),
  }).prefault({}),
});

/** The names of the providers that can take a role, for `--generator` and `--critic`. */
function namesFor(role: Role): [string, ...string[]] {
  return ["auto", ...DESCRIPTORS.filter((p) => p.roles.includes(role)).map((p) => p.name)];
}

/**
 * The validated settings of one run: the core settings, plus one section per provider (`fal`,
 * `gemini`, …), each the provider's own schema.
 */
export const configSchema: z.ZodType<Config> = coreSchema.extend({
  generator: z.enum(namesFor("generate")).default("auto"),
  critic: z.enum(namesFor("critique")).default("auto"),
  ...Object.fromEntries(DESCRIPTORS.map((p) => [p.name, (p.schema as z.ZodObject).prefault({})])),
}).strict() as unknown as z.ZodType<Config>;

/** Each provider's section, typed by its own schema. */
type ProviderSections = {
  [P in (typeof PROVIDERS)[number] as P["name"]]: z.output<P["schema"]>;
};

/** Settings after validation. */
export type Config = z.output<typeof coreSchema> & {
  /** A provider name with the generate role, or `auto`. */
  generator: string;
  /** A provider name with the critique role, or `auto`. */
  critic: string;
} & ProviderSections;

/** What the command line asked for, besides settings. */
export interface Invocation {
  config: Config;
  promptFiles: string[];
  help: boolean;
  version: boolean;
  watch: boolean;
  /** Where the config file came from, if one was read. */
  configFile?: string;
  /** Names of the environment variables that supplied keys (never the values). */
  keySources: string[];
  /**
   * Lines to show on stderr at start: which base URLs are overridden, and from where, as the
   * key goes wherever they point.
   */
  notices: string[];
}

/** Where configuration comes from; injected so tests control every layer. */
export interface ConfigSources {
  args: string[];
  env: Record<string, string | undefined>;
  cwd: string;
  readTextFile: (path: string) => Promise<string>;
}

/**
 * Environment variables and the setting each feeds: each provider's own, then the core ones.
 * First name listed wins.
 */
const ENV_SETTINGS: ReadonlyArray<readonly [readonly string[], readonly string[]]> = [
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

/** The settings that hold secrets, as `section.setting`. */
const SECRET_PATHS = new Set(
  DESCRIPTORS.flatMap((p) => p.env.filter((e) => e.secret).map((e) => `${p.name}.${e.setting}`)),
);

/**
 * Every environment variable retake reads; `main.ts` reads exactly these, and the `run` task's
 * `--allow-env` must grant them (a test checks).
 */
export const ENV_NAMES: string[] = ENV_SETTINGS.flatMap(([names]) => names).concat(
  "RETAKE_OFFLINE",
);

/** Builds the run's settings from every layer; throws {@linkcode InputError} on bad input. */
export async function loadConfig(sources: ConfigSources): Promise<Invocation> {
  let parsed;
  try {
    parsed = parseArgs({
      args: sources.args,
      options: parseArgsOptions(),
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new InputError(`${(error as Error).message}; run with --help for usage`, {
      cause: error,
    });
  }
  const flags = parsed.values;

  const layers: Array<[string, Record<string, unknown>]> = [];
  let configFile: string | undefined;
  const text = (name: string) => {
    const value = (flags as Record<string, unknown>)[name];
    return typeof value === "string" ? value : undefined;
  };
  const on = (name: string) => (flags as Record<string, unknown>)[name] === true;
  const explicit = text("config");
  const candidate = explicit ?? joinPath(sources.cwd, "retake.config.json");
  const fileText = await readOptional(sources, candidate, explicit !== undefined);
  if (fileText !== undefined) {
    configFile = candidate;
    let data: unknown;
    try {
      data = JSON.parse(fileText);
    } catch (error) {
      throw new InputError(
        `Cannot parse config file '${candidate}': ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      throw new InputError(`Cannot use config file '${candidate}': expected a JSON object`);
    }
    layers.push([`config file '${candidate}'`, data as Record<string, unknown>]);
  }

  let replayFiles: string[] = [];
  const replayFile = text("replay");
  if (replayFile !== undefined) {
    const replay = await readReplay(sources, replayFile);
    replayFiles = replay.promptFiles;
    layers.push([`replayed run '${replayFile}'`, replay.settings]);
  }

  const dotenvText = await readOptional(sources, joinPath(sources.cwd, ".env"), false);
  const dotenv = dotenvText === undefined ? {} : parseDotenv(dotenvText);
  // The real environment wins over .env, but only for variables it actually sets.
  const env: Record<string, string | undefined> = { ...dotenv };
  for (const [name, value] of Object.entries(sources.env)) {
    if (value !== undefined) env[name] = value;
  }
  const keySources: string[] = [];
  const envSource = (name: string) =>
    sources.env[name] !== undefined
      ? `environment variable ${name}`
      : `environment variable ${name} (from .env)`;
  // One layer per variable, so an error names the variable that supplied the bad value.
  for (const [names, path] of ENV_SETTINGS) {
    const name = names.find((n) => env[n] !== undefined && env[n] !== "");
    if (name === undefined) continue;
    const fromEnv: Record<string, unknown> = {};
    setPath(fromEnv, path, env[name]);
    layers.push([envSource(name), fromEnv]);
    if (SECRET_PATHS.has(path.join("."))) {
      keySources.push(sources.env[name] !== undefined ? name : `${name} (.env)`);
    }
  }
  if (env.RETAKE_OFFLINE === "1" || env.RETAKE_OFFLINE === "true") {
    layers.push([envSource("RETAKE_OFFLINE"), { offline: true }]);
  }

  const fromFlags: Record<string, unknown> = {};
  for (const flag of FLAGS) {
    const value = (flags as Record<string, unknown>)[flag.name];
    if (value !== undefined && flag.setting) setPath(fromFlags, flag.setting, value);
  }
  layers.push(["command line", fromFlags]);

  const merged: Record<string, unknown> = {};
  for (const [, layer] of layers) deepMerge(merged, layer);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]!] : issue.path;
    const key = path.join(".") || "(settings)";
    const source = layers.findLast(([, layer]) => setsPath(layer, path))?.[0] ?? "settings";
    throw new InputError(`Invalid setting '${key}' from ${source}: ${issue.message}`);
  }
  const notices: string[] = [];
  for (const [section, service] of BASE_URLS) {
    const url = (result.data[section as keyof ProviderSections] as { baseUrl?: string }).baseUrl;
    if (url === undefined) continue;
    const path = [section, "baseUrl"];
    const source = layers.findLast(([, layer]) => setsPath(layer, path))?.[0] ?? "settings";
    const shown = checkBaseUrl(`${section}.baseUrl`, url, source);
    notices.push(`Sending ${service} requests to ${shown} (${section}.baseUrl from ${source})`);
  }
  return {
    config: result.data,
    promptFiles: parsed.positionals.length > 0 ? parsed.positionals : replayFiles,
    help: on("help"),
    version: on("version"),
    watch: on("watch"),
    ...(configFile !== undefined && { configFile }),
    keySources,
    notices,
  };
}

/** The base URL settings, each with the service it replaces. */
const BASE_URLS = DESCRIPTORS.filter((p) => p.env.some((e) => e.setting === "baseUrl"))
  .map((p) => [p.name, p.title] as const);

/**
 * The key goes wherever a base URL points: only https, or plain http to this machine (a local
 * stand-in or proxy), where nothing on the network can read it. Returns the URL as shown to
 * people: without any user name, password or query.
 */
function checkBaseUrl(key: string, value: string, source: string): string {
  const url = new URL(value);
  const shown = `${url.protocol}//${url.host}${url.pathname === "/" ? "" : url.pathname}`;
  const host = url.hostname.toLowerCase();
  const loopback = host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new InputError(
      `Invalid setting '${key}' from ${source}: expected an https:// URL, or http:// only to this machine (localhost, 127.0.0.1, [::1]), as the key is sent there: current value is '${shown}'`,
    );
  }
  return shown;
}

/**
 * Settings and prompt files of an earlier run, from its `run.json`: everything that shapes the
 * result (models, sizes, seeds, iterations), into a new batch folder so nothing is overwritten.
 */
async function readReplay(
  sources: ConfigSources,
  path: string,
): Promise<{ settings: Record<string, unknown>; promptFiles: string[] }> {
  const read = parseRunInfo((await readOptional(sources, path, true))!);
  if (read.problem !== undefined) {
    throw new InputError(`Cannot replay '${path}': it ${read.problem}`);
  }
  const run = read.value;
  if (!isPlainObject(run.settings) || !Array.isArray(run.promptFiles)) {
    throw new InputError(
      `Cannot replay '${path}': expected a retake run.json with 'settings' and 'promptFiles'`,
    );
  }
  const { quiet: _q, verbose: _v, force: _f, size, ...rest } = run.settings;
  const settings: Record<string, unknown> = {
    ...rest,
    ...(size !== undefined && { size }),
    name: `${String(rest.name ?? run.batch ?? "batch")}-replay`,
  };
  // Where the calls go and with which key is this machine's business, not the run's.
  for (const provider of DESCRIPTORS) {
    const section = settings[provider.name];
    if (!isPlainObject(section)) continue;
    const local = provider.env.filter((e) => e.secret || e.setting === "baseUrl");
    settings[provider.name] = {
      ...section,
      ...Object.fromEntries(local.map((e) => [e.setting, undefined])),
    };
  }
  return { settings: dropUndefined(settings), promptFiles: run.promptFiles.map(String) };
}

function dropUndefined(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    out[k] = isPlainObject(v) ? dropUndefined(v) : v;
  }
  return out;
}

/** The retry settings in the shape the backoff operator takes (`retry.ts`). */
export function retryOptionsOf(config: Config): Omit<RetryOptions, "budget"> {
  const r = config.retry;
  return {
    maxAttempts: r.maxAttempts,
    maxOverloadRetries: r.maxOverloadRetries,
    minTimeout: r.minTimeoutMs,
    maxTimeout: r.maxTimeoutMs,
    multiplier: r.multiplier,
    jitter: r.jitter,
    timeScale: r.timeScale,
  };
}

/** The secret values in a config, for redaction. */
export function secretsOf(config: Config): string[] {
  const sections = config as unknown as Record<string, Record<string, unknown>>;
  return DESCRIPTORS.flatMap((p) =>
    p.env.filter((e) => e.secret).map((e) => sections[p.name]?.[e.setting])
  ).filter((v): v is string => typeof v === "string" && v !== "");
}

/** The settings without secrets, safe to write to `run.json`. */
export function publicSettings(config: Config): Record<string, unknown> {
  const settings: Record<string, unknown> = { ...config };
  for (const p of DESCRIPTORS) {
    const section = { ...(settings[p.name] as Record<string, unknown>) };
    for (const e of p.env) if (e.secret) delete section[e.setting];
    settings[p.name] = section;
  }
  return settings;
}

/** Usage text for `--help`. */
export const USAGE = `retake — generate, critique and refine images in bulk

Usage:
  retake [options] <prompts.json> [more.json ...]
  retake gallery <out>/<batch> [...]   rebuild a batch folder's index.html
  retake eval [options] <prompts.json>  single vs best-of-n vs refine at equal spend
                                       (retake eval --help)
  deno task run [options] <prompts.json>

Options:
${flagLines()}

Models by generator (--model):
${modelLines()}

Keys and endpoints come from the environment, .env or the config file:
${envLines()}
Without keys retake runs offline.

Exit codes: 0 all prompts completed, 1 some failed, 2 usage or input error (or the batch
folder is in use), 3 the run was stopped (bad key, unknown model, full disk), 4 --max-cost
reached, 130 interrupted.
`;

/** `--help`'s lines on each generator's model aliases. */
function modelLines(): string {
  return DESCRIPTORS.filter((p) => p.roles.includes("generate") && p.models.length > 0).map((p) => {
    const aliases = p.models.flatMap((m) => m.aliases ?? []);
    const names = aliases.length > 0 ? aliases : p.models.map((m) => m.id);
    return wrap(`${p.name}: ${names.join(", ")}`, 2);
  }).join("\n");
}

/** `--help`'s lines on each provider's environment variables. */
function envLines(): string {
  return DESCRIPTORS.flatMap((p) =>
    p.env.map((e) => {
      const names = e.names.length > 1
        ? `${e.names[0]} (or ${e.names.slice(1).join(", ")})`
        : e.names[0]!;
      return `  ${names.padEnd(34)} ${e.description}`;
    })
  ).join("\n");
}

/** Words of `text` in lines of at most 80 columns, each indented by `indent` spaces. */
function wrap(text: string, indent: number): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && indent + line.length + 1 + word.length > 80) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines.map((l) => " ".repeat(indent) + l).join("\n");
}

async function readOptional(
  sources: ConfigSources,
  path: string,
  required: boolean,
): Promise<string | undefined> {
  try {
    return await sources.readTextFile(path);
  } catch (error) {
    if (!required && error instanceof Deno.errors.NotFound) return undefined;
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : (error as Error).message;
    throw new InputError(`Cannot read config file '${path}': ${reason}`, { cause: error });
  }
}

function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function setPath(
  target: Record<string, unknown>,
  path: readonly string[],
  value: unknown,
): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = value;
}

/**
 * Whether `layer` supplied the value at `path`: it holds the whole path, or a value part-way
 * down that replaced everything below it (`--size 10x10` supplies `size.width`).
 */
function setsPath(layer: Record<string, unknown>, path: PropertyKey[]): boolean {
  let node: unknown = layer;
  for (const [depth, key] of path.entries()) {
    if (!isPlainObject(node)) return depth > 0;
    if (!(key in node)) return false;
    node = node[key as string];
  }
  return path.length > 0;
}

function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (isPlainObject(value) && isPlainObject(existing)) deepMerge(existing, value);
    else target[key] = isPlainObject(value) ? structuredClone(value) : value;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
