/**
 * The zod pieces the core settings and every provider's own settings share.
 *
 * @module
 */
import { z } from "zod";

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
