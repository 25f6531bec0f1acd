import assert from "node:assert/strict";
import { uniformCritique } from "../../tests/critique_fixture.ts";
import { Budget } from "../async/budget.ts";
import { loadConfig } from "../config/load.ts";
import type { Brief } from "../providers/critique.ts";
import { InputError, ProviderError } from "../errors.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import type { CritiqueRequest, ImageCritic } from "../providers/provider.ts";
import {
  createJudge,
  type Judge,
  judgeFinals,
  type JudgeOptions,
  type JudgeTask,
  parseJudge,
} from "./judge.ts";

const BRIEF: Brief = {
  checks: [
    { id: "c1", question: "Is there a lighthouse?", kind: "entity" },
    { id: "c2", question: "Is it night?", kind: "lighting" },
    { id: "c3", question: "Does it feel calm?", kind: "mood" },
  ],
};

/** A judge whose critic scores by the image's first byte and counts its calls. */
function fakeJudge(
  options: { id?: string; estimate?: number; cost?: number; fail?: () => Error } = {},
): Judge & { calls: CritiqueRequest[] } {
  const calls: CritiqueRequest[] = [];
  const critic: ImageCritic = {
    name: "fake",
    estimateCostUsd: () => options.estimate ?? 0,
    async critique(request) {
      calls.push(request);
      if (options.fail) throw options.fail();
      const byte = (await Deno.readFile(request.imagePath))[0]!;
      return {
        critique: uniformCritique(byte, {
          ...(request.brief && {
            checks: request.brief.checks.map((c, i) => ({
              id: c.id,
              passed: i < byte % 4,
              reason: "measured",
            })),
          }),
        }),
        model: "fake-model",
        costUsd: options.cost ?? 0,
      };
    },
  };
  return {
    critic,
    provider: "fake",
    model: "fake-model",
    id: options.id ?? "fake:fake-model",
    independent: true,
    loopCritic: "local:local-metrics-v1",
    calls,
  };
}

/** A folder with one image per strategy and prompt, whose first byte is its score. */
async function setUp(scores: Record<string, Record<string, number>>) {
  const root = await Deno.makeTempDir({ prefix: "retake-judge-" });
  const tasks: JudgeTask[] = [];
  for (const [strategy, byId] of Object.entries(scores)) {
    for (const [id, score] of Object.entries(byId)) {
      const dir = `${root}/eval/${strategy}/${id}`;
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeFile(`${dir}/best.png`, new Uint8Array([score, 1, 2, 3]));
      const spec: PromptSpec = { id, prompt: `Prompt ${id}`, extra: {} };
      tasks.push({
        strategy: strategy as JudgeTask["strategy"],
        spec,
        image: `${dir}/best.png`,
        iteration: 1,
        brief: BRIEF,
      });
    }
  }
  const options = (budget = new Budget()): JudgeOptions => ({
    cacheDir: `${root}/eval/judge`,
    within: root,
    budget,
    retry: { maxAttempts: 1 },
    concurrency: 1,
  });
  return { root, tasks, options };
}

