// Function lengths across src/ and main.ts: how many functions exceed 60 and 100 lines.
// Run: deno run --allow-read --allow-env tests/structure/function_lengths.ts [--list]
// A function is a declaration, method, constructor, accessor, function expression or arrow
// function with a block body; its length is the lines from its first to its last, inner
// functions included (the reader has to hold all of them at once).
import ts from "typescript";
import { sourceFiles } from "./source_files.ts";

export interface FunctionLength {
  file: string;
  name: string;
  line: number;
  lines: number;
}

/** Every function of the project's own source with its length in lines. */
export async function functionLengths(root: string): Promise<FunctionLength[]> {
  const found: FunctionLength[] = [];
  for (const file of await sourceFiles(root)) {
    const text = await Deno.readTextFile(`${root}/${file}`);
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const lineOf = (pos: number) => source.getLineAndCharacterOfPosition(pos).line + 1;
    source.forEachChild(function visit(node) {
      const body = bodyOf(node);
      if (body) {
        const line = lineOf(node.getStart(source));
        found.push({ file, name: nameOf(node), line, lines: lineOf(node.end) - line + 1 });
      }
      node.forEachChild(visit);
    });
  }
  return found;
}

function bodyOf(node: ts.Node): ts.Block | undefined {
  if (
    ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) || ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node) || ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node)
  ) {
    return node.body && ts.isBlock(node.body) ? node.body : undefined;
  }
  return undefined;
}

function nameOf(node: ts.Node): string {
  const named = node as { name?: ts.Node };
  if (named.name && ts.isIdentifier(named.name)) return named.name.text;
  if (ts.isConstructorDeclaration(node)) return "constructor";
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) {
    return parent.name.text;
  }
  if (parent && ts.isPropertyAssignment(parent) && ts.isIdentifier(parent.name)) {
    return parent.name.text;
  }
  return "(anonymous)";
}

/** The figures the team holds the code to: none over 100 lines, at most 3% over 60. */
export function summarise(lengths: FunctionLength[]) {
  const over60 = lengths.filter((f) => f.lines > 60);
  const over100 = lengths.filter((f) => f.lines > 100);
  return {
    functions: lengths.length,
    over60: over60.length,
    over100: over100.length,
    share60: lengths.length === 0 ? 0 : over60.length / lengths.length,
    longest: [...lengths].sort((a, b) => b.lines - a.lines),
  };
}

if (import.meta.main) {
  const root = new URL("../..", import.meta.url).pathname;
  const figures = summarise(await functionLengths(root));
  // deno-lint-ignore no-console
  console.log(
    `${figures.functions} functions; ${figures.over60} over 60 lines (${
      (100 * figures.share60).toFixed(1)
    }%, target ≤ 3%); ${figures.over100} over 100 lines (target 0)`,
  );
  const shown = Deno.args.includes("--list")
    ? figures.longest.filter((f) => f.lines > 60)
    : figures.longest.slice(0, 10);
  for (const f of shown) {
    // deno-lint-ignore no-console
    console.log(`${String(f.lines).padStart(5)}  ${f.file}:${f.line} ${f.name}`);
  }
  if (figures.over100 > 0 || figures.share60 > 0.03) Deno.exit(1);
}
