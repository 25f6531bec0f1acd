/**
 * ComfyUI as image generator: the user's own workflow, filled in for each round, queued on the
 * user's own server, followed on its WebSocket, and fetched from its history.
 *
 * A generation is a prompt in ComfyUI's queue, and retake names it itself: it chooses the
 * `prompt_id`, has the pipeline record it in the prompt's folder, and only then submits. A run
 * killed mid-generation (`kill -9`, a power cut) leaves that id on disk, and the next run asks
 * `/history/{id}` and `/queue` for it — fetching its image, or waiting for it to finish — rather
 * than queueing the same work twice. Only a server that forgot it (restarted) gets it again.
 *
 * On Ctrl-C (a hard stop) or past `--timeout`, the prompt is taken out of ComfyUI's queue, or
 * interrupted if it already runs, so the GPU does not go on with work nobody will collect.
 *
 * Images cost nothing; the time the GPU spent on each is recorded as `inferenceMs`, the time it
 * waited in ComfyUI's queue as `queueMs`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { DEFAULT_MAX_DOWNLOAD_BYTES, downloadImage } from "../download.ts";
import { InputError, ProviderError } from "../../errors.ts";
import { escapeControls } from "../../util/terminal_text.ts";
import { positiveOption } from "../_http.ts";
import { withImageSize } from "../_image_size.ts";
import type { GeneratedImage, GenerateRequest, ImageGenerator } from "../provider.ts";
import { ComfyApi, type ComfyHistoryEntry, type ComfyImageRef, unreachable } from "./api.ts";
import { ComfySocket } from "./events.ts";
import {
  type Binding,
  fillWorkflow,
  linkOf,
  modelFilesOf,
  sortedIds,
  type Workflow,
  type WorkflowGraph,
  type WorkflowValues,
} from "./workflow.ts";

const PROVIDER = "comfyui";
const log = getLogger(["retake", "comfyui"]);

/** The model id that means "whatever the workflow's own loader loads". */
export const WORKFLOW_MODEL = "workflow";
/** Where ComfyUI listens unless told otherwise. */
export const DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188";
/** Longest wait for the WebSocket to open before following the prompt by polling, in ms. */
const SOCKET_OPEN_MS = 5_000;
/** Longest wait for the calls that stop a prompt after a timeout or a hard stop, in ms. */
const CANCEL_TIMEOUT_MS = 5_000;

/** Options for {@linkcode createComfyGenerator}. */
export interface ComfyGeneratorOptions {
  /** The workflow each image is drawn with (`--workflow`). */
  workflow: Workflow;
  /**
   * The workflow an edit goes through (an image-to-image graph with `{{image}}` in a LoadImage).
   * @default {undefined} (every round is drawn anew)
   */
  editWorkflow?: Workflow | undefined;
  /** The server's root URL. @default {"http://127.0.0.1:8188"} */
  baseUrl?: string | undefined;
  /** `{{steps}}` for prompts that set none. @default {undefined} */
  steps?: number | undefined;
  /**
   * The node whose images are the result. @default {undefined} (the first node that saved an
   * image to ComfyUI's output folder, e.g. SaveImage)
   */
  outputNode?: string | undefined;
  /** Deadline for one generation, queue time included, in ms. @default {120000} */
  timeoutMs?: number | undefined;
  /** Delay between `/history` polls where the WebSocket is not used, in ms. @default {1000} */
  pollIntervalMs?: number | undefined;
  /** Generations sent to the server at once: one GPU runs one at a time. @default {1} */
  maxConcurrency?: number | undefined;
  /** Model names this run asks for (`--model`), checked against the server before the run. */
  models?: readonly string[] | undefined;
  /** Largest image accepted, in bytes. @default {20971520} */
  maxDownloadBytes?: number | undefined;
  /** The fetch every HTTP call goes through. @default {globalThis.fetch} */
  fetch?: typeof fetch | undefined;
}

/**
 * Creates a generator that draws with the user's ComfyUI workflow.
 *
 * @example
 * ```ts ignore
 * const workflow = await readWorkflow("flux.json");
 * const generator = createComfyGenerator({ workflow });
 * const image = await generator.generate(request);
 * ```
 */
