import assert from "node:assert/strict";
import { Steering } from "../steering/steering.ts";
import { fakeId, makeBatch, TINY_PNG } from "./_test_batch.ts";
import { startStudio, type StudioControl, type StudioWiring } from "./server.ts";

const SECRETS = { token: "a".repeat(64), csrf: "c".repeat(64), session: "e".repeat(32) };
/** The path every page lives under, with the fixed session above. */
const BASE = `/s/${SECRETS.session}`;

/**
 * Runs `fn` with a studio on a temporary folder that `setup` fills; the studio opens the
 * steering of the batch it is asked about, unless `setup` returns the options to start it with.
 */
async function withStudio(
  fn: (studio: StudioControl, get: Getter, post: Poster, out: string) => Promise<void>,
  setup: (out: string) => Promise<void | StudioRun> = async (out) => {
    await makeBatch(out, "batch", 3);
  },
) {
  const out = await Deno.makeTempDir({ prefix: "retake-studio-" });
  const run = await setup(out) ?? { openSteering: (dir: string) => Steering.open(dir) };
  const studio = await startStudio({ out, secrets: SECRETS, ...run });
  const base = `http://127.0.0.1:${studio.port}`;
  const cookie = `retake_studio_${studio.port}=${SECRETS.token}`;
  const get: Getter = (path, headers = { cookie }) =>
    fetch(`${base}${BASE}${path}`, { headers, redirect: "manual" });
  const post: Poster = (path, body, headers = {}) =>
    fetch(`${base}${BASE}${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: {
        cookie,
        origin: base,
        "x-csrf-token": SECRETS.csrf,
        "content-type": "application/json",
        ...headers,
      },
    });
  try {
    await fn(studio, get, post, out);
  } finally {
    await studio.close();
    await Deno.remove(out, { recursive: true });
  }
}
type Getter = (path: string, headers?: Record<string, string>) => Promise<Response>;
type Poster = (path: string, body: unknown, headers?: Record<string, string>) => Promise<Response>;

/** What a studio is started with besides its folder and secrets. */
type StudioRun = Omit<StudioWiring, "out" | "secrets">;

/** Runs `fn` with a studio attached to the live run of a 2-prompt `batch`, and that run's steering. */
function withLiveRun(
  fn: (
    studio: StudioControl,
    steering: Steering,
    get: Getter,
    post: Poster,
    out: string,
  ) => Promise<void>,
) {
  let steering!: Steering;
  return withStudio(
    (studio, get, post, out) => fn(studio, steering, get, post, out),
    async (out) => {
      await makeBatch(out, "batch", 2);
      steering = await Steering.open(`${out}/batch`);
      return { live: { batch: "batch", total: 2, steering } };
    },
  );
}

Deno.test("studio listens on 127.0.0.1 and prints its URL with a 64-hex token", async () => {
  await withStudio(async (studio, get) => {
    assert.match(studio.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
    const noToken = await get("/", {});
    assert.equal(noToken.status, 401);
    assert.equal(noToken.headers.get("access-control-allow-origin"), null);
    await noToken.body?.cancel();
    const first = await get(`/?token=${SECRETS.token}`, {});
    assert.equal(first.status, 303);
    assert.equal(first.headers.get("location"), `${BASE}/`);
    await first.body?.cancel();
  });
});

Deno.test("studio pages carry a CSP without inline script, and list every batch", async () => {
  await withStudio(async (_studio, get) => {
    const page = await get("/");
    assert.equal(page.status, 200);
    const csp = page.headers.get("content-security-policy")!;
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    const html = await page.text();
    assert.match(html, new RegExp(`href="${BASE}/b/batch/"`));
    assert.match(html, new RegExp(`href="${BASE}/b/other/"`));
    assert.doesNotMatch(html, /<script>/, "no inline script");
    assert.doesNotMatch(html, /not-a-batch/, "a folder without run.json is no batch");
  }, async (out) => {
    await makeBatch(out, "batch", 2);
    await makeBatch(out, "other", 1);
    await Deno.mkdir(`${out}/not-a-batch`);
  });
});

Deno.test("studio batch page escapes every string from the records", async () => {
  await withStudio(async (_studio, get) => {
    const html = await (await get("/b/batch/")).text();
    assert.doesNotMatch(html, /<img src=x onerror/);
    assert.match(html, /&#60;img src=x onerror=alert\(1\)&#62;/);
    assert.match(html, /Round 1 of p00001/);
  }, async (out) => {
    await makeBatch(out, "batch", 2, {
      edit: (record, i) => {
        if (i === 0) record.prompt = `<img src=x onerror=alert(1)> "quoted" & 'single'`;
      },
    });
  });
});

Deno.test("studio batch page pages and filters on the server", async () => {
  await withStudio(async (_studio, get) => {
    const first = await (await get("/b/batch/")).text();
    assert.equal(first.match(/<section class="row"/g)?.length, 50);
    assert.match(first, /Page 1 of 3/);
    const third = await (await get("/b/batch/?page=3")).text();
    assert.equal(third.match(/<section class="row"/g)?.length, 20);
    const failed = await (await get("/b/batch/?filter=failed")).text();
    // Every tenth prompt (3, 13, …) failed in the fake batch.
    assert.equal(failed.match(/<section class="row"/g)?.length, 12);
    assert.match(failed, /data-status="failed"/);
    assert.doesNotMatch(failed, /data-status="completed"/);
    const below = await (await get("/b/batch/?filter=below")).text();
    assert.doesNotMatch(below, /best <b>(9|10)\./);
  }, async (out) => {
    await makeBatch(out, "batch", 120, { images: false, targetScore: 9 });
  });
});

Deno.test("studio serves images from inside the batch folder only, with their type", async () => {
  await withStudio(async (_studio, get, _post, out) => {
    const image = await get(`/b/batch/f/${fakeId(0)}/iteration-1.png`);
    assert.equal(image.status, 200);
    assert.equal(image.headers.get("content-type"), "image/png");
    assert.deepEqual(new Uint8Array(await image.arrayBuffer()), TINY_PNG);
    for (
      const path of [
        `/b/batch/f/${fakeId(0)}/metadata.json`,
        `/b/batch/f/..%2F..%2Fsecret.png`,
        `/b/batch/f/%2e%2e/secret.png`,
        `/b/..%2Fsecret/f/x.png`,
        `/b/batch/f/linked/iteration-1.png`,
        `/b/batch/f/${fakeId(0)}/outside.png`,
      ]
    ) {
      const response = await get(path);
      assert.equal(response.status, 404, path);
      await response.body?.cancel();
    }
    assert.ok(await Deno.stat(`${out}/secret.png`));
  }, async (out) => {
    await makeBatch(out, "batch", 1);
    await Deno.writeFile(`${out}/secret.png`, TINY_PNG);
    await Deno.symlink(`${out}/secret.png`, `${out}/batch/${fakeId(0)}/outside.png`);
    await Deno.mkdir(`${out}/elsewhere`);
    await Deno.writeFile(`${out}/elsewhere/iteration-1.png`, TINY_PNG);
    await Deno.symlink(`${out}/elsewhere`, `${out}/batch/linked`);
  });
});

Deno.test("studio refuses a POST without the CSRF token, and writes nothing", async () => {
  await withStudio(async (_studio, _get, post, out) => {
    const refused = await post("/b/batch/action", {
      type: "favourite",
      id: fakeId(0),
      iteration: 1,
    }, { "x-csrf-token": "" });
    assert.equal(refused.status, 403);
    await refused.body?.cancel();
    const foreign = await post("/b/batch/action", {
      type: "favourite",
      id: fakeId(0),
      iteration: 1,
    }, { origin: "http://evil.example" });
    assert.equal(foreign.status, 403);
    await foreign.body?.cancel();
    await assert.rejects(Deno.stat(`${out}/batch/feedback.jsonl`), Deno.errors.NotFound);
  });
});

Deno.test("studio favourite writes feedback.jsonl and the record's chosen round", async () => {
  await withStudio(async (_studio, get, post, out) => {
    const response = await post("/b/batch/action", {
      type: "favourite",
      id: fakeId(0),
      iteration: 1,
    });
    assert.equal(response.status, 200, await response.clone().text());
    const entry = await response.json();
    assert.equal(entry.action.type, "favourite");
    const lines = (await Deno.readTextFile(`${out}/batch/feedback.jsonl`)).trim().split("\n");
    assert.equal(lines.length, 1);
    const record = JSON.parse(await Deno.readTextFile(`${out}/batch/${fakeId(0)}/metadata.json`));
    assert.equal(record.chosen, 1);
    const row = await (await get(`/b/batch/row/${fakeId(0)}`)).text();
    assert.match(row, /♥ your pick/);
    const bad = await post("/b/batch/action", { type: "favourite", id: fakeId(0), iteration: 9 });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /no saved image/);
    const paused = await post("/b/batch/action", { type: "pause" });
    assert.equal(paused.status, 409, "no run of this batch is attached");
    await paused.body?.cancel();
  });
});

Deno.test("studio streams the live run's pipeline events and progress over SSE", async () => {
  await withLiveRun(async (studio, steering, get) => {
    const response = await get("/events?batch=batch");
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    const until = async (pattern: RegExp) => {
      while (!pattern.test(seen)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended before ${pattern}: ${seen}`);
        seen += value;
      }
    };
    await until(/: connected/);
    studio.onEvent({ type: "step-start", id: fakeId(0), step: "generate", iteration: 1 });
    studio.onEvent({
      type: "step-end",
      id: fakeId(0),
      step: "generate",
      iteration: 1,
      ok: true,
      durationMs: 5,
      costUsd: 0.25,
    });
    await until(/event: step-end\ndata: (.*)\n\n/);
    const data = JSON.parse(/event: step-end\ndata: (.*)\n\n/.exec(seen)![1]!);
    assert.equal(data.folder, fakeId(0));
    assert.equal(data.iteration, 1);
    await until(/event: progress\ndata: .*\n\n/);
    const progress = JSON.parse(/event: progress\ndata: (.*)\n\n/.exec(seen)![1]!);
    assert.equal(progress.total, 2);
    assert.match(progress.text, /\$0\.2500/);
    await steering.apply({ type: "pause" });
    await until(/event: feedback\ndata: .*"pause".*\n\n/);
    await reader.cancel();
  });
});

