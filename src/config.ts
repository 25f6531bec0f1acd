/**
 * The settings of a run: the core schema, each provider's own section, and what other modules
 * take from them (retry options, secrets to redact, settings safe to write). Their documented
 * type, {@linkcode Config}, is `config/types.ts`'s, checked here against the schema. Loading them
 * from argv, the environment and files is `config/load.ts`.
 *
 * @module
 */
import { z } from "zod";
import type { Role } from "./providers/provider.ts";
import type { RetryOptions } from "./async/retry.ts";
import { DESCRIPTORS, type PROVIDERS } from "./providers/catalog.ts";
import {
  iterationsSchema,
  positiveInt,
  seedSchema,
  sizeSchema,
  targetScoreSchema,
} from "./config/schema.ts";
import { criterionWeightsSchema, rubricTextSchema } from "./providers/rubric.ts";
import { SIZE_PRESETS } from "./config/sizes.ts";
import type { Config } from "./config/types.ts";

export { SIZE_PRESETS };
export type { Config };

/** `"auto"` (adaptive, per provider), one number for every stage, or one per stage. */
const concurrencySchema = z.union([
  z.literal("auto"),
  positiveInt.max(64).transform((n) => ({ generate: n, critique: n, refine: n })),
  z.object({
    generate: positiveInt.max(64),
    critique: positiveInt.max(64),
    refine: positiveInt.max(64),
  }),
], {
  error: (issue) =>
    `expected "auto", a whole number from 1 to 64, or {"generate": N, "critique": N, "refine": N}: current value is ${
      JSON.stringify(issue.input)
    }`,
});

/** The settings every run has, whatever its providers. */
const coreSchema = z.object({
  /** Output base folder. */
  out: z.string().min(1).default("outputs"),
  /** Batch folder name; default: the first prompt file's name without extension. */
  name: z.string().min(1).optional(),
  size: sizeSchema.default(SIZE_PRESETS.landscape_4_3!),
  format: z.enum(["png", "jpeg"]).default("png"),
  /** Generation model; default depends on the generator. */
  model: z.string().min(1).optional(),
  /** Compare these generation models side by side (each prompt runs with each). */
  models: z.union([
    z.string().transform((s) => s.split(",").map((x) => x.trim()).filter(Boolean)),
    z.array(z.string().min(1)),
  ]).optional(),
  /** Critic/refiner model; default depends on the critic. */
  criticModel: z.string().min(1).optional(),
  /** Text added to the critic's instructions: what you judge by (config file only). */
  criticRubric: rubricTextSchema.optional(),
  /** A weight per criterion: the overall score is their weighted mean (config file only). */
  criticWeights: criterionWeightsSchema.optional(),
  /** Calls in flight per stage; `"auto"` finds each provider's quota while it runs. */
  concurrency: concurrencySchema.default("auto"),
  iterations: iterationsSchema.default(2),
  offline: z.boolean().default(false),
  /** Base seed; default derived from each prompt's id, so reruns are reproducible. */
  seed: seedSchema.optional(),
  varySeed: z.boolean().default(false),
  /** Stop a prompt early once every check passes and a critique reaches this score. */
  targetScore: targetScoreSchema.optional(),
  /** How refinements make the next image: edit the best one, draw anew, or choose per round. */
  refine: z.enum(["auto", "edit", "regenerate"]).default("auto"),
  /** Stop a prompt once its best round is this many rounds old. */
  patience: positiveInt.max(20).default(2),
  /** Per-criterion minimums that must also be met to stop early (config file only). */
  targetCriteria: z.partialRecord(
    z.enum(["promptAdherence", "composition", "lighting", "mood", "technicalQuality"]),
    z.number().min(0).max(10),
  ).optional(),
  /** Redo every prompt, moving earlier attempts aside. */
  force: z.boolean().default(false),
  /** A prompt of its own, given on the command line: a batch of one, or one more prompt. */
  prompt: z.string().trim().min(1, "must not be empty").optional(),
  /** The field (column) of the prompt files that holds the prompt, when not a usual name. */
  promptField: z.string().trim().min(1).optional(),
  /** The field (column) of the prompt files that holds the id, when not `id` or `item_id`. */
  idField: z.string().trim().min(1).optional(),
  /** The field (column) of the prompt files that holds each prompt's checks. */
  checksField: z.string().trim().min(1).optional(),
  /** Only these prompt ids, or prompts whose field has a value (`Category=Animals`). */
  only: z.union([
    z.string().transform((s) => s.split(",").map((x) => x.trim()).filter(Boolean)),
    z.array(z.string()),
  ]).optional(),
  /** Stop starting paid steps once the run has spent this much, in USD. */
  maxCost: z.coerce.number().nonnegative().optional(),
  /** Say what would run and what it could cost; make no call, write nothing. */
  dryRun: z.boolean().default(false),
  /** Print the summary (or the dry run's plan) as one JSON document on stdout. */
  json: z.boolean().default(false),
  /** After an interrupt, how long calls in flight may take to finish, in ms. */
  graceMs: z.coerce.number().nonnegative().default(10_000),
  quiet: z.boolean().default(false),
  verbose: z.boolean().default(false),
  /** Deadline for one provider call, in ms. */
  timeoutMs: positiveInt.default(120_000),
  /** Send calls in batch jobs at the batch price (Gemini: half), where the service sells them. */
  batchApi: z.boolean().default(false),
  /** With `batchApi`: time between two looks at a running job, in ms. */
  batchPollMs: positiveInt.default(30_000),
  /** With `batchApi`: quiet time after the last request that sends a wave as a job, in ms. */
  batchGatherMs: z.coerce.number().int().nonnegative().default(2_000),
  /** Cancel the batch jobs this batch left running, then stop. */
  cancelBatchJobs: z.boolean().default(false),
  retry: z.strictObject({
    maxAttempts: positiveInt.max(20).default(4),
    /** Retries after refusals as over quota, per call: they spend no attempt or budget. */
    maxOverloadRetries: z.coerce.number().int().nonnegative().max(1000).default(30),
    minTimeoutMs: z.coerce.number().nonnegative().default(1000),
    maxTimeoutMs: z.coerce.number().nonnegative().default(30_000),
    multiplier: z.coerce.number().min(1).default(2),
    jitter: z.coerce.number().min(0).max(1).default(0.5),
    /** Retries allowed in the whole run. */
    budget: z.coerce.number().int().nonnegative().default(200),
    /**
     * Longest wait a service may ask for (a retry hint) before the run stops instead, saying when
     * it can resume: a per-day quota asks for hours.
     */
    maxWaitMs: z.coerce.number().int().positive().default(120_000),
    /** Multiplies every delay, server hints included: for tests. */
    timeScale: z.coerce.number().nonnegative().default(1),
  }).prefault({}),
});

