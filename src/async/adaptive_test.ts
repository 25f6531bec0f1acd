import assert from "node:assert/strict";
import { AdaptiveLimiter, type ServiceTiming } from "./adaptive.ts";

/** Lets every settled promise's continuations run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Takes `n` permits, which must all be granted at once. */
async function take(limiter: AdaptiveLimiter, n: number): Promise<Array<() => void>> {
  const releases = [];
  for (let i = 0; i < n; i++) releases.push(await limiter.acquire());
  return releases;
}

/**
 * One round trip under full demand: every permit in use and a caller waiting, each call reported
 * as a success before its permit is returned.
 */
async function busyRound(limiter: AdaptiveLimiter, latencyMs: number, service?: ServiceTiming) {
  const held = await take(limiter, limiter.limit);
  const next: Array<Promise<() => void>> = [];
  for (const release of held) {
    next.push(limiter.acquire());
    limiter.onSuccess(latencyMs, service);
    release();
  }
  for (const permit of next) (await permit)();
}

Deno.test("AdaptiveLimiter grants up to its limit, then queues callers first come first served", async () => {
  const limiter = new AdaptiveLimiter({ initialLimit: 2, probe: false });
  const [a, b] = await take(limiter, 2);
  const order: string[] = [];
  const c = limiter.acquire().then((release) => (order.push("c"), release));
  const d = limiter.acquire().then((release) => (order.push("d"), release));
  await flush();
  assert.deepEqual(order, []);
  assert.equal(limiter.stats().waiting, 2);
  a!();
  a!(); // a second call returns nothing more
  await flush();
  assert.deepEqual(order, ["c"]);
  assert.equal(limiter.inFlight, 2);
  b!();
  await flush();
  assert.deepEqual(order, ["c", "d"]);
  (await c)();
  (await d)();
  assert.equal(limiter.inFlight, 0);
});

Deno.test("AdaptiveLimiter.acquire() grants the highest priority first, in order of arrival among equals", async () => {
  const limiter = new AdaptiveLimiter({ initialLimit: 1, probe: false });
  const [held] = await take(limiter, 1);
  const order: string[] = [];
  const wait = (name: string, priority?: number) =>
    limiter.acquire(undefined, priority).then((release) => (order.push(name), release()));
  const all = [
    wait("new-1"),
    wait("round-2", 4),
    wait("new-2"),
    wait("brief", 1.5),
    wait("round-2b", 4),
  ];
  // One that gives up leaves the order of the others as it was.
  const gone = new AbortController();
  const abandoned = limiter.acquire(gone.signal, 9);
  gone.abort(new Error("gone"));
  await assert.rejects(abandoned, /gone/);
  held!();
  await Promise.all(all);
  assert.deepEqual(order, ["round-2", "round-2b", "brief", "new-1", "new-2"]);
});

Deno.test("AdaptiveLimiter.acquire() rejects when its signal aborts while waiting; a granted permit returns on abort", async () => {
  const limiter = new AdaptiveLimiter({ initialLimit: 1 });
  const granted = new AbortController();
  await limiter.acquire(granted.signal);
  const waiting = new AbortController();
  const pending = limiter.acquire(waiting.signal);
  waiting.abort(new Error("gone"));
  await assert.rejects(pending, /gone/);
  assert.equal(limiter.stats().waiting, 0);
  granted.abort();
  assert.equal(limiter.inFlight, 0, "the permit of an aborted caller is returned");
  await assert.rejects(limiter.acquire(AbortSignal.abort(new Error("early"))), /early/);
});

Deno.test("AdaptiveLimiter doubles per round trip while saturated, until the first overload", async () => {
  const limiter = new AdaptiveLimiter({ initialLimit: 2, maxLimit: 64, probe: false });
  const limits = [limiter.limit];
  for (let round = 0; round < 4; round++) {
    await busyRound(limiter, 100);
    limits.push(limiter.limit);
  }
  assert.deepEqual(limits, [2, 4, 8, 16, 32]);
});

