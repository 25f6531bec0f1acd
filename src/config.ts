/**
 * Settings: built-in defaults < config file < environment (`.env` below the real environment)
 * < command-line flags, merged and validated once at start.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parse as parseDotenv } from "dotenv";
import { z } from "zod";
import { InputError } from "./errors.ts";

/** Named sizes, as fal.ai names them. */
export const SIZE_PRESETS: Record<string, { width: number; height: number }> = {
  square_hd: { width: 1024, height: 1024 },
  square: { width: 512, height: 512 },
  portrait_4_3: { width: 768, height: 1024 },
  portrait_16_9: { width: 576, height: 1024 },
  landscape_4_3: { width: 1024, height: 768 },
  landscape_16_9: { width: 1024, height: 576 },
};

const positiveInt = z.coerce.number().int().positive();
const urlString = z.url({ error: "expected a URL such as http://127.0.0.1:8080" });

const sizeSchema = z.union([
  z.string().transform((value, ctx) => {
    const preset = SIZE_PRESETS[value];
    if (preset) return preset;
    const match = /^(\d{2,5})x(\d{2,5})$/.exec(value);
    if (!match) {
      ctx.addIssue({
        code: "custom",
        message: `expected WIDTHxHEIGHT (e.g. 1024x768) or one of ${
          Object.keys(SIZE_PRESETS).join(", ")
        }: current value is '${value}'`,
      });
      return z.NEVER;
    }
    return { width: Number(match[1]), height: Number(match[2]) };
  }),
  z.object({ width: positiveInt, height: positiveInt }),
]).pipe(
  z.object({
    width: z.number().int().min(64).max(4096),
    height: z.number().int().min(64).max(4096),
  }),
);

const concurrencySchema = z.union([
  positiveInt.max(64).transform((n) => ({ generate: n, critique: n, refine: n })),
  z.object({
    generate: positiveInt.max(64),
    critique: positiveInt.max(64),
    refine: positiveInt.max(64),
  }),
]);

const priceTable = z.record(z.string(), z.number().nonnegative());
const tokenPriceTable = z.record(
  z.string(),
  z.object({ input: z.number().nonnegative(), output: z.number().nonnegative() }),
);

/** The validated settings of one run. */
export const configSchema = z.object({
  /** Output base folder. */
  out: z.string().min(1).default("outputs"),
  /** Batch folder name; default: the first prompt file's name without extension. */
  name: z.string().min(1).optional(),
  size: sizeSchema.default(SIZE_PRESETS.landscape_4_3!),
  format: z.enum(["png", "jpeg"]).default("png"),
  /** Generation model; default depends on the generator. */
  model: z.string().min(1).optional(),
  /** Critic/refiner model; default depends on the critic. */
  criticModel: z.string().min(1).optional(),
  concurrency: concurrencySchema.default({ generate: 2, critique: 2, refine: 2 }),
  iterations: positiveInt.max(20).default(2),
  generator: z.enum(["auto", "local", "fal"]).default("auto"),
  critic: z.enum(["auto", "local", "gemini"]).default("auto"),
  offline: z.boolean().default(false),
  /** Base seed; default derived from each prompt's id, so reruns are reproducible. */
  seed: z.coerce.number().int().min(0).max(2 ** 32 - 1).optional(),
  varySeed: z.boolean().default(false),
  quiet: z.boolean().default(false),
  verbose: z.boolean().default(false),
  /** Deadline for one provider call, in ms. */
  timeoutMs: positiveInt.default(120_000),
  retry: z.object({
    maxAttempts: positiveInt.max(20).default(4),
    minTimeoutMs: z.coerce.number().nonnegative().default(1000),
    maxTimeoutMs: z.coerce.number().nonnegative().default(30_000),
    multiplier: z.coerce.number().min(1).default(2),
    jitter: z.coerce.number().min(0).max(1).default(0.5),
    /** Retries allowed in the whole run. */
    budget: z.coerce.number().int().nonnegative().default(200),
    /** Multiplies every delay, server hints included: for tests. */
    timeScale: z.coerce.number().nonnegative().default(1),
  }).prefault({}),
  fal: z.object({
    key: z.string().min(1).optional(),
    baseUrl: urlString.optional(),
    safetyChecker: z.boolean().default(true),
    failOnNsfw: z.boolean().default(true),
    steps: positiveInt.optional(),
    /** USD per megapixel or per image, by endpoint id. */
    prices: priceTable.optional(),
    pollIntervalMs: positiveInt.default(500),
  }).prefault({}),
  gemini: z.object({
    key: z.string().min(1).optional(),
    baseUrl: urlString.optional(),
    /** USD per 1M tokens, by model id. */
    prices: tokenPriceTable.optional(),
  }).prefault({}),
}).strict();

