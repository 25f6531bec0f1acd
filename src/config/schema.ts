/**
 * The zod pieces the core settings, every provider's own settings and the per-prompt settings
 * of a prompt file share: a prompt's `size` or `seed` is checked exactly as the flag is.
 *
 * @module
 */
import { z } from "zod";
import { SIZE_PRESETS } from "./sizes.ts";

/** A whole number above 0; strings from the environment are coerced. */
export const positiveInt = z.coerce.number().int().positive();

/** A URL; `checkBaseUrl` in `config.ts` decides which ones may receive a key. */
export const urlString = z.url({ error: "expected a URL such as http://127.0.0.1:8080" });

/** USD per image or per megapixel, by model id. */
export const priceTable = z.record(z.string(), z.number().nonnegative());

/** USD per 1M input and output tokens, by model id. */
export const tokenPriceTable = z.record(
  z.string(),
  z.object({ input: z.number().nonnegative(), output: z.number().nonnegative() }),
);

const sizeMessage = (value: unknown) =>
  `expected WIDTHxHEIGHT (e.g. 1024x768) or one of ${
    Object.keys(SIZE_PRESETS).join(", ")
  }: current value is ${typeof value === "string" ? `'${value}'` : JSON.stringify(value)}`;

/** `WIDTHxHEIGHT`, a preset name, or `{width, height}`; 64 to 4096 pixels a side. */
export const sizeSchema = z.union([
  z.string().transform((value, ctx) => {
    const preset = SIZE_PRESETS[value];
    if (preset) return preset;
    const match = /^(\d{2,5})x(\d{2,5})$/.exec(value);
    if (!match) {
      ctx.addIssue({ code: "custom", message: sizeMessage(value) });
      return z.NEVER;
    }
    return { width: Number(match[1]), height: Number(match[2]) };
  }),
  z.object({ width: positiveInt, height: positiveInt }),
], { error: (issue) => sizeMessage(issue.input) }).pipe(
  z.object({
    width: z.number().int().min(64).max(4096),
    height: z.number().int().min(64).max(4096),
  }),
);

/** Images per prompt: the first plus refined ones. */
export const iterationsSchema = positiveInt.max(20);

/** A seed fal and the offline engine take: an unsigned 32-bit number. */
export const seedSchema = z.coerce.number().int().min(0).max(2 ** 32 - 1);

/** A critique score to stop at, 0 to 10. */
export const targetScoreSchema = z.coerce.number().min(0).max(10);
