/**
 * A local stand-in for a ComfyUI server, so the ComfyUI provider and the CLI run without a GPU.
 *
 * Built from ComfyUI's own source (github.com/comfyanonymous/ComfyUI; the stored copies read were
 * older than the `prompt_id` field, whose handling — `validate_job_id(json_data["prompt_id"])` if
 * given, else a new uuid — comes from the current `post_prompt`, as is the `missing_node_type`
 * error with `extra_info.node_id`): the routes of `server.py`
 * (`POST /prompt` taking `prompt`, `client_id` and the client's own `prompt_id`; `GET /queue`;
 * `POST /queue` with `delete`; `GET /history/{prompt_id}`; `POST /interrupt`; `POST
 * /upload/image`; `GET /view`; `GET /object_info/{class}`; `GET /ws?clientId=…`, which sends the
 * new client its `status` first), the validation of `execution.py` (`validate_prompt`: a 400 with
 * `error` and per-node `node_errors` — `missing_node_type`, `required_input_missing`,
 * `value_not_in_list`, `value_bigger_than_max`, `return_type_mismatch`, and a link to a node the
 * prompt lacks reported as `exception_during_inner_validation`), the order of the messages the
 * prompt worker sends its client (`execution_start`, `execution_cached`, `executing` per node,
 * `progress` per sampler step, `executed`, `execution_success`, then `executing` with `node: null`
 * once the history has the entry; `execution_error` or `execution_interrupted` instead), and the
 * history entry's `status` with its `messages`, as `script_examples/websockets_api_example.py`
 * reads them. One prompt runs at a time, as on one GPU.
 *
 * Faults: a token in any text input of the workflow, e.g. `[comfyui:execution-error]`, or
 * {@linkcode ComfyStandIn.inject}. See {@linkcode COMFY_FAULTS}. {@linkcode ComfyStandIn.restart}
 * is a server restart: it stops listening, forgets its queue and history, and listens again on
 * the same port.
 *
 * Images are real PNGs made with sharp at the size of the workflow's empty latent (or of the
 * uploaded image, for image-to-image), coloured by the prompt text and the seed.
 *
 * Run as a script: `deno run -A tests/comfyui_standin.ts --port 8188`, then point retake at it
 * with `COMFYUI_BASE_URL=<printed url>`.
 *
 * @module
 */
import sharp from "sharp";

/** Scripted failure modes; `-once` ones fail the first prompt with that text only. */
export const COMFY_FAULTS = [
  /** `POST /prompt` answers 400 with `node_errors` (a custom validation of the sampler fails). */
  "node-errors",
  /** The sampler raises: `execution_error`, and a history entry with `status_str: "error"`. */
  "execution-error",
  "execution-error-once",
  /** The server closes the client's WebSocket right after `execution_start`. */
  "drop-ws",
  /** The prompt runs until interrupted (or the stand-in closes). */
  "hang",
] as const;

/** One scripted failure mode. */
export type ComfyFault = typeof COMFY_FAULTS[number];

/** Options for {@linkcode startComfyStandIn}. */
export interface ComfyStandInOptions {
  /** Port on 127.0.0.1; 0 picks a free one. @default {0} */
  port?: number;
  /** Time one sampler step takes, in ms. @default {0} */
  stepMs?: number;
  /** Checkpoint files the server has (CheckpointLoaderSimple). @default {["sd_xl_base_1.0.safetensors"]} */
  checkpoints?: string[];
  /** Diffusion model files the server has (UNETLoader). @default {["flux1-dev.safetensors"]} */
  unets?: string[];
  /**
   * Act as a server older than the `prompt_id` field: choose its own id for every prompt.
   * @default {false}
   */
  ownIds?: boolean;
}

/** What the stand-in saw of one accepted `POST /prompt`. */
export interface ComfySubmit {
  promptId: string;
  /** The `prompt_id` the client sent, if any. */
  askedId?: string;
  clientId?: string;
  /** Every text input of the workflow (the prompts, the negative prompt). */
  texts: string[];
  graph: Record<string, { class_type: string; inputs: Record<string, unknown> }>;
}

