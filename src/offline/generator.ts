/**
 * The offline image generator: reads scene cues from the prompt, composes an SVG landscape from
 * them, rasterises it with sharp and grades it toward the light and mood the prompt asks for. No
 * network, no key, no cost; the same prompt and seed always give the same bytes.
 *
 * Like a remote model it sees only the prompt text, not the prompt's title, scene or mood: what
 * the text leaves out is for the critic to notice and the refiner to add.
 *
 * @module
 */
import sharp from "sharp";
import { ProviderError } from "../errors.ts";
import { measureLook, pixelMap } from "./image_stats.ts";
import { composeSceneSvg } from "./scene_svg.ts";
import type { GeneratedImage, GenerateRequest, ImageGenerator } from "../providers/provider.ts";
import {
  combineRanges,
  type Cue,
  extractCues,
  hashString,
  LOOK_PROPERTIES,
  type LookProperty,
  lookSources,
  renderAmount,
} from "./scene_cues.ts";

import { LOCAL_MODEL } from "./model.ts";

export { LOCAL_MODEL };

/** Largest side the local generator renders, in pixels. */
export const LOCAL_MAX_SIDE = 4096;

/**
 * Creates the offline generator (`local`).
 *
 * @example
 * ```ts
 * import { createLocalGenerator } from "./generator.ts";
 * const image = await createLocalGenerator().generate({
 *   prompt: "a red boat on a calm lake at sunset",
 *   spec: { id: "boat", prompt: "a red boat on a calm lake at sunset", extra: {} },
 *   iteration: 1,
 *   width: 64,
 *   height: 48,
 *   seed: 1,
 *   model: "local-svg-v1",
 *   format: "png",
 *   signal: new AbortController().signal,
 * });
 * if (image.costUsd !== 0 || image.width !== 64) throw new Error("unexpected image");
 * ```
 */
export function createLocalGenerator(): ImageGenerator {
  return {
    name: "local",
    generate: generateLocal,
    // An edit re-renders the refined prompt on the same seed, so the composition stays and the
    // flagged attributes change: the offline stand-in for an edit endpoint.
    editModel: (model) => model,
  };
}

/** Renders one image from a request; see {@linkcode createLocalGenerator}. */
export async function generateLocal(request: GenerateRequest): Promise<GeneratedImage> {
  request.signal.throwIfAborted();
  const { width, height, format } = request;
  for (const [name, value] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(value) || value < 1 || value > LOCAL_MAX_SIDE) {
      throw new ProviderError(
        `Cannot generate locally as '${name}' must be an integer from 1 to ${LOCAL_MAX_SIDE}: current value is ${value}`,
        { provider: "local", retryable: false },
      );
    }
  }
  const cues = extractCues(request.prompt);
  const seed = request.seed >>> 0;
  const svg = composeSceneSvg(
    cues,
    width,
    height,
    seed,
    cues.some((c) => c.kind === "subject") ? 0 : hashString(request.prompt) || 1,
  );
  const started = performance.now();
  const rendered = await sharp(new TextEncoder().encode(svg))
    .flatten({ background: "#000000" })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  request.signal.throwIfAborted();
  const { data, info } = rendered;
  const grade = planGrade(cues, data, info.width, info.height, info.channels);
  const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  applyGrade(pixels, info.channels, grade);
  const graded = sharp(pixels.subarray(0, info.width * info.height * 3), {
    raw: { width: info.width, height: info.height, channels: 3 },
  });
  const encoded = format === "jpeg"
    ? graded.jpeg({ quality: 90 })
    : graded.png({ compressionLevel: 6 });
  const bytes = await encoded.toBuffer();
  request.signal.throwIfAborted();
  return {
    data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    format,
    width: info.width,
    height: info.height,
    seed: request.seed,
    model: LOCAL_MODEL,
    costUsd: 0,
    inferenceMs: Math.round(performance.now() - started),
  };
}

/**
 * A colour grade: a gamma curve (brightness without clipping), a gain about a pivot
 * (contrast), a per-channel offset (warmth), then each pixel's distance from its own luma scaled
 * by `saturation`, clipping to 0–255 after each step.
 */
export interface Grade {
  gamma: number;
  gain: number;
  /** Luma (0–255) the gain pivots about. */
  pivot: number;
  offset: [number, number, number];
  saturation: number;
}

const IDENTITY: Grade = { gamma: 1, gain: 1, pivot: 128, offset: [0, 0, 0], saturation: 1 };

/** Largest share of pixels a contrast boost may clip to pure black or white. */
const MAX_CLIPPED = 0.06;

/**
 * Plans the grade that moves a render's brightness, contrast, saturation and warmth toward the
 * middle of what the prompt's time of day, weather and mood words ask for, as far as their
 * strength says: a faint mention moves it a little, an emphasised one most of the way.
 */
