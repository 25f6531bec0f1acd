/**
 * A local stand-in for fal.ai's queue API, speaking the HTTP protocol `@fal-ai/client` 1.x uses
 * (reference `fal.md` §1 and §4.6), so the fal provider, the CLI and benchmarks run without a key,
 * a network or money.
 *
 * - `POST /{endpoint id}` submits (full id, sub-path included); `GET /{owner}/{alias}/requests/{id}
 *   /status[?logs=1]` answers 202 while `IN_QUEUE`/`IN_PROGRESS` and 200 once `COMPLETED`;
 *   `GET …/status/stream` is the SSE variant; `GET …/requests/{id}` returns the output with
 *   `x-fal-request-id`; `PUT …/requests/{id}/cancel` cancels.
 * - Every call but the file downloads and the model catalogue needs `Authorization: Key <key>`;
 *   otherwise 401 `{"detail":"No user found for Key ID and Secret"}`.
 * - fal's Platform API, which costs nothing: `GET /v1/models?endpoint_id=…` (the model catalogue,
 *   key optional) and `GET /v1/models/pricing?endpoint_id=…` (key required), as documented at
 *   docs.fal.ai/platform-apis/v1/models and …/v1/models/pricing. With `endpoints` set, only those
 *   endpoints exist: others are missing from the catalogue and a submit answers 404.
 * - The model families retake knows have their own input schema here, from fal's published ones
 *   (see `ENDPOINTS`): a field the endpoint lacks is refused as `extra_forbidden` (fal's models may
 *   ignore extra fields instead; refusing them is what proves retake sends each family's shape),
 *   so is a value out of range, and `aspect_ratio` is required where the family takes one (fal
 *   would default it; retake must always send the shape it was asked for).
 * - Bad input is refused where real fal refuses it: not at submit (fal's queue accepts any JSON
 *   object for an endpoint it has) but when the request runs. It goes `IN_QUEUE` → `IN_PROGRESS` →
 *   `COMPLETED`, the final status carrying `error` and `error_type` (the fields fal's own Python
 *   client reads, `fal_client.Completed`), and the result call answers 422 with the `detail` list
 *   (reference `fal.md` §0 and §3.3; TanStack/ai PR #396 saw it against live fal). Each answers in its
 *   family's output shape: Nano Banana and Imagen 4 without `seed` or image sizes, Recraft with
 *   neither, FLUX.2 [pro]/[max] without `has_nsfw_concepts`, and so on. Other endpoint ids get
 *   FLUX.1's permissive checks and output.
 * - Images are real PNG/JPEG bytes made with sharp at the size the input asks for (`image_size`,
 *   or `aspect_ratio` × `resolution`), drawn from the prompt and seed (random when not given),
 *   served from `/files/<id>.<ext>` on the stand-in's own origin.
 * - fal's queue reruns a request whose runner failed, unseen by the client, unless the submit
 *   carried `x-fal-no-retry: 1` (the `runner-503-once` fault shows it); every request records
 *   the `x-fal-*` headers it carried.
 * - At most `concurrency` requests are `IN_PROGRESS`; the rest wait `IN_QUEUE` with a
 *   `queue_position`, as fal's account concurrency limit does. Each takes `latencyMs` to "run".
 * - Faults are chosen per request by a token in the prompt text, e.g. `[fal:429-once]`, or
 *   programmatically with {@linkcode FalStandIn.inject}. See {@linkcode FAL_FAULTS}.
 *
 * Run as a script: `deno run --allow-net --allow-ffi --allow-env --allow-read --allow-sys
 * tests/fal_standin.ts --port 8788 --key test-fal-key [--latency-ms 800] [--jitter-ms 100] [--concurrency 2]
 * [--slow-ms 5000] [--http-latency-ms 20]`, then point retake at it with
 * `FAL_BASE_URL=<printed url> FAL_KEY=test-fal-key`.
 *
 * @module
 */
import sharp from "sharp";

/**
 * Scripted failure modes. Those ending in `-once` fail only the first request for each distinct
 * endpoint + prompt, so a retry of the same prompt succeeds; the others fail every time.
 */
export const FAL_FAULTS = [
  /** The result call answers 422 with a list-form `detail` (content policy), after COMPLETED. */
  "422",
  /** The result call answers 422 with a string `detail`. */
  "422-string",
  /**
   * The submit call answers 422 (input validation), as a gateway or proxy that validates before
   * queueing would; fal's own queue reports bad input at the result.
   */
  "422-submit",
  /** The submit call answers 429 with no `Retry-After`. */
  "429",
  "429-once",
  /** The submit call answers 429 with `Retry-After: <retryAfterSeconds>`. */
  "429-retry-after-once",
  /** Status polls answer 500 `internal_error` (the client would retry these on its own). */
  "500",
  "500-once",
  /** The submit call answers 503 `runner_scheduling_failure`. */
  "503-once",
  /** The result call answers 504 `request_timeout`. */
  "504-once",
  /** The first `resultFailures` result calls of each request answer 500, after COMPLETED. */
  "result-500",
  /** The image is black and `has_nsfw_concepts` is `[true]`, as fal's safety checker does. */
  "nsfw",
  /** The image URL serves an HTML page as `text/html`. */
  "not-image",
  /** The result holds an empty `images` list (fal completed the request, and billed it). */
  "no-images",
  /** The image URL points to a plain-http host that is not the stand-in. */
  "foreign-url",
  /** The image comes inline as a `data:` URI, as with `sync_mode: true`. */
  "data-uri",
  /** The request stays `IN_PROGRESS` until cancelled or the stand-in closes. */
  "hang",
  /** The request runs `slowMs` longer. */
  "slow",
  /** The result response breaks off mid-body (the connection ends early). */
  "drop-once",
  /** The result call answers 200 with truncated JSON. */
  "malformed-once",
  /** The submit call answers 403 "User is locked. Reason: Exhausted balance". */
  "locked",
  /** The submit call answers 401 whatever key was sent. */
  "bad-key",
  /**
   * The runner fails the first run (503 `runner_disconnected`): fal's queue runs it again unseen
   * (twice the latency, billed once), or, with `x-fal-no-retry: 1`, the result answers 503.
   */
  "runner-503-once",
  /** The output's images carry no `width`/`height`. */
  "no-size",
] as const;

/** One scripted failure mode. */
export type FalFault = typeof FAL_FAULTS[number];

