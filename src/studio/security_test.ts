/**
 * The studio against what a batch folder from someone else can hold, and what any process on
 * the machine can send it. Each test crafts the folder or the request; see README, Studio.
 */
import assert from "node:assert/strict";
import { Steering } from "../steering/steering.ts";
import { fakeId, makeBatch, TINY_PNG } from "./_test_batch.ts";
import { login, type Session } from "./_test_session.ts";
import { startStudio, type Studio, type StudioWiring } from "./server.ts";

const SECRET = "API_KEY=sk-very-secret\n";

/** A studio over a fresh output folder that `setup` fills; the folder goes afterwards. */
async function withStudio(
  setup: (out: string) => Promise<void>,
  fn: (session: Session, out: string, studio: Studio) => Promise<void>,
  options: Partial<StudioWiring> = {},
): Promise<void> {
  const out = await Deno.makeTempDir({ prefix: "retake-studio-attack-" });
  await setup(out);
  const studio = await startStudio({
    out,
    openSteering: (dir) => Steering.open(dir, { fileNotes: "confirm" }),
    ...options,
  });
  try {
    await fn(await login(studio.url), out, studio);
  } finally {
    await studio.close();
    await Deno.remove(out, { recursive: true });
  }
}

async function textOf(response: Response): Promise<string> {
  return await response.text();
}

async function bestFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith("best")) names.push(entry.name);
  }
  return names;
}

Deno.test("case 1: ♥ never copies a file from outside the batch into it", async () => {
  await withStudio(async (out) => {
    await Deno.writeTextFile(`${out}/.env`, SECRET);
    await makeBatch(out, "batch", 2, {
      edit: (record, i) => {
        // A record that names a file outside its folder as a round's image.
        if (i === 0) record.iterations[0]!.image = "../../.env";
      },
    });
    // A round's image that is a link to a file outside.
    await Deno.remove(`${out}/batch/${fakeId(1)}/iteration-1.png`);
    await Deno.symlink(`${out}/.env`, `${out}/batch/${fakeId(1)}/iteration-1.png`);
  }, async (session, out) => {
    for (const id of [fakeId(0), fakeId(1)]) {
      const response = await session.post("/b/batch/action", {
        type: "favourite",
        id,
        iteration: 1,
      });
      assert.notEqual(response.status, 200, `${id}: ${await textOf(response)}`);
      for (const name of await bestFiles(`${out}/batch/${id}`)) {
        assert.notEqual(await Deno.readTextFile(`${out}/batch/${id}/${name}`), SECRET, name);
      }
      assert.ok(!(await bestFiles(`${out}/batch/${id}`)).includes("best.env"));
      const served = await session.get(`/b/batch/f/${id}/best.png`);
      const body = await served.text();
      assert.ok(!body.includes("sk-very-secret"), `${id}: the secret is served`);
    }
  });
});

Deno.test("case 2: numbers from run.json are escaped on the batches list", async () => {
  const meta = `<meta http-equiv="refresh" content="0;url=http://127.0.0.1:9/">`;
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 1);
    const run = JSON.parse(await Deno.readTextFile(`${out}/batch/run.json`));
    run.totals = { prompts: meta, completed: `<b>1</b>`, failed: 1e400, costUsd: "<i>" };
    run.status = `<script>alert(1)</script>`;
    run.startedAt = `<img src=x onerror=alert(1)>`;
    await Deno.writeTextFile(`${out}/batch/run.json`, JSON.stringify(run));
  }, async (session) => {
    const html = await textOf(await session.get("/"));
    assert.doesNotMatch(html, /<meta http-equiv/);
    assert.doesNotMatch(html, /<b>1<\/b>|<script>alert|<img src=x|<i>/);
    assert.match(html, /href="[^"]*b\/batch\/"/, "the batch is still listed");
  });
});

Deno.test("case 2: the cookie a browser sends to every local port opens nothing by itself", async () => {
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 1);
  }, async (session) => {
    // What another local server gets from the browser: the cookie, at its own paths.
    const leaked = { cookie: session.cookie };
    for (const path of ["/", "/b/batch/", `/b/batch/f/${fakeId(0)}/iteration-1.png`]) {
      const response = await fetch(`${session.origin}${path}`, { headers: leaked });
      await response.body?.cancel();
      assert.equal(response.status, 401, path);
    }
  });
});

Deno.test("case 3: a request head not sent in time is dropped, and the studio keeps answering", async () => {
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 1);
  }, async (session) => {
    const port = Number(new URL(session.origin).port);
    // More idle connections than the studio takes: each is closed, by the cap or the clock.
    const idle = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
        return conn;
      }),
    );
    // The cap only turns a studio that never closes them into a failure, not a hang.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cap = new Promise<boolean[]>((resolve) =>
      timer = setTimeout(() => resolve([false]), 60_000)
    );
    const closing = Promise.all(idle.map(async (conn) => {
      const buffer = new Uint8Array(1024);
      try {
        while ((await conn.read(buffer)) !== null) { /* until the studio closes it */ }
        return true;
      } catch {
        return true;
      } finally {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    }));
    const closedByServer = await Promise.race([closing, cap]);
    clearTimeout(timer);
    if (!closedByServer.every(Boolean)) { for (const conn of idle) conn.close(); }
    assert.ok(closedByServer.every(Boolean), "the idle connections were not closed");
    const page = await session.get("/");
    assert.equal(page.status, 200);
    await page.body?.cancel();
  }, { limits: { maxConnections: 8, headMs: 200 } });
});

