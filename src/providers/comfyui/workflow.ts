/**
 * A ComfyUI workflow in API format (ComfyUI's Workflow → Export (API)), read and checked once at
 * start, and filled in for each generation: where the prompt, negative prompt, seed, size, steps,
 * model, and for an edit the input image and the instruction, go.
 *
 * Two ways to say where: a placeholder as an input's value (`"text": "{{prompt}}"`; a text
 * placeholder may also sit inside a longer text, `"photo of {{prompt}}, 35mm"`), or a mapping of
 * each value to `"<node id>.<input>"` (`comfyui.nodes` in the config file), which leaves the
 * workflow file as ComfyUI exported it. A mapped input the request has no value for (a prompt
 * without `steps`) keeps the workflow's own value.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { InputError } from "../../errors.ts";
import { escapeControls } from "../../util/terminal_text.ts";

/** The model id that means "whatever the workflow's own loader loads". */
export const WORKFLOW_MODEL = "workflow";

/** One node of an API-format workflow. */
export interface WorkflowNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: { title?: string };
}

/** An API-format workflow: node id → node. */
export type WorkflowGraph = Record<string, WorkflowNode>;

/** What retake fills into a workflow. */
export const BINDINGS = [
  "prompt",
  "negativePrompt",
  "seed",
  "width",
  "height",
  "steps",
  "model",
  "image",
  "instruction",
] as const;

/** One value retake fills in. */
export type Binding = typeof BINDINGS[number];

/** The values that are numbers, and so must be an input's whole value. */
const NUMERIC: ReadonlySet<Binding> = new Set(["seed", "width", "height", "steps"]);

/** The values of one generation. */
export type WorkflowValues = {
  [K in Binding]?: K extends "seed" | "width" | "height" | "steps" ? number
    : string;
};

/** One place a value goes: a node's input, the whole value or a text around a placeholder. */
export interface Target {
  node: string;
  input: string;
  /** The input's text with the placeholder in it, when it is more than the placeholder. */
  template?: string;
  /** From `comfyui.nodes`: the workflow's own value stays when the request has none. */
  mapped?: boolean;
}

/** A workflow, checked, with where each value goes. */
export interface Workflow {
  /** The file it came from, as given. */
  path: string;
  graph: WorkflowGraph;
  targets: ReadonlyMap<Binding, readonly Target[]>;
  /** Content hash of the graph and its mapping: what besides the model decides the images. */
  fingerprint: string;
}

/** `comfyui.nodes`: each value to one `"<node id>.<input>"`, or several. */
export type WorkflowMapping = Partial<Record<Binding, string | readonly string[]>>;

const PLACEHOLDER = /\{\{\s*([A-Za-z_]\w*)\s*\}\}/g;

/**
 * Reads and checks a workflow file. Throws an {@linkcode InputError} naming the file, the node
 * and the input for anything that cannot work: not JSON, the editor's format, a link to a node
 * it lacks, an unknown placeholder, a mapping to a node or input it lacks.
 */
export async function readWorkflow(
  path: string,
  mapping: WorkflowMapping = {},
  setting = "comfyui.workflow",
): Promise<Workflow> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : (error as Error).message;
    throw new InputError(
      `Cannot read the ComfyUI workflow '${path}' (${setting}): ${reason}; export it from ComfyUI with Workflow → Export (API)`,
      { cause: error },
    );
  }
  return parseWorkflow(text, path, mapping);
}

/**
 * Checks a workflow's text and finds where each value goes.
 *
 * @example
 * ```ts
 * import { fillWorkflow, parseWorkflow } from "./workflow.ts";
 * const workflow = parseWorkflow(
 *   JSON.stringify({ "6": { class_type: "CLIPTextEncode", inputs: { text: "{{prompt}}" } } }),
 *   "flux.json",
 * );
 * const graph = fillWorkflow(workflow, { prompt: "a red kite" });
 * if (graph["6"]!.inputs.text !== "a red kite") throw new Error("filled");
 * ```
 */
export function parseWorkflow(
  text: string,
  path: string,
  mapping: WorkflowMapping = {},
): Workflow {
  const name = escapeControls(path);
  const fail: Fail = (why, next) => {
    throw new InputError(`Cannot use the ComfyUI workflow '${name}' as ${why}: ${next}`);
  };
  const graph = _graphOf(_nodesOf(text, fail), fail);
  const targets = new Map<Binding, Target[]>();
  _addPlaceholders(targets, graph, fail);
  _addMapping(targets, graph, mapping, fail);
  if (!targets.has("prompt")) {
    fail(
      "nothing in it takes the prompt",
      `put "{{prompt}}" as the text of its prompt node (e.g. a CLIPTextEncode), or set comfyui.nodes.prompt to "<node id>.<input>"`,
    );
  }
  const fingerprint = createHash("sha256")
    .update(JSON.stringify([_sorted(graph), _sorted(mapping)]))
    .digest("hex")
    .slice(0, 16);
  return { path, graph, targets, fingerprint };
}

