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
  const tally = new StepTally();
  const edits = mayEdit(config, specs);
  for (const spec of specs) {
    for (const compared of models) {
      const model = models.length > 1 ? compared : spec.settings?.model ?? compared;
      countPrompt(tally, { config, providers, edits }, spec, model);
    }
  }
  const all = tally.steps;
  // An edit stands in for a redraw, which `generate` counts already.
  const sum = (calls: (s: PlanStep) => number) =>
    all.reduce((total, s) => total + (s.step === "edit" ? 0 : (s.eachUsd ?? 0) * calls(s)), 0);
  return {
    dryRun: true,
    prompts: specs.length,
    models,
    rounds: specs.reduce((most, spec) => Math.max(most, roundsOf(config, spec)), 0),
    batchDir,
    providers: { generator: generator.name, critic: critic.name, refiner: refiner.name },
    steps: all,
    costUsd: {
      min: round6(sum((s) => s.minCalls)),
      max: round6(sum((s) => s.maxCalls) + tally.editSurcharge),
    },
    unknownPrices: all.filter((s) => s.eachUsd === null).map(stepName),
    givenBriefs: specs.filter((spec) => spec.checks?.length).length,
    maxCost: config.maxCost ?? null,
  };
}

/** The paid steps counted so far: one entry per kind of step, model and size. */
class StepTally {
  readonly #steps = new Map<string, PlanStep>();
  /** What edits dearer than redraws add to the most a batch can cost. */
  editSurcharge = 0;

  /** Adds calls to the step `key`, made from `base` the first time. */
  add(key: string, base: Omit<PlanStep, "minCalls" | "maxCalls">, min: number, max: number) {
    const step = this.#steps.get(key) ?? { ...base, minCalls: 0, maxCalls: 0 };
    step.minCalls += min;
    step.maxCalls += max;
    this.#steps.set(key, step);
  }

  /** Every step, in the order first counted. */
  get steps(): PlanStep[] {
    return [...this.#steps.values()];
  }
}

/** What every prompt's count needs: the settings, the providers, and whether rounds may edit. */
interface Counting {
  config: Config;
  providers: Providers;
  edits: boolean;
}

/** The rounds a prompt runs at most: its own, else the batch's. */
function roundsOf(config: Config, spec: PromptSpec): number {
  return spec.settings?.iterations ?? config.iterations;
}

/** A step's price per call: 0 for a provider that charges nothing, null when it is not known. */
function priced<T>(p: { estimateCostUsd?: (a: T) => number | undefined }, arg: T): number | null {
  return p.estimateCostUsd === undefined ? 0 : p.estimateCostUsd(arg) ?? null;
}

/** Counts one prompt's calls with one model: its images, critiques, brief and refinements. */
function countPrompt(tally: StepTally, counting: Counting, spec: PromptSpec, model: string): void {
  const { config, providers: { critic, refiner } } = counting;
  const n = roundsOf(config, spec);
  countImages(tally, counting, spec, model);
  const review = { provider: critic.name, model: config.criticModel ?? null };
  tally.add("critique", { step: "critique", ...review, eachUsd: priced(critic, undefined) }, 1, n);
  // A prompt's own checks are its brief: no call makes one.
  if (critic.brief && !spec.checks?.length) {
    tally.add("brief", { step: "brief", ...review, eachUsd: priced(critic, undefined) }, 1, 1);
  }
  if (n > 1) {
    tally.add(
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

/** Counts one prompt's images with one model: a redraw every round, or an edit after the first. */
function countImages(tally: StepTally, counting: Counting, spec: PromptSpec, model: string): void {
  const { config, providers: { generator }, edits } = counting;
  const n = roundsOf(config, spec);
  const size = spec.settings?.size ?? config.size;
  const image = priced(generator, { model, width: size.width, height: size.height });
  tally.add(
    `generate ${model} ${size.width}x${size.height}`,
    { step: "generate", provider: generator.name, model, eachUsd: image },
    1,
    n,
  );
  const editModel = edits && n > 1 ? generator.editModel?.(model) : undefined;
  if (editModel === undefined) return;
  const edit = priced(generator, { model, width: size.width, height: size.height, edit: true });
  tally.add(
    `edit ${editModel} ${size.width}x${size.height}`,
    { step: "edit", provider: generator.name, model: editModel, eachUsd: edit },
    0,
    n - 1,
  );
  if (edit !== null && image !== null) tally.editSurcharge += (n - 1) * Math.max(0, edit - image);
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
