import assert from "node:assert/strict";
import type { z } from "zod";
import { configSchema } from "../config.ts";
import { loadConfig } from "../config/load.ts";
import { InputError } from "../errors.ts";
import { DESCRIPTORS } from "../providers/catalog.ts";
import { FLAGS } from "./flags.ts";
import { describe, schemaAt } from "./setting_errors.ts";

const CONFIG = "/project/retake.config.json";
const SECRETS = new Set(
  DESCRIPTORS.flatMap((p) => p.env.filter((e) => e.secret).map((e) => `${p.name}.${e.setting}`)),
);

async function messageOf(
  args: string[],
  files: Record<string, string> = {},
  env: Record<string, string> = {},
): Promise<string> {
  try {
    await loadConfig({
      args,
      env,
      cwd: "/project",
      readTextFile: (path) =>
        files[path] === undefined
          ? Promise.reject(new Deno.errors.NotFound(path))
          : Promise.resolve(files[path]!),
    });
  } catch (error) {
    assert.ok(error instanceof InputError, String(error));
    return error.message;
  }
  assert.fail(`${args.join(" ")} ${JSON.stringify(files)} ${JSON.stringify(env)} was accepted`);
}

/** zod's own words, which must never reach a person. */
const RAW =
  /Too (small|big)|Invalid (input|option)|received (NaN|number|string)|expected (number|string|int|boolean|object|array)\b|Unrecognized key|>0|<=|ambiguous/;

function assertPlain(message: string, context: string): void {
  assert.doesNotMatch(message, RAW, `${context}: ${message}`);
  assert.doesNotMatch(message, /undefined|\[object Object\]/, `${context}: ${message}`);
}

/**
 * A bad value for every flag that takes one; the flags that take any text say so here. A new
 * flag fails this test until it is listed, so its errors are looked at.
 */
const BAD_VALUES: Record<string, string[]> = {
  out: [""],
  name: [""],
  size: ["huge", "10x10", "-1"],
  format: ["gif"],
  model: [""],
  "critic-model": [""],
  iterations: ["0", "-1", "1.5", "abc", "21"],
  concurrency: ["0", "-3", "lots", "65"],
  generator: ["dalle"],
  critic: ["gpt"],
  seed: ["-5", "abc", "1.5", "4294967296"],
  "target-score": ["11", "-1", "abc"],
  refine: ["sometimes"],
  patience: ["0", "-2", "abc"],
  "max-cost": ["-1", "abc", "-0.5"],
  timeout: ["0", "-100", "abc"],
  workflow: [""],
  prompt: ["", "   "],
  "prompt-field": [""],
  "id-field": [""],
  "checks-field": [""],
};
/**
 * Flags that take any text: a list, a path or a port the command checks itself, and a secret
 * (whose value a message never shows).
 */
const ANY_TEXT = new Set(["models", "only", "replay", "config", "port", "api-auth"]);

Deno.test("every flag's bad value names the flag, what it expects and what it got", async () => {
  for (const flag of FLAGS.filter((f) => f.type === "string")) {
    if (ANY_TEXT.has(flag.name)) continue;
    const bad = BAD_VALUES[flag.name];
    assert.ok(bad, `--${flag.name} has bad values listed in this test (or is in ANY_TEXT)`);
    for (const value of bad) {
      const message = await messageOf([`--${flag.name}`, value]);
      const shown = /^[\w.,:/+@-]+$/.test(value) ? value : `'${value}'`;
      assert.ok(
        message.startsWith(`Cannot use --${flag.name} ${shown}: expected `),
        `--${flag.name} ${value}: ${message}`,
      );
      assertPlain(message, `--${flag.name} ${value}`);
    }
  }
});

Deno.test("a negative number is a number: parsed, then checked against the setting's range", async () => {
  assert.equal(
    await messageOf(["--max-cost", "-1"]),
    "Cannot use --max-cost -1: expected a number of US dollars of 0 or more",
  );
  assert.equal(
    await messageOf(["-n", "-2"]),
    "Cannot use --iterations -2: expected a whole number from 1 to 20",
  );
  assert.equal(
    await messageOf(["--seed", "-5"]),
    "Cannot use --seed -5: expected a whole number from 0 to 4294967295",
  );
});

