/**
 * retake's command line: reads `Deno.args` and the environment once, wires the real
 * stdout/stderr and signals, runs the batch, and maps errors to exit codes.
 *
 * @module
 */
import { ENV_NAMES, loadConfig, USAGE } from "./src/config.ts";
import { InputError } from "./src/errors.ts";
import { escapeLines } from "./src/terminal_text.ts";
import { writeGallery } from "./src/gallery.ts";
import { EXIT, runBatch, VERSION, watchBatch } from "./src/run.ts";

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
        written += stream.writeSync(bytes.subarray(written));
      }
    } catch {
      closed = true;
    }
  };
}
const writeOut = streamWriter(Deno.stdout);
const writeErr = streamWriter(Deno.stderr);

function readEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of ENV_NAMES) env[name] = Deno.env.get(name);
  return env;
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
      signal: interrupt.signal,
      abortNow: abortNow.signal,
    };
    if (invocation.promptFiles[0] === "gallery") {
      const dirs = invocation.promptFiles.slice(1);
      if (dirs.length === 0) {
        throw new InputError(
          "Cannot build a gallery as no folder was given: retake gallery <out>/<batch>",
        );
      }
      for (const dir of dirs) {
        try {
          writeOut(`Wrote ${await writeGallery(dir)}\n`);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
          throw new InputError(`Cannot build a gallery for '${dir}': no such folder`);
        }
      }
      return EXIT.ok;
    }
    if (invocation.watch) {
      return await watchBatch(invocation.config, invocation.promptFiles, io);
    }
    const result = await runBatch(invocation.config, invocation.promptFiles, io);
    if (result.exitCode === EXIT.interrupted) {
      writeErr(`Saved what was done. Run the same command again to resume.\n`);
    }
    return result.exitCode;
  } catch (error) {
    if (error instanceof InputError) {
      writeErr(`error: ${error.message}\n`);
      return EXIT.input;
    }
    writeErr(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.someFailed;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
