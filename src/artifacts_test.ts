import assert from "node:assert/strict";
import {
  ensureWritableDir,
  safeFolderName,
  shortHash,
  writeFileAtomic,
  writeJsonAtomic,
  writeStreamAtomic,
} from "./artifacts.ts";
import { InputError } from "./errors.ts";

const SAFE = /^[A-Za-z0-9._-]+$/;
const RUNNING_AS_ROOT = Deno.uid() === 0;

function assertSafe(name: string): void {
  assert.match(name, SAFE);
  assert.ok(!name.startsWith("."), `starts with a dot: ${name}`);
  assert.ok(!name.startsWith("_"), `starts with an underscore: ${name}`);
  assert.ok(!/^(con|prn|aux|nul|com\d|lpt\d)(\.|-|$)/i.test(name), `reserved: ${name}`);
}

// --- safeFolderName ----------------------------------------------------------------------------

Deno.test("safeFolderName() maps a safe id to itself", () => {
  for (const id of ["fox", "Fox-2", "a.b_c-d", "lighthouse_at_dusk", "0001"]) {
    assert.equal(safeFolderName(id), id);
  }
});

Deno.test("safeFolderName() keeps traversal out of the name", () => {
  for (const id of ["../x", "../../etc/passwd", "/etc/passwd", "..", ".", "x/..", "a\\..\\b"]) {
    const name = safeFolderName(id);
    assertSafe(name);
    assert.ok(!name.includes("/") && !name.includes("\\"), name);
    assert.notEqual(name, "..");
    assert.notEqual(name, ".");
  }
  assert.equal(safeFolderName("../x"), `x-${shortHash("../x")}`);
  assert.equal(safeFolderName("/etc/passwd"), `etc_passwd-${shortHash("/etc/passwd")}`);
});

Deno.test("safeFolderName() gives . and .. a name of their own", () => {
  assert.equal(safeFolderName(".."), `prompt_-${shortHash("..")}`);
  assert.notEqual(safeFolderName("."), safeFolderName(".."));
});

Deno.test("safeFolderName() replaces path separators", () => {
  assert.equal(safeFolderName("a/b"), `a_b-${shortHash("a/b")}`);
  assert.equal(safeFolderName("a\\b"), `a_b-${shortHash("a\\b")}`);
  assert.equal(safeFolderName("a:b"), `a_b-${shortHash("a:b")}`);
});

Deno.test("safeFolderName() steers clear of reserved device names", () => {
  for (const id of ["CON", "con", "nul.txt", "com1", "LPT9", "aux.tar.gz", "prn"]) {
    const name = safeFolderName(id);
    assertSafe(name);
    assert.ok(name.startsWith("prompt_"), name);
  }
  assert.equal(safeFolderName("nul.txt"), `prompt_nul.txt-${shortHash("nul.txt")}`);
  assert.equal(safeFolderName("console"), "console", "only the exact device names are reserved");
});

Deno.test("safeFolderName() replaces control characters", () => {
  for (const id of ["a\nb", "a\u0000b", "tab\there", "bell\u0007", "\u001b[31mred"]) {
    assertSafe(safeFolderName(id));
  }
  assert.equal(safeFolderName("a\nb"), `a_b-${shortHash("a\nb")}`);
});

Deno.test("safeFolderName() maps unicode ids to safe names", () => {
  for (const id of ["café", "日本語", "🦊 fox", "Ω", "ｆｕｌｌｗｉｄｔｈ"]) {
    assertSafe(safeFolderName(id));
  }
  assert.equal(safeFolderName("café"), `caf-${shortHash("café")}`);
  assert.equal(safeFolderName("日本語"), `prompt_-${shortHash("日本語")}`);
  assert.equal(
    safeFolderName("ｆｕｌｌｗｉｄｔｈ"),
    `fullwidth-${shortHash("ｆｕｌｌｗｉｄｔｈ")}`,
  );
});

Deno.test("safeFolderName() bounds the length of very long ids", () => {
  for (const id of ["a".repeat(81), "a".repeat(1000), "é".repeat(500), "/".repeat(300) + "x"]) {
    const name = safeFolderName(id);
    assertSafe(name);
    assert.ok(name.length <= 89, `${name.length} characters`);
  }
  assert.equal(safeFolderName("a".repeat(80)), "a".repeat(80));
});

Deno.test("safeFolderName() keeps long ids with a common prefix apart", () => {
  const base = "p".repeat(100);
  assert.notEqual(safeFolderName(base + "1"), safeFolderName(base + "2"));
});

Deno.test("safeFolderName() keeps ids that differ only by case apart", () => {
  assert.notEqual(safeFolderName("Fox"), safeFolderName("fox"));
  assert.notEqual(safeFolderName("CON"), safeFolderName("con"));
  assert.notEqual(safeFolderName("Café"), safeFolderName("café"));
});

Deno.test("safeFolderName() keeps ids that differ by a replaced character apart", () => {
  const ids = ["a b", "a/b", "a:b", "a?b", "a_b", "a\nb", "a  b", "a*b"];
  const names = ids.map(safeFolderName);
  assert.equal(new Set(names).size, ids.length, names.join(", "));
});

