/**
 * The ComfyUI and AUTOMATIC1111 stand-ins speak their servers' protocols, driven here as the
 * servers' own API examples drive them (ComfyUI's `script_examples/websockets_api_example.py`),
 * without retake's client in between.
 */
import assert from "node:assert/strict";
import { startA1111StandIn } from "./a1111_standin.ts";
import { startComfyStandIn } from "./comfyui_standin.ts";

const FLUX = JSON.parse(
  Deno.readTextFileSync(new URL("./data/comfyui/flux.json", import.meta.url)),
);

function workflow(text: string) {
  const graph = structuredClone(FLUX);
  graph["6"].inputs.text = text;
  graph["25"].inputs.noise_seed = 5;
  graph["27"].inputs.width = 256;
  graph["27"].inputs.height = 128;
  return graph;
}

Deno.test("the ComfyUI stand-in runs websockets_api_example.py's exchange: queue, events until node null, history, view", async () => {
  const standIn = await startComfyStandIn();
  try {
    const clientId = crypto.randomUUID();
    const socket = new WebSocket(`${standIn.url.replace("http", "ws")}/ws?clientId=${clientId}`);
    const messages: Array<{ type: string; data: Record<string, unknown> }> = [];
    let done!: () => void;
    const ended = new Promise<void>((r) => (done = r));
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data));
      messages.push(message);
      if (message.type === "executing" && message.data.node === null) done();
    };
    await new Promise((r) => (socket.onopen = r));
    const answer = await fetch(`${standIn.url}/prompt`, {
      method: "POST",
      body: JSON.stringify({ prompt: workflow("a cat"), client_id: clientId, prompt_id: "p-1" }),
    }).then((r) => r.json());
    assert.deepEqual(answer, { prompt_id: "p-1", number: 0, node_errors: {} });
    await ended;
    const types = messages.map((m) => m.type);
    assert.equal(types[0], "status", "a new client hears the queue first");
    const at = (type: string) => types.indexOf(type);
    assert.ok(at("execution_start") < at("progress") && at("progress") < at("executed"));
    assert.ok(at("executed") < at("execution_success"));
    assert.equal(messages.filter((m) => m.type === "progress").length, 20, "one per step");
    const history = await fetch(`${standIn.url}/history/p-1`).then((r) => r.json());
    const entry = history["p-1"];
    assert.equal(entry.status.status_str, "success");
    assert.deepEqual(
      entry.status.messages.map((m: [string]) => m[0]),
      ["execution_start", "execution_cached", "execution_success"],
    );
    const image = entry.outputs["9"].images[0];
    assert.equal(image.type, "output");
    const view = await fetch(
      `${standIn.url}/view?${new URLSearchParams({ ...image })}`,
    );
    assert.equal(view.headers.get("content-type"), "image/png");
    assert.ok((await view.arrayBuffer()).byteLength > 0);
    socket.close();
    await new Promise((r) => (socket.onclose = r));
  } finally {
    await standIn.close();
  }
});

Deno.test("the ComfyUI stand-in refuses as execution.py validates, and forgets everything on a restart", async () => {
  const standIn = await startComfyStandIn({ unets: ["flux1-schnell.safetensors"] });
  try {
    const post = (prompt: unknown) =>
      fetch(`${standIn.url}/prompt`, { method: "POST", body: JSON.stringify({ prompt }) })
        .then(async (r) => ({ status: r.status, body: await r.json() }));
    const missing = await post(workflow("x"));
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.type, "prompt_outputs_failed_validation");
    assert.equal(missing.body.node_errors["12"].errors[0].type, "value_not_in_list");
    assert.equal(missing.body.node_errors["12"].errors[0].extra_info.input_name, "unet_name");
    const custom = workflow("x");
    custom["30"] = { class_type: "NotInstalled", inputs: {} };
    const unknown = await post(custom);
    assert.equal(unknown.body.error.type, "missing_node_type");
    assert.equal(unknown.body.error.extra_info.node_id, "30");

    const good = workflow("kept?");
    good["12"].inputs.unet_name = "flux1-schnell.safetensors";
    standIn.hold();
    assert.equal((await post(good)).status, 200);
    const queued = await fetch(`${standIn.url}/queue`).then((r) => r.json());
    assert.equal(queued.queue_running.length + queued.queue_pending.length, 1);
    await standIn.restart();
    const after = await fetch(`${standIn.url}/queue`).then((r) => r.json());
    assert.deepEqual(after, { queue_running: [], queue_pending: [] });
    assert.deepEqual(await fetch(`${standIn.url}/history`).then((r) => r.json()), {});
  } finally {
    await standIn.close();
  }
});

Deno.test("the AUTOMATIC1111 stand-in answers txt2img as api.py does, behind basic auth, one image at a time", async () => {
  const standIn = await startA1111StandIn({ auth: "u:p", stepMs: 1 });
  try {
    const post = (auth: string | undefined, body: unknown) =>
      fetch(`${standIn.url}/sdapi/v1/txt2img`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(auth && { authorization: auth }) },
        body: JSON.stringify(body),
      });
    const refused = await post(undefined, { prompt: "x" });
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const bad = await post(`Basic ${btoa("u:p")}`, { prompt: "x", width: "wide" });
    assert.equal(bad.status, 422);
    assert.deepEqual((await bad.json()).detail[0].loc, ["body", "width"]);
    const answers = await Promise.all(
      [1, 2].map((seed) =>
        post(`Basic ${btoa("u:p")}`, { prompt: "a cat", seed, width: 64, height: 64, steps: 3 })
          .then((r) => r.json())
      ),
    );
    for (const [i, answer] of answers.entries()) {
      const info = JSON.parse(answer.info);
      assert.equal(info.seed, i + 1);
      assert.equal(info.sd_model_name, "v1-5-pruned-emaonly");
      assert.equal(typeof answer.images[0], "string");
    }
    assert.equal(standIn.maxOpen, 2, "both were sent at once");
    assert.equal(standIn.maxDrawing, 1, "and drawn one after the other");
  } finally {
    await standIn.close();
  }
});
