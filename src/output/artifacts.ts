/**
 * A prompt's folder on disk: {@linkcode FolderSink} writes every artifact of a prompt
 * (`prompt.json`, images, critiques, refined prompts, `brief.json`, `metadata.json`, `best.<ext>`).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Brief, Critique } from "../providers/critique.ts";
import type { PromptSink } from "./sink.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { GeneratedImage, ImageFormat } from "../providers/provider.ts";
import { type PromptRecord, shownIteration } from "./record.ts";
import { openInside, readTextInside } from "./safe_read.ts";
import { lstatOrUndefined } from "../util/file_info.ts";
import { MAX_RECORD_BYTES, parsePromptRecord } from "./record_file.ts";
import { isRoundImageName, legacyFolderName, promptFolder } from "./folder_names.ts";
import { writeBriefFile } from "./brief_file.ts";
import {
  describeWriteError,
  forgetCheckedFolders,
  refuseLinks,
  removeQuietly,
  TEMP_NAME,
  tempPathFor,
  WriteError,
  writeFileAtomic,
  writeJsonAtomic,
  writeStreamAtomic,
} from "./atomic_write.ts";

/** Checks a complete image file and returns its real size; throws when it is not an image. */
export type ImageVerifier = (
  path: string,
  format: ImageFormat,
) => Promise<{ width: number; height: number }>;

/**
 * Saves each prompt's artifacts under `<batchDir>/<safe id>/`, every file atomically:
 * `prompt.json`, `iteration-N.<ext>`, `iteration-N.critique.json`,
 * `iteration-N.refined-prompt.txt`, `metadata.json`. Nothing is written through a symbolic
 * link, and a folder whose `metadata.json` belongs to another id is never used.
 */
export class FolderSink implements PromptSink {
  // TypeScript-private rather than #private: a caller may wrap a sink with Object.create, and
  // #private slots are not found through a prototype.
  readonly batchDir: string;
  private readonly _verify: ImageVerifier;
  private readonly _subfolder: string | undefined;
  private readonly _legacySubfolder: string | undefined;
  /** Folder → the id it was named for, and the name earlier versions gave that id. */
  private readonly _ids = new Map<string, { id: string; legacy: string }>();
  /** Folders holding another id's results: nothing is written there. */
  private readonly _foreign = new Map<string, string>();

  private readonly _now: () => Date;

  /**
   * With `subfolder` (a model id, in comparisons) each prompt's files go one level deeper.
   * `options.now` is the clock that stamps folders moved aside. @default {() => new Date()}
   */
  constructor(
    batchDir: string,
    verify: ImageVerifier,
    subfolder?: string,
    options: { now?: () => Date } = {},
  ) {
    this.batchDir = batchDir;
    this._verify = verify;
    this._now = options.now ?? (() => new Date());
    this._subfolder = subfolder;
    this._legacySubfolder = subfolder === undefined ? undefined : legacyFolderName(subfolder);
  }

  folderFor(spec: PromptSpec): string {
    const legacy = legacyFolderName(spec.id);
    const path = promptFolder(spec.id, this._subfolder);
    this._ids.set(path, {
      id: spec.id,
      legacy: this._legacySubfolder === undefined ? legacy : `${legacy}/${this._legacySubfolder}`,
    });
    return path;
  }

  async load(folder: string): Promise<PromptRecord | undefined> {
    try {
      return await this._load(folder);
    } finally {
      // Asked once per prompt as it starts (again after a new `folderFor`): a batch of any size
      // keeps no entry for the prompts it is done with.
      this._ids.delete(folder);
    }
  }

  private async _load(folder: string): Promise<PromptRecord | undefined> {
    const dir = `${this.batchDir}/${folder}`;
    const file = `${dir}/metadata.json`;
    await refuseLinks(file, this.batchDir);
    await this._adoptLegacy(folder);
    const text = await readTextInside(this.batchDir, `${folder}/metadata.json`, MAX_RECORD_BYTES);
    if (text === undefined) return undefined;
    const read = parsePromptRecord(text);
    // Writes are atomic, so this is a hand-edited file: treat it as a foreign attempt.
    if (read.problem !== undefined) return { inputHash: "unreadable" } as PromptRecord;
    const record = read.record;
    const id = this._ids.get(folder)?.id;
    if (id !== undefined && typeof record?.id === "string" && record.id !== id) {
      const message =
        `Cannot use folder '${dir}' for prompt '${id}' as its metadata.json belongs to prompt '${record.id}': move that folder out of the batch folder, or give one of the prompts another id`;
      this._foreign.set(folder, message);
      throw new WriteError(message, false);
    }
    // The folder the record lives in, even when an earlier version named it differently.
    return { ...record, folder };
  }

