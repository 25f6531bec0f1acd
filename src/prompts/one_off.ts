/**
 * A prompt given on the command line (`--prompt "a red fox in snow"`): a batch of one, for a
 * quick try, its id made from its text as a text file's are.
 *
 * @module
 */
import { type ReadResult, validateEntries } from "./validate.ts";

/** Where a command-line prompt is said to come from, in messages. */
export const COMMAND_LINE = "--prompt";

/**
 * The prompt `text` is, checked as a file's would be; the whole text is one prompt, line breaks
 * and all.
 *
 * @example
 * ```ts
 * import { oneOffPrompt } from "./one_off.ts";
 * const { specs } = oneOffPrompt("a red fox in snow");
 * if (!specs[0]!.id.startsWith("a-red-fox-in-snow-")) throw new Error(specs[0]!.id);
 * ```
 */
export function oneOffPrompt(text: string): ReadResult {
  return validateEntries(COMMAND_LINE, [{ label: "prompt", value: { prompt: text } }], {
    derivedIds: true,
  });
}