/** Settings after validation. */
export type Config = z.infer<typeof configSchema>;

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
}

/** Where configuration comes from; injected so tests control every layer. */
export interface ConfigSources {
  args: string[];
  env: Record<string, string | undefined>;
  cwd: string;
  readTextFile: (path: string) => Promise<string>;
}

const FLAG_OPTIONS = {
  out: { type: "string", short: "o" },
  name: { type: "string" },
  size: { type: "string" },
  format: { type: "string" },
  model: { type: "string" },
  "critic-model": { type: "string" },
  concurrency: { type: "string", short: "c" },
  iterations: { type: "string", short: "n" },
  generator: { type: "string" },
  critic: { type: "string" },
  offline: { type: "boolean" },
  seed: { type: "string" },
  "vary-seed": { type: "boolean" },
  timeout: { type: "string" },
  config: { type: "string" },
  quiet: { type: "boolean", short: "q" },
  verbose: { type: "boolean", short: "v" },
  watch: { type: "boolean", short: "w" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

/** Environment variables and the setting each feeds. First name listed wins. */
const ENV_SETTINGS: Array<[string[], string[]]> = [
  [["FAL_KEY", "FAL_AI_API_KEY"], ["fal", "key"]],
  [["GEMINI_API_KEY", "GOOGLE_API_KEY"], ["gemini", "key"]],
  [["FAL_BASE_URL"], ["fal", "baseUrl"]],
  [["GEMINI_BASE_URL"], ["gemini", "baseUrl"]],
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
  [["RETAKE_RETRY_TIME_SCALE"], ["retry", "timeScale"]],
];

/** Every environment variable retake reads; `main.ts` grants exactly these. */
export const ENV_NAMES: string[] = ENV_SETTINGS.flatMap(([names]) => names).concat(
  "RETAKE_OFFLINE",
);

/** Builds the run's settings from every layer; throws {@linkcode InputError} on bad input. */
export async function loadConfig(sources: ConfigSources): Promise<Invocation> {
  let parsed;
  try {
    parsed = parseArgs({
      args: sources.args,
      options: FLAG_OPTIONS,
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
  const explicit = flags.config;
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

  const dotenvText = await readOptional(sources, joinPath(sources.cwd, ".env"), false);
  const dotenv = dotenvText === undefined ? {} : parseDotenv(dotenvText);
  const env: Record<string, string | undefined> = { ...dotenv, ...sources.env };
  const keySources: string[] = [];
  const fromEnv: Record<string, unknown> = {};
  for (const [names, path] of ENV_SETTINGS) {
    const name = names.find((n) => env[n] !== undefined && env[n] !== "");
    if (name === undefined) continue;
    setPath(fromEnv, path, env[name]);
    if (path[1] === "key") keySources.push(name in sources.env ? name : `${name} (.env)`);
  }
  if (env.RETAKE_OFFLINE === "1" || env.RETAKE_OFFLINE === "true") fromEnv.offline = true;
  layers.push(["environment", fromEnv]);

  const fromFlags: Record<string, unknown> = {};
  const flagMap: Record<string, string[]> = {
    out: ["out"],
    name: ["name"],
    size: ["size"],
    format: ["format"],
    model: ["model"],
    "critic-model": ["criticModel"],
    concurrency: ["concurrency"],
    iterations: ["iterations"],
    generator: ["generator"],
    critic: ["critic"],
    offline: ["offline"],
    seed: ["seed"],
    "vary-seed": ["varySeed"],
    timeout: ["timeoutMs"],
    quiet: ["quiet"],
    verbose: ["verbose"],
  };
  for (const [flag, path] of Object.entries(flagMap)) {
    const value = (flags as Record<string, unknown>)[flag];
    if (value !== undefined) setPath(fromFlags, path, value);
  }
  layers.push(["command line", fromFlags]);

  const merged: Record<string, unknown> = {};
  for (const [, layer] of layers) deepMerge(merged, layer);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.join(".") || "(settings)";
    const source = layers.findLast(([, layer]) => hasPath(layer, issue.path))?.[0] ??
      "settings";
    throw new InputError(`Invalid setting '${key}' from ${source}: ${issue.message}`);
  }
  return {
    config: result.data,
    promptFiles: parsed.positionals,
    help: flags.help ?? false,
    version: flags.version ?? false,
    watch: flags.watch ?? false,
    ...(configFile !== undefined && { configFile }),
    keySources,
  };
}

/** The secret values in a config, for redaction. */
export function secretsOf(config: Config): string[] {
  return [config.fal.key, config.gemini.key].filter((v): v is string => !!v);
}

/** The settings without secrets, safe to write to `run.json`. */
export function publicSettings(config: Config): Record<string, unknown> {
  const { fal, gemini, ...rest } = config;
  const { key: _falKey, ...falRest } = fal;
  const { key: _geminiKey, ...geminiRest } = gemini;
  return { ...rest, fal: falRest, gemini: geminiRest };
}

/** Usage text for `--help`. */
export const USAGE = `retake — generate, critique and refine images in bulk

Usage:
  retake [options] <prompts.json> [more.json ...]
  deno task run [options] <prompts.json>

Options:
  -o, --out DIR            output base folder (default: outputs)
      --name NAME          batch folder name (default: prompt file name)
      --size SIZE          WIDTHxHEIGHT or a preset: ${Object.keys(SIZE_PRESETS).join(", ")}
                           (default: 1024x768)
      --format FMT         png or jpeg (default: png)
      --model ID           generation model (fal: flux-schnell, flux-dev, flux-pro, sdxl,
                           sd-1.5 or any fal endpoint id)
      --critic-model ID    Gemini model for critique and refinement
  -n, --iterations N       images per prompt: the first plus N-1 refined (default: 2)
  -c, --concurrency N      calls in flight per stage (default: 2)
      --generator NAME     auto, local or fal (default: auto = fal when FAL_KEY is set)
      --critic NAME        auto, local or gemini (default: auto = gemini when GEMINI_API_KEY is set)
      --offline            use the embedded local providers, even when keys are set
      --seed N             base seed (default: derived from each prompt id)
      --vary-seed          new seed for every iteration (default: one seed per prompt)
      --timeout MS         deadline for one provider call (default: 120000)
      --config FILE        config file (default: ./retake.config.json if present)
  -w, --watch              after the run, re-process prompts edited in the files
  -q, --quiet              no progress line
  -v, --verbose            debug logging on stderr
  -h, --help               this text
  -V, --version            the version

Keys come from the environment, .env or the config file: FAL_KEY (or FAL_AI_API_KEY),
GEMINI_API_KEY (or GOOGLE_API_KEY). Without keys retake runs offline.

Exit codes: 0 all prompts completed, 1 some failed, 2 usage or input error,
3 the run was stopped (bad key, locked account), 130 interrupted.
`;

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

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = value;
}

function hasPath(target: Record<string, unknown>, path: PropertyKey[]): boolean {
  let node: unknown = target;
  for (const key of path) {
    if (node === null || typeof node !== "object" || !(key in node)) return false;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return true;
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
