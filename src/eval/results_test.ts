import assert from "node:assert/strict";
import type { Brief } from "../providers/critique.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { readStrategyResults } from "./results.ts";

const BRIEF: Brief = { checks: [{ id: "c1", question: "Is there a boat?", kind: "entity" }] };

function spec(id: string): PromptSpec {
  return { id, prompt: `Prompt ${id}`, extra: {} };
}

async function write(path: string, value: unknown): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, typeof value === "string" ? value : JSON.stringify(value));
}

Deno.test("readStrategyResults() reads each prompt's final image, spend and brief", async () => {
  const root = await Deno.makeTempDir({ prefix: "retake-eval-results-" });
  const dir = `${root}/eval/refine`;
  try {
    await write(`${dir}/run.json`, { status: "completed with failures" });
    const it = (n: number) => ({
      iteration: n,
      prompt: "p",
      seed: n,
      image: `iteration-${n}.png`,
      steps: {},
    });
    await write(`${dir}/done/metadata.json`, {
      id: "done",
      status: "completed",
      iterations: [it(1), it(2), { iteration: 3, prompt: "p", seed: 3, steps: {} }],
      bestIteration: 2,
      bestScore: 8.5,
      bestImage: "best.png",
      costUsd: 0.012,
      durationMs: 3400,
    });
    await write(`${dir}/done/brief.json`, BRIEF);
    await write(`${dir}/done/best.png`, "png");
    await write(`${dir}/half/metadata.json`, {
      id: "half",
      status: "interrupted",
      iterations: [it(1)],
      bestImage: "best.png",
      costUsd: 0.004,
      durationMs: 900,
      brief: BRIEF,
    });
    await write(`${dir}/other/metadata.json`, { id: "someone-else", iterations: [] });
    await write(`${dir}/broken/metadata.json`, "{ not json");
    const specs = ["done", "half", "other", "broken", "never"].map(spec);
    const results = await readStrategyResults("refine", dir, specs, root);
    assert.equal(results.runStatus, "completed with failures");
    const [done, half, other, broken, never] = results.prompts;
    assert.deepEqual(done, {
      id: "done",
      folder: "done",
      status: "completed",
      finalImage: `${dir}/done/best.png`,
      finalIteration: 2,
      images: 2,
      costUsd: 0.012,
      durationMs: 3400,
      criticScore: 8.5,
      brief: BRIEF,
    });
    assert.equal(half!.finalImage, undefined, "only a completed prompt has a final image");
    assert.deepEqual(half!.brief, BRIEF, "the record's brief when there is no brief.json");
    assert.equal(half!.costUsd, 0.004);
    assert.equal(other!.status, "unreadable");
    assert.match(other!.problem!, /belongs to prompt 'someone-else'/);
    assert.equal(broken!.status, "unreadable");
    assert.match(broken!.problem!, /not valid JSON/);
    assert.deepEqual([never!.status, never!.images, never!.costUsd], ["not run", 0, 0]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("readStrategyResults() gives no final image a record points outside its folder", async () => {
  const root = await Deno.makeTempDir({ prefix: "retake-eval-results-" });
  const dir = `${root}/eval/refine`;
  const outside = await Deno.makeTempFile({ prefix: "retake-eval-secret-", suffix: ".png" });
  try {
    const record = (id: string, bestImage: string) => ({
      id,
      status: "completed",
      iterations: [{ iteration: 1, prompt: "p", seed: 1, image: "iteration-1.png", steps: {} }],
      bestIteration: 1,
      bestImage,
      costUsd: 0,
      durationMs: 1,
    });
    await write(`${dir}/up/metadata.json`, record("up", `../../../${outside.split("/").pop()}`));
    await write(`${dir}/linked/metadata.json`, record("linked", "best.png"));
    await Deno.symlink(outside, `${dir}/linked/best.png`);
    await write(`${dir}/other/metadata.json`, record("other", "iteration-1.png"));
    await write(`${dir}/other/iteration-1.png`, "png");
    const results = await readStrategyResults(
      "refine",
      dir,
      ["up", "linked", "other"].map(spec),
      root,
    );
    assert.deepEqual(results.prompts.map((p) => p.finalImage), [undefined, undefined, undefined]);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside);
  }
});
