/**
 * retake's command line: reads `Deno.args` and the environment once, wires the real
 * stdout/stderr and signals, runs the batch, and maps errors to exit codes.
 *
 * @module
 */
import { type ConfigSources, type Invocation, loadConfig } from "./src/config/load.ts";
import type { Config } from "./src/config.ts";
import { type Interrupts, listenForInterrupts } from "./src/cli/interrupts.ts";
import { USAGE } from "./src/cli/usage.ts";
import { ENV_NAMES } from "./src/config/env_settings.ts";
import { typoCandidates } from "./src/config/env_settings.ts";
import { jsonLine } from "./src/batch/json_summary.ts";
import { exitCodeOf, InputError, messageOf } from "./src/errors.ts";
import { escapeControls, escapeLines } from "./src/util/terminal_text.ts";
import { evalCommand } from "./src/eval/command.ts";
import { writeGallery } from "./src/gallery/gallery.ts";
import {
  type BatchResult,
  EXIT,
  runBatch,
  type RunIo,
  type SteeredIo,
  VERSION,
  watchBatch,
} from "./src/batch/run.ts";
import { pendingRejectsRunner, runWithStudio, serveCommand } from "./src/studio/command.ts";

const encoder = new TextEncoder();

/**
 * Writes all of `text` to `stream`. A stream that fails (a closed pipe: `| head`, a `tee`
 * killed by the same Ctrl-C) is written no more: the batch goes on and saves its work, since
 * what it prints is only a view of what it writes to disk.
 */
function streamWriter(stream: { writeSync(bytes: Uint8Array): number }): (text: string) => void {
  let closed = false;
  return (text) => {
    if (closed) return;
    try {
      const bytes = encoder.encode(text);
      for (let written = 0; written < bytes.length;) {
        const n = stream.writeSync(bytes.subarray(written));
        if (n <= 0) throw new Deno.errors.WriteZero("wrote nothing");
        written += n;
      }
    } catch {
      closed = true;
    }
  };
}
const writeOut = streamWriter(Deno.stdout);
const writeErr = streamWriter(Deno.stderr);

/** The terminal's width, for the progress line: 80 when it has none (a pipe, a file). */
function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80;
  }
}

/**
 * The variables retake reads, and any set `RETAKE_*` name that looks like a typo of one (for
 * a warning). The `run` task grants only `RETAKE_*` and the names retake reads, so the
 * environment cannot be listed: the likely typos are asked for by name, where granted.
 */
function readEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of ENV_NAMES) env[name] = Deno.env.get(name);
  const granted = Deno.permissions.querySync({ name: "env", variable: "RETAKE_TYPO" });
  if (granted.state === "granted") {
    for (const name of typoCandidates()) {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    }
  }
  return env;
}

/** Whether the command line asks for `--json` (before any `--`), read even when it is invalid. */
function wantsJson(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).includes("--json");
}

async function main(args: string[]): Promise<number> {
  const interrupts = listenForInterrupts(writeErr);
  try {
    // Only as the first word: `retake -n 2 gallery` runs a prompt file named gallery.
    if (args[0] === "gallery") return await gallery(args.slice(1));
    if (args[0] === "serve") return await serve(args.slice(1), interrupts);
    if (args[0] === "eval") return await evaluate(args.slice(1), interrupts);
    return await run(args, interrupts);
  } catch (error) {
    return failed(error, args);
  } finally {
    interrupts.dispose();
  }
}

/** What the library reads from this machine: the environment, the folder, its files. */
function configSources(): Omit<ConfigSources, "args"> {
  return { env: readEnv(), cwd: Deno.cwd(), readTextFile: Deno.readTextFile };
}

/** `retake serve`: the studio, which runs the rounds its notes ask for. */
function serve(args: string[], interrupts: Interrupts): Promise<number> {
  return serveCommand(
    args,
    { writeOut, writeErr, signal: interrupts.signal },
    pendingRejectsRunner(
      { writeOut, writeErr, isTerminal: false, signal: interrupts.signal },
      configSources(),
    ),
  );
}