Deno.test("AdaptiveLimiter does not grow while callers use fewer permits than it allows", async () => {
  const limiter = new AdaptiveLimiter({ initialLimit: 8 });
  for (let i = 0; i < 100; i++) {
    const release = await limiter.acquire();
    limiter.onSuccess(100);
    release();
  }
  assert.equal(limiter.limit, 8);
});

Deno.test("AdaptiveLimiter.onOverload() backs off once per round trip, then grows by one per round trip", async () => {
  let now = 0;
  // Too few successes to tell a rate: the limit on calls at once is all that adapts here.
  const limiter = new AdaptiveLimiter({
    initialLimit: 20,
    backoff: 0.5,
    minRateSamples: 1000,
    probe: false,
    now: () => now,
  });
  // One round trip of successes sets the round-trip time to 100 ms (and doubles the limit).
  await busyRound(limiter, 100);
  assert.equal(limiter.limit, 40);
  limiter.onOverload();
  limiter.onOverload(); // the same burst: ignored
  now += 50;
  limiter.onOverload(); // still within one round trip: ignored
  assert.equal(limiter.limit, 20);
  now += 100;
  limiter.onOverload();
  assert.equal(limiter.limit, 10);
  // Past slow start: +1 per round trip of saturated successes.
  for (let round = 0; round < 3; round++) await busyRound(limiter, 100);
  assert.equal(limiter.limit, 13);
  assert.equal(limiter.stats().overloads, 4);
  assert.equal(limiter.stats().decreases, 2);
});

Deno.test("AdaptiveLimiter shrinks when calls spend more than queueTolerance of their time queued, and holds in the band", async () => {
  const limiter = new AdaptiveLimiter({
    initialLimit: 16,
    probe: false,
    queueTolerance: 0.5,
    targetQueueShare: 0.2,
  });
  // Half of a 600 ms call queued: aim for a 20% share, so 16 × 0.4 / 0.8 = 8... but never
  // deeper than the backoff: 16 × 0.7 = 11.
  await busyRound(limiter, 600, { queueMs: 360 });
  assert.equal(limiter.limit, 11);
  // 30% queued: inside the band, so the limit holds even though it is saturated.
  for (let round = 0; round < 3; round++) await busyRound(limiter, 400, { queueMs: 120 });
  assert.equal(limiter.limit, 11);
});

Deno.test("AdaptiveLimiter reads queueing from latency above the lowest recent one when none is reported", async () => {
  const limiter = new AdaptiveLimiter({ initialLimit: 10, probe: false });
  await busyRound(limiter, 100);
  assert.equal(limiter.limit, 20);
  // Latency tripled: two thirds of it is waiting somewhere.
  await busyRound(limiter, 300);
  assert.equal(limiter.limit, 14);
});

Deno.test("AdaptiveLimiter rejects options it cannot work with", () => {
  assert.throws(() => new AdaptiveLimiter({ minLimit: 0 }), /'minLimit' must be a whole number/);
  assert.throws(() => new AdaptiveLimiter({ maxLimit: 2, minLimit: 3 }), /'maxLimit'/);
  assert.throws(() => new AdaptiveLimiter({ backoff: 1 }), /'backoff' must be between 0 and 1/);
  assert.throws(
    () => new AdaptiveLimiter({ targetQueueShare: 0.6, queueTolerance: 0.5 }),
    /'targetQueueShare'/,
  );
});

/** A fake clock: its timers fire in time order, each moving the time, as {@linkcode run} goes. */
class FakeClock {
  now = 0;
  #timers: Array<{ at: number; fire: () => void; cancelled: boolean }> = [];

  /** Fires `fire` `ms` from now; returns what cancels it. */
  after(ms: number, fire: () => void): () => void {
    const timer = { at: this.now + ms, fire, cancelled: false };
    this.#timers.push(timer);
    return () => timer.cancelled = true;
  }

