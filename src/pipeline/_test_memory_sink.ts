/**
 * A {@linkcode PromptSink} that keeps every save in memory, for the pipeline's tests.
 *
 * @module
 */
import type { Brief, Critique } from "../providers/critique.ts";
import type { PromptSink } from "../output/sink.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { PromptRecord } from "../output/record.ts";

/** Records every save in memory. */
export class MemorySink implements PromptSink {
  records = new Map<string, PromptRecord>();
  files = new Map<string, string>();
  folderFor(spec: PromptSpec) {
    return spec.id;
  }
  load(folder: string) {
    return Promise.resolve(structuredClone(this.records.get(folder)));
  }
  moveAside(folder: string) {
    const aside = `${folder}.previous`;
    this.records.set(aside, this.records.get(folder)!);
    this.records.delete(folder);
    return Promise.resolve(aside);
  }
  start(spec: PromptSpec, record: PromptRecord) {
    this.files.set(`${spec.id}/prompt.json`, JSON.stringify(spec));
    this.records.set(record.id, structuredClone(record));
    return Promise.resolve();
  }
  saveImage(record: PromptRecord, iteration: number) {
    this.files.set(`${record.id}/iteration-${iteration}.png`, "img");
    return Promise.resolve({ file: `iteration-${iteration}.png`, width: 64, height: 64 });
  }
  imagePath(record: PromptRecord, file: string) {
    return `${record.id}/${file}`;
  }
  saveBrief(record: PromptRecord, brief: Brief) {
    this.files.set(`${record.id}/brief.json`, JSON.stringify(brief));
    return Promise.resolve();
  }
  saveCritique(record: PromptRecord, iteration: number, c: Critique) {
    this.files.set(`${record.id}/iteration-${iteration}.critique.json`, JSON.stringify(c));
    return Promise.resolve();
  }
  saveRefinedPrompt(record: PromptRecord, iteration: number, prompt: string) {
    this.files.set(`${record.id}/iteration-${iteration}.refined-prompt.txt`, prompt);
    return Promise.resolve();
  }
  saveBest(record: PromptRecord, image: string) {
    this.files.set(`${record.id}/best.png`, image);
    return Promise.resolve("best.png");
  }
  saveRecord(record: PromptRecord) {
    this.records.set(record.id, structuredClone(record));
    return Promise.resolve();
  }
}
