/**
 * How many calls each stage may have in flight: fixed ceilings, adaptive limiters shared per
 * provider, and the gate that lets a service one call until its first success.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { AdaptiveLimiter } from "../async/adaptive.ts";
import { FirstSuccessGate } from "../async/first_success.ts";
import type { StepName } from "../output/record.ts";
import type { PipelineOptions } from "./options.ts";

const log = getLogger(["retake", "pipeline"]);

/** The ceiling of every stage under `"auto"` concurrency, and the highest adaptive limit. */
export const AUTO_CEILING = 64;

export function stageCeilings(
  concurrency: PipelineOptions["concurrency"],
): Record<StepName, number> {
  return concurrency === "auto"
    ? { generate: AUTO_CEILING, critique: AUTO_CEILING, refine: AUTO_CEILING }
    : concurrency;
}

/** One limiter per provider name, so a service's stages and iterations share its quota. */
export function providerLimiters(options: PipelineOptions): Record<StepName, AdaptiveLimiter> {
  const byProvider = options.sharedLimiters ?? new Map<string, AdaptiveLimiter>();
  const limiterFor = (provider: string, most = AUTO_CEILING) => {
    let limiter = byProvider.get(provider);
    if (!limiter) {
      limiter = new AdaptiveLimiter({
        maxLimit: most,
        ...(options.now && { now: options.now }),
        // Said once, so a user who sees the batch slow down knows why and that nothing failed.
        onPace: (ratePerSecond) =>
          log.warn(
            "{provider} refused calls as over its rate quota: pacing calls to it at {ratePerSecond}/s",
            { provider, ratePerSecond },
          ),
        ...options.adaptive,
        // A server that runs one job at a time is never sent more, whatever it takes.
        ...(most < AUTO_CEILING && { maxLimit: most }),
      });
      byProvider.set(provider, limiter);
    }
    return limiter;
  };
  return {
    generate: limiterFor(options.generator.name, options.generator.maxConcurrency),
    critique: limiterFor(options.critic.name),
    refine: limiterFor(options.refiner.name),
  };
}

/**
 * With a fixed concurrency, a generator that runs one job at a time (a GPU on the user's machine)
 * still gets one limiter for all its stages: a stage's own ceiling would let every round send one.
 */
export function serverLimiters(
  options: PipelineOptions,
): Partial<Record<StepName, AdaptiveLimiter>> | undefined {
  const most = options.generator.maxConcurrency;
  if (most === undefined) return undefined;
  const byProvider = options.sharedLimiters ?? new Map<string, AdaptiveLimiter>();
  let limiter = byProvider.get(options.generator.name);
  if (!limiter) {
    limiter = new AdaptiveLimiter({
      minLimit: most,
      maxLimit: most,
      initialLimit: most,
      probe: false,
    });
    byProvider.set(options.generator.name, limiter);
  }
  return { generate: limiter };
}

/** One gate per provider name: until its first success a service gets one call at a time. */
export function providerGates(options: PipelineOptions): Record<StepName, FirstSuccessGate> {
  const byProvider = new Map<string, FirstSuccessGate>();
  const gateFor = (provider: string) => {
    let gate = byProvider.get(provider);
    if (!gate) byProvider.set(provider, gate = new FirstSuccessGate());
    return gate;
  };
  return {
    generate: gateFor(options.generator.name),
    critique: gateFor(options.critic.name),
    refine: gateFor(options.refiner.name),
  };
}