  /** Resolves `ms` from now. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  /** A limiter that reads this clock and waits on it. */
  limiter(): AdaptiveLimiter {
    return new AdaptiveLimiter({ now: () => this.now, timer: (fn, ms) => this.after(ms, fn) });
  }

  /** Fires the timers in time order until `done()`. */
  async run(done: () => boolean): Promise<void> {
    await flush();
    while (!done()) {
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers.shift();
      if (!next) break;
      if (next.cancelled) continue;
      this.now = Math.max(this.now, next.at);
      next.fire();
      await flush();
    }
  }
}

/**
 * A service with `slots` calls running at once and a FIFO queue behind them (like fal's account
 * concurrency), driven on a fake clock by `workers` callers that each take a permit, call, and
 * report the queue time the service measured. Returns the calls per ms achieved and the limits
 * seen in the second half of the run.
 */
async function simulateQueueingService(
  options: { slots: number; serviceMs: number; clientMs: number; calls: number; workers: number },
): Promise<{ rate: number; limits: number[] }> {
  const clock = new FakeClock();
  const limiter = new AdaptiveLimiter({ now: () => clock.now });
  const queue: Array<() => void> = [];
  let running = 0;
  const startNext = () => {
    while (running < options.slots && queue.length > 0) {
      running++;
      queue.shift()!();
    }
  };
  /** One call: queued at the service, then served; resolves with its queue time. */
  const call = () =>
    new Promise<number>((resolve) => {
      const submitted = clock.now;
      queue.push(() => {
        const queued = clock.now - submitted;
        clock.after(options.serviceMs, () => {
          running--;
          startNext();
          // The client reads the result and saves it before it lets the permit go.
          clock.after(options.clientMs, () => resolve(queued));
        });
      });
      startNext();
    });
  return await driveWorkers(
    clock,
    limiter,
    options,
    call,
    (latencyMs, queueMs) => limiter.onSuccess(latencyMs, { queueMs }),
  );
}

/**
 * `options.workers` callers that each take a permit of `limiter`, make `call`, `report` how it
 * went and give the permit back, until `options.calls` are done on `clock`. Returns the calls per
 * ms achieved and the limits seen in the second half of the run.
 */
async function driveWorkers<T>(
  clock: FakeClock,
  limiter: AdaptiveLimiter,
  options: { calls: number; workers: number },
  call: () => Promise<T>,
  report: (latencyMs: number, answer: T) => void,
): Promise<{ rate: number; limits: number[] }> {
  let started = 0;
  let done = 0;
  const limits: number[] = [];
  const worker = async () => {
    while (started < options.calls) {
      started++;
      const release = await limiter.acquire();
      const begun = clock.now;
      const answer = await call();
      report(clock.now - begun, answer);
      release();
      done++;
      if (done > options.calls / 2) limits.push(limiter.limit);
    }
  };
  const all = Promise.all(Array.from({ length: options.workers }, worker));
  await clock.run(() => done >= options.calls);
  await all;
  return { rate: options.calls / clock.now, limits };
}

Deno.test("AdaptiveLimiter finds a queueing service's concurrency and keeps its slots busy", async () => {
  const slots = 8;
  const serviceMs = 300;
  const { rate, limits } = await simulateQueueingService({
    slots,
    serviceMs,
    clientMs: 20,
    calls: 2000,
    workers: 64,
  });
  const bound = slots / serviceMs;
  assert.ok(rate / bound >= 0.97, `achieved ${(rate / bound).toFixed(3)} of the bound`);
  // Some queueing (the slots stay busy) but not the 64 callers' worth.
  assert.ok(Math.min(...limits) >= slots, `lowest limit ${Math.min(...limits)}`);
  assert.ok(Math.max(...limits) <= 2 * slots, `highest limit ${Math.max(...limits)}`);
});

