/**
 * Settings from every layer: built-in defaults < config file < environment (`.env` below the
 * real environment) < command-line flags, merged and validated once at start; and `--replay`.
 *
 * @module
 */
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { parse as parseDotenv } from "dotenv";
import { FLAGS } from "./flags.ts";
import { parseCommandLine } from "./parse_args.ts";
import { ENV_SETTINGS, OFFLINE_ENV, typoWarnings } from "./env_settings.ts";
import { looseNumberIssue, type Origin, settingMessage } from "./setting_errors.ts";
import { type Config, configSchema, type ProviderSections } from "../config.ts";
import { InputError } from "../errors.ts";
import { DESCRIPTORS } from "../providers/catalog.ts";
import { parseRunInfo } from "../output/run_file.ts";

/** What the command line asked for, besides settings. */
export interface Invocation {
  /** The run's settings, checked. */
  config: Config;
  /** The prompt files named (`-`: standard input); with `--replay`, the replayed run's. */
  promptFiles: string[];
  /** `--help`: show the usage and run nothing. */
  help: boolean;
  /** `--version`: show the version and run nothing. */
  version: boolean;
  /** `--watch`: run, then re-run the prompts edited in the files (see `watchBatch`). */
  watch: boolean;
  /** `--ui`: the studio attached to the run. */
  ui: boolean;
  /** `--port`: the studio's port, as given (checked where the studio starts). */
  port?: string;
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
  /** The flags and prompt files of `retake [flags] <prompts>...`, e.g. `["-n", "3", "a.json"]`. */
  args: string[];
  /** The environment: keys, base URLs and `RETAKE_*` settings, e.g. `Deno.env.toObject()`. */
  env: Record<string, string | undefined>;
  /** The folder `retake.config.json` and `.env` are looked for in, e.g. `Deno.cwd()`. */
  cwd: string;
  /** Reads a file as text (the config file, `.env`, a `--replay` run.json). */
  readTextFile: (path: string) => Promise<string>;
}

/** The settings that hold secrets, as `section.setting`. */
const SECRET_PATHS = new Set(
  DESCRIPTORS.flatMap((p) => p.env.filter((e) => e.secret).map((e) => `${p.name}.${e.setting}`)),
);

/** One source of settings: its name in messages, what it sets, and where that came from. */
type Layer = [label: string, data: Record<string, unknown>, origin: Origin];

function fileLayer(label: string, data: Record<string, unknown>): Layer {
  return [label, data, { label }];
}

/** Options for {@linkcode loadConfig}. */
export interface LoadOptions {
  /**
   * The `--replay` file comes with a batch folder that may be someone else's (the round a note
   * asks for in `retake serve`): it shapes the round (model, size, seed, rubric), but what
   * spends money and how (offline, `maxCost`, retries, concurrency, timeouts, every provider's
   * section with its prices) is this machine's settings; the file can only make a run more
   * careful (offline, a lower `maxCost`), never less.
   *
   * @default {false}
   */
  receivedReplay?: boolean;
}

/**
 * Settings a received `run.json` never gives: they decide what a run spends, or where its calls
 * go and with which key.
 */
const SPENDING = [
  "offline",
  "maxCost",
  "retry",
  "concurrency",
  "timeoutMs",
  "graceMs",
  "dryRun",
  "batchApi",
  "batchPollMs",
  "batchGatherMs",
  "cancelBatchJobs",
];

/**
 * Builds the run's settings from every layer, as the command line does: built-in defaults, then
 * the config file, then the environment (`.env` beneath it), then the flags; checked once.
 * Throws {@linkcode InputError} on bad input, naming the setting and where it came from.
 *
 * @param sources The flags, the environment, the working folder and how to read a file.
 * @param options How to treat a `--replay` file.
 * @returns The settings, the prompt files, and what else the command line asked for.
 */
