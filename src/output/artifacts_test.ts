import assert from "node:assert/strict";
import { BATCH_ENTRIES, folderHash, safeBatchName, safeFolderName } from "./folder_names.ts";
import {
  ensureWritableDir,
  removeStaleTemps,
  WriteError,
  writeFileAtomic,
  writeJsonAtomic,
  writeStreamAtomic,
} from "./atomic_write.ts";
import { FolderSink } from "./artifacts.ts";
import { InputError } from "../errors.ts";
import type { PromptSpec } from "../prompts/mod.ts";
import { newRecord } from "./record.ts";
import { withTempDir } from "../_test_temp_dir.ts";

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
  assert.equal(safeFolderName("../x"), `x-${folderHash("../x")}`);
  assert.equal(safeFolderName("/etc/passwd"), `etc_passwd-${folderHash("/etc/passwd")}`);
});

Deno.test("safeFolderName() gives . and .. a name of their own", () => {
  assert.equal(safeFolderName(".."), `prompt_-${folderHash("..")}`);
  assert.notEqual(safeFolderName("."), safeFolderName(".."));
});

Deno.test("safeFolderName() replaces path separators", () => {
  assert.equal(safeFolderName("a/b"), `a_b-${folderHash("a/b")}`);
  assert.equal(safeFolderName("a\\b"), `a_b-${folderHash("a\\b")}`);
  assert.equal(safeFolderName("a:b"), `a_b-${folderHash("a:b")}`);
});

Deno.test("safeFolderName() steers clear of reserved device names", () => {
  for (const id of ["CON", "con", "nul.txt", "com1", "LPT9", "aux.tar.gz", "prn"]) {
    const name = safeFolderName(id);
    assertSafe(name);
    assert.ok(name.startsWith("prompt_"), name);
  }
  assert.equal(safeFolderName("nul.txt"), `prompt_nul.txt-${folderHash("nul.txt")}`);
  assert.equal(safeFolderName("console"), "console", "only the exact device names are reserved");
});

Deno.test("safeFolderName() replaces control characters", () => {
  for (const id of ["a\nb", "a\u0000b", "tab\there", "bell\u0007", "\u001b[31mred"]) {
    assertSafe(safeFolderName(id));
  }
  assert.equal(safeFolderName("a\nb"), `a_b-${folderHash("a\nb")}`);
});

Deno.test("safeFolderName() maps unicode ids to safe names", () => {
  for (const id of ["café", "日本語", "🦊 fox", "Ω", "ｆｕｌｌｗｉｄｔｈ"]) {
    assertSafe(safeFolderName(id));
  }
  assert.equal(safeFolderName("café"), `caf-${folderHash("café")}`);
  assert.equal(safeFolderName("日本語"), `prompt_-${folderHash("日本語")}`);
  assert.equal(
    safeFolderName("ｆｕｌｌｗｉｄｔｈ"),
    `fullwidth-${folderHash("ｆｕｌｌｗｉｄｔｈ")}`,
  );
});

