/**
 * A browser's session with a running studio, for tests: logs in with the printed URL as a
 * browser does (the token, swapped for a cookie and the studio's own path), then asks for
 * paths below it.
 *
 * @module
 */

/** A logged-in session. */
export interface Session {
  origin: string;
  /** The path the studio lives under, e.g. `/s/<secret>/` (`/` for a studio without one). */
  base: string;
  /** The `Cookie` header the browser sends there. */
  cookie: string;
  /** GET of `path` (from `/`, below the base), with the cookie unless `headers` are given. */
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  /** POST of `body` as JSON, with the cookie, origin and the page's CSRF token. */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
}

/** Logs in with `url` (`http://127.0.0.1:<port>/?token=…`). */
export async function login(url: string): Promise<Session> {
  const origin = new URL(url).origin;
  const first = await fetch(url, { redirect: "manual" });
  await first.body?.cancel();
  if (first.status !== 303) throw new Error(`Cannot log in: ${first.status}`);
  const base = new URL(first.headers.get("location")!, origin).pathname;
  const cookie = first.headers.get("set-cookie")!.split(";")[0]!;
  const at = (path: string) => `${origin}${base}${path.replace(/^\//, "")}`;
  let csrf: string | undefined;
  const session: Session = {
    origin,
    base,
    cookie,
    get: (path, headers = { cookie }) => fetch(at(path), { headers, redirect: "manual" }),
    async post(path, body, headers = {}) {
      if (csrf === undefined) {
        const page = await (await session.get("/")).text();
        csrf = /<meta name="csrf" content="([0-9a-f]+)">/.exec(page)?.[1] ?? "";
      }
      return await fetch(at(path), {
        method: "POST",
        body: typeof body === "string" ? body : JSON.stringify(body),
        headers: {
          cookie,
          origin,
          "x-csrf-token": csrf,
          "content-type": "application/json",
          ...headers,
        },
      });
    },
  };
  return session;
}