/** Options for {@linkcode startFalStandIn}. */
export interface FalStandInOptions {
  /** The only API key accepted. @default {"test-fal-key"} */
  key?: string;
  /** Port on 127.0.0.1; 0 picks a free one. @default {0} */
  port?: number;
  /** How long each request runs once `IN_PROGRESS`, in ms. @default {0} */
  latencyMs?: number;
  /** Each run lasts `latencyMs` ± up to this much, uniformly. @default {0} */
  jitterMs?: number;
  /** Source of randomness for the jitter. @default {Math.random} */
  random?: () => number;
  /** Extra run time of the `slow` fault, in ms. @default {2000} */
  slowMs?: number;
  /** Delay before answering every HTTP call, in ms. @default {0} */
  httpLatencyMs?: number;
  /** Requests allowed `IN_PROGRESS` at once; the rest wait `IN_QUEUE`. @default {Infinity} */
  concurrency?: number;
  /**
   * Draw at most this many distinct images per size and format, reused by every request: a
   * benchmark's stand-in then spends the shared cores on the protocol, not on drawing (every
   * request still gets its own URL). Unset: each request's image is its own.
   */
  imageVariants?: number;
  /** `Retry-After` of the `429-retry-after-once` fault, in seconds. @default {1} */
  retryAfterSeconds?: number;
  /** Result calls of each request that the `result-500` fault fails. @default {2} */
  resultFailures?: number;
  /**
   * The only endpoint ids that exist; others are not in the catalogue and their submits answer
   * 404. @default {undefined} (every well-formed id exists)
   */
  endpoints?: string[];
  /**
   * Serve `…/status/stream`; off, it answers 404 as a proxy without the route would.
   * @default {true}
   */
  statusStream?: boolean;
}

/** Which protocol call a recorded request was. */
export type FalCallKind =
  | "submit"
  | "status"
  | "stream"
  | "result"
  | "cancel"
  | "file"
  | "models"
  | "pricing"
  | "unknown";

/** What the stand-in saw of one HTTP request. */
export interface FalRecordedRequest {
  method: string;
  path: string;
  /** The query string, decoded, without `?` (e.g. the endpoint ids a pricing call asks for). */
  query: string;
  kind: FalCallKind;
  /** Full endpoint id of the request's job, e.g. `fal-ai/flux/schnell`. */
  endpoint?: string;
  requestId?: string;
  /** The job's prompt. */
  prompt?: string;
  /** Submitted input (submit calls only). */
  input?: Record<string, unknown>;
  /** Whether the `Authorization` header carried the configured key. */
  keyValid: boolean;
  /** The `x-fal-*` headers sent, names lower-cased, e.g. `{"x-fal-no-retry": "1"}`. */
  falHeaders: Record<string, string>;
  /** The fault applied to the job, if any. */
  fault?: FalFault;
  /** HTTP status answered (0 while pending). */
  status: number;
  /** `performance.now()` at arrival. */
  at: number;
}

/** Counters for benchmarks. */
export interface FalStandInStats {
  submitted: number;
  completed: number;
  cancelled: number;
  queued: number;
  inProgress: number;
  /** Most requests seen `IN_PROGRESS` at once. */
  maxInProgress: number;
  /**
   * Time completed requests spent `IN_PROGRESS`, summed, in ms: on a busy machine timers fire
   * late, so this is the latency the stand-in really served, which a bound must use.
   */
  busyMs: number;
}

/** When one request went through the queue, in `performance.now()` ms. */
export interface FalJobTimes {
  endpoint: string;
  submittedAt: number;
  startedAt?: number;
  completedAt?: number;
  /** Times a runner started it: 2 when fal's queue reran it after a runner failure. */
  runs: number;
}

/** A running stand-in. */
export interface FalStandIn {
  /** Origin to use as the provider's `baseUrl`, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** The key it accepts. */
  key: string;
  /** Every request, in arrival order. */
  requests: FalRecordedRequest[];
  /** Applies `fault` to the next `times` submitted requests that carry a valid key. */
  inject(fault: FalFault, times?: number): void;
  /** Requests of one kind, optionally only those for one prompt. */
  calls(kind: FalCallKind, prompt?: string): FalRecordedRequest[];
  /** When a request was submitted, started and completed; undefined for an unknown id. */
  job(requestId: string): FalJobTimes | undefined;
  stats(): FalStandInStats;
  /** Forgets requests, jobs, injected faults and `-once` memory. */
  reset(): void;
  /** Ends pending answers and streams, stops the server; resolves once it is down. */
  close(): Promise<void>;
}

type State = "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED";

interface Job {
  id: string;
  endpoint: string;
  app: string;
  input: Record<string, unknown>;
  prompt: string;
  fault?: FalFault;
  state: State;
  cancelled: boolean;
  seed: number;
  width: number;
  height: number;
  format: "png" | "jpeg";
  /** The endpoint's schema, for its output shape; undefined for an endpoint not modelled. */
  schema?: EndpointSchema;
  /** The submit carried `x-fal-no-retry`. */
  noRetry: boolean;
  /** Times a runner started it. */
  runs: number;
  /** The runner failed and fal did not rerun it: the result is a 503. */
  runnerFailed?: boolean;
  /** What the endpoint's input model refused: the result is a 422 with this `detail`. */
  rejected?: FieldError[];
  submittedAt: number;
  startedAt?: number;
  completedAt?: number;
  timer?: ReturnType<typeof setTimeout>;
  listeners: Set<() => void>;
  /** How many times the job's `-once` fault has fired. */
  faultsFired: number;
}

const FAULT_TOKEN = /\[fal:([a-z0-9-]+)\]/g;
const PRESETS: Record<string, [number, number]> = {
  square_hd: [1024, 1024],
  square: [512, 512],
  portrait_4_3: [768, 1024],
  portrait_16_9: [576, 1024],
  landscape_4_3: [1024, 768],
  landscape_16_9: [1024, 576],
};
const SUBMIT_FAULTS = new Set<FalFault>([
  "422-submit",
  "429",
  "429-once",
  "429-retry-after-once",
  "503-once",
  "locked",
  "bad-key",
]);
const NO_USER = "No user found for Key ID and Secret";
/** What the pricing API answers, as its docs show it (`unit` as fal names it). */
const STANDIN_PRICES: Record<string, { unit_price: number; unit: string }> = {
  "fal-ai/flux/schnell": { unit_price: 0.003, unit: "megapixels" },
  "fal-ai/flux/dev": { unit_price: 0.025, unit: "megapixels" },
  "fal-ai/flux-pro/v1.1": { unit_price: 0.04, unit: "megapixels" },
};
/** Rendered images kept for repeated downloads. */
const IMAGE_CACHE_SIZE = 256;

