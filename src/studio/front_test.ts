import assert from "node:assert/strict";
import { openFront } from "./front.ts";

/** A server on a Unix socket behind a door with these limits. */
async function withFront(
  limits: { maxConnections?: number; headMs?: number },
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/http.sock`;
  const server = Deno.serve(
    { transport: "unix", path, onListen: () => {} },
    (request) => new Response(`seen ${new URL(request.url).pathname}`),
  );
  const front = openFront({ port: 0, backend: { transport: "unix", path }, ...limits });
  try {
    await fn(front.port);
  } finally {
    await front.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Everything the connection gets until it is closed. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let text = "";
  try {
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
  } catch {
    // Reset by the door: as closed.
  }
  conn.close();
  return text;
}

Deno.test("openFront() passes one request on and closes the connection after its answer", async () => {
  await withFront({}, async (port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    // Keep-alive asked for: the connection still ends with the answer, so none is held idle.
    await conn.write(
      new TextEncoder().encode("GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"),
    );
    const answer = await readToEnd(conn);
    assert.match(answer, /^HTTP\/1\.1 200 OK/);
    assert.match(answer, /seen \/a$/);
  });
});

Deno.test("openFront() drops a connection whose head does not come in time, and one too many", async () => {
  await withFront({ headMs: 1000, maxConnections: 2 }, async (port) => {
    const slow = await Deno.connect({ hostname: "127.0.0.1", port });
    await slow.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost:"));
    const other = await Deno.connect({ hostname: "127.0.0.1", port });
    const third = await Deno.connect({ hostname: "127.0.0.1", port });
    assert.equal(await readToEnd(third), "", "the third is closed as it comes");
    assert.equal(await readToEnd(slow), "", "the slow head is closed unanswered");
    other.close();
    const next = await Deno.connect({ hostname: "127.0.0.1", port });
    await next.write(new TextEncoder().encode("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.match(await readToEnd(next), /seen \/b$/, "the door still answers");
  });
});
