/**
 * Runs the real CLI as a subprocess, with the `run` task's permissions, for tests.
 *
 * @module
 */

export const ROOT = new URL("..", import.meta.url).pathname;
export const MAIN = `${ROOT}main.ts`;
export const EXAMPLE = `${ROOT}prompts/example.json`;

const RUN_TASK: string[] = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks.run.split(
  " ",
);

/**
 * The permissions of the `run` task: the CLI must work with exactly these. A permission set
 * (`-P`) is read from the deno.json beside `main.ts`, its paths relative to that file.
 */
export const RUN_PERMISSIONS: string[] = RUN_TASK.map((arg) => arg.replace(/^-qP\b/, "-P"))
  .filter((arg) => arg.startsWith("--allow-") || arg.startsWith("--v8-") || /^-P\b/.test(arg))
  .map((arg) => arg === "--allow-ffi=node_modules" ? `--allow-ffi=${ROOT}node_modules` : arg);

/** The variables the `run` task sets before `deno` (`NAME=value deno run …`). */
export const RUN_ENV: Record<string, string> = Object.fromEntries(
  RUN_TASK.slice(0, RUN_TASK.indexOf("deno")).map((arg) => arg.split("=", 2) as [string, string]),
);

/** Result of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode cliCommand} and {@linkcode runCli}. */
export interface CliOptions {
  cwd: string;
  env?: Record<string, string>;
  /** @default {"piped"} */
  output?: "piped" | "null";
  /** What the command reads on standard input. @default {"null"} */
  stdin?: "piped" | "null";
}

/** The retake command in `cwd` with a clean environment plus `env`, for `spawn()` or `output()`. */
export function cliCommand(args: string[], options: CliOptions): Deno.Command {
  const output = options.output ?? "piped";
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...RUN_PERMISSIONS, MAIN, ...args],
    cwd: options.cwd,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      NO_COLOR: "1",
      ...(Deno.env.get("DENO_DIR") && { DENO_DIR: Deno.env.get("DENO_DIR")! }),
      ...RUN_ENV,
      ...options.env,
    },
    stdin: options.stdin ?? "null",
    stdout: output,
    stderr: output,
  });
}

/** Runs retake to the end; returns its exit code and output. */
export async function runCli(args: string[], options: CliOptions): Promise<CliResult> {
  const { code, stdout, stderr } = await cliCommand(args, options).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}
