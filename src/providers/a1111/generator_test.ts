import assert from "node:assert/strict";
import sharp from "sharp";
import { ProviderError } from "../../errors.ts";
import { type A1111StandIn, startA1111StandIn } from "../../../tests/a1111_standin.ts";
import { createA1111Generator, LOADED_MODEL } from "./generator.ts";
import { bytesOf, generateRequests } from "../_test_generate.ts";
import type { PromptSpec } from "../../prompts/mod.ts";

const KITE: PromptSpec = { id: "kite", prompt: "A red kite over a windy beach", extra: {} };

const request = generateRequests(KITE, {
  width: 512,
  height: 384,
  seed: 31337,
  model: LOADED_MODEL,
});

async function withStandIn(
  body: (standIn: A1111StandIn) => Promise<void>,
  options: Parameters<typeof startA1111StandIn>[0] = {},
): Promise<void> {
  const standIn = await startA1111StandIn(options);
  try {
    await body(standIn);
  } finally {
    await standIn.close();
  }
}

const failureOf = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => e);

Deno.test("a1111 generate() sends txt2img with the prompt's settings and a task id it recorded first", () =>
  withStandIn(async (standIn) => {
    const generator = createA1111Generator({ baseUrl: standIn.url, sampler: "DPM++ 2M" });
    const recorded: Array<{ id: string; seenThen: number }> = [];
    const image = await generator.generate(request({
      negativePrompt: "blurry",
      steps: 9,
      model: "v1-5-pruned-emaonly",
      onSubmitting: (id) => {
        recorded.push({ id, seenThen: standIn.requests.length });
        return Promise.resolve();
      },
    }));
    const [sent] = standIn.requests;
    assert.equal(sent!.endpoint, "txt2img");
    assert.deepEqual(
      [sent!.body.prompt, sent!.body.negative_prompt, sent!.body.seed, sent!.body.steps],
      ["A red kite over a windy beach", "blurry", 31337, 9],
    );
    assert.deepEqual([sent!.body.width, sent!.body.height], [512, 384]);
    assert.equal(sent!.body.sampler_name, "DPM++ 2M");
    assert.deepEqual(sent!.body.override_settings, { sd_model_checkpoint: "v1-5-pruned-emaonly" });
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0]!.seenThen, 0, "recorded before the server had it");
    assert.equal(sent!.body.force_task_id, recorded[0]!.id);
    assert.equal(image.requestId, recorded[0]!.id);
    assert.equal(image.seed, 31337);
    assert.equal(image.modelVersion, "v1-5-pruned-emaonly");
    assert.equal(image.costUsd, 0);
    assert.ok(image.inferenceMs !== undefined);
    const meta = await sharp(await bytesOf(image)).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", 512, 384]);
    // The loaded checkpoint: no override.
    await generator.generate(request());
    assert.equal(standIn.requests[1]!.body.override_settings, undefined);
  }));

