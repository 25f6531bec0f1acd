import assert from "node:assert/strict";
import { createFalClient, type RequestMiddleware, ValidationError } from "@fal-ai/client";
import sharp from "sharp";
import { type FalStandIn, type FalStandInOptions, startFalStandIn } from "./fal_standin.ts";

async function withStandIn(
  fn: (standIn: FalStandIn) => Promise<void>,
  options: FalStandInOptions = {},
): Promise<void> {
  const standIn = await startFalStandIn(options);
  try {
    await fn(standIn);
  } finally {
    await standIn.close();
  }
}

function api(standIn: FalStandIn) {
  const headers = { authorization: `Key ${standIn.key}`, "content-type": "application/json" };
  return {
    async submit(input: Record<string, unknown>, endpoint = "fal-ai/flux/schnell") {
      const response = await fetch(`${standIn.url}/${endpoint}`, {
        method: "POST",
        headers,
        body: JSON.stringify(input),
      });
      return { status: response.status, body: await response.json() };
    },
    async get(path: string) {
      const response = await fetch(`${standIn.url}${path}`, { headers });
      return { status: response.status, headers: response.headers, body: await response.json() };
    },
    async put(path: string) {
      const response = await fetch(`${standIn.url}${path}`, { method: "PUT", headers });
      return { status: response.status, body: await response.json() };
    },
    /**
     * Submits, waits until the request completed, and fetches its result: `status` is the
     * result's (the submit's when it was refused), `final` the last status seen.
     */
    async outcome(input: Record<string, unknown>, endpoint = "fal-ai/flux/schnell") {
      const submitted = await this.submit(input, endpoint);
      if (submitted.status !== 200) return { ...submitted, submitted: submitted.status };
      const app = endpoint.split("/").slice(0, 2).join("/");
      const path = `/${app}/requests/${submitted.body.request_id}`;
      let final = await this.get(`${path}/status`);
      await until(async () => (final = await this.get(`${path}/status`)).status === 200);
      const result = await this.get(path);
      return { status: result.status, body: result.body, final: final.body, submitted: 200 };
    },
  };
}

function redirectTo(base: string): RequestMiddleware {
  const hosts = /^https:\/\/(?:queue\.fal\.run|fal\.run|rest\.fal\.ai)(?=\/|\?|$)/;
  return (req) => Promise.resolve({ ...req, url: req.url.replace(hosts, base) });
}

async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500 && !(await check()); i++) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

Deno.test("fal stand-in speaks the queue protocol: submit, status, result, file, cancel", async () => {
  await withStandIn(async (standIn) => {
    const unauthorised = await fetch(`${standIn.url}/fal-ai/flux/schnell`, {
      method: "POST",
      body: "{}",
    });
    assert.equal(unauthorised.status, 401);
    assert.deepEqual(await unauthorised.json(), {
      detail: "No user found for Key ID and Secret",
    });

    const call = api(standIn);
    const submitted = await call.submit({
      prompt: "a lighthouse",
      image_size: { width: 96, height: 64 },
      seed: 1234,
      output_format: "png",
    });
    assert.equal(submitted.status, 200);
    assert.equal(submitted.body.status, "IN_QUEUE");
    assert.equal(submitted.body.queue_position, 0);
    const id = submitted.body.request_id as string;
    const prefix = `/fal-ai/flux/requests/${id}`;
    assert.equal(submitted.body.status_url, `${standIn.url}${prefix}/status`);

    let status = await call.get(`${prefix}/status?logs=1`);
    assert.equal(status.status, 202);
    assert.equal(status.body.status, "IN_PROGRESS");
    assert.ok(Array.isArray(status.body.logs));
    await until(async () => (status = await call.get(`${prefix}/status?logs=0`)).status === 200);
    assert.equal(status.body.status, "COMPLETED");
    assert.equal(status.body.logs, undefined);
    assert.equal(typeof status.body.metrics.inference_time, "number");

    const result = await call.get(prefix);
    assert.equal(result.status, 200);
    assert.equal(result.headers.get("x-fal-request-id"), id);
    assert.equal(result.body.seed, 1234);
    assert.deepEqual(result.body.has_nsfw_concepts, [false]);
    assert.equal(typeof result.body.timings.inference, "number");
    const [image] = result.body.images;
    assert.equal(image.url, `${standIn.url}/files/${id}.png`);
    assert.deepEqual([image.width, image.height, image.content_type], [96, 64, "image/png"]);

    const file = await fetch(image.url);
    assert.equal(file.headers.get("content-type"), "image/png");
    const meta = await sharp(new Uint8Array(await file.arrayBuffer())).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", 96, 64]);

    assert.deepEqual((await call.put(`${prefix}/cancel`)).body, { status: "ALREADY_COMPLETED" });
    assert.equal((await call.get(`/fal-ai/flux/requests/nope/status`)).status, 404);
    const kinds = standIn.requests.map((r) => r.kind);
    assert.deepEqual(kinds.slice(0, 2), ["submit", "submit"]);
    assert.deepEqual(kinds.slice(-4), ["result", "file", "cancel", "status"]);
    assert.ok(kinds.slice(2, -4).every((k) => k === "status"));
  }, { latencyMs: 20 });
});

