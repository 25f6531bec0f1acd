import assert from "node:assert/strict";
import sharp from "sharp";
import { ProviderError } from "../../errors.ts";
import type { GenerateRequest } from "../provider.ts";
import { type ComfyStandIn, startComfyStandIn } from "../../../tests/comfyui_standin.ts";
import { createComfyGenerator, WORKFLOW_MODEL } from "./generator.ts";
import { readWorkflow, type Workflow, type WorkflowMapping } from "./workflow.ts";
import { bytesOf, generateRequests } from "../_test_generate.ts";
import type { PromptSpec } from "../../prompts/mod.ts";

const DATA = new URL("../../../tests/data/comfyui/", import.meta.url).pathname;

const KITE: PromptSpec = { id: "kite", prompt: "A red kite over a windy beach", extra: {} };

const request = generateRequests(KITE, {
  width: 640,
  height: 384,
  seed: 424242,
  model: WORKFLOW_MODEL,
});

async function withStandIn(
  body: (standIn: ComfyStandIn, flux: Workflow) => Promise<void>,
  options: Parameters<typeof startComfyStandIn>[0] = {},
): Promise<void> {
  const standIn = await startComfyStandIn(options);
  try {
    await body(standIn, await readWorkflow(`${DATA}flux.json`));
  } finally {
    await standIn.close();
  }
}

/** A generation that is running on the stand-in, and how to reach it. */
async function running(
  standIn: ComfyStandIn,
  generator: ReturnType<typeof createComfyGenerator>,
  overrides: Partial<GenerateRequest> = {},
) {
  const before = standIn.submits.length;
  const result = generator.generate(request(overrides)).then(
    (image) => ({ image }),
    (error: unknown) => ({ error }),
  );
  await standIn.submitted(before + 1);
  return { result, submit: standIn.submits[before]! };
}

Deno.test("comfyui generate() records its own prompt_id before the submit, follows the socket and fetches the saved image", () =>
  withStandIn(async (standIn, flux) => {
    const generator = createComfyGenerator({ workflow: flux, baseUrl: standIn.url });
    const recorded: Array<{ id: string; submitsThen: number }> = [];
    const accepted: string[] = [];
    const image = await generator.generate(request({
      onSubmitting: (id) => {
        recorded.push({ id, submitsThen: standIn.submits.length });
        return Promise.resolve();
      },
      onAccepted: (id) => accepted.push(id),
    }));
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0]!.submitsThen, 0, "recorded before the server had it");
    const submit = standIn.submits[0]!;
    assert.equal(submit.askedId, recorded[0]!.id);
    assert.equal(submit.promptId, recorded[0]!.id);
    assert.deepEqual(accepted, [submit.promptId]);
    assert.match(submit.clientId ?? "", /^retake-/);
    // The placeholders, filled: the prompt's text, the seed as a number, the size.
    assert.equal(submit.graph["6"]!.inputs.text, "A red kite over a windy beach");
    assert.equal(submit.graph["25"]!.inputs.noise_seed, 424242);
    assert.equal(submit.graph["27"]!.inputs.width, 640);
    assert.equal(image.requestId, submit.promptId);
    assert.equal(image.seed, 424242);
    assert.equal(image.costUsd, 0);
    assert.equal(image.costUnknown, undefined);
    assert.equal(image.modelVersion, "flux1-dev.safetensors");
    assert.equal(image.model, WORKFLOW_MODEL);
    assert.ok(image.inferenceMs !== undefined && image.inferenceMs >= 0, "GPU time recorded");
    const meta = await sharp(await bytesOf(image)).metadata();
    assert.deepEqual([meta.width, meta.height, image.width, image.height], [640, 384, 640, 384]);
    assert.ok(standIn.calls.some((c) => c.startsWith("GET /view")));
  }));