/** Throws the {@linkcode InputError} of a workflow that cannot work: why, and what to do. */
type Fail = (why: string, next: string) => never;

/** The workflow's JSON object of nodes, from the text of an export or of a saved request. */
function _nodesOf(text: string, fail: Fail): Record<string, unknown> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    fail(
      `it is not JSON (${(error as Error).message})`,
      "export it again with Workflow → Export (API)",
    );
  }
  if (_isObject(data) && _isObject(data.prompt) && !("class_type" in data.prompt)) {
    // The body of a POST /prompt, saved whole: its `prompt` is the workflow.
    data = data.prompt;
  }
  if (!_isObject(data)) {
    fail("it is not a JSON object of nodes", "export it with Workflow → Export (API)");
  }
  if (Array.isArray(data.nodes) && "links" in data) {
    fail(
      "it is in the editor's format, not the API format",
      "in ComfyUI, save it with Workflow → Export (API) (enable the dev mode options on older versions)",
    );
  }
  return data;
}

/** A copy of the nodes, each checked to be a node, and every link to a node it has. */
function _graphOf(top: Record<string, unknown>, fail: Fail): WorkflowGraph {
  const ids = Object.keys(top);
  if (ids.length === 0) fail("it has no nodes", "export it with Workflow → Export (API)");
  const graph: WorkflowGraph = {};
  for (const id of ids) {
    const node = top[id];
    if (!_isObject(node) || typeof node.class_type !== "string" || !_isObject(node.inputs)) {
      fail(
        `node '${escapeControls(id)}' has no 'class_type' and 'inputs'`,
        "export it with Workflow → Export (API), which writes both for every node",
      );
    }
    graph[id] = structuredClone(node) as unknown as WorkflowNode;
  }
  for (const [id, node] of Object.entries(graph)) {
    for (const [input, value] of Object.entries(node.inputs)) {
      const link = linkOf(value);
      if (link !== undefined && !(link in graph)) {
        fail(
          `${_where(graph, id, input)} links to node '${
            escapeControls(link)
          }', which it does not have`,
          "fix the link, or export the workflow again",
        );
      }
    }
  }
  return graph;
}

/** Adds where the placeholders in the node inputs' text are, each input once per value. */
function _addPlaceholders(
  targets: Map<Binding, Target[]>,
  graph: WorkflowGraph,
  fail: Fail,
): void {
  for (const [id, node] of Object.entries(graph)) {
    for (const [input, value] of Object.entries(node.inputs)) {
      if (typeof value !== "string") continue;
      for (const match of value.matchAll(PLACEHOLDER)) {
        const binding = match[1] as Binding;
        if (!(BINDINGS as readonly string[]).includes(binding)) {
          fail(
            `${_where(graph, id, input)} has the placeholder {{${
              escapeControls(match[1]!)
            }}}, which retake does not fill`,
            `use one of ${BINDINGS.map((b) => `{{${b}}}`).join(", ")}`,
          );
        }
        const whole = match[0] === value;
        if (NUMERIC.has(binding) && !whole) {
          fail(
            `${_where(graph, id, input)} has {{${binding}}} inside a longer text`,
            `a number must be the input's whole value: "${input}": "{{${binding}}}"`,
          );
        }
        if (!targets.get(binding)?.some((t) => t.node === id && t.input === input)) {
          _add(targets, binding, { node: id, input, ...(!whole && { template: value }) });
        }
      }
    }
  }
}

/** Adds the inputs the mapping from the config file names, each checked against the graph. */
function _addMapping(
  targets: Map<Binding, Target[]>,
  graph: WorkflowGraph,
  mapping: WorkflowMapping,
  fail: Fail,
): void {
  for (const [key, given] of Object.entries(mapping)) {
    if (given === undefined) continue;
    const binding = key as Binding;
    if (!(BINDINGS as readonly string[]).includes(binding)) {
      fail(
        `comfyui.nodes has '${escapeControls(key)}', which retake does not fill`,
        `map one of ${BINDINGS.join(", ")}`,
      );
    }
    for (const spec of typeof given === "string" ? [given] : given) {
      _add(targets, binding, { ..._mappedInput(graph, binding, spec, fail), mapped: true });
    }
  }
}

