/**
 * `--dry-run`: what a run would do and the most it could cost, from the price tables, with no
 * call made and nothing written. A price that is not known is said, not counted as free.
 *
 * @module
 */
import type { Config } from "./config.ts";
import type { PromptSpec } from "./prompts.ts";
import type { Providers } from "./providers/registry.ts";

/** One paid step kind of the plan, and its estimate per call (undefined: price unknown). */
interface PlanStep {
  what: string;
  calls: number;
  eachUsd: number | undefined;
}

/** The plan's text for a person: the providers, the calls per prompt and the cost bound. */
export function describePlan(config: Config, specs: PromptSpec[], providers: Providers): string {
  const n = config.iterations;
  const { generator, critic, refiner } = providers;
  const estimate = <T>(provider: { estimateCostUsd?: (a: T) => number | undefined }, arg: T) =>
    provider.estimateCostUsd === undefined ? 0 : provider.estimateCostUsd(arg);
  const size = { model: providers.model, width: config.size.width, height: config.size.height };
  const steps: PlanStep[] = [
    {
      what: `image (${generator.name} ${providers.model})`,
      calls: n,
      eachUsd: estimate(generator, size),
    },
    { what: `critique (${critic.name})`, calls: n, eachUsd: estimate(critic, undefined) },
    ...(critic.brief
      ? [{ what: `brief (${critic.name})`, calls: 1, eachUsd: estimate(critic, undefined) }]
      : []),
    ...(n > 1
      ? [{
        what: `refinement (${refiner.name})`,
        calls: n - 1,
        eachUsd: estimate(refiner, undefined),
      }]
      : []),
  ];
  const unknown = steps.filter((s) => s.eachUsd === undefined);
  const perPrompt = steps.reduce((sum, s) => sum + (s.eachUsd ?? 0) * s.calls, 0);
  const usd = (v: number) => `$${v.toFixed(4)}`;
  const lines = [
    "Dry run: no call is made and nothing is written.",
    `  ${specs.length} prompt(s), up to ${n} round(s) each; output ${config.out}/…`,
    ...steps.map((s) =>
      `  ${String(s.calls).padStart(2)} × ${s.what}: ${
        s.eachUsd === undefined ? "price unknown" : `at most ${usd(s.eachUsd)} each`
      }`
    ),
    `  at most ${usd(perPrompt)} a prompt, ${usd(perPrompt * specs.length)} for the batch${
      unknown.length > 0 ? ", not counting the steps whose price is unknown" : ""
    } (estimates are upper bounds; rounds that stop early cost less)`,
  ];
  if (unknown.length > 0) {
    lines.push(
      `  Price unknown for ${
        unknown.map((s) => s.what).join(", ")
      }: its cost is recorded as unknown, and --max-cost refuses to run until a price is set in the config file.`,
    );
  }
  if (config.maxCost !== undefined) lines.push(`  --max-cost ${config.maxCost} caps this run.`);
  return lines.join("\n") + "\n";
}
