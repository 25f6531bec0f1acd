import assert from "node:assert/strict";
import sharp from "sharp";
import { briefSchema } from "../providers/critique.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { createLocalCritic } from "./critic.ts";
import { localBrief } from "./brief.ts";
import { createLocalGenerator } from "./generator.ts";

const LIGHTHOUSE: PromptSpec = {
  id: "lighthouse",
  prompt: "A white lighthouse on rocky cliffs at sunset, orange sky, crashing waves",
  mood: "dramatic",
  extra: {},
};

Deno.test("localBrief() turns the prompt's cues into 4–12 yes/no checks with ids and kinds", () => {
  const brief = briefSchema.parse(localBrief(LIGHTHOUSE));
  assert.ok(brief.checks.length >= 4 && brief.checks.length <= 12, `${brief.checks.length} checks`);
  assert.deepEqual(brief.checks.map((c) => c.id), brief.checks.map((_, i) => `c${i + 1}`));
  const questions = brief.checks.map((c) => c.question).join(" | ");
  assert.match(questions, /lighthouse/);
  assert.match(questions, /sunset/);
  assert.match(questions, /orange/);
  assert.ok(brief.checks.some((c) => c.kind === "entity"));
  assert.ok(brief.checks.some((c) => c.kind === "lighting"));
  // A bare prompt still gets the basics.
  assert.ok(localBrief({ id: "x", prompt: "something", extra: {} }).checks.length >= 2);
});

Deno.test("the local critic answers every check by measurement: a blank image fails what a rendered one passes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const brief = localBrief(LIGHTHOUSE);
    const critic = createLocalCritic();
    const signal = new AbortController().signal;
    const image = await createLocalGenerator().generate({
      prompt: LIGHTHOUSE.prompt,
      spec: LIGHTHOUSE,
      iteration: 1,
      width: 256,
      height: 192,
      seed: 7,
      model: "local-svg-v1",
      format: "png",
      signal,
    });
    await Deno.writeFile(`${dir}/drawn.png`, image.data as Uint8Array);
    await sharp({ create: { width: 256, height: 192, channels: 3, background: "#808080" } })
      .png().toFile(`${dir}/blank.png`);
    const answer = async (file: string) =>
      (await critic.critique({
        imagePath: `${dir}/${file}`,
        format: "png",
        prompt: LIGHTHOUSE.prompt,
        spec: LIGHTHOUSE,
        brief,
        iteration: 1,
        signal,
      })).critique.checks!;
    const drawn = await answer("drawn.png");
    const blank = await answer("blank.png");
    assert.deepEqual(drawn.map((c) => c.id), brief.checks.map((c) => c.id), "every check answered");
    const passed = (answers: typeof drawn) => answers.filter((c) => c.passed).length;
    assert.ok(passed(drawn) > passed(blank), `drawn ${passed(drawn)}, blank ${passed(blank)}`);
    for (const failed of blank.filter((c) => !c.passed)) {
      assert.ok(failed.fix, `a failed check has a fix: ${failed.id}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
