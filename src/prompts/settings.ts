/**
 * A prompt's own settings over the batch's: its model resolved, the rounds the pipeline builds,
 * and what each prompt will ask of the generator, for the price checks and the dry run.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { InputError } from "../errors.ts";
import { escapeControls } from "../util/terminal_text.ts";
import type { PromptSpec } from "./spec.ts";

/**
 * The specs with each prompt's own `model` resolved (an alias to its id), as the batch's is.
 * With `--models` the comparison names the models, so a prompt that names its own is refused.
 */
export function withOwnModels(
  config: Pick<Config, "models">,
  specs: PromptSpec[],
  resolve: (name: string) => string,
): PromptSpec[] {
  const comparing = (config.models?.length ?? 0) > 0;
  return specs.map((spec) => {
    const model = spec.settings?.model;
    if (model === undefined) return spec;
    if (comparing) {
      throw new InputError(
        `Cannot compare models with --models as prompt '${
          escapeControls(spec.id)
        }' sets its own 'model' ('${
          escapeControls(model)
        }'): remove the field from the prompt, or run without --models`,
      );
    }
    return { ...spec, settings: { ...spec.settings, model: resolve(model) } };
  });
}

/** The most rounds any prompt asks for: how many stages the pipeline builds. */
export function mostRounds(specs: readonly PromptSpec[], iterations: number): number {
  let most = iterations;
  for (const spec of specs) most = Math.max(most, spec.settings?.iterations ?? iterations);
  return most;
}

/** What one prompt asks of the generator: model, size and rounds, its own over the batch's. */
export interface PromptPlan {
  model: string;
  width: number;
  height: number;
  iterations: number;
}

/**
 * Each distinct {@linkcode PromptPlan} of a batch with how many prompts have it, for one
 * generation model (`model`, default the batch's): what `--max-cost` and `--dry-run` price.
 * A prompt's own model counts only when it has been resolved ({@linkcode withOwnModels}).
 *
 * @example
 * ```ts
 * import { planGroups } from "./settings.ts";
 * const config = { size: { width: 1024, height: 768 }, iterations: 2 };
 * const specs = [
 *   { id: "a", prompt: "x", extra: {} },
 *   { id: "b", prompt: "y", settings: { iterations: 4 }, extra: {} },
 * ];
 * const groups = planGroups(config, "fal-ai/flux/schnell", specs);
 * if (groups.length !== 2 || groups[1]!.plan.iterations !== 4) throw new Error("not grouped");
 * ```
 */
export function planGroups(
  config: Pick<Config, "size" | "iterations">,
  model: string,
  specs: readonly PromptSpec[],
): Array<{ plan: PromptPlan; prompts: number }> {
  const groups = new Map<string, { plan: PromptPlan; prompts: number }>();
  for (const spec of specs) {
    const own = spec.settings ?? {};
    const plan: PromptPlan = {
      model: own.model ?? model,
      width: own.size?.width ?? config.size.width,
      height: own.size?.height ?? config.size.height,
      iterations: own.iterations ?? config.iterations,
    };
    const key = JSON.stringify(plan);
    const group = groups.get(key);
    if (group) group.prompts++;
    else groups.set(key, { plan, prompts: 1 });
  }
  return [...groups.values()];
}

/**
 * Whether a run may edit images: it refines by editing (`--refine` is not `regenerate`) and some
 * prompt has a round after its first. The free checks at start and `--max-cost` then cover the
 * edit endpoints too.
 *
 * @example
 * ```ts
 * import { mayEdit } from "./settings.ts";
 * if (mayEdit({ refine: "regenerate", iterations: 3 }, [])) throw new Error("redraws only");
 * if (!mayEdit({ refine: "auto", iterations: 1 }, [{ settings: { iterations: 2 } }])) {
 *   throw new Error("a prompt of its own may run a second round");
 * }
 * ```
 */
export function mayEdit(
  config: { refine: "edit" | "regenerate" | "auto"; iterations: number },
  specs: ReadonlyArray<{ settings?: { iterations?: number } | undefined }>,
): boolean {
  if (config.refine === "regenerate") return false;
  if (specs.length === 0) return config.iterations > 1;
  return specs.some((spec) => (spec.settings?.iterations ?? config.iterations) > 1);
}
