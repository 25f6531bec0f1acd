/**
 * The embedded offline engine as a retake provider: it generates, critiques and refines with no
 * key, no network and no cost, so retake does its whole job on a fresh machine.
 *
 * @module
 */
import { z } from "zod";
import type { CreateContext, ProviderDescriptor } from "../providers/provider.ts";
import { criterionShares } from "../providers/rubric.ts";
import { LOCAL_MODEL } from "./model.ts";

export { LOCAL_MODEL };

/** The local provider: always available, and last in the registry, so `auto` falls back to it. */
export const localProvider = {
  name: "local",
  title: "local (offline)",
  summary: {
    generate: "composes an SVG scene from the prompt's cues, rasterised by sharp",
    critique: "measures the image with sharp and scores it against the cues",
    refine: "strengthens what the critique found missing",
  },
  roles: ["generate", "critique", "refine"],
  schema: z.strictObject({}),
  env: [],
  models: [{ id: LOCAL_MODEL, roles: ["generate"] }],
  defaults: { generate: LOCAL_MODEL },
  available: () => true,
  unavailable: "",
  // The local generator has one model; another model id would be recorded falsely.
  resolveModel: () => LOCAL_MODEL,
  async create({ roles, rubric }: CreateContext<Record<string, never>>) {
    const [generator, critic, refiner] = await Promise.all([
      roles.has("generate") ? import("./generator.ts") : undefined,
      roles.has("critique") ? import("./critic.ts") : undefined,
      roles.has("refine") ? import("./refiner.ts") : undefined,
    ]);
    return {
      ...(generator && { generator: generator.createLocalGenerator() }),
      // The user's weights (shares summing to 1, as the built-in ones do) make its score.
      ...(critic && {
        critic: critic.createLocalCritic(
          rubric?.weights === undefined ? undefined : criterionShares(rubric.weights),
        ),
      }),
      ...(refiner && { refiner: refiner.createLocalRefiner() }),
    };
  },
} as const satisfies ProviderDescriptor<Record<string, never>>;
