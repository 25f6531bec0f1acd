/**
 * ComfyUI as a retake provider: the user's own workflow on the user's own GPU. No key; the
 * server at `COMFYUI_BASE_URL` (default `http://127.0.0.1:8188`).
 *
 * @module
 */
import { z } from "zod";
import { InputError } from "../../errors.ts";
import { positiveInt, urlString } from "../../config/schema.ts";
import type { CreateContext, ProviderDescriptor } from "../provider.ts";
import { createComfyGenerator, DEFAULT_COMFYUI_URL, WORKFLOW_MODEL } from "./generator.ts";
import { BINDINGS, readWorkflow, type WorkflowMapping } from "./workflow.ts";

const target = z.union([z.string().min(3), z.array(z.string().min(3)).min(1)]);

/** `comfyui.nodes`: where each value goes, as `"<node id>.<input>"`. */
const mapping = z.partialRecord(z.enum(BINDINGS), target);

/** The `comfyui` section of the config file. */
const comfySettings = z.strictObject({
  /** The server's root URL; absent: `http://127.0.0.1:8188`. */
  baseUrl: urlString.optional(),
  /** The API-format workflow each image is drawn with (`--workflow`). */
  workflow: z.string().min(1).optional(),
  /** Where each value goes in `workflow`, instead of placeholders. */
  nodes: mapping.optional(),
  /** The image-to-image workflow an edit goes through, with `{{image}}` in a LoadImage. */
  editWorkflow: z.string().min(1).optional(),
  /** Where each value goes in `editWorkflow`. */
  editNodes: mapping.optional(),
  /** `{{steps}}` for prompts that set none. */
  steps: positiveInt.optional(),
  /** The node whose image is the result; absent: the first that saved one. */
  outputNode: z.string().min(1).optional(),
  /** Generations queued on the server at once: one GPU runs one at a time. */
  concurrency: positiveInt.max(64).default(1),
  /** Delay between `/history` polls where the WebSocket is not used, in ms. */
  pollIntervalMs: positiveInt.default(1000),
});

/** ComfyUI's settings, validated. */
export type ComfySettings = z.output<typeof comfySettings>;

/** ComfyUI as a retake provider: image generation with the user's workflow. */
export const comfyuiProvider = {
  name: "comfyui",
  title: "ComfyUI",
  summary: {
    generate:
      "your ComfyUI server and API-format workflow (`--workflow`); WebSocket progress, resumes a killed run's prompt by its id",
  },
  roles: ["generate"],
  schema: comfySettings,
  env: [
    {
      names: ["COMFYUI_BASE_URL"],
      setting: "baseUrl",
      description: `the ComfyUI server (default ${DEFAULT_COMFYUI_URL}); it takes no key`,
    },
  ],
  models: [{ id: WORKFLOW_MODEL, roles: ["generate"], price: "free (your GPU)" }],
  defaults: { generate: WORKFLOW_MODEL },
  // Free, but it needs the user's server and workflow: used only when named.
  auto: false,
  available: (settings: ComfySettings) => settings.workflow !== undefined,
  unavailable:
    "no workflow is set: give one with --workflow flux.json (in ComfyUI: Workflow → Export (API)), or set comfyui.workflow in the config file",
  resolveModel: (name) => name?.trim() || WORKFLOW_MODEL,
  async create({ settings, models, timeoutMs }: CreateContext<ComfySettings>) {
    const workflow = await readWorkflow(
      settings.workflow!,
      settings.nodes as WorkflowMapping | undefined,
    );
    const editWorkflow = settings.editWorkflow === undefined ? undefined : await readWorkflow(
      settings.editWorkflow,
      settings.editNodes as WorkflowMapping | undefined,
      "comfyui.editWorkflow",
    );
    if (workflow.targets.has("image")) {
      throw new InputError(
        `Cannot use the ComfyUI workflow '${workflow.path}' to draw as it takes {{image}}: an image-to-image workflow belongs in comfyui.editWorkflow`,
      );
    }
    if (editWorkflow !== undefined && !editWorkflow.targets.has("image")) {
      throw new InputError(
        `Cannot edit with the ComfyUI workflow '${editWorkflow.path}' (comfyui.editWorkflow) as nothing in it takes the image: put "{{image}}" as the image of its LoadImage node, or set comfyui.editNodes.image`,
      );
    }
    if (settings.outputNode !== undefined && !(settings.outputNode in workflow.graph)) {
      throw new InputError(
        `Cannot use comfyui.outputNode '${settings.outputNode}' as the ComfyUI workflow '${workflow.path}' has no such node: its nodes are ${
          Object.keys(workflow.graph).join(", ")
        }`,
      );
    }
    const named = models.filter((m) => m !== WORKFLOW_MODEL);
    for (const w of editWorkflow === undefined ? [workflow] : [workflow, editWorkflow]) {
      if (named.length > 0 && !w.targets.has("model")) {
        throw new InputError(
          `Cannot use --model '${
            named[0]
          }' with the ComfyUI workflow '${w.path}' as it has no {{model}}: its own loader decides the model; drop --model, or put "{{model}}" as its checkpoint's name`,
        );
      }
      if (named.length === 0 && w.targets.get("model")?.some((t) => !t.mapped)) {
        throw new InputError(
          `Cannot use the ComfyUI workflow '${w.path}' without --model as it has {{model}}: give the checkpoint's file name with --model`,
        );
      }
    }
    return {
      generator: createComfyGenerator({
        workflow,
        editWorkflow,
        baseUrl: settings.baseUrl,
        steps: settings.steps,
        outputNode: settings.outputNode,
        timeoutMs,
        pollIntervalMs: settings.pollIntervalMs,
        maxConcurrency: settings.concurrency,
        models,
      }),
    };
  },
} as const satisfies ProviderDescriptor<ComfySettings>;
