/**
 * Who may use the studio: only a browser on this machine that was given the random token.
 * The token comes once in the URL, then lives in an HttpOnly, SameSite=Strict cookie; a
 * request that changes anything must also carry the page's CSRF token and come from the
 * studio's own origin.
 *
 * A browser sends a cookie of 127.0.0.1 to every port of it: a page of another local server
 * would get the token. So the studio lives under a secret path, `/s/<session>/`, and the cookie
 * is scoped to it: the browser sends it only to a URL that already names the secret, which no
 * other server is sent to. The cookie alone opens nothing, nor does the path alone.
 *
 * @module
 */

/** 32 random bytes as 64 hex digits. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compares in time that does not depend on where the strings differ. */
export function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** What {@linkcode StudioAuth.check} decided. */
export type AuthResult =
  /** `path` is the request's path below the session's base, from `/`. */
  | { kind: "ok"; path: string }
  /** The token came in the URL: set the cookie and send the browser to the URL without it. */
  | { kind: "redirect"; response: Response }
  | { kind: "refused"; response: Response };

/** The studio's secrets and the checks every request goes through. */
export class StudioAuth {
  /** Proves the browser was given the studio's URL. */
  readonly token: string;
  /** Written into each page; a POST must send it back in the `x-csrf-token` header. */
  readonly csrf: string;
  /** Every page's path starts with it: `/s/<32 hex>/`. */
  readonly base: string;
  readonly #port: number;

  constructor(
    port: number,
    token: string = randomToken(),
    csrf: string = randomToken(),
    session: string = randomToken().slice(0, 32),
  ) {
    this.token = token;
    this.csrf = csrf;
    this.base = `/s/${session}/`;
    this.#port = port;
  }

  /** The only origin the studio answers: the loopback address and its port. */
  get origin(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** One cookie per port: two studios on one machine do not log each other out. */
  get cookieName(): string {
    return `retake_studio_${this.#port}`;
  }

  /**
   * Checks the host (a page on another site that resolves its own name to 127.0.0.1 sends its
   * own Host), the session's path, the token, and for a POST the CSRF token and the origin.
   */
  check(request: Request): AuthResult {
    const url = new URL(request.url);
    const host = request.headers.get("host");
    if (host !== `127.0.0.1:${this.#port}`) {
      return refused(421, `Cannot serve host '${host ?? ""}': open ${this.origin} instead`);
    }
    const query = url.searchParams.get("token");
    const given = query !== null && sameSecret(query, this.token);
    const inside = url.pathname.startsWith(this.base);
    if (given && request.method === "GET") {
      // Out of the address bar and the history: the cookie carries it from now on. Only ever
      // to a path of this studio's, whatever the URL asked for.
      url.searchParams.delete("token");
      const location = inside ? `${url.pathname}${url.search}` : this.base;
      const headers = new Headers({
        location,
        "set-cookie":
          `${this.cookieName}=${this.token}; HttpOnly; SameSite=Strict; Path=${this.base}`,
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
      });
      return { kind: "redirect", response: new Response(null, { status: 303, headers }) };
    }
    const cookie = cookieValue(request.headers.get("cookie"), this.cookieName);
    if (!inside || cookie === undefined || !sameSecret(cookie, this.token)) {
      return refused(
        401,
        "Cannot open the studio without its token: use the full URL retake printed (Studio: http://127.0.0.1:…/?token=…)",
      );
    }
    if (request.method === "POST") {
      const origin = request.headers.get("origin");
      if (origin !== this.origin) {
        return refused(403, `Cannot accept a request from origin '${origin ?? "none"}'`);
      }
      const csrf = request.headers.get("x-csrf-token") ?? "";
      if (!sameSecret(csrf, this.csrf)) {
        return refused(403, "Cannot accept a request without the page's CSRF token: reload it");
      }
    }
    return { kind: "ok", path: url.pathname.slice(this.base.length - 1) };
  }
}

function refused(status: number, message: string): AuthResult {
  return {
    kind: "refused",
    response: new Response(`${message}\n`, {
      status,
      headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
    }),
  };
}

/** The value of cookie `name` in a `Cookie` header. */
export function cookieValue(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
