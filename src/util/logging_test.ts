import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { InputError } from "../errors.ts";
import { setupLogging } from "./logging.ts";

// deno-lint-ignore no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

Deno.test("setupLogging() redacts every configured secret on stderr and in log.jsonl", async () => {
  const dir = await Deno.makeTempDir();
  const secret = "sk-live-0123456789abcdef";
  let stderr = "";
  try {
    const close = await setupLogging({
      level: "debug",
      writeErr: (t) => void (stderr += t),
      jsonlPath: `${dir}/log.jsonl`,
      secrets: [secret],
    });
    const log = getLogger(["retake", "test"]);
    log.error(`Request with key ${secret} failed`);
    log.info("Header {auth}", { auth: `Key ${secret}`, nested: { deep: secret } });
    await close();
    const file = await Deno.readTextFile(`${dir}/log.jsonl`);
    assert.ok(!file.includes(secret) && !stderr.includes(secret));
    assert.match(file, /\[REDACTED\]/);
    assert.match(stderr, /Request with key \[REDACTED\] failed/);
    assert.equal(file.trim().split("\n").length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("setupLogging() drops a partial last line left by a crash before appending", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/log.jsonl`, '{"a":1}\n{"b":2}\n{"c":');
    const close = await setupLogging({
      level: "error",
      writeErr: () => {},
      jsonlPath: `${dir}/log.jsonl`,
      secrets: [],
    });
    getLogger(["retake"]).info("after the crash");
    await close();
    const lines = (await Deno.readTextFile(`${dir}/log.jsonl`)).trim().split("\n");
    assert.equal(lines.length, 3);
    for (const line of lines) JSON.parse(line);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/precious.txt`, "precious, no newline");
    await Deno.symlink(`${dir}/precious.txt`, `${dir}/log.jsonl`);
    await assert.rejects(
      setupLogging({
        level: "error",
        writeErr: () => {},
        jsonlPath: `${dir}/log.jsonl`,
        secrets: [],
      }),
      (error: Error) =>
        error instanceof InputError && error.message.includes(`'${dir}/log.jsonl'`) &&
        error.message.includes("symbolic link"),
    );
    assert.equal(await Deno.readTextFile(`${dir}/precious.txt`), "precious, no newline");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("setupLogging() refuses a log.jsonl that is not a regular file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/log.jsonl`);
    await assert.rejects(
      setupLogging({
        level: "error",
        writeErr: () => {},
        jsonlPath: `${dir}/log.jsonl`,
        secrets: [],
      }),
      InputError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("setupLogging() shows control and bidi characters escaped on stderr and in log.jsonl", async () => {
  const dir = await Deno.makeTempDir();
  let stderr = "";
  try {
    const close = await setupLogging({
      level: "debug",
      writeErr: (t) => void (stderr += t),
      jsonlPath: `${dir}/log.jsonl`,
      secrets: [],
    });
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
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
