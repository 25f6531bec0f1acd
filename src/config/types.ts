/**
 * The settings of a run as plain, documented types: what `configSchema` (`config.ts`) makes of
 * the defaults, the config file, the environment and the flags. The schema checks the values;
 * these types say what each one is. `config.ts` checks at compile time that the two are the
 * same type, so a setting added to, dropped from or retyped in one and not the other fails type
 * checking.
 *
 * @module
 */

/** One of the critic's criteria, each scored 0 to 10. */
export type CriterionName =
  | "promptAdherence"
  | "composition"
  | "lighting"
  | "mood"
  | "technicalQuality";

/** The checked settings of one run: the core settings, then one section per provider. */
export interface Config {
  /**
   * Output base folder (`--out`).
   *
   * @default {"outputs"}
   */
  out: string;
  /** Batch folder name (`--name`); absent: the first prompt file's name without extension. */
  name?: string | undefined;
  /**
   * Image size in pixels, 64 to 4096 a side (`--size`: `WIDTHxHEIGHT` or a preset name such as
   * `square_hd`).
   *
   * @default {{ width: 1024, height: 768 }}
   */
  size: { width: number; height: number };
  /**
   * Image file format (`--format`).
   *
   * @default {"png"}
   */
  format: "png" | "jpeg";
  /** Generation model (`--model`): an alias or any model id; absent: the generator's own. */
  model?: string | undefined;
  /** Compare these generation models side by side, each prompt with each (`--models`). */
  models?: string[] | undefined;
  /** Critic and refiner model (`--critic-model`); absent: the critic's own. */
  criticModel?: string | undefined;
  /** Text added to the critic's instructions: what you judge by (config file only). */
  criticRubric?: string | undefined;
  /**
   * A weight per criterion, 0 to 100, a criterion left out weighing 1: the overall score is
   * their weighted mean (config file only).
   */
  criticWeights?: Partial<Record<CriterionName, number | undefined>> | undefined;
  /**
   * Calls in flight per stage (`--concurrency`): one number for every stage, one per stage, or
   * `"auto"`, which finds each provider's quota while it runs.
   *
   * @default {"auto"}
   */
  concurrency: "auto" | { generate: number; critique: number; refine: number };
  /**
   * Images per prompt, 1 to 20: the first plus refined ones (`--iterations`).
   *
   * @default {2}
   */
  iterations: number;
  /**
   * Use the embedded local providers even when keys are set (`--offline`).
   *
   * @default {false}
   */
  offline: boolean;
  /** Base seed (`--seed`); absent: derived from each prompt's id, so reruns are reproducible. */
  seed?: number | undefined;
  /**
   * A new seed for every round instead of one per prompt (`--vary-seed`).
   *
   * @default {false}
   */
  varySeed: boolean;
  /** Stop a prompt early once every check passes and a critique reaches this score, 0 to 10. */
  targetScore?: number | undefined;
  /**
   * How refinements make the next image (`--refine`): edit the best one, draw anew, or `auto`:
   * edit when only local checks failed.
   *
   * @default {"auto"}
   */
  refine: "edit" | "regenerate" | "auto";
  /**
   * Stop a prompt once its best round is this many rounds old (`--patience`).
   *
   * @default {2}
   */
  patience: number;
  /** Per-criterion minimums that must also be met to stop early (config file only). */
  targetCriteria?: Partial<Record<CriterionName, number>> | undefined;
  /**
   * Redo every prompt, moving earlier attempts aside (`--force`).
   *
   * @default {false}
   */
  force: boolean;
  /** A prompt of its own (`--prompt`): a batch of one, or one more prompt. */
  prompt?: string | undefined;
  /** The field (column) of the prompt files that holds the prompt, when not a usual name. */
  promptField?: string | undefined;
  /** The field (column) of the prompt files that holds the id, when not `id` or `item_id`. */
  idField?: string | undefined;
  /** The field (column) of the prompt files that holds each prompt's checks. */
  checksField?: string | undefined;
  /** Only these prompt ids, or prompts whose field has a value (`Category=Animals`). */
  only?: string[] | undefined;
  /** Stop starting paid steps once the run has spent this much, in USD (`--max-cost`). */
  maxCost?: number | undefined;
  /**
   * Say what would run and what it could cost; make no call, write nothing.
   *
   * @default {false}
   */
  dryRun: boolean;
  /**
   * Print the summary (or the dry run's plan) as one JSON document on stdout.
   *
   * @default {false}
   */
  json: boolean;
  /**
   * After an interrupt, how long calls in flight may take to finish, in ms.
   *
   * @default {10000}
   */
  graceMs: number;
  /**
   * No progress line (`--quiet`).
   *
   * @default {false}
   */
  quiet: boolean;
  /**
   * Debug logging on stderr (`--verbose`).
   *
   * @default {false}
   */
  verbose: boolean;
  /**
   * Deadline for one provider call, in ms (`--timeout`).
   *
   * @default {120000}
   */
  timeoutMs: number;
  /**
   * Send calls in batch jobs at the batch price (Gemini: half), where the service sells them
   * (`--batch-api`).
   *
   * @default {false}
   */
  batchApi: boolean;
  /**
   * With `batchApi`: time between two looks at a running job, in ms.
   *
   * @default {30000}
   */
  batchPollMs: number;
  /**
   * With `batchApi`: quiet time after the last request that sends a wave as a job, in ms.
   *
   * @default {2000}
   */
  batchGatherMs: number;
  /**
   * Cancel the batch jobs this batch left running, then stop.
   *
   * @default {false}
   */
  cancelBatchJobs: boolean;
  /** How failed calls are retried. */
  retry: RetryConfig;
  /**
   * The provider that generates (`--generator`), or `auto`: the first whose key is set.
   *
   * @default {"auto"}
   */
  generator: string;
  /**
   * The provider that critiques and refines (`--critic`), or `auto`.
   *
   * @default {"auto"}
   */
  critic: string;
  /** fal.ai's settings. */
  fal: FalConfig;
  /** Gemini's settings. */
  gemini: GeminiConfig;
  /** The OpenAI-compatible critic's settings. */
  openai: OpenAIConfig;
  /** ComfyUI's settings. */
  comfyui: ComfyUIConfig;
  /** AUTOMATIC1111's (or Forge's) settings. */
  a1111: A1111Config;
  /** The embedded offline provider's settings: it has none. */
  local: LocalConfig;
}

