import assert from "node:assert/strict";
import { publicSettings, secretsOf, SIZE_PRESETS } from "./config.ts";
import { type ConfigSources, loadConfig } from "./config/load.ts";
import { ENV_NAMES } from "./config/env_settings.ts";
import { rejectionOf } from "./_test_input_error.ts";

const CWD = "/project";
const CONFIG = `${CWD}/retake.config.json`;
const DOTENV = `${CWD}/.env`;

interface FakeSources {
  args?: string[];
  env?: Record<string, string | undefined>;
  files?: Record<string, string>;
}

/** Sources over an in-memory file map; also records which files were asked for. */
function sources({ args = [], env = {}, files = {} }: FakeSources): ConfigSources & {
  reads: string[];
} {
  const reads: string[] = [];
  return {
    args,
    env,
    cwd: CWD,
    reads,
    readTextFile: (path) => {
      reads.push(path);
      const text = files[path];
      return text === undefined
        ? Promise.reject(new Deno.errors.NotFound(`No such file: ${path}`))
        : Promise.resolve(text);
    },
  };
}

function load(fake: FakeSources = {}) {
  return loadConfig(sources(fake));
}

function assertMentions(message: string, ...fragments: string[]): void {
  for (const fragment of fragments) {
    assert.ok(message.includes(fragment), `expected ${JSON.stringify(fragment)} in: ${message}`);
  }
}

/** The environment as `main.ts` builds it: every known name present, unset ones undefined. */
function realEnv(set: Record<string, string>): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of ENV_NAMES) env[name] = set[name];
  return env;
}

// --- layers and precedence ---------------------------------------------------------------------

Deno.test("loadConfig() uses the built-in defaults when nothing is set", async () => {
  const { config, promptFiles, configFile, keySources } = await load();
  assert.equal(config.out, "outputs");
  assert.deepEqual(config.size, { width: 1024, height: 768 });
  assert.equal(config.format, "png");
  assert.equal(config.concurrency, "auto");
  assert.equal(config.iterations, 2);
  assert.equal(config.generator, "auto");
  assert.equal(config.critic, "auto");
  assert.equal(config.offline, false);
  assert.equal(config.timeoutMs, 120_000);
  assert.equal(config.retry.maxAttempts, 4);
  assert.equal(config.fal.key, undefined);
  assert.equal(config.gemini.key, undefined);
  assert.deepEqual(promptFiles, []);
  assert.equal(configFile, undefined);
  assert.deepEqual(keySources, []);
});

Deno.test("loadConfig() reads retake.config.json from the working folder over the defaults", async () => {
  const result = await load({
    files: { [CONFIG]: JSON.stringify({ out: "from-file", iterations: 5, retry: { jitter: 0 } }) },
  });
  assert.equal(result.config.out, "from-file");
  assert.equal(result.config.iterations, 5);
  assert.equal(result.config.retry.jitter, 0);
  assert.equal(result.config.retry.maxAttempts, 4, "other retry defaults survive");
  assert.equal(result.configFile, CONFIG);
});

Deno.test("loadConfig() lets the environment override the config file", async () => {
  const { config } = await load({
    env: { RETAKE_OUT: "from-env", RETAKE_ITERATIONS: "7" },
    files: { [CONFIG]: JSON.stringify({ out: "from-file", iterations: 5, format: "jpeg" }) },
  });
  assert.equal(config.out, "from-env");
  assert.equal(config.iterations, 7);
  assert.equal(config.format, "jpeg", "settings the environment leaves alone come from the file");
});

Deno.test("loadConfig() puts .env above the config file and below the real environment", async () => {
  const { config } = await load({
    env: { RETAKE_OUT: "from-env" },
    files: {
      [CONFIG]: JSON.stringify({ out: "from-file", iterations: 5, format: "jpeg" }),
      [DOTENV]: "RETAKE_OUT=from-dotenv\nRETAKE_ITERATIONS=9\n",
    },
  });
  assert.equal(config.out, "from-env");
  assert.equal(config.iterations, 9);
  assert.equal(config.format, "jpeg");
});

