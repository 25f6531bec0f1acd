/**
 * A local stand-in for the API of AUTOMATIC1111's Stable Diffusion web UI (and Forge, which keeps
 * it), so the a1111 provider and the CLI run without a GPU.
 *
 * Built from the web UI's own source (github.com/AUTOMATIC1111/stable-diffusion-webui):
 * `modules/api/api.py` — `POST /sdapi/v1/txt2img` and `/img2img` run one at a time under the
 * `queue_lock` and answer `{images: [base64…], parameters, info}` with `info` a JSON text
 * (`processed.js()`: `seed`, `all_seeds`, `width`, `height`, `sd_model_name`, `sd_model_hash`, …);
 * `GET /sdapi/v1/progress` (`progress`, `eta_relative`, `state` with `job_count`,
 * `sampling_step`, `sampling_steps`, `interrupted`); `POST /sdapi/v1/interrupt`, after which the
 * request still answers 200 with what it has; `GET /sdapi/v1/sd-models`; an unknown sampler as
 * 404 `Sampler not found`, an unknown checkpoint in `override_settings` as 404 `Model not found`;
 * `--api-auth` as HTTP basic auth answering 401 `Incorrect username or password`; exceptions as
 * 500 `{error, detail, body, errors}` (`api_middleware`). The request fields are those of
 * `modules/api/models.py` (`StableDiffusionTxt2ImgProcessingAPI`, `force_task_id` among them), as
 * clients of the API send them — that file itself was not read — and a field of the wrong type is
 * refused with FastAPI's 422 `detail` list. `POST /internal/progress` answers `active`, `queued`
 * and `completed` for a task id, as the web UI's `modules/progress.py` does (also not read here: its
 * answer's fields as the web UI's front end reads them).
 *
 * Faults: a token in the prompt, e.g. `[a1111:oom]`; see {@linkcode A1111_FAULTS}.
 * {@linkcode A1111StandIn.restart} stops listening and listens again on the same port.
 *
 * Run as a script: `deno run -A tests/a1111_standin.ts --port 7860`, then point retake at it with
 * `A1111_BASE_URL=<printed url>`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import sharp from "sharp";

/** Scripted failure modes. */
export const A1111_FAULTS = [
  /** 500 with `OutOfMemoryError`, as the API middleware reports an exception. */
  "oom",
  /** The image is drawn until interrupted. */
  "hang",
  /** The answer breaks off mid-body. */
  "drop-once",
] as const;

/** One scripted failure mode. */
export type A1111Fault = typeof A1111_FAULTS[number];

/** Options for {@linkcode startA1111StandIn}. */
export interface A1111StandInOptions {
  port?: number;
  /** `user:password` the API requires (`--api-auth`). @default {undefined} (none) */
  auth?: string;
  /** Checkpoint titles the server has; the first is loaded. */
  checkpoints?: string[];
  /** Time one sampling step takes, in ms. @default {0} */
  stepMs?: number;
}

/** What the stand-in saw of one generation request. */
export interface A1111Request {
  endpoint: "txt2img" | "img2img";
  body: Record<string, unknown>;
  authorization: string | null;
}

/** A running stand-in. */
export interface A1111StandIn {
  url: string;
  /** Every txt2img/img2img request it accepted (auth and fields valid), in order. */
  requests: A1111Request[];
  /** Every HTTP call, as `METHOD /path`. */
  calls: string[];
  /** Requests refused with 401. */
  readonly unauthorized: number;
  /** The most generation requests it had open at once, waiting for the lock included. */
  readonly maxOpen: number;
  /** The most images it drew at once (the queue lock: 1). */
  readonly maxDrawing: number;
  /** Resolves once it has accepted `count` generation requests. */
  received(count: number): Promise<void>;
  /** Resolves once `count` generations have started drawing (held the queue lock). */
  started(count: number): Promise<void>;
  /** Resolves once it has seen `count` calls matching `pattern` (`POST /sdapi/v1/interrupt`). */
  called(pattern: RegExp, count?: number): Promise<void>;
  /** Generations finish only after {@linkcode A1111StandIn.release}. */
  hold(): void;
  release(): void;
  restart(): Promise<void>;
  close(): Promise<void>;
}

