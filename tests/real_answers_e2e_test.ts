/**
 * The real CLI, the real SDKs, and the answers real services give: anything the JSON Schema sent
 * allows, and error bodies recorded from Gemini and OpenAI (each test names its source). Every
 * test counts the paid calls the stand-ins received against the minimum the work needs.
 */
import assert from "node:assert/strict";
import type { PromptRecord } from "../src/output/record.ts";
import { runCli } from "./cli.ts";
import { startFalStandIn } from "./fal_standin.ts";
import {
  type GeminiStandInOptions,
  type RecordedAnswer,
  startGeminiStandIn,
} from "./gemini_standin.ts";
import { startOpenAIStandIn } from "./openai_standin.ts";

const FAL_KEY = "fal-test-key-6f1d2c9a:0b7e4f3358a1";
const GEMINI_KEY = "AQ.test-gemini-auth-key-9f8e7d6c";
const OPENAI_KEY = "sk-test-openai-key-7c1e9b2d4f6a";

const CONFIG = JSON.stringify({
  fal: { pollIntervalMs: 5 },
  retry: { minTimeoutMs: 5, maxTimeoutMs: 20 },
  timeoutMs: 20_000,
});

const PROMPTS = {
  prompts: [
    { id: "harbor", title: "Harbor", mood: "calm", prompt: "A harbor at night under a full moon" },
    { id: "forest", prompt: "A green forest at dawn with mist" },
    { id: "barn", scene: "farm", prompt: "A red barn in a wheat field" },
    { id: "lake", prompt: "A blue lake with one white sailboat" },
  ],
};

interface Services {
  fal: Awaited<ReturnType<typeof startFalStandIn>>;
  gemini: Awaited<ReturnType<typeof startGeminiStandIn>>;
  openai: Awaited<ReturnType<typeof startOpenAIStandIn>>;
  cwd: string;
  env: Record<string, string>;
}

async function withServices(
  gemini: GeminiStandInOptions,
  body: (s: Services) => Promise<void>,
): Promise<void> {
  const s: Services = {
    fal: await startFalStandIn({ key: FAL_KEY }),
    gemini: await startGeminiStandIn({ key: GEMINI_KEY, ...gemini }),
    openai: await startOpenAIStandIn({ key: OPENAI_KEY }),
    cwd: await Deno.makeTempDir({ prefix: "retake-real-answers-" }),
    env: {},
  };
  s.env = {
    FAL_KEY,
    FAL_BASE_URL: s.fal.url,
    GEMINI_API_KEY: GEMINI_KEY,
    GEMINI_BASE_URL: s.gemini.url,
    OPENAI_API_KEY: OPENAI_KEY,
    OPENAI_BASE_URL: s.openai.url,
    // Server hints of seconds become milliseconds: no real sleeps in tests.
    RETAKE_RETRY_TIME_SCALE: "0.001",
  };
  try {
    await Deno.writeTextFile(`${s.cwd}/retake.config.json`, CONFIG);
    await Deno.writeTextFile(`${s.cwd}/batch.json`, JSON.stringify(PROMPTS));
    await body(s);
  } finally {
    await Deno.remove(s.cwd, { recursive: true });
    await s.fal.close();
    await s.gemini.close();
    await s.openai.close();
  }
}

async function records(dir: string): Promise<PromptRecord[]> {
  const found: PromptRecord[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isDirectory || entry.name.startsWith("_")) continue;
    found.push(JSON.parse(await Deno.readTextFile(`${dir}/${entry.name}/metadata.json`)));
  }
  return found;
}

/** The paid text calls a record accounts for: its brief, each critique and each refinement. */
function textSteps(record: PromptRecord): number {
  return (record.briefStep ? 1 : 0) +
    record.iterations.reduce(
      (n, it) => n + (it.steps.critique ? 1 : 0) + (it.steps.refine ? 1 : 0),
      0,
    );
}

async function runJson(dir: string): Promise<{ status: string }> {
  return JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
}