/** Starts a stand-in on 127.0.0.1. */
export function startFalStandIn(options: FalStandInOptions = {}): Promise<FalStandIn> {
  const key = options.key ?? "test-fal-key";
  const latencyMs = options.latencyMs ?? 0;
  const jitterMs = options.jitterMs ?? 0;
  const random = options.random ?? Math.random;
  const slowMs = options.slowMs ?? 2000;
  const httpLatencyMs = options.httpLatencyMs ?? 0;
  const concurrency = options.concurrency ?? Infinity;
  const retryAfterSeconds = options.retryAfterSeconds ?? 1;
  const resultFailures = options.resultFailures ?? 2;
  const endpoints = options.endpoints === undefined ? undefined : new Set(options.endpoints);
  const statusStream = options.statusStream ?? true;
  if (!(concurrency >= 1)) {
    throw new RangeError(
      `Cannot start the fal stand-in as 'concurrency' must be at least 1: current value is ${concurrency}`,
    );
  }

  const requests: FalRecordedRequest[] = [];
  const injected: FalFault[] = [];
  const failedOnce = new Set<string>();
  const jobs = new Map<string, Job>();
  const queue: Job[] = [];
  const images = new Map<string, Promise<Uint8Array>>();
  const closing = new AbortController();
  let origin = "";
  let running = 0;
  const stats = { submitted: 0, completed: 0, cancelled: 0, maxInProgress: 0, busyMs: 0 };

  const notify = (job: Job) => {
    for (const listener of job.listeners) listener();
  };
  const finish = (job: Job, cancelled: boolean) => {
    if (job.state === "IN_PROGRESS") running--;
    clearTimeout(job.timer);
    job.state = "COMPLETED";
    job.cancelled = cancelled;
    job.completedAt = performance.now();
    if (cancelled) stats.cancelled++;
    else {
      stats.completed++;
      stats.busyMs += job.completedAt - (job.startedAt ?? job.completedAt);
    }
    notify(job);
    pump();
  };
  const pump = () => {
    while (running < concurrency && queue.length > 0) {
      const job = queue.shift()!;
      job.state = "IN_PROGRESS";
      job.startedAt = performance.now();
      running++;
      stats.maxInProgress = Math.max(stats.maxInProgress, running);
      run(job);
      notify(job);
    }
  };

  /** One run of `job` on a runner; a failed first run is rerun unless the submit said not to. */
  const run = (job: Job) => {
    job.runs++;
    if (job.fault === "hang") return;
    const jitter = jitterMs === 0 ? 0 : (random() * 2 - 1) * jitterMs;
    const ms = Math.max(0, latencyMs + jitter) + (job.fault === "slow" ? slowMs : 0);
    job.timer = setTimeout(() => {
      if (job.fault === "runner-503-once" && job.runs === 1) {
        if (!job.noRetry) return run(job);
        job.runnerFailed = true;
      }
      finish(job, false);
    }, ms);
  };

  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname;
    const auth = req.headers.get("authorization");
    const record: FalRecordedRequest = {
      method: req.method,
      path,
      query: decodeURIComponent(url.search.slice(1)),
      kind: "unknown",
      keyValid: auth === `Key ${key}`,
      falHeaders: Object.fromEntries(
        [...req.headers].filter(([name]) => name.toLowerCase().startsWith("x-fal-")),
      ),
      status: 0,
      at: performance.now(),
    };
    requests.push(record);
    const answer = (response: Response) => {
      record.status = response.status;
      return response;
    };
    const bodyText = req.method === "POST" ? await req.text() : "";
    if (httpLatencyMs > 0 && !(await _until(httpLatencyMs, closing.signal))) {
      return answer(_detail(503, "The stand-in is shutting down", "runner_disconnected"));
    }

    const file = /^\/files\/([0-9a-f-]{36})(?:-(\d+))?\.(png|jpg|jpeg)$/.exec(path);
    if (file && req.method === "GET") {
      record.kind = "file";
      const job = jobs.get(file[1]!);
      if (!job) return answer(_detail(404, "File not found"));
      _describeJob(record, job);
      if (job.fault === "not-image") {
        return answer(
          new Response("<!doctype html><html><body><h1>Access denied</h1></body></html>", {
            headers: { "content-type": "text/html; charset=utf-8" },
          }),
        );
      }
      const bytes = await render(job, Number(file[2] ?? 0));
      return answer(
        new Response(bytes as Uint8Array<ArrayBuffer>, {
          headers: { "content-type": `image/${job.format}` },
        }),
      );
    }

    if (req.method === "GET" && (path === "/v1/models" || path === "/v1/models/pricing")) {
      record.kind = path === "/v1/models" ? "models" : "pricing";
      const ids = url.searchParams.getAll("endpoint_id").flatMap((v) => v.split(","));
      // The catalogue takes a key only for higher rate limits; prices need one.
      if (record.kind === "pricing" && !record.keyValid) return answer(_detail(401, NO_USER));
      const known = ids.filter((id) => endpoints === undefined || endpoints.has(id));
      if (record.kind === "models") {
        return answer(Response.json({
          models: known.map((id) => ({
            endpoint_id: id,
            metadata: { display_name: id, category: "text-to-image", status: "active" },
          })),
          next_cursor: null,
          has_more: false,
        }));
      }
      return answer(Response.json({
        prices: known.flatMap((id) => {
          const price = STANDIN_PRICES[id];
          return price ? [{ endpoint_id: id, ...price, currency: "USD" }] : [];
        }),
        next_cursor: null,
        has_more: false,
      }));
    }

    const queued = /^\/(.+)\/requests\/([^/]+)(\/status(\/stream)?|\/cancel)?$/.exec(path);
    const kind: FalCallKind = queued
      ? queued[4]
        ? "stream"
        : queued[3] === "/status"
        ? "status"
        : queued[3] === "/cancel"
        ? "cancel"
        : "result"
      : req.method === "POST"
      ? "submit"
      : "unknown";
    record.kind = kind;
    const expectedMethod = kind === "submit" ? "POST" : kind === "cancel" ? "PUT" : "GET";
    if (kind === "unknown" || req.method !== expectedMethod) {
      return answer(_detail(405, `Method ${req.method} not allowed on ${path}`));
    }
    if (!record.keyValid) return answer(_detail(401, NO_USER));

    if (kind === "submit") {
      return answer(submit(path.slice(1), bodyText, record));
    }
    const job = jobs.get(queued![2]!);
    if (!job || job.app !== queued![1]) {
      return answer(_detail(404, `Request ${queued![2]} not found`));
    }
    _describeJob(record, job);
    switch (kind) {
      case "status":
        return answer(status(job, url.searchParams.get("logs") === "1"));
      case "stream":
        if (!statusStream) return answer(_detail(404, "Not Found"));
        return answer(stream(job, url.searchParams.get("logs") === "1"));
      case "cancel":
        return answer(cancel(job));
      default:
        return answer(await result(job));
    }
  };

  const submit = (endpoint: string, bodyText: string, record: FalRecordedRequest): Response => {
    const segments = endpoint.split("/");
    const appLength = segments[0] === "workflows" || segments[0] === "comfy" ? 3 : 2;
    if (
      segments.length < appLength || segments.some((s) => s === "") ||
      (endpoints !== undefined && !endpoints.has(endpoint))
    ) {
      return _detail(404, `Application '${endpoint}' not found`);
    }
    record.endpoint = endpoint;
    let input: Record<string, unknown>;
    try {
      const parsed = JSON.parse(bodyText);
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new TypeError("not an object");
      }
      input = parsed as Record<string, unknown>;
    } catch {
      return _validation([{ loc: ["body"], msg: "Invalid JSON body", type: "json_invalid" }]);
    }
    record.input = input;
    const prompt = typeof input.prompt === "string" ? input.prompt : "";
    record.prompt = prompt;
    const schema = ENDPOINTS[endpoint];
    const problems = schema === undefined ? _validate(endpoint, input) : _check(schema, input);
    const fault = injected.shift() ?? _tokenFault(endpoint, prompt, failedOnce);
    if (fault) record.fault = fault;
    if (fault === "bad-key") return _detail(401, NO_USER);
    if (fault === "locked") {
      return _detail(
        403,
        "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing.",
      );
    }
    if (fault === "429" || fault === "429-once") {
      return _detail(429, "Too many requests", "rate_limited");
    }
    if (fault === "429-retry-after-once") {
      return _detail(429, "Too many requests", "rate_limited", {
        "retry-after": String(retryAfterSeconds),
      });
    }
    if (fault === "503-once") {
      return _detail(503, "No runner could be scheduled", "runner_scheduling_failure");
    }
    if (fault === "422-submit") {
      return _validation([...problems, {
        loc: ["body", "num_inference_steps"],
        msg: "Input should be less than or equal to 12",
        type: "less_than_equal",
        ctx: { le: 12 },
      }]);
    }

    // Refused input still makes a request: fal says so once it has run (see the module doc).
    const rejected = problems.length > 0 ? problems : undefined;
    const size: [number, number] = rejected !== undefined
      ? [0, 0]
      : schema === undefined
      ? _size(endpoint, input.image_size)
      : schema.size(input);
    const format = schema?.format === "png"
      ? "png"
      : (input[schema?.format ?? "output_format"] ?? input.format ?? schema?.defaultFormat) ===
          "png"
      ? "png"
      : "jpeg";
    const job: Job = {
      id: crypto.randomUUID(),
      endpoint,
      app: segments.slice(0, appLength).join("/"),
      input,
      prompt,
      ...(fault && !SUBMIT_FAULTS.has(fault) && { fault }),
      ...(rejected !== undefined && { rejected }),
      state: "IN_QUEUE",
      cancelled: false,
      seed: typeof input.seed === "number" ? input.seed : Math.floor(Math.random() * 2 ** 31),
      width: size[0],
      height: size[1],
      format,
      ...(schema !== undefined && { schema }),
      noRetry: /^(1|true|yes)$/i.test(record.falHeaders["x-fal-no-retry"] ?? ""),
      runs: 0,
      submittedAt: record.at,
      listeners: new Set(),
      faultsFired: 0,
    };
    record.requestId = job.id;
    jobs.set(job.id, job);
    queue.push(job);
    stats.submitted++;
    const position = queue.length - 1;
    pump();
    return Response.json({
      status: "IN_QUEUE",
      request_id: job.id,
      queue_position: position,
      ..._urls(origin, job),
    });
  };

  const statusBody = (job: Job, logs: boolean): Record<string, unknown> => {
    const body: Record<string, unknown> = {
      status: job.state,
      request_id: job.id,
      ..._urls(origin, job),
    };
    if (job.state === "IN_QUEUE") body.queue_position = queue.indexOf(job);
    if (logs && job.state !== "IN_QUEUE") body.logs = _logs(job);
    if (job.state === "COMPLETED") {
      body.metrics = { inference_time: _inferenceSeconds(job) };
      const failure = _failure(job);
      if (failure !== undefined) Object.assign(body, failure);
    }
    return body;
  };

  const status = (job: Job, logs: boolean): Response => {
    if (
      job.fault === "500" ||
      (job.fault === "500-once" && job.faultsFired++ === 0)
    ) {
      return _detail(500, "Internal server error", "internal_error");
    }
    return Response.json(statusBody(job, logs), { status: job.state === "COMPLETED" ? 200 : 202 });
  };

  const stream = (job: Job, logs: boolean): Response => {
    // The stream fails as the status would: it is the same call, answered as events.
    if (job.fault === "500" || (job.fault === "500-once" && job.faultsFired++ === 0)) {
      return _detail(500, "Internal server error", "internal_error");
    }
    const encoder = new TextEncoder();
    let cleanup = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        let last = "";
        // The client may have gone (a killed retake): the stream is then closed under us, and
        // there is no one left to tell.
        const guarded = (write: () => void) => {
          try {
            write();
          } catch (error) {
            cleanup();
            if (!(error instanceof TypeError)) throw error;
          }
        };
        const send = () =>
          guarded(() => {
            const event = JSON.stringify(statusBody(job, logs));
            if (event !== last) controller.enqueue(encoder.encode(`data: ${event}\n\n`));
            last = event;
            if (job.state === "COMPLETED") {
              cleanup();
              controller.close();
            }
          });
        const onClose = () =>
          guarded(() => {
            cleanup();
            controller.close();
          });
        cleanup = () => {
          job.listeners.delete(send);
          closing.signal.removeEventListener("abort", onClose);
        };
        job.listeners.add(send);
        closing.signal.addEventListener("abort", onClose, { once: true });
        send();
      },
      cancel() {
        cleanup();
      },
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  };

  const cancel = (job: Job): Response => {
    if (job.state === "COMPLETED") return Response.json({ status: "ALREADY_COMPLETED" });
    if (job.state === "IN_QUEUE") queue.splice(queue.indexOf(job), 1);
    finish(job, true);
    return Response.json({ status: "CANCELLATION_REQUESTED" }, { status: 202 });
  };

  const result = async (job: Job): Promise<Response> => {
    const headers = { "x-fal-request-id": job.id };
    if (job.state !== "COMPLETED") {
      return _detail(400, "Request is still in progress", undefined, headers);
    }
    if (job.cancelled) {
      return _detail(499, "Request was cancelled by the client", "client_cancelled", headers);
    }
    if (job.runnerFailed) {
      return _detail(503, "The runner disconnected", "runner_disconnected", headers);
    }
    if (job.rejected !== undefined) return _validation(job.rejected, headers);
    switch (job.fault) {
      case "422":
        return _validation([CONTENT_POLICY], headers);
      case "422-string":
        return _detail(422, PROMPT_REFUSED.msg, undefined, headers);
      case "504-once":
        if (job.faultsFired++ === 0) {
          return _detail(504, "Request timed out", "request_timeout", headers);
        }
        break;
      case "result-500":
        if (job.faultsFired++ < resultFailures) {
          return _detail(500, "Internal server error", "internal_error", headers);
        }
        break;
      case "malformed-once":
        if (job.faultsFired++ === 0) {
          return new Response('{"images":[{"url":"', {
            headers: { "content-type": "application/json", ...headers },
          });
        }
        break;
    }
    const images = [];
    const count = Math.max(1, Number(job.input.num_images ?? 1));
    for (let i = 0; i < count; i++) {
      const ext = job.format === "png" ? "png" : "jpg";
      const name = `${job.id}${i === 0 ? "" : `-${i}`}.${ext}`;
      const url = job.fault === "data-uri" || job.input.sync_mode === true
        ? `data:image/${job.format};base64,${_base64(await render(job, i))}`
        : job.fault === "foreign-url"
        ? `http://203.0.113.7/files/${name}`
        : `${origin}/files/${name}`;
      const sized = (job.schema?.output.dimensions ?? true) && job.fault !== "no-size";
      images.push({
        url,
        ...(sized && { width: job.width, height: job.height }),
        content_type: `image/${job.format}`,
      });
    }
    const shape = job.schema?.output ?? FLUX_1_OUTPUT;
    const output = JSON.stringify({
      images: job.fault === "no-images" ? [] : images,
      ...(shape.timings && { timings: { inference: _inferenceSeconds(job) } }),
      ...(shape.seed && { seed: job.seed }),
      ...(shape.nsfw && { has_nsfw_concepts: images.map(() => job.fault === "nsfw") }),
      ...(shape.prompt && { prompt: job.prompt }),
      ...(shape.description && { description: "" }),
    });
    if (job.fault === "drop-once" && job.faultsFired++ === 0) {
      // A Content-Length longer than the body makes the client see the connection end early.
      const cut = new TextEncoder().encode(output.slice(0, Math.floor(output.length / 2)));
      // A stream body, so Deno.serve keeps the stated length instead of computing its own.
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(cut);
          controller.close();
        },
      });
      return new Response(body, {
        headers: {
          "content-type": "application/json",
          "content-length": String(output.length),
          ...headers,
        },
      });
    }
    return new Response(output, { headers: { "content-type": "application/json", ...headers } });
  };

  const render = (job: Job, index: number): Promise<Uint8Array> => {
    const variants = options.imageVariants;
    const cacheKey = variants === undefined || job.fault !== undefined
      ? `${job.id}-${index}`
      : `${job.width}x${job.height}.${job.format}.${(job.seed + index) % variants}`;
    let image = images.get(cacheKey);
    if (!image) {
      image = _draw(job, index);
      images.set(cacheKey, image);
      // Drawing is deterministic, so a long benchmark keeps only the recent images in memory.
      if (images.size > IMAGE_CACHE_SIZE) images.delete(images.keys().next().value!);
    }
    return image;
  };

  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      onListen: ({ port }) => {
        origin = `http://127.0.0.1:${port}`;
        resolve({
          url: origin,
          key,
          requests,
          inject(fault, times = 1) {
            for (let i = 0; i < times; i++) injected.push(fault);
          },
          calls(kind, prompt) {
            return requests.filter((r) =>
              r.kind === kind && (prompt === undefined || r.prompt === prompt)
            );
          },
          job(requestId) {
            const job = jobs.get(requestId);
            if (job === undefined) return undefined;
            return {
              endpoint: job.endpoint,
              submittedAt: job.submittedAt,
              ...(job.startedAt !== undefined && { startedAt: job.startedAt }),
              ...(job.completedAt !== undefined && { completedAt: job.completedAt }),
              runs: job.runs,
            };
          },
          stats() {
            return { ...stats, queued: queue.length, inProgress: running };
          },
          reset() {
            requests.length = 0;
            injected.length = 0;
            failedOnce.clear();
            images.clear();
          },
          async close() {
            closing.abort();
            for (const job of jobs.values()) clearTimeout(job.timer);
            await server.shutdown();
          },
        });
      },
    }, handler);
  });
}

