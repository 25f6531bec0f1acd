/**
 * Every command-line flag, once: the parser's options, the setting each one sets, and the
 * `--help` lines are all read from {@linkcode FLAGS}; a test checks README's table against it.
 *
 * @module
 */

/** One flag. */
export interface Flag {
  /** The long name, without dashes. */
  readonly name: string;
  readonly short?: string;
  readonly type: "string" | "boolean";
  /** What the value is called in `--help`, for string flags. */
  readonly arg?: string;
  /** The setting it sets, as a path in the config; absent for flags the CLI handles itself. */
  readonly setting?: readonly string[];
  /** `--help` text, wrapped to the terminal's 80 columns by `usage.ts`. */
  readonly help: string;
}

/** Every flag, in `--help` order. */
export const FLAGS: readonly Flag[] = [
  {
    name: "out",
    short: "o",
    type: "string",
    arg: "DIR",
    setting: ["out"],
    help: "output base folder (default: outputs)",
  },
  {
    name: "name",
    type: "string",
    arg: "NAME",
    setting: ["name"],
    help: "batch folder name (default: prompt file name)",
  },
  {
    name: "size",
    type: "string",
    arg: "SIZE",
    setting: ["size"],
    help: "WIDTHxHEIGHT or a preset such as square_hd, landscape_4_3 (default: 1024x768)",
  },
  {
    name: "format",
    type: "string",
    arg: "FMT",
    setting: ["format"],
    help: "png or jpeg (default: png)",
  },
  {
    name: "models",
    type: "string",
    arg: "A,B,...",
    setting: ["models"],
    help: "compare generation models side by side (one subfolder each)",
  },
  {
    name: "replay",
    type: "string",
    arg: "RUN.json",
    help: "run again with the settings and seeds of an earlier run",
  },
  {
    name: "model",
    type: "string",
    arg: "ID",
    setting: ["model"],
    help: "generation model: an alias or any model id of the generator",
  },
  {
    name: "critic-model",
    type: "string",
    arg: "ID",
    setting: ["criticModel"],
    help: "model for critique and refinement (default: the critic's own)",
  },
  {
    name: "iterations",
    short: "n",
    type: "string",
    arg: "N",
    setting: ["iterations"],
    help: "images per prompt: the first plus N-1 refined (default: 2)",
  },
  {
    name: "concurrency",
    short: "c",
    type: "string",
    arg: "N",
    setting: ["concurrency"],
    help: "calls in flight per stage, or auto: found per provider while it runs (default: auto)",
  },
  {
    name: "generator",
    type: "string",
    arg: "NAME",
    setting: ["generator"],
    help: "a provider that generates, or auto (default: the first whose key is set)",
  },
  {
    name: "critic",
    type: "string",
    arg: "NAME",
    setting: ["critic"],
    help: "a provider that critiques, or auto (default: as for --generator)",
  },
  {
    name: "workflow",
    type: "string",
    arg: "FILE",
    setting: ["comfyui", "workflow"],
    help: "ComfyUI workflow in API format with {{prompt}}, {{seed}}, … (--generator comfyui)",
  },
  {
    name: "api-auth",
    type: "string",
    arg: "USER:PASS",
    setting: ["a1111", "auth"],
    help: "basic auth of the AUTOMATIC1111 web UI (--generator a1111); never logged",
  },
  {
    name: "offline",
    type: "boolean",
    setting: ["offline"],
    help: "use the embedded local providers, even when keys are set",
  },
  {
    name: "seed",
    type: "string",
    arg: "N",
    setting: ["seed"],
    help: "base seed (default: derived from each prompt id)",
  },
  {
    name: "vary-seed",
    type: "boolean",
    setting: ["varySeed"],
    help: "new seed for every iteration (default: one seed per prompt)",
  },
  {
    name: "target-score",
    type: "string",
    arg: "S",
    setting: ["targetScore"],
    help: "stop a prompt once every check passes and a critique scores S (0-10)",
  },
  {
    name: "refine",
    type: "string",
    arg: "MODE",
    setting: ["refine"],
    help:
      "edit (the best image so far), regenerate, or auto: edit when only local checks failed (default: auto)",
  },
  {
    name: "patience",
    type: "string",
    arg: "N",
    setting: ["patience"],
    help: "stop a prompt once N rounds have not improved on its best (default: 2)",
  },
  {
    name: "only",
    type: "string",
    arg: "ID,ID",
    setting: ["only"],
    help: "run only these prompts: ids, or FIELD=VALUE of their context (Category=Animals)",
  },
  {
    name: "prompt",
    short: "p",
    type: "string",
    arg: "TEXT",
    setting: ["prompt"],
    help: "a prompt of its own, for a quick one-off (a file '-' is read from stdin)",
  },
  {
    name: "prompt-field",
    type: "string",
    arg: "NAME",
    setting: ["promptField"],
    help:
      "the field or column that holds the prompt (default: prompt, Prompt, text, caption or description)",
  },
  {
    name: "id-field",
    type: "string",
    arg: "NAME",
    setting: ["idField"],
    help: "the field or column that holds the id (default: id or item_id; else made from the text)",
  },
  {
    name: "checks-field",
    type: "string",
    arg: "NAME",
    setting: ["checksField"],
    help:
      "the field or column of each prompt's own checks, its brief (default: checks, question or question_natural_language)",
  },
  {
    name: "force",
    type: "boolean",
    setting: ["force"],
    help: "redo every prompt (earlier attempts are moved aside)",
  },
  {
    name: "max-cost",
    type: "string",
    arg: "USD",
    setting: ["maxCost"],
    help: "spend at most this much in this run; 0 makes no paid call",
  },
  {
    name: "batch-api",
    type: "boolean",
    setting: ["batchApi"],
    help:
      "send Gemini's and OpenAI's calls in batch jobs at half price; rounds wait for the jobs (hours)",
  },
  {
    name: "cancel-batch-jobs",
    type: "boolean",
    setting: ["cancelBatchJobs"],
    help: "cancel the batch jobs this batch left running, then stop",
  },
  {
    name: "dry-run",
    type: "boolean",
    setting: ["dryRun"],
    help: "check files, settings and keys; say what would run and its cost range; pay nothing",
  },
  {
    name: "json",
    type: "boolean",
    setting: ["json"],
    help: "print the summary, or the --dry-run plan, as one JSON document on stdout",
  },
  {
    name: "timeout",
    type: "string",
    arg: "MS",
    setting: ["timeoutMs"],
    help: "deadline for one provider call (default: 120000)",
  },
  {
    name: "config",
    type: "string",
    arg: "FILE",
    help: "config file (default: ./retake.config.json if present)",
  },
  {
    name: "watch",
    short: "w",
    type: "boolean",
    help: "after the run, re-process prompts edited in the files",
  },
  {
    name: "ui",
    type: "boolean",
    help: "open the studio: watch and steer the run in a browser",
  },
  {
    name: "port",
    type: "string",
    arg: "N",
    help: "the studio's port on 127.0.0.1 (default: a free one)",
  },
  { name: "quiet", short: "q", type: "boolean", setting: ["quiet"], help: "no progress line" },
  {
    name: "verbose",
    short: "v",
    type: "boolean",
    setting: ["verbose"],
    help: "debug logging on stderr",
  },
  { name: "help", short: "h", type: "boolean", help: "this text" },
  { name: "version", short: "V", type: "boolean", help: "the version" },
];