Deno.test("fal stand-in keeps at most `concurrency` requests in progress, the rest queued", async () => {
  await withStandIn(async (standIn) => {
    const call = api(standIn);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { body } = await call.submit({ prompt: `job ${i}`, image_size: "square" });
      assert.equal(body.queue_position, i === 0 ? 0 : i - 1);
      ids.push(body.request_id);
    }
    const states = await Promise.all(
      ids.map((id) => call.get(`/fal-ai/flux/requests/${id}/status`)),
    );
    assert.deepEqual(states.map((s) => s.body.status), ["IN_PROGRESS", "IN_QUEUE", "IN_QUEUE"]);
    assert.deepEqual(states.map((s) => s.body.queue_position), [undefined, 0, 1]);

    const cancelled = await call.put(`/fal-ai/flux/requests/${ids[2]}/cancel`);
    assert.equal(cancelled.status, 202);
    assert.equal(cancelled.body.status, "CANCELLATION_REQUESTED");
    const result = await call.get(`/fal-ai/flux/requests/${ids[2]}`);
    assert.equal(result.status, 499);

    await until(() => standIn.stats().completed === 2);
    const { busyMs, ...counts } = standIn.stats();
    // Two jobs ran 30 ms each (the cancelled one never started); timers may fire late, not early.
    assert.ok(busyMs >= 2 * 29 && busyMs < 2 * 30 + 500, `busyMs ${busyMs}`);
    assert.deepEqual(counts, {
      submitted: 3,
      completed: 2,
      cancelled: 1,
      queued: 0,
      inProgress: 0,
      maxInProgress: 1,
    });
  }, { concurrency: 1, latencyMs: 30 });
});

Deno.test("fal stand-in runs each request latencyMs ± jitterMs", async () => {
  const draws = [0, 1];
  await withStandIn(async (standIn) => {
    const call = api(standIn);
    const times: number[] = [];
    for (let i = 0; i < 2; i++) {
      const { body } = await call.submit({ prompt: `job ${i}`, image_size: "square" });
      const path = `/fal-ai/flux/requests/${body.request_id}/status`;
      await until(async () => (await call.get(path)).body.status === "COMPLETED");
      times.push((await call.get(path)).body.metrics.inference_time);
    }
    assert.ok(times[0]! < 0.04, `the shortest run took ${times[0]} s`);
    assert.ok(times[1]! >= 0.07, `the longest run took ${times[1]} s`);
  }, { latencyMs: 45, jitterMs: 25, random: () => draws.shift() ?? 0.5 });
});