/** Which fields an endpoint's output carries. */
interface OutputShape {
  seed: boolean;
  nsfw: boolean;
  /** Each image's `width` and `height`. */
  dimensions: boolean;
  timings: boolean;
  prompt: boolean;
  /** Gemini's text about the images (Nano Banana, Imagen 4). */
  description: boolean;
}

/** One field's check: a problem to report, or undefined when the value is fine. */
type FieldCheck = (value: unknown) => Omit<FieldError, "loc"> | undefined;

/** What fal's input model for one endpoint accepts, and how it answers. */
interface EndpointSchema {
  /** Every field the endpoint takes; any other is refused as `extra_forbidden`. */
  fields: Record<string, FieldCheck>;
  required: readonly string[];
  /** The size the input asks for, `[width, height]`. */
  size: (input: Record<string, unknown>) => [number, number];
  /** The field naming the output format, or `png` when the endpoint has none. */
  format: "output_format" | "format" | "png";
  /** The format when the field is not sent. @default {"jpeg"} */
  defaultFormat?: "png" | "jpeg";
  output: OutputShape;
  /** Further checks across fields, e.g. size limits. */
  extra?: (input: Record<string, unknown>) => FieldError[];
}

const FLUX_1_OUTPUT: OutputShape = {
  seed: true,
  nsfw: true,
  dimensions: true,
  timings: true,
  prompt: true,
  description: false,
};
const GEMINI_OUTPUT: OutputShape = {
  seed: false,
  nsfw: false,
  dimensions: false,
  timings: false,
  prompt: false,
  description: true,
};

