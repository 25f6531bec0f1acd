/**
 * Every provider retake knows, as data: names, roles, env names, settings schemas and model
 * catalogs. The config's schema is built from it, so it imports nothing of the config.
 *
 * @module
 */
import { localProvider } from "../offline/provider.ts";
import { a1111Provider } from "./a1111/mod.ts";
import { comfyuiProvider } from "./comfyui/mod.ts";
import { falProvider } from "./fal/fal.ts";
import { geminiProvider } from "./gemini/gemini.ts";
import { openaiProvider } from "./openai/openai.ts";
import type { ProviderDescriptor } from "./provider.ts";

/**
 * Every provider retake knows, in the order `auto` prefers them for each role. A new service is
 * one new file exporting its descriptor, and one line here.
 */
export const PROVIDERS = [
  falProvider,
  geminiProvider,
  openaiProvider,
  comfyuiProvider,
  a1111Provider,
  localProvider,
] as const;

/** The same providers as plain descriptors, for code that handles any of them alike. */
export const DESCRIPTORS: readonly ProviderDescriptor[] =
  PROVIDERS as unknown as readonly ProviderDescriptor[];

/** A provider by name. */
export function providerNamed(name: string): ProviderDescriptor | undefined {
  return DESCRIPTORS.find((p) => p.name === name);
}
