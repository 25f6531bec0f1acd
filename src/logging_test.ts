import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { setupLogging } from "./logging.ts";

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