Deno.test("safeFolderName() never maps a different id onto a name that looks hashed", () => {
  // `x-<hash of ../x>` is itself a safe id; it must not share a folder with `../x`.
  const crafted = `x-${shortHash("../x")}`;
  assert.notEqual(safeFolderName(crafted), safeFolderName("../x"));
  assertSafe(safeFolderName(crafted));
});

Deno.test("safeFolderName() never starts a name with a dot or an underscore", () => {
  for (const id of [".hidden", "_private", "._x", "__init__", "-dash", " space"]) {
    const name = safeFolderName(id);
    assert.match(name, /^[A-Za-z0-9-]/, name);
  }
});

Deno.test("shortHash() is 8 hex digits and stable", () => {
  assert.equal(shortHash(""), "811c9dc5");
  assert.equal(shortHash("a"), "e40c292c");
  assert.match(shortHash("anything at all"), /^[0-9a-f]{8}$/);
});

// --- atomic writes -----------------------------------------------------------------------------

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "retake-artifacts-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.chmod(dir, 0o755);
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof Error, `expected an Error, got ${error}`);
    return error;
  }
  assert.fail("expected a rejection");
}

const bytes = (text: string) => new TextEncoder().encode(text);

/** A stream that yields `chunks`, then fails when `failAfter` is given. */
function streamOf(chunks: string[], failAfter?: Error): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream({
    pull(controller) {
      if (index < chunks.length) controller.enqueue(bytes(chunks[index++]!));
      else if (failAfter) controller.error(failAfter);
      else controller.close();
    },
  });
}

Deno.test("writeFileAtomic() writes text and bytes and leaves no temp file", async () => {
  await withTempDir(async (dir) => {
    await writeFileAtomic(`${dir}/a.txt`, "hello");
    await writeFileAtomic(`${dir}/b.bin`, new Uint8Array([1, 2, 3]));
    assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "hello");
    assert.deepEqual(await Deno.readFile(`${dir}/b.bin`), new Uint8Array([1, 2, 3]));
    assert.deepEqual(await listDir(dir), ["a.txt", "b.bin"]);
  });
});

Deno.test("writeFileAtomic() replaces an existing file", async () => {
  await withTempDir(async (dir) => {
    await writeFileAtomic(`${dir}/a.txt`, "old");
    await writeFileAtomic(`${dir}/a.txt`, "new");
    assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "new");
    assert.deepEqual(await listDir(dir), ["a.txt"]);
  });
});

Deno.test("writeFileAtomic() names the file when its folder does not exist", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/missing/a.txt`;
    const error = await rejectionOf(writeFileAtomic(path, "x"));
    assert.ok(error.message.startsWith(`Cannot save '${path}': `), error.message);
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("writeFileAtomic() says permission denied for an unwritable folder", async () => {
  await withTempDir(async (dir) => {
    await writeFileAtomic(`${dir}/a.txt`, "old");
    await Deno.chmod(dir, 0o500);
    if (RUNNING_AS_ROOT) {
      // root writes anyway: nothing to prove about permissions here.
      return;
    }
    const error = await rejectionOf(writeFileAtomic(`${dir}/a.txt`, "new"));
    assert.equal(error.message, `Cannot save '${dir}/a.txt': permission denied`);
    assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "old");
    assert.deepEqual(await listDir(dir), ["a.txt"]);
  });
});

Deno.test("writeFileAtomic() leaves the old file and no temp file when the target is a folder", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/taken`);
    await Deno.writeTextFile(`${dir}/taken/keep.txt`, "keep");
    const error = await rejectionOf(writeFileAtomic(`${dir}/taken`, "x"));
    assert.ok(error.message.startsWith(`Cannot save '${dir}/taken': `), error.message);
    assert.deepEqual(await listDir(dir), ["taken"]);
    assert.equal(await Deno.readTextFile(`${dir}/taken/keep.txt`), "keep");
  });
});

Deno.test("writeJsonAtomic() writes pretty JSON with a final newline", async () => {
  await withTempDir(async (dir) => {
    await writeJsonAtomic(`${dir}/m.json`, { a: 1, b: [true] });
    assert.equal(
      await Deno.readTextFile(`${dir}/m.json`),
      '{\n  "a": 1,\n  "b": [\n    true\n  ]\n}\n',
    );
    assert.deepEqual(await listDir(dir), ["m.json"]);
  });
});

