/**
 * `retake eval`: parses eval's own flags (`--strategies`, `--judge`, `--rounds`), hands every
 * other argument to the normal config loader, and runs the eval.
 *
 * @module
 */
import { type ConfigSources, loadConfig } from "../config/load.ts";
import { InputError } from "../errors.ts";
import { parseCommandLine } from "../config/parse_args.ts";
import { EXIT, type RunIo, VERSION } from "../batch/run.ts";
import { escapeControls } from "../util/terminal_text.ts";
import { type JudgeChoice, parseJudge } from "./judge.ts";
import { runEval } from "./runner.ts";
import { MAX_IMAGES, parseStrategies, STRATEGIES, type StrategyName } from "./strategies.ts";

/** `retake eval --help`. */
export const EVAL_USAGE =
  `retake eval — does refining pay? Runs each strategy on the same prompts at
equal spend, has a judge score every final image, and compares them.

Usage:
  retake eval [options] <prompts.json> [more.json ...]

Strategies:
  single      one image per prompt
  best-of-n   N images from the original prompt (each its own seed), the best
              kept by the loop's critic; N is chosen so its estimated spend
              matches refine's
  refine      the normal loop: R images, R critiques, R-1 refinements

Eval options:
  --strategies A,B,...     which to run (default: ${STRATEGIES.join(",")})
  --judge PROVIDER[:MODEL] the critic that scores every final image against
                           the original prompt and its brief (default: a
                           provider with a key that is not the loop's critic;
                           offline: the local critic, which is the loop's)
  --rounds N               refine's rounds, 2 to ${MAX_IMAGES} (default: --iterations,
                           at least 2)

Every option of a normal run applies too (see retake --help): --out, --name,
--max-cost (for the whole eval, judge included), --offline, --size, --model,
--critic-model, --seed, --only, --force, --concurrency, --timeout, --config,
--quiet, --verbose.

Writes <out>/<batch>/eval/<strategy>/ (a batch folder each: resumable, with its
own gallery), <out>/<batch>/eval/judge/ (the judge's cached verdicts),
<out>/<batch>/eval.json and <out>/<batch>/eval.html. Run the same command again
to resume: finished work is not paid again.

Exit codes: as for a run; 0 when every strategy and every verdict completed.
`;

/** What eval's own flags say, and the arguments left for the config loader. */
export interface EvalArgs {
  strategies: StrategyName[];
  judge?: JudgeChoice;
  rounds?: number;
  help: boolean;
  /** Every other argument, in order. */
  rest: string[];
}

const EVAL_FLAGS = ["strategies", "judge", "rounds"] as const;
const EVAL_ARGS = { strategies: "A,B,...", judge: "PROVIDER[:MODEL]", rounds: "N" } as const;

/** Splits eval's flags from the rest; throws an {@linkcode InputError} on a bad one. */
export function parseEvalArgs(args: string[]): EvalArgs {
  const parsed = parseCommandLine(args, {
    extra: EVAL_FLAGS.map((name) => ({ name, type: "string" as const, arg: EVAL_ARGS[name] })),
    help: "retake eval --help",
  });
  const drop = new Set<number>();
  for (const place of parsed.places) {
    if (!(EVAL_FLAGS as readonly string[]).includes(place.name)) continue;
    drop.add(place.index);
    if (place.valueIndex !== undefined) drop.add(place.valueIndex);
  }
  const values = parsed.values as Record<string, unknown>;
  const text = (name: string) => typeof values[name] === "string" ? values[name] : undefined;
  const strategies = text("strategies");
  const judge = text("judge");
  const rounds = text("rounds");
  return {
    strategies: strategies === undefined ? [...STRATEGIES] : parseStrategies(strategies),
    ...(judge !== undefined && { judge: parseJudge(judge) }),
    ...(rounds !== undefined && { rounds: parseRounds(rounds) }),
    help: values.help === true,
    rest: args.filter((_, index) => !drop.has(index)),
  };
}

function parseRounds(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 2 || n > MAX_IMAGES) {
    throw new InputError(
      `Cannot run an eval as '--rounds' must be a whole number from 2 to ${MAX_IMAGES}: current value is '${text}'`,
    );
  }
  return n;
}

/** Runs `retake eval` with `args` (the words after `eval`); returns the exit code. */
export async function evalCommand(
  args: string[],
  sources: Omit<ConfigSources, "args">,
  io: RunIo,
): Promise<number> {
  const asked = parseEvalArgs(args);
  if (asked.help) {
    io.writeOut(EVAL_USAGE);
    return EXIT.ok;
  }
  const invocation = await loadConfig({ ...sources, args: asked.rest });
  if (invocation.version) {
    io.writeOut(`retake ${VERSION}\n`);
    return EXIT.ok;
  }
  if (invocation.config.json) {
    throw new InputError(
      "Cannot use --json with retake eval: its results are written to <out>/<batch>/eval.json; read that file",
    );
  }
  if (invocation.watch) {
    throw new InputError(
      "Cannot run an eval with --watch: an eval compares finished runs; run it again after editing the prompts",
    );
  }
  for (const notice of invocation.notices) io.writeErr(`${escapeControls(notice)}\n`);
  const result = await runEval(invocation.config, invocation.promptFiles, {
    strategies: asked.strategies,
    ...(asked.judge !== undefined && { judge: asked.judge }),
    ...(asked.rounds !== undefined && { rounds: asked.rounds }),
  }, io);
  if (result.exitCode === EXIT.interrupted) {
    io.writeErr(`Saved what was done. Run the same command again to resume.\n`);
  }
  return result.exitCode;
}
