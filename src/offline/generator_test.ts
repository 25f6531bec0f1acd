import assert from "node:assert/strict";
import sharp from "sharp";
import { ProviderError } from "../errors.ts";
import { createLocalGenerator, LOCAL_MODEL } from "./generator.ts";
import type { GenerateRequest } from "../providers/provider.ts";

function request(prompt: string, overrides: Partial<GenerateRequest> = {}): GenerateRequest {
  return {
    prompt,
    spec: { id: "t", prompt, extra: {} },
    iteration: 1,
    width: 256,
    height: 192,
    seed: 42,
    model: LOCAL_MODEL,
    format: "png",
    signal: new AbortController().signal,
    ...overrides,
  };
}

async function bytes(prompt: string, overrides: Partial<GenerateRequest> = {}) {
  const image = await createLocalGenerator().generate(request(prompt, overrides));
  assert.ok(image.data instanceof Uint8Array);
  return image.data as Uint8Array;
}

async function meanLuma(data: Uint8Array): Promise<number> {
  const { data: raw, info } = await sharp(data).raw().toBuffer({ resolveWithObject: true });
  let sum = 0;
  for (let i = 0; i < raw.length; i += info.channels) {
    sum += 0.2126 * raw[i]! + 0.7152 * raw[i + 1]! + 0.0722 * raw[i + 2]!;
  }
  return sum / (info.width * info.height) / 255;
}

Deno.test("localGenerator() gives identical bytes for the same prompt and seed", async () => {
  const prompt = "a lighthouse on a rocky coast at sunset, small boats, crashing white waves";
  assert.deepEqual(await bytes(prompt), await bytes(prompt));
});

Deno.test("localGenerator() gives different images for different prompts and seeds", async () => {
  const lake = await bytes("a calm blue lake under snowy mountains at noon");
  const city = await bytes("a rainy city street at night with neon pink signs");
  assert.notDeepEqual(lake, city);
  assert.notDeepEqual(
    lake,
    await bytes("a calm blue lake under snowy mountains at noon", { seed: 7 }),
  );
  // Prompts with no scene words still differ.
  assert.notDeepEqual(await bytes("lorem ipsum"), await bytes("dolor sit amet"));
});

Deno.test("localGenerator() renders night darker than noon", async () => {
  const night = await meanLuma(await bytes("a quiet lake at midnight"));
  const noon = await meanLuma(await bytes("a quiet lake at bright noon"));
  assert.ok(night < 0.25, `night mean luma ${night}`);
  assert.ok(noon > 0.5, `noon mean luma ${noon}`);
});

Deno.test("localGenerator() renders an emphasised colour over more of the image", async () => {
  const share = async (prompt: string) => {
    const { data, info } = await sharp(await bytes(prompt)).raw().toBuffer({
      resolveWithObject: true,
    });
    let orange = 0;
    for (let i = 0; i < data.length; i += info.channels) {
      const [r, g, b] = [data[i]!, data[i + 1]!, data[i + 2]!];
      if (r > 200 && g > 90 && g < 175 && b < 110) orange++;
    }
    return orange / (info.width * info.height);
  };
  const plain = await share("orange sand dunes under a clear sky");
  const vivid = await share("vivid saturated orange sand dunes under a clear sky");
  assert.ok(vivid > plain, `vivid ${vivid} vs plain ${plain}`);
});

Deno.test("localGenerator() returns the requested size and format at no cost", async () => {
  const image = await createLocalGenerator().generate(
    request("a forest path at dawn", { width: 320, height: 200, format: "jpeg", seed: 3 }),
  );
  const data = image.data as Uint8Array;
  assert.deepEqual([...data.slice(0, 3)], [0xff, 0xd8, 0xff]);
  const meta = await sharp(data).metadata();
  assert.equal(meta.width, 320);
  assert.equal(meta.height, 200);
  assert.equal(image.format, "jpeg");
  assert.equal(image.costUsd, 0);
  assert.equal(image.seed, 3);
  assert.equal(image.model, LOCAL_MODEL);
});

Deno.test("localGenerator() renders 1024×768 in well under a second", async () => {
  const prompt = "heavy rain on a city street at night, neon signs, falling snow, mist";
  const size = { width: 1024, height: 768 };
  // The first call pays for loading libvips and compiling; time the second.
  await bytes(prompt, size);
  const started = performance.now();
  await bytes(prompt, size);
  const ms = performance.now() - started;
  // Generous against a loaded test machine; typically 150–250 ms.
  assert.ok(ms < 2000, `took ${Math.round(ms)} ms`);
});

Deno.test("localGenerator() throws when the signal is already aborted", async () => {
  const controller = new AbortController();
  controller.abort(new DOMException("stop", "AbortError"));
  await assert.rejects(
    createLocalGenerator().generate(request("a lake", { signal: controller.signal })),
    (error: unknown) => error instanceof DOMException && error.name === "AbortError",
  );
});

Deno.test("localGenerator() rejects a size it cannot render", async () => {
  await assert.rejects(
    createLocalGenerator().generate(request("a lake", { width: 0 })),
    (error: unknown) =>
      error instanceof ProviderError && !error.retryable && /'width'/.test(error.message),
  );
});