Deno.test("comfyui generate() fills a mapped workflow as ComfyUI exported it; a value the prompt lacks keeps the workflow's own", () =>
  withStandIn(async (standIn) => {
    const mapping: WorkflowMapping = {
      prompt: "6.text",
      negativePrompt: "7.text",
      seed: "3.seed",
      steps: "3.steps",
      width: "5.width",
      height: "5.height",
    };
    const workflow = await readWorkflow(`${DATA}sdxl.json`, mapping);
    const generator = createComfyGenerator({ workflow, baseUrl: standIn.url });
    await generator.generate(request({ negativePrompt: "blurry" }));
    const graph = standIn.submits[0]!.graph;
    assert.equal(graph["6"]!.inputs.text, "A red kite over a windy beach");
    assert.equal(graph["7"]!.inputs.text, "blurry");
    assert.equal(graph["3"]!.inputs.seed, 424242);
    assert.equal(graph["3"]!.inputs.steps, 20, "no steps asked: the workflow's own");
    await generator.generate(request({ steps: 7 }));
    assert.equal(standIn.submits[1]!.graph["3"]!.inputs.steps, 7);
    assert.equal(standIn.submits[1]!.graph["7"]!.inputs.text, "bad hands");
  }));

Deno.test("comfyui generate() finishes by polling /history when the server drops the WebSocket", () =>
  withStandIn(async (standIn, flux) => {
    const generator = createComfyGenerator({
      workflow: flux,
      baseUrl: standIn.url,
      pollIntervalMs: 5,
    });
    const image = await generator.generate(
      request({ prompt: "A lighthouse in fog [comfyui:drop-ws]" }),
    );
    assert.equal(image.requestId, standIn.submits[0]!.promptId);
    assert.equal(standIn.submits.length, 1, "one prompt, not a second");
    assert.ok(
      standIn.calls.filter((c) => c.startsWith("GET /history/")).length >= 1,
      "polled the history",
    );
  }, { stepMs: 5 }));

Deno.test("comfyui generate() fails a prompt the server could not run, naming the node and the exception", () =>
  withStandIn(async (standIn, flux) => {
    const generator = createComfyGenerator({ workflow: flux, baseUrl: standIn.url });
    const error = await generator.generate(
      request({ prompt: "A castle [comfyui:execution-error]" }),
    ).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ProviderError, String(error));
    assert.equal(error.retryable, false);
    assert.equal(error.fatal, false);
    assert.equal(error.requestId, standIn.submits[0]!.promptId);
    assert.match(error.message, /node '13' \(SamplerCustomAdvanced\)/);
    assert.match(error.message, /OutOfMemoryError: Allocation on device/);
  }));

Deno.test("comfyui generate() stops the run on a 400 with node_errors, naming the node and the input", () =>
  withStandIn(async (standIn, flux) => {
    const generator = createComfyGenerator({ workflow: flux, baseUrl: standIn.url });
    standIn.inject("node-errors");
    const error = await generator.generate(request()).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ProviderError, String(error));
    assert.equal(error.fatal, true);
    assert.equal(error.retryable, false);
    assert.equal(error.status, 400);
    assert.match(
      error.message,
      /node '13' \(SamplerCustomAdvanced\): input 'steps': Custom validation failed/,
    );
    assert.equal(standIn.submits.length, 0);
  }));

Deno.test("comfyui generate() recovers an earlier run's prompt by its id: no second submit, waits for it, fetches its image", () =>
  withStandIn(async (standIn, flux) => {
    const generator = createComfyGenerator({
      workflow: flux,
      baseUrl: standIn.url,
      pollIntervalMs: 5,
    });
    standIn.hold();
    // An earlier process submitted it, then died: its prompt runs on.
    const earlier = createComfyGenerator({ workflow: flux, baseUrl: standIn.url });
    const abandoned = new AbortController();
    const first = await running(standIn, earlier, { signal: abandoned.signal });
    const id = first.submit.promptId;
    const recovered = generator.generate(request({ recoverRequestId: id }));
    await standIn.called(new RegExp(`GET /history/${id}`), 2);
    standIn.release();
    const image = await recovered;
    assert.equal(image.requestId, id);
    assert.equal(standIn.submits.length, 1, "the earlier run's prompt, not a new one");
    assert.ok("image" in await first.result);
  }, { stepMs: 1 }));