export function createComfyGenerator(options: ComfyGeneratorOptions): ImageGenerator {
  const owner = "ComfyUI generator";
  const timeoutMs = positiveOption(owner, "timeoutMs", options.timeoutMs ?? 120_000);
  const pollIntervalMs = positiveOption(owner, "pollIntervalMs", options.pollIntervalMs ?? 1000);
  const maxConcurrency = positiveOption(owner, "maxConcurrency", options.maxConcurrency ?? 1);
  const maxBytes = options.maxDownloadBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const api = new ComfyApi(options.baseUrl ?? DEFAULT_COMFYUI_URL, fetchImpl);
  const main = options.workflow;
  const edit = options.editWorkflow;
  /**
   * Prompts an attempt left on the server when it failed on the way (a network fault, a dropped
   * answer), by the graph they draw: the next attempt at the same graph asks for that prompt
   * instead of queueing the same work again.
   */
  const unfinished = new Map<string, string>();
  const warned = new Set<string>();
  const warnOnce = (key: string, message: string, properties: Record<string, unknown>) => {
    if (warned.has(key)) return;
    warned.add(key);
    log.warn(message, properties);
  };

  return {
    name: PROVIDER,
    maxConcurrency,
    fingerprint: edit === undefined ? main.fingerprint : `${main.fingerprint}+${edit.fingerprint}`,
    editModel: (model) => edit === undefined ? undefined : model,
    check: (signal) => checkServer(signal),
    async generate(request: GenerateRequest): Promise<GeneratedImage> {
      if (request.signal.aborted) throw request.signal.reason;
      const workflow = request.edit !== undefined && edit !== undefined ? edit : main;
      const deadline = new AbortController();
      const timer = setTimeout(
        () =>
          deadline.abort(
            new DOMException(`ComfyUI timed out after ${timeoutMs} ms`, "TimeoutError"),
          ),
        timeoutMs,
      );
      const signal = AbortSignal.any([request.signal, deadline.signal]);
      const job: Job = {};
      try {
        warnUnsent(workflow, request);
        const graph = fillWorkflow(workflow, await valuesFor(workflow, request, signal));
        job.key = JSON.stringify(graph);
        const earlier = unfinished.get(job.key) ?? request.recoverRequestId;
        unfinished.delete(job.key);
        if (earlier !== undefined) {
          job.id = await recoverable(earlier, request.spec.id, signal);
        }
        // One resubmit at most per attempt: for a server that forgot the prompt (restarted).
        for (let resubmits = 0;; resubmits++) {
          if (job.id === undefined) await submit(job, graph, request, signal);
          const entry = await finished(job, signal);
          if (entry !== undefined) {
            return await deliver(job, entry, workflow, graph, request, signal);
          }
          if (resubmits >= 1) {
            throw new ProviderError(
              `Cannot generate with ComfyUI as it lost prompt ${job.id} twice (the server restarted?)`,
              { provider: PROVIDER, retryable: true, requestId: job.id! },
            );
          }
          log.info(
            "ComfyUI no longer has prompt {requestId} of {promptId} (restarted?): queueing it again",
            {
              requestId: job.id,
              promptId: request.spec.id,
            },
          );
          Object.assign(job, { id: undefined, startedAt: undefined, submittedAt: undefined });
        }
      } catch (error) {
        throw await failure(job, request, deadline.signal, error);
      } finally {
        clearTimeout(timer);
        job.socket?.close();
      }
    },
  };

  /** The values of this round, the edit's source image uploaded first. */
  async function valuesFor(
    workflow: Workflow,
    request: GenerateRequest,
    signal: AbortSignal,
  ): Promise<WorkflowValues> {
    const values: WorkflowValues = {
      prompt: request.prompt,
      seed: request.seed,
      width: request.width,
      height: request.height,
      ...(request.negativePrompt !== undefined && { negativePrompt: request.negativePrompt }),
    };
    const steps = request.steps ?? options.steps;
    if (steps !== undefined) values.steps = steps;
    if (request.model !== WORKFLOW_MODEL) values.model = request.model;
    if (request.edit !== undefined && workflow === edit) {
      values.instruction = request.edit.instruction;
      const bytes = await Deno.readFile(request.edit.imagePath);
      const ext = /\.jpe?g$/i.test(request.edit.imagePath) ? "jpg" : "png";
      // One name per source image: the same edit retried uploads over its own file.
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
      const name = `retake-${
        [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("")
      }.${ext}`;
      values.image = await api.upload(bytes, name, signal);
    }
    const missing = [...workflow.targets.entries()].find(([binding, targets]) =>
      values[binding] === undefined && targets.some((t) => !t.mapped) &&
      (binding === "steps" || binding === "seed" || binding === "width" || binding === "height")
    );
    if (missing !== undefined) {
      // The same for every prompt without its own value: the run stops instead of failing each.
      throw new ProviderError(
        `Cannot fill {{${missing[0]}}} in the ComfyUI workflow '${
          escapeControls(workflow.path)
        }' for prompt '${escapeControls(request.spec.id)}' as it has no value: set comfyui.${
          missing[0]
        } in the config, or '${missing[0]}' on every prompt`,
        { provider: PROVIDER, retryable: false, fatal: true },
      );
    }
    return values;
  }

  /** Says once per value what the workflow has no place for. */
  function warnUnsent(workflow: Workflow, request: GenerateRequest): void {
    const has = (b: Binding) => workflow.targets.has(b);
    const path = workflow.path;
    if (request.negativePrompt !== undefined && !has("negativePrompt")) {
      warnOnce(
        `${path}\0negativePrompt`,
        "The ComfyUI workflow {workflow} takes no negative prompt (no negativePrompt placeholder or mapping): the prompts' negativePrompt is not sent (prompt {promptId} is the first)",
        { workflow: path, promptId: request.spec.id },
      );
    }
    if (request.steps !== undefined && !has("steps")) {
      warnOnce(
        `${path}\0steps`,
        "The ComfyUI workflow {workflow} takes no steps (no steps placeholder or mapping): the prompts' steps are not sent (prompt {promptId} is the first)",
        { workflow: path, promptId: request.spec.id },
      );
    }
    if (!has("seed")) {
      warnOnce(
        `${path}\0seed`,
        "The ComfyUI workflow {workflow} takes no seed (no seed placeholder or mapping): its own seed is used, and no seed is recorded",
        { workflow: path },
      );
    }
    if (!has("width") || !has("height")) {
      warnOnce(
        `${path}\0size`,
        "The ComfyUI workflow {workflow} takes no size (no width and height placeholders or mapping): its own image size is used, not --size",
        { workflow: path },
      );
    }
  }

  /**
   * Chooses the prompt's id, has the pipeline record it, and queues it. The WebSocket opens
   * first, so no event of the prompt goes by unheard.
   */
  async function submit(
    job: Job,
    graph: WorkflowGraph,
    request: GenerateRequest,
    signal: AbortSignal,
  ): Promise<void> {
    const promptId = crypto.randomUUID();
    const clientId = `retake-${crypto.randomUUID()}`;
    // On disk before the server has it: a run killed from here on finds it by this id.
    await request.onSubmitting?.(promptId);
    if (signal.aborted) throw signal.reason;
    job.socket?.close();
    job.socket = await ComfySocket.open(api.socketUrl(clientId), signal, SOCKET_OPEN_MS);
    if (job.socket === undefined) {
      log.debug("ComfyUI's WebSocket did not open: following prompt {requestId} by polling", {
        requestId: promptId,
      });
    }
    job.submittedAt = performance.now();
    // Set before the answer: a submit cut off midway may still have reached the queue.
    job.id = promptId;
    const taken = await api.submit(graph, { clientId, promptId }, signal);
    if (taken !== promptId) {
      // A server older than the `prompt_id` field: its own id is the one to record.
      log.debug("ComfyUI queued prompt {requestId} under its own id {takenId}", {
        requestId: promptId,
        takenId: taken,
      });
      job.id = taken;
    }
    log.debug("ComfyUI queued prompt {requestId} for {promptId}", {
      requestId: job.id,
      promptId: request.spec.id,
    });
    request.onAccepted?.(job.id);
  }

  /**
   * The prompt of an earlier run, if the server still has it (finished, running or waiting);
   * undefined when it does not, and a new one is queued.
   */
  async function recoverable(
    requestId: string,
    promptId: string,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    const entry = await api.history(requestId, signal);
    const state = entry !== undefined ? "finished" : await api.queueState(requestId, signal);
    if (state === "absent") {
      log.info(
        "ComfyUI no longer has prompt {requestId} of {promptId} from an interrupted run (restarted?): queueing it again",
        { requestId, promptId },
      );
      return undefined;
    }
    log.info(
      "Recovering ComfyUI prompt {requestId} of {promptId} from an interrupted run ({state})",
      {
        requestId,
        promptId,
        state,
      },
    );
    return requestId;
  }

  /**
   * Waits for the prompt's history entry: on the WebSocket while it is open, then by polling
   * (the socket's `done` comes before the history has the entry). Undefined when the server
   * has the prompt neither in its history nor in its queue.
   */
  async function finished(job: Job, signal: AbortSignal): Promise<ComfyHistoryEntry | undefined> {
    const id = job.id!;
    if (job.socket !== undefined) {
      const outcome = await job.socket.follow(id, signal, (progress) => {
        if (progress.kind === "started") job.startedAt ??= performance.now();
        else {
          log.debug("ComfyUI prompt {requestId}: step {value} of {max}", {
            requestId: id,
            value: progress.value,
            max: progress.max,
            node: progress.node,
          });
        }
      });
      job.socket.close();
      job.socket = undefined;
      if (outcome.kind === "dropped") {
        log.debug("ComfyUI's WebSocket closed before prompt {requestId} ended: polling", {
          requestId: id,
        });
      }
    }
    for (let absentOnce = false;;) {
      const entry = await api.history(id, signal);
      if (entry !== undefined) return entry;
      const state = await api.queueState(id, signal);
      if (state === "running") job.startedAt ??= performance.now();
      if (state === "absent") {
        // It may have ended between the two calls: gone only if the history still lacks it.
        if (absentOnce) return undefined;
        absentOnce = true;
        continue;
      }
      absentOnce = false;
      await _sleep(pollIntervalMs, signal);
    }
  }

  /** The image of a finished prompt, or the error it ended with. */
  async function deliver(
    job: Job,
    entry: ComfyHistoryEntry,
    workflow: Workflow,
    graph: WorkflowGraph,
    request: GenerateRequest,
    signal: AbortSignal,
  ): Promise<GeneratedImage> {
    const requestId = job.id!;
    job.finished = true;
    const endedAt = performance.now();
    if (entry.error !== undefined) {
      const e = entry.error;
      throw new ProviderError(
        `ComfyUI failed prompt ${requestId} at node '${escapeControls(e.node ?? "?")}'${
          e.nodeType ? ` (${escapeControls(e.nodeType)})` : ""
        }: ${e.exceptionType ? `${escapeControls(e.exceptionType)}: ` : ""}${
          escapeControls(e.message.slice(0, 300))
        }`,
        { provider: PROVIDER, retryable: false, requestId },
      );
    }
    if (entry.interrupted || entry.status === "error") {
      throw new ProviderError(
        `ComfyUI stopped prompt ${requestId} before it made an image (interrupted on the server)`,
        { provider: PROVIDER, retryable: true, requestId },
      );
    }
    const image = _chooseImage(entry, workflow, options.outputNode);
    if (image === undefined) {
      throw new ProviderError(
        `Cannot use ComfyUI's result for prompt ${requestId} as the workflow '${
          escapeControls(workflow.path)
        }' saved no image${
          options.outputNode ? ` at node '${escapeControls(options.outputNode)}'` : ""
        }: end it with a SaveImage node, or set comfyui.outputNode to the node that saves the image`,
        { provider: PROVIDER, retryable: false, fatal: true, requestId },
      );
    }
    const download = await downloadImage(api.viewUrl(image), {
      provider: PROVIDER,
      maxBytes,
      allowedOrigins: [api.origin],
      signal,
      timeoutMs,
      fetch: fetchImpl,
      logger: log,
    });
    const sized = await withImageSize(download.data);
    const gpuMs = entry.startedAt !== undefined && entry.endedAt !== undefined
      ? entry.endedAt - entry.startedAt
      : job.startedAt !== undefined
      ? endedAt - job.startedAt
      : undefined;
    const queueMs = job.submittedAt !== undefined && job.startedAt !== undefined
      ? Math.max(0, job.startedAt - job.submittedAt)
      : undefined;
    const files = modelFilesOf(graph);
    log.debug("ComfyUI prompt {requestId} done: queued {queueMs} ms, GPU {inferenceMs} ms", {
      requestId,
      promptId: request.spec.id,
      queueMs,
      inferenceMs: gpuMs,
      image: image.filename,
    });
    return {
      data: sized.data,
      format: download.format,
      width: sized.size?.width ?? request.width,
      height: sized.size?.height ?? request.height,
      // Recorded only where the workflow took it: else the workflow's own seed made the image.
      ...(workflow.targets.has("seed") && { seed: request.seed }),
      model: request.model,
      ...(files.length > 0 && { modelVersion: files.join(", ") }),
      requestId,
      costUsd: 0,
      ...(queueMs !== undefined && { queueMs: Math.round(queueMs) }),
      ...(gpuMs !== undefined && gpuMs >= 0 && { inferenceMs: Math.round(gpuMs) }),
    };
  }

  /**
   * The error an attempt ends with. A prompt cut off by a hard stop or the deadline is taken out
   * of ComfyUI's queue, or interrupted if it runs, so the GPU is free for the next one.
   */
  async function failure(
    job: Job,
    request: GenerateRequest,
    deadline: AbortSignal,
    error: unknown,
  ): Promise<unknown> {
    const aborted = request.signal.aborted;
    const timedOut = !aborted && deadline.aborted;
    if ((aborted || timedOut) && job.id !== undefined && !job.finished) {
      await stop(job.id, aborted ? "stopped" : "timed out");
    }
    if (aborted) return request.signal.reason ?? error;
    if (
      !timedOut && job.id !== undefined && !job.finished && job.key !== undefined &&
      error instanceof ProviderError && error.retryable
    ) {
      // Still queued or running on the server, as far as we know: the retry collects it.
      unfinished.set(job.key, job.id);
    }
    if (timedOut) {
      return new ProviderError(
        `Cannot generate with ComfyUI as prompt ${
          job.id ?? "(not queued)"
        } took longer than ${timeoutMs} ms (--timeout)${
          job.id === undefined ? "" : "; it was stopped on the server"
        }: raise --timeout for a slow GPU or a long queue`,
        {
          provider: PROVIDER,
          retryable: true,
          ...(job.id !== undefined && { requestId: job.id }),
          cause: error,
        },
      );
    }
    if (error instanceof ProviderError) {
      if (error.requestId !== undefined || job.id === undefined) return error;
      return new ProviderError(error.message, {
        provider: error.provider,
        retryable: error.retryable,
        fatal: error.fatal,
        requestId: job.id,
        ...(error.status !== undefined && { status: error.status }),
        cause: error,
      });
    }
    if (error instanceof InputError) return error;
    if (error instanceof TypeError) return unreachable(api.origin, error);
    return new ProviderError(
      `Cannot generate with ComfyUI: ${error instanceof Error ? error.message : String(error)}`,
      { provider: PROVIDER, retryable: false, cause: error },
    );
  }

  /** Takes the prompt out of the queue, or interrupts it if it runs; best effort. */
  async function stop(requestId: string, why: string): Promise<void> {
    const signal = AbortSignal.timeout(Math.min(CANCEL_TIMEOUT_MS, timeoutMs));
    try {
      await api.deleteQueued([requestId], signal);
      // An older server's interrupt stops whatever runs: only when the queue says it is ours.
      const state = await api.queueState(requestId, signal);
      if (state === "running") await api.interrupt(requestId, signal);
      log.info("Stopped ComfyUI prompt {requestId} ({why}): {how}", {
        requestId,
        why,
        how: state === "running" ? "interrupted" : "taken out of the queue",
      });
    } catch (error) {
      log.warn("Could not stop ComfyUI prompt {requestId} ({why}): {reason}", {
        requestId,
        why,
        reason: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /**
   * Free checks before the run: the server answers, has every node type the workflows use, and
   * every file they name in a list input (checkpoints, LoRAs, samplers), and the models asked
   * for with `--model`.
   */
  async function checkServer(signal: AbortSignal): Promise<void> {
    const workflows = edit === undefined ? [main] : [main, edit];
    const classes = [
      ...new Set(workflows.flatMap((w) => Object.values(w.graph).map((n) => n.class_type))),
    ];
    let infos: Map<string, Record<string, unknown> | undefined>;
    try {
      infos = new Map(
        await Promise.all(classes.map(async (c) => [c, await api.objectInfo(c, signal)] as const)),
      );
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      if (error instanceof ProviderError && error.retryable) {
        // Nothing can be drawn: stop now, with what to do.
        throw new ProviderError(error.message, {
          provider: PROVIDER,
          retryable: false,
          fatal: true,
          cause: error,
        });
      }
      throw error;
    }
    for (const workflow of workflows) {
      for (const id of sortedIds(workflow.graph)) {
        const type = workflow.graph[id]!.class_type;
        if (infos.get(type) !== undefined) continue;
        throw new ProviderError(
          `Cannot generate with ComfyUI as it has no node type '${escapeControls(type)}' (node '${
            escapeControls(id)
          }' of the ComfyUI workflow '${
            escapeControls(workflow.path)
          }'): install the custom node that provides it, or change the workflow`,
          { provider: PROVIDER, retryable: false, fatal: true },
        );
      }
    }
    const models = (options.models ?? []).filter((m) => m !== WORKFLOW_MODEL);
    for (const workflow of workflows) {
      const where = `the ComfyUI workflow '${escapeControls(workflow.path)}'`;
      const bound = new Set(
        [...workflow.targets.values()].flat().map((t) => `${t.node}\0${t.input}`),
      );
      for (const id of sortedIds(workflow.graph)) {
        const node = workflow.graph[id]!;
        const info = infos.get(node.class_type)!;
        for (const [input, value] of Object.entries(node.inputs)) {
          if (linkOf(value) !== undefined) continue;
          const choices = _choices(info, input);
          if (choices === undefined) continue;
          const asked = bound.has(`${id}\0${input}`)
            ? (workflow.targets.get("model")?.some((t) => t.node === id && t.input === input)
              ? models
              : [])
            : typeof value === "string"
            ? [value]
            : [];
          for (const name of asked) {
            if (choices.includes(name)) continue;
            throw new ProviderError(
              `Cannot generate with ComfyUI as it has no '${escapeControls(name)}' for node '${
                escapeControls(id)
              }' (${escapeControls(node.class_type)}) input '${
                escapeControls(input)
              }' of ${where}: it has ${
                _preview(choices)
              }; put the file in ComfyUI's models folder, or change the ${
                models.includes(name) ? "--model" : "workflow"
              }`,
              { provider: PROVIDER, retryable: false, fatal: true },
            );
          }
        }
      }
    }
  }
}

/** One attempt's prompt on the server, as far as it got. */
interface Job {
  /** The filled graph, as the key of the generator's unfinished prompts. */
  key?: string;
  /** The prompt id the server has it under. */
  id?: string | undefined;
  socket?: ComfySocket | undefined;
  /** When it was submitted, and when it began to run, by `performance.now()`. */
  submittedAt?: number | undefined;
  startedAt?: number | undefined;
  /** Its history entry arrived: nothing left to stop. */
  finished?: boolean;
}

/**
 * The image that is the result: the output node's, else the first node's (in id order) that
 * saved one to the output folder, else any node's (a PreviewImage's temp file).
 */
function _chooseImage(
  entry: ComfyHistoryEntry,
  workflow: Workflow,
  outputNode: string | undefined,
): ComfyImageRef | undefined {
  if (outputNode !== undefined) return entry.outputs[outputNode]?.[0];
  const nodes = Object.keys(entry.outputs).sort((a, b) =>
    a.localeCompare(b, "en", { numeric: true })
  );
  const inWorkflow = nodes.filter((n) => n in workflow.graph);
  const ordered = [...inWorkflow, ...nodes.filter((n) => !inWorkflow.includes(n))];
  for (const type of ["output", undefined]) {
    for (const node of ordered) {
      const image = entry.outputs[node]!.find((i) => type === undefined || i.type === type);
      if (image !== undefined) return image;
    }
  }
  return undefined;
}

/**
 * The values a list input takes, from `/object_info`: `[[...], {…}]`, or the newer
 * `["COMBO", {"options": [...]}]`.
 */
function _choices(info: Record<string, unknown>, input: string): string[] | undefined {
  const inputs = (info.input ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const spec = inputs.required?.[input] ?? inputs.optional?.[input];
  if (!Array.isArray(spec)) return undefined;
  const [type, extra] = spec as [unknown, unknown];
  const list = Array.isArray(type)
    ? type
    : type === "COMBO" && extra !== null && typeof extra === "object"
    ? (extra as { options?: unknown }).options
    : undefined;
  return Array.isArray(list) && list.every((v) => typeof v === "string" || typeof v === "number")
    ? list.map(String)
    : undefined;
}

function _preview(choices: string[]): string {
  if (choices.length === 0) return "none";
  const shown = choices.slice(0, 8).map((c) => `'${escapeControls(c)}'`).join(", ");
  return choices.length > 8 ? `${shown} and ${choices.length - 8} more` : shown;
}

function _sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
