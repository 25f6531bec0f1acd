/**
 * `--dry-run`: what a run would do and its cost range, from the price tables, after the free
 * checks of keys and models; no paid call is made and nothing is written. A price that is not
 * known is said, not counted as free.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { mayEdit } from "../prompts/settings.ts";
import type { Providers } from "../providers/registry.ts";

/** One kind of paid step, its estimate per call (null: price unknown), and its calls. */
export interface PlanStep {
  /**
   * `edit`: a round after the first made as an edit on the model's edit endpoint, priced as that
   * endpoint (`model`); each such round is an edit or a redraw (`generate`), never both.
   */
  step: "generate" | "edit" | "critique" | "brief" | "refine";
  provider: string;
  model: string | null;
  eachUsd: number | null;
  /** Calls over the batch when every prompt stops at round 1. */
  minCalls: number;
  /** Calls over the batch when every prompt runs every round. */
  maxCalls: number;
}

/** What a run would do (`--dry-run`; with `--json`, printed as it is). */
export interface Plan {
  dryRun: true;
  prompts: number;
  models: string[];
  /** The most rounds any prompt runs (prompts may set their own). */
  rounds: number;
  batchDir: string;
  providers: { generator: string; critic: string; refiner: string };
  steps: PlanStep[];
  /**
   * The batch's cost range, in USD, counting known prices only; `max` counts each round after the
   * first at the dearer of an edit and a redraw.
   */
  costUsd: { min: number; max: number };
  /** Steps whose price is not known: their cost is not in the range. */
  unknownPrices: string[];
  /** Prompts whose checks the prompt files give: their brief costs no call. */
  givenBriefs: number;
  maxCost: number | null;
}

/** The plan of a run of `specs` with `config` and `providers`. */
export function planOf(
  config: Config,
  specs: PromptSpec[],
  providers: Providers,
  batchDir = config.out,
): Plan {
  const { generator, critic, refiner } = providers;
  const models = config.models?.length
    ? [...new Set(config.models.map(providers.resolveModel))]
    : [providers.model];
  const priced = <T>(p: { estimateCostUsd?: (a: T) => number | undefined }, arg: T) =>
    p.estimateCostUsd === undefined ? 0 : p.estimateCostUsd(arg) ?? null;
  const steps = new Map<string, PlanStep>();
  const add = (
    key: string,
    base: Omit<PlanStep, "minCalls" | "maxCalls">,
    min: number,
    max: number,
  ) => {
    const step = steps.get(key) ?? { ...base, minCalls: 0, maxCalls: 0 };
    step.minCalls += min;
    step.maxCalls += max;
    steps.set(key, step);
  };
  let rounds = 0;
  // What edits dearer than redraws add to the most a batch can cost.
  let editSurcharge = 0;
  const edits = mayEdit(config, specs);
  for (const spec of specs) {
    const n = spec.settings?.iterations ?? config.iterations;
    rounds = Math.max(rounds, n);
    const size = spec.settings?.size ?? config.size;
    for (const compared of models) {
      const model = models.length > 1 ? compared : spec.settings?.model ?? compared;
      const image = priced(generator, { model, width: size.width, height: size.height });
      add(
        `generate ${model} ${size.width}x${size.height}`,
        {
          step: "generate",
          provider: generator.name,
          model,
          eachUsd: image,
        },
        1,
        n,
      );
      const editModel = edits && n > 1 ? generator.editModel?.(model) : undefined;
      if (editModel !== undefined) {
        const edit = priced(generator, {
          model,
          width: size.width,
          height: size.height,
          edit: true,
        });
        add(
          `edit ${editModel} ${size.width}x${size.height}`,
          { step: "edit", provider: generator.name, model: editModel, eachUsd: edit },
          0,
          n - 1,
        );
        if (edit !== null && image !== null) editSurcharge += (n - 1) * Math.max(0, edit - image);
      }
      const review = { provider: critic.name, model: config.criticModel ?? null };
      add("critique", { step: "critique", ...review, eachUsd: priced(critic, undefined) }, 1, n);
      // A prompt's own checks are its brief: no call makes one.
      if (critic.brief && !spec.checks?.length) {
        add("brief", { step: "brief", ...review, eachUsd: priced(critic, undefined) }, 1, 1);
      }
      if (n > 1) {
        add(
          "refine",
          {
            step: "refine",
            provider: refiner.name,
            model: config.criticModel ?? null,
            eachUsd: priced(refiner, undefined),
          },
          0,
          n - 1,
        );
      }
    }
  }
  const all = [...steps.values()];
  // An edit stands in for a redraw, which `generate` counts already.
  const sum = (calls: (s: PlanStep) => number) =>
    all.reduce((total, s) => total + (s.step === "edit" ? 0 : (s.eachUsd ?? 0) * calls(s)), 0);
  return {
    dryRun: true,
    prompts: specs.length,
    models,
    rounds,
    batchDir,
    providers: { generator: generator.name, critic: critic.name, refiner: refiner.name },
    steps: all,
    costUsd: {
      min: round6(sum((s) => s.minCalls)),
      max: round6(sum((s) => s.maxCalls) + editSurcharge),
    },
    unknownPrices: all.filter((s) => s.eachUsd === null).map(stepName),
    givenBriefs: specs.filter((spec) => spec.checks?.length).length,
    maxCost: config.maxCost ?? null,
  };
}

function round6(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
}

function stepName(s: PlanStep): string {
  const what = {
    generate: "image",
    edit: "edit",
    critique: "critique",
    brief: "brief",
    refine: "refinement",
  }[s.step];
  return `${what} (${s.provider}${s.model === null ? "" : ` ${s.model}`})`;
}

/** The plan's text for a person. */
export function describePlan(plan: Plan): string {
  const usd = (v: number) => `$${v.toFixed(4)}`;
  const lines = [
    "Dry run: files, settings, keys and models checked (those checks are free); no paid call was made and nothing was written.",
    `  ${plan.prompts} prompt(s)${
      plan.models.length > 1 ? ` × ${plan.models.length} models` : ""
    }, up to ${plan.rounds} round(s) each; output ${plan.batchDir}`,
    ...plan.steps.map((s) =>
      `  ${s.minCalls === s.maxCalls ? s.maxCalls : `${s.minCalls}–${s.maxCalls}`} × ${
        stepName(s)
      }: ${s.eachUsd === null ? "price unknown" : `${usd(s.eachUsd)} each`}`
    ),
    `  cost: ${usd(plan.costUsd.min)} if every prompt stops at round 1 … ${
      usd(plan.costUsd.max)
    } if every prompt runs every round${
      plan.steps.some((s) => s.step === "edit")
        ? " (each at the dearer of an edit and a redraw)"
        : ""
    }${
      plan.unknownPrices.length > 0 ? ", not counting the steps whose price is unknown" : ""
    } (estimates from the price tables)`,
  ];
  if (plan.givenBriefs > 0) {
    lines.push(
      `  ${plan.givenBriefs} prompt(s) give their own checks: those are their brief, made with no call, and they stop once every check passes.`,
    );
  }
  if (plan.unknownPrices.length > 0) {
    lines.push(
      `  Price unknown for ${
        plan.unknownPrices.join(", ")
      }: its cost is recorded as unknown, and --max-cost refuses to run until a price is set in the config file.`,
    );
  }
  if (plan.maxCost !== null) lines.push(`  --max-cost ${plan.maxCost} caps this run.`);
  return lines.join("\n") + "\n";
}
