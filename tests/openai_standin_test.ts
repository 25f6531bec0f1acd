import assert from "node:assert/strict";
import sharp from "sharp";
import { openaiImageTokens, startOpenAIStandIn } from "./openai_standin.ts";

async function jpegDataUrl(width: number, height: number): Promise<string> {
  const bytes = await sharp({
    create: { width, height, channels: 3, background: { r: 30, g: 90, b: 200 } },
  }).jpeg().toBuffer();
  return `data:image/jpeg;base64,${
    btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""))
  }`;
}

async function chat(
  url: string,
  body: Record<string, unknown>,
  key: string | null,
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(`${url}/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(key !== null && { authorization: `Bearer ${key}` }),
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  const json = response.headers.get("content-type")?.includes("json") ? JSON.parse(text) : {};
  return { status: response.status, json, headers: response.headers };
}

const textBody = (text: string, extra: Record<string, unknown> = {}) => ({
  model: "gpt-5.4-mini",
  messages: [{ role: "system", content: "judge" }, { role: "user", content: text }],
  ...extra,
});

async function imageBody(text: string, detail = "low") {
  return {
    model: "gpt-5.4-mini",
    messages: [{
      role: "user",
      content: [
        { type: "image_url", image_url: { url: await jpegDataUrl(300, 200), detail } },
        { type: "text", text },
      ],
    }],
    response_format: { type: "json_schema", json_schema: { name: "critique", schema: {} } },
    max_completion_tokens: 4096,
  };
}

function content(json: Record<string, unknown>): { text: string | null; finish: string } {
  const choice = (json.choices as Array<Record<string, unknown>>)[0]!;
  const message = choice.message as { content: string | null };
  return { text: message.content, finish: String(choice.finish_reason) };
}

Deno.test("openaiImageTokens() follows OpenAI's tile rule", () => {
  assert.equal(openaiImageTokens(4000, 4000, "low"), 85);
  assert.equal(openaiImageTokens(384, 384), 255);
  assert.equal(openaiImageTokens(1024, 1024), 765);
  assert.equal(openaiImageTokens(2048, 4096), 1105);
});

Deno.test("startOpenAIStandIn() checks the bearer key, the route and the model like OpenAI", async () => {
  const standIn = await startOpenAIStandIn({ key: "right" });
  try {
    const wrong = await chat(standIn.url, textBody("hi"), "wrong-key-123456");
    assert.equal(wrong.status, 401);
    const error = wrong.json.error as Record<string, unknown>;
    assert.equal(error.code, "invalid_api_key");
    assert.doesNotMatch(String(error.message), /wrong-key-123456/, "the key is masked");

    const missing = await chat(standIn.url, textBody("hi"), null);
    assert.equal(missing.status, 401);
    assert.match(String((missing.json.error as Record<string, unknown>).message), /Bearer/);

    const unknown = await chat(standIn.url, textBody("hi", { model: "gpt-nope" }), "right");
    assert.equal(unknown.status, 404);
    assert.equal((unknown.json.error as Record<string, unknown>).code, "model_not_found");

    const route = await fetch(`${standIn.url}/responses`, { method: "POST", body: "{}" });
    await route.body?.cancel();
    assert.equal(route.status, 404);

    const list = await fetch(`${standIn.url}/models`, {
      headers: { authorization: "Bearer right" },
    });
    const ids = ((await list.json()).data as Array<{ id: string }>).map((m) => m.id);
    assert.ok(ids.includes("gpt-5.4-mini"));
    const badList = await fetch(`${standIn.url}/models`, {
      headers: { authorization: "Bearer x" },
    });
    await badList.body?.cancel();
    assert.equal(badList.status, 401);
    assert.deepEqual(standIn.modelLists.map((l) => [l.keyValid, l.status]), [
      [true, 200],
      [false, 401],
    ]);
    // Model lists are not chat requests: only the three chat calls that reached the route count.
    assert.equal(standIn.requests.length, 3);
  } finally {
    await standIn.close();
  }
});

Deno.test("startOpenAIStandIn() lists no models, or none at all, on request", async () => {
  const empty = await startOpenAIStandIn({ listModels: "empty" });
  const none = await startOpenAIStandIn({ listModels: false });
  try {
    const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
    const a = await (await fetch(`${empty.url}/models`, auth(empty.key))).json();
    assert.deepEqual(a.data, []);
    const b = await fetch(`${none.url}/models`, auth(none.key));
    await b.body?.cancel();
    assert.equal(b.status, 404);
  } finally {
    await empty.close();
    await none.close();
  }
});

Deno.test("startOpenAIStandIn() answers a deterministic critique for an image, with usage, and records it", async () => {
  const standIn = await startOpenAIStandIn();
  try {
    const body = await imageBody("Prompt it was generated from: a red kite over a beach");
    const one = await chat(standIn.url, body, standIn.key);
    const two = await chat(standIn.url, body, standIn.key);
    assert.equal(one.status, 200);
    assert.ok(one.headers.get("x-request-id"));
    const critique = JSON.parse(content(one.json).text!);
    assert.equal(content(one.json).finish, "stop");
    assert.ok(critique.score >= 0 && critique.score <= 10);
    assert.deepEqual(Object.keys(critique.criteria).sort(), [
      "composition",
      "lighting",
      "mood",
      "promptAdherence",
      "technicalQuality",
    ]);
    assert.deepEqual(critique, JSON.parse(content(two.json).text!), "same request, same critique");
    const other = await chat(
      standIn.url,
      await imageBody("Prompt it was generated from: a quiet snowy village at night"),
      standIn.key,
    );
    assert.notDeepEqual(JSON.parse(content(other.json).text!).criteria, critique.criteria);

    const usage = one.json.usage as Record<string, number>;
    assert.ok(usage.prompt_tokens! > 85, "image (85 at low detail) plus text");
    assert.equal(usage.total_tokens, usage.prompt_tokens! + usage.completion_tokens!);

    const record = standIn.requests[0]!;
    assert.equal(record.hasImage, true);
    assert.equal(record.imageUrlPrefix, "data:image/jpeg;base64");
    assert.deepEqual(
      { ...record.image, bytes: 0 },
      { mimeType: "image/jpeg", width: 300, height: 200, bytes: 0, detail: "low" },
    );
    assert.equal(record.maxTokens, 4096);
    assert.equal((record.responseFormat as { type: string }).type, "json_schema");
    assert.doesNotMatch(JSON.stringify(record.body), /base64,\/9j/, "image data left out");
  } finally {
    await standIn.close();
  }
});

Deno.test("startOpenAIStandIn() refines text: the round's prompt plus the critique's suggestions", async () => {
  const standIn = await startOpenAIStandIn();
  try {
    const critique = { problems: ["flat light"], suggestions: ["warm side light"] };
    const text = `Original prompt: a kite\nContext:\nOther context: {"palette":"red"}\n\n` +
      `Prompt of round 1: a red kite\nCritique of the image from round 1:\n${
        JSON.stringify(critique)
      }`;
    const result = await chat(standIn.url, textBody(text), standIn.key);
    const refinement = JSON.parse(content(result.json).text!);
    assert.equal(refinement.prompt, "a red kite, warm side light");
    assert.deepEqual(refinement.changes, [{
      change: 'Added "warm side light"',
      reason: "flat light",
    }]);
    assert.equal(standIn.requests[0]!.hasImage, false);
    assert.equal(standIn.requests[0]!.system, "judge");
  } finally {
    await standIn.close();
  }
});

Deno.test("startOpenAIStandIn() faults: -once fails the first identical request only", async () => {
  const standIn = await startOpenAIStandIn({ retryAfterMs: 1500 });
  try {
    const rate = await chat(standIn.url, textBody("a [openai:429-once]"), standIn.key);
    assert.equal(rate.status, 429);
    assert.equal(rate.headers.get("retry-after"), "2");
    assert.equal(rate.headers.get("retry-after-ms"), "1500");
    assert.equal((rate.json.error as Record<string, unknown>).code, "rate_limit_exceeded");
    assert.equal(
      (await chat(standIn.url, textBody("a [openai:429-once]"), standIn.key)).status,
      200,
    );

    const server = await chat(standIn.url, textBody("b [openai:500-once]"), standIn.key);
    assert.equal(server.status, 500);
    assert.equal(
      (await chat(standIn.url, textBody("b [openai:500-once]"), standIn.key)).status,
      200,
    );

    const bad = await chat(standIn.url, textBody("c [openai:bad-json-once]"), standIn.key);
    assert.throws(() => JSON.parse(content(bad.json).text!));
    const good = await chat(standIn.url, textBody("c [openai:bad-json-once]"), standIn.key);
    assert.doesNotThrow(() => JSON.parse(content(good.json).text!));

    for (let i = 0; i < 2; i++) {
      const cut = await chat(
        standIn.url,
        textBody("d [openai:length]", { max_tokens: 100 }),
        standIn.key,
      );
      assert.equal(content(cut.json).finish, "length");
      assert.equal((cut.json.usage as Record<string, number>).completion_tokens, 100);
    }
    const filtered = await chat(standIn.url, textBody("e [openai:content-filter]"), standIn.key);
    assert.equal(content(filtered.json).finish, "content_filter");
    assert.equal(content(filtered.json).text, null);

    const quota = await chat(standIn.url, textBody("f [openai:quota]"), standIn.key);
    assert.equal((quota.json.error as Record<string, unknown>).code, "insufficient_quota");

    standIn.inject("500", 2);
    assert.equal((await chat(standIn.url, textBody("g"), standIn.key)).status, 500);
    assert.equal((await chat(standIn.url, textBody("g"), standIn.key)).status, 500);
    assert.equal((await chat(standIn.url, textBody("g"), standIn.key)).status, 200);
    assert.deepEqual(
      standIn.requests.map((r) => r.fault ?? "-"),
      [
        "429-once",
        "-",
        "500-once",
        "-",
        "bad-json-once",
        "-",
        "length",
        "length",
        "content-filter",
        "quota",
        "500",
        "500",
        "-",
      ],
    );
  } finally {
    await standIn.close();
  }
});

Deno.test("startOpenAIStandIn() hang holds the answer until the stand-in closes", async () => {
  const standIn = await startOpenAIStandIn();
  const pending = chat(standIn.url, textBody("h [openai:hang]"), standIn.key);
  // Wait until the request has arrived, not for a guessed time.
  while (standIn.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.equal(standIn.requests[0]!.status, 0);
  await standIn.close();
  assert.equal((await pending).status, 503);
});

Deno.test("startOpenAIStandIn() answers a brief, a critique that answers its checks, and an edit instruction", async () => {
  const standIn = await startOpenAIStandIn({ answerModel: (m) => `${m}-2026-03-17` });
  try {
    const schemaWith = (name: string, properties: Record<string, unknown>) => ({
      response_format: {
        type: "json_schema",
        json_schema: { name, schema: { type: "object", properties } },
      },
    });
    const brief = await chat(
      standIn.url,
      textBody(
        "Prompt: a red kite, a sandy beach and two gulls\nContext:\n(none)",
        schemaWith("brief", {
          checks: { type: "array", items: { type: "object", properties: { question: {} } } },
        }),
      ),
      standIn.key,
    );
    assert.equal(brief.json.model, "gpt-5.4-mini-2026-03-17");
    assert.deepEqual(JSON.parse(content(brief.json).text!).checks, [
      { id: "c1", question: "Does the image show a red kite?", kind: "entity" },
      { id: "c2", question: "Does the image show a sandy beach?", kind: "entity" },
      { id: "c3", question: "Does the image show two gulls?", kind: "entity" },
    ]);

    const body = await imageBody(
      "Original prompt: a red kite\nc1 (entity): Is there a kite?\nc2 (count): Are there two gulls?",
    );
    const critique = JSON.parse(
      content(
        (await chat(
          standIn.url,
          { ...body, ...schemaWith("critique", { checks: {}, score: {} }) },
          standIn.key,
        )).json,
      ).text!,
    );
    assert.deepEqual(critique.checks.map((c: { id: string }) => c.id), ["c1", "c2"]);
    for (const check of critique.checks) {
      assert.equal(typeof check.passed, "boolean");
      assert.equal(check.fix === null, check.passed, "a fix only for a failed check");
    }
    const plain = JSON.parse(content((await chat(standIn.url, body, standIn.key)).json).text!);
    assert.equal(plain.checks, undefined, "no checks unless the schema asks for them");

    const refine = (properties: Record<string, unknown>) =>
      chat(
        standIn.url,
        textBody("Prompt of round 1: a kite", schemaWith("refinement", properties)),
        standIn.key,
      );
    const edit = JSON.parse(content((await refine({ prompt: {}, instruction: {} })).json).text!);
    assert.equal(edit.instruction, "add a clear focal point");
    const redraw = JSON.parse(content((await refine({ prompt: {} })).json).text!);
    assert.equal(redraw.instruction, undefined);
  } finally {
    await standIn.close();
  }
});
