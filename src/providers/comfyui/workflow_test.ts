import assert from "node:assert/strict";
import { InputError } from "../../errors.ts";
import { fillWorkflow, modelFilesOf, parseWorkflow, readWorkflow } from "./workflow.ts";

const DATA = new URL("../../../tests/data/comfyui/", import.meta.url).pathname;

const node = (class_type: string, inputs: Record<string, unknown>) => ({ class_type, inputs });

function refusal(text: string, mapping = {}): string {
  try {
    parseWorkflow(text, "flux.json", mapping);
  } catch (error) {
    assert.ok(error instanceof InputError, String(error));
    return error.message;
  }
  throw new Error("expected an InputError");
}

Deno.test("parseWorkflow() names the node and input of a link to a node the workflow lacks", () => {
  const text = JSON.stringify({
    "6": node("CLIPTextEncode", { text: "{{prompt}}", clip: ["4", 1] }),
    "3": node("KSampler", { positive: ["6", 0], model: ["99", 0] }),
    "4": node("CheckpointLoaderSimple", { ckpt_name: "a.safetensors" }),
  });
  assert.equal(
    refusal(text),
    "Cannot use the ComfyUI workflow 'flux.json' as node '3' (KSampler) input 'model' links to node '99', which it does not have: fix the link, or export the workflow again",
  );
});

Deno.test("parseWorkflow() refuses the editor's format, a workflow that takes no prompt, and unknown placeholders", () => {
  assert.match(
    refusal(JSON.stringify({ nodes: [], links: [], version: 0.4 })),
    /in the editor's format, not the API format: .*Export \(API\)/,
  );
  assert.match(
    refusal(JSON.stringify({ "6": node("CLIPTextEncode", { text: "a cat" }) })),
    /nothing in it takes the prompt: put "\{\{prompt\}\}"/,
  );
  assert.match(
    refusal(JSON.stringify({ "6": node("CLIPTextEncode", { text: "{{negative_prompt}}" }) })),
    /node '6' \(CLIPTextEncode\) input 'text' has the placeholder \{\{negative_prompt\}\}, which retake does not fill: use one of .*\{\{negativePrompt\}\}/,
  );
  assert.match(
    refusal(JSON.stringify({ "3": node("KSampler", { seed: "x{{seed}}", text: "{{prompt}}" }) })),
    /\{\{seed\}\} inside a longer text: a number must be the input's whole value/,
  );
  assert.match(refusal("{ not json"), /as it is not JSON/);
});

Deno.test("parseWorkflow() checks a mapping against the nodes and inputs the workflow has", async () => {
  const text = await Deno.readTextFile(`${DATA}sdxl.json`);
  assert.match(
    refusal(text, { prompt: "66.text" }),
    /comfyui.nodes.prompt names node '66', which it does not have: its nodes are '3', '4'/,
  );
  assert.match(
    refusal(text, { prompt: "6.txt" }),
    /names input 'txt' of node '6' \(CLIPTextEncode\), which it does not have: its inputs are 'clip', 'text'/,
  );
  assert.match(
    refusal(text, { prompt: "6.clip" }),
    /node '6' \(CLIPTextEncode\) input 'clip', which is a link to another node/,
  );
  assert.match(refusal(text, { prompt: "6" }), /expected "<node id>.<input>"/);
});

Deno.test("fillWorkflow() fills numbers as numbers and text around a placeholder, leaving the workflow untouched", () => {
  const workflow = parseWorkflow(
    JSON.stringify({
      "6": node("CLIPTextEncode", { text: "photo of {{prompt}}, {{instruction}}" }),
      "7": node("CLIPTextEncode", { text: "{{negativePrompt}}" }),
      "3": node("KSampler", { seed: "{{seed}}", steps: 20 }),
    }),
    "w.json",
  );
  const graph = fillWorkflow(workflow, { prompt: "a {{seed}} cat", seed: 7, instruction: "bluer" });
  assert.equal(graph["6"]!.inputs.text, "photo of a {{seed}} cat, bluer");
  assert.equal(graph["7"]!.inputs.text, "");
  assert.equal(graph["3"]!.inputs.seed, 7);
  assert.equal(workflow.graph["3"]!.inputs.seed, "{{seed}}", "the parsed workflow is not changed");
});

Deno.test("a workflow's fingerprint changes with its content and its mapping, not with key order", async () => {
  const flux = await readWorkflow(`${DATA}flux.json`);
  const text = await Deno.readTextFile(`${DATA}flux.json`);
  const reordered = Object.fromEntries(Object.entries(JSON.parse(text)).reverse());
  assert.equal(parseWorkflow(JSON.stringify(reordered), "x").fingerprint, flux.fingerprint);
  const edited = JSON.parse(text);
  edited["17"].inputs.steps = 28;
  assert.notEqual(parseWorkflow(JSON.stringify(edited), "x").fingerprint, flux.fingerprint);
  assert.notEqual(
    parseWorkflow(text, "x", { negativePrompt: "6.text" }).fingerprint,
    flux.fingerprint,
  );
  assert.deepEqual(modelFilesOf(flux.graph), ["flux1-dev.safetensors"]);
});

Deno.test("readWorkflow() says which file it could not read and how to make one", async () => {
  await assert.rejects(
    readWorkflow(`${DATA}missing.json`),
    (error: unknown) =>
      error instanceof InputError &&
      /Cannot read the ComfyUI workflow '.*missing.json' \(comfyui.workflow\): no such file; export it from ComfyUI with Workflow → Export \(API\)/
        .test(error.message),
  );
});
