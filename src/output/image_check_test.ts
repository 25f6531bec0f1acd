import assert from "node:assert/strict";
import sharp, { type Sharp } from "sharp";
import { verifyImageFile } from "./image_check.ts";
import { withTempDir } from "../_test_temp_dir.ts";

/** A noisy image, so the encoded file is large enough to cut short meaningfully. */
function pixels(width: number, height: number): Sharp {
  const data = new Uint8Array(width * height * 3).map((_, i) => (i * 7919) % 251);
  return sharp(data, { raw: { width, height, channels: 3 } });
}

Deno.test("verifyImageFile() returns the size of a PNG or JPEG of the expected type", async () => {
  await withTempDir(async (dir) => {
    await pixels(64, 48).png().toFile(`${dir}/a.png`);
    await pixels(40, 30).jpeg().toFile(`${dir}/b.jpg`);
    assert.deepEqual(await verifyImageFile(`${dir}/a.png`, "png"), { width: 64, height: 48 });
    assert.deepEqual(await verifyImageFile(`${dir}/b.jpg`, "jpeg"), { width: 40, height: 30 });
  });
});

Deno.test("verifyImageFile() rejects an image of the other type", async () => {
  await withTempDir(async (dir) => {
    await pixels(8, 8).jpeg().toFile(`${dir}/a.png`);
    await pixels(8, 8).webp().toFile(`${dir}/b.jpg`);
    await assert.rejects(
      verifyImageFile(`${dir}/a.png`, "png"),
      /expected a PNG image but the bytes are JPEG/,
    );
    await assert.rejects(
      verifyImageFile(`${dir}/b.jpg`, "jpeg"),
      /expected a JPEG image but the bytes are WEBP/,
    );
  });
});

Deno.test("verifyImageFile() says what a non-image file holds", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/page.png`, "<!doctype html><h1>Access denied</h1>");
    await Deno.writeFile(`${dir}/noise.png`, new Uint8Array(100).fill(0x9c));
    await Deno.writeFile(`${dir}/empty.png`, new Uint8Array());
    await assert.rejects(
      verifyImageFile(`${dir}/page.png`, "png"),
      /not an image \(they start with "<!doctype html><h1>Access denied<\/h1>"\)/,
    );
    await assert.rejects(verifyImageFile(`${dir}/noise.png`, "png"), /unrecognised binary data/);
    await assert.rejects(verifyImageFile(`${dir}/empty.png`, "png"), /file is empty/);
  });
});

Deno.test("verifyImageFile() rejects an image cut short", async () => {
  await withTempDir(async (dir) => {
    for (const format of ["png", "jpeg"] as const) {
      const whole = format === "png"
        ? await pixels(256, 256).png().toBuffer()
        : await pixels(256, 256).jpeg().toBuffer();
      const path = `${dir}/cut.${format}`;
      await Deno.writeFile(path, whole.subarray(0, Math.floor(whole.length / 2)));
      await assert.rejects(verifyImageFile(path, format), /does not decode/, format);
    }
  });
});
