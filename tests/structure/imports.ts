// The import graph of src/, type imports and re-exports included, and the cycles in it.
// Run: deno run --allow-read tests/structure/imports.ts   (prints every cycle, exits 1 if any)
import ts from "typescript";
import { sourceFiles } from "./source_files.ts";

/** file → the project files it imports (relative specifiers only), paths relative to the root. */
export type ImportGraph = Map<string, string[]>;

/** Reads every source file's static imports and re-exports, `import type` included. */
export async function importGraph(root: string): Promise<ImportGraph> {
  const files = await sourceFiles(root);
  const known = new Set(files);
  const graph: ImportGraph = new Map();
  for (const file of files) {
    const text = await Deno.readTextFile(`${root}/${file}`);
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
    const targets = new Set<string>();
    const add = (specifier: ts.Expression | undefined) => {
      if (!specifier || !ts.isStringLiteral(specifier)) return;
      if (!specifier.text.startsWith(".")) return;
      const target = resolve(file, specifier.text);
      if (known.has(target)) targets.add(target);
    };
    source.forEachChild(function visit(node) {
      if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
      else if (
        ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword
      ) add(node.arguments[0]);
      node.forEachChild(visit);
    });
    graph.set(file, [...targets].sort());
  }
  return graph;
}

function resolve(from: string, specifier: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

/** Strongly connected components of more than one file (or a file importing itself). */
export function cycles(graph: ImportGraph): string[][] {
  // Tarjan's algorithm: a component is a set of files each reachable from every other.
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const connect = (file: string) => {
    indexOf.set(file, index);
    low.set(file, index);
    index++;
    stack.push(file);
    onStack.add(file);
    for (const next of graph.get(file) ?? []) {
      if (!indexOf.has(next)) {
        connect(next);
        low.set(file, Math.min(low.get(file)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(file, Math.min(low.get(file)!, indexOf.get(next)!));
      }
    }
    if (low.get(file) !== indexOf.get(file)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== file);
    if (component.length > 1 || (graph.get(file) ?? []).includes(file)) {
      found.push(component.sort());
    }
  };
  for (const file of graph.keys()) if (!indexOf.has(file)) connect(file);
  return found;
}

/** One shortest loop through a component, for a message a reader can follow. */
export function loopThrough(graph: ImportGraph, component: string[]): string[] {
  const inside = new Set(component);
  const start = component[0]!;
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const next of graph.get(file) ?? []) {
      if (!inside.has(next)) continue;
      if (next === start) {
        const loop = [file];
        while (loop[0] !== start) loop.unshift(previous.get(loop[0]!)!);
        return [...loop, start];
      }
      if (!previous.has(next)) {
        previous.set(next, file);
        queue.push(next);
      }
    }
  }
  return [start, start];
}

if (import.meta.main) {
  const root = new URL("../..", import.meta.url).pathname;
  const graph = await importGraph(root);
  const found = cycles(graph);
  const files = graph.size;
  const inCycles = found.reduce((sum, c) => sum + c.length, 0);
  // deno-lint-ignore no-console
  console.log(
    `${files} files, ${found.length} import cycle(s), ${inCycles} file(s) in them (${
      (100 * inCycles / files).toFixed(0)
    }%)`,
  );
  for (const component of found) {
    // deno-lint-ignore no-console
    console.log(
      `- ${component.length} files; one loop: ${loopThrough(graph, component).join(" → ")}`,
    );
  }
  if (found.length > 0) Deno.exit(1);
}
