/**
 * README's tables of providers and flags, made from the registry and the flags table, so the
 * README cannot drift from the code: a test compares them cell by cell.
 *
 * Run `deno run -A src/cli/readme_tables.ts` to print them for pasting.
 *
 * @module
 */
import { DESCRIPTORS } from "../providers/registry.ts";
import { FLAGS } from "./flags.ts";

/** The providers table: one row per provider, in `auto`'s order. */
export function providersTable(): string[][] {
  const rows = DESCRIPTORS.map((p) => [
    `\`${p.name}\``,
    p.roles.join(", "),
    Object.entries(p.summary).map(([role, text]) => `${role}: ${text}`).join("; "),
    p.env.length === 0 ? "none (offline)" : p.env.map((e) => `\`${e.names[0]}\``).join(", "),
    p.auto === false ? "only when named" : "yes",
  ]);
  return [["Provider", "Roles", "What it does", "Environment", "Picked by `auto`"], ...rows];
}

/** The flags table: option, meaning, default. */
export function flagsTable(): string[][] {
  const rows = FLAGS.filter((f) => f.name !== "version").map((f) => {
    const flag = f.name === "help"
      ? "`-h, --help`, `-V, --version`"
      : `\`${f.short ? `-${f.short}, ` : ""}--${f.name}${f.arg ? ` ${f.arg}` : ""}\``;
    const help = f.name === "help" ? "this help, or the version" : f.help.replace(/\n/g, " ");
    const m = /^(.*?)\s*\(default: ([^)]*)\)$/.exec(help);
    return [flag, m ? m[1]! : help, m ? m[2]! : ""];
  });
  return [["Option", "Meaning", "Default"], ...rows];
}

/** A table as Markdown (before `deno fmt` aligns it). */
export function markdown(table: string[][]): string {
  const [head, ...rows] = table;
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head!), line(head!.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The cells of every Markdown table row in `text`, trimmed, separator rows left out. */
export function tableCells(text: string): string[][] {
  return text.split("\n").filter((l) => l.trim().startsWith("|"))
    .map((l) => l.trim().slice(1, -1).split(" | ").map((c) => c.trim()))
    .filter((cells) => !cells.every((c) => /^-+$/.test(c)));
}

if (import.meta.main) {
  // deno-lint-ignore no-console
  console.log(`${markdown(providersTable())}\n\n${markdown(flagsTable())}`);
}