/** How failed calls are retried: exponential backoff with jitter, a cap and a run-wide budget. */
export interface RetryConfig {
  /**
   * Attempts per call, the first included; refusals as over quota do not count.
   *
   * @default {4}
   */
  maxAttempts: number;
  /**
   * Retries after refusals as over quota, per call: they spend no attempt or budget.
   *
   * @default {30}
   */
  maxOverloadRetries: number;
  /**
   * Delay before the first retry, in ms.
   *
   * @default {1000}
   */
  minTimeoutMs: number;
  /**
   * Longest computed delay, in ms.
   *
   * @default {30000}
   */
  maxTimeoutMs: number;
  /**
   * Growth factor between retries.
   *
   * @default {2}
   */
  multiplier: number;
  /**
   * Share of each delay that is randomised away, 0 to 1.
   *
   * @default {0.5}
   */
  jitter: number;
  /**
   * Retries allowed in the whole run.
   *
   * @default {200}
   */
  budget: number;
  /**
   * Longest wait a service may ask for (a retry hint) before the run stops instead, saying when
   * it can resume: a per-day quota asks for hours.
   *
   * @default {120000}
   */
  maxWaitMs: number;
  /**
   * Multiplies every delay, server hints included: for tests.
   *
   * @default {1}
   */
  timeScale: number;
}

/** The `fal` section: fal.ai, for image generation. */
export interface FalConfig {
  /** The fal.ai key (`FAL_KEY`); never written to a file or a log. */
  key?: string | undefined;
  /** Send every fal request to this origin (`FAL_BASE_URL`); it receives the key. */
  baseUrl?: string | undefined;
  /**
   * Ask fal to run its safety checker; off, the most permissive `safety_tolerance` where an
   * endpoint has only that.
   *
   * @default {true}
   */
  safetyChecker: boolean;
  /**
   * Fail the step when fal flags the image as NSFW; off, the image is kept.
   *
   * @default {true}
   */
  failOnNsfw: boolean;
  /** `num_inference_steps`, for endpoints that take it; absent: the endpoint's own. */
  steps?: number | undefined;
  /** USD per megapixel or per image, by endpoint id, over retake's own prices. */
  prices?: Record<string, number> | undefined;
  /**
   * Delay between status polls, where fal's status stream is not served, in ms.
   *
   * @default {500}
   */
  pollIntervalMs: number;
}