Deno.test("case 4: a reject runs its own note, never the notes a received feedback.jsonl holds", async () => {
  const seen: Array<{ ids: string[]; notes: string[] }> = [];
  let ran = () => {};
  const done = new Promise<void>((resolve) => ran = resolve);
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 7);
    // Notes someone else left: one per prompt, none of them sent by this user.
    const lines = Array.from({ length: 7 }, (_, i) =>
      JSON.stringify({
        seq: i + 1,
        at: "2026-01-01T00:00:00.000Z",
        action: { type: "reject", id: fakeId(i), note: `planted ${i}` },
      }));
    await Deno.writeTextFile(`${out}/batch/feedback.jsonl`, lines.join("\n") + "\n");
  }, async (session) => {
    const response = await session.post("/b/batch/action", {
      type: "reject",
      id: fakeId(2),
      note: "warmer light",
    });
    assert.equal(response.status, 200, await textOf(response));
    await done;
    assert.deepEqual(seen, [{ ids: [fakeId(2)], notes: ["warmer light"] }], "one click, one note");
    const page = await textOf(await session.get("/b/batch/"));
    assert.match(page, /planted 0/, "the received notes are shown");
    assert.match(page, /Run this note/, "for confirmation");
  }, {
    runPendingRejects: (_dir, steering) => {
      seen.push({
        ids: steering.pendingIds(),
        notes: steering.pendingNotes(fakeId(2)).map((e) =>
          e.action.type === "reject" ? e.action.note : ""
        ),
      });
      ran();
      return Promise.resolve();
    },
  });
});

Deno.test("case 5: an action's body is cut off at its limit, not read whole", async () => {
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 1);
  }, async (session) => {
    let sent = 0;
    const chunk = new Uint8Array(64 * 1024).fill(32);
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 200 * 1024 * 1024) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const page = await textOf(await session.get("/"));
    const csrf = /<meta name="csrf" content="([0-9a-f]+)">/.exec(page)![1]!;
    const response = await fetch(`${session.origin}${session.base}b/batch/action`, {
      method: "POST",
      body,
      headers: { cookie: session.cookie, origin: session.origin, "x-csrf-token": csrf },
      duplex: "half",
    } as RequestInit).catch(() => undefined);
    await response?.body?.cancel();
    assert.ok(sent < 64 * 1024 * 1024, `the studio read ${sent} bytes of a 200 MB body`);
  });
});

Deno.test("case 5: a 1 GB image is streamed, not read into memory", async () => {
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 1);
    const file = await Deno.open(`${out}/batch/${fakeId(0)}/iteration-2.png`, { write: true });
    await file.truncate(1024 * 1024 * 1024);
    file.close();
  }, async (session) => {
    const before = Deno.memoryUsage().rss;
    const response = await session.get(`/b/batch/f/${fakeId(0)}/iteration-2.png`);
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    await reader.read();
    const grown = Deno.memoryUsage().rss - before;
    await reader.cancel();
    assert.ok(grown < 256 * 1024 * 1024, `one GET grew the process by ${grown} bytes`);
  });
});

Deno.test("case 5: a feedback.jsonl larger than clicks make is refused, not read", async () => {
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 1);
    const file = await Deno.open(`${out}/batch/feedback.jsonl`, { write: true, create: true });
    await file.truncate(200 * 1024 * 1024);
    file.close();
  }, async (session) => {
    const before = Deno.memoryUsage().rss;
    const response = await session.post("/b/batch/action", {
      type: "reject",
      id: fakeId(0),
      note: "x",
    });
    const message = await textOf(response);
    assert.notEqual(response.status, 200);
    assert.match(message, /feedback\.jsonl.*more than/);
    const grown = Deno.memoryUsage().rss - before;
    assert.ok(grown < 100 * 1024 * 1024, `the refusal grew the process by ${grown} bytes`);
  });
});

Deno.test("case 6: a reject of a prompt the batch does not have is refused with 404", async () => {
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 1);
  }, async (session, out) => {
    const response = await session.post("/b/batch/action", { type: "reject", id: "p1", note: "x" });
    assert.equal(response.status, 404, await textOf(response));
    await assert.rejects(Deno.stat(`${out}/batch/feedback.jsonl`), Deno.errors.NotFound);
    const ok = await session.post("/b/batch/action", { type: "reject", id: fakeId(0), note: "x" });
    assert.equal(ok.status, 200, await textOf(ok));
  });
});