Deno.test("fal stand-in serves the real SDK, polling and streaming", async () => {
  await withStandIn(async (standIn) => {
    const fal = createFalClient({
      credentials: standIn.key,
      requestMiddleware: redirectTo(standIn.url),
    });
    const polled = await fal.subscribe("fal-ai/flux/dev", {
      input: { prompt: "a red kite", image_size: "square", seed: 5 },
      pollInterval: 5,
      logs: true,
    });
    assert.equal(polled.data.seed, 5);
    assert.equal(polled.requestId, standIn.calls("submit")[0]!.requestId);
    assert.equal(
      standIn.calls("status")[0]!.path,
      `/fal-ai/flux/requests/${polled.requestId}/status`,
    );

    const updates: string[] = [];
    const streamed = await fal.subscribe("fal-ai/flux/schnell", {
      input: { prompt: "a green kite", image_size: "square" },
      mode: "streaming",
      onQueueUpdate: (update) => updates.push(update.status),
    });
    assert.equal(updates.at(-1), "COMPLETED");
    assert.equal(typeof streamed.data.seed, "number", "a seed is drawn when none is given");
    assert.equal(standIn.calls("stream").length, 1);
  }, { latencyMs: 15 });
});

Deno.test("fal stand-in applies faults from prompt tokens (-once per prompt) and inject()", async () => {
  await withStandIn(async (standIn) => {
    const call = api(standIn);
    const first = await call.submit({ prompt: "boat [fal:429-once]" });
    const second = await call.submit({ prompt: "boat [fal:429-once]" });
    const other = await call.submit({ prompt: "ship [fal:429-once]" });
    assert.deepEqual([first.status, second.status, other.status], [429, 200, 429]);
    assert.equal(standIn.calls("submit")[0]!.fault, "429-once");

    standIn.inject("locked", 2);
    assert.equal((await call.submit({ prompt: "a" })).status, 403);
    assert.equal((await call.submit({ prompt: "b" })).status, 403);
    assert.equal((await call.submit({ prompt: "c" })).status, 200);
    assert.equal((await call.submit({ prompt: "d [fal:no-such-fault]" })).status, 200);

    const invalid = await call.outcome({ prompt: "e", image_size: "huge" });
    assert.equal(invalid.submitted, 200, "fal's queue takes it");
    assert.equal(invalid.status, 422);
    assert.deepEqual(invalid.body.detail[0].loc, ["body", "image_size"]);
    const atSubmit = await call.submit({ prompt: "e [fal:422-submit]" });
    assert.equal(atSubmit.status, 422, "the 422-submit fault refuses at submit");

    const retryAfter = await fetch(`${standIn.url}/fal-ai/flux/schnell`, {
      method: "POST",
      headers: { authorization: `Key ${standIn.key}` },
      body: JSON.stringify({ prompt: "f [fal:429-retry-after-once]" }),
    });
    await retryAfter.body?.cancel();
    assert.equal(retryAfter.headers.get("retry-after"), "7");
  }, { retryAfterSeconds: 7 });
});

Deno.test("fal stand-in serves fal's Platform API for free and knows only `endpoints` when given", async () => {
  await withStandIn(async (standIn) => {
    const call = api(standIn);
    const prices = await call.get("/v1/models/pricing?endpoint_id=fal-ai/flux/schnell,fal-ai/nope");
    assert.equal(prices.status, 200);
    assert.deepEqual(prices.body.prices, [{
      endpoint_id: "fal-ai/flux/schnell",
      unit_price: 0.003,
      unit: "megapixels",
      currency: "USD",
    }]);
    const noKey = await fetch(`${standIn.url}/v1/models/pricing?endpoint_id=fal-ai/flux/schnell`);
    await noKey.body?.cancel();
    assert.equal(noKey.status, 401, "prices need a key");
    const listed = await fetch(
      `${standIn.url}/v1/models?endpoint_id=fal-ai/flux/schnell&endpoint_id=fal-ai/nope`,
    );
    assert.equal(listed.status, 200, "the catalogue does not");
    const body = await listed.json();
    assert.deepEqual(body.models.map((m: { endpoint_id: string }) => m.endpoint_id), [
      "fal-ai/flux/schnell",
    ]);
    assert.equal((await call.submit({ prompt: "a" }, "fal-ai/nope")).status, 404);
    assert.equal(standIn.stats().submitted, 0);
    assert.deepEqual(standIn.requests.map((r) => r.kind), [
      "pricing",
      "pricing",
      "models",
      "submit",
    ]);
  }, { endpoints: ["fal-ai/flux/schnell"] });
});

