/**
 * The eval's judge: a critic that is not the loop's own (another provider or model, `--judge`),
 * which scores every strategy's final image against the original prompt and its brief. Each
 * verdict is cached beside the eval, keyed by the judge, the image's bytes and the brief, so a
 * rerun pays for no image it has judged; every call reserves its estimate from the budget first.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { defer, from, lastValueFrom, mergeMap, toArray } from "rxjs";
import { safeFolderName } from "../output/folder_names.ts";
import { refuseLinks, writeJsonAtomic } from "../output/atomic_write.ts";
import { type Budget, BudgetRefusal } from "../async/budget.ts";
import type { Config } from "../config.ts";
import { type Brief, type Critique, critiqueSchema } from "../providers/critique.ts";
import { billedCost, InputError, isFatal, messageOf } from "../errors.ts";
import { LOCAL_CRITIC_MODEL } from "../offline/critic.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { CritiqueResult, ImageCritic, ProviderDescriptor } from "../providers/provider.ts";
import { DESCRIPTORS, providerNamed } from "../providers/catalog.ts";
import { chooseProviders } from "../providers/registry.ts";
import { type RetryOptions, retryWithBackoff } from "../async/retry.ts";
import { readJson } from "./results.ts";
import type { StrategyName } from "./strategies.ts";

/** `--judge PROVIDER[:MODEL]`, parsed. */
export interface JudgeChoice {
  /** A provider that critiques images, by name (`gemini`, `openai`, `local`, …). */
  provider: string;
  /**
   * The model it judges with.
   *
   * @default {the provider's critic model}
   */
  model?: string;
}

/** The judge of one eval. */
export interface Judge {
  critic: ImageCritic;
  provider: string;
  model: string;
  /** `provider:model`: what the cache is keyed by. */
  id: string;
  /** False when the judge is the loop's own critic (offline: the local critic). */
  independent: boolean;
  /** The loop's critic, as `provider:model`. */
  loopCritic: string;
}

/** Parses `--judge`: a provider name that can critique, optionally `:` and a model id. */
export function parseJudge(text: string): JudgeChoice {
  const colon = text.indexOf(":");
  const provider = (colon === -1 ? text : text.slice(0, colon)).trim();
  const model = colon === -1 ? undefined : text.slice(colon + 1).trim();
  if (provider === "" || model === "") {
    throw new InputError(
      `Cannot use --judge '${text}' as it is not PROVIDER or PROVIDER:MODEL: give one such as 'gemini' or 'openai:gpt-4.1-mini'`,
    );
  }
  return model === undefined ? { provider } : { provider, model };
}

/** A provider's own section of the config. */
function settingsOf(config: Config, name: string): Record<string, unknown> {
  return (config as unknown as Record<string, Record<string, unknown>>)[name] ?? {};
}

/** The model a provider critiques with when given `model` (undefined: its default). */
function criticModelOf(provider: ProviderDescriptor, model: string | undefined): string {
  return provider.name === "local"
    ? LOCAL_CRITIC_MODEL
    : model ?? provider.defaults.critique ?? "default";
}

/**
 * Chooses and builds the judge: `choice`, else the first provider with a key that critiques and
 * is not the loop's critic, else the loop's critic itself (offline: the local critic), which is
 * then marked not independent. Throws an {@linkcode InputError} for a judge that cannot run.
 */
export async function createJudge(
  config: Config,
  choice: JudgeChoice | undefined,
): Promise<Judge> {
  const loopName = chooseProviders(config).critic;
  const loop = providerNamed(loopName)!;
  const loopModel = criticModelOf(loop, config.criticModel);
  const critics = DESCRIPTORS.filter((p) => p.roles.includes("critique"));
  let provider: ProviderDescriptor;
  if (choice !== undefined) {
    const named = critics.find((p) => p.name === choice.provider);
    if (named === undefined) {
      throw new InputError(
        `Cannot use '${choice.provider}' as the judge as no provider of that name critiques images: choose one of ${
          critics.map((p) => p.name).join(", ")
        }`,
      );
    }
    if (config.offline && named.name !== "local") {
      throw new InputError(
        `Cannot use ${named.title} as the judge with --offline, which makes no network call: drop --offline, or --judge`,
      );
    }
    if (!named.available(settingsOf(config, named.name))) {
      throw new InputError(`Cannot use ${named.title} as the judge as ${named.unavailable}`);
    }
    if (
      named.name === "local" && choice.model !== undefined && choice.model !== LOCAL_CRITIC_MODEL
    ) {
      throw new InputError(
        `Cannot judge with local model '${choice.model}' as the local critic has one model: give --judge local`,
      );
    }
    provider = named;
  } else {
    provider = config.offline ? providerNamed("local")! : critics.find((p) =>
      // Not a service people set a key for for other tools (OpenAI): only with --judge.
      p.name !== loopName && p.name !== "local" && p.auto !== false &&
      p.available(settingsOf(config, p.name))
    ) ?? loop;
  }
  const model = criticModelOf(
    provider,
    choice?.model ?? (provider === loop ? config.criticModel : undefined),
  );
  const parts = await provider.create({
    settings: settingsOf(config, provider.name),
    roles: new Set(["critique"]),
    models: [],
    size: config.size,
    criticModel: provider.name === "local" ? undefined : model,
    timeoutMs: config.timeoutMs,
  });
  if (parts.critic === undefined) throw new Error(`Provider '${provider.name}' built no critic`);
  return {
    critic: parts.critic,
    provider: provider.name,
    model,
    id: `${provider.name}:${model}`,
    independent: provider.name !== loopName || model !== loopModel,
    loopCritic: `${loopName}:${loopModel}`,
  };
}

