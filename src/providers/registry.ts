/**
 * The providers retake knows, and the choice of them for a run from the settings and the keys
 * present. Each remote provider loads its SDK on its first call, so an offline run never does.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { InputError } from "../errors.ts";
import { mayEdit } from "../prompts/settings.ts";
import type { BatchApiSession } from "../batch_api/session.ts";
import { DESCRIPTORS, providerNamed } from "./catalog.ts";
import type {
  ImageCritic,
  ImageGenerator,
  PromptRefiner,
  ProviderDescriptor,
  ProviderParts,
  Role,
} from "./provider.ts";

/** The providers of one run, plus what to tell the user about them. */
export interface Providers {
  generator: ImageGenerator;
  critic: ImageCritic;
  refiner: PromptRefiner;
  /** Resolved generation model id. */
  model: string;
  /** Resolves a model name or alias for this generator (for `--models`). */
  resolveModel: (name: string) => string;
  /** One line for the start of the run when anything runs offline; undefined otherwise. */
  notice?: string;
  /** The batch modes of the providers that have one, with `--batch-api`. */
  batchSessions?: BatchApiSession[];
}

/** A provider's own section of the config. */
function settingsOf(config: Config, provider: ProviderDescriptor): Record<string, unknown> {
  return (config as unknown as Record<string, Record<string, unknown>>)[provider.name] ?? {};
}

/** Which services a config selects for generation and for critique (the refiner follows). */
export function chooseProviders(config: Config): { generator: string; critic: string } {
  return {
    generator: choose(config, "generate", config.generator).name,
    critic: choose(config, "critique", config.critic).name,
  };
}

function choose(config: Config, role: Role, asked: string): ProviderDescriptor {
  if (config.offline) return providerNamed("local")!;
  const all = DESCRIPTORS;
  if (asked === "auto") {
    return all.find((p) =>
      p.auto !== false && p.roles.includes(role) && p.available(settingsOf(config, p))
    )!;
  }
  const provider = all.find((p) => p.name === asked);
  if (provider === undefined || !provider.roles.includes(role)) {
    throw new InputError(
      `Cannot use '${asked}' for ${
        ROLE_NOUN[role]
      } as no provider of that name can: choose one of ${
        all.filter((p) => p.roles.includes(role)).map((p) => p.name).join(", ")
      }`,
    );
  }
  if (!provider.available(settingsOf(config, provider))) {
    throw new InputError(
      `Cannot use ${provider.title} for ${ROLE_NOUN[role]} as ${provider.unavailable}`,
    );
  }
  return provider;
}

const ROLE_NOUN: Record<Role, string> = {
  generate: "generation",
  critique: "critique",
  refine: "refinement",
  edit: "edits",
};

/**
 * Builds the providers a config selects: each service once, for all the roles it plays. The
 * prompts' own models and sizes (`specs`) join the free checks at start.
 */