/**
 * A client on a machine that is doing something else, calling a service with `slots` calls
 * running at once (Infinity: as many as it is sent) and a FIFO queue behind them that it does
 * not report (as Gemini does not). Each call's whole time adds the client's own delay, up to
 * `lagMs` before the request leaves and after the answer arrives (timers that fire late, an
 * event loop busy elsewhere); the service's latency (queue and service, as its own timing or
 * the answer's first byte shows it) has none of it. `feed` says what the limiter is told: the
 * service's latency, that and the time queued (as fal reports it), or only the whole call's.
 * Runs on a fake clock, with a fixed pseudo-random sequence; returns the calls per ms achieved
 * and the limits seen in the second half of the run.
 */
async function simulateSlowClient(
  options: {
    slots: number;
    serviceMs: number;
    lagMs: number;
    calls: number;
    workers: number;
    feed: "service" | "service and queue" | "whole call";
  },
): Promise<{ rate: number; limits: number[] }> {
  const clock = new FakeClock();
  let seed = 21;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const limiter = new AdaptiveLimiter({ now: () => clock.now });
  const at = (time: number, fire: () => void) => clock.after(time - clock.now, fire);
  const queue: Array<() => void> = [];
  let running = 0;
  const startNext = () => {
    while (running < options.slots && queue.length > 0) {
      running++;
      queue.shift()!();
    }
  };
  /** One call: the client's delay, the service's queue and work, the client's delay again. */
  const call = () =>
    new Promise<{ serviceMs: number; queueMs: number }>((resolve) => {
      at(clock.now + random() * options.lagMs, () => {
        const sent = clock.now;
        queue.push(() => {
          const queueMs = clock.now - sent;
          at(clock.now + options.serviceMs, () => {
            running--;
            startNext();
            const serviceMs = clock.now - sent;
            at(clock.now + random() * options.lagMs, () => resolve({ serviceMs, queueMs }));
          });
        });
        startNext();
      });
    });
  return await driveWorkers(clock, limiter, options, call, (latencyMs, { serviceMs, queueMs }) => {
    if (options.feed === "whole call") limiter.onSuccess(latencyMs);
    else if (options.feed === "service") limiter.onSuccess(latencyMs, { serviceMs });
    else limiter.onSuccess(latencyMs, { serviceMs, queueMs });
  });
}

Deno.test("AdaptiveLimiter does not read a slow machine as a slow service", async () => {
  // Gemini's stand-in in the quick bench: 60 ms a call, no limit on calls at once; the client
  // adds up to 150 ms of its own before and after each call, as a starved process does.
  const run = (feed: "service" | "whole call") =>
    simulateSlowClient({
      slots: Infinity,
      serviceMs: 60,
      lagMs: 150,
      calls: 3000,
      workers: 64,
      feed,
    });
  const told = await run("service");
  // Every caller gets a permit: the service never slowed, so nothing says to hold back.
  assert.ok(Math.min(...told.limits) >= 48, `lowest limit ${Math.min(...told.limits)}`);
  // 64 callers, each 60 ms at the service and 150 ms on average at the client (less the
  // first calls, one at a time until the first answer).
  const bound = 64 / 210;
  assert.ok(told.rate / bound >= 0.85, `achieved ${(told.rate / bound).toFixed(3)} of the bound`);
  // Told the whole call's time instead, the limiter reads the client's delay as queueing and
  // holds the batch to a few calls at once (issue 21's Gemini limit of 4).
  const whole = await run("whole call");
  assert.ok(Math.max(...whole.limits) <= 8, `highest limit ${Math.max(...whole.limits)}`);
  assert.ok(whole.rate < told.rate / 10);
});

Deno.test("AdaptiveLimiter grows on a slow machine while the service's latency holds, and shrinks when it rises", async () => {
  const limiter = new AdaptiveLimiter({ initialLimit: 4, probe: false });
  await busyRound(limiter, 100, { serviceMs: 60 });
  // The machine slows: each call takes three times as long, the service's part of it does not.
  await busyRound(limiter, 300, { serviceMs: 60 });
  await busyRound(limiter, 300, { serviceMs: 62 });
  assert.equal(limiter.limit, 32);
  // The service slows: six times its latency, most of the call's.
  await busyRound(limiter, 400, { serviceMs: 360 });
  assert.equal(limiter.limit, 22);
});