Deno.test("loadConfig() lets flags override everything else", async () => {
  const { config } = await load({
    args: ["--out", "from-flag", "-n", "3", "--size", "square", "prompts.json"],
    env: { RETAKE_OUT: "from-env", RETAKE_ITERATIONS: "7", RETAKE_SIZE: "800x600" },
    files: {
      [CONFIG]: JSON.stringify({ out: "from-file", size: "portrait_4_3" }),
      [DOTENV]: "RETAKE_OUT=from-dotenv\n",
    },
  });
  assert.equal(config.out, "from-flag");
  assert.equal(config.iterations, 3);
  assert.deepEqual(config.size, { width: 512, height: 512 });
});

Deno.test("loadConfig() takes each setting from the highest layer that sets it", async () => {
  const files = {
    [CONFIG]: JSON.stringify({ size: "200x200" }),
    [DOTENV]: "RETAKE_SIZE=300x300\n",
  };
  const size = async (fake: FakeSources) => (await load(fake)).config.size.width;
  assert.equal(await size({}), 1024);
  assert.equal(await size({ files: { [CONFIG]: files[CONFIG]! } }), 200);
  assert.equal(await size({ files }), 300);
  assert.equal(await size({ files, env: { RETAKE_SIZE: "400x400" } }), 400);
  assert.equal(
    await size({ files, env: { RETAKE_SIZE: "400x400" }, args: ["--size=500x500"] }),
    500,
  );
});

Deno.test("loadConfig() reads --config FILE instead of the default config file", async () => {
  const other = "/elsewhere/custom.json";
  const fake = sources({
    args: ["--config", other],
    files: {
      [CONFIG]: JSON.stringify({ out: "default-file" }),
      [other]: JSON.stringify({ out: "custom-file" }),
    },
  });
  const result = await loadConfig(fake);
  assert.equal(result.config.out, "custom-file");
  assert.equal(result.configFile, other);
  assert.ok(!fake.reads.includes(CONFIG), `read ${fake.reads.join(", ")}`);
});

Deno.test("loadConfig() fails when an explicit --config file is missing", async () => {
  const message = await rejectionOf(load({ args: ["--config", "/nope/retake.json"] }));
  assertMentions(message, "config file '/nope/retake.json'", "no such file");
});

Deno.test("loadConfig() carries on without the default config file or .env", async () => {
  const fake = sources({});
  const result = await loadConfig(fake);
  assert.equal(result.configFile, undefined);
  assert.deepEqual(fake.reads.sort(), [DOTENV, CONFIG].sort());
});

Deno.test("loadConfig() reports a default config file it cannot read for another reason", async () => {
  const fake = sources({});
  fake.readTextFile = (path) =>
    path === CONFIG
      ? Promise.reject(new Deno.errors.PermissionDenied("Permission denied (os error 13)"))
      : Promise.reject(new Deno.errors.NotFound(path));
  const message = await rejectionOf(loadConfig(fake));
  assertMentions(message, `config file '${CONFIG}'`, "Permission denied");
});

Deno.test("loadConfig() names the config file when it is not valid JSON", async () => {
  const message = await rejectionOf(load({ files: { [CONFIG]: `{"out": "x",}` } }));
  assertMentions(message, `Cannot parse config file '${CONFIG}'`);
});

for (const text of ["[1, 2]", "null", `"outputs"`, "42"]) {
  Deno.test(`loadConfig() rejects a config file holding ${text} instead of an object`, async () => {
    const message = await rejectionOf(load({ files: { [CONFIG]: text } }));
    assertMentions(message, `config file '${CONFIG}'`, "expected a JSON object");
  });
}