  async moveAside(folder: string): Promise<string> {
    this._refuseForeign(folder);
    const stamp = this._now().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    // No prompt folder can start with "_" (see safeFolderName), so this never meets one.
    const base = `_previous/${folder.replaceAll("/", "--")}-${stamp}`;
    await refuseLinks(`${this.batchDir}/_previous`, this.batchDir);
    await Deno.mkdir(`${this.batchDir}/_previous`, { recursive: true });
    // Two --force runs within a second get the same stamp: the later one counts on.
    for (let n = 1;; n++) {
      const aside = n === 1 ? base : `${base}-${n}`;
      if (await lstatOrUndefined(`${this.batchDir}/${aside}`)) continue;
      try {
        await Deno.rename(`${this.batchDir}/${folder}`, `${this.batchDir}/${aside}`);
        forgetCheckedFolders(`${this.batchDir}/${folder}`);
        return aside;
      } catch (error) {
        // Taken between the check and the rename: try the next name.
        if (n < 100 && await lstatOrUndefined(`${this.batchDir}/${aside}`)) continue;
        throw error;
      }
    }
  }

  async start(spec: PromptSpec, record: PromptRecord): Promise<void> {
    const dir = this._dir(record);
    await refuseLinks(dir, this.batchDir);
    await Deno.mkdir(dir, { recursive: true });
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isSymlink) {
        throw new WriteError(
          `Cannot save into '${dir}' as '${dir}/${entry.name}' is a symbolic link: retake never writes through a link in a batch folder; remove the link and run again`,
          false,
        );
      }
      // A run stopped mid-write leaves a temp file behind; the real file is intact.
      if (entry.isFile && TEMP_NAME.test(entry.name)) await removeQuietly(`${dir}/${entry.name}`);
    }
    await writeJsonAtomic(`${dir}/prompt.json`, {
      id: spec.id,
      ...(spec.title !== undefined && { title: spec.title }),
      ...(spec.scene !== undefined && { scene: spec.scene }),
      ...(spec.mood !== undefined && { mood: spec.mood }),
      prompt: spec.prompt,
      // Flat, as a prompt file holds them: the file is itself a valid prompt entry.
      ...spec.settings,
      ...spec.extra,
    }, { within: this.batchDir });
    await writeJsonAtomic(`${dir}/metadata.json`, record, { within: this.batchDir });
  }

  async saveImage(
    record: PromptRecord,
    iteration: number,
    image: GeneratedImage,
  ): Promise<{ file: string; width: number; height: number }> {
    const file = `iteration-${iteration}.${image.format === "jpeg" ? "jpg" : "png"}`;
    let size = { width: image.width, height: image.height };
    await writeStreamAtomic(`${this._dir(record)}/${file}`, image.data, async (temp) => {
      size = await this._verify(temp, image.format);
    }, { within: this.batchDir });
    return { file, ...size };
  }

  async saveCritique(record: PromptRecord, iteration: number, critique: Critique): Promise<void> {
    await writeJsonAtomic(
      `${this._dir(record)}/iteration-${iteration}.critique.json`,
      critique,
      { within: this.batchDir },
    );
  }

  async saveBrief(record: PromptRecord, brief: Brief): Promise<void> {
    await writeBriefFile(this.batchDir, this._dir(record), brief);
  }

  async saveRefinedPrompt(record: PromptRecord, iteration: number, prompt: string): Promise<void> {
    await writeFileAtomic(
      `${this._dir(record)}/iteration-${iteration}.refined-prompt.txt`,
      prompt + "\n",
      { within: this.batchDir },
    );
  }

  /**
   * Copies `image` to `best.<ext>`, or the user's favourite (`record.chosen`) when it has one:
   * their pick overrides the critic's.
   */
  async saveBest(record: PromptRecord, image: string): Promise<string> {
    if (record.chosen !== undefined) image = shownIteration(record)?.image ?? image;
    // The name comes from a record, which a batch folder from elsewhere may have made up.
    if (!isRoundImageName(image)) {
      throw new WriteError(
        `Cannot save the best image of prompt '${record.id}' as its record names image '${image}', which is not a round's image (iteration-<n>.png or .jpg): the record was edited; run the prompt again with --force`,
        false,
      );
    }
    const file = `best${image.slice(image.lastIndexOf("."))}`;
    const target = `${this._dir(record)}/${file}`;
    await refuseLinks(target, this.batchDir);
    const temp = tempPathFor(target);
    try {
      // Never through a link: a round's image linked to a file elsewhere is not copied in.
      const source = await openInside(this.batchDir, `${record.folder}/${image}`);
      if (source === undefined) {
        throw new Deno.errors.NotFound(`'${this._dir(record)}/${image}' does not exist`);
      }
      const copy = await Deno.open(temp, { write: true, createNew: true });
      await source.stream().pipeTo(copy.writable);
      await Deno.rename(temp, target);
    } catch (error) {
      await removeQuietly(temp);
      throw describeWriteError(target, error);
    }
    return file;
  }

  /**
   * Makes `iteration` the prompt's favourite: `metadata.json` gets `chosen` and `best.<ext>`
   * becomes a copy of its image. Returns the record as saved.
   */
  async choose(record: PromptRecord, iteration: number): Promise<PromptRecord> {
    const it = record.iterations.find((r) => r.iteration === iteration);
    if (it?.image === undefined) {
      const saved = record.iterations.filter((r) => r.image !== undefined).map((r) => r.iteration);
      throw new RangeError(
        `Cannot choose iteration ${iteration} of prompt '${record.id}' as it has no saved image: saved iterations are ${
          saved.length > 0 ? saved.join(", ") : "none"
        }`,
      );
    }
    const chosen: PromptRecord = { ...record, chosen: iteration };
    chosen.bestImage = await this.saveBest(chosen, it.image);
    await this.saveRecord(chosen);
    return chosen;
  }

  async saveRecord(record: PromptRecord): Promise<void> {
    await writeJsonAtomic(`${this._dir(record)}/metadata.json`, record, {
      within: this.batchDir,
    });
  }

  imagePath(record: PromptRecord, file: string): string {
    return `${this.batchDir}/${record.folder}/${file}`;
  }

  /** The prompt's folder, for a write: never another id's. */
  private _dir(record: PromptRecord): string {
    this._refuseForeign(record.folder);
    return `${this.batchDir}/${record.folder}`;
  }

  private _refuseForeign(folder: string): void {
    const message = this._foreign.get(folder);
    if (message !== undefined) throw new WriteError(message, false);
  }

  /**
   * Moves the folder an earlier version made for this id (a 32-bit hash in its name) to the current
   * name, so an upgrade resumes its results instead of paying for them again.
   */
  private async _adoptLegacy(folder: string): Promise<void> {
    const known = this._ids.get(folder);
    if (known === undefined || known.legacy === folder) return;
    const target = `${this.batchDir}/${folder}`;
    const legacy = `${this.batchDir}/${known.legacy}`;
    if (await lstatOrUndefined(target)) return;
    if (!(await lstatOrUndefined(legacy))?.isDirectory) return;
    await refuseLinks(`${legacy}/metadata.json`, this.batchDir);
    const text = await readTextInside(
      this.batchDir,
      `${known.legacy}/metadata.json`,
      MAX_RECORD_BYTES,
    );
    let id: unknown;
    try {
      id = text === undefined ? undefined : JSON.parse(text)?.id;
    } catch {
      return;
    }
    if (id !== known.id) return;
    if (folder.includes("/")) {
      await refuseLinks(target, this.batchDir);
      await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    }
    await Deno.rename(legacy, target);
    if (known.legacy.includes("/")) {
      // The comparison's prompt folder, once its last model has moved.
      await Deno.remove(legacy.slice(0, legacy.lastIndexOf("/"))).catch(() => {});
    }
    getLogger(["retake", "artifacts"]).info(
      "Renamed {from} to {to}: folder names now carry a 64-bit hash",
      { from: legacy, to: target },
    );
  }
}
