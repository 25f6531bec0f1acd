import assert from "node:assert/strict";
import { secretsOf } from "../config.ts";
import { loadConfig } from "../config/load.ts";
import { USAGE } from "../cli/usage.ts";
import { ENV_NAMES } from "../config/env_settings.ts";
import { FLAGS } from "../config/flags.ts";
import { flagsTable, markdown, providersTable, tableCells } from "../cli/readme_tables.ts";
import { DESCRIPTORS } from "./catalog.ts";
import { chooseProviders } from "./registry.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

const DENO_JSON = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));

/** The permission set a task loads (`-P`, `-qP=NAME`), if it loads one. */
function permissionSet(task: string): Record<string, unknown> | undefined {
  const args = String(DENO_JSON.tasks[task]).split(" ");
  const flag = args.find((arg) => /^-q?P(=|$)/.test(arg));
  if (flag === undefined) return undefined;
  const name = flag.includes("=") ? flag.slice(flag.indexOf("=") + 1) : "default";
  const set = DENO_JSON.permissions?.[name];
  assert.ok(set, `deno.json task '${task}' loads permission set '${name}', which deno.json lacks`);
  return set;
}

function allowEnv(task: string): string[] {
  const set = permissionSet(task);
  if (set) return set.env as string[];
  const flag = String(DENO_JSON.tasks[task]).split(" ").find((arg) =>
    arg.startsWith("--allow-env=")
  );
  return flag ? flag.slice("--allow-env=".length).split(",") : [];
}

const granted = (list: string[], name: string) =>
  list.some((entry) => entry.endsWith("*") ? name.startsWith(entry.slice(0, -1)) : entry === name);

Deno.test("every provider's environment variables are granted by the run, gallery, compile and install tasks", () => {
  for (const task of ["run", "gallery", "compile", "install"]) {
    const list = allowEnv(task);
    const missing = ENV_NAMES.filter((name) => !granted(list, name));
    assert.deepEqual(
      missing,
      [],
      `deno.json task '${task}' must grant --allow-env for ${missing.join(",")}`,
    );
  }
});

Deno.test("the run and gallery tasks' permission sets are as narrow as the flags they replace", () => {
  for (const task of ["run", "gallery", "serve"]) {
    if (!(task in DENO_JSON.tasks)) continue;
    const set = permissionSet(task);
    assert.ok(set, `deno.json task '${task}' loads a permission set`);
    // Deno warns on every run that permission sets are experimental; -q keeps that off the screen.
    assert.match(String(DENO_JSON.tasks[task]), /deno run -qP/, task);
    assert.deepEqual(
      Object.keys(set).sort(),
      task === "gallery"
        ? ["env", "ffi", "read", "sys", "write"]
        : ["env", "ffi", "net", "read", "sys", "write"],
      `${task}: no run, no import, no all; the gallery makes no network call`,
    );
    assert.deepEqual(set.ffi, ["node_modules"], `${task}: FFI only for sharp's native library`);
    assert.deepEqual(set.sys, ["hostname"], `${task}: the host name only, for the batch lock`);
    assert.ok((set.env as string[]).every((name) => name !== "*"), `${task}: named variables`);
  }
});

Deno.test("a provider's descriptor feeds the config: its section, its env names, its secrets, --help", async () => {
  for (const provider of DESCRIPTORS) {
    // Its section exists with its defaults, from an empty config.
    const { config } = await loadConfig({
      args: [],
      env: {},
      cwd: "/nonexistent",
      readTextFile: () => Promise.reject(new Deno.errors.NotFound("none")),
    });
    assert.ok(provider.name in config, `config has a '${provider.name}' section`);
    for (const variable of provider.env) {
      assert.ok(ENV_NAMES.includes(variable.names[0]!), `ENV_NAMES has ${variable.names[0]}`);
      assert.match(USAGE, new RegExp(variable.names[0]!), `--help names ${variable.names[0]}`);
      if (!variable.secret) continue;
      const secret = `secret-${provider.name}-value-1234`;
      const { config: withKey } = await loadConfig({
        args: [],
        env: { [variable.names[0]!]: secret },
        cwd: "/nonexistent",
        readTextFile: () => Promise.reject(new Deno.errors.NotFound("none")),
      });
      assert.ok(secretsOf(withKey).includes(secret), `${variable.names[0]} is redacted`);
    }
  }
});

Deno.test("README's provider tables name every provider, model alias and environment variable", () => {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  for (const provider of DESCRIPTORS) {
    assert.match(readme, new RegExp(`\`${provider.name}\``), `README names ${provider.name}`);
    for (const variable of provider.env) {
      assert.ok(readme.includes(`\`${variable.names[0]}\``), `README names ${variable.names[0]}`);
    }
    for (const model of provider.models) {
      for (const alias of model.aliases ?? []) {
        assert.ok(readme.includes(`\`${alias}\``), `README names the alias ${alias}`);
      }
    }
  }
});

Deno.test("README's usage table and --help list every flag", () => {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const usage = readme.slice(readme.indexOf("## Usage"), readme.indexOf("## Prompt file format"));
  for (const flag of FLAGS) {
    assert.ok(usage.includes(`--${flag.name}`), `README's usage table lists --${flag.name}`);
    assert.ok(USAGE.includes(`--${flag.name}`), `--help lists --${flag.name}`);
  }
});

Deno.test("auto never picks a service whose key people set for other tools: OPENAI_API_KEY alone stays offline", async () => {
  const { config } = await loadConfig({
    args: [],
    env: { OPENAI_API_KEY: "sk-someone-elses-tool-1234" },
    cwd: "/nonexistent",
    readTextFile: () => Promise.reject(new Deno.errors.NotFound("none")),
  });
  assert.deepEqual(chooseProviders(config), { generator: "local", critic: "local" });
  const { config: asked } = await loadConfig({
    args: ["--critic", "openai"],
    env: { OPENAI_API_KEY: "sk-someone-elses-tool-1234" },
    cwd: "/nonexistent",
    readTextFile: () => Promise.reject(new Deno.errors.NotFound("none")),
  });
  assert.equal(chooseProviders(asked).critic, "openai");
});

Deno.test("README's providers and flags tables are the ones the registry and the flags table make", () => {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const after = (marker: string) => {
    const start = readme.indexOf(marker);
    assert.ok(start >= 0, `README has '${marker}'`);
    const table = readme.slice(start).split("\n\n")[1]!;
    return tableCells(table);
  };
  assert.deepEqual(after("<!-- providers table"), tableCells(markdown(providersTable())));
  assert.deepEqual(after("<!-- flags table"), tableCells(markdown(flagsTable())));
});
