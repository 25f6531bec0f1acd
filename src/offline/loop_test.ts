import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPromptFile } from "../prompts.ts";
import { createLocalCritic } from "./critic.ts";
import { createLocalGenerator } from "./generator.ts";
import { createLocalRefiner } from "./refiner.ts";
import type { RoundHistory } from "../providers/provider.ts";

const EXAMPLES = fileURLToPath(new URL("../../prompts/example.json", import.meta.url));

Deno.test("local providers raise the critic score from round 1 to round 2 on the examples", async () => {
  const specs = await loadPromptFile(EXAMPLES);
  const generator = createLocalGenerator();
  const critic = createLocalCritic();
  const refiner = createLocalRefiner();
  const signal = new AbortController().signal;
  const dir = await Deno.makeTempDir({ prefix: "retake_loop_" });
  const rows: string[] = [];
  let improved = 0;
  const first: number[] = [];
  try {
    for (const spec of specs) {
      let prompt = spec.prompt;
      const history: RoundHistory[] = [];
      const scores: number[] = [];
      for (const iteration of [1, 2]) {
        const image = await generator.generate({
          prompt,
          spec,
          iteration,
          width: 512,
          height: 384,
          seed: 1234,
          model: "local-svg-v1",
          format: "png",
          signal,
        });
        const path = join(dir, `${spec.id}_${iteration}.png`);
        await Deno.writeFile(path, image.data as Uint8Array);
        const { critique } = await critic.critique({
          imagePath: path,
          format: "png",
          prompt,
          spec,
          iteration,
          signal,
        });
        scores.push(critique.score);
        history.push({ iteration, prompt, critique });
        if (iteration === 1) {
          prompt = (await refiner.refine({ prompt, spec, critique, history, iteration, signal }))
            .prompt;
          assert.notEqual(prompt, spec.prompt, `refiner changed nothing for ${spec.id}`);
        }
      }
      first.push(scores[0]!);
      if (scores[1]! > scores[0]!) improved++;
      rows.push(`${spec.id}: ${scores[0]} -> ${scores[1]}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(specs.length, 7);
  assert.ok(improved >= 5, `only ${improved} of 7 improved:\n${rows.join("\n")}`);
  // Round 1 must leave room to improve.
  assert.ok(first.every((s) => s < 9.5), rows.join("\n"));
});
