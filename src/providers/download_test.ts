import assert from "node:assert/strict";
import { downloadImage, type DownloadOptions, limitBytes } from "./download.ts";
import { ProviderError } from "../errors.ts";

/** A 1×1 PNG. */
const PNG_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const PNG = Uint8Array.from(atob(PNG_BASE64), (c) => c.charCodeAt(0));

/** A fetch that answers from a table and records every URL it was asked for. */
function fakeFetch(
  answer: (url: string, init?: RequestInit) => Response | Promise<Response>,
): { fetch: typeof fetch; urls: string[] } {
  const urls: string[] = [];
  return {
    urls,
    fetch: (input, init) => {
      urls.push(String(input));
      return Promise.resolve(answer(String(input), init));
    },
  };
}

function options(extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return { provider: "test", ...extra };
}

async function read(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function providerError(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await promise.then(() => assert.fail("expected a failure"), (e: unknown) => e);
  assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${error}`);
  return error;
}

/** A body that yields `chunks` then either ends, breaks, or stalls. */
function chunked(chunks: Uint8Array[], end: "close" | "break" | "stall" = "close") {
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.shift();
      if (next) return controller.enqueue(next);
      if (end === "close") controller.close();
      else if (end === "break") {
        controller.error(new TypeError("error reading a body from connection"));
      }
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, cancelled: () => cancelled };
}

Deno.test("downloadImage() decodes base64 and percent-encoded data URIs", async () => {
  const image = await downloadImage(`data:image/png;base64,${PNG_BASE64}`, options());
  assert.equal(image.format, "png");
  assert.deepEqual(await read(image.data), PNG);
  const encoded = [...PNG].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
  const percent = await downloadImage(`data:image/jpeg,${encoded}`, options());
  assert.equal(percent.format, "jpeg");
  assert.deepEqual(await read(percent.data), PNG);
});

Deno.test("downloadImage() rejects data URIs of other types or over the cap", async () => {
  const svg = await providerError(downloadImage("data:image/svg+xml;base64,PHN2Zz4=", options()));
  assert.equal(svg.retryable, false);
  assert.match(svg.message, /image\/svg\+xml/);
  const big = await providerError(
    downloadImage(`data:image/png;base64,${PNG_BASE64}`, options({ maxBytes: 10 })),
  );
  assert.equal(big.retryable, false);
  assert.match(big.message, /limit is 10/);
});

Deno.test("downloadImage() fetches https and allowed origins only, never contacting others", async () => {
  const fake = fakeFetch(() => new Response(PNG, { headers: { "content-type": "image/png" } }));
  const ok = await downloadImage(
    "https://v3.fal.media/files/x.png",
    options({ fetch: fake.fetch }),
  );
  assert.deepEqual(await read(ok.data), PNG);
  const local = await downloadImage(
    "http://127.0.0.1:8080/files/x.png",
    options({ fetch: fake.fetch, allowedOrigins: ["http://127.0.0.1:8080/prefix"] }),
  );
  await read(local.data);
  assert.equal(fake.urls.length, 2);

  for (
    const url of [
      "http://v3.fal.media/files/x.png",
      "http://127.0.0.1:9999/files/x.png",
      "file:///etc/passwd",
      "ftp://example.com/x.png",
      "not a url",
    ]
  ) {
    const error = await providerError(
      downloadImage(
        url,
        options({ fetch: fake.fetch, allowedOrigins: ["http://127.0.0.1:8080"] }),
      ),
    );
    assert.equal(error.retryable, false, url);
  }
  assert.equal(fake.urls.length, 2, "disallowed URLs are never fetched");
});

Deno.test("downloadImage() checks every redirect target", async () => {
  const fake = fakeFetch((url) =>
    url.endsWith("/start")
      ? new Response(null, { status: 302, headers: { location: "http://169.254.169.254/latest" } })
      : new Response(PNG, { headers: { "content-type": "image/png" } })
  );
  const error = await providerError(
    downloadImage("https://cdn.example/start", options({ fetch: fake.fetch })),
  );
  assert.match(error.message, /only https URLs are allowed/);
  assert.deepEqual(fake.urls, ["https://cdn.example/start"]);

  const followed = fakeFetch((url) =>
    url.endsWith("/start")
      ? new Response(null, { status: 301, headers: { location: "/final.png" } })
      : new Response(PNG, { headers: { "content-type": "image/png" } })
  );
  const image = await downloadImage(
    "https://cdn.example/start",
    options({ fetch: followed.fetch }),
  );
  await read(image.data);
  assert.deepEqual(followed.urls, ["https://cdn.example/start", "https://cdn.example/final.png"]);
});

Deno.test("downloadImage() rejects non-image content types as final", async () => {
  for (const type of ["text/html; charset=utf-8", "application/json", "image/webp", ""]) {
    const fake = fakeFetch(() =>
      new Response("<html>denied</html>", { headers: type ? { "content-type": type } : {} })
    );
    const error = await providerError(
      downloadImage("https://cdn.example/x.png", options({ fetch: fake.fetch })),
    );
    assert.equal(error.retryable, false, type);
    assert.match(error.message, /expected image\/png or image\/jpeg/);
  }
  const jpeg = fakeFetch(() =>
    new Response(PNG, { headers: { "content-type": "image/jpeg; charset=binary" } })
  );
  const image = await downloadImage("https://cdn.example/x.jpg", options({ fetch: jpeg.fetch }));
  assert.equal(image.format, "jpeg");
  await read(image.data);
});

Deno.test("downloadImage() classifies HTTP failures", async () => {
  for (
    const [status, retryable] of [[503, true], [429, true], [404, false], [403, false]] as const
  ) {
    const fake = fakeFetch(() => new Response("nope", { status }));
    const error = await providerError(
      downloadImage("https://cdn.example/x.png", options({ fetch: fake.fetch })),
    );
    assert.equal(error.retryable, retryable, String(status));
    assert.equal(error.status, status);
  }
});

Deno.test("downloadImage() refuses a declared length over the cap before reading", async () => {
  const body = chunked([new Uint8Array(100)]);
  const fake = fakeFetch(() =>
    new Response(body.stream, {
      headers: { "content-type": "image/png", "content-length": "5000000" },
    })
  );
  const error = await providerError(
    downloadImage("https://cdn.example/x.png", options({ fetch: fake.fetch, maxBytes: 1000 })),
  );
  assert.equal(error.retryable, false);
  assert.match(error.message, /5000000 bytes/);
  assert.ok(body.cancelled());
});

Deno.test("downloadImage() fails the stream once more than maxBytes arrive", async () => {
  const body = chunked([new Uint8Array(600), new Uint8Array(600), new Uint8Array(600)]);
  const fake = fakeFetch(() =>
    new Response(body.stream, { headers: { "content-type": "image/png" } })
  );
  const image = await downloadImage(
    "https://cdn.example/x.png",
    options({ fetch: fake.fetch, maxBytes: 1000 }),
  );
  const error = await providerError(read(image.data));
  assert.equal(error.retryable, false);
  assert.match(error.message, /exceeds 1000 bytes/);
  assert.ok(body.cancelled(), "the source is cancelled, not drained");
});

Deno.test("downloadImage() reports a body that breaks off as retryable", async () => {
  const body = chunked([new Uint8Array(10)], "break");
  const fake = fakeFetch(() =>
    new Response(body.stream, { headers: { "content-type": "image/png" } })
  );
  const image = await downloadImage("https://cdn.example/x.png", options({ fetch: fake.fetch }));
  const error = await providerError(read(image.data));
  assert.equal(error.retryable, true);
  assert.match(error.message, /transfer failed/);
});

Deno.test("downloadImage() times out a stalled body as retryable", async () => {
  const fake = fakeFetch((_url, init) => {
    // Like a real fetch, the body follows the request's signal.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(10));
        init?.signal?.addEventListener("abort", () => controller.error(init.signal!.reason), {
          once: true,
        });
      },
    });
    return new Response(stream, { headers: { "content-type": "image/png" } });
  });
  const image = await downloadImage(
    "https://cdn.example/x.png",
    options({ fetch: fake.fetch, timeoutMs: 30 }),
  );
  const error = await providerError(read(image.data));
  assert.equal(error.retryable, true);
  assert.match(error.message, /longer than 30 ms/);
});

Deno.test("downloadImage() gives the caller's abort reason back", async () => {
  const controller = new AbortController();
  const reason = new DOMException("stop", "AbortError");
  controller.abort(reason);
  const fake = fakeFetch(() => Promise.reject(reason));
  await assert.rejects(
    downloadImage(
      "https://cdn.example/x.png",
      options({ fetch: fake.fetch, signal: controller.signal }),
    ),
    (e) => e === reason,
  );
});

Deno.test("limitBytes() passes exactly maxBytes through and forwards cancel", async () => {
  const exact = chunked([new Uint8Array(4), new Uint8Array(6)]);
  assert.equal((await read(limitBytes(exact.stream, 10))).length, 10);
  const cancelled = chunked([new Uint8Array(4), new Uint8Array(6)]);
  let ended = 0;
  const capped = limitBytes(cancelled.stream, 10, { onEnd: () => ended++ });
  await capped.cancel("done");
  assert.ok(cancelled.cancelled());
  assert.equal(ended, 1);
});
