/**
 * A file's information, or undefined where there is no file: the one question every writer asks
 * before it creates a file or picks a free name.
 *
 * @module
 */

/** `Deno.lstat(path)` (the link itself, not its target), or undefined when nothing is there. */
export async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  return await _orUndefined(Deno.lstat(path));
}

/** `Deno.stat(path)` (following links), or undefined when nothing is there. */
export async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  return await _orUndefined(Deno.stat(path));
}

async function _orUndefined(info: Promise<Deno.FileInfo>): Promise<Deno.FileInfo | undefined> {
  try {
    return await info;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