/** The `gemini` section: Google's Gemini, for generation, critique and refinement. */
export interface GeminiConfig {
  /** The Gemini key (`GEMINI_API_KEY`); never written to a file or a log. */
  key?: string | undefined;
  /** The Gemini SDK's base URL (`GEMINI_BASE_URL`); it receives the key. */
  baseUrl?: string | undefined;
  /**
   * USD per 1M tokens, by model id: `input`, `output` (text and thinking), for image models
   * `image` (output image tokens), and `cached` (input read from Gemini's cache; a tenth of
   * `input` when not given).
   */
  prices?:
    | Record<
      string,
      { input: number; output: number; image?: number | undefined; cached?: number | undefined }
    >
    | undefined;
}

/** The `openai` section: OpenAI, or any server speaking its API, for critique and refinement. */
export interface OpenAIConfig {
  /** The key (`OPENAI_API_KEY`); a server on this machine may need none. */
  key?: string | undefined;
  /** An OpenAI-compatible API root (`OPENAI_BASE_URL`), e.g. `http://127.0.0.1:11434/v1`. */
  baseUrl?: string | undefined;
  /** Extra request headers, one `Name: value` a line (`OPENAI_CUSTOM_HEADERS`). */
  headers?: string | undefined;
  /** USD per 1M input and output tokens, by model id. */
  prices?: Record<string, { input: number; output: number }> | undefined;
  /**
   * Whether the server at `baseUrl` runs OpenAI's Batch API (`--batch-api`), as a proxy in
   * front of OpenAI may; unset, only api.openai.com does.
   */
  batchApi?: boolean | undefined;
}

/** A value retake fills into a ComfyUI workflow. */
export type ComfyUIBinding =
  | "prompt"
  | "negativePrompt"
  | "seed"
  | "width"
  | "height"
  | "steps"
  | "model"
  | "image"
  | "instruction";

/** The `comfyui` section: a ComfyUI server, for image generation with your workflow. */
export interface ComfyUIConfig {
  /** The server's root URL (`COMFYUI_BASE_URL`); absent: `http://127.0.0.1:8188`. */
  baseUrl?: string | undefined;
  /** The API-format workflow each image is drawn with (`--workflow`). */
  workflow?: string | undefined;
  /** Where each value goes in `workflow`, as `"<node id>.<input>"`, instead of placeholders. */
  nodes?: Partial<Record<ComfyUIBinding, string | string[]>> | undefined;
  /** The image-to-image workflow an edit goes through, with `{{image}}` in a LoadImage. */
  editWorkflow?: string | undefined;
  /** Where each value goes in `editWorkflow`. */
  editNodes?: Partial<Record<ComfyUIBinding, string | string[]>> | undefined;
  /** `{{steps}}` for prompts that set none. */
  steps?: number | undefined;
  /** The node whose image is the result; absent: the first that saved one. */
  outputNode?: string | undefined;
  /**
   * Generations queued on the server at once: one GPU runs one at a time.
   *
   * @default {1}
   */
  concurrency: number;
  /**
   * Delay between `/history` polls where the WebSocket is not used, in ms.
   *
   * @default {1000}
   */
  pollIntervalMs: number;
}

/** The `a1111` section: an AUTOMATIC1111 (or Forge) web UI, for image generation. */
export interface A1111Config {
  /** The server's root URL (`A1111_BASE_URL`); absent: `http://127.0.0.1:7860`. */
  baseUrl?: string | undefined;
  /** `user:password` of the server's `--api-auth` (`--api-auth`, `A1111_API_AUTH`). */
  auth?: string | undefined;
  /** `steps` for prompts that set none; absent: the server's own. */
  steps?: number | undefined;
  /** `sampler_name`, e.g. `DPM++ 2M`; absent: the server's own. */
  sampler?: string | undefined;
  /** `scheduler`, e.g. `Karras` (web UI 1.9 and later); absent: the server's own. */
  scheduler?: string | undefined;
  /** `cfg_scale`; absent: the server's own. */
  cfgScale?: number | undefined;
  /**
   * How far an edit (img2img) may move from its source, 0 to 1.
   *
   * @default {0.55}
   */
  denoisingStrength: number;
  /**
   * Generations sent at once: one GPU runs one at a time.
   *
   * @default {1}
   */
  concurrency: number;
  /**
   * Delay between progress polls while an image is drawn, in ms.
   *
   * @default {1000}
   */
  pollIntervalMs: number;
}

/** The `local` section: the embedded offline provider, which has no settings. */
export type LocalConfig = Record<string, never>;
