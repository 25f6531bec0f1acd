/**
 * What the pipeline needs of the place it saves a prompt's steps: an interface of its own, so the
 * pipeline and the folder writer (`artifacts.ts`) both point down to it and not at each other.
 *
 * @module
 */
import type { Brief, Critique } from "../providers/critique.ts";
import type { GeneratedImage } from "../providers/provider.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { PromptRecord } from "./record.ts";

/** Where the pipeline saves each step as soon as it succeeds. */
export interface PromptSink {
  /** Folder name for a prompt (relative to the batch folder). */
  folderFor(spec: PromptSpec): string;
  /** Reads the `metadata.json` a previous run left for this folder, if any. */
  load(folder: string): Promise<PromptRecord | undefined>;
  /** Moves a previous attempt's folder aside (never overwritten); returns its new name. */
  moveAside(folder: string): Promise<string>;
  /** Creates the prompt's folder and writes `prompt.json`. */
  start(spec: PromptSpec, record: PromptRecord): Promise<void>;
  /** Verifies and saves an image; returns its file name and real dimensions. */
  saveImage(
    record: PromptRecord,
    iteration: number,
    image: GeneratedImage,
  ): Promise<{ file: string; width: number; height: number }>;
  /** Path of a saved image, for the critic. */
  imagePath(record: PromptRecord, file: string): string;
  saveCritique(record: PromptRecord, iteration: number, critique: Critique): Promise<void>;
  saveRefinedPrompt(record: PromptRecord, iteration: number, prompt: string): Promise<void>;
  /** Writes the prompt's checklist, `brief.json`. */
  saveBrief(record: PromptRecord, brief: Brief): Promise<void>;
  /** Writes `metadata.json`. */
  saveRecord(record: PromptRecord): Promise<void>;
  /** Copies the best iteration's image to `best.<ext>`; returns the file name. */
  saveBest(record: PromptRecord, image: string): Promise<string>;
}