Deno.test("writeJsonAtomic() replaces a previous document in one step", async () => {
  await withTempDir(async (dir) => {
    await writeJsonAtomic(`${dir}/m.json`, { v: 1 });
    await writeJsonAtomic(`${dir}/m.json`, { v: 2 });
    assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/m.json`)), { v: 2 });
    assert.deepEqual(await listDir(dir), ["m.json"]);
  });
});

Deno.test("writeStreamAtomic() streams into place after verify sees the complete file", async () => {
  await withTempDir(async (dir) => {
    const seen: string[] = [];
    await writeStreamAtomic(`${dir}/img.png`, streamOf(["ab", "cd", "ef"]), async (temp) => {
      seen.push(await Deno.readTextFile(temp));
      assert.ok(temp.startsWith(`${dir}/.img.png.`) && temp.endsWith(".tmp"), temp);
    });
    assert.deepEqual(seen, ["abcdef"]);
    assert.equal(await Deno.readTextFile(`${dir}/img.png`), "abcdef");
    assert.deepEqual(await listDir(dir), ["img.png"]);
  });
});

Deno.test("writeStreamAtomic() accepts bytes as well as a stream", async () => {
  await withTempDir(async (dir) => {
    let verified = false;
    await writeStreamAtomic(`${dir}/img.png`, bytes("xyz"), () => {
      verified = true;
      return Promise.resolve();
    });
    assert.ok(verified);
    assert.equal(await Deno.readTextFile(`${dir}/img.png`), "xyz");
    assert.deepEqual(await listDir(dir), ["img.png"]);
  });
});

Deno.test("writeStreamAtomic() keeps the previous file and no temp file when verify throws", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/img.png`, "previous");
    const error = await rejectionOf(
      writeStreamAtomic(`${dir}/img.png`, streamOf(["not", "an image"]), () => {
        return Promise.reject(new Error("not a PNG file"));
      }),
    );
    assert.equal(error.message, `Cannot save '${dir}/img.png': not a PNG file`);
    assert.equal(await Deno.readTextFile(`${dir}/img.png`), "previous");
    assert.deepEqual(await listDir(dir), ["img.png"]);
  });
});

Deno.test("writeStreamAtomic() keeps the previous file and no temp file when bytes fail verify", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/img.png`, "previous");
    await rejectionOf(
      writeStreamAtomic(`${dir}/img.png`, bytes("junk"), () => Promise.reject(new Error("bad"))),
    );
    assert.equal(await Deno.readTextFile(`${dir}/img.png`), "previous");
    assert.deepEqual(await listDir(dir), ["img.png"]);
  });
});

Deno.test("writeStreamAtomic() keeps the previous file and no temp file when the stream fails", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/img.png`, "previous");
    let verified = false;
    const error = await rejectionOf(
      writeStreamAtomic(
        `${dir}/img.png`,
        streamOf(["half of ", "the image"], new Error("connection reset")),
        () => {
          verified = true;
          return Promise.resolve();
        },
      ),
    );
    assert.equal(error.message, `Cannot save '${dir}/img.png': connection reset`);
    assert.equal(verified, false, "verify must not run on a partial file");
    assert.equal(await Deno.readTextFile(`${dir}/img.png`), "previous");
    assert.deepEqual(await listDir(dir), ["img.png"]);
  });
});

Deno.test("writeStreamAtomic() without a previous file leaves nothing when the stream fails", async () => {
  await withTempDir(async (dir) => {
    await rejectionOf(
      writeStreamAtomic(`${dir}/img.png`, streamOf(["part"], new Error("reset"))),
    );
    assert.deepEqual(await listDir(dir), []);
  });
});

Deno.test("writeStreamAtomic() says permission denied for an unwritable folder", async () => {
  await withTempDir(async (dir) => {
    await Deno.chmod(dir, 0o500);
    if (RUNNING_AS_ROOT) return; // root writes anyway
    const error = await rejectionOf(writeStreamAtomic(`${dir}/img.png`, streamOf(["x"])));
    assert.equal(error.message, `Cannot save '${dir}/img.png': permission denied`);
  });
});

// --- ensureWritableDir -------------------------------------------------------------------------

Deno.test("ensureWritableDir() creates nested folders and leaves no probe file", async () => {
  await withTempDir(async (dir) => {
    await ensureWritableDir(`${dir}/a/b/c`);
    assert.ok((await Deno.stat(`${dir}/a/b/c`)).isDirectory);
    assert.deepEqual(await listDir(`${dir}/a/b/c`), []);
  });
});

Deno.test("ensureWritableDir() throws InputError for a path under a regular file", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "x");
    const error = await rejectionOf(ensureWritableDir(`${dir}/file/out`));
    assert.ok(error instanceof InputError, `expected an InputError, got ${error}`);
    assert.ok(
      error.message.startsWith(`Cannot write to output folder '${dir}/file/out': `),
      error.message,
    );
    assert.ok(error.message.endsWith("choose another with --out"), error.message);
  });
});

Deno.test("ensureWritableDir() throws InputError when the path is a regular file", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "x");
    const error = await rejectionOf(ensureWritableDir(`${dir}/file`));
    assert.ok(error instanceof InputError, `expected an InputError, got ${error}`);
    assert.ok(error.message.includes(`'${dir}/file'`), error.message);
  });
});

Deno.test("ensureWritableDir() throws InputError for a folder it may not write", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/locked`, { mode: 0o500 });
    if (RUNNING_AS_ROOT) return; // root writes anyway
    const error = await rejectionOf(ensureWritableDir(`${dir}/locked`));
    assert.ok(error instanceof InputError, `expected an InputError, got ${error}`);
    assert.ok(error.message.includes(`'${dir}/locked'`), error.message);
  });
});
