/**
 * AUTOMATIC1111's web UI (or Forge) as a retake provider: the user's own server, started with
 * `--api`, at `A1111_BASE_URL` (default `http://127.0.0.1:7860`); basic auth with `--api-auth`.
 *
 * @module
 */
import { z } from "zod";
import { InputError } from "../../errors.ts";
import { positiveInt, urlString } from "../../config/schema.ts";
import type { CreateContext, ProviderDescriptor } from "../provider.ts";
import { createA1111Generator, DEFAULT_A1111_URL, LOADED_MODEL } from "./generator.ts";

/** The `a1111` section of the config file. */
const a1111Settings = z.strictObject({
  /** The server's root URL; absent: `http://127.0.0.1:7860`. */
  baseUrl: urlString.optional(),
  /** `user:password` of the server's `--api-auth`. */
  auth: z.string().min(1).optional(),
  /** `steps` for prompts that set none; absent: the server's own. */
  steps: positiveInt.max(150).optional(),
  /** `sampler_name`, e.g. `DPM++ 2M`; absent: the server's own. */
  sampler: z.string().min(1).optional(),
  /** `scheduler`, e.g. `Karras` (web UI 1.9 and later); absent: the server's own. */
  scheduler: z.string().min(1).optional(),
  /** `cfg_scale`; absent: the server's own. */
  cfgScale: z.coerce.number().min(1).max(30).optional(),
  /** How far an edit (img2img) may move from its source, 0 to 1. */
  denoisingStrength: z.coerce.number().min(0).max(1).default(0.55),
  /** Generations sent at once: one GPU runs one at a time. */
  concurrency: positiveInt.max(64).default(1),
  /** Delay between progress polls while an image is drawn, in ms. */
  pollIntervalMs: positiveInt.default(1000),
});

/** The AUTOMATIC1111 provider's settings, validated. */
export type A1111Settings = z.output<typeof a1111Settings>;

/** AUTOMATIC1111 (or Forge) as a retake provider: image generation on the user's GPU. */
export const a1111Provider = {
  name: "a1111",
  title: "AUTOMATIC1111",
  summary: {
    generate:
      "your AUTOMATIC1111 or Forge web UI (`--api`): txt2img, img2img for edits, progress, interrupt",
  },
  roles: ["generate"],
  schema: a1111Settings,
  env: [
    {
      names: ["A1111_BASE_URL"],
      setting: "baseUrl",
      description: `the AUTOMATIC1111 or Forge web UI (default ${DEFAULT_A1111_URL})`,
    },
    {
      names: ["A1111_API_AUTH"],
      setting: "auth",
      secret: true,
      description: "user:password of the web UI's --api-auth (as --api-auth)",
    },
  ],
  models: [{ id: LOADED_MODEL, roles: ["generate"], price: "free (your GPU)" }],
  defaults: { generate: LOADED_MODEL },
  // Free, but it needs the user's server: used only when named.
  auto: false,
  available: () => true,
  unavailable: "",
  resolveModel: (name) => name?.trim() || LOADED_MODEL,
  // deno-lint-ignore require-await -- async, so a refused setting rejects like every other fault
  async create({ settings, models, timeoutMs }: CreateContext<A1111Settings>) {
    if (settings.auth !== undefined && !/^[^:]+:.+$/.test(settings.auth)) {
      throw new InputError(
        "Cannot use --api-auth (A1111_API_AUTH) as it is not user:password (the value is a secret, so it is not shown): give it as the web UI's --api-auth has it",
      );
    }
    return {
      generator: createA1111Generator({
        baseUrl: settings.baseUrl,
        auth: settings.auth,
        steps: settings.steps,
        sampler: settings.sampler,
        scheduler: settings.scheduler,
        cfgScale: settings.cfgScale,
        denoisingStrength: settings.denoisingStrength,
        timeoutMs,
        pollIntervalMs: settings.pollIntervalMs,
        maxConcurrency: settings.concurrency,
        models,
      }),
    };
  },
} as const satisfies ProviderDescriptor<A1111Settings>;