const text: FieldCheck = (v) =>
  typeof v === "string"
    ? undefined
    : { msg: "Input should be a valid string", type: "string_type" };
const flag: FieldCheck = (v) =>
  typeof v === "boolean"
    ? undefined
    : { msg: "Input should be a valid boolean", type: "bool_type" };
const integer = (min = -Infinity, max = Infinity): FieldCheck => (v) =>
  !Number.isInteger(v)
    ? { msg: "Input should be a valid integer", type: "int_type" }
    : (v as number) < min
    ? { msg: `Input should be greater than or equal to ${min}`, type: "greater_than_equal" }
    : (v as number) > max
    ? { msg: `Input should be less than or equal to ${max}`, type: "less_than_equal" }
    : undefined;
const number: FieldCheck = (v) =>
  typeof v === "number" && Number.isFinite(v)
    ? undefined
    : { msg: "Input should be a valid number", type: "float_type" };
const oneOf = (...values: string[]): FieldCheck => (v) =>
  values.includes(v as string) ? undefined : {
    msg: `Input should be ${values.map((x) => `'${x}'`).join(", ")}`,
    type: "literal_error",
  };
const anything: FieldCheck = () => undefined;
/** `image_size`: a preset name (and `extra` names) or `{width, height}`. */
const imageSize = (...extra: string[]): FieldCheck => (v) => {
  if (typeof v === "string") {
    return v in PRESETS || extra.includes(v) ? undefined : {
      msg: `Input should be ${[...Object.keys(PRESETS), ...extra].join(", ")} or an ImageSize`,
      type: "literal_error",
    };
  }
  const size = v !== null && typeof v === "object" ? v as Record<string, unknown> : undefined;
  const ok = size !== undefined &&
    Object.keys(size).every((k) => k === "width" || k === "height") &&
    Number.isInteger(size.width) && Number.isInteger(size.height) &&
    (size.width as number) > 0 && (size.height as number) > 0 &&
    (size.width as number) <= 14142 && (size.height as number) <= 14142;
  return ok ? undefined : {
    msg: "Input should be a valid preset name or an object with integer width and height",
    type: "value_error",
  };
};

/** The pixels `image_size` asks for, `fallback` when absent. */
function _pixels(value: unknown, fallback: [number, number]): [number, number] {
  if (typeof value === "string") return PRESETS[value] ?? AUTO_SIZES[value] ?? fallback;
  if (value !== null && typeof value === "object") {
    const s = value as { width: number; height: number };
    return [s.width, s.height];
  }
  return fallback;
}

const AUTO_SIZES: Record<string, [number, number]> = {
  auto_2K: [2048, 2048],
  auto_3K: [3072, 3072],
  auto_4K: [4096, 4096],
};