/** One final image to judge. */
export interface JudgeTask {
  strategy: StrategyName;
  spec: PromptSpec;
  /** Path of the final image; undefined when the strategy has none for this prompt. */
  image: string | undefined;
  /** The iteration the image comes from. */
  iteration: number;
  /** The brief every strategy's image of this prompt is judged by. */
  brief: Brief | undefined;
}

/** What the judge said of one final image. */
export interface Verdict {
  strategy: StrategyName;
  id: string;
  /**
   * `judged` this run; `cached` from an earlier run; `failed`; `no final image` (the strategy
   * did not complete the prompt); `not judged` (the budget, an interrupt or a fatal error).
   */
  status: "judged" | "cached" | "failed" | "no final image" | "not judged";
  score?: number;
  /** Checks of the brief the judge found passed, and how many the brief has. */
  checksPassed?: number;
  checksTotal?: number;
  /** What judging this image cost, in this run or the one cached. */
  costUsd: number;
  error?: string;
}

/** How a judging pass went. */
export interface JudgeRun {
  verdicts: Verdict[];
  /** Spent by this pass. */
  spentUsd: number;
  /** Why some images were not judged. */
  stoppedBy?: "budget" | "interrupt" | "fatal";
  /** The fatal error that stopped it (a bad key), if one did. */
  fatal?: unknown;
}

/** Options for {@linkcode judgeFinals}. */
export interface JudgeOptions {
  /** Where verdicts are cached: `<cacheDir>/<strategy>/<prompt folder>.json`. */
  cacheDir: string;
  /** The folder no write may leave through a link. */
  within: string;
  budget: Budget;
  retry: RetryOptions;
  /** Aborted to drain: no new call starts. */
  stop?: AbortSignal;
  /** Aborted to cancel calls in flight. */
  abort?: AbortSignal;
  /** Calls in flight. @default {4} */
  concurrency?: number;
  isoNow?: () => string;
}

/** What a cache file holds. */
interface CachedVerdict {
  judge: string;
  imageSha256: string;
  briefSha256: string | null;
  image: string;
  model: string;
  costUsd: number;
  judgedAt: string;
  critique: Critique;
}

/** Judges every task's image, from the cache where it can; verdicts come in task order. */
export async function judgeFinals(
  judge: Judge,
  tasks: readonly JudgeTask[],
  options: JudgeOptions,
): Promise<JudgeRun> {
  const run: JudgeRun = { verdicts: [], spentUsd: 0 };
  const pass: JudgePass = {
    judge,
    options,
    run,
    stop: options.stop ?? new AbortController().signal,
    abort: options.abort ?? new AbortController().signal,
  };
  const indexed = await lastValueFrom(
    from(tasks.map((task, index) => ({ task, index }))).pipe(
      mergeMap(
        ({ task, index }) => defer(async () => ({ index, verdict: await _judgeOne(pass, task) })),
        options.concurrency ?? 4,
      ),
      toArray(),
    ),
  );
  run.verdicts = indexed.sort((a, b) => a.index - b.index).map((v) => v.verdict);
  run.spentUsd = Math.round(run.spentUsd * 1e6) / 1e6;
  return run;
}

/** One {@linkcode judgeFinals} pass: what every task's judging shares. */
interface JudgePass {
  judge: Judge;
  options: JudgeOptions;
  /** The pass's outcome so far: spent, and why it stopped. */
  run: JudgeRun;
  /** Starts no new judging once aborted. */
  stop: AbortSignal;
  /** Cancels calls under way. */
  abort: AbortSignal;
}

/** What a verdict is cached under: the judge, the image's bytes and the brief. */
type CacheKey = Pick<CachedVerdict, "judge" | "imageSha256" | "briefSha256">;

