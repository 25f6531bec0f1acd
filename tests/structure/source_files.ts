// The project's own TypeScript: src/ and main.ts, without tests, test helpers or fixtures.
// Both structure figures (import cycles, function lengths) measure exactly this set.

/** Is this a test file or a test-only helper (`*_test.ts`, `_test_*.ts`)? */
export function isTestFile(path: string): boolean {
  const name = path.slice(path.lastIndexOf("/") + 1);
  return name.endsWith("_test.ts") || name.startsWith("_test_");
}

/** Every `.ts` file of the library and its command line, relative to `root`, sorted. */
export async function sourceFiles(root: string): Promise<string[]> {
  const found: string[] = ["main.ts"];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(`${root}/${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && path.endsWith(".ts") && !isTestFile(path)) found.push(path);
    }
  }
  await walk("src");
  if (await exists(`${root}/mod.ts`)) found.push("mod.ts");
  return found.sort();
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