Deno.test("loadConfig() returns positional arguments as prompt files and reads mode flags", async () => {
  const result = await load({ args: ["a.json", "-w", "b.json", "-q", "--offline", "-V", "-h"] });
  assert.deepEqual(result.promptFiles, ["a.json", "b.json"]);
  assert.equal(result.watch, true);
  assert.equal(result.version, true);
  assert.equal(result.help, true);
  assert.equal(result.config.quiet, true);
  assert.equal(result.config.offline, true);
});

Deno.test("loadConfig() turns RETAKE_OFFLINE=1 or true on, and anything else off", async () => {
  assert.equal((await load({ env: { RETAKE_OFFLINE: "1" } })).config.offline, true);
  assert.equal((await load({ env: { RETAKE_OFFLINE: "true" } })).config.offline, true);
  assert.equal((await load({ env: { RETAKE_OFFLINE: "0" } })).config.offline, false);
});

Deno.test("loadConfig() maps --timeout, --seed and --vary-seed to their settings", async () => {
  const { config } = await load({ args: ["--timeout", "5000", "--seed", "42", "--vary-seed"] });
  assert.equal(config.timeoutMs, 5000);
  assert.equal(config.seed, 42);
  assert.equal(config.varySeed, true);
});

// --- sizes and concurrency ---------------------------------------------------------------------

for (const [preset, size] of Object.entries(SIZE_PRESETS)) {
  Deno.test(`loadConfig() resolves the size preset ${preset}`, async () => {
    const { config } = await load({ args: ["--size", preset] });
    assert.deepEqual(config.size, size);
  });
}

Deno.test("loadConfig() accepts WIDTHxHEIGHT sizes and a {width, height} object", async () => {
  assert.deepEqual((await load({ args: ["--size", "800x600"] })).config.size, {
    width: 800,
    height: 600,
  });
  const fromFile = await load({ files: { [CONFIG]: `{"size": {"width": 640, "height": 480}}` } });
  assert.deepEqual(fromFile.config.size, { width: 640, height: 480 });
});

Deno.test("loadConfig() spreads one concurrency number over every stage", async () => {
  const { config } = await load({ args: ["-c", "5"] });
  assert.deepEqual(config.concurrency, { generate: 5, critique: 5, refine: 5 });
});

Deno.test("loadConfig() accepts per-stage concurrency from the config file", async () => {
  const { config } = await load({
    files: { [CONFIG]: `{"concurrency": {"generate": 4, "critique": 1, "refine": 2}}` },
  });
  assert.deepEqual(config.concurrency, { generate: 4, critique: 1, refine: 2 });
});

Deno.test("loadConfig() takes 'auto' concurrency from a flag, the environment or the file", async () => {
  assert.equal((await load({ args: ["-c", "auto"] })).config.concurrency, "auto");
  assert.equal((await load({ env: { BATCH_SIZE: "auto" } })).config.concurrency, "auto");
  const file = await load({ files: { [CONFIG]: `{"concurrency": "auto"}` }, args: ["-c", "3"] });
  assert.deepEqual(file.config.concurrency, { generate: 3, critique: 3, refine: 3 });
});

// --- errors name the setting and its source ----------------------------------------------------

Deno.test("loadConfig() rejects a size that is neither a preset nor WIDTHxHEIGHT", async () => {
  const message = await rejectionOf(load({ args: ["--size", "huge"] }));
  assertMentions(message, "--size huge", "WIDTHxHEIGHT", "landscape_4_3");
});

Deno.test("loadConfig() blames the flag for an out-of-range size even when the file sets one", async () => {
  const message = await rejectionOf(load({
    args: ["--size", "10x10"],
    files: { [CONFIG]: `{"size": {"width": 640, "height": 480}}` },
  }));
  assertMentions(message, "--size 10x10", "'width'", "64 to 4096");
});

Deno.test("loadConfig() names the config file for its own bad size", async () => {
  const message = await rejectionOf(load({ files: { [CONFIG]: `{"size": "12 by 7"}` } }));
  assertMentions(message, "'size'", `config file '${CONFIG}'`, "'12 by 7'");
});

