/**
 * retake's exit codes, once: the code each ending returns, and the words `--help` and README's
 * "Exit codes" table use for it (a test checks README against this table).
 *
 * @module
 */

/** Exit codes by name. */
export const EXIT = {
  ok: 0,
  someFailed: 1,
  input: 2,
  stopped: 3,
  budget: 4,
  interrupted: 130,
} as const;

/** What each exit code tells a script, for `--help` and README. */
export const EXIT_MEANINGS: Record<keyof typeof EXIT, string> = {
  ok: "every prompt completed",
  someFailed: "some prompts failed (the summary lists each with its reason)",
  input: "usage or input error, or another retake is using the batch folder; nothing was written",
  stopped:
    "the run was stopped by a fatal error (bad key, unknown model, no quota, a wait too long, full disk)",
  budget:
    "`--max-cost` reached: a step it could not cover was not started; run again with a higher budget to resume",
  interrupted: "interrupted (Ctrl-C, SIGTERM); what was saved stays saved",
};

/** Every exit code with its meaning, in code order. */
export function exitCodes(): Array<{ code: number; meaning: string }> {
  return (Object.keys(EXIT) as Array<keyof typeof EXIT>)
    .map((name) => ({ code: EXIT[name], meaning: EXIT_MEANINGS[name] }))
    .sort((a, b) => a.code - b.code);
}