/** A running stand-in. */
export interface ComfyStandIn {
  url: string;
  /** Every `POST /prompt` it accepted, in order. */
  submits: ComfySubmit[];
  /** Every `POST /prompt` it refused with a 400. */
  refusals: number;
  /** Every HTTP call, as `METHOD /path`, without the query. */
  calls: string[];
  /** Prompt ids interrupted (`POST /interrupt` while they ran). */
  interrupted: string[];
  /** Prompt ids taken out of the queue (`POST /queue` with `delete`). */
  deleted: string[];
  /** Files uploaded to the input folder, by name. */
  uploads: Map<string, Uint8Array>;
  /** The most prompts it ever ran at once (one GPU: 1). */
  readonly maxRunning: number;
  /** The most prompts it ever had running or waiting at once. */
  readonly maxQueued: number;
  /** Resolves once it has accepted `count` prompts in all. */
  submitted(count: number): Promise<void>;
  /** Resolves once it has seen `count` calls matching `call` (`GET /history/…`, say). */
  called(pattern: RegExp, count?: number): Promise<void>;
  /** Prompts finish only after {@linkcode ComfyStandIn.release}; they run until then. */
  hold(): void;
  release(): void;
  /** Fails the next `times` prompts with `fault` (`node-errors` at submit). */
  inject(fault: ComfyFault, times?: number): void;
  /** A server restart: forgets the queue, the history and the sockets; same port after. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

interface NodeDef {
  required: Record<string, unknown[]>;
  optional?: Record<string, unknown[]>;
  output: string[];
  outputNode?: boolean;
}

const SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "ddim"];
const SCHEDULERS = ["normal", "karras", "exponential", "simple", "beta"];
const INT = (min: number, max: number, def = min) => ["INT", { default: def, min, max }];
const FLOAT = (min: number, max: number, def = min) => ["FLOAT", { default: def, min, max }];
const SEED = INT(0, Number.MAX_SAFE_INTEGER);

/** The node types this server has, with the inputs `/object_info` describes. */
function _nodeTypes(
  checkpoints: string[],
  unets: string[],
  inputs: () => string[],
): Record<string, NodeDef> {
  return {
    CheckpointLoaderSimple: {
      required: { ckpt_name: [checkpoints] },
      output: ["MODEL", "CLIP", "VAE"],
    },
    UNETLoader: {
      required: { unet_name: [unets], weight_dtype: [["default", "fp8_e4m3fn", "fp8_e5m2"]] },
      output: ["MODEL"],
    },
    DualCLIPLoader: {
      required: {
        clip_name1: [["clip_l.safetensors", "t5xxl_fp16.safetensors"]],
        clip_name2: [["clip_l.safetensors", "t5xxl_fp16.safetensors"]],
        type: [["sdxl", "sd3", "flux"]],
      },
      output: ["CLIP"],
    },
    VAELoader: {
      required: { vae_name: [["ae.safetensors", "sdxl_vae.safetensors"]] },
      output: ["VAE"],
    },
    CLIPTextEncode: {
      required: { text: ["STRING", { multiline: true }], clip: ["CLIP"] },
      output: ["CONDITIONING"],
    },
    FluxGuidance: {
      required: { conditioning: ["CONDITIONING"], guidance: FLOAT(0, 100, 3.5) },
      output: ["CONDITIONING"],
    },
    EmptyLatentImage: {
      required: {
        width: INT(16, 16384, 512),
        height: INT(16, 16384, 512),
        batch_size: INT(1, 4096, 1),
      },
      output: ["LATENT"],
    },
    EmptySD3LatentImage: {
      required: {
        width: INT(16, 16384, 1024),
        height: INT(16, 16384, 1024),
        batch_size: INT(1, 4096, 1),
      },
      output: ["LATENT"],
    },
    KSampler: {
      required: {
        model: ["MODEL"],
        seed: SEED,
        steps: INT(1, 10000, 20),
        cfg: FLOAT(0, 100, 8),
        sampler_name: [SAMPLERS],
        // The newer form of a list input.
        scheduler: ["COMBO", { options: SCHEDULERS }],
        positive: ["CONDITIONING"],
        negative: ["CONDITIONING"],
        latent_image: ["LATENT"],
        denoise: FLOAT(0, 1, 1),
      },
      output: ["LATENT"],
    },
    RandomNoise: { required: { noise_seed: SEED }, output: ["NOISE"] },
    KSamplerSelect: { required: { sampler_name: [SAMPLERS] }, output: ["SAMPLER"] },
    BasicScheduler: {
      required: {
        model: ["MODEL"],
        scheduler: ["COMBO", { options: SCHEDULERS }],
        steps: INT(1, 10000, 20),
        denoise: FLOAT(0, 1, 1),
      },
      output: ["SIGMAS"],
    },
    BasicGuider: {
      required: { model: ["MODEL"], conditioning: ["CONDITIONING"] },
      output: ["GUIDER"],
    },
    SamplerCustomAdvanced: {
      required: {
        noise: ["NOISE"],
        guider: ["GUIDER"],
        sampler: ["SAMPLER"],
        sigmas: ["SIGMAS"],
        latent_image: ["LATENT"],
      },
      output: ["LATENT", "LATENT"],
    },
    VAEDecode: { required: { samples: ["LATENT"], vae: ["VAE"] }, output: ["IMAGE"] },
    VAEEncode: { required: { pixels: ["IMAGE"], vae: ["VAE"] }, output: ["LATENT"] },
    LoadImage: {
      get required() {
        return { image: [inputs(), { image_upload: true }] };
      },
      output: ["IMAGE", "MASK"],
    },
    SaveImage: {
      required: { images: ["IMAGE"], filename_prefix: ["STRING", { default: "ComfyUI" }] },
      output: [],
      outputNode: true,
    },
    PreviewImage: { required: { images: ["IMAGE"] }, output: [], outputNode: true },
  };
}

type Graph = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

interface Job {
  number: number;
  id: string;
  graph: Graph;
  extra: Record<string, unknown>;
  outputs: string[];
  clientId?: string;
  faults: Set<ComfyFault>;
  interrupt?: () => void;
}

interface HistoryEntry {
  prompt: unknown[];
  outputs: Record<string, { images: Array<{ filename: string; subfolder: string; type: string }> }>;
  status: {
    status_str: string;
    completed: boolean;
    messages: Array<[string, Record<string, unknown>]>;
  };
  meta: Record<string, unknown>;
}

/** Starts a stand-in on 127.0.0.1. */
export async function startComfyStandIn(options: ComfyStandInOptions = {}): Promise<ComfyStandIn> {
  const stepMs = options.stepMs ?? 0;
  const checkpoints = options.checkpoints ?? ["sd_xl_base_1.0.safetensors"];
  const unets = options.unets ?? ["flux1-dev.safetensors"];
  const files = new Map<string, Uint8Array>();
  const uploads = new Map<string, Uint8Array>();
  const types = _nodeTypes(checkpoints, unets, () => [...uploads.keys()]);
  const submits: ComfySubmit[] = [];
  const calls: string[] = [];
  const interrupted: string[] = [];
  const deleted: string[] = [];
  const injected: ComfyFault[] = [];
  const failedOnce = new Set<string>();
  const waiters: Array<() => void> = [];
  let refusals = 0;
  let maxRunning = 0;
  let maxQueued = 0;
  let held = false;
  const releaseHeld: Array<() => void> = [];
  let fileCounter = 0;

  // What a restart forgets.
  let queue: Job[] = [];
  let running: Job | undefined;
  let history = new Map<string, HistoryEntry>();
  let sockets = new Map<string, WebSocket>();
  let number = 0;
  let generation = 0;
  let wakeWorker: (() => void) | undefined;
  const closing = new AbortController();

  const wake = () => {
    for (const waiter of waiters.splice(0)) waiter();
  };
  const send = (clientId: string | undefined, type: string, data: Record<string, unknown>) => {
    const socket = clientId === undefined ? undefined : sockets.get(clientId);
    if (socket?.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type, data }));
  };
  const broadcastStatus = () => {
    const remaining = queue.length + (running ? 1 : 0);
    maxQueued = Math.max(maxQueued, remaining);
    for (const [sid] of sockets) {
      send(sid, "status", { status: { exec_info: { queue_remaining: remaining } } });
    }
  };

  /** `execution.validate_prompt`, for the checks this server's nodes need. */
  const validate = (
    graph: Graph,
  ): { error: Record<string, unknown>; nodeErrors: Record<string, unknown> } | {
    outputs: string[];
  } => {
    for (const [id, node] of Object.entries(graph)) {
      if (typeof node?.class_type !== "string") {
        return {
          error: {
            type: "missing_node_type",
            message:
              `Node '#${id}' has no class_type. The workflow may be corrupted or a custom node may be missing.`,
            details: `Node ID '#${id}'`,
            extra_info: { node_id: id },
          },
          nodeErrors: {},
        };
      }
      if (!(node.class_type in types)) {
        return {
          error: {
            type: "missing_node_type",
            message: `Node '${node.class_type}' not found. The custom node may not be installed.`,
            details: `Node ID '#${id}'`,
            extra_info: { node_id: id, class_type: node.class_type, node_title: node.class_type },
          },
          nodeErrors: {},
        };
      }
    }
    const outputs = Object.keys(graph).filter((id) => types[graph[id]!.class_type]!.outputNode);
    if (outputs.length === 0) {
      return {
        error: {
          type: "prompt_no_outputs",
          message: "Prompt has no outputs",
          details: "",
          extra_info: {},
        },
        nodeErrors: {},
      };
    }
    const nodeErrors: Record<
      string,
      { errors: unknown[]; dependent_outputs: string[]; class_type: string }
    > = {};
    const validated = new Map<string, boolean>();
    const check = (id: string, output: string): boolean => {
      if (validated.has(id)) return validated.get(id)!;
      validated.set(id, true);
      const node = graph[id]!;
      const def = types[node.class_type]!;
      const errors: unknown[] = [];
      const specs = { ...def.required, ...def.optional };
      for (const [name, spec] of Object.entries(specs)) {
        const value = node.inputs?.[name];
        if (value === undefined) {
          if (name in def.required) {
            errors.push({
              type: "required_input_missing",
              message: "Required input is missing",
              details: name,
              extra_info: { input_name: name },
            });
          }
          continue;
        }
        const [kind, extra] = spec as [unknown, Record<string, unknown> | undefined];
        if (Array.isArray(value)) {
          const [from, slot] = value as [string, number];
          const linked = graph[from];
          if (linked === undefined) {
            // ComfyUI reads the linked node's class_type before its try block: a KeyError.
            errors.push({
              type: "exception_during_inner_validation",
              message: "Exception when validating inner node",
              details: `'${from}'`,
              extra_info: { input_name: name, exception_type: "KeyError", linked_node: value },
            });
            continue;
          }
          const produced = types[linked.class_type]!.output[slot];
          if (produced !== kind) {
            errors.push({
              type: "return_type_mismatch",
              message: "Return type mismatch between linked nodes",
              details: `${name}, ${produced} != ${kind}`,
              extra_info: { input_name: name, received_type: produced, linked_node: value },
            });
            continue;
          }
          if (!check(from, output)) validated.set(id, false);
          continue;
        }
        const choices = Array.isArray(kind)
          ? kind
          : kind === "COMBO"
          ? (extra?.options as unknown[])
          : undefined;
        if (choices !== undefined && !choices.includes(value)) {
          errors.push({
            type: "value_not_in_list",
            message: "Value not in list",
            details: `${name}: '${value}' not in ${
              choices.length > 20 ? `(list of length ${choices.length})` : JSON.stringify(choices)
            }`,
            extra_info: { input_name: name, received_value: value },
          });
          continue;
        }
        if (kind === "INT" || kind === "FLOAT") {
          const n = Number(value);
          if (!Number.isFinite(n) || (kind === "INT" && !Number.isInteger(n))) {
            errors.push({
              type: "invalid_input_type",
              message: `Failed to convert an input value to a ${kind} value`,
              details: `${name}, ${value}`,
              extra_info: { input_name: name, received_value: value },
            });
          } else if (extra?.max !== undefined && n > Number(extra.max)) {
            errors.push({
              type: "value_bigger_than_max",
              message: `Value ${n} bigger than max of ${extra.max}`,
              details: name,
              extra_info: { input_name: name, received_value: value },
            });
          } else if (extra?.min !== undefined && n < Number(extra.min)) {
            errors.push({
              type: "value_smaller_than_min",
              message: `Value ${n} smaller than min of ${extra.min}`,
              details: name,
              extra_info: { input_name: name, received_value: value },
            });
          }
        }
      }
      if (errors.length > 0) {
        validated.set(id, false);
        const entry = nodeErrors[id] ??= {
          errors,
          dependent_outputs: [],
          class_type: node.class_type,
        };
        if (!entry.dependent_outputs.includes(output)) entry.dependent_outputs.push(output);
      }
      return validated.get(id)!;
    };
    const good = outputs.filter((o) => check(o, o));
    if (good.length === 0 || Object.keys(nodeErrors).length > 0) {
      return {
        error: {
          type: "prompt_outputs_failed_validation",
          message: "Prompt outputs failed validation",
          details: "",
          extra_info: {},
        },
        nodeErrors,
      };
    }
    return { outputs: good };
  };

  const texts = (graph: Graph) =>
    Object.values(graph).flatMap((n) =>
      Object.values(n.inputs ?? {}).filter((v): v is string => typeof v === "string")
    );
  const faultsOf = (graph: Graph): Set<ComfyFault> => {
    const found = new Set<ComfyFault>();
    const all = texts(graph).join("\n");
    for (const match of all.matchAll(/\[comfyui:([a-z-]+)\]/g)) {
      const fault = match[1] as ComfyFault;
      if (!COMFY_FAULTS.includes(fault)) continue;
      if (fault.endsWith("-once")) {
        if (failedOnce.has(`${fault}\0${all}`)) continue;
        failedOnce.add(`${fault}\0${all}`);
        found.add(fault.replace(/-once$/, "") as ComfyFault);
      } else found.add(fault);
    }
    return found;
  };

  /** One GPU: the worker runs the queue's prompts one after the other. */
  const worker = async (mine: number) => {
    while (!closing.signal.aborted && mine === generation) {
      const job = queue.shift();
      if (job === undefined) {
        await new Promise<void>((resolve) => (wakeWorker = resolve));
        continue;
      }
      running = job;
      maxRunning = Math.max(maxRunning, 1);
      broadcastStatus();
      await execute(job, mine).catch(() => {});
      if (mine !== generation) return;
      running = undefined;
      broadcastStatus();
    }
  };

  /** The prompt worker's run of one prompt, with the messages it sends its client. */
  const execute = async (job: Job, mine: number) => {
    const messages: Array<[string, Record<string, unknown>]> = [];
    const tell = (type: string, data: Record<string, unknown>, keep = false) => {
      if (mine !== generation) return;
      if (keep) messages.push([type, data]);
      send(job.clientId, type, data);
    };
    let stop = false;
    const stopped = new Promise<void>((resolve) => {
      job.interrupt = () => {
        stop = true;
        resolve();
      };
    });
    const pause = (ms: number) =>
      Promise.race([
        new Promise<void>((r) => setTimeout(r, ms)),
        stopped,
        _aborted(closing.signal),
      ]);
    tell("execution_start", { prompt_id: job.id, timestamp: Date.now() }, true);
    tell("execution_cached", { nodes: [], prompt_id: job.id, timestamp: Date.now() }, true);
    if (job.faults.has("drop-ws")) {
      const socket = job.clientId === undefined ? undefined : sockets.get(job.clientId);
      socket?.close();
    }
    const order = _executionOrder(job.graph, job.outputs);
    const end = (status: "success" | "error", outputs: HistoryEntry["outputs"]) => {
      if (mine !== generation) return;
      history.set(job.id, {
        prompt: [job.number, job.id, job.graph, job.extra, job.outputs],
        outputs,
        status: { status_str: status, completed: status === "success", messages },
        meta: {},
      });
    };
    for (const id of order) {
      if (stop || closing.signal.aborted || mine !== generation) break;
      const node = job.graph[id]!;
      tell("executing", { node: id, display_node: id, prompt_id: job.id });
      if (node.class_type === "KSampler" || node.class_type === "SamplerCustomAdvanced") {
        if (job.faults.has("execution-error")) {
          tell("execution_error", {
            prompt_id: job.id,
            node_id: id,
            node_type: node.class_type,
            executed: [],
            exception_message: "Allocation on device: CUDA out of memory (stand-in fault)",
            exception_type: "torch.OutOfMemoryError",
            traceback: [],
            current_inputs: {},
            current_outputs: {},
          }, true);
          end("error", {});
          tell("executing", { node: null, prompt_id: job.id });
          return;
        }
        const steps = _steps(job.graph, id);
        for (let step = 1; step <= steps && !stop; step++) {
          await pause(stepMs);
          tell("progress", { value: step, max: steps, prompt_id: job.id, node: id });
        }
        while (
          (job.faults.has("hang") || held) && !stop && !closing.signal.aborted &&
          mine === generation
        ) {
          await Promise.race([
            new Promise<void>((resolve) => releaseHeld.push(resolve)),
            stopped,
            _aborted(closing.signal),
          ]);
          if (!held && !job.faults.has("hang")) break;
        }
      }
    }
    if (mine !== generation || closing.signal.aborted) return;
    if (stop) {
      interrupted.push(job.id);
      tell("execution_interrupted", {
        prompt_id: job.id,
        node_id: order[0],
        node_type: "",
        executed: [],
      }, true);
      end("error", {});
      tell("executing", { node: null, prompt_id: job.id });
      return;
    }
    const outputs: HistoryEntry["outputs"] = {};
    for (const id of job.outputs) {
      const node = job.graph[id]!;
      const image = await _render(job.graph, uploads);
      const temp = node.class_type === "PreviewImage";
      const prefix = temp ? "ComfyUI_temp" : String(node.inputs.filename_prefix ?? "ComfyUI");
      const filename = `${prefix}_${String(++fileCounter).padStart(5, "0")}_.png`;
      const type = temp ? "temp" : "output";
      files.set(`${type}/${filename}`, image);
      outputs[id] = { images: [{ filename, subfolder: "", type }] };
      tell("executed", { node: id, display_node: id, output: outputs[id], prompt_id: job.id });
    }
    tell("execution_success", { prompt_id: job.id, timestamp: Date.now() }, true);
    end("success", outputs);
    // `main.py`'s prompt worker: the history has the entry before the client hears `node: null`.
    tell("executing", { node: null, prompt_id: job.id });
  };

  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

  const handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const path = url.pathname.replace(/^\/api(?=\/)/, "");
    calls.push(`${request.method} ${path}`);
    wake();
    if (path === "/ws" && request.headers.get("upgrade") === "websocket") {
      const { socket, response } = Deno.upgradeWebSocket(request);
      const sid = url.searchParams.get("clientId") || crypto.randomUUID().replaceAll("-", "");
      // Reusing an existing session: the old socket is dropped.
      sockets.get(sid)?.close();
      const mine = sockets;
      mine.set(sid, socket);
      socket.addEventListener("open", () => {
        const remaining = queue.length + (running ? 1 : 0);
        send(sid, "status", { status: { exec_info: { queue_remaining: remaining } }, sid });
      });
      socket.addEventListener("close", () => {
        if (mine.get(sid) === socket) mine.delete(sid);
      });
      return response;
    }
    if (request.method === "POST" && path === "/prompt") {
      const body = await request.json().catch(() => ({})) as Record<string, unknown>;
      const graph = body.prompt as Graph | undefined;
      if (graph === undefined || graph === null || typeof graph !== "object") {
        refusals++;
        return json({
          error: { type: "no_prompt", message: "No prompt provided", details: "", extra_info: {} },
          node_errors: {},
        }, 400);
      }
      const faults = faultsOf(graph);
      const next = injected.shift();
      if (next !== undefined) faults.add(next);
      if (faults.has("node-errors")) {
        refusals++;
        const sampler = Object.keys(graph).find((id) =>
          /Sampler|Scheduler/.test(graph[id]!.class_type)
        ) ?? Object.keys(graph)[0]!;
        return json({
          error: {
            type: "prompt_outputs_failed_validation",
            message: "Prompt outputs failed validation",
            details: "",
            extra_info: {},
          },
          node_errors: {
            [sampler]: {
              errors: [{
                type: "custom_validation_failed",
                message: "Custom validation failed for node",
                details: "steps - the stand-in's sampler refuses this workflow",
                extra_info: { input_name: "steps" },
              }],
              dependent_outputs: [],
              class_type: graph[sampler]!.class_type,
            },
          },
        }, 400);
      }
      const valid = validate(graph);
      if ("error" in valid) {
        refusals++;
        return json({ error: valid.error, node_errors: valid.nodeErrors }, 400);
      }
      const asked = typeof body.prompt_id === "string" ? body.prompt_id : undefined;
      const id = !options.ownIds && asked !== undefined ? asked : crypto.randomUUID();
      const clientId = typeof body.client_id === "string" ? body.client_id : undefined;
      const job: Job = {
        number: number++,
        id,
        graph,
        extra: { ...(clientId !== undefined && { client_id: clientId }) },
        outputs: valid.outputs,
        ...(clientId !== undefined && { clientId }),
        faults,
      };
      queue.push(job);
      submits.push({
        promptId: id,
        ...(asked !== undefined && { askedId: asked }),
        ...(clientId !== undefined && { clientId }),
        texts: texts(graph),
        graph,
      });
      broadcastStatus();
      wakeWorker?.();
      wake();
      return json({ prompt_id: id, number: job.number, node_errors: {} });
    }
    if (request.method === "GET" && path === "/prompt") {
      return json({ exec_info: { queue_remaining: queue.length + (running ? 1 : 0) } });
    }
    if (request.method === "GET" && path === "/queue") {
      const item = (job: Job) => [job.number, job.id, job.graph, job.extra, job.outputs];
      return json({
        queue_running: running ? [item(running)] : [],
        queue_pending: queue.map(item),
      });
    }
    if (request.method === "POST" && path === "/queue") {
      const body = await request.json().catch(() => ({})) as Record<string, unknown>;
      if (body.clear === true) queue = [];
      for (const id of Array.isArray(body.delete) ? body.delete : []) {
        const index = queue.findIndex((job) => job.id === id);
        if (index >= 0) {
          queue.splice(index, 1);
          deleted.push(String(id));
        }
      }
      broadcastStatus();
      return new Response(null, { status: 200 });
    }
    if (request.method === "POST" && path === "/interrupt") {
      const body = await request.json().catch(() => ({})) as Record<string, unknown>;
      const only = typeof body.prompt_id === "string" ? body.prompt_id : undefined;
      if (running !== undefined && (only === undefined || only === running.id)) {
        running.interrupt?.();
      }
      return new Response(null, { status: 200 });
    }
    const historyMatch = /^\/history(?:\/([^/]+))?$/.exec(path);
    if (request.method === "GET" && historyMatch) {
      const id = historyMatch[1] === undefined ? undefined : decodeURIComponent(historyMatch[1]);
      if (id === undefined) return json(Object.fromEntries(history));
      const entry = history.get(id);
      return json(entry === undefined ? {} : { [id]: entry });
    }
    if (request.method === "GET" && path === "/view") {
      const filename = url.searchParams.get("filename") ?? "";
      if (filename === "" || filename.startsWith("/") || filename.includes("..")) {
        return new Response(null, { status: 400 });
      }
      const type = url.searchParams.get("type") ?? "output";
      const bytes = type === "input" ? uploads.get(filename) : files.get(`${type}/${filename}`);
      if (bytes === undefined) return new Response(null, { status: 404 });
      return new Response(bytes as BodyInit, {
        headers: { "content-type": "image/png", "content-disposition": `filename="${filename}"` },
      });
    }
    if (request.method === "POST" && path === "/upload/image") {
      const form = await request.formData();
      const image = form.get("image");
      if (!(image instanceof File) || image.name === "") return new Response(null, { status: 400 });
      const subfolder = String(form.get("subfolder") ?? "");
      const name = subfolder === "" ? image.name : `${subfolder}/${image.name}`;
      uploads.set(name, new Uint8Array(await image.arrayBuffer()));
      return json({ name: image.name, subfolder, type: String(form.get("type") ?? "input") });
    }
    const infoMatch = /^\/object_info(?:\/([^/]+))?$/.exec(path);
    if (request.method === "GET" && infoMatch) {
      const info = (name: string) => {
        const def = types[name]!;
        return {
          input: { required: def.required, ...(def.optional && { optional: def.optional }) },
          output: def.output,
          name,
          display_name: name,
          output_node: def.outputNode === true,
          category: "stand-in",
        };
      };
      const only = infoMatch[1] === undefined ? undefined : decodeURIComponent(infoMatch[1]);
      if (only === undefined) {
        return json(Object.fromEntries(Object.keys(types).map((n) => [n, info(n)])));
      }
      return json(only in types ? { [only]: info(only) } : {});
    }
    if (request.method === "GET" && path === "/system_stats") {
      return json({ system: { os: "posix", comfyui_version: "stand-in" }, devices: [] });
    }
    return new Response("404: Not Found", { status: 404 });
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
  void worker(generation);

  const stopSockets = () => {
    for (const socket of sockets.values()) {
      try {
        socket.close();
      } catch {
        // Closing already.
      }
    }
  };

  return {
    url: `http://127.0.0.1:${port}`,
    submits,
    get refusals() {
      return refusals;
    },
    calls,
    interrupted,
    deleted,
    uploads,
    get maxRunning() {
      return maxRunning;
    },
    get maxQueued() {
      return maxQueued;
    },
    submitted(count) {
      return until(() => submits.length >= count);
    },
    called(pattern, count = 1) {
      return until(() => calls.filter((c) => pattern.test(c)).length >= count);
    },
    hold() {
      held = true;
    },
    release() {
      held = false;
      for (const resolve of releaseHeld.splice(0)) resolve();
    },
    inject(fault, times = 1) {
      for (let i = 0; i < times; i++) injected.push(fault);
    },
    async restart() {
      generation++;
      running?.interrupt?.();
      stopSockets();
      await server.shutdown();
      queue = [];
      running = undefined;
      history = new Map();
      sockets = new Map();
      wakeWorker?.();
      await listen();
      void worker(generation);
    },
    async close() {
      closing.abort();
      generation++;
      running?.interrupt?.();
      wakeWorker?.();
      for (const resolve of releaseHeld.splice(0)) resolve();
      stopSockets();
      await server.shutdown();
    },
  };

  /** Resolves once `ready()` holds, looked at after every call and every accepted prompt. */
  function until(ready: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const look = () => (ready() ? resolve() : waiters.push(look));
      look();
    });
  }
}

