import assert from "node:assert/strict";
import { loadConfig } from "../config/load.ts";
import { ENV_NAMES, typoCandidates, typoWarnings } from "./env_settings.ts";

Deno.test("the typos asked for by name cover a letter added, dropped, changed or swapped, and flag names", () => {
  const candidates = new Set(typoCandidates());
  for (
    const typo of [
      "RETAKE_ITERATION",
      "RETAKE_ITERATIONSS",
      "RETAKE_ITERATOINS",
      "RETAKE_ITERATIONZ",
      "RETAKE_MAXCOST",
      "RETAKE_SEED",
      "RETAKE_TIMEOUT",
      "RETAKE_TARGET_SCORE",
    ]
  ) assert.ok(candidates.has(typo), typo);
  for (const name of ENV_NAMES) assert.ok(!candidates.has(name), `${name} is real`);
  // Only names the run task may read: asking for any other one would fail or prompt.
  assert.ok([...candidates].every((name) => name.startsWith("RETAKE_")));
});

Deno.test("typoWarnings() names the nearest real variable, or the flag", () => {
  assert.deepEqual(typoWarnings(["RETAKE_ITERATION", "HOME", "RETAKE_OUT"], "in the environment"), [
    "warning: ignoring RETAKE_ITERATION in the environment: retake reads no such variable; did you mean RETAKE_ITERATIONS?",
  ]);
  const [maxcost, seed, timeout, stranger, gemini] = typoWarnings(
    ["RETAKE_MAXCOST", "RETAKE_SEED", "RETAKE_TIMEOUT", "RETAKE_XYZZY", "GEMINI_APIKEY"],
    "in .env",
  );
  assert.match(maxcost!, /RETAKE_MAXCOST in \.env.*did you mean RETAKE_MAX_COST\?/);
  assert.match(seed!, /did you mean --seed, or 'seed' in the config file\?/);
  assert.match(timeout!, /did you mean RETAKE_TIMEOUT_MS\?/);
  assert.match(stranger!, /RETAKE_XYZZY.*no such variable \(see README, Configuration\)/);
  assert.match(gemini!, /did you mean GEMINI_API_KEY\?/);
});

Deno.test("loadConfig() warns of a typo'd variable in the environment and in .env, and goes on", async () => {
  const invocation = await loadConfig({
    args: [],
    env: { RETAKE_ITERATION: "3", RETAKE_ITERATIONS: undefined },
    cwd: "/p",
    readTextFile: (path) =>
      path === "/p/.env"
        ? Promise.resolve("RETAKE_MAX_COSTS=1\nGEMINI_API_KEYS=x\nOTHER_TOOL=1\n")
        : Promise.reject(new Deno.errors.NotFound(path)),
  });
  assert.equal(invocation.config.iterations, 2, "the typo sets nothing");
  assert.deepEqual(invocation.notices.filter((n) => n.startsWith("warning:")), [
    "warning: ignoring RETAKE_ITERATION in the environment: retake reads no such variable; did you mean RETAKE_ITERATIONS?",
    "warning: ignoring RETAKE_MAX_COSTS in .env: retake reads no such variable; did you mean RETAKE_MAX_COST?",
    "warning: ignoring GEMINI_API_KEYS in .env: retake reads no such variable; did you mean GEMINI_API_KEY?",
  ]);
});
