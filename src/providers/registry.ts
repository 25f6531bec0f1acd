/**
 * Chooses the providers for a run from the settings and the keys present. Remote providers are
 * imported lazily so an offline run never loads their SDKs.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { InputError } from "../errors.ts";
import type { ImageCritic, ImageGenerator, PromptRefiner } from "./provider.ts";

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
}

/** Which services a config selects, before anything is loaded. */
export function chooseProviders(
  config: Config,
): { generator: "local" | "fal"; critic: "local" | "gemini" } {
  const generator = config.offline
    ? "local"
    : config.generator === "auto"
    ? (config.fal.key ? "fal" : "local")
    : config.generator;
  const critic = config.offline
    ? "local"
    : config.critic === "auto"
    ? (config.gemini.key ? "gemini" : "local")
    : config.critic;
  if (!config.offline && generator === "fal" && !config.fal.key) {
    throw new InputError(
      "Cannot use the fal generator as FAL_KEY is not set: export FAL_KEY (or FAL_AI_API_KEY), add it to .env or the config file, or run with --generator local",
    );
  }
  if (!config.offline && critic === "gemini" && !config.gemini.key) {
    throw new InputError(
      "Cannot use the Gemini critic as GEMINI_API_KEY is not set: export GEMINI_API_KEY (or GOOGLE_API_KEY), add it to .env or the config file, or run with --critic local",
    );
  }
  return { generator, critic };
}

/** Builds the providers a config selects. */
export async function createProviders(config: Config): Promise<Providers> {
  const choice = chooseProviders(config);
  let generator: ImageGenerator;
  let model: string;
  let resolveModel: (name: string) => string;
  if (choice.generator === "fal") {
    const fal = await import("./fal.ts");
    resolveModel = fal.resolveFalModel;
    model = resolveModel(config.model ?? "flux-schnell");
    const models = [model, ...(config.models ?? []).map(resolveModel)];
    // A size the model cannot make would fail every prompt, after paying for nothing: say so now.
    for (const id of models) fal.checkFalSize(id, config.size.width, config.size.height);
    generator = fal.createFalGenerator({
      models,
      apiKey: config.fal.key!,
      ...(config.fal.baseUrl !== undefined && { baseUrl: config.fal.baseUrl }),
      timeoutMs: config.timeoutMs,
      pollIntervalMs: config.fal.pollIntervalMs,
      enableSafetyChecker: config.fal.safetyChecker,
      failOnNsfw: config.fal.failOnNsfw,
      ...(config.fal.steps !== undefined && { steps: config.fal.steps }),
      ...(config.fal.prices !== undefined && { prices: config.fal.prices }),
    });
  } else {
    const local = await import("../offline/generator.ts");
    generator = local.createLocalGenerator();
    // The local generator has one model; a fal model id would be recorded falsely.
    resolveModel = () => local.LOCAL_MODEL;
    model = local.LOCAL_MODEL;
  }

  let critic: ImageCritic;
  let refiner: PromptRefiner;
  if (choice.critic === "gemini") {
    const gemini = await import("./gemini.ts");
    const options = {
      apiKey: config.gemini.key!,
      ...(config.gemini.baseUrl !== undefined && { baseUrl: config.gemini.baseUrl }),
      ...(config.criticModel !== undefined && { model: config.criticModel }),
      ...(config.gemini.prices !== undefined && { prices: config.gemini.prices }),
      timeoutMs: config.timeoutMs,
    };
    // One client for both: one price warning, and one check before the run.
    ({ critic, refiner } = gemini.createGeminiProviders(options));
  } else {
    const { createLocalCritic } = await import("../offline/critic.ts");
    const { createLocalRefiner } = await import("../offline/refiner.ts");
    critic = createLocalCritic();
    refiner = createLocalRefiner();
  }

  const local = [
    choice.generator === "local" ? "generator" : undefined,
    choice.critic === "local" ? "critic and refiner" : undefined,
  ].filter((part) => part !== undefined);
  const hints = [
    choice.generator === "local" ? "set FAL_KEY to generate with fal.ai" : undefined,
    choice.critic === "local" ? "set GEMINI_API_KEY to critique with Gemini" : undefined,
  ].filter((part) => part !== undefined);
  const notice = local.length === 0
    ? undefined
    : `Running offline with the embedded local ${local.join(" and local ")} (no network, no cost)${
      config.offline ? "" : `: ${hints.join("; ")}`
    }.`;
  return {
    generator,
    critic,
    refiner,
    model,
    resolveModel,
    ...(notice !== undefined && { notice }),
  };
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