Deno.test("AdaptiveLimiter on a slow machine keeps a queueing service's slots busy, not flooded", async () => {
  // fal's account concurrency: 8 slots and a queue it reports, and the same slow client, which
  // holds each permit for 150 ms of its own on average besides the queue and the 60 ms run.
  const { rate, limits } = await simulateSlowClient({
    slots: 8,
    serviceMs: 60,
    lagMs: 150,
    calls: 3000,
    workers: 64,
    feed: "service and queue",
  });
  const bound = 8 / 60;
  assert.ok(rate / bound >= 0.9, `achieved ${(rate / bound).toFixed(3)} of the bound`);
  // Enough permits to cover the client's part of each call (8 × 210 / 60 = 28), not all 64.
  const highest = Math.max(...limits);
  assert.ok(Math.min(...limits) >= 24 && highest <= 48, `limits ${Math.min(...limits)}–${highest}`);
});

/**
 * A service with a sliding-window rate quota (like Gemini's requests per minute): at most
 * `quota` calls accepted in any `windowMs`; beyond it, a 429 with the time until a slot frees.
 * `workers` callers each take a permit, call, and on a 429 report it, wait the hint, and call
 * again, as retake's stages do. Runs on a fake clock; returns calls per ms and the 429 share.
 */
async function simulateRateQuota(
  options: { quota: number; windowMs: number; serviceMs: number; calls: number; workers: number },
): Promise<{ rate: number; refusedShare: number; limiter: AdaptiveLimiter }> {
  const clock = new FakeClock();
  const limiter = clock.limiter();
  let accepted: number[] = [];
  let refused = 0;
  let requests = 0;
  /** One request: resolves with undefined on success, or with the hint of its 429. */
  const call = () =>
    new Promise<number | undefined>((resolve) => {
      requests++;
      accepted = accepted.filter((t) => t > clock.now - options.windowMs);
      if (accepted.length >= options.quota) {
        refused++;
        const hint = accepted[0]! + options.windowMs - clock.now;
        clock.after(5, () => resolve(hint));
        return;
      }
      accepted.push(clock.now);
      clock.after(options.serviceMs, () => resolve(undefined));
    });
  let started = 0;
  let done = 0;
  const worker = async () => {
    while (started < options.calls) {
      started++;
      while (true) {
        const release = await limiter.acquire();
        const begun = clock.now;
        const hint = await call();
        if (hint === undefined) {
          limiter.onSuccess(clock.now - begun);
          release();
          break;
        }
        limiter.onOverload(hint);
        release();
        await clock.sleep(hint);
      }
      done++;
    }
  };
  const all = Promise.all(Array.from({ length: options.workers }, worker));
  await clock.run(() => done >= options.calls);
  await all;
  return { rate: options.calls / clock.now, refusedShare: refused / requests, limiter };
}

Deno.test("AdaptiveLimiter finds a rate quota it is not told and keeps 429s under 5%", async () => {
  const quota = 120;
  const windowMs = 6000;
  const calls = 1500;
  const { rate, refusedShare, limiter } = await simulateRateQuota({
    quota,
    windowMs,
    serviceMs: 200,
    calls,
    workers: 64,
  });
  // The quota's rate. (A client that knew the window could send a whole window's quota at
  // once, each window, and finish about 4% sooner here; retake does not know it.)
  const bound = quota / windowMs;
  assert.ok(rate / bound >= 0.95, `achieved ${(rate / bound).toFixed(3)} of the bound`);
  assert.ok(refusedShare <= 0.05, `${(refusedShare * 100).toFixed(1)}% of requests refused`);
  const paced = limiter.stats().ratePerSecond!;
  assert.ok(paced > 15 && paced < 25, `paced at ${paced}/s for a quota of 20/s`);
});