/** Every setting's path, down to the leaves the config file can set. */
function leaves(schema: z.ZodType, prefix: string[] = []): string[][] {
  const def = unwrapDef(schema);
  if (def.type !== "object") return [prefix];
  return Object.entries(def.shape as Record<string, z.ZodType>).flatMap(([key, child]) =>
    leaves(child, [...prefix, key])
  );
}

function unwrapDef(schema: z.ZodType): Record<string, unknown> & { type: string } {
  let def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  while (def.innerType !== undefined) {
    def = (def.innerType as z.ZodType)._zod.def as unknown as typeof def;
  }
  return def;
}

/** A value of the wrong kind for a setting: whatever it takes, this is not it. */
function wrongKind(schema: z.ZodType): unknown {
  const type = unwrapDef(schema).type;
  if (type === "string" || type === "enum" || type === "literal") return 42;
  if (type === "union" || type === "pipe") return true;
  if (type === "number" || type === "boolean") return [1];
  return "text";
}

Deno.test("every config key's bad value names the key and the file, what it expects and what it got", async () => {
  const paths = leaves(configSchema);
  assert.ok(paths.length > 30, `found ${paths.length} settings`);
  for (const path of paths) {
    const schema = schemaAt(configSchema, path)!;
    const value = wrongKind(schema);
    const data: Record<string, unknown> = {};
    let node = data;
    for (const key of path.slice(0, -1)) node = (node[key] = {}) as Record<string, unknown>;
    node[path.at(-1)!] = value;
    const key = path.join(".");
    const message = await messageOf([], { [CONFIG]: JSON.stringify(data) });
    assert.ok(
      message.startsWith(`Cannot use '${key}' from config file '${CONFIG}': expected `),
      `${key} = ${JSON.stringify(value)}: ${message}`,
    );
    const shown = typeof value === "string" ? `'${value}'` : JSON.stringify(value);
    assert.ok(
      message.endsWith(
        SECRETS.has(key)
          ? " (the value is a key, so it is not shown)"
          : `: current value is ${shown}`,
      ),
      message,
    );
    assertPlain(message, key);
  }
});

Deno.test("every config key's schema has words for what it takes", () => {
  for (const path of leaves(configSchema)) {
    const schema = schemaAt(configSchema, path)!;
    const words = describe(schema, path);
    // A union with its own message (size, concurrency) speaks for itself.
    if (words === undefined) continue;
    assertPlain(words, path.join("."));
  }
});

Deno.test("an unknown config key names the nearest real one", async () => {
  assert.equal(
    await messageOf([], { [CONFIG]: `{"maxcost": 1}` }),
    `Cannot use 'maxcost' from config file '${CONFIG}': there is no such setting; did you mean 'maxCost'? (see README, Configuration)`,
  );
  const nested = await messageOf([], { [CONFIG]: `{"retry": {"jiter": 0.1}}` });
  assert.match(nested, /'retry\.jiter'.*did you mean 'retry\.jitter'\?/);
  const criteria = await messageOf([], { [CONFIG]: `{"targetCriteria": {"lightning": 5}}` });
  assert.match(criteria, /did you mean 'targetCriteria\.lighting'\?/);
});

Deno.test("an environment variable's bad value names the variable and where it was set", async () => {
  assert.equal(
    await messageOf([], {}, { RETAKE_MAX_COST: "-2" }),
    "Cannot use RETAKE_MAX_COST=-2 from the environment: expected a number of US dollars of 0 or more",
  );
  assert.equal(
    await messageOf([], { "/project/.env": "RETAKE_TIMEOUT_MS=soon\n" }),
    "Cannot use RETAKE_TIMEOUT_MS=soon from .env: expected a whole number of milliseconds of 1 or more",
  );
});

Deno.test("a bad key is refused without showing it", async () => {
  const secret = "sk-secret-value-9f8e";
  const file = await messageOf([], { [CONFIG]: JSON.stringify({ gemini: { key: [secret] } }) });
  assert.match(file, /^Cannot use 'gemini\.key' from config file .*: expected .*not shown/);
  assert.ok(!file.includes(secret), file);
});
