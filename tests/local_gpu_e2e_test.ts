/**
 * The whole loop on the user's own machine: the real CLI with `--generator comfyui` or
 * `--generator a1111` and `--critic openai` pointed at a server on this machine, against the
 * ComfyUI, AUTOMATIC1111 and OpenAI-compatible stand-ins, with no fal or Gemini key set.
 */
import assert from "node:assert/strict";
import type { PromptRecord } from "../src/output/record.ts";
import { type A1111StandIn, startA1111StandIn } from "./a1111_standin.ts";
import { cliCommand, EXAMPLE, ROOT, runCli } from "./cli.ts";
import { type ComfyStandIn, startComfyStandIn } from "./comfyui_standin.ts";
import { type OpenAIStandIn, startOpenAIStandIn } from "./openai_standin.ts";

const FLUX = `${ROOT}tests/data/comfyui/flux.json`;
const CONFIG = {
  comfyui: { pollIntervalMs: 5 },
  a1111: { pollIntervalMs: 5 },
  retry: { minTimeoutMs: 5, maxTimeoutMs: 20 },
  timeoutMs: 30_000,
};
const BATCH = {
  prompts: [
    { id: "kite", prompt: "A red kite over a windy beach" },
    { id: "mill", prompt: "A windmill in a tulip field", negativePrompt: "people" },
    { id: "lamp", prompt: "A paper lantern on a rainy street at night" },
  ],
};

interface Setup {
  cwd: string;
  openai: OpenAIStandIn;
  env: Record<string, string>;
}

async function withLocal<S extends ComfyStandIn | A1111StandIn>(
  start: () => Promise<S>,
  body: (ctx: Setup & { server: S }) => Promise<void>,
): Promise<void> {
  const server = await start();
  // A server on this machine needs no key: retake sends a placeholder, which this one expects.
  const openai = await startOpenAIStandIn({ key: "retake-no-key" });
  const cwd = await Deno.makeTempDir({ prefix: "retake-local-gpu-" });
  try {
    await Deno.writeTextFile(`${cwd}/retake.config.json`, JSON.stringify(CONFIG));
    await Deno.writeTextFile(`${cwd}/batch.json`, JSON.stringify(BATCH));
    await Deno.copyFile(FLUX, `${cwd}/flux.json`);
    const env = {
      OPENAI_BASE_URL: openai.url,
      ...("submits" in server ? { COMFYUI_BASE_URL: server.url } : { A1111_BASE_URL: server.url }),
      RETAKE_RETRY_TIME_SCALE: "0.001",
    };
    await body({ cwd, openai, env, server });
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await server.close();
    await openai.close();
  }
}

/** Every prompt's `metadata.json` in the one batch folder under `out`. */
async function records(out: string): Promise<PromptRecord[]> {
  const found: PromptRecord[] = [];
  for await (const batch of Deno.readDir(out)) {
    for await (const entry of Deno.readDir(`${out}/${batch.name}`)) {
      if (!entry.isDirectory || entry.name.startsWith("_")) continue;
      // A run killed as it began a prompt may have left its folder before its metadata.
      const text = await Deno.readTextFile(`${out}/${batch.name}/${entry.name}/metadata.json`)
        .catch(() => undefined);
      if (text !== undefined) found.push(JSON.parse(text));
    }
  }
  return found.sort((a, b) => a.id.localeCompare(b.id));
}

async function allText(dir: string): Promise<string> {
  let text = "";
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) text += await allText(path);
    else if (!/\.(png|jpg)$/.test(entry.name)) text += await Deno.readTextFile(path);
  }
  return text;
}

const comfy = () => startComfyStandIn();

Deno.test("retake --generator comfyui --workflow flux.json runs the example batch on the local stand-ins, one image per submit, one at a time, free under --max-cost 0", () =>
  withLocal(comfy, async ({ cwd, env, server, openai }) => {
    const result = await runCli([
      "--out",
      "out",
      "--generator",
      "comfyui",
      "--workflow",
      "flux.json",
      "--critic",
      "openai",
      "--critic-model",
      "llava",
      "-c",
      "4",
      "--max-cost",
      "0",
      EXAMPLE,
    ], { cwd, env });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /Running offline/);
    const recs = await records(`${cwd}/out`);
    const expected = JSON.parse(await Deno.readTextFile(EXAMPLE)).prompts.length;
    assert.equal(recs.length, expected);
    const submitted = new Set(server.submits.map((s) => s.promptId));
    let images = 0;
    for (const rec of recs) {
      assert.equal(rec.status, "completed", `${rec.id}: ${String(rec.error?.message)}`);
      assert.deepEqual(rec.providers, {
        generator: "comfyui",
        critic: "openai",
        refiner: "openai",
      });
      assert.equal(rec.costUsd, 0);
      assert.equal(rec.pending, undefined);
      for (const it of rec.iterations) {
        const generate = it.steps.generate!;
        assert.equal(generate.provider, "comfyui");
        assert.equal(generate.costUsd, 0);
        assert.equal(generate.costUnknown, undefined);
        assert.ok(submitted.has(generate.requestId!), "its request is a prompt the server ran");
        assert.equal(generate.modelVersion, "flux1-dev.safetensors");
        assert.ok(it.inferenceMs !== undefined, "GPU time recorded");
        assert.equal(typeof it.seed, "number");
        images++;
      }
      // The prompt's own text reached the workflow's {{prompt}}.
      const first = server.submits.find((s) =>
        s.promptId === rec.iterations[0]!.steps.generate!.requestId
      )!;
      assert.equal(first.graph["6"]!.inputs.text, rec.iterations[0]!.prompt);
    }
    assert.equal(server.submits.length, images, "no submit without its image");
    assert.equal(server.maxQueued, 1, "one prompt at a time on the GPU, despite -c 4");
    assert.ok(openai.requests.length > 0);
  }));