export async function loadConfig(
  sources: ConfigSources,
  options: LoadOptions = {},
): Promise<Invocation> {
  const parsed = parseCommandLine(sources.args);
  const flags = parsed.values as Record<string, unknown>;
  const text = (name: string) => typeof flags[name] === "string" ? flags[name] : undefined;
  const on = (name: string) => flags[name] === true;

  const file = await configFileLayer(sources, text("config"));
  const replayFile = text("replay");
  // Prompt files given on the command line replace the run's: those need not exist any more.
  const replay = replayFile === undefined ? undefined : await replayLayer(
    sources,
    replayFile,
    parsed.positionals.length === 0,
    options.receivedReplay === true,
  );
  const { env, dotenv } = await environment(sources);
  const fromEnv = envLayers(sources, env);
  const layers: Layer[] = [
    ...(file.layer ? [file.layer] : []),
    ...(replay ? [replay.layer] : []),
    ...fromEnv.layers,
    ...flagLayers(flags),
  ];

  const config = validated(layers);
  const notices = [
    ...typoWarnings(
      Object.keys(sources.env).filter((name) => sources.env[name] !== undefined),
      "in the environment",
    ),
    ...typoWarnings(Object.keys(dotenv), "in .env"),
    ...baseUrlNotices(config, layers),
  ];
  if (replay) applyCareful(config, replay.careful);
  return {
    config,
    promptFiles: parsed.positionals.length > 0 ? parsed.positionals : replay?.promptFiles ?? [],
    help: on("help"),
    version: on("version"),
    watch: on("watch"),
    ui: on("ui"),
    ...(text("port") !== undefined && { port: text("port")! }),
    ...(file.configFile !== undefined && { configFile: file.configFile }),
    keySources: fromEnv.keySources,
    notices,
  };
}

/** What a received run may still ask of this one: only more care, never less. */
interface Careful {
  offline: boolean;
  maxCost?: number;
}

/** The config file's layer: `--config`, which must exist, else `retake.config.json` if any. */
async function configFileLayer(
  sources: ConfigSources,
  explicit: string | undefined,
): Promise<{ layer?: Layer; configFile?: string }> {
  const candidate = explicit ?? joinPath(sources.cwd, "retake.config.json");
  const fileText = await readOptional(sources, candidate, explicit !== undefined);
  if (fileText === undefined) return {};
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
  return {
    layer: fileLayer(`config file '${candidate}'`, data as Record<string, unknown>),
    configFile: candidate,
  };
}

/**
 * The `--replay` run's layer and prompt files; a received run's spending settings and provider
 * sections are dropped, and what it asks in care is kept aside to apply after validation.
 */
async function replayLayer(
  sources: ConfigSources,
  replayFile: string,
  findPromptFiles: boolean,
  received: boolean,
): Promise<{ layer: Layer; promptFiles: string[]; careful: Careful }> {
  const replay = await readReplay(sources, replayFile, findPromptFiles);
  let settings = replay.settings;
  let careful: Careful = { offline: false };
  if (received) {
    const maxCost = settings.maxCost;
    careful = {
      offline: settings.offline === true,
      ...(typeof maxCost === "number" && Number.isFinite(maxCost) && maxCost >= 0 &&
        { maxCost }),
    };
    const providers = new Set(DESCRIPTORS.map((p) => p.name));
    settings = Object.fromEntries(
      Object.entries(settings).filter(([key]) => !SPENDING.includes(key) && !providers.has(key)),
    );
  }
  const layer = fileLayer(`replayed run '${replayFile}'`, settings);
  return { layer, promptFiles: replay.promptFiles, careful };
}

/** The environment with `.env` beneath it, and `.env`'s own variables (for typo warnings). */
async function environment(
  sources: ConfigSources,
): Promise<{ env: Record<string, string | undefined>; dotenv: Record<string, string> }> {
  const dotenvText = await readOptional(sources, joinPath(sources.cwd, ".env"), false, "file");
  const dotenv = dotenvText === undefined ? {} : parseDotenv(dotenvText);
  // The real environment wins over .env, but only for variables it actually sets.
  const env: Record<string, string | undefined> = { ...dotenv };
  for (const [name, value] of Object.entries(sources.env)) {
    if (value !== undefined) env[name] = value;
  }
  return { env, dotenv };
}

