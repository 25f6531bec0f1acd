import assert from "node:assert/strict";
import { getLogger, type LogLevel } from "@logtape/logtape";
import { InputError } from "../errors.ts";
import { type LoggingOptions, setupLogging } from "./logging.ts";
import { withTempDir } from "../_test_temp_dir.ts";

// deno-lint-ignore no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** Logging at `level` to `<dir>/log.jsonl`, and to stderr through `writeErr`. */
function toLogFile(
  dir: string,
  level: LogLevel,
  writeErr: (text: string) => void = () => {},
  secrets: string[] = [],
): LoggingOptions {
  return { level, writeErr, jsonlPath: `${dir}/log.jsonl`, secrets };
}

Deno.test("setupLogging() redacts every configured secret on stderr and in log.jsonl", async () => {
  const secret = "sk-live-0123456789abcdef";
  let stderr = "";
  await withTempDir(async (dir) => {
    const close = await setupLogging(toLogFile(dir, "debug", (t) => void (stderr += t), [secret]));
    const log = getLogger(["retake", "test"]);
    log.error(`Request with key ${secret} failed`);
    log.info("Header {auth}", { auth: `Key ${secret}`, nested: { deep: secret } });
    await close();
    const file = await Deno.readTextFile(`${dir}/log.jsonl`);
    assert.ok(!file.includes(secret) && !stderr.includes(secret));
    assert.match(file, /\[REDACTED\]/);
    assert.match(stderr, /Request with key \[REDACTED\] failed/);
    assert.equal(file.trim().split("\n").length, 2);
  });
});

Deno.test("setupLogging() drops a partial last line left by a crash before appending", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/log.jsonl`, '{"a":1}\n{"b":2}\n{"c":');
    const close = await setupLogging(toLogFile(dir, "error"));
    getLogger(["retake"]).info("after the crash");
    await close();
    const lines = (await Deno.readTextFile(`${dir}/log.jsonl`)).trim().split("\n");
    assert.equal(lines.length, 3);
    for (const line of lines) JSON.parse(line);
  });
});

Deno.test("setupLogging() shows only records at or above the chosen level on stderr", async () => {
  let stderr = "";
  const close = await setupLogging({
    level: "warning",
    writeErr: (t) => void (stderr += t),
    secrets: [],
  });
  getLogger(["retake"]).info("quiet detail");
  getLogger(["retake"]).warn("loud problem");
  await close();
  assert.doesNotMatch(stderr, /quiet detail/);
  assert.match(stderr, /loud problem/);
});

Deno.test("setupLogging() refuses a log.jsonl that is a symbolic link, leaving what it points to", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/precious.txt`, "precious, no newline");
    await Deno.symlink(`${dir}/precious.txt`, `${dir}/log.jsonl`);
    await assert.rejects(
      setupLogging(toLogFile(dir, "error")),
      (error: Error) =>
        error instanceof InputError && error.message.includes(`'${dir}/log.jsonl'`) &&
        error.message.includes("symbolic link"),
    );
    assert.equal(await Deno.readTextFile(`${dir}/precious.txt`), "precious, no newline");
  });
});

Deno.test("setupLogging() refuses a log.jsonl that is not a regular file", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/log.jsonl`);
    await assert.rejects(
      setupLogging(toLogFile(dir, "error")),
      InputError,
    );
  });
});

Deno.test("setupLogging() shows control and bidi characters escaped on stderr and in log.jsonl", async () => {
  let stderr = "";
  await withTempDir(async (dir) => {
    const close = await setupLogging(toLogFile(dir, "debug", (t) => void (stderr += t)));
    const hostile = "a\u001b[2Jb\u009b31mc\u202ed\u2066e\nf";
    getLogger(["retake", "test"]).warn("Failed {promptId}: {reason}", {
      promptId: hostile,
      reason: { text: hostile },
    });
    await close();
    assert.equal(stderr.split("\n").length, 2, "one line, then its newline");
    assert.doesNotMatch(stderr.slice(0, -1), CONTROLS);
    assert.match(stderr, /a\\u001b\[2Jb\\u009b31mc\\u202ed\\u2066e\\u000af/);
    const file = await Deno.readTextFile(`${dir}/log.jsonl`);
    assert.doesNotMatch(file.slice(0, -1), CONTROLS);
    const record = JSON.parse(file);
    assert.equal(record.promptId, hostile, "the JSON value is unchanged");
  });
});