Deno.test("studio export zips each prompt's chosen image with a CSV", async () => {
  await withStudio(async (_studio, get) => {
    const response = await get("/b/batch/export.zip");
    assert.equal(response.headers.get("content-type"), "application/zip");
    const bytes = new Uint8Array(await response.arrayBuffer());
    const { unzipSync, strFromU8 } = await import("fflate");
    const files = unzipSync(bytes);
    assert.deepEqual(Object.keys(files).sort(), [
      `images/${fakeId(0)}.png`,
      `images/${fakeId(1)}.png`,
      "prompts.csv",
    ]);
    const csv = strFromU8(files["prompts.csv"]!);
    assert.match(csv, /^id,model,prompt,iteration,score,costUsd,file,chosenBy\r\n/);
    assert.match(csv, /"a, ""quoted""\nprompt"/);
  }, async (out) => {
    await makeBatch(out, "batch", 2, {
      edit: (record, i) => {
        if (i === 0) record.prompt = `a, "quoted"\nprompt`;
      },
    });
  });
});

Deno.test("studio sends pause, front and cancel of the attached run to its steering", async () => {
  await withLiveRun(async (studio, steering, _get, post, out) => {
    const act = (action: unknown) => post("/b/batch/action", action);
    for (
      const action of [
        { type: "pause" },
        { type: "front", id: fakeId(1) },
        { type: "cancel", id: fakeId(0) },
      ]
    ) {
      const response = await act(action);
      assert.equal(response.status, 200, await response.clone().text());
      await response.body?.cancel();
    }
    assert.equal(steering.paused, true);
    assert.equal(steering.cancelled(fakeId(0)), true);
    const lines = (await Deno.readTextFile(`${out}/batch/feedback.jsonl`)).trim().split("\n");
    assert.deepEqual(lines.map((l) => JSON.parse(l).action.type), ["pause", "front", "cancel"]);
    const bad = await act({ type: "front" });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /field 'id'/);
    studio.runEnded();
    const late = await act({ type: "resume" });
    assert.equal(late.status, 409, "once the run has ended, its queue is gone");
    await late.body?.cancel();
  });
});