/** The environment's layers, and the names of the variables that supplied keys. */
function envLayers(
  sources: ConfigSources,
  env: Record<string, string | undefined>,
): { layers: Layer[]; keySources: string[] } {
  const layers: Layer[] = [];
  const keySources: string[] = [];
  const envSource = (name: string): Origin => {
    const dotenv = sources.env[name] === undefined;
    return {
      label: `environment variable ${name}${dotenv ? " (from .env)" : ""}`,
      env: { name, dotenv },
    };
  };
  // One layer per variable, so an error names the variable that supplied the bad value.
  for (const [names, path] of ENV_SETTINGS) {
    const name = names.find((n) => env[n] !== undefined && env[n] !== "");
    if (name === undefined) continue;
    const fromEnv: Record<string, unknown> = {};
    setPath(fromEnv, path, env[name]);
    layers.push([envSource(name).label, fromEnv, envSource(name)]);
    if (SECRET_PATHS.has(path.join("."))) {
      keySources.push(sources.env[name] !== undefined ? name : `${name} (.env)`);
    }
  }
  if (env[OFFLINE_ENV] === "1" || env[OFFLINE_ENV] === "true") {
    const origin = envSource(OFFLINE_ENV);
    layers.push([origin.label, { offline: true }, origin]);
  }
  return { layers, keySources };
}

/** One layer per flag, so an error names the flag that gave the bad value. */
function flagLayers(flags: Record<string, unknown>): Layer[] {
  const layers: Layer[] = [];
  for (const flag of FLAGS) {
    const value = flags[flag.name];
    if (value === undefined || !flag.setting) continue;
    const fromFlag: Record<string, unknown> = {};
    setPath(fromFlag, flag.setting, value);
    layers.push(["command line", fromFlag, { label: "command line", flag: `--${flag.name}` }]);
  }
  return layers;
}

/** The layers merged in order and checked; the error names the layer that gave the bad value. */
function validated(layers: Layer[]): Config {
  const merged: Record<string, unknown> = {};
  for (const [, layer] of layers) deepMerge(merged, layer);
  const result = configSchema.safeParse(merged);
  const loose = looseNumberIssue(configSchema, merged);
  if (result.success && loose === undefined) return result.data;
  const issue = loose ?? result.error!.issues[0]!;
  const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]!] : issue.path;
  const source = layers.findLast(([, layer]) => setsPath(layer, path));
  throw new InputError(settingMessage({
    issue,
    schema: configSchema,
    input: merged,
    ...(source && { origin: { origin: source[2], path: givenPath(source[1], path) } }),
    secret: SECRET_PATHS.has(path.slice(0, 2).join(".")),
  }));
}

/** One line per overridden base URL, as the key goes wherever it points; checks each. */
function baseUrlNotices(config: Config, layers: Layer[]): string[] {
  const notices: string[] = [];
  for (const [section, service] of BASE_URLS) {
    const url = (config[section as keyof ProviderSections] as { baseUrl?: string }).baseUrl;
    if (url === undefined) continue;
    const path = [section, "baseUrl"];
    const layer = layers.findLast(([, data]) => setsPath(data, path));
    const source = layer?.[0] ?? "settings";
    const shown = checkBaseUrl(
      `${section}.baseUrl`,
      url,
      layer?.[2] ?? { label: source },
      sendsSecret(section, config[section as keyof ProviderSections]),
    );
    notices.push(`Sending ${service} requests to ${shown} (${section}.baseUrl from ${source})`);
  }
  return notices;
}

/** A received run can only make this one more careful. */
function applyCareful(config: Config, careful: Careful): void {
  if (careful.offline) config.offline = true;
  if (careful.maxCost !== undefined) {
    config.maxCost = Math.min(config.maxCost ?? Infinity, careful.maxCost);
  }
}

/** The base URL settings, each with the service it replaces. */
const BASE_URLS = DESCRIPTORS.filter((p) => p.env.some((e) => e.setting === "baseUrl"))
  .map((p) => [p.name, p.title] as const);

/**
 * Whether a provider's requests carry a secret: one is set, or it cannot run without one. A
 * server that takes none (ComfyUI, a web UI without `--api-auth` on another machine of the
 * network) may be reached over plain http.
 */
function sendsSecret(name: string, section: unknown): boolean {
  const provider = DESCRIPTORS.find((p) => p.name === name);
  const settings = (section ?? {}) as Record<string, unknown>;
  return provider?.env.some((e) =>
    e.secret && (settings[e.setting] !== undefined || !provider.available(settings))
  ) ?? true;
}

/**
 * The key goes wherever a base URL points: only https, or plain http to this machine (a local
 * stand-in or proxy), where nothing on the network can read it. Returns the URL as shown to
 * people: without any user name, password or query.
 */
