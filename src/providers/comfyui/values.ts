/**
 * The values one round fills into a ComfyUI workflow, and what the workflow has no place for.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { ProviderError } from "../../errors.ts";
import { escapeControls } from "../../util/terminal_text.ts";
import type { GenerateRequest } from "../provider.ts";
import type { ComfyApi } from "./api.ts";
import { type Binding, type Workflow, WORKFLOW_MODEL, type WorkflowValues } from "./workflow.ts";

const PROVIDER = "comfyui";
const log = getLogger(["retake", "comfyui"]);

/** What the values of every round depend on besides the request. */
export interface ValueSources {
  api: ComfyApi;
  /** `{{steps}}` for prompts that set none. */
  steps: number | undefined;
  /** The workflow edits go through, if any. */
  editWorkflow: Workflow | undefined;
}

/** The values of this round, the edit's source image uploaded first. */
export async function valuesFor(
  sources: ValueSources,
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
  const steps = request.steps ?? sources.steps;
  if (steps !== undefined) values.steps = steps;
  if (request.model !== WORKFLOW_MODEL) values.model = request.model;
  if (request.edit !== undefined && workflow === sources.editWorkflow) {
    values.instruction = request.edit.instruction;
    const bytes = await Deno.readFile(request.edit.imagePath);
    const ext = /\.jpe?g$/i.test(request.edit.imagePath) ? "jpg" : "png";
    // One name per source image: the same edit retried uploads over its own file.
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
    const name = `retake-${
      [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("")
    }.${ext}`;
    values.image = await sources.api.upload(bytes, name, signal);
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

/** Says once per value what the workflow has no place for; `warned` holds what was said. */
export function warnUnsent(
  workflow: Workflow,
  request: GenerateRequest,
  warned: Set<string>,
): void {
  const warnOnce = (key: string, message: string, properties: Record<string, unknown>) => {
    if (warned.has(key)) return;
    warned.add(key);
    log.warn(message, properties);
  };
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