Deno.test("judgeFinals() judges each final image once and answers a rerun from the cache", async () => {
  const { root, tasks, options } = await setUp({
    refine: { a: 9, b: 7 },
    "best-of-n": { a: 8, b: 7 },
  });
  try {
    const judge = fakeJudge({ cost: 0.002 });
    const first = await judgeFinals(judge, tasks, options());
    assert.equal(judge.calls.length, 4);
    assert.deepEqual(first.verdicts.map((v) => [v.strategy, v.id, v.status, v.score]), [
      ["refine", "a", "judged", 9],
      ["refine", "b", "judged", 7],
      ["best-of-n", "a", "judged", 8],
      ["best-of-n", "b", "judged", 7],
    ]);
    assert.equal(first.spentUsd, 0.008);
    // Every call judged the original prompt against the brief.
    assert.ok(judge.calls.every((c) => c.prompt.startsWith("Prompt ") && c.brief === BRIEF));

    const again = fakeJudge({ cost: 0.002 });
    const second = await judgeFinals(again, tasks, options());
    assert.equal(again.calls.length, 0, "a rerun pays for nothing");
    assert.equal(second.spentUsd, 0);
    assert.deepEqual(
      second.verdicts.map((v) => [v.status, v.score, v.costUsd]),
      first.verdicts.map((v) => ["cached", v.score, v.costUsd]),
    );
    const cached = JSON.parse(await Deno.readTextFile(`${root}/eval/judge/refine/a.json`));
    assert.equal(cached.judge, "fake:fake-model");
    assert.equal(cached.image, "eval/refine/a/best.png");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("judgeFinals() judges again when the image, the brief or the judge changed", async () => {
  const { root, tasks, options } = await setUp({ refine: { a: 9, b: 6 } });
  try {
    await judgeFinals(fakeJudge(), tasks, options());
    await Deno.writeFile(tasks[0]!.image!, new Uint8Array([5, 9, 9]));
    const changedImage = fakeJudge();
    const run = await judgeFinals(changedImage, tasks, options());
    assert.deepEqual(changedImage.calls.map((c) => c.spec.id), ["a"]);
    assert.equal(run.verdicts[0]!.score, 5);

    const otherBrief = tasks.map((t) => ({ ...t, brief: { checks: BRIEF.checks.slice(0, 1) } }));
    const changedBrief = fakeJudge();
    await judgeFinals(changedBrief, otherBrief, options());
    assert.equal(changedBrief.calls.length, 2);

    const otherJudge = fakeJudge({ id: "fake:another-model" });
    await judgeFinals(otherJudge, otherBrief, options());
    assert.equal(otherJudge.calls.length, 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("judgeFinals() counts the brief's checks passed and marks a prompt without a final image", async () => {
  // Score 9 → 9 % 4 = 1 check passed; 6 → 2; 7 → 3.
  const { root, tasks, options } = await setUp({ single: { a: 9, b: 6, c: 7 } });
  try {
    const withMissing = [...tasks, { ...tasks[0]!, spec: { ...tasks[0]!.spec, id: "d" } }];
    withMissing[3] = { ...withMissing[3]!, image: undefined };
    const noBrief = { ...tasks[1]!, strategy: "refine" as const, brief: undefined };
    const run = await judgeFinals(fakeJudge(), [...withMissing, noBrief], options());
    assert.deepEqual(
      run.verdicts.map((v) => [v.id, v.status, v.checksPassed, v.checksTotal]),
      [
        ["a", "judged", 1, 3],
        ["b", "judged", 2, 3],
        ["c", "judged", 3, 3],
        ["d", "no final image", undefined, undefined],
        ["b", "judged", undefined, undefined],
      ],
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("judgeFinals() starts only the calls the budget covers", async () => {
  const { root, tasks, options } = await setUp({ refine: { a: 9, b: 8, c: 7, d: 6 } });
  try {
    // Each call reserves $0.01 and costs $0.008: $0.025 covers two (0.008 + 0.008 + 0.01 > 0.025).
    const judge = fakeJudge({ estimate: 0.01, cost: 0.008 });
    const budget = new Budget(0.025);
    const run = await judgeFinals(judge, tasks, options(budget));
    assert.equal(judge.calls.length, 2);
    assert.deepEqual(run.verdicts.map((v) => v.status), [
      "judged",
      "judged",
      "not judged",
      "not judged",
    ]);
    assert.equal(run.stoppedBy, "budget");
    assert.equal(run.spentUsd, 0.016);
    assert.ok(budget.spentUsd <= 0.025);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("judgeFinals() stops calling after a fatal error, and starts nothing once stopped", async () => {
  const { root, tasks, options } = await setUp({ refine: { a: 9, b: 8, c: 7 } });
  try {
    const judge = fakeJudge({
      fail: () =>
        new ProviderError("The key was rejected", {
          provider: "fake",
          retryable: false,
          fatal: true,
        }),
    });
    const run = await judgeFinals(judge, tasks, options());
    assert.equal(judge.calls.length, 1);
    assert.deepEqual(run.verdicts.map((v) => v.status), ["failed", "not judged", "not judged"]);
    assert.equal(run.stoppedBy, "fatal");
    assert.match(run.verdicts[0]!.error!, /key was rejected/);

    await judgeFinals(fakeJudge(), tasks.slice(0, 1), options());
    const drained = fakeJudge();
    const stopped = await judgeFinals(drained, tasks, { ...options(), stop: AbortSignal.abort() });
    assert.equal(drained.calls.length, 0);
    assert.deepEqual(stopped.verdicts.map((v) => v.status), ["cached", "not judged", "not judged"]);
    assert.equal(stopped.stoppedBy, "interrupt");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("judgeFinals() refuses to write a verdict through a link, before paying for it", async () => {
  const { root, tasks, options } = await setUp({ refine: { a: 9 } });
  const outside = await Deno.makeTempDir({ prefix: "retake-judge-outside-" });
  try {
    await Deno.mkdir(`${root}/eval/judge`, { recursive: true });
    await Deno.symlink(outside, `${root}/eval/judge/refine`);
    const judge = fakeJudge();
    const run = await judgeFinals(judge, tasks, options());
    assert.equal(judge.calls.length, 0);
    assert.equal(run.verdicts[0]!.status, "failed");
    assert.match(run.verdicts[0]!.error!, /symbolic link/);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(outside)), []);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

async function config(args: string[], env: Record<string, string> = {}) {
  const cwd = await Deno.makeTempDir({ prefix: "retake-judge-config-" });
  try {
    return (await loadConfig({ args, env, cwd, readTextFile: Deno.readTextFile })).config;
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

Deno.test("createJudge() offline is the local critic, marked as the loop's own", async () => {
  const judge = await createJudge(await config(["--offline"], { GEMINI_API_KEY: "k" }), undefined);
  assert.equal(judge.id, "local:local-metrics-v1");
  assert.equal(judge.independent, false);
  assert.equal(judge.loopCritic, "local:local-metrics-v1");
  assert.equal(typeof judge.critic.critique, "function");
});

Deno.test("createJudge() picks a provider that is not the loop's critic when one has a key", async () => {
  const both = await config([], { GEMINI_API_KEY: "g-key", OPENAI_API_KEY: "o-key" });
  // OPENAI_API_KEY is often set for other tools: OpenAI judges only when named.
  const unnamed = await createJudge(both, undefined);
  assert.equal(unnamed.provider, "gemini");
  const other = await createJudge(both, parseJudge("openai"));
  assert.equal(other.provider, "openai");
  assert.equal(other.independent, true);
  assert.match(other.loopCritic, /^gemini:/);

  const onlyGemini = await config([], { GEMINI_API_KEY: "g-key" });
  const same = await createJudge(onlyGemini, undefined);
  assert.equal(same.provider, "gemini");
  assert.equal(same.independent, false, "no other critic: the loop's own, said so");
  const otherModel = await createJudge(onlyGemini, parseJudge("gemini:gemini-2.5-pro"));
  assert.equal(otherModel.id, "gemini:gemini-2.5-pro");
  assert.equal(otherModel.independent, true);
});

Deno.test("createJudge() refuses a judge that cannot run, naming what to do", async () => {
  const offline = await config(["--offline"]);
  await assert.rejects(
    createJudge(offline, parseJudge("fal")),
    /no provider of that name critiques/,
  );
  await assert.rejects(createJudge(offline, parseJudge("gemini")), /with --offline/);
  await assert.rejects(createJudge(offline, parseJudge("local:big")), /local critic has one model/);
  await assert.rejects(createJudge(await config([]), parseJudge("gemini")), /GEMINI_API_KEY/);
  await assert.rejects(createJudge(offline, parseJudge("gemini")), InputError);
});

Deno.test("parseJudge() reads PROVIDER or PROVIDER:MODEL", () => {
  assert.deepEqual(parseJudge("gemini"), { provider: "gemini" });
  assert.deepEqual(parseJudge("openai:gpt-4.1-mini"), {
    provider: "openai",
    model: "gpt-4.1-mini",
  });
  assert.deepEqual(parseJudge("openai:org/model:tag"), {
    provider: "openai",
    model: "org/model:tag",
  });
  assert.throws(() => parseJudge(":x"), InputError);
  assert.throws(() => parseJudge("gemini:"), /PROVIDER or PROVIDER:MODEL/);
});