for (const seed of [11, 12, 13]) {
  Deno.test(`a Gemini that answers anything the sent schema allows: every prompt completes, one call a step (seed ${seed})`, () =>
    withServices({ answers: { seed } }, async ({ gemini, cwd, env }) => {
      const result = await runCli(["--out", "out", "-n", "3", "batch.json"], { cwd, env });
      assert.equal(result.code, 0, result.stderr);
      const recs = await records(`${cwd}/out/batch`);
      assert.equal(recs.length, 4);
      for (const r of recs) assert.equal(r.status, "completed", `${r.id}: ${r.error?.message}`);
      // Paid Gemini calls: exactly what the records account for, nothing paid twice.
      const needed = recs.reduce((n, r) => n + textSteps(r), 0);
      assert.equal(gemini.requests.length, needed);
      // What was read leniently is recorded with its step.
      const notes = recs.flatMap((r) => [
        ...r.briefStep?.normalised ?? [],
        ...r.iterations.flatMap((it) => [
          ...it.steps.critique?.normalised ?? [],
          ...it.steps.refine?.normalised ?? [],
        ]),
      ]);
      assert.ok(notes.length > 0);
    }));
}

/**
 * Gemini's 429 for a model the key has no quota for: the body as quoted in
 * continuedev/continue#9570 (2026-01-16, gemini-3-pro), with its "limit: 0" lines and a retry
 * hint of 45.6 s that would only be refused again.
 */
const GEMINI_LIMIT_ZERO: RecordedAnswer = {
  status: 429,
  body: {
    error: {
      code: 429,
      message:
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/rate-limit. \n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: gemini-3-pro\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: gemini-3-pro\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_input_token_count, limit: 0, model: gemini-3-pro\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_input_token_count, limit: 0, model: gemini-3-pro\nPlease retry in 45.578569677s.",
      status: "RESOURCE_EXHAUSTED",
      details: [{
        "@type": "type.googleapis.com/google.rpc.Help",
        links: [{
          description: "Learn more about Gemini API quotas",
          url: "https://ai.google.dev/gemini-api/docs/rate-limits",
        }],
      }],
    },
  },
};

/**
 * Gemini's 429 for a used-up daily quota: the body quoted in google-gemini/gemini-cli#8437
 * (2025-09-14; printed there as a Python dict, here as the JSON it was), whose `QuotaFailure`
 * names per-minute and per-day quotas.
 */
const GEMINI_PER_DAY: RecordedAnswer = {
  status: 429,
  body: {
    error: {
      code: 429,
      message:
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
      status: "RESOURCE_EXHAUSTED",
      details: [{
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        violations: [
          {
            quotaMetric:
              "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
            quotaId: "GenerateContentInputTokensPerModelPerMinute-FreeTier",
            quotaDimensions: { location: "global", model: "gemini-2.5-flash-preview-image" },
          },
          {
            quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            quotaId: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            quotaDimensions: { location: "global", model: "gemini-2.5-flash-preview-image" },
          },
          {
            quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            quotaId: "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            quotaDimensions: { model: "gemini-2.5-flash-preview-image", location: "global" },
          },
        ],
      }, {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        retryDelay: "38s",
      }],
    },
  },
};

for (
  const [name, recorded, expected] of [
    [
      "a quota of 0 (continuedev/continue#9570)",
      GEMINI_LIMIT_ZERO,
      /quota for it is 0 \(.*free tier\)/,
    ],
    [
      "a used-up daily quota (google-gemini/gemini-cli#8437)",
      GEMINI_PER_DAY,
      /daily quota is used up \(GenerateRequestsPerDayPerProjectPerModel-FreeTier\); it refills at midnight Pacific time/,
    ],
  ] as const
) {
  Deno.test(`Gemini's 429 for ${name} stops the run with exit 3 after one Gemini call`, () =>
    withServices({}, async ({ gemini, fal, cwd, env }) => {
      gemini.replay(recorded);
      const result = await runCli(["--out", "out", "-n", "2", "batch.json"], { cwd, env });
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr + result.stdout, expected);
      assert.match(
        result.stderr + result.stdout,
        /enable billing .* another key, or choose another model/,
      );
      // Before: 31 calls a step, each waiting the 38–46 s hint, for every prompt.
      assert.equal(gemini.requests.length, 1);
      // fal was paid only for images started before the critic's first answer.
      assert.ok(fal.calls("submit").length <= PROMPTS.prompts.length);
      assert.equal((await runJson(`${cwd}/out/batch`)).status, "stopped");
      // The prompt whose call was refused records why.
      const failed = (await records(`${cwd}/out/batch`)).filter((r) => r.status === "failed");
      assert.equal(failed.length, 1);
      assert.match(failed[0]!.error!.message, expected);
    }));
}