Deno.test("safeFolderName() bounds the length of very long ids", () => {
  for (const id of ["a".repeat(81), "a".repeat(1000), "é".repeat(500), "/".repeat(300) + "x"]) {
    const name = safeFolderName(id);
    assertSafe(name);
    assert.ok(name.length <= 97, `${name.length} characters`);
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
  const crafted = `x-${folderHash("../x")}`;
  assert.notEqual(safeFolderName(crafted), safeFolderName("../x"));
  assertSafe(safeFolderName(crafted));
});

Deno.test("safeFolderName() never starts a name with a dot or an underscore", () => {
  for (const id of [".hidden", "_private", "._x", "__init__", "-dash", " space"]) {
    const name = safeFolderName(id);
    assert.match(name, /^[A-Za-z0-9-]/, name);
  }
});

Deno.test("safeFolderName() never names a prompt folder like one of the batch's own entries", () => {
  const ids = [...BATCH_ENTRIES, "Index.HTML", "RUN.JSON", "Log.Jsonl", "comparison.JSON"];
  const taken = new Set([...BATCH_ENTRIES].map((name) => name.toLowerCase()));
  for (const id of ids) {
    const name = safeFolderName(id);
    assertSafe(name);
    assert.ok(!taken.has(name.toLowerCase()), `${id} -> ${name}`);
  }
  assert.equal(safeFolderName("index.html"), `prompt_index.html-${folderHash("index.html")}`);
  assert.equal(safeFolderName("index.htm"), "index.htm", "only the exact names are taken");
});

/** The 32-bit FNV-1a earlier versions named folders with. */
function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

Deno.test("safeFolderName() keeps ids apart whose 32-bit hashes collide", () => {
  const [a, b] = ["twin%:;$#!!x", "twin%^$@$!!x"];
  assert.equal(fnv1a32(a), fnv1a32(b), "the pair is a real 32-bit collision");
  assert.notEqual(safeFolderName(a), safeFolderName(b));
  assert.match(safeFolderName(a), /^twin_x-[0-9a-f]{16}$/);
});

Deno.test("safeBatchName() keeps a plain folder name and maps anything that could leave --out", () => {
  for (const name of ["example", "my batch", "2024-06 shoot", "café"]) {
    assert.equal(safeBatchName(name), name);
  }
  for (
    const name of ["../../escape", "..", ".", "a/b", "a\\b", "/abs", ".hidden", "CON", "x\u001b"]
  ) {
    const mapped = safeBatchName(name);
    assertSafe(mapped);
    assert.ok(!mapped.includes("/") && mapped !== ".." && mapped !== ".", mapped);
  }
  assert.equal(safeBatchName("../../escape"), `escape-${folderHash("../../escape")}`);
});

Deno.test("folderHash() is 16 hex digits (64 bits of SHA-256) and stable", () => {
  assert.equal(folderHash(""), "e3b0c44298fc1c14");
  assert.equal(folderHash("a"), "ca978112ca1bbdca");
  assert.match(folderHash("anything at all"), /^[0-9a-f]{16}$/);
});

// --- atomic writes -----------------------------------------------------------------------------

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

Deno.test("ensureWritableDir() refuses a batch folder that is a symbolic link, writing nothing", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/elsewhere`);
    await Deno.symlink(`${dir}/elsewhere`, `${dir}/batch`);
    const error = await rejectionOf(ensureWritableDir(`${dir}/batch`));
    assert.ok(error instanceof InputError, `expected an InputError, got ${error}`);
    assert.ok(error.message.includes(`'${dir}/batch' is a symbolic link`), error.message);
    assert.deepEqual(await listDir(`${dir}/elsewhere`), []);
  });
});

Deno.test("ensureWritableDir() refuses a batch folder holding a symbolic link, naming it", async () => {
  for (const name of ["p1", "log.jsonl", "run.json", "index.html", "_thumbs", "_previous"]) {
    await withTempDir(async (dir) => {
      await Deno.mkdir(`${dir}/batch`);
      await Deno.mkdir(`${dir}/outside`);
      await Deno.symlink(`${dir}/outside`, `${dir}/batch/${name}`);
      const error = await rejectionOf(ensureWritableDir(`${dir}/batch`));
      assert.ok(error instanceof InputError, `expected an InputError, got ${error}`);
      assert.ok(error.message.includes(`'${dir}/batch/${name}' is a symbolic link`), error.message);
      assert.deepEqual(await listDir(`${dir}/outside`), []);
    });
  }
});

// --- links -------------------------------------------------------------------------------------

Deno.test("writeFileAtomic() within a batch folder refuses a linked folder and writes nothing through it", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/batch`);
    await Deno.mkdir(`${dir}/outside`);
    await Deno.symlink(`${dir}/outside`, `${dir}/batch/p1`);
    const error = await rejectionOf(
      writeFileAtomic(`${dir}/batch/p1/prompt.json`, "{}", { within: `${dir}/batch` }),
    );
    assert.ok(error instanceof WriteError && !error.fatal, `${error}`);
    assert.ok(error.message.includes(`'${dir}/batch/p1' is a symbolic link`), error.message);
    const stream = await rejectionOf(
      writeStreamAtomic(`${dir}/batch/p1/i.png`, bytes("x"), undefined, { within: `${dir}/batch` }),
    );
    assert.ok(stream instanceof WriteError, `${stream}`);
    assert.deepEqual(await listDir(`${dir}/outside`), []);
  });
});