function checkBaseUrl(key: string, value: string, origin: Origin, keySent = true): string {
  const url = new URL(value);
  const shown = `${url.protocol}//${url.host}${url.pathname === "/" ? "" : url.pathname}`;
  if (!keySent) return shown;
  const host = url.hostname.toLowerCase();
  const loopback = host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    const expected =
      "expected an https:// URL, or http:// only to this machine (localhost, 127.0.0.1, [::1]), as the key is sent there";
    throw new InputError(
      origin.env === undefined
        ? `Cannot use '${key}' from ${origin.label}: ${expected}: current value is '${shown}'`
        : `Cannot use ${origin.env.name}=${shown} from ${
          origin.env.dotenv ? ".env" : "the environment"
        }: ${expected}`,
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
  findPromptFiles: boolean,
): Promise<{ settings: Record<string, unknown>; promptFiles: string[] }> {
  const read = parseRunInfo((await readOptional(sources, path, true, "run file"))!);
  if (read.problem !== undefined) {
    throw new InputError(`Cannot replay '${path}': it ${read.problem}`);
  }
  const run = read.value;
  if (!isPlainObject(run.settings) || !Array.isArray(run.promptFiles)) {
    throw new InputError(
      `Cannot replay '${path}': expected a retake run.json with 'settings' and 'promptFiles'`,
    );
  }
  const { quiet: _q, verbose: _v, force: _f, json: _j, dryRun: _d, size, ...rest } = run.settings;
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
  const promptFiles = findPromptFiles
    ? await replayedPromptFiles(sources, path, {
      out: run.settings.out,
      batch: run.batch,
      promptFiles: run.promptFiles,
    })
    : [];
  return { settings: dropUndefined(settings), promptFiles };
}

/**
 * The replayed run's prompt files, found where that run found them: its paths are relative to
 * the folder it ran in, which is the run file's folder less `<out>/<batch>` (a run of `retake
 * prompts/a.json` in /p writes /p/outputs/a/run.json). Then the run file's own folder, then
 * this one, for a batch folder that was moved.
 */
async function replayedPromptFiles(
  sources: ConfigSources,
  path: string,
  run: { out: unknown; batch: unknown; promptFiles: unknown[] },
): Promise<string[]> {
  const runDir = dirname(resolve(sources.cwd, path));
  const bases: string[] = [];
  const out = run.out;
  if (typeof out === "string" && !isAbsolute(out) && typeof run.batch === "string") {
    const made = resolve("/", out, run.batch);
    if (runDir === made || runDir.endsWith(made)) {
      bases.push(runDir.slice(0, runDir.length - made.length) || "/");
    }
  }
  bases.push(runDir, resolve(sources.cwd));
  const files: string[] = [];
  for (const file of run.promptFiles.map(String)) {
    if (isAbsolute(file)) {
      files.push(file);
      continue;
    }
    const tried = [...new Set(bases.map((base) => resolve(base, file)))];
    let found: string | undefined;
    for (const candidate of tried) {
      if (await readOptional(sources, candidate, false, "prompt file") !== undefined) {
        found = candidate;
        break;
      }
    }
    if (found === undefined) {
      throw new InputError(
        `Cannot replay '${path}' as its prompt file '${file}' is in none of ${
          tried.map((t) => `'${t}'`).join(", ")
        }: give the prompt files after the run file (retake --replay ${path} <prompts.json>)`,
      );
    }
    files.push(relativeIfInside(sources.cwd, found));
  }
  return files;
}

/** `path` relative to `dir` when it is inside it, as a person would type it; else absolute. */
function relativeIfInside(dir: string, path: string): string {
  const rel = relative(resolve(dir), path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}

function dropUndefined(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    out[k] = isPlainObject(v) ? dropUndefined(v) : v;
  }
  return out;
}

async function readOptional(
  sources: ConfigSources,
  path: string,
  required: boolean,
  what = "config file",
): Promise<string | undefined> {
  try {
    return await sources.readTextFile(path);
  } catch (error) {
    if (!required && error instanceof Deno.errors.NotFound) return undefined;
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : (error as Error).message;
    throw new InputError(`Cannot read ${what} '${path}': ${reason}`, { cause: error });
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

/** The part of `path` that `layer` holds: `--size 10x10` gives `size`, not `size.width`. */
function givenPath(layer: Record<string, unknown>, path: readonly PropertyKey[]): PropertyKey[] {
  const given: PropertyKey[] = [];
  let node: unknown = layer;
  for (const key of path) {
    if (!isPlainObject(node) || !(key as string in node)) break;
    given.push(key);
    node = node[key as string];
  }
  return given;
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