export function planGrade(
  cues: readonly Cue[],
  data: Uint8Array,
  width: number,
  height: number,
  channels: number,
): Grade {
  const sample = sampleRgb(data, width * height, channels, 6000);
  const now = sampleLook(sample, IDENTITY);
  const sources = lookSources(cues);
  const want = { ...now.look };
  for (const p of LOOK_PROPERTIES) {
    const target = combineRanges(sources[p], (c) => renderAmount(c.strength));
    if (!target) continue;
    const push = Math.max(...sources[p].map((s) => renderAmount(s.cue.strength)));
    want[p] = now.look[p] + ((target.min + target.max) / 2 - now.look[p]) * push;
  }
  // Each round re-measures the graded sample, so clipping and the way the steps interact (a
  // saturation change shifts warmth, a gain shifts the mean) are measured, not assumed away.
  let grade: Grade = { ...IDENTITY, pivot: now.look.brightness * 255 };
  for (let round = 0; round < 10; round++) {
    const got = sampleLook(sample, grade);
    const b = clamp(got.look.brightness, 0.01, 0.99);
    const w = clamp(want.brightness, 0.01, 0.99);
    let gain = grade.gain * ratioToward(want.contrast, got.look.contrast);
    if (got.clipped > MAX_CLIPPED && gain > 1) gain = Math.max(1, grade.gain * 0.9);
    const warm = grade.offset[0] / 2 + (want.warmth - got.look.warmth) * 255 / 4;
    const gamma = clamp(grade.gamma * Math.log(w) / Math.log(b), 0.25, 4);
    // Pivot the gain about the mean the gamma curve leaves, so contrast does not move it.
    const pivot = sampleLook(sample, { ...IDENTITY, gamma }).look.brightness * 255;
    grade = {
      gamma,
      gain: clamp(gain, 0.4, 2.5),
      pivot,
      offset: [2 * warm, 0, -2 * warm],
      saturation: clamp(
        grade.saturation * ratioToward(want.saturation, got.look.saturation),
        0.2,
        3,
      ),
    };
  }
  // The rounds can end on a gain that clips too much; back it off until it does not.
  for (let round = 0; round < 12 && grade.gain > 1; round++) {
    if (sampleLook(sample, grade).clipped <= MAX_CLIPPED) break;
    grade = { ...grade, gain: Math.max(1, grade.gain * 0.92) };
  }
  return grade;
}

/** Applies a grade in place to interleaved RGB(A) bytes, leaving 3-channel RGB first. */
export function applyGrade(data: Uint8Array, channels: number, grade: Grade): void {
  const curve = gammaCurve(grade.gamma);
  const pixels = data.length / channels;
  const rgb: [number, number, number] = [0, 0, 0];
  for (let p = 0; p < pixels; p++) {
    gradePixel(data, p * channels, grade, curve, rgb);
    data[p * 3] = rgb[0];
    data[p * 3 + 1] = rgb[1];
    data[p * 3 + 2] = rgb[2];
  }
}

function gammaCurve(gamma: number): Float32Array {
  const curve = new Float32Array(256);
  for (let v = 0; v < 256; v++) curve[v] = 255 * Math.pow(v / 255, gamma);
  return curve;
}

function gradePixel(
  data: ArrayLike<number>,
  i: number,
  grade: Grade,
  curve: Float32Array,
  out: [number, number, number],
): void {
  const { gain, pivot, offset } = grade;
  const r = clamp((curve[data[i]!]! - pivot) * gain + pivot + offset[0], 0, 255);
  const g = clamp((curve[data[i + 1]!]! - pivot) * gain + pivot + offset[1], 0, 255);
  const b = clamp((curve[data[i + 2]!]! - pivot) * gain + pivot + offset[2], 0, 255);
  const l = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  const f = grade.saturation;
  out[0] = Math.round(clamp(l + f * (r - l), 0, 255));
  out[1] = Math.round(clamp(l + f * (g - l), 0, 255));
  out[2] = Math.round(clamp(l + f * (b - l), 0, 255));
}

function sampleRgb(data: Uint8Array, pixels: number, channels: number, count: number): number[] {
  const out: number[] = [];
  const stride = Math.max(1, Math.floor(pixels / count));
  for (let p = 0; p < pixels; p += stride) {
    const i = p * channels;
    out.push(data[i]!, data[i + 1]!, data[i + 2]!);
  }
  return out;
}

function sampleLook(
  sample: number[],
  grade: Grade,
): { look: Record<LookProperty, number>; clipped: number } {
  const n = sample.length / 3;
  const graded = new Uint8Array(sample.length);
  const rgb: [number, number, number] = [0, 0, 0];
  const curve = gammaCurve(grade.gamma);
  let clipped = 0;
  for (let p = 0; p < n; p++) {
    gradePixel(sample, p * 3, grade, curve, rgb);
    graded.set(rgb, p * 3);
    const max = Math.max(...rgb);
    const min = Math.min(...rgb);
    if (max < 2 || min > 253) clipped++;
  }
  return { look: measureLook(pixelMap(graded, n, 1, 3)), clipped: clipped / n };
}

function ratioToward(want: number, got: number): number {
  return got > 1e-3 ? clamp(want / got, 0.7, 1.4) : 1;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v));
}