/** Refuses an `image_size` outside `[min, max]` a side, as FLUX.2 and FLUX1.1 [pro] do. */
const sides = (min: number, max: number, fallback: [number, number]) =>
(
  input: Record<string, unknown>,
): FieldError[] => {
  const [w, h] = _pixels(input.image_size, fallback);
  return w >= min && w <= max && h >= min && h <= max ? [] : [{
    loc: ["body", "image_size"],
    msg: `The width and height must be between ${min} and ${max} pixels`,
    type: "value_error",
  }];
};

/** The size of an `aspect_ratio` + `resolution` image: the tier's area, in the ratio's shape. */
function _aspectSize(input: Record<string, unknown>): [number, number] {
  const ratio = String(input.aspect_ratio ?? "1:1");
  const [a, b] = ratio === "auto" ? [1, 1] : ratio.split(":").map(Number) as [number, number];
  const side = TIERS[String(input.resolution ?? "1K")] ?? 1024;
  const round = (v: number) => Math.round(v / 8) * 8;
  return [round(side * Math.sqrt(a / b)), round(side * Math.sqrt(b / a))];
}

const TIERS: Record<string, number> = { "0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096 };
const BASE_RATIOS = ["21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"];
const TOLERANCE = oneOf("1", "2", "3", "4", "5", "6");

const flux1 = (maxSteps: number): EndpointSchema => ({
  fields: {
    prompt: text,
    image_size: imageSize(),
    num_inference_steps: integer(1, maxSteps),
    seed: integer(),
    guidance_scale: number,
    num_images: integer(1, 4),
    enable_safety_checker: flag,
    output_format: oneOf("jpeg", "png"),
    sync_mode: flag,
    acceleration: oneOf("none", "regular", "high"),
  },
  required: ["prompt"],
  size: (input) => _pixels(input.image_size, [1024, 768]),
  format: "output_format",
  output: FLUX_1_OUTPUT,
});

const flux2 = (fields: Record<string, FieldCheck>, output: OutputShape): EndpointSchema => ({
  fields: {
    prompt: text,
    image_size: imageSize(),
    seed: integer(),
    enable_safety_checker: flag,
    sync_mode: flag,
    ...fields,
  },
  required: ["prompt"],
  size: (input) => _pixels(input.image_size, [1024, 768]),
  format: "output_format",
  defaultFormat: "png",
  output,
  extra: sides(512, 2048, [1024, 768]),
});

const nanoBanana = (ratios: string[], tiers: string[], more: Record<string, FieldCheck>) => ({
  fields: {
    prompt: text,
    aspect_ratio: oneOf("auto", ...ratios),
    resolution: oneOf(...tiers),
    num_images: integer(1, 4),
    seed: integer(),
    output_format: oneOf("jpeg", "png", "webp"),
    safety_tolerance: TOLERANCE,
    sync_mode: flag,
    limit_generations: flag,
    enable_web_search: flag,
    ...more,
  },
  required: ["prompt", "aspect_ratio"],
  size: _aspectSize,
  format: "output_format",
  defaultFormat: "png",
  output: GEMINI_OUTPUT,
} satisfies EndpointSchema);

/** Seedream: `area` in pixels, or (4.5) `sides` each within range. */
const seedream = (
  { seed, autos, area, sides }: {
    seed: boolean;
    autos: string[];
    area: [number, number];
    sides?: [number, number];
  },
): EndpointSchema => ({
  fields: {
    prompt: text,
    image_size: imageSize(...autos),
    num_images: integer(1, 6),
    max_images: integer(1, 6),
    ...(seed && { seed: integer() }),
    sync_mode: flag,
    enable_safety_checker: flag,
  },
  required: ["prompt"],
  size: (input) => _pixels(input.image_size, [2048, 2048]),
  format: "png",
  output: { ...FLUX_1_OUTPUT, nsfw: false, timings: false, prompt: false },
  extra: (input) => {
    const [w, h] = _pixels(input.image_size, [2048, 2048]);
    const sidesOk = sides !== undefined && w >= sides[0] && w <= sides[1] && h >= sides[0] &&
      h <= sides[1];
    const areaOk = w * h >= area[0] && w * h <= area[1];
    return sidesOk || areaOk ? [] : [{
      loc: ["body", "image_size"],
      msg: `The total number of pixels must be between ${area[0]} and ${area[1]}`,
      type: "value_error",
    }];
  },
});

const recraft = (fields: Record<string, FieldCheck>): EndpointSchema => ({
  fields: { prompt: text, image_size: imageSize(), enable_safety_checker: flag, ...fields },
  required: ["prompt"],
  size: (input) => _pixels(input.image_size, [1024, 1024]),
  format: "png",
  output: { ...GEMINI_OUTPUT, description: false },
});

const sd: EndpointSchema = {
  fields: {
    prompt: text,
    image_size: imageSize(),
    num_inference_steps: integer(1, 65),
    seed: integer(),
    guidance_scale: number,
    num_images: integer(1, 8),
    enable_safety_checker: flag,
    format: oneOf("jpeg", "png"),
    negative_prompt: text,
    expand_prompt: flag,
    safety_checker_version: oneOf("v1", "v2"),
    sync_mode: flag,
    loras: anything,
    embeddings: anything,
  },
  required: ["prompt"],
  size: (input) => _pixels(input.image_size, [1024, 1024]),
  format: "format",
  output: FLUX_1_OUTPUT,
};

/**
 * The endpoints modelled, from fal's published input schemas (the fields retake could send;
 * fields only other workflows use, like LoRAs and reference images, are accepted unchecked).
 */
const ENDPOINTS: Record<string, EndpointSchema> = {
  "fal-ai/flux/schnell": flux1(12),
  "fal-ai/flux/dev": flux1(50),
  "fal-ai/flux-pro/v1.1": {
    fields: {
      prompt: text,
      image_size: imageSize(),
      seed: integer(),
      num_images: integer(1, 4),
      output_format: oneOf("jpeg", "png"),
      sync_mode: flag,
      safety_tolerance: TOLERANCE,
      enhance_prompt: flag,
    },
    required: ["prompt"],
    size: (input) => _pixels(input.image_size, [1024, 768]),
    format: "output_format",
    output: FLUX_1_OUTPUT,
    extra: sides(256, 1440, [1024, 768]),
  },
  "fal-ai/flux-2": flux2({
    num_images: integer(1, 4),
    output_format: oneOf("jpeg", "png", "webp"),
    num_inference_steps: integer(4, 50),
    guidance_scale: number,
    acceleration: oneOf("none", "regular", "high"),
    enable_prompt_expansion: flag,
  }, FLUX_1_OUTPUT),
  ...Object.fromEntries(["fal-ai/flux-2-pro", "fal-ai/flux-2-max"].map((id) => [
    id,
    flux2({
      output_format: oneOf("jpeg", "png"),
      safety_tolerance: oneOf("1", "2", "3", "4", "5"),
    }, { ...FLUX_1_OUTPUT, nsfw: false, timings: false, prompt: false }),
  ])),
  ...Object.fromEntries(["fal-ai/flux-2/flash", "fal-ai/flux-2/turbo"].map((id) => [
    id,
    flux2({
      num_images: integer(1, 4),
      output_format: oneOf("jpeg", "png", "webp"),
      guidance_scale: number,
      enable_prompt_expansion: flag,
    }, FLUX_1_OUTPUT),
  ])),
  // An endpoint retake does not know (it sends FLUX.1-style input): FLUX.2's size limits apply,
  // which retake cannot check before the run.
  "fal-ai/flux-2/lora": flux2({
    num_images: integer(1, 4),
    output_format: oneOf("jpeg", "png", "webp"),
    num_inference_steps: integer(4, 50),
    guidance_scale: number,
    acceleration: oneOf("none", "regular", "high"),
    enable_prompt_expansion: flag,
    loras: anything,
  }, FLUX_1_OUTPUT),
  // FLUX.1 Kontext [pro], the FLUX family's edit endpoint: the source image in `image_url`.
  "fal-ai/flux-pro/kontext": {
    fields: {
      prompt: text,
      image_url: text,
      seed: integer(),
      guidance_scale: number,
      num_images: integer(1, 4),
      output_format: oneOf("jpeg", "png"),
      safety_tolerance: TOLERANCE,
      enhance_prompt: flag,
      sync_mode: flag,
      aspect_ratio: oneOf("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"),
    },
    required: ["prompt", "image_url"],
    size: () => [1024, 768],
    format: "output_format",
    output: FLUX_1_OUTPUT,
  },
  "fal-ai/nano-banana-2": nanoBanana(
    [...BASE_RATIOS, "4:1", "1:4", "8:1", "1:8"],
    ["0.5K", "1K", "2K", "4K"],
    { thinking_level: oneOf("minimal", "high") },
  ),
  "fal-ai/nano-banana-pro": nanoBanana(BASE_RATIOS, ["1K", "2K", "4K"], {}),
  "fal-ai/imagen4/preview": {
    ...nanoBanana(["1:1", "16:9", "9:16", "4:3", "3:4"], ["1K", "2K"], {}),
    fields: {
      prompt: text,
      aspect_ratio: oneOf("1:1", "16:9", "9:16", "4:3", "3:4"),
      resolution: oneOf("1K", "2K"),
      num_images: integer(1, 4),
      seed: integer(),
      output_format: oneOf("jpeg", "png", "webp"),
      safety_tolerance: TOLERANCE,
      sync_mode: flag,
    },
  },
  "fal-ai/bytedance/seedream/v4.5/text-to-image": seedream({
    seed: true,
    autos: ["auto_2K", "auto_4K"],
    area: [2560 * 1440, 4096 * 4096],
    sides: [1920, 4096],
  }),
  "fal-ai/bytedance/seedream/v5/lite/text-to-image": seedream({
    seed: false,
    autos: ["auto_2K", "auto_3K"],
    area: [2560 * 1440, 3072 * 3072],
  }),
  "fal-ai/qwen-image": {
    fields: {
      prompt: text,
      image_size: imageSize(),
      num_inference_steps: integer(2, 250),
      seed: integer(),
      guidance_scale: number,
      sync_mode: flag,
      num_images: integer(1, 4),
      enable_safety_checker: flag,
      output_format: oneOf("jpeg", "png"),
      negative_prompt: text,
      acceleration: oneOf("none", "regular", "high"),
      use_turbo: flag,
      loras: anything,
    },
    required: ["prompt"],
    size: (input) => _pixels(input.image_size, [1024, 768]),
    format: "output_format",
    defaultFormat: "png",
    output: FLUX_1_OUTPUT,
  },
  "fal-ai/ideogram/v3": {
    fields: {
      prompt: text,
      image_size: imageSize(),
      rendering_speed: oneOf("TURBO", "BALANCED", "QUALITY"),
      expand_prompt: flag,
      num_images: integer(1, 8),
      seed: integer(),
      negative_prompt: text,
      style: oneOf("AUTO", "GENERAL", "REALISTIC", "DESIGN"),
      sync_mode: flag,
      style_codes: anything,
      color_palette: anything,
      image_urls: anything,
      style_preset: anything,
    },
    required: ["prompt"],
    size: (input) => _pixels(input.image_size, [1024, 1024]),
    format: "png",
    output: { ...GEMINI_OUTPUT, seed: true, description: false },
  },
  "fal-ai/recraft/v3/text-to-image": recraft({
    style: anything,
    colors: anything,
    style_id: text,
  }),
  "fal-ai/recraft/v4/text-to-image": recraft({ colors: anything, background_color: anything }),
  "fal-ai/fast-sdxl": sd,
  "fal-ai/stable-diffusion-v15": sd,
};

/** Checks `input` against `schema` as fal's pydantic models would, strict about extra fields. */
function _check(schema: EndpointSchema, input: Record<string, unknown>): FieldError[] {
  const problems: FieldError[] = [];
  for (const field of schema.required) {
    if (input[field] === undefined) {
      problems.push({ loc: ["body", field], msg: "Field required", type: "missing" });
    }
  }
  for (const [field, value] of Object.entries(input)) {
    const check = schema.fields[field];
    if (check === undefined) {
      problems.push({
        loc: ["body", field],
        msg: "Extra inputs are not permitted",
        type: "extra_forbidden",
      });
      continue;
    }
    const problem = check(value);
    if (problem !== undefined) problems.push({ loc: ["body", field], ...problem });
  }
  if (typeof input.prompt === "string" && input.prompt.trim() === "") {
    problems.push({ loc: ["body", "prompt"], msg: "Field required", type: "missing" });
  }
  if (problems.length === 0 && schema.extra !== undefined) problems.push(...schema.extra(input));
  return problems;
}

function _describeJob(record: FalRecordedRequest, job: Job): void {
  record.endpoint = job.endpoint;
  record.requestId = job.id;
  record.prompt = job.prompt;
  if (job.fault) record.fault = job.fault;
}

/**
 * The `error` and `error_type` a COMPLETED status carries for a request that failed; undefined
 * for one with an output. (fal's docs do not list the values for a model's 422: the stand-in
 * gives the first `detail` entry's message and type.)
 */
function _failure(job: Job): { error: string; error_type: string } | undefined {
  if (job.cancelled) {
    return { error: "Request was cancelled by the client", error_type: "client_cancelled" };
  }
  if (job.runnerFailed) {
    return { error: "The runner disconnected", error_type: "runner_disconnected" };
  }
  const first = job.rejected?.[0] ??
    (job.fault === "422"
      ? CONTENT_POLICY
      : job.fault === "422-string"
      ? PROMPT_REFUSED
      : undefined);
  return first === undefined ? undefined : { error: first.msg, error_type: first.type };
}

function _tokenFault(
  endpoint: string,
  prompt: string,
  failedOnce: Set<string>,
): FalFault | undefined {
  for (const match of prompt.matchAll(FAULT_TOKEN)) {
    const fault = match[1] as FalFault;
    if (!(FAL_FAULTS as readonly string[]).includes(fault)) continue;
    if (!fault.endsWith("-once")) return fault;
    const memory = `${fault}\n${endpoint}\n${prompt}`;
    if (failedOnce.has(memory)) continue;
    failedOnce.add(memory);
    return fault;
  }
  return undefined;
}

interface FieldError {
  loc: (string | number)[];
  msg: string;
  type: string;
  url?: string;
  ctx?: Record<string, unknown>;
}

/** The `422` fault's refusal, in the shape docs.fal.ai/errors gives a model error. */
const CONTENT_POLICY: FieldError = {
  loc: ["body", "prompt"],
  msg:
    "The content could not be processed because it contained material flagged by a content checker.",
  type: "content_policy_violation",
  url: "https://docs.fal.ai/errors#content_policy_violation",
};
/** The `422-string` fault's refusal (a string `detail`). */
const PROMPT_REFUSED: FieldError = {
  loc: ["body"],
  msg: "Prompt could not be processed.",
  type: "value_error",
};

/** The checks fal's input models make that a client can plausibly get wrong. */
function _validate(endpoint: string, input: Record<string, unknown>): FieldError[] {
  const problems: FieldError[] = [];
  if (typeof input.prompt !== "string" || input.prompt.trim() === "") {
    problems.push({ loc: ["body", "prompt"], msg: "Field required", type: "missing" });
  }
  const size = input.image_size;
  if (size !== undefined) {
    const custom = size !== null && typeof size === "object"
      ? size as { width?: unknown; height?: unknown }
      : undefined;
    const valid = typeof size === "string"
      ? size in PRESETS
      : custom !== undefined && Number.isInteger(custom.width) &&
        Number.isInteger(custom.height) && (custom.width as number) > 0 &&
        (custom.height as number) > 0 && (custom.width as number) <= 14142 &&
        (custom.height as number) <= 14142;
    if (!valid) {
      problems.push({
        loc: ["body", "image_size"],
        msg: "Input should be a valid preset name or an object with integer width and height",
        type: "value_error",
      });
    }
  }
  const n = input.num_images;
  if (n !== undefined && !(Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 4)) {
    problems.push({
      loc: ["body", "num_images"],
      msg: "Input should be between 1 and 4",
      type: "less_than_equal",
      ctx: { le: 4 },
    });
  }
  if (input.seed !== undefined && !Number.isInteger(input.seed)) {
    problems.push({ loc: ["body", "seed"], msg: "Input should be an integer", type: "int_type" });
  }
  const formatField = /fast-sdxl|stable-diffusion-v15/.test(endpoint) ? "format" : "output_format";
  const format = input[formatField];
  if (format !== undefined && format !== "jpeg" && format !== "png") {
    problems.push({
      loc: ["body", formatField],
      msg: "Input should be 'jpeg' or 'png'",
      type: "literal_error",
    });
  }
  const steps = input.num_inference_steps;
  const maxSteps = endpoint === "fal-ai/flux/schnell" ? 12 : 50;
  if (
    steps !== undefined &&
    !(Number.isInteger(steps) && (steps as number) >= 1 && (steps as number) <= maxSteps)
  ) {
    problems.push({
      loc: ["body", "num_inference_steps"],
      msg: `Input should be between 1 and ${maxSteps}`,
      type: "less_than_equal",
      ctx: { le: maxSteps },
    });
  }
  return problems;
}

function _size(endpoint: string, size: unknown): [number, number] {
  if (typeof size === "string") return PRESETS[size] ?? [1024, 768];
  if (size !== null && typeof size === "object") {
    const s = size as { width: number; height: number };
    return [s.width, s.height];
  }
  return endpoint.startsWith("fal-ai/flux") ? [1024, 768] : [1024, 1024];
}

function _urls(origin: string, job: Job): Record<string, string> {
  const base = `${origin}/${job.app}/requests/${job.id}`;
  return { response_url: base, status_url: `${base}/status`, cancel_url: `${base}/cancel` };
}

function _logs(job: Job): unknown[] {
  const at = new Date().toISOString();
  const logs = [{
    message: `Generating ${job.width}x${job.height}`,
    level: "INFO",
    source: "USER",
    timestamp: at,
  }];
  if (job.state === "COMPLETED") {
    logs.push({ message: "Done", level: "INFO", source: "USER", timestamp: at });
  }
  return logs;
}

function _inferenceSeconds(job: Job): number {
  const ms = (job.completedAt ?? performance.now()) - (job.startedAt ?? performance.now());
  return Math.round(ms) / 1000;
}

/** Deterministic pixels from prompt + seed; black when the safety checker "fired". */
async function _draw(job: Job, index: number): Promise<Uint8Array> {
  const { width, height } = job;
  const pixels = new Uint8Array(width * height * 3);
  if (job.fault !== "nsfw") {
    let hash = (job.seed ^ index * 0x9e3779b9) >>> 0;
    for (const c of job.prompt) hash = Math.imul(hash ^ c.charCodeAt(0), 16777619) >>> 0;
    const r = hash & 0xff, g = (hash >>> 8) & 0xff, b = (hash >>> 16) & 0xff;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 3;
        pixels[i] = (r + (x * 255) / width) & 0xff;
        pixels[i + 1] = (g + (y * 255) / height) & 0xff;
        pixels[i + 2] = (b + ((x + y) % 64)) & 0xff;
      }
    }
  }
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  const buffer = job.format === "png"
    ? await image.png({ compressionLevel: 1 }).toBuffer()
    : await image.jpeg({ quality: 85 }).toBuffer();
  return new Uint8Array(buffer);
}