Deno.test("writeFileAtomic() refuses a target that is a symbolic link and leaves what it points to", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/precious.txt`, "precious\n");
    await Deno.symlink(`${dir}/precious.txt`, `${dir}/run.json`);
    const error = await rejectionOf(writeJsonAtomic(`${dir}/run.json`, { status: "running" }));
    assert.ok(error.message.includes("is a symbolic link"), error.message);
    assert.equal(await Deno.readTextFile(`${dir}/precious.txt`), "precious\n");
    assert.ok((await Deno.lstat(`${dir}/run.json`)).isSymlink);
    assert.deepEqual(await listDir(dir), ["precious.txt", "run.json"]);
  });
});

// --- removeStaleTemps ----------------------------------------------------------------------------

Deno.test("removeStaleTemps() removes retake's own temporary files at any level, and nothing else", async () => {
  await withTempDir(async (dir) => {
    const b = `${dir}/batch`;
    await Deno.mkdir(`${b}/p1`, { recursive: true });
    await Deno.mkdir(`${b}/_thumbs/p1`, { recursive: true });
    await Deno.mkdir(`${b}/cmp/flux-dev`, { recursive: true });
    await Deno.mkdir(`${dir}/outside`);
    const stale = [
      `${b}/.index.html.deadbeef.tmp`,
      `${b}/.run.json.0123abcd.tmp`,
      `${b}/.retake-write-check-${crypto.randomUUID()}`,
      `${b}/p1/.iteration-1.png.abcdef01.tmp`,
      `${b}/_thumbs/p1/.iteration-1.jpg.12345678.tmp`,
      `${b}/cmp/flux-dev/.metadata.json.9abcdef0.tmp`,
    ];
    const kept = [
      `${b}/run.json`,
      `${b}/notes.tmp`,
      `${b}/.hidden.tmp`,
      `${b}/.x.NOTHEX00.tmp`,
      `${b}/.retake.lock`,
      `${b}/p1/metadata.json`,
      `${dir}/outside/.a.deadbeef.tmp`,
    ];
    for (const path of [...stale, ...kept]) await Deno.writeTextFile(path, "x");
    // Links are neither followed nor removed, whatever their name.
    await Deno.symlink(`${dir}/outside`, `${b}/linked`);
    await Deno.symlink(`${dir}/outside/.a.deadbeef.tmp`, `${b}/.b.deadbeef.tmp`);

    const removed = await removeStaleTemps(b);

    assert.deepEqual(removed.sort(), [...stale].sort());
    for (const path of stale) await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
    for (const path of kept) assert.equal(await Deno.readTextFile(path), "x", path);
    assert.ok((await Deno.lstat(`${b}/.b.deadbeef.tmp`)).isSymlink);
  });
});

Deno.test("removeStaleTemps() is a no-op for a folder that does not exist yet", async () => {
  await withTempDir(async (dir) => {
    assert.deepEqual(await removeStaleTemps(`${dir}/none`), []);
  });
});

// --- FolderSink ----------------------------------------------------------------------------------

const noVerify = () => Promise.resolve({ width: 1, height: 1 });

function specOf(id: string): PromptSpec {
  return { id, prompt: `a picture of ${id}`, extra: {} };
}

function recordOf(spec: PromptSpec, folder: string) {
  return newRecord(
    spec,
    folder,
    { generator: "local", critic: "local", refiner: "local" },
    "2025-01-01T00:00:00.000Z",
    "hash",
  );
}

Deno.test("FolderSink.load() refuses a folder whose metadata.json belongs to another id, and never writes there", async () => {
  await withTempDir(async (dir) => {
    const sink = new FolderSink(dir, noVerify);
    const spec = specOf("a b");
    const folder = sink.folderFor(spec);
    // As two ids whose 32-bit hashes collided left it: the other id's finished result.
    await Deno.mkdir(`${dir}/${folder}`);
    const theirs = JSON.stringify({ ...recordOf(specOf("other"), folder), status: "completed" });
    await Deno.writeTextFile(`${dir}/${folder}/metadata.json`, theirs);

    const error = await rejectionOf(sink.load(folder));
    assert.ok(error instanceof WriteError && !error.fatal, `${error}`);
    assert.ok(error.message.includes(`for prompt 'a b'`), error.message);
    assert.ok(error.message.includes(`belongs to prompt 'other'`), error.message);
    // What the pipeline does next with a failed prompt: each write is refused too.
    await rejectionOf(sink.saveRecord({ ...recordOf(spec, folder), status: "failed" }));
    await rejectionOf(sink.moveAside(folder));
    await rejectionOf(sink.start(spec, recordOf(spec, folder)));
    assert.equal(await Deno.readTextFile(`${dir}/${folder}/metadata.json`), theirs);
    assert.deepEqual(await listDir(`${dir}/${folder}`), ["metadata.json"]);
  });
});

Deno.test("FolderSink.load() finds a folder named by an earlier 32-bit hash and moves it to the new name", async () => {
  await withTempDir(async (dir) => {
    const sink = new FolderSink(dir, noVerify);
    const spec = specOf("sunset 2");
    const legacy = `sunset_2-${fnv1a32("sunset 2").toString(16).padStart(8, "0")}`;
    await Deno.mkdir(`${dir}/${legacy}`);
    const saved = { ...recordOf(spec, legacy), status: "completed" };
    await Deno.writeTextFile(`${dir}/${legacy}/metadata.json`, JSON.stringify(saved));
    await Deno.writeTextFile(`${dir}/${legacy}/iteration-1.png`, "png");

    const folder = sink.folderFor(spec);
    assert.equal(folder, `sunset_2-${folderHash("sunset 2")}`);
    const record = await sink.load(folder);

    assert.equal(record?.status, "completed");
    assert.equal(record?.folder, folder, "the record points at the folder it is in now");
    assert.deepEqual(await listDir(dir), [folder]);
    assert.equal(await Deno.readTextFile(`${dir}/${folder}/iteration-1.png`), "png");
  });
});

Deno.test("FolderSink.load() leaves a legacy-named folder of another id where it is", async () => {
  await withTempDir(async (dir) => {
    const sink = new FolderSink(dir, noVerify);
    const legacy = `sunset_2-${fnv1a32("sunset 2").toString(16).padStart(8, "0")}`;
    await Deno.mkdir(`${dir}/${legacy}`);
    await Deno.writeTextFile(
      `${dir}/${legacy}/metadata.json`,
      JSON.stringify(recordOf(specOf("someone else"), legacy)),
    );
    assert.equal(await sink.load(sink.folderFor(specOf("sunset 2"))), undefined);
    assert.deepEqual(await listDir(dir), [legacy]);
  });
});

Deno.test("FolderSink.load() adopts a legacy comparison folder, model subfolder included", async () => {
  await withTempDir(async (dir) => {
    const model = "fal-ai/flux/dev";
    const sink = new FolderSink(dir, noVerify, model);
    const spec = specOf("a b");
    const hex = (text: string) => fnv1a32(text).toString(16).padStart(8, "0");
    const legacy = `a_b-${hex("a b")}/fal-ai_flux_dev-${hex(model)}`;
    await Deno.mkdir(`${dir}/${legacy}`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/${legacy}/metadata.json`,
      JSON.stringify(recordOf(spec, legacy)),
    );
    const folder = sink.folderFor(spec);
    assert.equal((await sink.load(folder))?.folder, folder);
    assert.deepEqual(await listDir(dir), [folder.split("/")[0]!]);
    assert.ok((await Deno.stat(`${dir}/${folder}/metadata.json`)).isFile);
  });
});

