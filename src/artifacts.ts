/**
 * Output layout and atomic writes: every artifact is written to a temporary file in the same
 * folder and renamed into place, so a crash leaves either the old file or the new one.
 *
 * @module
 */
import type { Critique } from "./critique.ts";
import { InputError } from "./errors.ts";
import type { PromptSink } from "./pipeline.ts";
import type { PromptSpec } from "./prompts.ts";
import type { GeneratedImage, ImageFormat } from "./providers/provider.ts";
import type { PromptRecord } from "./record.ts";

/** Windows device names that cannot be folder names on any OS retake targets. */
const RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;
const MAX_NAME = 80;
const HASHED = /-[0-9a-f]{8}$/;

/**
 * Maps a prompt id to a folder name that is safe on every file system: only `A-Za-z0-9._-`,
 * no leading dot, no reserved device name, bounded length. An id that had to change gets a
 * short hash of the original appended, so two different ids never share a folder.
 */
export function safeFolderName(id: string): string {
  let name = id.normalize("NFKC").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "");
  name = name.replace(/[._]+$/, "");
  if (name === "" || RESERVED.test(name)) name = `prompt_${name}`;
  if (name.length > MAX_NAME) name = name.slice(0, MAX_NAME);
  // A safe id that already ends like `-<hash>` could equal another id's mapped name.
  return name === id && !HASHED.test(id) ? name : `${name}-${shortHash(id)}`;
}