function _base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function _detail(
  status: number,
  detail: string,
  errorType?: string,
  headers: Record<string, string> = {},
): Response {
  return Response.json(
    { detail, ...(errorType !== undefined && { error_type: errorType }) },
    {
      status,
      headers: { ...(errorType !== undefined && { "x-fal-error-type": errorType }), ...headers },
    },
  );
}

function _validation(detail: FieldError[], headers: Record<string, string> = {}): Response {
  return Response.json({ detail }, { status: 422, headers });
}

function _until(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const done = (value: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(value);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

if (import.meta.main) {
  const flag = (name: string) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Deno.args[i + 1] : undefined;
  };
  const number = (name: string) => {
    const v = flag(name);
    return v === undefined ? undefined : Number(v);
  };
  const options: FalStandInOptions = {};
  const port = number("port");
  const key = flag("key");
  const latencyMs = number("latency-ms");
  const jitterMs = number("jitter-ms");
  const slowMs = number("slow-ms");
  const httpLatencyMs = number("http-latency-ms");
  const concurrency = number("concurrency");
  if (port !== undefined) options.port = port;
  if (key !== undefined) options.key = key;
  if (latencyMs !== undefined) options.latencyMs = latencyMs;
  if (jitterMs !== undefined) options.jitterMs = jitterMs;
  if (slowMs !== undefined) options.slowMs = slowMs;
  if (httpLatencyMs !== undefined) options.httpLatencyMs = httpLatencyMs;
  if (concurrency !== undefined) options.concurrency = concurrency;
  const standIn = await startFalStandIn(options);
  // deno-lint-ignore no-console
  console.log(standIn.url);
  Deno.addSignalListener("SIGINT", () => void standIn.close().then(() => Deno.exit(0)));
}