Deno.test("case 7: a file swapped for a link while it is served never serves the link's target", async () => {
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 1);
    await Deno.writeTextFile(`${out}/outside.png`, SECRET);
  }, async (session, out) => {
    const folder = `${out}/batch/${fakeId(0)}`;
    await Deno.writeFile(`${folder}/real.png`, TINY_PNG);
    // A local writer swaps the image between the real file and a link to outside, for ever.
    const swapper = new Deno.Command("sh", {
      args: [
        "-c",
        `cd '${folder}' && while :; do ln -sfn '${out}/outside.png' l.tmp && mv -fT l.tmp iteration-1.png; cp real.png r.tmp && mv -fT r.tmp iteration-1.png; done`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    let leaked = 0;
    let served = 0;
    try {
      for (let i = 0; i < 1500; i++) {
        const response = await session.get(`/b/batch/f/${fakeId(0)}/iteration-1.png`);
        const body = await textOf(response);
        if (response.status === 200) served++;
        if (body.includes("sk-very-secret")) leaked++;
      }
    } finally {
      swapper.kill("SIGKILL");
      await swapper.status;
    }
    assert.equal(leaked, 0, `${leaked} of 1500 GETs served the link's target`);
    assert.ok(served > 0, "the real image was served between swaps");
  });
});

Deno.test("case 8: a linked log.jsonl, metadata.json or run.json is not read", async () => {
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 2);
    await Deno.writeTextFile(`${out}/secret.json`, JSON.stringify({ message: "sk-very-secret" }));
    await Deno.writeTextFile(
      `${out}/secret.jsonl`,
      JSON.stringify({ level: "INFO", message: "sk-very-secret" }) + "\n",
    );
    await Deno.symlink(`${out}/secret.jsonl`, `${out}/batch/log.jsonl`);
    const record = JSON.parse(await Deno.readTextFile(`${out}/batch/${fakeId(0)}/metadata.json`));
    record.prompt = "sk-very-secret";
    await Deno.writeTextFile(`${out}/record.json`, JSON.stringify(record));
    await Deno.remove(`${out}/batch/${fakeId(0)}/metadata.json`);
    await Deno.symlink(`${out}/record.json`, `${out}/batch/${fakeId(0)}/metadata.json`);
    // A batch whose run.json is a link to one elsewhere.
    await makeBatch(out, "elsewhere", 1);
    await Deno.mkdir(`${out}/linked`);
    await Deno.symlink(`${out}/elsewhere/run.json`, `${out}/linked/run.json`);
  }, async (session) => {
    const page = await textOf(await session.get("/b/batch/"));
    assert.doesNotMatch(page, /sk-very-secret/);
    const row = await textOf(await session.get(`/b/batch/row/${fakeId(0)}`));
    assert.doesNotMatch(row, /sk-very-secret/);
    const list = await textOf(await session.get("/"));
    assert.doesNotMatch(list, /b\/linked\//);
    assert.match(list, /b\/elsewhere\//);
  });
});

Deno.test("case 9: no cell of prompts.csv starts like a formula", async () => {
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 1);
    // A comparison folder whose model subfolders are named like formulas.
    const record = JSON.parse(await Deno.readTextFile(`${out}/batch/${fakeId(0)}/metadata.json`));
    await Deno.mkdir(`${out}/batch/cmp`);
    for (const model of ["=1+1", "-2+3", "@SUM(1)", "+4"]) {
      await Deno.mkdir(`${out}/batch/cmp/${model}`);
      await Deno.writeTextFile(
        `${out}/batch/cmp/${model}/metadata.json`,
        JSON.stringify({ ...record, id: "cmp", folder: `cmp/${model}` }),
      );
      await Deno.writeFile(`${out}/batch/cmp/${model}/iteration-2.png`, TINY_PNG);
    }
  }, async (session) => {
    const bytes = new Uint8Array(await (await session.get("/b/batch/export.zip")).arrayBuffer());
    const { unzipSync, strFromU8 } = await import("fflate");
    const csv = strFromU8(unzipSync(bytes)["prompts.csv"]!);
    const cells = csv.split("\r\n").slice(1).flatMap((line) => line.split(","));
    for (const cell of cells) {
      assert.doesNotMatch(
        cell.replace(/^"/, ""),
        /^[=+\-@]/,
        `a cell starts like a formula: ${cell}`,
      );
    }
    assert.match(csv, /'=1\+1/);
  });
});

Deno.test("case 10: the token's redirect never leaves the studio", async () => {
  await withStudio(async (out) => {
    await makeBatch(out, "batch", 1);
  }, async (session, _out, studio) => {
    const token = new URL(studio.url).searchParams.get("token");
    for (const path of ["//evil.example/", "/\\evil.example/", "//evil.example/b/batch/"]) {
      const response = await fetch(`${session.origin}${path}?token=${token}`, {
        redirect: "manual",
      });
      await response.body?.cancel();
      const location = response.headers.get("location") ?? "";
      assert.ok(location.startsWith("/") && !/^\/[\\/]/.test(location), `${path} → ${location}`);
      assert.equal(new URL(location, session.origin).origin, session.origin);
    }
  });
});