/** The names of the providers that can take a role, for `--generator` and `--critic`. */
function namesFor(role: Role): [string, ...string[]] {
  return ["auto", ...DESCRIPTORS.filter((p) => p.roles.includes(role)).map((p) => p.name)];
}

/**
 * The validated settings of one run: the core settings, plus one section per provider (`fal`,
 * `gemini`, …), each the provider's own schema.
 */
export const configSchema: z.ZodType<Config> = coreSchema.extend({
  generator: z.enum(namesFor("generate")).default("auto"),
  critic: z.enum(namesFor("critique")).default("auto"),
  ...Object.fromEntries(DESCRIPTORS.map((p) => [p.name, (p.schema as z.ZodObject).prefault({})])),
}).strict() as unknown as z.ZodType<Config>;

/** Each provider's section, typed by its own schema. */
export type ProviderSections = {
  [P in (typeof PROVIDERS)[number] as P["name"]]: z.output<P["schema"]>;
};

/** What {@linkcode configSchema} outputs, as zod infers it. */
type SchemaOutput = z.output<typeof coreSchema> & {
  generator: string;
  critic: string;
} & ProviderSections;

/** `T` with every object type spelt out field by field: two spellings of one type compare equal. */
type Plain<T> = T extends object ? { [K in keyof T]: Plain<T[K]> } : T;

/** Whether `A` and `B` are the same type: the same fields, each as optional and as typed. */
type Same<A, B> = (<T>() => T extends Plain<A> ? 1 : 2) extends <T>() => T extends Plain<B> ? 1 : 2
  ? true
  : false;

/**
 * The documented {@linkcode Config} (`config/types.ts`) is what the schema outputs: a setting
 * added, dropped or retyped on one side only fails type checking here.
 */
const _configMatchesSchema: Same<Config, SchemaOutput> = true;

/** The retry settings in the shape the backoff operator takes (`retry.ts`). */
export function retryOptionsOf(config: Config): Omit<RetryOptions, "budget"> {
  const r = config.retry;
  return {
    maxAttempts: r.maxAttempts,
    maxOverloadRetries: r.maxOverloadRetries,
    minTimeout: r.minTimeoutMs,
    maxTimeout: r.maxTimeoutMs,
    multiplier: r.multiplier,
    jitter: r.jitter,
    maxRetryAfter: r.maxWaitMs,
    timeScale: r.timeScale,
  };
}

/** The secret values in a config, for redaction. */
export function secretsOf(config: Config): string[] {
  const sections = config as unknown as Record<string, Record<string, unknown>>;
  return DESCRIPTORS.flatMap((p) =>
    p.env.filter((e) => e.secret).map((e) => sections[p.name]?.[e.setting])
  ).filter((v): v is string => typeof v === "string" && v !== "");
}

/** The settings without secrets, safe to write to `run.json`. */
export function publicSettings(config: Config): Record<string, unknown> {
  const settings: Record<string, unknown> = { ...config };
  for (const p of DESCRIPTORS) {
    const section = { ...(settings[p.name] as Record<string, unknown>) };
    for (const e of p.env) if (e.secret) delete section[e.setting];
    settings[p.name] = section;
  }
  return settings;
}
