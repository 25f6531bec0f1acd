import assert from "node:assert/strict";
import { defer, of } from "rxjs";
import { TestScheduler } from "rxjs/testing";
import { ProviderError } from "../errors.ts";
import { backoffDelay, RetryBudget, retryWithBackoff } from "./retry.ts";

const flaky = (retryAfterMs?: number) =>
  new ProviderError("busy", {
    provider: "test",
    retryable: true,
    ...(retryAfterMs !== undefined && { retryAfterMs }),
  });

function scheduler() {
  return new TestScheduler((actual, expected) => assert.deepEqual(actual, expected));
}

Deno.test("retryWithBackoff() waits 10, 20, 40 ms between attempts without jitter", () => {
  scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const source = cold("-#", undefined, flaky());
    const result = source.pipe(
      retryWithBackoff({
        maxAttempts: 4,
        minTimeout: 10,
        jitter: 0,
      }),
    );
    // 1 frame for the failure, then 10, 20, 40 ms waits; fourth failure is final.
    expectObservable(result).toBe("- 10ms - 20ms - 40ms -#", undefined, flaky());
    expectSubscriptions(source.subscriptions).toBe([
      "^!",
      "- 10ms ^!",
      "- 10ms - 20ms ^!",
      "- 10ms - 20ms - 40ms ^!",
    ]);
  });
});

Deno.test("retryWithBackoff() honours the server's retryAfterMs hint over the backoff", () => {
  scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    let n = 0;
    const source = cold("-#", undefined, flaky(250));
    const wrapped = defer(() => (n++ === 0 ? source : of("ok")));
    expectObservable(wrapped.pipe(retryWithBackoff({ minTimeout: 10, jitter: 0 }))).toBe(
      "- 250ms (o|)",
      { o: "ok" },
    );
    expectSubscriptions(source.subscriptions).toBe(["^!"]);
  });
});

Deno.test("retryWithBackoff() gives up at once on a final error", () => {
  scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const final = new ProviderError("bad input", { provider: "test", retryable: false });
    const source = cold("-#", undefined, final);
    expectObservable(source.pipe(retryWithBackoff({ minTimeout: 10 }))).toBe(
      "-#",
      undefined,
      final,
    );
    expectSubscriptions(source.subscriptions).toBe(["^!"]);
  });
});

Deno.test("retryWithBackoff() gives up at once on a fatal error even if retryable", () => {
  scheduler().run(({ cold, expectObservable }) => {
    const fatal = new ProviderError("bad key", { provider: "t", retryable: true, fatal: true });
    const source = cold("-#", undefined, fatal);
    expectObservable(source.pipe(retryWithBackoff({ minTimeout: 10 }))).toBe(
      "-#",
      undefined,
      fatal,
    );
  });
});

Deno.test("retryWithBackoff() stops retrying when the shared budget runs out", () => {
  scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const budget = new RetryBudget(1);
    const a = cold("-#", undefined, flaky());
    const b = cold("-#", undefined, flaky());
    const options = { minTimeout: 5, jitter: 0, maxAttempts: 3, budget };
    expectObservable(a.pipe(retryWithBackoff(options))).toBe("- 5ms -#", undefined, flaky());
    expectObservable(b.pipe(retryWithBackoff(options))).toBe("-#", undefined, flaky());
    expectSubscriptions(a.subscriptions).toBe(["^!", "- 5ms ^!"]);
    expectSubscriptions(b.subscriptions).toBe(["^!"]);
  });
});

Deno.test("retryWithBackoff() stops the run at once when the server asks to wait longer than maxRetryAfter", () => {
  scheduler().run(({ cold, expectSubscriptions, flush }) => {
    // OpenAI's words for a per-day limit: "Please try again in 114h18m0s".
    const wait = (114 * 60 + 18) * 60_000;
    const source = cold("-#", undefined, flaky(wait));
    let error: unknown;
    source.pipe(retryWithBackoff({ maxRetryAfter: 60_000 })).subscribe({ error: (e) => error = e });
    flush();
    expectSubscriptions(source.subscriptions).toBe(["^!"]);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.fatal, true);
    assert.equal(error.retryAfterMs, wait);
    assert.match(
      error.message,
      /^busy; the test service asks to wait 114h18m, longer than the 1m00s/,
    );
    // Virtual time starts at 0: the run may resume 114h18m after the epoch.
    assert.match(error.message, /run the same command after 1970-01-05T18:18:00Z to resume$/);
  });
});

Deno.test("retryWithBackoff() scales every delay by timeScale", () => {
  scheduler().run(({ cold, expectObservable }) => {
    const source = cold("-#", undefined, flaky(1000));
    const result = source.pipe(retryWithBackoff({ maxOverloadRetries: 1, timeScale: 0.01 }));
    expectObservable(result).toBe("- 10ms -#", undefined, flaky(1000));
  });
});

Deno.test("backoffDelay() caps at maxTimeout and subtracts jitter", () => {
  const options = { minTimeout: 100, maxTimeout: 1000, multiplier: 3, jitter: 0.5 };
  assert.equal(backoffDelay(1, options, () => 0), 100);
  assert.equal(backoffDelay(3, options, () => 0), 900);
  assert.equal(backoffDelay(5, options, () => 0), 1000);
  assert.equal(backoffDelay(5, options, () => 1), 500);
});

Deno.test("retryWithBackoff() rejects jitter outside 0..1", () => {
  assert.throws(() => retryWithBackoff({ jitter: 2 }), /current value is 2/);
});

Deno.test("retryWithBackoff() reports each retry with its delay", () => {
  const seen: Array<[number, number]> = [];
  scheduler().run(({ cold, expectObservable }) => {
    const source = cold("-#", undefined, flaky());
    expectObservable(source.pipe(retryWithBackoff({
      maxAttempts: 3,
      minTimeout: 4,
      jitter: 0,
      onRetry: (_e, attempt, ms) => seen.push([attempt, ms]),
    }))).toBe("- 4ms - 8ms -#", undefined, flaky());
  });
  assert.deepEqual(seen, [[1, 4], [2, 8]]);
});

Deno.test("retryWithBackoff() retries refusals over quota without spending attempts or the budget", () => {
  scheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
    const refused = flaky(5);
    const source = cold("-#", undefined, refused);
    const budget = new RetryBudget(0);
    const result = source.pipe(
      retryWithBackoff({ maxAttempts: 1, maxOverloadRetries: 3, budget, jitter: 0 }),
    );
    // maxAttempts 1 and an empty budget would allow no retry; three refusals are waited out.
    expectObservable(result).toBe("- 5ms - 5ms - 5ms -#", undefined, refused);
    expectSubscriptions(source.subscriptions).toBe([
      "^!",
      "- 5ms ^!",
      "- 5ms - 5ms ^!",
      "- 5ms - 5ms - 5ms ^!",
    ]);
    assert.equal(budget.remaining, 0);
  });
});

Deno.test("retryWithBackoff() counts failures and refusals apart within one call", () => {
  scheduler().run(({ cold, expectObservable }) => {
    const failure = flaky();
    const refused = new ProviderError("quota", { provider: "test", retryable: true, status: 429 });
    let n = 0;
    // failure, refusal, refusal, failure: the second failure is the last of maxAttempts 2.
    const errors = [failure, refused, refused, failure];
    const source = defer(() => cold("-#", undefined, errors[n++]));
    expectObservable(source.pipe(retryWithBackoff({
      maxAttempts: 2,
      minTimeout: 10,
      jitter: 0,
    }))).toBe("- 10ms - 10ms - 20ms -#", undefined, failure);
  });
});
