import assert from "node:assert/strict";
import { cookieValue, randomToken, sameSecret, StudioAuth } from "./auth.ts";

const PORT = 4321;
const auth = new StudioAuth(PORT, "a".repeat(64), "c".repeat(64), "e".repeat(32));
const BASE = `/s/${"e".repeat(32)}/`;
const origin = `http://127.0.0.1:${PORT}`;
const cookie = `retake_studio_${PORT}=${"a".repeat(64)}`;

function request(path: string, init: RequestInit & { headers?: Record<string, string> } = {}) {
  return new Request(`${origin}${path}`, {
    ...init,
    headers: { host: `127.0.0.1:${PORT}`, ...init.headers },
  });
}

Deno.test("randomToken() gives 32 random bytes as hex, different every time", () => {
  const a = randomToken();
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(a, randomToken());
});

Deno.test("sameSecret() compares whole strings", () => {
  assert.equal(sameSecret("abc", "abc"), true);
  assert.equal(sameSecret("abc", "abd"), false);
  assert.equal(sameSecret("abc", "abcd"), false);
});

Deno.test("StudioAuth.check() refuses a request without the token with 401", async () => {
  const result = auth.check(request("/"));
  assert.equal(result.kind, "refused");
  if (result.kind !== "refused") return;
  assert.equal(result.response.status, 401);
  assert.match(await result.response.text(), /token/);
  const wrong = auth.check(request("/?token=" + "b".repeat(64)));
  assert.equal(wrong.kind === "refused" && wrong.response.status, 401);
  const wrongCookie = auth.check(
    request(BASE, { headers: { cookie: `retake_studio_${PORT}=${"b".repeat(64)}` } }),
  );
  assert.equal(wrongCookie.kind === "refused" && wrongCookie.response.status, 401);
});

Deno.test("StudioAuth.check() swaps the URL's token for an HttpOnly SameSite=Strict cookie", () => {
  const result = auth.check(request(`${BASE}b/x/?filter=failed&token=${"a".repeat(64)}`));
  assert.equal(result.kind, "redirect");
  if (result.kind !== "redirect") return;
  assert.equal(result.response.status, 303);
  assert.equal(result.response.headers.get("location"), `${BASE}b/x/?filter=failed`);
  const set = result.response.headers.get("set-cookie")!;
  assert.match(set, new RegExp(`^${cookie};`));
  assert.match(set, /HttpOnly/);
  assert.match(set, /SameSite=Strict/);
  const ok = auth.check(request(`${BASE}b/x/`, { headers: { cookie } }));
  assert.deepEqual(ok, { kind: "ok", path: "/b/x/" });
});

Deno.test("StudioAuth.check() scopes the cookie to the session's secret path, which it needs", () => {
  const first = auth.check(request(`/?token=${"a".repeat(64)}`));
  assert.equal(first.kind === "redirect" && first.response.headers.get("location"), BASE);
  const set = first.kind === "redirect" ? first.response.headers.get("set-cookie")! : "";
  assert.match(set, new RegExp(`; Path=${BASE}$`));
  // A leaked cookie (another local server got it) opens nothing outside the secret path.
  for (const path of ["/", "/b/x/", "/app.js", "/s/" + "f".repeat(32) + "/"]) {
    const result = auth.check(request(path, { headers: { cookie } }));
    assert.equal(result.kind === "refused" && result.response.status, 401, path);
  }
});

Deno.test("StudioAuth.check() sends the token's redirect only to its own paths", () => {
  for (const path of ["//evil.example/", "/\\evil.example/", "/b/x/", "//evil.example/s/"]) {
    const result = auth.check(request(`${path}?token=${"a".repeat(64)}`));
    assert.equal(result.kind === "redirect" && result.response.headers.get("location"), BASE, path);
  }
});

Deno.test("StudioAuth.check() answers only its own Host (no DNS rebinding)", () => {
  const result = auth.check(
    new Request(`${origin}/`, { headers: { host: "evil.example:4321", cookie } }),
  );
  assert.equal(result.kind === "refused" && result.response.status, 421);
});

Deno.test("StudioAuth.check() refuses a POST without the CSRF token or from another origin", () => {
  const post = (headers: Record<string, string>) =>
    auth.check(request(`${BASE}b/x/action`, { method: "POST", headers: { cookie, ...headers } }));
  const status = (r: ReturnType<typeof post>) => r.kind === "refused" && r.response.status;
  assert.equal(status(post({ origin })), 403, "no CSRF token");
  assert.equal(status(post({ origin, "x-csrf-token": "d".repeat(64) })), 403, "wrong token");
  assert.equal(
    status(post({ origin: "http://evil.example", "x-csrf-token": "c".repeat(64) })),
    403,
    "another origin",
  );
  assert.equal(status(post({ "x-csrf-token": "c".repeat(64) })), 403, "no origin");
  assert.equal(post({ origin, "x-csrf-token": "c".repeat(64) }).kind, "ok");
  // The token in the URL does not stand in for the cookie on a POST.
  const viaQuery = auth.check(
    request(`${BASE}b/x/action?token=${"a".repeat(64)}`, {
      method: "POST",
      headers: { origin, "x-csrf-token": "c".repeat(64) },
    }),
  );
  assert.equal(viaQuery.kind, "refused");
});

Deno.test("cookieValue() finds one cookie among several", () => {
  assert.equal(cookieValue("a=1; retake_studio_1=xyz; b=2", "retake_studio_1"), "xyz");
  assert.equal(cookieValue("a=1", "retake_studio_1"), undefined);
  assert.equal(cookieValue(null, "a"), undefined);
});