Deno.test("FolderSink.start() refuses a prompt folder that is a link, and one holding a link", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/batch`);
    await Deno.mkdir(`${dir}/outside`);
    const sink = new FolderSink(`${dir}/batch`, noVerify);
    const spec = specOf("p1");
    await Deno.symlink(`${dir}/outside`, `${dir}/batch/p1`);
    const linked = await rejectionOf(sink.start(spec, recordOf(spec, sink.folderFor(spec))));
    assert.ok(linked.message.includes(`'${dir}/batch/p1' is a symbolic link`), linked.message);
    assert.deepEqual(await listDir(`${dir}/outside`), []);

    await Deno.remove(`${dir}/batch/p1`);
    await Deno.mkdir(`${dir}/batch/p1`);
    await Deno.writeTextFile(`${dir}/outside/log.txt`, "precious");
    await Deno.symlink(`${dir}/outside/log.txt`, `${dir}/batch/p1/metadata.json`);
    const inside = await rejectionOf(sink.start(spec, recordOf(spec, "p1")));
    assert.ok(inside.message.includes("metadata.json' is a symbolic link"), inside.message);
    assert.equal(await Deno.readTextFile(`${dir}/outside/log.txt`), "precious");
  });
});

Deno.test("FolderSink.moveAside() twice within the same second keeps both earlier attempts", async () => {
  await withTempDir(async (dir) => {
    const now = new Date("2025-06-01T12:34:56.789Z");
    const sink = new FolderSink(dir, noVerify, undefined, { now: () => now });
    const asides: string[] = [];
    for (const attempt of ["first", "second", "third"]) {
      await Deno.mkdir(`${dir}/p2`);
      await Deno.writeTextFile(`${dir}/p2/metadata.json`, attempt);
      asides.push(await sink.moveAside("p2"));
    }
    assert.deepEqual(asides, [
      "_previous/p2-20250601T123456Z",
      "_previous/p2-20250601T123456Z-2",
      "_previous/p2-20250601T123456Z-3",
    ]);
    const kept = await Promise.all(
      asides.map((a) => Deno.readTextFile(`${dir}/${a}/metadata.json`)),
    );
    assert.deepEqual(kept, ["first", "second", "third"]);
  });
});

Deno.test("FolderSink.moveAside() refuses a _previous that is a link", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/batch/p2`, { recursive: true });
    await Deno.mkdir(`${dir}/outside`);
    await Deno.symlink(`${dir}/outside`, `${dir}/batch/_previous`);
    const sink = new FolderSink(`${dir}/batch`, noVerify);
    const error = await rejectionOf(sink.moveAside("p2"));
    assert.ok(error.message.includes("_previous' is a symbolic link"), error.message);
    assert.deepEqual(await listDir(`${dir}/outside`), []);
    assert.ok((await Deno.stat(`${dir}/batch/p2`)).isDirectory);
  });
});