/** The nodes an output depends on, dependencies first, as ComfyUI runs them. */
function _executionOrder(graph: Graph, outputs: string[]): string[] {
  const order: string[] = [];
  const visit = (id: string) => {
    if (order.includes(id) || graph[id] === undefined) return;
    for (const value of Object.values(graph[id]!.inputs ?? {})) {
      if (Array.isArray(value) && typeof value[0] === "string") visit(value[0]);
    }
    order.push(id);
  };
  for (const output of outputs) visit(output);
  return order;
}

/** The sampler's step count: its own `steps`, or its scheduler's. */
function _steps(graph: Graph, sampler: string): number {
  const own = graph[sampler]!.inputs.steps;
  if (typeof own === "number") return own;
  const scheduler = Object.values(graph).find((n) => typeof n.inputs.steps === "number");
  return Number(scheduler?.inputs.steps ?? 4);
}

/** A PNG at the latent's size (or the uploaded image's), coloured by the prompt and the seed. */
async function _render(graph: Graph, uploads: Map<string, Uint8Array>): Promise<Uint8Array> {
  const nodes = Object.values(graph);
  const latent = nodes.find((n) =>
    typeof n.inputs.width === "number" && typeof n.inputs.height === "number"
  );
  let width = Number(latent?.inputs.width ?? 0);
  let height = Number(latent?.inputs.height ?? 0);
  const load = nodes.find((n) => n.class_type === "LoadImage");
  if (!latent && load !== undefined) {
    const source = uploads.get(String(load.inputs.image));
    const meta = source === undefined ? undefined : await sharp(source).metadata();
    width = meta?.width ?? 512;
    height = meta?.height ?? 512;
  }
  width ||= 512;
  height ||= 512;
  const text = nodes.filter((n) => n.class_type === "CLIPTextEncode").map((n) =>
    String(n.inputs.text)
  ).join("|");
  const seed =
    nodes.map((n) => n.inputs.seed ?? n.inputs.noise_seed).find((s) => typeof s === "number") ?? 0;
  let hash = 2166136261;
  for (const char of `${text}#${seed}`) hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
  const background = { r: hash & 0xff, g: (hash >>> 8) & 0xff, b: (hash >>> 16) & 0xff };
  const png = await sharp({ create: { width, height, channels: 3, background } }).png().toBuffer();
  return new Uint8Array(png);
}

function _aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--port");
  const standIn = await startComfyStandIn({
    port: at >= 0 ? Number(Deno.args[at + 1]) : 8188,
    stepMs: 50,
  });
  // deno-lint-ignore no-console
  console.log(`ComfyUI stand-in at ${standIn.url}`);
  Deno.addSignalListener("SIGINT", () => void standIn.close().then(() => Deno.exit(0)));
}