Deno.test("fal stand-in fails the first result fetches of a `result-500` request, then serves it", async () => {
  await withStandIn(async (standIn) => {
    const call = api(standIn);
    const { body } = await call.submit({ prompt: "kite [fal:result-500]" });
    const path = `/fal-ai/flux/requests/${body.request_id}`;
    await until(async () => (await call.get(`${path}/status`)).body.status === "COMPLETED");
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await call.get(path)).status);
    assert.deepEqual(statuses, [500, 500, 500, 200]);
    const empty = await call.submit({ prompt: "kite [fal:no-images]" });
    const emptyPath = `/fal-ai/flux/requests/${empty.body.request_id}`;
    await until(async () => (await call.get(`${emptyPath}/status`)).body.status === "COMPLETED");
    assert.deepEqual((await call.get(emptyPath)).body.images, []);
  }, { resultFailures: 3 });
});

Deno.test("fal stand-in holds Nano Banana to its own fields: no image_size, an aspect_ratio", async () => {
  await withStandIn(async (standIn) => {
    const call = api(standIn);
    const wrong = await call.outcome(
      { prompt: "a heron", image_size: "square_hd", seed: 3 },
      "fal-ai/nano-banana-2",
    );
    assert.equal(wrong.status, 422);
    assert.deepEqual(wrong.body.detail.map((d: { loc: string[]; type: string }) => d), [
      { loc: ["body", "aspect_ratio"], msg: "Field required", type: "missing" },
      {
        loc: ["body", "image_size"],
        msg: "Extra inputs are not permitted",
        type: "extra_forbidden",
      },
    ]);
    const badTier = await call.outcome(
      { prompt: "a heron", aspect_ratio: "1:1", resolution: "0.5K" },
      "fal-ai/nano-banana-pro",
    );
    assert.equal(badTier.status, 422, "Nano Banana Pro makes no 0.5K");
    assert.deepEqual(badTier.body.detail[0].loc, ["body", "resolution"]);

    const fal = createFalClient({
      credentials: standIn.key,
      requestMiddleware: redirectTo(standIn.url),
    });
    const made = await fal.subscribe("fal-ai/nano-banana-2", {
      input: { prompt: "a heron", aspect_ratio: "16:9", resolution: "0.5K", seed: 3 },
      pollInterval: 5,
    });
    assert.deepEqual(Object.keys(made.data).sort(), ["description", "images"], "no seed");
    const image = made.data.images[0]!;
    assert.equal(image.width, undefined, "nor the image's size");
    const bytes = new Uint8Array(await (await fetch(image.url)).arrayBuffer());
    const meta = await sharp(bytes).metadata();
    assert.deepEqual([meta.width, meta.height], [680, 384], "0.5K in 16:9");
  });
});

Deno.test("fal stand-in checks each family's sizes and fields as fal documents them", async () => {
  await withStandIn(async (standIn) => {
    const call = api(standIn);
    const cases: Array<[string, Record<string, unknown>, number]> = [
      ["fal-ai/flux-2", { prompt: "x", image_size: { width: 4096, height: 1024 } }, 422],
      ["fal-ai/flux-2", { prompt: "x", image_size: { width: 2048, height: 512 } }, 200],
      ["fal-ai/flux-pro/v1.1", { prompt: "x", enable_safety_checker: true }, 422],
      ["fal-ai/flux-2-pro", { prompt: "x", num_images: 1 }, 422],
      ["fal-ai/flux-2-pro", { prompt: "x", safety_tolerance: "6" }, 422],
      [
        "fal-ai/bytedance/seedream/v4.5/text-to-image",
        { prompt: "x", image_size: "square_hd" },
        422,
      ],
      ["fal-ai/bytedance/seedream/v4.5/text-to-image", { prompt: "x", image_size: "auto_2K" }, 200],
      ["fal-ai/bytedance/seedream/v5/lite/text-to-image", { prompt: "x", seed: 1 }, 422],
      ["fal-ai/recraft/v3/text-to-image", { prompt: "x", seed: 1 }, 422],
      ["fal-ai/ideogram/v3", { prompt: "x", output_format: "png" }, 422],
      ["fal-ai/fast-sdxl", { prompt: "x", output_format: "png" }, 422],
      ["fal-ai/fast-sdxl", { prompt: "x", format: "png" }, 200],
      ["someone/own-app", { prompt: "x", anything: "goes" }, 200],
      ["fal-ai/flux-2/lora", { prompt: "x", image_size: { width: 4096, height: 2304 } }, 422],
      ["fal-ai/flux-pro/kontext", { prompt: "x", seed: 1 }, 422],
      ["fal-ai/flux-pro/kontext", { prompt: "x", image_url: "https://a.b/c.png" }, 200],
    ];
    for (const [endpoint, input, status] of cases) {
      const answer = await call.outcome(input, endpoint);
      assert.equal(answer.status, status, `${endpoint} ${JSON.stringify(input)}`);
    }
  });
});