const SAMPLERS = ["Euler a", "Euler", "DPM++ 2M", "DPM++ 2M SDE", "DDIM"];

/** Starts a stand-in on 127.0.0.1. */
export async function startA1111StandIn(options: A1111StandInOptions = {}): Promise<A1111StandIn> {
  const checkpoints = options.checkpoints ?? ["v1-5-pruned-emaonly.safetensors [6ce0161689]"];
  const stepMs = options.stepMs ?? 0;
  const requests: A1111Request[] = [];
  const calls: string[] = [];
  const waiters: Array<() => void> = [];
  const failedOnce = new Set<string>();
  let unauthorized = 0;
  let startedCount = 0;
  let drawing = 0;
  let maxDrawing = 0;
  let open = 0;
  let maxOpen = 0;
  let held = false;
  const releases: Array<() => void> = [];
  const closing = new AbortController();
  // `shared.state` and the progress module's task lists.
  const state = {
    job: "",
    jobCount: 0,
    step: 0,
    steps: 0,
    interrupted: false,
    started: 0,
    current: undefined as string | undefined,
    pending: new Set<string>(),
    finished: new Set<string>(),
  };
  let lock = Promise.resolve();

  const until = (ready: () => boolean) => _until(waiters, ready);
  const wake = () => {
    for (const waiter of waiters.splice(0)) waiter();
  };
  const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json", ...headers },
    });
  const error = (status: number, name: string, detail: string, errors = detail) =>
    json({ error: name, detail, body: "", errors }, status);

  const authorized = (request: Request) => {
    if (options.auth === undefined) return undefined;
    const header = request.headers.get("authorization");
    if (header === null || !header.startsWith("Basic ")) {
      return json({ detail: "Not authenticated" }, 401, { "www-authenticate": "Basic" });
    }
    const given = Buffer.from(header.slice(6), "base64").toString("utf8");
    if (given !== options.auth) {
      return json({ detail: "Incorrect username or password" }, 401, {
        "www-authenticate": "Basic",
      });
    }
    return undefined;
  };

  /** FastAPI's check of `models.py`'s field types. */
  const invalid = (body: Record<string, unknown>) => {
    const detail: unknown[] = [];
    const ints = ["width", "height", "steps", "seed", "batch_size", "n_iter"];
    for (const field of ints) {
      if (body[field] !== undefined && !Number.isInteger(body[field])) {
        detail.push({
          loc: ["body", field],
          msg: "value is not a valid integer",
          type: "type_error.integer",
        });
      }
    }
    if (body.prompt !== undefined && typeof body.prompt !== "string") {
      detail.push({ loc: ["body", "prompt"], msg: "str type expected", type: "type_error.str" });
    }
    return detail.length > 0 ? json({ detail }, 422) : undefined;
  };

  const generate = async (endpoint: "txt2img" | "img2img", request: Request) => {
    const body = await request.json().catch(() => ({})) as Record<string, unknown>;
    const refused = invalid(body);
    if (refused) return refused;
    const sampler = body.sampler_name ?? body.sampler_index;
    if (sampler !== undefined && !SAMPLERS.includes(String(sampler))) {
      return json({ detail: "Sampler not found" }, 404);
    }
    const model = (body.override_settings as Record<string, unknown> | undefined)
      ?.sd_model_checkpoint;
    const bare = (s: string) =>
      s.replace(/\s*\[[0-9a-f]+\]$/i, "").replace(/\.(safetensors|ckpt)$/i, "");
    const checkpoint = model === undefined
      ? checkpoints[0]!
      : checkpoints.find((c) => bare(c) === bare(String(model)));
    if (checkpoint === undefined) return json({ detail: "Model not found" }, 404);
    if (endpoint === "img2img" && !Array.isArray(body.init_images)) {
      return json({ detail: "Init image not found" }, 404);
    }
    requests.push({ endpoint, body, authorization: request.headers.get("authorization") });
    const task = typeof body.force_task_id === "string" ? body.force_task_id : crypto.randomUUID();
    state.pending.add(task);
    open++;
    maxOpen = Math.max(maxOpen, open);
    wake();
    const prompt = String(body.prompt ?? "");
    const fault = A1111_FAULTS.find((f) => prompt.includes(`[a1111:${f}]`));
    let release!: () => void;
    const previous = lock;
    lock = new Promise((r) => (release = r));
    try {
      // The queue lock: one image at a time.
      await previous;
      state.pending.delete(task);
      state.current = task;
      startedCount++;
      drawing++;
      maxDrawing = Math.max(maxDrawing, drawing);
      wake();
      const steps = Number(body.steps ?? 20);
      Object.assign(state, {
        job: `scripts_${endpoint}`,
        jobCount: 1,
        step: 0,
        steps,
        interrupted: false,
        started: Date.now(),
      });
      if (fault === "oom") {
        return error(
          500,
          "OutOfMemoryError",
          "",
          "CUDA out of memory. Tried to allocate 2.00 GiB (stand-in fault)",
        );
      }
      for (let step = 1; step <= steps && !state.interrupted; step++) {
        if (stepMs > 0) await new Promise((r) => setTimeout(r, stepMs));
        state.step = step;
      }
      while (
        (held || fault === "hang") && !state.interrupted && !closing.signal.aborted
      ) {
        await new Promise<void>((r) => {
          releases.push(r);
          closing.signal.addEventListener("abort", () => r(), { once: true });
        });
        if (!held && fault !== "hang") break;
      }
      const width = Number(body.width ?? 512);
      const height = Number(body.height ?? 512);
      const seed = Number(body.seed ?? -1) < 0
        ? Math.floor(Math.random() * 2 ** 32)
        : Number(body.seed);
      let hash = 2166136261;
      for (const char of `${prompt}#${seed}`) {
        hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
      }
      let size = { width, height };
      if (endpoint === "img2img") {
        const source = await sharp(Buffer.from(String((body.init_images as string[])[0]), "base64"))
          .metadata();
        size = { width: source.width ?? width, height: source.height ?? height };
      }
      const png = await sharp({
        create: {
          ...size,
          channels: 3,
          background: { r: hash & 0xff, g: (hash >>> 8) & 0xff, b: (hash >>> 16) & 0xff },
        },
      }).png().toBuffer();
      const info = {
        prompt,
        all_prompts: [prompt],
        negative_prompt: String(body.negative_prompt ?? ""),
        seed,
        all_seeds: [seed],
        subseed: 0,
        width: size.width,
        height: size.height,
        sampler_name: String(sampler ?? "Euler a"),
        cfg_scale: Number(body.cfg_scale ?? 7),
        steps,
        batch_size: 1,
        sd_model_name: bare(checkpoint),
        sd_model_hash: /\[([0-9a-f]+)\]$/.exec(checkpoint)?.[1] ?? "",
        denoising_strength: endpoint === "img2img" ? Number(body.denoising_strength ?? 0.75) : 0,
        job_timestamp: new Date(state.started).toISOString().replace(/\D/g, "").slice(0, 14),
        infotexts: [`${prompt}\nSteps: ${steps}, Seed: ${seed}`],
        version: "stand-in",
      };
      const answer = JSON.stringify({
        images: [png.toString("base64")],
        parameters: { ...body, init_images: null },
        info: JSON.stringify(info),
      });
      if (fault === "drop-once" && !failedOnce.has(prompt)) {
        failedOnce.add(prompt);
        const cut = new TextEncoder().encode(answer.slice(0, 200));
        // A stream body, so Deno.serve keeps the stated length: the client sees the cut.
        return new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(cut);
              controller.close();
            },
          }),
          {
            headers: {
              "content-type": "application/json",
              "content-length": String(new TextEncoder().encode(answer).length),
            },
          },
        );
      }
      return new Response(answer, { headers: { "content-type": "application/json" } });
    } finally {
      if (state.current === task) drawing--;
      state.finished.add(task);
      if (state.current === task) state.current = undefined;
      Object.assign(state, { job: "", jobCount: 0, step: 0, steps: 0 });
      open--;
      release();
    }
  };

  const handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const path = url.pathname;
    calls.push(`${request.method} ${path}`);
    wake();
    if (path === "/internal/progress" && request.method === "POST") {
      const body = await request.json().catch(() => ({})) as { id_task?: string };
      const id = String(body.id_task ?? "");
      return json({
        active: state.current === id,
        queued: state.pending.has(id),
        completed: state.finished.has(id),
        progress: state.current === id && state.steps > 0 ? state.step / state.steps : null,
        eta: null,
        live_preview: null,
        id_live_preview: -1,
        textinfo: state.current === id ? "In progress" : "Waiting...",
      });
    }
    if (!path.startsWith("/sdapi/v1/")) return json({ detail: "Not Found" }, 404);
    const refused = authorized(request);
    if (refused) {
      unauthorized++;
      return refused;
    }
    const route = path.slice("/sdapi/v1/".length);
    if (request.method === "POST" && (route === "txt2img" || route === "img2img")) {
      return await generate(route, request);
    }
    if (request.method === "GET" && route === "progress") {
      const busy = state.jobCount > 0;
      return json({
        progress: busy ? 0.01 + (state.steps > 0 ? state.step / state.steps : 0) : 0,
        eta_relative: 0,
        state: {
          skipped: false,
          interrupted: state.interrupted,
          job: state.job,
          job_count: state.jobCount,
          job_timestamp: "0",
          job_no: 0,
          sampling_step: state.step,
          sampling_steps: state.steps,
        },
        current_image: null,
        textinfo: null,
      });
    }
    if (request.method === "POST" && route === "interrupt") {
      if (state.jobCount > 0) state.interrupted = true;
      for (const release of releases.splice(0)) release();
      return json({});
    }
    if (request.method === "GET" && route === "sd-models") {
      return json(checkpoints.map((title) => ({
        title,
        model_name: title.replace(/\s*\[[0-9a-f]+\]$/i, "").replace(/\.(safetensors|ckpt)$/i, ""),
        hash: /\[([0-9a-f]+)\]$/.exec(title)?.[1] ?? null,
        sha256: null,
        filename: `/models/Stable-diffusion/${title.replace(/\s*\[.*$/, "")}`,
        config: null,
      })));
    }
    if (request.method === "GET" && route === "options") {
      return json({ sd_model_checkpoint: checkpoints[0], samples_format: "png" });
    }
    if (request.method === "GET" && route === "samplers") {
      return json(SAMPLERS.map((name) => ({ name, aliases: [], options: {} })));
    }
    return json({ detail: "Not Found" }, 404);
  };

  let port = options.port ?? 0;
  let server: Deno.HttpServer;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = Deno.serve({
        hostname: "127.0.0.1",
        port,
        onListen: (address) => {
          port = address.port;
          resolve();
        },
      }, handler);
    });
  await listen();

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    calls,
    get unauthorized() {
      return unauthorized;
    },
    get maxOpen() {
      return maxOpen;
    },
    get maxDrawing() {
      return maxDrawing;
    },
    received(count) {
      return until(() => requests.length >= count);
    },
    started(count) {
      return until(() => startedCount >= count);
    },
    called(pattern, count = 1) {
      return until(() => calls.filter((c) => pattern.test(c)).length >= count);
    },
    hold() {
      held = true;
    },
    release() {
      held = false;
      for (const release of releases.splice(0)) release();
    },
    async restart() {
      state.interrupted = true;
      for (const release of releases.splice(0)) release();
      await server.shutdown();
      await listen();
    },
    async close() {
      closing.abort();
      state.interrupted = true;
      for (const release of releases.splice(0)) release();
      await server.shutdown();
    },
  };
}

/** Resolves once `ready()` holds, looked at after every call and every start. */
function _until(waiters: Array<() => void>, ready: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const look = () => (ready() ? resolve() : waiters.push(look));
    look();
  });
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--port");
  const standIn = await startA1111StandIn({
    port: at >= 0 ? Number(Deno.args[at + 1]) : 7860,
    stepMs: 20,
  });
  // deno-lint-ignore no-console
  console.log(`AUTOMATIC1111 stand-in at ${standIn.url}`);
  Deno.addSignalListener("SIGINT", () => void standIn.close().then(() => Deno.exit(0)));
}
