/**
 * A small disk for the tests of what happens when it is full: a tmpfs mounted on a temporary
 * folder (root only), and a way to fill it.
 *
 * @module
 */

/** Runs `fn` on a tmpfs of `size` (e.g. `512k`); skipped (returns) without mount permission. */
export async function onSmallDisk(
  size: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "retake-small-disk-" });
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir],
    stderr: "null",
  }).output();
  try {
    if (mount.success) await fn(dir);
  } finally {
    if (mount.success) await new Deno.Command("umount", { args: [dir] }).output();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Fills the disk of `dir` until it takes not one byte more, as another program would. */
export async function fillDisk(dir: string): Promise<void> {
  const file = await Deno.open(`${dir}/filler`, { write: true, createNew: true });
  try {
    for (const size of [1 << 20, 4096, 1]) {
      const chunk = new Uint8Array(size).fill(0x5a);
      try {
        for (;;) await file.write(chunk);
      } catch (error) {
        if (!/No space left|os error 28/.test(String(error))) throw error;
      }
    }
  } finally {
    file.close();
  }
}