Deno.test({
  name:
    "writeStreamAtomic() on a disk that fills at the stream's last bytes says the disk is full, not that the image is short",
  ignore: !RUNNING_AS_ROOT,
  fn: () =>
    withTempDir(async (dir) => {
      const mount = await new Deno.Command("mount", {
        args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir],
        stderr: "null",
      }).output();
      if (!mount.success) return; // No mount permission in this sandbox.
      try {
        // 16 KiB left, then 40 KiB in one chunk: less than a 64 KiB write buffer holds, so only
        // the final flush meets the full disk.
        await Deno.writeFile(`${dir}/filler`, new Uint8Array(1024 * 1024 - 16 * 1024));
        let verified = false;
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new Uint8Array(40 * 1024).fill(7));
            controller.close();
          },
        });
        const error = await rejectionOf(
          writeStreamAtomic(`${dir}/img.png`, stream, () => {
            verified = true;
            return Promise.resolve();
          }),
        );
        assert.ok(error instanceof WriteError, error.message);
        assert.equal(error.fatal, true);
        assert.match(error.message, /the disk is full/);
        assert.equal(verified, false, "verify must not run on a short file");
        assert.deepEqual(await listDir(dir), ["filler"]);
      } finally {
        await new Deno.Command("umount", { args: [dir] }).output();
      }
    }),
});

Deno.test("FolderSink.saveBest() copies only a round's own image, never a name or link out", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/p`);
    await Deno.writeTextFile(`${dir}/secret.env`, "API_KEY=1");
    await Deno.symlink(`${dir}/secret.env`, `${dir}/p/iteration-1.png`);
    await Deno.writeTextFile(`${dir}/p/iteration-2.png`, "PNG");
    const sink = new FolderSink(dir, () => Promise.resolve({ width: 1, height: 1 }));
    const record = {
      ...newRecord(
        { id: "p", prompt: "x", extra: {} },
        "p",
        {
          generator: "g",
          critic: "c",
          refiner: "r",
        },
        "2026-01-01T00:00:00Z",
        "h",
      ),
    };
    await assert.rejects(sink.saveBest(record, "../secret.env"), /not a round's image/);
    await assert.rejects(sink.saveBest(record, "iteration-1.png"), /symbolic link/);
    await assert.rejects(Deno.lstat(`${dir}/p/best.png`), Deno.errors.NotFound);
    await assert.rejects(Deno.lstat(`${dir}/p/best.env`), Deno.errors.NotFound);
    assert.equal(await sink.saveBest(record, "iteration-2.png"), "best.png");
    assert.equal(await Deno.readTextFile(`${dir}/p/best.png`), "PNG");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