Deno.test("AdaptiveLimiter holds every caller until a retry hint has passed", async () => {
  let now = 0;
  const wakeups: Array<{ at: number; fire: () => void }> = [];
  const limiter = new AdaptiveLimiter({
    initialLimit: 4,
    minRateSamples: 1000,
    now: () => now,
    timer: (fire, ms) => {
      wakeups.push({ at: now + ms, fire });
      return () => {};
    },
  });
  const first = await limiter.acquire();
  limiter.onOverload(300);
  first();
  let granted = false;
  const next = limiter.acquire().then((release) => (granted = true, release));
  await flush();
  assert.equal(granted, false, "no permit while the hint runs, though permits are free");
  assert.deepEqual(wakeups.map((w) => w.at), [300]);
  now = 300;
  wakeups.shift()!.fire();
  await flush();
  assert.equal(granted, true);
  (await next)();
});

Deno.test("AdaptiveLimiter lets one call through until the service answers, then ramps up", async () => {
  const limiter = new AdaptiveLimiter({ initialLimit: 4 });
  const first = await limiter.acquire();
  let second = false;
  const next = limiter.acquire().then((release) => (second = true, release));
  await flush();
  assert.equal(second, false, "a second call waits for the first answer");
  // A call that failed without an answer about the service (a wrong key, say) ends nothing.
  first();
  const third = limiter.acquire();
  (await next)();
  assert.equal(limiter.limit, 1);
  const release = await third;
  limiter.onSuccess(100);
  release();
  assert.equal(limiter.limit, 4, "ramped up from the first success");
  assert.equal((await take(limiter, 4)).length, 4);

  // A refusal as over quota shows the settings work too.
  const refused = new AdaptiveLimiter({ initialLimit: 4 });
  (await refused.acquire())();
  refused.onOverload();
  assert.ok(refused.limit > 1);
});

/**
 * The batch of issue 9: `workers` prompts, each making `calls` calls in a row, and the service
 * refuses each call `refusals` times with a retry hint before it answers, whatever the pace.
 * Returns how long the batch took on the fake clock, in ms, and the limiter.
 */
async function simulateRefusalStorm(
  options: { workers: number; calls: number; refusals: number; hintMs: number; serviceMs: number },
): Promise<{ ms: number; limiter: AdaptiveLimiter }> {
  const clock = new FakeClock();
  const limiter = clock.limiter();
  let done = 0;
  const worker = async () => {
    for (let call = 0; call < options.calls; call++) {
      // The step before (a fal image) takes a while and does not go through this limiter.
      await clock.sleep(300);
      for (let refused = 0;; refused++) {
        const release = await limiter.acquire();
        const begun = clock.now;
        if (refused < options.refusals) {
          await clock.sleep(5);
          limiter.onOverload(options.hintMs);
          release();
          await clock.sleep(options.hintMs);
          continue;
        }
        await clock.sleep(options.serviceMs);
        limiter.onSuccess(clock.now - begun);
        release();
        break;
      }
    }
    done++;
  };
  const all = Promise.all(Array.from({ length: options.workers }, worker));
  await clock.run(() => done >= options.workers);
  await all;
  return { ms: clock.now, limiter };
}

Deno.test("AdaptiveLimiter gets through a storm of refusals at the pace of the hints, not slower", async () => {
  const { ms, limiter } = await simulateRefusalStorm({
    workers: 4,
    calls: 3,
    refusals: 5,
    hintMs: 2000,
    serviceMs: 50,
  });
  // Each prompt must wait 3 calls × 5 hints × 2 s = 30 s whatever the limiter does.
  assert.ok(ms < 40_000, `took ${(ms / 1000).toFixed(1)} s`);
  const paced = limiter.stats().ratePerSecond;
  assert.ok(paced === undefined || paced >= 2, `the pace fell to ${paced}/s`);
});