/**
 * OpenAI's 429 for a per-day limit states its wait only in the message. The shape is OpenAI's
 * (`rate_limit_exceeded`, as quoted in MSU-AI-Agents/fall-2025-course#76); the 114h18m wait is the
 * one measured against the real service when this was filed (retake issue 18).
 */
const OPENAI_DAYS: RecordedAnswer = {
  status: 429,
  body: {
    error: {
      message:
        "Rate limit reached for gpt-4o-mini in organization org-standin on requests per day (RPD): Limit 10000, Used 10000, Requested 1. Please try again in 114h18m0s. Visit https://platform.openai.com/account/rate-limits to learn more.",
      type: "requests",
      param: null,
      code: "rate_limit_exceeded",
    },
  },
};

Deno.test("OpenAI's 429 asking to wait 114h18m stops the run with exit 3, naming when to resume, after one call", () =>
  withServices({}, async ({ openai, cwd, env }) => {
    openai.replay(OPENAI_DAYS);
    const result = await runCli(
      [
        "--out",
        "out",
        "-n",
        "2",
        "--critic",
        "openai",
        "--critic-model",
        "gpt-4o-mini",
        "batch.json",
      ],
      { cwd, env },
    );
    assert.equal(result.code, 3, result.stderr);
    const said = result.stderr + result.stdout;
    assert.match(said, /asks to wait 114h18m, longer than the 2m00s retake waits/);
    assert.match(said, /run the same command after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ to resume/);
    // Before: 31 calls a step, backing off blindly for 10–13 minutes each.
    assert.equal(openai.requests.length, 1);
    const run = await runJson(`${cwd}/out/batch`);
    assert.equal(run.status, "stopped");
  }));

/**
 * OpenAI's 429 for requests per day with a wait of 1m26.4s in the message and no header: the
 * text as quoted in openai/openai-agents-js#1022 (2026-02-26). The wait is honoured, once.
 */
Deno.test("OpenAI's wait stated only in the message is honoured: one retry after it, the prompt completes", () =>
  withServices({}, async ({ openai, cwd, env }) => {
    openai.replay({
      status: 429,
      body: {
        error: {
          message:
            "Rate limit reached for gpt-4o-mini-realtime in organization org-xx on requests per day (RPD): Limit 1000, Used 1000, Requested 1. Please try again in 1m26.4s. Visit https://platform.openai.com/account/rate-limits to learn more.",
          type: "requests",
          param: null,
          code: "rate_limit_exceeded",
        },
      },
    }, 1);
    const result = await runCli(
      [
        "--out",
        "out",
        "-n",
        "2",
        "-c",
        "1",
        "--critic",
        "openai",
        "--critic-model",
        "gpt-4o-mini",
        "batch.json",
      ],
      { cwd, env },
    );
    assert.equal(result.code, 0, result.stderr);
    const recs = await records(`${cwd}/out/batch`);
    const needed = recs.reduce((n, r) => n + textSteps(r), 0);
    assert.equal(openai.requests.length, needed + 1);
    // The retry waited the 86.4 s the message states (scaled by the test's time scale).
    const log = await Deno.readTextFile(`${cwd}/out/batch/log.jsonl`);
    const retries = log.split("\n").filter((l) => l.includes('"message":"Retrying ')).map((l) =>
      JSON.parse(l)
    );
    assert.equal(retries.length, 1, log);
    assert.equal(retries[0].delayMs, 86.4);
  }));