Deno.test("loadConfig() names the environment variable that supplied a bad size", async () => {
  const message = await rejectionOf(load({ env: { RETAKE_SIZE: "wide" } }));
  assertMentions(message, "RETAKE_SIZE=wide", "from the environment", "WIDTHxHEIGHT");
});

Deno.test("loadConfig() says when a bad value came from .env", async () => {
  const message = await rejectionOf(load({ files: { [DOTENV]: "RETAKE_ITERATIONS=lots\n" } }));
  assertMentions(message, "RETAKE_ITERATIONS=lots", "from .env", "a whole number from 1 to 20");
});

Deno.test("loadConfig() rejects a number flag that is not a number", async () => {
  const message = await rejectionOf(load({ args: ["--iterations", "many"] }));
  assertMentions(message, "--iterations many", "expected a whole number from 1 to 20");
});

Deno.test("loadConfig() rejects out-of-range numbers, naming setting and source", async () => {
  assertMentions(
    await rejectionOf(load({ args: ["--timeout=-5"] })),
    "--timeout -5",
    "milliseconds of 1 or more",
  );
  assertMentions(
    await rejectionOf(load({ env: { RETAKE_ITERATIONS: "0" } })),
    "RETAKE_ITERATIONS=0",
    "from the environment",
  );
  assertMentions(
    await rejectionOf(load({ files: { [CONFIG]: `{"retry": {"jitter": 2}}` } })),
    "'retry.jitter'",
    `config file '${CONFIG}'`,
  );
});

Deno.test("loadConfig() rejects a bad concurrency and says what it expects", async () => {
  for (const value of ["lots", "0", "65"]) {
    const message = await rejectionOf(load({ args: ["-c", value] }));
    assertMentions(message, `--concurrency ${value}`, "1 to 64");
  }
  const message = await rejectionOf(load({ env: { BATCH_SIZE: "lots" } }));
  assertMentions(message, "BATCH_SIZE=lots", "1 to 64");
});

Deno.test("loadConfig() rejects an unknown flag and points to --help", async () => {
  const message = await rejectionOf(load({ args: ["--colour", "red"] }));
  assertMentions(message, "--colour", "--help");
});

Deno.test("loadConfig() rejects an unknown key in the config file, naming key and file", async () => {
  const message = await rejectionOf(load({ files: { [CONFIG]: `{"iteratons": 3}` } }));
  assertMentions(message, "'iteratons'", `config file '${CONFIG}'`);
});

Deno.test("loadConfig() rejects an unknown nested key in the config file", async () => {
  const message = await rejectionOf(load({ files: { [CONFIG]: `{"fal": {"kee": "x"}}` } }));
  assertMentions(message, "'fal.kee'", `config file '${CONFIG}'`);
});

Deno.test("loadConfig() rejects an unknown generator name from any layer", async () => {
  assertMentions(
    await rejectionOf(load({ args: ["--generator", "dalle"] })),
    "--generator dalle",
    "one of auto, fal",
  );
  assertMentions(
    await rejectionOf(load({ env: { RETAKE_GENERATOR: "dalle" } })),
    "RETAKE_GENERATOR=dalle",
    "from the environment",
  );
  assertMentions(
    await rejectionOf(load({ files: { [CONFIG]: `{"critic": "gpt"}` } })),
    "'critic'",
    `config file '${CONFIG}'`,
    "gemini",
  );
});

// --- keys --------------------------------------------------------------------------------------

Deno.test("loadConfig() accepts FAL_AI_API_KEY when FAL_KEY is not set", async () => {
  const result = await load({ env: { FAL_AI_API_KEY: "fal-secret" } });
  assert.equal(result.config.fal.key, "fal-secret");
  assert.deepEqual(result.keySources, ["FAL_AI_API_KEY"]);
});

