import assert from "node:assert/strict";
import { uniformCritique } from "../../tests/critique_fixture.ts";
import sharp from "sharp";
import { EXAMPLE, runCli } from "../../tests/cli.ts";
import { startFalStandIn } from "../../tests/fal_standin.ts";
import { writeGallery } from "./gallery.ts";
import type { PromptRecord } from "../output/record.ts";

const EXAMPLE_IDS: string[] = JSON.parse(await Deno.readTextFile(EXAMPLE)).prompts.map(
  (p: { id: string }) => p.id,
);

let exampleRun: Promise<string> | undefined;

/** The example batch, run once through the real CLI; each test works on its own copy. */
async function exampleBatch(): Promise<string> {
  exampleRun ??= (async () => {
    const cwd = await Deno.makeTempDir({ prefix: "retake-gallery-run-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(cwd, { recursive: true }));
    const result = await runCli(["--out", "out", EXAMPLE], { cwd });
    assert.equal(result.code, 0, result.stderr);
    return `${cwd}/out/example`;
  })();
  const dir = await Deno.makeTempDir({ prefix: "retake-gallery-" });
  await copyDir(await exampleRun, `${dir}/example`);
  return `${dir}/example`;
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyDir(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

async function withBatch(fn: (batch: string) => Promise<void>): Promise<void> {
  const batch = await exampleBatch();
  try {
    await fn(batch);
  } finally {
    await Deno.remove(batch.slice(0, batch.lastIndexOf("/")), { recursive: true });
  }
}

async function readRecord(path: string): Promise<PromptRecord> {
  return JSON.parse(await Deno.readTextFile(path));
}

/** The HTML of the section whose id line shows `id`. */
function sectionFor(html: string, id: string): string {
  const section = html.split(/<section class="prompt/).find((s) =>
    s.includes(`<code>${id}</code>`)
  );
  assert.ok(section, `no section for '${id}'`);
  return section;
}

function unescape(html: string): string {
  return html.replace(/&#(\d+);/g, (_, code) => String.fromCharCode(Number(code)));
}

function collapse(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function count(text: string, pattern: RegExp): number {
  return text.match(pattern)?.length ?? 0;
}

Deno.test("writeGallery() shows every prompt of a CLI run with a lazy thumbnail per iteration", async () => {
  await withBatch(async (batch) => {
    const page = await writeGallery(batch);
    assert.equal(page, `${batch}/index.html`);
    const html = await Deno.readTextFile(page);

    for (const id of EXAMPLE_IDS) assert.ok(html.includes(`<code>${id}</code>`), id);
    assert.equal(count(html, /<img /g), 14);
    assert.equal(count(html, /<img [^>]*loading="lazy"/g), 14);
    assert.match(html, /<dt>Prompts<\/dt><dd>7<\/dd>/);
    assert.match(html, /<dt>Completed<\/dt><dd>7<\/dd>/);
    assert.match(html, /<dt>Failed<\/dt><dd>0<\/dd>/);
    assert.match(html, /<dt>Total cost<\/dt><dd>\$0\.0000<\/dd>/);
    assert.match(html, /<b>generator<\/b> local <code>local-svg-v1<\/code>/);

    // Self-contained: no absolute path, no network, nothing but relative links.
    assert.ok(!html.includes(batch), "no absolute path in the page");
    assert.doesNotMatch(html, /(src|href)="(https?:|file:|\/)/);
    assert.doesNotMatch(html, /<script|<link rel="stylesheet"/);

    for (const id of EXAMPLE_IDS) {
      for (const n of [1, 2]) {
        assert.ok(
          html.includes(
            `<a class="shot" href="${id}/iteration-${n}.png"><img src="_thumbs/${id}/iteration-${n}.jpg"`,
          ),
          `${id} iteration ${n} links its thumbnail to the full image`,
        );
        const thumb = sharp(`${batch}/_thumbs/${id}/iteration-${n}.jpg`);
        const { info } = await thumb.raw().toBuffer({ resolveWithObject: true });
        assert.equal(info.width, 360);
        assert.equal(info.height, 270);
        assert.equal(
          (await sharp(`${batch}/_thumbs/${id}/iteration-${n}.jpg`).metadata()).format,
          "jpeg",
        );
      }
    }
    const leftovers = [];
    for await (const entry of Deno.readDir(batch)) {
      if (entry.name.endsWith(".tmp")) leftovers.push(entry.name);
    }
    assert.deepEqual(leftovers, []);
  });
});

Deno.test("writeGallery() marks each prompt's best iteration from metadata.json", async () => {
  await withBatch(async (batch) => {
    // The page follows metadata.json, not the scores: make one prompt's best the first round.
    const forest = await readRecord(`${batch}/forest-awakening/metadata.json`);
    forest.bestIteration = 1;
    await Deno.writeTextFile(`${batch}/forest-awakening/metadata.json`, JSON.stringify(forest));
    const html = await Deno.readTextFile(await writeGallery(batch));
    for (const id of EXAMPLE_IDS) {
      const record = await readRecord(`${batch}/${id}/metadata.json`);
      const section = sectionFor(html, id);
      assert.equal(count(section, /data-best="true"/g), 1, id);
      assert.match(
        section,
        new RegExp(`data-iteration="${record.bestIteration}" data-best="true"`),
      );
      assert.equal(count(section, /★ best/g), 1);
    }
    assert.match(sectionFor(html, "forest-awakening"), /data-iteration="1" data-best="true"/);
  });
});

Deno.test("writeGallery() shows the refined prompt as a word diff of the previous one", async () => {
  await withBatch(async (batch) => {
    const html = await Deno.readTextFile(await writeGallery(batch));
    for (const id of EXAMPLE_IDS) {
      const record = await readRecord(`${batch}/${id}/metadata.json`);
      const diff = /<p class="diff">([\s\S]*?)<\/p>/.exec(sectionFor(html, id))?.[1];
      assert.ok(diff, `${id} has a diff`);
      assert.match(diff, /<ins>/, `${id} shows inserted words`);
      // Dropping the insertions gives back the old prompt; dropping the deletions, the new one.
      // (Spaces are compared collapsed, as the browser shows them.)
      const before = unescape(diff.replace(/<ins>.*?<\/ins>/g, "").replace(/<\/?del>/g, ""));
      const after = unescape(diff.replace(/<del>.*?<\/del>/g, "").replace(/<\/?ins>/g, ""));
      assert.equal(collapse(before), collapse(record.iterations[0]!.prompt));
      assert.equal(collapse(after), collapse(record.iterations[1]!.prompt));
    }
    assert.match(html, /<del>/, "some refinement removed a word");
    assert.match(sectionFor(html, "alpine-lake"), /Snowy <ins>vivid<\/ins> mountains/);
  });
});

Deno.test("writeGallery() escapes prompt text so markup shows as text", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "retake-gallery-escape-" });
  try {
    const hostile = {
      id: `x"><script>alert('id')</script>`,
      title: "<b>Title</b> & co",
      scene: "A <img src=x onerror=alert(1)> scene",
      mood: `"quoted" & 'single'`,
      prompt: "A red barn at dusk <script>alert('prompt')</script>",
    };
    await Deno.writeTextFile(`${cwd}/hostile.json`, JSON.stringify({ prompts: [hostile] }));
    const result = await runCli(["--out", "out", "hostile.json"], { cwd });
    assert.equal(result.code, 0, result.stderr);
    const html = await Deno.readTextFile(await writeGallery(`${cwd}/out/hostile`));

    assert.doesNotMatch(html, /<script|<b>Title|<img src=x/);
    assert.ok(html.includes("A &#60;img src=x onerror=alert(1)&#62; scene"));
    assert.ok(html.includes("&#60;script&#62;alert(&#39;prompt&#39;)&#60;/script&#62;"));
    assert.ok(html.includes("&#60;b&#62;Title&#60;/b&#62; &#38; co"));
    assert.ok(html.includes("&#34;quoted&#34; &#38; &#39;single&#39;"));
    assert.ok(html.includes("<code>x&#34;&#62;&#60;script&#62;alert(&#39;id&#39;)"));
    assert.equal(count(html, /<img /g), 2);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("writeGallery() keeps thumbnails newer than their image and remakes stale ones", async () => {
  await withBatch(async (batch) => {
    await writeGallery(batch);
    const thumb = `${batch}/_thumbs/neon-rain/iteration-1.jpg`;
    const other = `${batch}/_thumbs/neon-rain/iteration-2.jpg`;
    const old = new Date("2030-01-01T00:00:00Z");
    await Deno.utime(thumb, old, old);
    await Deno.utime(other, old, old);
    const newer = new Date("2031-01-01T00:00:00Z");
    await Deno.utime(`${batch}/neon-rain/iteration-2.png`, newer, newer);

    await writeGallery(batch);
    assert.equal((await Deno.stat(thumb)).mtime?.toISOString(), old.toISOString(), "kept");
    assert.notEqual((await Deno.stat(other)).mtime?.toISOString(), old.toISOString(), "remade");

    const html = await Deno.readTextFile(await writeGallery(batch, { thumbWidth: 200 }));
    assert.equal((await sharp(thumb).metadata()).width, 200, "a new width remakes every thumbnail");
    assert.equal(count(html, /<img [^>]*width="200" height="150"/g), 14);
  });
});

Deno.test("writeGallery() shows a failed prompt's error and unreadable metadata without stopping", async () => {
  await withBatch(async (batch) => {
    const failed = await readRecord(`${batch}/desert-noon/metadata.json`);
    failed.status = "failed";
    failed.error = {
      step: "generate",
      iteration: 2,
      message: "Content policy <blocked> the prompt",
      provider: "fal",
      status: 422,
    };
    failed.iterations = failed.iterations.slice(0, 1);
    delete failed.bestIteration;
    await Deno.writeTextFile(`${batch}/desert-noon/metadata.json`, JSON.stringify(failed));
    await Deno.writeTextFile(`${batch}/neon-rain/metadata.json`, "{ not json");
    await Deno.remove(`${batch}/storm-coast/metadata.json`);
    await Deno.writeTextFile(`${batch}/winter-cabin/metadata.json`, JSON.stringify({ id: 3 }));
    await Deno.writeTextFile(`${batch}/run.json`, "[broken");

    const html = await Deno.readTextFile(await writeGallery(batch));
    const desert = sectionFor(html, "desert-noon");
    assert.match(desert, /<span class="badge bad">failed<\/span>/);
    assert.match(desert, /Failed<\/b> at step <b>generate<\/b> \(iteration 2\)/);
    assert.ok(desert.includes("Content policy &#60;blocked&#62; the prompt"));
    assert.match(desert, /provider fal · HTTP 422/);
    assert.match(desert, /Next prompt <small>not generated/);

    const unreadable = html.split(/<section class="prompt/).filter((s) =>
      s.startsWith(` unreadable"`)
    );
    assert.equal(unreadable.length, 3);
    assert.match(
      html,
      /<h2>neon-rain<\/h2>[\s\S]*?Unreadable metadata: metadata.json is not valid JSON/,
    );
    assert.match(
      html,
      /<h2>storm-coast<\/h2>[\s\S]*?Unreadable metadata: metadata.json is missing/,
    );
    assert.match(html, /<h2>winter-cabin<\/h2>[\s\S]*?is not a retake record/);
    assert.match(html, /run.json is not valid JSON/);
    assert.equal(count(html, /<img /g), 14 - 2 - 2 - 2 - 1);
  });
});

Deno.test("writeGallery() shows a comparison folder's models side by side and marks the winner", async () => {
  const batch = await Deno.makeTempDir({ prefix: "retake-gallery-compare-" });
  try {
    const models = { "flux-dev": [6.5, 8.1], "flux schnell #2": [7.2, 7.9] };
    for (const [model, scores] of Object.entries(models)) {
      const dir = `${batch}/sunset/${model}`;
      await Deno.mkdir(dir, { recursive: true });
      const iterations = [];
      for (const [i, score] of scores.entries()) {
        await sharp({ create: { width: 800, height: 600, channels: 3, background: "#e07a3f" } })
          .png().toFile(`${dir}/iteration-${i + 1}.png`);
        iterations.push({
          iteration: i + 1,
          prompt: i === 0 ? "a sunset" : "a vivid sunset over the sea",
          seed: 1,
          model,
          image: `iteration-${i + 1}.png`,
          critique: uniformCritique(score, { problems: ["too plain"] }),
          ...(i === 0 && { refinedPrompt: "a vivid sunset over the sea" }),
          steps: {},
        });
      }
      await Deno.writeTextFile(
        `${dir}/metadata.json`,
        JSON.stringify({
          id: "sunset",
          folder: "sunset",
          status: "completed",
          title: "Sunset",
          prompt: "a sunset",
          extra: {},
          iterations,
          bestIteration: 2,
          bestScore: Math.max(...scores),
          costUsd: 0.006,
          durationMs: 4200,
          startedAt: "2026-01-01T00:00:00Z",
        }),
      );
    }
    await Deno.writeTextFile(
      `${batch}/comparison.json`,
      JSON.stringify({
        prompts: [{
          id: "sunset",
          winner: "flux-dev",
          models: [
            { model: "flux-dev", bestScore: 8.1, costUsd: 0.05, durationMs: 9000 },
            { model: "flux schnell #2", bestScore: 7.9, costUsd: 0.006, durationMs: 3000 },
          ],
        }],
      }),
    );

    const html = await Deno.readTextFile(await writeGallery(batch));
    assert.match(html, /<section class="prompt comparison"/);
    assert.match(
      html,
      /<div class="models">\s*<section class="model winner" data-model="flux-dev" data-winner="true">/,
    );
    assert.match(html, /<section class="model" data-model="flux schnell #2">/);
    assert.equal(count(html, /data-winner="true"/g), 1);
    assert.match(html, /<h3>flux-dev <span class="winner-badge">★ winner<\/span><\/h3>/);
    assert.match(html, /<h3>flux schnell #2<\/h3>/);
    assert.match(html, /best <b>8\.1<\/b> · \$0\.0500 · 9\.0s/);
    assert.match(html, /Comparing 2 models · winner <b>flux-dev<\/b>/);
    assert.equal(count(html, /<img /g), 4);
    assert.ok(
      html.includes(
        `href="sunset/flux%20schnell%20%232/iteration-1.png"><img src="_thumbs/sunset/flux%20schnell%20%232/iteration-1.jpg"`,
      ),
      "path segments are URL-encoded",
    );
    const thumb = await sharp(`${batch}/_thumbs/sunset/flux schnell #2/iteration-2.jpg`).metadata();
    assert.equal(thumb.width, 360);
    assert.match(html, /a <ins>vivid<\/ins> sunset <ins>over the sea<\/ins>/);
  } finally {
    await Deno.remove(batch, { recursive: true });
  }
});

Deno.test("writeGallery() says so when the batch folder does not exist", async () => {
  await assert.rejects(writeGallery("/nonexistent/batch"), {
    name: "NotFound",
    message:
      "Cannot write the gallery as '/nonexistent/batch' is not a folder: give a batch folder such as 'outputs/example'",
  });
});

Deno.test("writeGallery() rejects a thumbnail width that is not a sensible integer", async () => {
  await assert.rejects(
    writeGallery("/nonexistent", { thumbWidth: 0 }),
    {
      name: "RangeError",
      message:
        "Cannot write the gallery as 'thumbWidth' must be an integer between 16 and 4096: current value is 0",
    },
  );
});

Deno.test("writeGallery() lays out a real --models run by model, named from comparison.json or run.json", async () => {
  // Only fal has several models, so this comparison runs against the fal stand-in.
  const fal = await startFalStandIn({ key: "gallery-fal-key" });
  const cwd = await Deno.makeTempDir({ prefix: "retake-gallery-models-" });
  try {
    await Deno.writeTextFile(
      `${cwd}/retake.config.json`,
      JSON.stringify({ fal: { pollIntervalMs: 5 }, retry: { minTimeoutMs: 5, maxTimeoutMs: 20 } }),
    );
    const result = await runCli(
      [
        "--out",
        "out",
        "--models",
        "flux-schnell,flux-dev",
        "--critic",
        "local",
        "--only",
        "neon-rain",
        EXAMPLE,
      ],
      { cwd, env: { FAL_KEY: "gallery-fal-key", FAL_BASE_URL: fal.url } },
    );
    assert.equal(result.code, 0, result.stderr);
    const batch = `${cwd}/out/example`;
    const comparison = JSON.parse(await Deno.readTextFile(`${batch}/comparison.json`));
    const winner: string = comparison.prompts[0].winner;
    await Deno.mkdir(`${batch}/_previous/neon-rain-old`, { recursive: true });
    await Deno.writeTextFile(`${batch}/_previous/neon-rain-old/metadata.json`, "{}");

    const html = await Deno.readTextFile(await writeGallery(batch));
    assert.equal(count(html, /<section class="prompt/g), 1, "one section, nothing from _previous");
    assert.match(html, /<h3>fal-ai\/flux\/schnell[ <]/);
    assert.match(html, /<h3>fal-ai\/flux\/dev[ <]/);
    assert.equal(count(html, /data-winner="true"/g), 1);
    assert.ok(html.includes(`data-model="${winner}" data-winner="true"`));
    assert.equal(count(html, /<img /g), 4);
    assert.ok(html.includes(`src="_thumbs/neon-rain/fal-ai_flux_dev-`));

    await Deno.remove(`${batch}/comparison.json`);
    const plain = await Deno.readTextFile(await writeGallery(batch));
    assert.match(plain, /<h3>fal-ai\/flux\/dev<\/h3>/, "named from run.json");
    assert.equal(count(plain, /data-winner/g), 0);
  } finally {
    await fal.close();
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("writeGallery() streams a batch of many prompts: every contents link finds its section, in order", async () => {
  await withBatch(async (batch) => {
    // 7 example prompts + 40 copies spread over many render chunks, + 2 listed without a folder.
    const source = `${batch}/alpine-lake`;
    const copies = Array.from({ length: 40 }, (_, i) => `copy-${String(i).padStart(2, "0")}`);
    for (const id of copies) {
      await copyDir(source, `${batch}/${id}`);
      const record = await readRecord(`${batch}/${id}/metadata.json`);
      await Deno.writeTextFile(`${batch}/${id}/metadata.json`, JSON.stringify({ ...record, id }));
    }
    const run = JSON.parse(await Deno.readTextFile(`${batch}/run.json`));
    run.prompts.push({ id: "gone-1", status: "not run" }, { id: "gone-2", status: "failed" });
    await Deno.writeTextFile(`${batch}/run.json`, JSON.stringify(run));

    const html = await Deno.readTextFile(await writeGallery(batch));
    const links = [...html.matchAll(/<li><a class="[^"]*" href="#(p\d+)">([^<]+)/g)]
      .map(([, anchor, label]) => [anchor, label!.trim()]);
    const sections = [
      ...html.matchAll(/<section class="prompt[^"]*" id="(p\d+)">([\s\S]*?)<\/h2>/g),
    ]
      .map(([, anchor, head]) => [anchor, head!]);
    assert.equal(links.length, 7 + 40 + 2);
    assert.deepEqual(sections.map(([a]) => a), links.map(([a]) => a));
    // Listed prompts first in run.json order, then unlisted folders by name, then the absent.
    assert.deepEqual(links.slice(0, 7).map(([, l]) => l), EXAMPLE_IDS);
    assert.deepEqual(links.slice(7, 47).map(([, l]) => l), copies);
    assert.deepEqual(links.slice(47).map(([, l]) => l), ["gone-1", "gone-2"]);
    assert.deepEqual(
      [...html.matchAll(
        /<section class="prompt absent" id="(p\d+)"><header class="context"><h2>([^<]+)/g,
      )]
        .map(([, anchor, id]) => [anchor, id]),
      links.slice(47),
    );
    for (const id of copies) {
      assert.ok(sectionFor(html, id).includes(`<img src="_thumbs/${id}/iteration-2.jpg"`), id);
    }
    assert.equal(count(html, /<img /g), 2 * (7 + 40));
    assert.ok(html.trimEnd().endsWith("</html>"));
  });
});

Deno.test("writeGallery() never writes through a link in _thumbs/ or at index.html", async () => {
  await withBatch(async (batch) => {
    const outside = await Deno.makeTempDir({ prefix: "retake-gallery-outside-" });
    try {
      await Deno.remove(`${batch}/_thumbs`, { recursive: true }).catch(() => {});
      await Deno.mkdir(`${batch}/_thumbs`);
      await Deno.symlink(outside, `${batch}/_thumbs/neon-rain`);
      const html = await Deno.readTextFile(await writeGallery(batch));
      assert.match(html, /is a symbolic link/, "the page says why a thumbnail is missing");
      assert.deepEqual(await Array.fromAsync(Deno.readDir(outside)), []);

      await Deno.writeTextFile(`${outside}/page.html`, "precious");
      await Deno.remove(`${batch}/index.html`);
      await Deno.symlink(`${outside}/page.html`, `${batch}/index.html`);
      await assert.rejects(writeGallery(batch), /index\.html' is a symbolic link/);
      assert.equal(await Deno.readTextFile(`${outside}/page.html`), "precious");
      assert.ok((await Deno.lstat(`${batch}/index.html`)).isSymlink);
    } finally {
      await Deno.remove(outside, { recursive: true });
    }
  });
});

Deno.test("writeGallery() makes no thumbnail of a file outside the batch, linked or named", async () => {
  await withBatch(async (batch) => {
    const [first, second] = EXAMPLE_IDS as [string, string];
    const outside = `${batch}/../outside.png`;
    await sharp({ create: { width: 40, height: 30, channels: 3, background: "red" } }).png()
      .toFile(outside);
    // One prompt's round image is a link out of the batch; another's record names a path out.
    await Deno.remove(`${batch}/${first}/iteration-1.png`);
    await Deno.symlink(outside, `${batch}/${first}/iteration-1.png`);
    const record = await readRecord(`${batch}/${second}/metadata.json`);
    record.iterations[0]!.image = "../../outside.png";
    await Deno.writeTextFile(`${batch}/${second}/metadata.json`, JSON.stringify(record));
    await Deno.remove(`${batch}/_thumbs`, { recursive: true }).catch(() => {});
    const html = await Deno.readTextFile(await writeGallery(batch));
    await assert.rejects(
      Deno.lstat(`${batch}/_thumbs/${first}/iteration-1.jpg`),
      Deno.errors.NotFound,
    );
    assert.match(sectionFor(html, first), /thumbnail failed: [^<]*symbolic link/);
    assert.doesNotMatch(html, /outside\.png/);
  });
});
