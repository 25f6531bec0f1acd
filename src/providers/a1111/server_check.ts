/**
 * The free checks before an AUTOMATIC1111 run: the server answers, takes the credentials, serves
 * the API, and has the checkpoints asked for.
 *
 * @module
 */
import { ProviderError } from "../../errors.ts";
import { escapeControls } from "../../util/terminal_text.ts";
import type { A1111Api } from "./api.ts";

const PROVIDER = "a1111";

/**
 * Free checks before the run: the server answers, takes the credentials, serves the API, and
 * has the checkpoints asked for with `--model` (`models`, without the loaded one's id).
 */
export async function checkA1111Server(
  api: A1111Api,
  models: readonly string[],
  signal: AbortSignal,
): Promise<void> {
  let answer: unknown;
  try {
    answer = await api.sdModels(signal);
  } catch (error) {
    if (signal.aborted) throw signal.reason ?? error;
    if (error instanceof ProviderError && !error.fatal) {
      throw new ProviderError(error.message, {
        provider: PROVIDER,
        retryable: false,
        fatal: true,
        ...(error.status !== undefined && { status: error.status }),
        cause: error,
      });
    }
    throw error;
  }
  const list = Array.isArray(answer) ? answer as Array<Record<string, unknown>> : [];
  const names = list.flatMap((m) =>
    [m.title, m.model_name].filter((v): v is string => typeof v === "string")
  );
  for (const model of models) {
    if (names.some((n) => _sameModel(n, model))) continue;
    throw new ProviderError(
      `Cannot generate with AUTOMATIC1111 as it has no checkpoint '${
        escapeControls(model)
      }' (--model): it has ${
        list.map((m) => `'${escapeControls(String(m.title ?? m.model_name))}'`).slice(0, 8)
          .join(", ") || "none"
      }; put the file in its models/Stable-diffusion folder, or choose one of these`,
      { provider: PROVIDER, retryable: false, fatal: true, status: 404 },
    );
  }
}

/** A checkpoint title (`v1-5.safetensors [6ce0161689]`) or name matches what was asked. */
function _sameModel(name: string, asked: string): boolean {
  const bare = (s: string) =>
    s.replace(/\s*\[[0-9a-f]+\]$/i, "").replace(/\.(safetensors|ckpt)$/i, "");
  return name === asked || bare(name) === bare(asked);
}