Deno.test("loadConfig() prefers FAL_KEY over FAL_AI_API_KEY", async () => {
  const result = await load({ env: { FAL_KEY: "primary", FAL_AI_API_KEY: "fallback" } });
  assert.equal(result.config.fal.key, "primary");
  assert.deepEqual(result.keySources, ["FAL_KEY"]);
});

Deno.test("loadConfig() skips an empty FAL_KEY for FAL_AI_API_KEY", async () => {
  const result = await load({ env: { FAL_KEY: "", FAL_AI_API_KEY: "fallback" } });
  assert.equal(result.config.fal.key, "fallback");
});

Deno.test("loadConfig() accepts GOOGLE_API_KEY when GEMINI_API_KEY is not set", async () => {
  const fallback = await load({ env: { GOOGLE_API_KEY: "g-secret" } });
  assert.equal(fallback.config.gemini.key, "g-secret");
  assert.deepEqual(fallback.keySources, ["GOOGLE_API_KEY"]);
  const both = await load({ env: { GEMINI_API_KEY: "gem", GOOGLE_API_KEY: "goo" } });
  assert.equal(both.config.gemini.key, "gem");
});

Deno.test("loadConfig() accepts BATCH_SIZE for concurrency, below RETAKE_CONCURRENCY", async () => {
  const fallback = await load({ env: { BATCH_SIZE: "6" } });
  assert.deepEqual(fallback.config.concurrency, { generate: 6, critique: 6, refine: 6 });
  const both = await load({ env: { RETAKE_CONCURRENCY: "3", BATCH_SIZE: "6" } });
  assert.deepEqual(both.config.concurrency, { generate: 3, critique: 3, refine: 3 });
});

Deno.test("loadConfig() lists key variable names, never their values", async () => {
  const result = await load({ env: { FAL_KEY: "fal-secret-1", GEMINI_API_KEY: "gem-secret-2" } });
  assert.deepEqual(result.keySources, ["FAL_KEY", "GEMINI_API_KEY"]);
  const text = JSON.stringify(result.keySources);
  assert.ok(!text.includes("secret"), text);
});

Deno.test("loadConfig() reads keys from .env and marks them as such", async () => {
  const result = await load({ files: { [DOTENV]: "FAL_KEY=dotenv-secret\n" } });
  assert.equal(result.config.fal.key, "dotenv-secret");
  assert.deepEqual(result.keySources, ["FAL_KEY (.env)"]);
});

Deno.test("loadConfig() still reads .env when unset variables are passed as undefined", async () => {
  // main.ts passes every known name, with undefined for the unset ones.
  const result = await load({
    env: realEnv({ GEMINI_API_KEY: "real-gem" }),
    files: { [DOTENV]: "FAL_KEY=dotenv-fal\nGEMINI_API_KEY=dotenv-gem\nRETAKE_OUT=dotenv-out\n" },
  });
  assert.equal(result.config.fal.key, "dotenv-fal");
  assert.equal(result.config.gemini.key, "real-gem");
  assert.equal(result.config.out, "dotenv-out");
  assert.deepEqual(result.keySources, ["FAL_KEY (.env)", "GEMINI_API_KEY"]);
});

Deno.test("loadConfig() takes keys from the config file without listing a key source", async () => {
  const result = await load({ files: { [CONFIG]: `{"fal": {"key": "file-key"}}` } });
  assert.equal(result.config.fal.key, "file-key");
  assert.deepEqual(result.keySources, []);
});

Deno.test("publicSettings() leaves out every key value and keeps the rest", async () => {
  const { config } = await load({
    env: { FAL_KEY: "fal-secret-1", GEMINI_API_KEY: "gem-secret-2" },
    files: { [CONFIG]: `{"fal": {"steps": 8}}` },
  });
  const settings = publicSettings(config);
  const text = JSON.stringify(settings);
  assert.ok(!text.includes("fal-secret-1"), text);
  assert.ok(!text.includes("gem-secret-2"), text);
  assert.ok(!text.includes(`"key"`), text);
  assert.equal((settings.fal as Record<string, unknown>).steps, 8);
  assert.deepEqual(settings.size, config.size);
  assert.equal(config.fal.key, "fal-secret-1", "the config itself is unchanged");
});

