/**
 * `retake --help`: made from the flags table, the provider registry, the environment table and
 * the exit codes, each line at most 80 columns (a test checks), as a terminal is that wide.
 *
 * @module
 */
import { exitCodes } from "../exit_codes.ts";
import { DESCRIPTORS } from "../providers/catalog.ts";
import { ENV_SETTINGS } from "../config/env_settings.ts";
import { FLAGS } from "../config/flags.ts";

/** The width every line of `--help` fits. */
export const HELP_WIDTH = 80;

/**
 * `head` in a column of `width` after `indent` spaces, `text` wrapped beside it; a head too
 * long for its column puts the text on the next line.
 */
export function columns(head: string, text: string, indent: number, width: number): string {
  const left = indent + width + 1;
  const body = wrap(text, HELP_WIDTH - left).map((line) => " ".repeat(left) + line);
  const first = " ".repeat(indent) + head;
  if (first.length + 1 > left || body.length === 0) return [first, ...body].join("\n");
  return [first.padEnd(left) + body[0]!.trimStart(), ...body.slice(1)].join("\n");
}

/** `text`'s words in lines of at most `width` columns (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** `--help`'s option lines: the flag in a 24-column field, its text beside it. */
export function flagLines(): string {
  return FLAGS.map((f) => {
    const head = `${f.short ? `-${f.short}, ` : "    "}--${f.name}${f.arg ? ` ${f.arg}` : ""}`;
    return columns(head, f.help, 2, 24);
  }).join("\n");
}

/** `--help`'s lines on each generator's model aliases. */
function modelLines(): string {
  return DESCRIPTORS.filter((p) => p.roles.includes("generate") && p.models.length > 0).map((p) => {
    const aliases = p.models.flatMap((m) => m.aliases ?? []);
    const names = aliases.length > 0 ? aliases : p.models.map((m) => m.id);
    return wrap(`${p.name}: ${names.join(", ")}`, HELP_WIDTH - 2).map((l) => `  ${l}`).join("\n");
  }).join("\n");
}

/** `--help`'s lines on each provider's environment variables, then retake's own. */
function envLines(): string {
  const providers = DESCRIPTORS.flatMap((p) =>
    p.env.map((e) => {
      const names = e.names.length > 1
        ? `${e.names[0]} (or ${e.names.slice(1).join(", ")})`
        : e.names[0]!;
      return columns(names, e.description, 2, 34);
    })
  );
  const own = ENV_SETTINGS.flatMap(([names]) => names.filter((n) => n.startsWith("RETAKE_")));
  return [
    ...providers,
    ...wrap(
      `${
        own.join(", ")
      }, RETAKE_OFFLINE=1: as the flags of the same names (see README, Configuration)`,
      HELP_WIDTH - 2,
    ).map((l) => `  ${l}`),
  ].join("\n");
}

/** `--help`'s exit codes. */
function exitLines(): string {
  return exitCodes().map(({ code, meaning }) =>
    columns(String(code), meaning.replaceAll("`", ""), 2, 4)
  )
    .join("\n");
}

/** Usage text for `--help`. */
export const USAGE = `retake — generate, critique and refine images in bulk

Usage:
  retake [options] <prompts.json> [more.json ...]
  retake gallery <out>/<batch> [...]  rebuild a batch folder's index.html
  retake serve [OUT] [--port N]       the studio: browse and steer batches
  retake eval [options] <prompts.json>  single vs best-of-n vs refine at equal
                                       spend (retake eval --help)
  deno task run [options] <prompts.json>

Options:
${flagLines()}

Models by generator (--model):
${modelLines()}

Keys and endpoints come from the environment, .env or the config file:
${envLines()}
Without keys retake runs offline.

Exit codes:
${exitLines()}
`;