Deno.test("retake --generator a1111 runs the example batch on the local stand-ins, one image at a time, the --api-auth secret written nowhere", () =>
  withLocal(
    () => startA1111StandIn({ auth: "painter:s3cret-pass-77" }),
    async ({ cwd, env, server }) => {
      const result = await runCli([
        "--out",
        "out",
        "--generator",
        "a1111",
        "--api-auth",
        "painter:s3cret-pass-77",
        "--critic",
        "openai",
        "--critic-model",
        "llava",
        "-v",
        EXAMPLE,
      ], { cwd, env });
      assert.equal(result.code, 0, result.stderr);
      const recs = await records(`${cwd}/out`);
      let images = 0;
      for (const rec of recs) {
        assert.equal(rec.status, "completed", `${rec.id}: ${String(rec.error?.message)}`);
        assert.equal(rec.providers.generator, "a1111");
        for (const it of rec.iterations) {
          assert.equal(it.steps.generate!.costUsd, 0);
          assert.equal(it.steps.generate!.modelVersion, "v1-5-pruned-emaonly");
          images++;
        }
      }
      assert.equal(server.requests.length, images);
      assert.equal(server.unauthorized, 0);
      assert.equal(server.maxOpen, 1, "one image at a time");
      const everything = (await allText(`${cwd}/out`)) + result.stderr + result.stdout;
      assert.ok(!everything.includes("s3cret-pass-77"), "the --api-auth password leaked");
      assert.ok(!everything.includes(btoa("painter:s3cret-pass-77")), "the auth header leaked");
    },
  ));

Deno.test("kill -9 mid-generation, then a rerun: the ComfyUI prompt is recovered by its id, never submitted twice", () =>
  withLocal(comfy, async ({ cwd, env, server }) => {
    const args = [
      "--out",
      "out",
      "-q",
      "--generator",
      "comfyui",
      "--workflow",
      "flux.json",
      "--critic",
      "openai",
      "--critic-model",
      "llava",
      "batch.json",
    ];
    server.hold();
    const child = cliCommand(args, { cwd, env, output: "null" }).spawn();
    // Killed once the server has the first prompt, while it runs.
    await server.submitted(1);
    child.kill("SIGKILL");
    await child.status;
    const id = server.submits[0]!.promptId;
    const left = (await records(`${cwd}/out`)).find((r) => r.pending !== undefined);
    assert.equal(left?.pending?.requestId, id, "the id was on disk before the submit");

    const calls = server.calls.length;
    const rerun = cliCommand(args, { cwd, env }).output();
    // The prompt is still running when the rerun starts; it finishes soon after.
    await server.called(
      /^GET \/object_info\//,
      server.calls.slice(0, calls).filter((c) => c.startsWith("GET /object_info/")).length + 1,
    );
    server.release();
    const { code, stderr } = await rerun;
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const recs = await records(`${cwd}/out`);
    let images = 0;
    for (const rec of recs) {
      assert.equal(rec.status, "completed");
      images += rec.iterations.length;
    }
    assert.equal(left!.iterations.length, 0);
    const recovered = recs.find((r) => r.id === left!.id)!;
    assert.equal(recovered.iterations[0]!.steps.generate!.requestId, id);
    assert.equal(
      server.submits.filter((s) =>
        s.texts.includes(BATCH.prompts.find((p) => p.id === left!.id)!.prompt)
      )
        .length,
      1,
      "the killed run's prompt was submitted once",
    );
    assert.equal(server.submits.length, images, "every submit became a saved image");
    assert.ok(server.calls.includes(`GET /history/${id}`), "the rerun asked for it by its id");
  }));

Deno.test("a workflow with a link to a node it lacks stops the run before any submit, naming the node and input", () =>
  withLocal(comfy, async ({ cwd, env, server }) => {
    const broken = JSON.parse(await Deno.readTextFile(FLUX));
    broken["13"].inputs.latent_image = ["72", 0];
    await Deno.writeTextFile(`${cwd}/broken.json`, JSON.stringify(broken));
    const result = await runCli(
      ["--out", "out", "--generator", "comfyui", "--workflow", "broken.json", "batch.json"],
      { cwd, env },
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /Cannot use the ComfyUI workflow 'broken.json' as node '13' \(SamplerCustomAdvanced\) input 'latent_image' links to node '72', which it does not have/,
    );
    assert.equal(server.submits.length + server.refusals, 0, "nothing submitted");
    assert.equal(await Deno.stat(`${cwd}/out`).then(() => true, () => false), false);
  }));

Deno.test("ComfyUI refusing the workflow (400 node_errors) stops the run at once: exit 3, no second submit", () =>
  withLocal(comfy, async ({ cwd, env, server }) => {
    server.inject("node-errors", 10);
    const result = await runCli(
      [
        "--out",
        "out",
        "--generator",
        "comfyui",
        "--workflow",
        "flux.json",
        "--critic",
        "openai",
        "--critic-model",
        "llava",
        "-c",
        "4",
        "batch.json",
      ],
      { cwd, env },
    );
    assert.equal(result.code, 3, result.stderr);
    assert.match(
      result.stderr,
      /ComfyUI refused the workflow \(HTTP 400 prompt_outputs_failed_validation.*node '13' \(SamplerCustomAdvanced\): input 'steps': Custom validation failed/,
    );
    assert.equal(server.refusals, 1, "one submit, then the run stopped");
    assert.equal(server.submits.length, 0);
    const recs = await records(`${cwd}/out`);
    assert.ok(recs.every((r) => r.pending === undefined), "no refused request left pending");
  }));