Deno.test("secretsOf() lists the key values that are set", async () => {
  const { config } = await load({ env: { FAL_KEY: "fal-secret-1" } });
  assert.deepEqual(secretsOf(config), ["fal-secret-1"]);
});

// --- base URLs ---------------------------------------------------------------------------------

Deno.test("loadConfig() refuses a plain-http FAL_BASE_URL from .env, naming the variable and the file", async () => {
  const message = await rejectionOf(load({
    files: { [DOTENV]: "FAL_KEY=real-key\nFAL_BASE_URL=http://evil.example\n" },
  }));
  assertMentions(
    message,
    "Cannot use FAL_BASE_URL=http://evil.example from .env",
    "expected an https:// URL",
  );
  assert.ok(!message.includes("real-key"), message);
});

Deno.test("loadConfig() refuses a non-https base URL from the environment and the config file", async () => {
  const fromEnv = await rejectionOf(load({ env: { GEMINI_BASE_URL: "http://10.0.0.5:8080" } }));
  assertMentions(fromEnv, "GEMINI_BASE_URL=http://10.0.0.5:8080 from the environment:");
  const fromFile = await rejectionOf(load({
    files: { [CONFIG]: `{"fal": {"baseUrl": "ftp://proxy.example"}}` },
  }));
  assertMentions(fromFile, `'fal.baseUrl' from config file '${CONFIG}'`);
  // A host that merely starts like loopback is not loopback.
  const lookalike = await rejectionOf(
    load({ env: { FAL_BASE_URL: "http://127.0.0.1.evil.example" } }),
  );
  assertMentions(lookalike, "FAL_BASE_URL=http://127.0.0.1.evil.example");
});

Deno.test("loadConfig() never echoes a base URL's password in its refusal", async () => {
  const message = await rejectionOf(
    load({ env: { FAL_BASE_URL: "http://user:hunter2@evil.example/x" } }),
  );
  assertMentions(message, "FAL_BASE_URL=http://evil.example/x from the environment");
  assert.ok(!message.includes("hunter2"), message);
});

Deno.test("loadConfig() accepts https anywhere and plain http only to this machine", async () => {
  for (
    const url of [
      "https://proxy.example",
      "http://127.0.0.1:8787",
      "http://127.10.0.1",
      "http://localhost:9000/v1",
      "http://[::1]:8080",
    ]
  ) {
    const result = await load({ env: { FAL_BASE_URL: url } });
    assert.equal(result.config.fal.baseUrl, url);
  }
});

Deno.test("loadConfig() says which base URLs are overridden and where each came from", async () => {
  const none = await load();
  assert.deepEqual(none.notices, []);
  const result = await load({
    env: { GEMINI_BASE_URL: "http://127.0.0.1:8788" },
    files: {
      [DOTENV]: "FAL_BASE_URL=https://proxy.example/fal\n",
      [CONFIG]: `{"gemini": {"baseUrl": "https://ignored.example"}}`,
    },
  });
  assert.deepEqual(result.notices, [
    "Sending fal.ai requests to https://proxy.example/fal (fal.baseUrl from environment variable FAL_BASE_URL (from .env))",
    "Sending Gemini requests to http://127.0.0.1:8788 (gemini.baseUrl from environment variable GEMINI_BASE_URL)",
  ]);
  const fromFile = await load({ files: { [CONFIG]: `{"fal": {"baseUrl": "https://p.example"}}` } });
  assert.deepEqual(fromFile.notices, [
    `Sending fal.ai requests to https://p.example (fal.baseUrl from config file '${CONFIG}')`,
  ]);
});