/** FNV-1a, 32 bit, as 8 hex digits: enough to keep mapped names apart. */
export function shortHash(text: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

/** Writes `data` to `path` atomically. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const temp = tempPathFor(path);
  try {
    if (typeof data === "string") await Deno.writeTextFile(temp, data);
    else await Deno.writeFile(temp, data);
    await Deno.rename(temp, path);
  } catch (error) {
    await removeQuietly(temp);
    throw describeWriteError(path, error);
  }
}

/** Writes a JSON document atomically, pretty-printed for people. */
export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/**
 * Streams `data` into a temporary file, lets `verify` inspect the complete file, then renames
 * it into place. A failed verification leaves nothing behind.
 */
export async function writeStreamAtomic(
  path: string,
  data: Uint8Array | ReadableStream<Uint8Array>,
  verify?: (tempPath: string) => Promise<void>,
): Promise<void> {
  const temp = tempPathFor(path);
  try {
    if (data instanceof Uint8Array) {
      await Deno.writeFile(temp, data);
    } else {
      const file = await Deno.open(temp, { write: true, create: true, truncate: true });
      await data.pipeTo(file.writable);
    }
    await verify?.(temp);
    await Deno.rename(temp, path);
  } catch (error) {
    await removeQuietly(temp);
    throw describeWriteError(path, error);
  }
}

/** Creates the output folder and checks it can be written, before any money is spent. */
export async function ensureWritableDir(path: string): Promise<void> {
  try {
    await Deno.mkdir(path, { recursive: true });
    const probe = `${path}/.retake-write-check-${crypto.randomUUID()}`;
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (error) {
    throw new InputError(
      `Cannot write to output folder '${path}': ${
        (error as Error).message
      }; choose another with --out`,
      { cause: error },
    );
  }
}

function tempPathFor(path: string): string {
  const slash = path.lastIndexOf("/");
  const dir = slash === -1 ? "." : path.slice(0, slash);
  const base = path.slice(slash + 1);
  return `${dir}/.${base}.${crypto.randomUUID().slice(0, 8)}.tmp`;
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    // A temp file that was never created is the expected case; anything else is worth surfacing.
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Saving an artifact failed; `fatal` when no later write can succeed either (disk full). */
export class WriteError extends Error {
  /** Whether the run must stop: every further paid call would be wasted. */
  readonly fatal: boolean;
  constructor(message: string, fatal: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = "WriteError";
    this.fatal = fatal;
  }
}

function describeWriteError(path: string, error: unknown): Error {
  if (error instanceof WriteError) return error;
  if (error instanceof Error && error.message.startsWith("Cannot save")) return error;
  const diskFull = /No space left|ENOSPC|os error 28|quota exceeded|os error 122/i.test(
    String((error as Error)?.message),
  );
  const reason = error instanceof Deno.errors.PermissionDenied
    ? "permission denied"
    : diskFull
    ? "the disk is full; free some space and run again to resume"
    : (error as Error)?.message ?? String(error);
  return new WriteError(`Cannot save '${path}': ${reason}`, diskFull, { cause: error });
}

/** Checks a complete image file and returns its real size; throws when it is not an image. */
export type ImageVerifier = (
  path: string,
  format: ImageFormat,
) => Promise<{ width: number; height: number }>;

/**
 * Saves each prompt's artifacts under `<batchDir>/<safe id>/`, every file atomically:
 * `prompt.json`, `iteration-N.<ext>`, `iteration-N.critique.json`,
 * `iteration-N.refined-prompt.txt`, `metadata.json`.
 */
export class FolderSink implements PromptSink {
  readonly batchDir: string;
  readonly #verify: ImageVerifier;
  readonly #subfolder: string | undefined;

  /** With `subfolder` (a model id, in comparisons) each prompt's files go one level deeper. */
  constructor(batchDir: string, verify: ImageVerifier, subfolder?: string) {
    this.batchDir = batchDir;
    this.#verify = verify;
    this.#subfolder = subfolder === undefined ? undefined : safeFolderName(subfolder);
  }

  folderFor(spec: PromptSpec): string {
    const folder = safeFolderName(spec.id);
    return this.#subfolder === undefined ? folder : `${folder}/${this.#subfolder}`;
  }

  async load(folder: string): Promise<PromptRecord | undefined> {
    let text: string;
    try {
      text = await Deno.readTextFile(`${this.batchDir}/${folder}/metadata.json`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    try {
      return JSON.parse(text) as PromptRecord;
    } catch {
      // Writes are atomic, so this is a hand-edited file: treat it as a foreign attempt.
      return { inputHash: "unreadable" } as PromptRecord;
    }
  }

  async moveAside(folder: string): Promise<string> {
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    // No prompt folder can start with "_" (see safeFolderName), so this never collides.
    const aside = `_previous/${folder.replaceAll("/", "--")}-${stamp}`;
    await Deno.mkdir(`${this.batchDir}/_previous`, { recursive: true });
    await Deno.rename(`${this.batchDir}/${folder}`, `${this.batchDir}/${aside}`);
    return aside;
  }

  async start(spec: PromptSpec, record: PromptRecord): Promise<void> {
    const dir = this.#dir(record);
    await Deno.mkdir(dir, { recursive: true });
    // A run stopped mid-write leaves a temp file behind; the real file is intact.
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.startsWith(".") && entry.name.endsWith(".tmp")) {
        await removeQuietly(`${dir}/${entry.name}`);
      }
    }
    await writeJsonAtomic(`${dir}/prompt.json`, {
      id: spec.id,
      ...(spec.title !== undefined && { title: spec.title }),
      ...(spec.scene !== undefined && { scene: spec.scene }),
      ...(spec.mood !== undefined && { mood: spec.mood }),
      prompt: spec.prompt,
      ...spec.extra,
    });
    await writeJsonAtomic(`${dir}/metadata.json`, record);
  }

  async saveImage(
    record: PromptRecord,
    iteration: number,
    image: GeneratedImage,
  ): Promise<{ file: string; width: number; height: number }> {
    const file = `iteration-${iteration}.${image.format === "jpeg" ? "jpg" : "png"}`;
    let size = { width: image.width, height: image.height };
    await writeStreamAtomic(`${this.#dir(record)}/${file}`, image.data, async (temp) => {
      size = await this.#verify(temp, image.format);
    });
    return { file, ...size };
  }

  imagePath(record: PromptRecord, file: string): string {
    return `${this.#dir(record)}/${file}`;
  }

  saveCritique(record: PromptRecord, iteration: number, critique: Critique): Promise<void> {
    return writeJsonAtomic(`${this.#dir(record)}/iteration-${iteration}.critique.json`, critique);
  }

  saveRefinedPrompt(record: PromptRecord, iteration: number, prompt: string): Promise<void> {
    return writeFileAtomic(
      `${this.#dir(record)}/iteration-${iteration}.refined-prompt.txt`,
      prompt + "\n",
    );
  }

  async saveBest(record: PromptRecord, image: string): Promise<string> {
    const file = `best${image.slice(image.lastIndexOf("."))}`;
    const target = `${this.#dir(record)}/${file}`;
    const temp = tempPathFor(target);
    try {
      await Deno.copyFile(`${this.#dir(record)}/${image}`, temp);
      await Deno.rename(temp, target);
    } catch (error) {
      await removeQuietly(temp);
      throw describeWriteError(target, error);
    }
    return file;
  }

  saveRecord(record: PromptRecord): Promise<void> {
    return writeJsonAtomic(`${this.#dir(record)}/metadata.json`, record);
  }

  #dir(record: PromptRecord): string {
    return `${this.batchDir}/${record.folder}`;
  }
}
