/**
 * A temporary folder for a test, removed after it.
 *
 * @module
 */

/** Runs `fn` on a new temporary folder, removed after (made writable first, where a test locked it). */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "retake-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.chmod(dir, 0o755).catch(() => undefined);
    await Deno.remove(dir, { recursive: true });
  }
}