Deno.test("a1111 sends --api-auth as basic auth, and a wrong one stops the run without showing it", () =>
  withStandIn(async (standIn) => {
    const signal = new AbortController().signal;
    const good = createA1111Generator({ baseUrl: standIn.url, auth: "painter:s3cret-pass" });
    await good.check!(signal);
    await good.generate(request());
    assert.equal(
      standIn.requests[0]!.authorization,
      `Basic ${btoa("painter:s3cret-pass")}`,
    );
    const wrong = createA1111Generator({ baseUrl: standIn.url, auth: "painter:wrong-pass-99" });
    const error = await failureOf(wrong.check!(signal));
    assert.ok(error instanceof ProviderError && error.fatal, String(error));
    assert.match(error.message, /refused the credentials \(HTTP 401.*check --api-auth/);
    assert.ok(!error.message.includes("wrong-pass-99"));
    const none = await failureOf(
      createA1111Generator({ baseUrl: standIn.url }).generate(request()),
    );
    assert.ok(none instanceof ProviderError && none.fatal && none.status === 401);
    assert.equal(standIn.requests.length, 1);
  }, { auth: "painter:s3cret-pass" }));

Deno.test("a1111 generate() edits with img2img: the source image and the denoising strength", () =>
  withStandIn(async (standIn) => {
    const dir = await Deno.makeTempDir();
    try {
      const source = `${dir}/iteration-1.png`;
      await Deno.writeFile(
        source,
        await sharp({ create: { width: 300, height: 200, channels: 3, background: "#08f" } })
          .png().toBuffer(),
      );
      const generator = createA1111Generator({ baseUrl: standIn.url, denoisingStrength: 0.4 });
      assert.equal(generator.editModel!(LOADED_MODEL), LOADED_MODEL);
      const image = await generator.generate(request({
        edit: { imagePath: source, instruction: "make the kite blue" },
      }));
      const [sent] = standIn.requests;
      assert.equal(sent!.endpoint, "img2img");
      assert.equal(sent!.body.denoising_strength, 0.4);
      assert.deepEqual(
        new Uint8Array(
          Uint8Array.from(atob((sent!.body.init_images as string[])[0]!), (c) => c.charCodeAt(0)),
        ),
        await Deno.readFile(source),
      );
      assert.deepEqual([image.width, image.height], [300, 200]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }));

Deno.test("a1111 generate() fails a prompt the server could not draw, and retries a cut answer", () =>
  withStandIn(async (standIn) => {
    const generator = createA1111Generator({ baseUrl: standIn.url });
    const oom = await failureOf(generator.generate(request({ prompt: "A castle [a1111:oom]" })));
    assert.ok(oom instanceof ProviderError, String(oom));
    assert.equal(oom.retryable, false);
    assert.equal(oom.fatal, false);
    assert.match(oom.message, /HTTP 500: OutOfMemoryError: CUDA out of memory/);
    assert.match(oom.requestId ?? "", /^retake-/);
    const cut = await failureOf(
      generator.generate(request({ prompt: "A mill [a1111:drop-once]" })),
    );
    assert.ok(cut instanceof ProviderError && cut.retryable, String(cut));
  }));

Deno.test("a1111 generate() interrupts its image on a hard stop and past its deadline", () =>
  withStandIn(async (standIn) => {
    const generator = createA1111Generator({ baseUrl: standIn.url, timeoutMs: 150 });
    const late = await failureOf(generator.generate(request({ prompt: "Slow [a1111:hang]" })));
    assert.ok(late instanceof ProviderError && late.retryable, String(late));
    assert.match(late.message, /longer than 150 ms \(--timeout\); it was interrupted/);
    assert.equal(standIn.calls.filter((c) => c === "POST /sdapi/v1/interrupt").length, 1);

    const patient = createA1111Generator({ baseUrl: standIn.url });
    const stop = new AbortController();
    standIn.hold();
    const result = failureOf(patient.generate(request({ signal: stop.signal })));
    await standIn.started(2);
    stop.abort(new DOMException("hard stop", "AbortError"));
    const error = await result;
    assert.equal((error as Error).name, "AbortError");
    assert.equal(standIn.calls.filter((c) => c === "POST /sdapi/v1/interrupt").length, 2);
  }));

Deno.test("a1111 generate() stops the image a killed run left drawing before it draws anew", () =>
  withStandIn(async (standIn) => {
    standIn.hold();
    const killed = createA1111Generator({ baseUrl: standIn.url });
    let orphan = "";
    const abandoned = failureOf(killed.generate(request({
      onSubmitting: (id) => (orphan = id, Promise.resolve()),
    })));
    await standIn.started(1);
    // The next run: it finds the orphan running, interrupts it, and draws the image again.
    const generator = createA1111Generator({ baseUrl: standIn.url });
    const next = generator.generate(request({ recoverRequestId: orphan }));
    await standIn.called(/POST \/sdapi\/v1\/interrupt/);
    standIn.release();
    const image = await next;
    assert.ok(standIn.calls.indexOf("POST /sdapi/v1/interrupt") >= 0);
    assert.ok(
      standIn.calls.indexOf("POST /sdapi/v1/interrupt") <
        standIn.calls.lastIndexOf("POST /sdapi/v1/txt2img"),
      "interrupted before the new request",
    );
    assert.notEqual(image.requestId, orphan);
    await abandoned;
  }));

Deno.test("a1111 check() stops the run for an unknown checkpoint and for a server that is not there", async () => {
  await withStandIn(async (standIn) => {
    const signal = new AbortController().signal;
    await createA1111Generator({
      baseUrl: standIn.url,
      models: ["v1-5-pruned-emaonly.safetensors"],
    })
      .check!(signal);
    const error = await failureOf(
      createA1111Generator({ baseUrl: standIn.url, models: ["sdxl-turbo"] }).check!(signal),
    );
    assert.ok(error instanceof ProviderError && error.fatal, String(error));
    assert.match(
      error.message,
      /no checkpoint 'sdxl-turbo' \(--model\): it has 'v1-5-pruned-emaonly/,
    );
  });
  const down = await failureOf(
    createA1111Generator({ baseUrl: "http://127.0.0.1:9" }).check!(new AbortController().signal),
  );
  assert.ok(down instanceof ProviderError && down.fatal, String(down));
  assert.match(down.message, /Cannot reach AUTOMATIC1111 at http:\/\/127.0.0.1:9 .*A1111_BASE_URL/);
});