Deno.test("fal stand-in reports bad input at the result, as real fal does: submit taken, COMPLETED, then 422", async () => {
  await withStandIn(async (standIn) => {
    const fal = createFalClient({
      credentials: standIn.key,
      requestMiddleware: redirectTo(standIn.url),
    });
    const updates: Array<Record<string, unknown>> = [];
    const error = await fal.subscribe("fal-ai/flux-2", {
      input: { prompt: "a wide harbour", image_size: { width: 4096, height: 2304 } },
      mode: "streaming",
      onQueueUpdate: (update) => updates.push(update as unknown as Record<string, unknown>),
    }).then(() => assert.fail("expected the result call to fail"), (e: unknown) => e);
    assert.ok(error instanceof ValidationError, `expected the SDK's ValidationError, got ${error}`);
    assert.equal(error.status, 422);
    assert.deepEqual(error.fieldErrors.map((e) => e.loc), [["body", "image_size"]]);
    const last = updates.at(-1)!;
    assert.equal(last.status, "COMPLETED", "fal has no FAILED status");
    assert.equal(last.error, "The width and height must be between 512 and 2048 pixels");
    assert.equal(last.error_type, "value_error");
    const [submit] = standIn.calls("submit");
    assert.equal(submit!.status, 200, "the submit was taken");
    assert.deepEqual(standIn.calls("result").map((r) => r.status), [422]);

    const content = await api(standIn).outcome({ prompt: "a boat [fal:422]" });
    assert.equal(content.final!.error_type, "content_policy_violation");
    assert.equal(content.body.detail[0].type, "content_policy_violation");
  }, { latencyMs: 5 });
});

Deno.test("fal stand-in reruns a failed runner unseen, unless the submit says x-fal-no-retry", async () => {
  await withStandIn(async (standIn) => {
    const fal = createFalClient({
      credentials: standIn.key,
      requestMiddleware: redirectTo(standIn.url),
    });
    const hidden = await fal.subscribe("fal-ai/flux/schnell", {
      input: { prompt: "a crane [fal:runner-503-once]" },
      pollInterval: 5,
    });
    assert.equal(hidden.data.images.length, 1);
    assert.equal(standIn.job(hidden.requestId)!.runs, 2, "fal ran it twice; the client saw once");

    const submitted = await fal.queue.submit("fal-ai/flux/schnell", {
      input: { prompt: "a stork [fal:runner-503-once]" },
      headers: { "x-fal-no-retry": "1" },
    });
    const id = submitted.request_id;
    assert.equal(standIn.calls("submit").at(-1)!.falHeaders["x-fal-no-retry"], "1");
    await until(() => standIn.job(id)?.completedAt !== undefined);
    const result = await api(standIn).get(`/fal-ai/flux/requests/${id}`);
    assert.equal(result.status, 503);
    assert.equal(result.body.error_type, "runner_disconnected");
    assert.equal(standIn.job(id)!.runs, 1);
  }, { latencyMs: 5 });
});

Deno.test("fal stand-in can leave the status stream unserved, as a proxy without it would", async () => {
  await withStandIn(async (standIn) => {
    const call = api(standIn);
    const submitted = await call.submit({ prompt: "a swan" });
    const id = submitted.body.request_id;
    const stream = await call.get(`/fal-ai/flux/requests/${id}/status/stream`);
    assert.equal(stream.status, 404);
    const status = await call.get(`/fal-ai/flux/requests/${id}/status`);
    assert.ok(status.status === 200 || status.status === 202);
  }, { statusStream: false });
});
