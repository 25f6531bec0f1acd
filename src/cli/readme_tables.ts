/**
 * README's tables of providers, flags, environment variables and exit codes, made from the
 * registry and the tables in the code, so the README cannot drift from them: tests compare them
 * cell by cell.
 *
 * Run `deno run -A src/cli/readme_tables.ts` to print them for pasting.
 *
 * @module
 */
import { DESCRIPTORS } from "../providers/catalog.ts";
import { exitCodes } from "../exit_codes.ts";
import { ENV_SETTINGS, OFFLINE_ENV } from "../config/env_settings.ts";
import { FLAGS } from "../config/flags.ts";

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

/** The environment table: each variable and what it sets. */
export function envTable(): string[][] {
  const providers = DESCRIPTORS.flatMap((p) =>
    p.env.map((e) => [
      e.names.map((n, i) => i === 0 ? `\`${n}\`` : `(or \`${n}\`)`).join(" "),
      e.description,
    ])
  );
  const own = ENV_SETTINGS.filter(([names]) => names[0]!.startsWith("RETAKE_")).map(
    ([names, path]) => {
      const flag = FLAGS.find((f) => f.setting?.join(".") === path.join("."));
      return [
        names.map((n, i) => i === 0 ? `\`${n}\`` : `(or \`${n}\`)`).join(" "),
        flag ? `as \`--${flag.name}\`` : `\`${path.join(".")}\` in the config file`,
      ];
    },
  );
  return [
    ["Variable", "Setting"],
    ...providers,
    ...own,
    [`\`${OFFLINE_ENV}=1\``, "as `--offline`"],
  ];
}

/** The exit codes table. */
export function exitCodesTable(): string[][] {
  return [["Code", "Meaning"], ...exitCodes().map((e) => [String(e.code), e.meaning])];
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
  console.log(
    [providersTable(), flagsTable(), envTable(), exitCodesTable()].map(markdown).join("\n\n"),
  );
}
