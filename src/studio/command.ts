/**
 * The studio's two ways in: `retake serve [OUT]` browses every batch under the output folder
 * until Ctrl-C; `retake run … --ui` runs a batch with the studio attached, and keeps it open
 * after the run until Ctrl-C. Both print one line: `Studio: http://127.0.0.1:<port>/?token=…`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Config } from "../config.ts";
import type { ConfigSources } from "../config/load.ts";
import { InputError } from "../errors.ts";
import {
  batchName,
  type BatchResult,
  loadPrompts,
  type RunIo,
  selectPrompts,
  type SteeredIo,
} from "../batch/run.ts";
import { runPendingRejects } from "./pending.ts";
import { Steering } from "../steering/steering.ts";
import { escapeControls } from "../util/terminal_text.ts";
import { startStudio, type StudioWiring } from "./server.ts";

/** What a studio command needs of the process. */
export interface StudioIo {
  writeOut: (text: string) => void;
  writeErr: (text: string) => void;
  /** Aborted by Ctrl-C / SIGTERM: the studio closes. */
  signal: AbortSignal;
}

/**
 * What runs the round a reject asks for when no run is live: the batch again with its own
 * settings, only the rejected prompts (`runPendingRejects`), its events to the studio.
 */
export function pendingRejectsRunner(
  io: RunIo,
  sources: Omit<ConfigSources, "args">,
): NonNullable<StudioWiring["runPendingRejects"]> {
  return async (batchDir, steering, onEvent) => {
    await runPendingRejects(batchDir, { ...io, isTerminal: false, steering, onEvent }, sources);
  };
}

/** `--port`'s value as a port number; 0 (or none) picks a free one. */
export function parsePort(text: string | undefined, source = "command line"): number {
  if (text === undefined) return 0;
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(port) || port > 65535) {
    throw new InputError(
      `Invalid setting 'port' from ${source}: expected a whole number from 0 to 65535 (0 picks a free port): current value is '${text}'`,
    );
  }
  return port;
}

/** The line both commands print, on stderr. */
export function studioLine(url: string): string {
  return `Studio: ${url}\n`;
}

/** Usage of `retake serve`. */
export const SERVE_USAGE = `retake serve — browse and steer every batch under an output folder

Usage:
  retake serve [OUT] [--port N]
  deno task serve [OUT] [--port N]

  OUT          the output folder (default: outputs)
  --port N     the port on 127.0.0.1 (default: a free one)
  -h, --help   this text

Prints 'Studio: http://127.0.0.1:<port>/?token=<token>': open it in a browser on this
machine. The token is the key to the studio; Ctrl-C stops it.
`;

/**
 * `retake serve [OUT]`. `runPendingRejects` runs the extra round a reject asks for (one at a
 * time; each takes the batch's lock, so it never runs beside a live `retake run`).
 */
export async function serveCommand(
  args: string[],
  io: StudioIo,
  runPendingRejects?: StudioWiring["runPendingRejects"],
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { port: { type: "string" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new InputError(`${(error as Error).message}; run 'retake serve --help' for usage`, {
      cause: error,
    });
  }
  if (parsed.values.help) {
    io.writeOut(SERVE_USAGE);
    return 0;
  }
  if (parsed.positionals.length > 1) {
    throw new InputError(
      `Cannot serve more than one output folder: current value is ${
        parsed.positionals.map((p) => `'${p}'`).join(", ")
      }; give one, such as 'outputs'`,
    );
  }
  const out = parsed.positionals[0] ?? "outputs";
  const info = await Deno.stat(out).catch(() => undefined);
  if (!info?.isDirectory) {
    throw new InputError(
      `Cannot serve '${out}' as it is not a folder: give the output folder retake writes batches to, such as 'outputs'`,
    );
  }
  const studio = await startStudio({
    out,
    port: parsePort(parsed.values.port),
    openSteering: (dir) => Steering.open(dir, { fileNotes: "confirm" }),
    ...(runPendingRejects && { runPendingRejects }),
    onError: (message) => io.writeErr(`${escapeControls(message)}\n`),
  });
  io.writeErr(studioLine(studio.url));
  await aborted(io.signal);
  await studio.close();
  return 0;
}

/**
 * Runs a batch with the studio attached (`--ui`): the studio starts first and prints its line,
 * the run follows its steering, and after the run the studio stays open until Ctrl-C.
 */
export async function runWithStudio(
  config: Config,
  promptFiles: string[],
  port: string | undefined,
  io: RunIo & { signal: AbortSignal },
  run: (io: SteeredIo) => Promise<BatchResult>,
  runPendingRejects?: StudioWiring["runPendingRejects"],
): Promise<number> {
  const listen = parsePort(port);
  // A dry run calls nothing and writes nothing: there is nothing to watch.
  if (config.dryRun) return (await run(io)).exitCode;
  const specs = selectPrompts(await loadPrompts(promptFiles, config), config.only);
  const batch = batchName(config, promptFiles);
  const models = Math.max(1, new Set(config.models ?? []).size);
  const batchDir = `${config.out}/${batch}`;
  // Notes a studio did not send in this session wait on the page for a click: the batch folder
  // may have come from elsewhere, and each note is a paid round.
  const steering = await Steering.open(batchDir, { fileNotes: "confirm" });
  const studio = await startStudio({
    out: config.out,
    port: listen,
    live: { batch, total: specs.length * models, models, steering },
    openSteering: (dir) => Steering.open(dir, { fileNotes: "confirm" }),
    ...(runPendingRejects && { runPendingRejects }),
    onError: (message) => io.writeErr(`${escapeControls(message)}\n`),
  });
  io.writeErr(studioLine(studio.url));
  try {
    const result = await run({ ...io, onEvent: (event) => studio.onEvent(event), steering });
    studio.runEnded();
    if (!io.signal.aborted) {
      io.writeErr(
        `The studio stays open at ${studio.url.replace(/\?.*$/, "")} (Ctrl-C to close)\n`,
      );
      await aborted(io.signal);
    }
    return result.exitCode;
  } finally {
    await studio.close();
  }
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}
