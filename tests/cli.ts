/**
 * Runs the real CLI as a subprocess, with the `run` task's permissions, for tests.
 *
 * @module
 */

export const ROOT = new URL("..", import.meta.url).pathname;
export const MAIN = `${ROOT}main.ts`;
export const EXAMPLE = `${ROOT}prompts/example.json`;

/** The permissions of the `run` task: the CLI must work with exactly these. */
export const RUN_PERMISSIONS: string[] = (() => {
  const task: string = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks.run;
  return task.split(" ").filter((arg) => arg.startsWith("--allow-") || arg.startsWith("--v8-")).map(
    (arg) => arg === "--allow-ffi=node_modules" ? `--allow-ffi=${ROOT}node_modules` : arg,
  );
})();

/** Result of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs retake in `cwd` with a clean environment plus `env`. */
export async function runCli(
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<CliResult> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...RUN_PERMISSIONS, MAIN, ...args],
    cwd: options.cwd,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      NO_COLOR: "1",
      ...(Deno.env.get("DENO_DIR") && { DENO_DIR: Deno.env.get("DENO_DIR")! }),
      ...options.env,
    },
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}
