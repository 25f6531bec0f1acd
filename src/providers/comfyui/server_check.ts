/**
 * The free checks before a ComfyUI run: the server answers, and has what the workflows need.
 *
 * @module
 */
import { ProviderError } from "../../errors.ts";
import { escapeControls } from "../../util/terminal_text.ts";
import type { ComfyApi } from "./api.ts";
import { linkOf, sortedIds, type Workflow } from "./workflow.ts";

const PROVIDER = "comfyui";

/**
 * Free checks before the run: the server answers, has every node type the workflows use, and
 * every file they name in a list input (checkpoints, LoRAs, samplers), and the models asked
 * for with `--model`.
 */
export async function checkComfyServer(
  api: ComfyApi,
  workflows: readonly Workflow[],
  models: readonly string[],
  signal: AbortSignal,
): Promise<void> {
  const infos = await _nodeInfos(api, workflows, signal);
  for (const workflow of workflows) _checkNodeTypes(workflow, infos);
  for (const workflow of workflows) _checkListInputs(workflow, infos, models);
}

/** What the server says of each node type the workflows use; undefined for a type it lacks. */
async function _nodeInfos(
  api: ComfyApi,
  workflows: readonly Workflow[],
  signal: AbortSignal,
): Promise<NodeInfos> {
  const classes = [
    ...new Set(workflows.flatMap((w) => Object.values(w.graph).map((n) => n.class_type))),
  ];
  try {
    return new Map(
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
}

type NodeInfos = Map<string, Record<string, unknown> | undefined>;

function _checkNodeTypes(workflow: Workflow, infos: NodeInfos): void {
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

/** Every name the workflow gives a list input, or `--model` through `{{model}}`, is offered. */
function _checkListInputs(
  workflow: Workflow,
  infos: NodeInfos,
  models: readonly string[],
): void {
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
      const name = asked.find((n) => !choices.includes(n));
      if (name === undefined) continue;
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