export async function createProviders(
  config: Config,
  specs: readonly PromptSpec[] = [],
): Promise<Providers> {
  const generatorOf = choose(config, "generate", config.generator);
  const criticOf = choose(config, "critique", config.critic);
  // The refiner follows the critic: the model that judged the image writes the fix.
  const refinerOf = criticOf.roles.includes("refine") ? criticOf : providerNamed("local")!;
  const resolve = (name: string | undefined) =>
    generatorOf.resolveModel?.(name) ?? name ?? generatorOf.defaults.generate ?? "default";
  const model = resolve(config.model);
  const batchModels = [...new Set([model, ...(config.models ?? []).map(resolve)])];
  const sizes = new Map<
    string,
    { model: string; width: number; height: number; prompt?: string }
  >();
  const use = (model: string, size: { width: number; height: number }, prompt?: string) => {
    const key = `${model}\0${size.width}x${size.height}`;
    if (!sizes.has(key)) {
      sizes.set(key, { model, ...size, ...(prompt !== undefined && { prompt }) });
    }
  };
  for (const spec of specs) {
    const own = spec.settings;
    if (own?.model === undefined && own?.size === undefined) continue;
    const ownModels = own.model !== undefined ? [resolve(own.model)] : batchModels;
    for (const m of ownModels) use(m, own.size ?? config.size, spec.id);
  }
  if (specs.length === 0 || specs.some((s) => !s.settings?.model && !s.settings?.size)) {
    for (const m of batchModels) use(m, config.size);
  }
  const models = [...new Set([...batchModels, ...[...sizes.values()].map((s) => s.model)])];
  const rubric = {
    ...(config.criticRubric !== undefined && { text: config.criticRubric }),
    ...(config.criticWeights !== undefined && { weights: config.criticWeights }),
  };
  const roles = new Map<ProviderDescriptor, Set<Role>>();
  for (
    const [provider, role] of [[generatorOf, "generate"], [criticOf, "critique"], [
      refinerOf,
      "refine",
    ]] as const
  ) {
    roles.set(provider, (roles.get(provider) ?? new Set<Role>()).add(role));
  }
  // A run that may edit asks the generator for edits too: its free checks cover the edit endpoints.
  if (mayEdit(config, specs)) roles.get(generatorOf)!.add("edit");
  const parts = new Map<ProviderDescriptor, ProviderParts>();
  for (const [provider, wanted] of roles) {
    parts.set(
      provider,
      await provider.create({
        settings: settingsOf(config, provider),
        roles: wanted,
        models,
        size: config.size,
        sizes: [...sizes.values()],
        criticModel: config.criticModel,
        ...(Object.keys(rubric).length > 0 && { rubric }),
        timeoutMs: config.timeoutMs,
        ...((config.batchApi || config.cancelBatchJobs) &&
          { batchApi: { pollMs: config.batchPollMs, gatherMs: config.batchGatherMs } }),
      }),
    );
  }
  const part = <K extends keyof ProviderParts>(provider: ProviderDescriptor, key: K) => {
    const built = parts.get(provider)?.[key];
    if (built === undefined) {
      throw new Error(`Provider '${provider.name}' did not build its ${String(key)}`);
    }
    return built as NonNullable<ProviderParts[K]>;
  };
  const notice = offlineNotice(config, { generatorOf, criticOf });
  const batchSessions = [...parts.values()].flatMap((p) => p.batch ? [p.batch] : []);
  return {
    ...(batchSessions.length > 0 && { batchSessions }),
    generator: part(generatorOf, "generator"),
    critic: part(criticOf, "critic"),
    refiner: part(refinerOf, "refiner"),
    model,
    resolveModel: (name: string) => resolve(name),
    ...(notice !== undefined && { notice }),
  };
}

/** One line for the start of a run when a role runs offline, saying how to make it remote. */
function offlineNotice(
  config: Config,
  chosen: { generatorOf: ProviderDescriptor; criticOf: ProviderDescriptor },
): string | undefined {
  const remote = (role: Role) =>
    DESCRIPTORS.find((p) => p.name !== "local" && p.roles.includes(role));
  const local: string[] = [];
  const hints: string[] = [];
  for (
    const [role, provider, noun, verb] of [
      ["generate", chosen.generatorOf, "generator", "generate"],
      ["critique", chosen.criticOf, "critic and refiner", "critique"],
    ] as const
  ) {
    if (provider.name !== "local") continue;
    local.push(noun);
    const other = remote(role);
    const key = other?.env.find((e) => e.secret)?.names[0];
    if (other && key) hints.push(`set ${key} to ${verb} with ${other.title}`);
  }
  if (local.length === 0) return undefined;
  return `Running offline with the embedded local ${
    local.join(" and local ")
  } (no network, no cost)${config.offline ? "" : `: ${hints.join("; ")}`}.`;
}

/**
 * Checks every service's key and model with calls that cost nothing, once per service (a
 * critic and a refiner on one client share one check), before the first paid call. Throws a
 * fatal `ProviderError` or an `InputError`; the local providers have nothing to check.
 */
export async function checkProviders(providers: Providers, signal: AbortSignal): Promise<void> {
  const checks = new Map<unknown, () => Promise<void>>();
  for (const provider of [providers.generator, providers.critic, providers.refiner]) {
    const check = provider.check;
    if (check !== undefined && !checks.has(check)) {
      checks.set(check, () => check.call(provider, signal));
    }
  }
  // The services side by side: each check is a round trip or two.
  await Promise.all([...checks.values()].map((check) => check()));
}