/** `retake eval`: every image from the original prompt, scored. */
function evaluate(args: string[], interrupts: Interrupts): Promise<number> {
  return evalCommand(args, configSources(), {
    writeOut,
    writeErr,
    isTerminal: Deno.stderr.isTerminal(),
    signal: interrupts.signal,
    abortNow: interrupts.abortNow,
  });
}

/** `retake [flags] <prompts.json>...`: a batch, watched or with the studio attached. */
async function run(args: string[], interrupts: Interrupts): Promise<number> {
  const invocation = await loadConfig({ args, ...configSources() });
  if (invocation.help) {
    writeOut(USAGE);
    return EXIT.ok;
  }
  if (invocation.version) {
    writeOut(`retake ${VERSION}\n`);
    return EXIT.ok;
  }
  const io: RunIo & { signal: AbortSignal } = {
    writeOut,
    writeErr,
    isTerminal: Deno.stderr.isTerminal(),
    columns: terminalColumns,
    signal: interrupts.signal,
    abortNow: interrupts.abortNow,
  };
  for (const notice of invocation.notices) writeErr(`${escapeControls(notice)}\n`);
  if (invocation.watch) {
    return await watchBatch(invocation.config, invocation.promptFiles, io);
  }
  if (invocation.ui && invocation.watch) {
    throw new InputError(
      "Cannot use --ui with --watch: run with one of them (retake serve shows a watched batch too)",
    );
  }
  if (invocation.ui) return await withStudio(invocation, io);
  return (await runOnce(invocation.config, invocation.promptFiles, io)).exitCode;
}

/** `--ui`: the batch with the studio attached. */
function withStudio(invocation: Invocation, io: RunIo & { signal: AbortSignal }): Promise<number> {
  const { config, promptFiles } = invocation;
  const sources = configSources();
  return runWithStudio(
    config,
    promptFiles,
    invocation.port,
    io,
    (attached) => runOnce(config, promptFiles, attached),
    pendingRejectsRunner(io, sources),
  );
}

/** One batch run, saying how to resume one that was interrupted. */
async function runOnce(
  config: Config,
  promptFiles: string[],
  io: SteeredIo,
): Promise<BatchResult> {
  const result = await runBatch(config, promptFiles, io);
  if (result.exitCode === EXIT.interrupted) {
    writeErr(`Saved what was done. Run the same command again to resume.\n`);
  }
  return result;
}

/** Shows why the command failed (and on stdout too, with `--json`); returns its exit code. */
function failed(error: unknown, args: string[]): number {
  // Messages quote paths, ids and service answers: shown, never obeyed by the terminal. A
  // list of problems (every invalid prompt) keeps its lines.
  writeErr(`error: ${escapeLines(messageOf(error))}\n`);
  // Input errors carry 2; a bad key or an unknown model found by the free checks at start
  // (nothing was paid) is fatal: 3.
  const code = exitCodeOf(error);
  // A script reading --json's stdout gets a document for a run that never started too.
  if (wantsJson(args)) {
    writeOut(jsonLine({ status: "error", exitCode: code, error: messageOf(error) }));
  }
  return code;
}

/** `retake gallery <dir> [...]`: rebuilds each batch folder's index.html. */
async function gallery(dirs: string[]): Promise<number> {
  if (dirs.length === 0) {
    throw new InputError(
      "Cannot build a gallery as no folder was given: retake gallery <out>/<batch>",
    );
  }
  // Every folder is checked before any page is written: a typo writes nothing anywhere.
  for (const dir of dirs) await checkBatchFolder(dir);
  for (const dir of dirs) writeOut(`Wrote ${escapeControls(await writeGallery(dir))}\n`);
  return EXIT.ok;
}

/** A gallery goes only into a folder retake made a batch of: one with a `run.json`. */
async function checkBatchFolder(dir: string): Promise<void> {
  const folder = await Deno.stat(dir).catch(() => undefined);
  if (!folder?.isDirectory) {
    throw new InputError(`Cannot build a gallery for '${dir}': no such folder`);
  }
  const run = await Deno.lstat(`${dir}/run.json`).catch(() => undefined);
  if (!run?.isFile) {
    throw new InputError(
      `Cannot build a gallery for '${dir}' as it has no run.json, so it is not a batch folder: give one retake wrote, such as 'outputs/example'`,
    );
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
