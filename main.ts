/**
 * retake's command line: reads `Deno.args` and the environment once, wires the real
 * stdout/stderr and signals, runs the batch, and maps errors to exit codes.
 *
 * @module
 */
import { loadConfig } from "./src/config/load.ts";
import { USAGE } from "./src/cli/usage.ts";
import { ENV_NAMES } from "./src/config/env_settings.ts";
import { typoCandidates } from "./src/config/env_settings.ts";
import { jsonLine } from "./src/batch/json_summary.ts";
import { exitCodeOf, InputError, messageOf } from "./src/errors.ts";
import { escapeControls, escapeLines } from "./src/util/terminal_text.ts";
import { evalCommand } from "./src/eval/command.ts";
import { writeGallery } from "./src/gallery/gallery.ts";
import { EXIT, runBatch, VERSION, watchBatch } from "./src/batch/run.ts";
import { pendingRejectsRunner, runWithStudio, serveCommand } from "./src/studio/command.ts";

/** Signals closer together than this count as one Ctrl-C. */
const SAME_PRESS_MS = 500;

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
  const interrupt = new AbortController();
  const abortNow = new AbortController();
  let interrupts = 0;
  let lastSignal = -Infinity;
  const onSignal = () => {
    // A terminal sends Ctrl-C to the whole process group, and a wrapper such as `deno task`
    // may pass it on: signals this close together are one press.
    const now = performance.now();
    const repeat = now - lastSignal < SAME_PRESS_MS;
    lastSignal = now;
    if (repeat) return;
    interrupts++;
    if (interrupts === 1) {
      writeErr(
        "\nInterrupted: starting nothing new, letting calls in flight finish and saving them (Ctrl-C again to stop now)\n",
      );
      interrupt.abort(new DOMException("Interrupted by the user", "AbortError"));
    } else if (interrupts === 2) {
      writeErr("\nStopping now: cancelling calls in flight\n");
      abortNow.abort(new DOMException("Interrupted by the user", "AbortError"));
    } else {
      Deno.exit(EXIT.interrupted);
    }
  };
  Deno.addSignalListener("SIGINT", onSignal);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", onSignal);
  try {
    // Only as the first word: `retake -n 2 gallery` runs a prompt file named gallery.
    if (args[0] === "gallery") return await gallery(args.slice(1));
    if (args[0] === "serve") {
      return await serveCommand(
        args.slice(1),
        { writeOut, writeErr, signal: interrupt.signal },
        pendingRejectsRunner(
          { writeOut, writeErr, isTerminal: false, signal: interrupt.signal },
          { env: readEnv(), cwd: Deno.cwd(), readTextFile: Deno.readTextFile },
        ),
      );
    }
    if (args[0] === "eval") {
      return await evalCommand(
        args.slice(1),
        { env: readEnv(), cwd: Deno.cwd(), readTextFile: Deno.readTextFile },
        {
          writeOut,
          writeErr,
          isTerminal: Deno.stderr.isTerminal(),
          signal: interrupt.signal,
          abortNow: abortNow.signal,
        },
      );
    }
    const invocation = await loadConfig({
      args,
      env: readEnv(),
      cwd: Deno.cwd(),
      readTextFile: Deno.readTextFile,
    });
    if (invocation.help) {
      writeOut(USAGE);
      return EXIT.ok;
    }
    if (invocation.version) {
      writeOut(`retake ${VERSION}\n`);
      return EXIT.ok;
    }
    const io = {
      writeOut,
      writeErr,
      isTerminal: Deno.stderr.isTerminal(),
      columns: terminalColumns,
      signal: interrupt.signal,
      abortNow: abortNow.signal,
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
    if (invocation.ui) {
      const { config, promptFiles } = invocation;
      const sources = { env: readEnv(), cwd: Deno.cwd(), readTextFile: Deno.readTextFile };
      return await runWithStudio(
        config,
        promptFiles,
        invocation.port,
        io,
        async (attached) => {
          const result = await runBatch(config, promptFiles, attached);
          if (result.exitCode === EXIT.interrupted) {
            writeErr(`Saved what was done. Run the same command again to resume.\n`);
          }
          return result;
        },
        pendingRejectsRunner(io, sources),
      );
    }
    const result = await runBatch(invocation.config, invocation.promptFiles, io);
    if (result.exitCode === EXIT.interrupted) {
      writeErr(`Saved what was done. Run the same command again to resume.\n`);
    }
    return result.exitCode;
  } catch (error) {
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
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGTERM", onSignal);
  }
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
