import assert from "node:assert/strict";
import { openInside, readTextInside, UnsafeFileError } from "./safe_read.ts";
import { withTempDir } from "../_test_temp_dir.ts";

Deno.test("readTextInside() reads a file inside, and nothing through a link or out of the folder", async () => {
  const root = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/p1`);
    await Deno.writeTextFile(`${root}/p1/a.json`, "inside");
    await Deno.writeTextFile(`${outside}/secret`, "secret");
    await Deno.symlink(`${outside}/secret`, `${root}/p1/link.json`);
    await Deno.symlink(outside, `${root}/dir`);
    await Deno.symlink(`${root}/p1`, `${root}/inner`);
    assert.equal(await readTextInside(root, "p1/a.json", 100), "inside");
    assert.equal(await readTextInside(root, "p1/missing.json", 100), undefined);
    assert.equal(await readTextInside(root, "nothing/a.json", 100), undefined);
    assert.equal(await readTextInside(root, "p1/a.json/x", 100), undefined);
    for (
      const rel of [
        "p1/link.json",
        "dir/secret",
        "inner/a.json",
        "../x",
        "p1/../p1/a.json",
        "/etc/passwd",
      ]
    ) {
      await assert.rejects(readTextInside(root, rel, 100), UnsafeFileError, rel);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("readTextInside() refuses a pipe at once, and a file larger than asked for", async () => {
  await withTempDir(async (root) => {
    await new Deno.Command("mkfifo", { args: [`${root}/pipe`] }).output();
    await assert.rejects(readTextInside(root, "pipe", 100), /not a regular file/);
    await Deno.writeTextFile(`${root}/big`, "x".repeat(101));
    await assert.rejects(readTextInside(root, "big", 100), /more than 100 bytes/);
  });
});

Deno.test("openInside() streams a file from the handle it checked", async () => {
  await withTempDir(async (root) => {
    const bytes = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 251);
    await Deno.writeFile(`${root}/f.png`, bytes);
    const file = (await openInside(root, "f.png"))!;
    assert.equal(file.size, bytes.length);
    const read = new Uint8Array(await new Response(file.stream()).arrayBuffer());
    assert.deepEqual(read, bytes);
  });
});

Deno.test("openInside() never opens a link's target while a writer swaps file and link", async () => {
  const root = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/p`);
    await Deno.mkdir(`${root}/real`);
    await Deno.writeTextFile(`${outside}/f`, "outside");
    await Deno.writeTextFile(`${root}/real/f`, "inside");
    await Deno.writeTextFile(`${root}/p/f`, "inside");
    // Both the file and a folder on the way are swapped for links, for ever.
    const swapper = new Deno.Command("sh", {
      args: [
        "-c",
        `cd '${root}' && while [ ! -e stop ]; do ln -sfn '${outside}/f' p/l && mv -fT p/l p/f; cp real/f p/c && mv -fT p/c p/f; ln -sfn '${outside}' d.l && mv -fT d.l d; rm -f d; mkdir -p d.r && cp real/f d.r/f && mv -fT d.r d 2>/dev/null || rm -rf d.r; done`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    let outsideRead = 0;
    try {
      for (let i = 0; i < 3000; i++) {
        for (const rel of ["p/f", "d/f"]) {
          const text = await readTextInside(root, rel, 100).catch(() => undefined);
          if (text === "outside") outsideRead++;
        }
      }
    } finally {
      // Asked to stop, the loop ends after its current round, with every command it started
      // done: killed, a `cp` or `mv` it had started could still write into the folder as it
      // is removed.
      await Deno.writeTextFile(`${root}/stop`, "");
      await swapper.status;
    }
    assert.equal(outsideRead, 0);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