/** The node and input one `"<node id>.<input>"` of the mapping names, which must hold a value. */
function _mappedInput(
  graph: WorkflowGraph,
  binding: Binding,
  spec: string,
  fail: Fail,
): { node: string; input: string } {
  const dot = spec.indexOf(".");
  const node = dot > 0 ? spec.slice(0, dot) : "";
  const input = dot > 0 ? spec.slice(dot + 1) : "";
  if (node === "" || input === "") {
    fail(
      `comfyui.nodes.${binding} is '${escapeControls(spec)}'`,
      `expected "<node id>.<input>", e.g. "6.text"`,
    );
  }
  if (!(node in graph)) {
    fail(
      `comfyui.nodes.${binding} names node '${escapeControls(node)}', which it does not have`,
      `its nodes are ${_list(Object.keys(graph))}`,
    );
  }
  const inputs = graph[node]!.inputs;
  if (!(input in inputs)) {
    fail(
      `comfyui.nodes.${binding} names input '${escapeControls(input)}' of node '${
        escapeControls(node)
      }' (${escapeControls(graph[node]!.class_type)}), which it does not have`,
      `its inputs are ${_list(Object.keys(inputs))}`,
    );
  }
  if (linkOf(inputs[input]) !== undefined) {
    fail(
      `comfyui.nodes.${binding} names ${
        _where(graph, node, input)
      }, which is a link to another node`,
      "map an input that holds a value (a text, a number)",
    );
  }
  return { node, input };
}

function _add(targets: Map<Binding, Target[]>, binding: Binding, target: Target): void {
  const list = targets.get(binding) ?? [];
  list.push(target);
  targets.set(binding, list);
}

/**
 * A copy of the workflow's graph with `values` filled in. A placeholder without a value is an
 * empty text (a prompt without a negative prompt); a mapped input without one keeps its own.
 * Throws an {@linkcode InputError} for a number placeholder without a value.
 */
export function fillWorkflow(workflow: Workflow, values: WorkflowValues): WorkflowGraph {
  const graph = structuredClone(workflow.graph);
  const templated = new Set<Target>();
  for (const [binding, targets] of workflow.targets) {
    const value = values[binding];
    for (const target of targets) {
      if (target.template !== undefined) {
        templated.add(target);
        continue;
      }
      if (value === undefined) {
        if (target.mapped) continue;
        if (NUMERIC.has(binding)) {
          throw new InputError(
            `Cannot fill {{${binding}}} in ${
              _where(graph, target.node, target.input)
            } of the ComfyUI workflow '${
              escapeControls(workflow.path)
            }' as there is no value for it: set comfyui.${binding}, or give each prompt its own '${binding}'`,
          );
        }
      }
      graph[target.node]!.inputs[target.input] = value ?? "";
    }
  }
  // A text with placeholders in it is filled in one pass, so a value's own text is left as it is.
  for (const target of templated) {
    graph[target.node]!.inputs[target.input] = target.template!.replace(
      PLACEHOLDER,
      (_all, name: string) => String(values[name as Binding] ?? ""),
    );
  }
  return graph;
}

/** The node a value links to (`["4", 0]`, ComfyUI's `[node id, output slot]`), if it is a link. */
export function linkOf(value: unknown): string | undefined {
  return Array.isArray(value) && value.length === 2 && typeof value[0] === "string" &&
      typeof value[1] === "number"
    ? value[0]
    : undefined;
}

/** The model files a filled graph loads (checkpoint, UNet), for the record. */
export function modelFilesOf(graph: WorkflowGraph): string[] {
  const files: string[] = [];
  for (const id of sortedIds(graph)) {
    for (const input of ["ckpt_name", "unet_name", "model_name"]) {
      const value = graph[id]!.inputs[input];
      if (typeof value === "string" && value !== "" && !files.includes(value)) files.push(value);
    }
  }
  return files;
}

/** Node ids in ComfyUI's order: numerically where they are numbers. */
export function sortedIds(graph: WorkflowGraph): string[] {
  return Object.keys(graph).sort((a, b) =>
    a.localeCompare(b, "en", { numeric: true, sensitivity: "base" })
  );
}

/** "node '3' (KSampler) input 'seed'", for messages. */
function _where(graph: WorkflowGraph, node: string, input: string): string {
  return `node '${escapeControls(node)}' (${
    escapeControls(graph[node]?.class_type ?? "?")
  }) input '${escapeControls(input)}'`;
}

function _list(items: string[]): string {
  const shown = items.slice(0, 20).map((i) => `'${escapeControls(i)}'`).join(", ");
  return items.length > 20 ? `${shown}, …` : shown || "none";
}

function _isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A value with object keys sorted, so equal content hashes equal. */
function _sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(_sorted);
  if (!_isObject(value)) return value;
  return Object.fromEntries(
    Object.keys(value).sort().map((key) => [key, _sorted(value[key])]),
  );
}