Deno.test("comfyui generate() queues anew a prompt the server forgot (restarted), and one it loses while waiting", () =>
  withStandIn(async (standIn, flux) => {
    const generator = createComfyGenerator({
      workflow: flux,
      baseUrl: standIn.url,
      pollIntervalMs: 5,
    });
    const image = await generator.generate(request({ recoverRequestId: "gone-since-restart" }));
    assert.equal(standIn.submits.length, 1);
    assert.notEqual(image.requestId, "gone-since-restart");

    // Restarted while this run waits for its prompt: queued once more, then done.
    standIn.hold();
    const recorded: string[] = [];
    const { result } = await running(standIn, generator, {
      onSubmitting: (id) => (recorded.push(id), Promise.resolve()),
    });
    await standIn.restart();
    standIn.release();
    const outcome = await result;
    assert.ok("image" in outcome, String((outcome as { error?: unknown }).error));
    assert.equal(standIn.submits.length, 3);
    assert.equal(recorded.length, 2, "each submit recorded first");
    assert.equal(outcome.image.requestId, recorded[1]);
  }, { stepMs: 1 }));

Deno.test("comfyui generate() on a hard stop interrupts its running prompt and takes its waiting one out of the queue", () =>
  withStandIn(async (standIn, flux) => {
    const generator = createComfyGenerator({ workflow: flux, baseUrl: standIn.url });
    standIn.hold();
    const first = new AbortController();
    const second = new AbortController();
    const a = await running(standIn, generator, { signal: first.signal });
    const b = await running(standIn, generator, {
      signal: second.signal,
      prompt: "A second prompt",
    });
    second.abort(new DOMException("hard stop", "AbortError"));
    const bOut = await b.result;
    assert.ok("error" in bOut && (bOut.error as Error).name === "AbortError");
    assert.deepEqual(standIn.deleted, [b.submit.promptId]);
    first.abort(new DOMException("hard stop", "AbortError"));
    const aOut = await a.result;
    assert.ok("error" in aOut);
    // The running one is interrupted, not deleted: ComfyUI cannot delete what runs.
    assert.deepEqual(standIn.deleted, [b.submit.promptId]);
    assert.ok(standIn.calls.includes("POST /interrupt"));
  }));

Deno.test("comfyui generate() past its deadline stops the prompt on the server and fails as retryable", () =>
  withStandIn(async (standIn, flux) => {
    const generator = createComfyGenerator({
      workflow: flux,
      baseUrl: standIn.url,
      timeoutMs: 200,
    });
    const error = await generator.generate(request({ prompt: "A slow one [comfyui:hang]" }))
      .then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ProviderError, String(error));
    assert.equal(error.retryable, true);
    assert.match(error.message, /took longer than 200 ms \(--timeout\)/);
    assert.ok(standIn.calls.includes("POST /interrupt"));
  }));

