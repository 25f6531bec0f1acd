/**
 * The names retake gives what it writes in a batch folder: a prompt's folder (the one mapping
 * from an id to its folder, {@linkcode promptFolder}), a batch's folder, a round's image and the
 * best round's copy. Names read back from a record are trusted only when they are one of these.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { CONTROL_CHARS } from "../util/terminal_text.ts";

/** Windows device names that cannot be folder names on any OS retake targets. */
const RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;
/**
 * The batch folder's own files and folders, which no prompt folder may be named: compared
 * without case, as macOS and Windows do. `_previous`, `_thumbs` and `.retake.lock` cannot be
 * prompt folders anyway, as a folder name never starts with `_` or `.`; they are listed so the
 * rule reads whole.
 */
export const BATCH_ENTRIES: ReadonlySet<string> = new Set([
  "run.json",
  "log.jsonl",
  "index.html",
  "comparison.json",
  "feedback.jsonl",
  "_previous",
  "_thumbs",
  "_batch_api",
  ".retake.lock",
  "eval",
  "eval.json",
  "eval.html",
]);
const MAX_NAME = 80;
// Names this version and the one before (8 hex digits) give an id that had to change.
const HASHED = /-[0-9a-f]{8}(?:[0-9a-f]{8})?$/;
/** The name the sink gives a round's image. */
const ROUND_IMAGE = /^iteration-[1-9][0-9]{0,5}\.(?:png|jpg)$/;
/** The name the sink gives the copy of the best round's image. */
const BEST_IMAGE = /^best\.(?:png|jpg)$/;

/**
 * Whether `name` is one a round's image is saved as (`iteration-<n>.png` or `.jpg`): a name
 * read from a record is used only then, so a record cannot point a reader anywhere else.
 */
export function isRoundImageName(name: unknown): name is string {
  return typeof name === "string" && ROUND_IMAGE.test(name);
}

/** Whether `name` is the best round's copy (`best.png` or `best.jpg`). */
export function isBestImageName(name: unknown): name is string {
  return typeof name === "string" && BEST_IMAGE.test(name);
}

/**
 * Maps a prompt id to a folder name that is safe on every file system: only `A-Za-z0-9._-`,
 * no leading dot or underscore, no reserved device name, none of the batch folder's own file
 * names, bounded length. An id that had to change gets a 64-bit hash of the original appended,
 * so two different ids never share a folder.
 */
export function safeFolderName(id: string): string {
  let name = id.normalize("NFKC").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "");
  name = name.replace(/[._]+$/, "");
  if (name === "" || RESERVED.test(name) || BATCH_ENTRIES.has(name.toLowerCase())) {
    name = `prompt_${name}`;
  }
  if (name.length > MAX_NAME) name = name.slice(0, MAX_NAME);
  // A safe id that already ends like `-<hash>` could equal another id's mapped name.
  return name === id && !HASHED.test(id) ? name : `${name}-${folderHash(id)}`;
}

/**
 * Batch folder name for `--name` or a prompt file's name: kept as given when it is one plain
 * folder name (spaces are fine), else mapped like an id, so it never leaves `--out`.
 */
export function safeBatchName(name: string): string {
  const plain = name.length <= MAX_NAME && !/[\\/:*?"<>|]/.test(name) &&
    !new RegExp(CONTROL_CHARS.source).test(name) && !/^[.\s]|[.\s]$/.test(name) &&
    !RESERVED.test(name);
  return plain ? name : safeFolderName(name);
}

/** 64 bits of SHA-256 as 16 hex digits: no two ids of any real batch share a folder. */
export function folderHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** The folder name earlier versions gave an id (a 32-bit hash), so its results are found again. */
export function legacyFolderName(id: string): string {
  let name = id.normalize("NFKC").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "");
  name = name.replace(/[._]+$/, "");
  if (name === "" || RESERVED.test(name)) name = `prompt_${name}`;
  if (name.length > MAX_NAME) name = name.slice(0, MAX_NAME);
  if (name === id && !/-[0-9a-f]{8}$/.test(id)) return name;
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(id)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `${name}-${hash.toString(16).padStart(8, "0")}`;
}

/**
 * The folder of prompt `id` in its batch folder, relative to it: `<safe id>`, or
 * `<safe id>/<safe model>` when the batch compares models (`subfolder`).
 *
 * @example
 * ```ts
 * import { promptFolder } from "./folder_names.ts";
 * if (promptFolder("red-kite") !== "red-kite") throw new Error("a plain id is its own folder");
 * if (!promptFolder("a/b").startsWith("a_b-")) throw new Error("an id that changed is hashed");
 * ```
 */
export function promptFolder(id: string, subfolder?: string): string {
  const folder = safeFolderName(id);
  return subfolder === undefined ? folder : `${folder}/${safeFolderName(subfolder)}`;
}