/** One task's verdict: from the cache, else judged (within the budget) and cached. */
async function _judgeOne(pass: JudgePass, task: JudgeTask): Promise<Verdict> {
  const { judge, options, run } = pass;
  const base = { strategy: task.strategy, id: task.spec.id, costUsd: 0 };
  if (task.image === undefined) return { ...base, status: "no final image" };
  const image = task.image;
  const cacheFile = `${options.cacheDir}/${task.strategy}/${safeFolderName(task.spec.id)}.json`;
  let key: CacheKey;
  try {
    // Before any call: a link where the verdict goes would waste the call that fills it.
    await refuseLinks(cacheFile, options.within);
    key = {
      judge: judge.id,
      imageSha256: sha256(await Deno.readFile(image)),
      briefSha256: task.brief === undefined ? null : sha256(JSON.stringify(task.brief)),
    };
  } catch (error) {
    return { ...base, status: "failed", error: messageOf(error) };
  }
  const cached = await readCached(cacheFile, options.within, key);
  if (cached !== undefined) {
    return {
      ...base,
      ...scoreOf(cached.critique, task.brief),
      costUsd: cached.costUsd,
      status: "cached",
    };
  }
  if (run.stoppedBy !== undefined || pass.stop.aborted) {
    run.stoppedBy ??= "interrupt";
    return { ...base, status: "not judged" };
  }
  let reservation;
  try {
    reservation = await options.budget.reserve(judge.critic.estimateCostUsd?.() ?? 0, pass.abort);
  } catch (error) {
    run.stoppedBy ??= error instanceof BudgetRefusal ? "budget" : "interrupt";
    return { ...base, status: "not judged", error: messageOf(error) };
  }
  let result;
  try {
    result = await _critique(pass, task, image);
  } catch (error) {
    const billed = billedCost(error);
    reservation.settle(billed);
    run.spentUsd += billed;
    _noteFatal(run, error);
    return { ...base, costUsd: billed, status: "failed", error: messageOf(error) };
  }
  reservation.settle(result.costUsd);
  run.spentUsd += result.costUsd;
  const verdict: Verdict = {
    ...base,
    ...scoreOf(result.critique, task.brief),
    costUsd: result.costUsd,
    status: "judged",
  };
  await _cache(pass, task, cacheFile, key, result, verdict);
  return verdict;
}

/** The judge's critique of `image`, retried as the loop's calls are. */
function _critique(pass: JudgePass, task: JudgeTask, image: string): Promise<CritiqueResult> {
  return lastValueFrom(
    defer(() =>
      pass.judge.critic.critique({
        imagePath: image,
        format: /\.jpe?g$/i.test(image) ? "jpeg" : "png",
        prompt: task.spec.prompt,
        ...(task.brief !== undefined && { brief: task.brief }),
        spec: task.spec,
        iteration: task.iteration,
        signal: pass.abort,
      })
    ).pipe(retryWithBackoff({ ...pass.options.retry, stop: pass.stop })),
  );
}

/**
 * Writes the verdict to the cache. A failure is noted on `verdict`, which still counts: only a
 * rerun would pay for it again.
 */
async function _cache(
  { options, run }: JudgePass,
  task: JudgeTask,
  cacheFile: string,
  key: CacheKey,
  result: CritiqueResult,
  verdict: Verdict,
): Promise<void> {
  const image = task.image!;
  const entry: CachedVerdict = {
    ...key,
    image: image.startsWith(`${options.within}/`) ? image.slice(options.within.length + 1) : image,
    model: result.model,
    costUsd: result.costUsd,
    judgedAt: (options.isoNow ?? (() => new Date().toISOString()))(),
    critique: result.critique,
  };
  try {
    await Deno.mkdir(`${options.cacheDir}/${task.strategy}`, { recursive: true });
    await writeJsonAtomic(cacheFile, entry, { within: options.within });
  } catch (error) {
    verdict.error = `Cannot cache the verdict: ${messageOf(error)}`;
    _noteFatal(run, error);
  }
}

/** A fatal error stops the pass; the first is kept to report. */
function _noteFatal(run: JudgeRun, error: unknown): void {
  if (!isFatal(error)) return;
  run.stoppedBy = "fatal";
  run.fatal ??= error;
}

/** The judge's score and the checks it found passed, of the brief's checks. */
function scoreOf(
  critique: Critique,
  brief: Brief | undefined,
): Pick<Verdict, "score" | "checksPassed" | "checksTotal"> {
  if (brief === undefined || critique.checks === undefined) return { score: critique.score };
  const ids = new Set(brief.checks.map((c) => c.id));
  const answered = critique.checks.filter((c) => ids.has(c.id));
  return {
    score: critique.score,
    checksPassed: answered.filter((c) => c.passed).length,
    checksTotal: brief.checks.length,
  };
}

/** The cached verdict for this judge, image and brief, or undefined. */
async function readCached(
  file: string,
  within: string,
  key: Pick<CachedVerdict, "judge" | "imageSha256" | "briefSha256">,
): Promise<CachedVerdict | undefined> {
  // Writes are atomic: an unreadable file was edited by hand, and is judged again.
  const value = await readJson(file, within).catch(() => undefined) as
    | Partial<CachedVerdict>
    | undefined;
  if (
    value?.judge !== key.judge || value.imageSha256 !== key.imageSha256 ||
    value.briefSha256 !== key.briefSha256 || typeof value.costUsd !== "number"
  ) return undefined;
  const critique = critiqueSchema.safeParse(value.critique);
  return critique.success ? { ...value as CachedVerdict, critique: critique.data } : undefined;
}

function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}