Deno.test("comfyui check() stops the run before any prompt for an unknown node type, a missing model file, or no server", async () => {
  const standIn = await startComfyStandIn({ unets: ["flux1-schnell.safetensors"] });
  try {
    const flux = await readWorkflow(`${DATA}flux.json`);
    const signal = new AbortController().signal;
    const noFile = await createComfyGenerator({ workflow: flux, baseUrl: standIn.url }).check!(
      signal,
    ).then(() => undefined, (e: unknown) => e);
    assert.ok(noFile instanceof ProviderError && noFile.fatal, String(noFile));
    assert.match(
      noFile.message,
      /no 'flux1-dev.safetensors' for node '12' \(UNETLoader\) input 'unet_name'.*it has 'flux1-schnell.safetensors'/,
    );
    const custom = structuredClone(flux);
    (custom.graph as Record<string, unknown>)["30"] = {
      class_type: "UltimateSDUpscale",
      inputs: { image: ["8", 0] },
    };
    const noType = await createComfyGenerator({ workflow: custom, baseUrl: standIn.url }).check!(
      signal,
    ).then(() => undefined, (e: unknown) => e);
    assert.ok(noType instanceof ProviderError && noType.fatal);
    assert.match(noType.message, /no node type 'UltimateSDUpscale' \(node '30'/);
    assert.equal(standIn.submits.length, 0);
  } finally {
    await standIn.close();
  }
  const flux = await readWorkflow(`${DATA}flux.json`);
  const down = await createComfyGenerator({ workflow: flux, baseUrl: "http://127.0.0.1:9" })
    .check!(new AbortController().signal).then(() => undefined, (e: unknown) => e);
  assert.ok(down instanceof ProviderError && down.fatal, String(down));
  assert.match(down.message, /Cannot reach ComfyUI at http:\/\/127.0.0.1:9 .*COMFYUI_BASE_URL/);
});

Deno.test("comfyui generate() edits through the edit workflow: the source image uploaded, its name in the LoadImage", () =>
  withStandIn(async (standIn, flux) => {
    const edit = await readWorkflow(`${DATA}img2img.json`);
    const generator = createComfyGenerator({
      workflow: flux,
      editWorkflow: edit,
      baseUrl: standIn.url,
    });
    assert.equal(generator.editModel!(WORKFLOW_MODEL), WORKFLOW_MODEL);
    assert.equal(
      createComfyGenerator({ workflow: flux, baseUrl: standIn.url }).editModel!(WORKFLOW_MODEL),
      undefined,
      "no edit workflow: every round drawn anew",
    );
    const dir = await Deno.makeTempDir();
    try {
      const source = `${dir}/iteration-1.png`;
      await Deno.writeFile(
        source,
        await sharp({ create: { width: 320, height: 200, channels: 3, background: "#0a0" } })
          .png().toBuffer(),
      );
      const image = await generator.generate(request({
        edit: { imagePath: source, instruction: "make the kite blue" },
      }));
      const graph = standIn.submits[0]!.graph;
      const uploaded = [...standIn.uploads.keys()];
      assert.equal(uploaded.length, 1);
      assert.match(uploaded[0]!, /^retake-[0-9a-f]{16}\.png$/);
      assert.equal(graph["10"]!.inputs.image, uploaded[0]);
      assert.equal(graph["6"]!.inputs.text, "A red kite over a windy beach");
      const meta = await sharp(await bytesOf(image)).metadata();
      assert.deepEqual([meta.width, meta.height], [320, 200]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }));

Deno.test("comfyui generate() on a server that chooses its own prompt ids reports the one it took", () =>
  withStandIn(async (standIn, flux) => {
    const generator = createComfyGenerator({ workflow: flux, baseUrl: standIn.url });
    let submitting = "";
    const accepted: string[] = [];
    const image = await generator.generate(request({
      onSubmitting: (id) => (submitting = id, Promise.resolve()),
      onAccepted: (id) => accepted.push(id),
    }));
    const taken = standIn.submits[0]!.promptId;
    assert.notEqual(taken, submitting);
    assert.deepEqual(accepted, [taken]);
    assert.equal(image.requestId, taken);
  }, { ownIds: true }));

Deno.test("comfyui generate() retried after a network fault collects the prompt the failed attempt queued", () =>
  withStandIn(async (standIn, flux) => {
    let cut = 1;
    const flaky: typeof fetch = (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if (url.includes("/history/") && cut-- > 0) {
        return Promise.reject(new TypeError("error sending request: connection reset"));
      }
      return fetch(input, init);
    };
    const generator = createComfyGenerator({
      workflow: flux,
      baseUrl: standIn.url,
      pollIntervalMs: 5,
      fetch: flaky,
    });
    const failed = await generator.generate(request()).then(() => undefined, (e: unknown) => e);
    assert.ok(failed instanceof ProviderError && failed.retryable, String(failed));
    assert.match(failed.message, /Cannot reach ComfyUI/);
    const image = await generator.generate(request());
    assert.equal(standIn.submits.length, 1, "the retry queued nothing new");
    assert.equal(image.requestId, standIn.submits[0]!.promptId);
  }));
