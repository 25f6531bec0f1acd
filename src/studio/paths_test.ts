import assert from "node:assert/strict";
import { TINY_PNG } from "./_test_batch.ts";
import { batchPath, decodeSegments, isPlainName, openImage } from "./paths.ts";

/** The opened image's path and type, closed again. */
async function imagePath(dir: string, segments: string[]) {
  const opened = await openImage(dir, segments);
  await opened?.file.close();
  return opened && { path: opened.file.path, type: opened.type };
}

Deno.test("isPlainName() takes one file name, never a way up or across", () => {
  for (const name of ["a.png", "iteration-1.png", "_thumbs", ".hidden"]) {
    assert.equal(isPlainName(name), true, name);
  }
  for (const name of ["", ".", "..", "a/b", "a\\b", "a\0b"]) {
    assert.equal(isPlainName(name), false, JSON.stringify(name));
  }
});

Deno.test("decodeSegments() decodes each segment, so an encoded slash is seen", () => {
  assert.deepEqual(decodeSegments("a/b%20c.png"), ["a", "b c.png"]);
  assert.deepEqual(decodeSegments("..%2Fx.png"), ["../x.png"]);
  assert.equal(decodeSegments("%E0%A4%A"), undefined);
});

Deno.test("openImage() serves images inside the batch folder, by type, never through a link", async () => {
  const out = await Deno.makeTempDir();
  try {
    const dir = `${out}/batch`;
    await Deno.mkdir(`${dir}/p1`, { recursive: true });
    await Deno.writeTextFile(`${dir}/run.json`, "{}");
    await Deno.writeFile(`${dir}/p1/iteration-1.png`, TINY_PNG);
    await Deno.writeFile(`${dir}/p1/photo.JPG`, TINY_PNG);
    await Deno.writeTextFile(`${dir}/p1/metadata.json`, "{}");
    await Deno.writeFile(`${out}/secret.png`, TINY_PNG);
    await Deno.symlink(`${out}/secret.png`, `${dir}/p1/link.png`);
    await Deno.symlink(out, `${dir}/up`);

    assert.equal(await batchPath(out, "batch"), dir);
    assert.equal(await batchPath(out, ".."), undefined);
    assert.equal(await batchPath(out, "p1"), undefined, "no run.json: not a batch");
    assert.deepEqual(await imagePath(dir, ["p1", "iteration-1.png"]), {
      path: `${dir}/p1/iteration-1.png`,
      type: "image/png",
    });
    assert.equal((await imagePath(dir, ["p1", "photo.JPG"]))?.type, "image/jpeg");
    assert.equal(await imagePath(dir, ["p1", "metadata.json"]), undefined, "not an image");
    assert.equal(await imagePath(dir, ["..", "secret.png"]), undefined);
    assert.equal(await imagePath(dir, ["p1", "link.png"]), undefined, "a link to a file");
    assert.equal(await imagePath(dir, ["up", "secret.png"]), undefined, "a link to a folder");
    assert.equal(await imagePath(dir, ["p1/../../secret.png"]), undefined);
    assert.equal(await imagePath(dir, ["p1", "missing.png"]), undefined);
    await Deno.mkdir(`${dir}/p2`);
    await new Deno.Command("mkfifo", { args: [`${dir}/p2/iteration-1.png`] }).output();
    assert.equal(await imagePath(dir, ["p2", "iteration-1.png"]), undefined, "a pipe");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
