/**
 * Pixel measurements shared by the local generator (to grade its render toward the asked-for
 * look) and the local critic (to judge an image): per-pixel hue, saturation, value and luma of a
 * small RGB raster, whole-image statistics, colour shares and edge energy by region.
 *
 * @module
 */
import type { ColourInfo, LookProperty } from "./scene_cues.ts";

/** Per-pixel channels of an RGB raster, each 0–1 except hue (degrees, 0–360). */
export interface PixelMap {
  width: number;
  height: number;
  hue: Float32Array;
  saturation: Float32Array;
  value: Float32Array;
  luma: Float32Array;
  /** (R − B) / 255 per pixel. */
  warmth: Float32Array;
}

/** A band of rows, as fractions of the height. */
export interface Band {
  top: number;
  bottom: number;
}

/** The whole image. */
export const WHOLE: Band = { top: 0, bottom: 1 };

/** Splits interleaved RGB(A) bytes into per-pixel channels. */
export function pixelMap(
  data: Uint8Array,
  width: number,
  height: number,
  channels: number,
  step = 1,
): PixelMap {
  const w = Math.ceil(width / step);
  const h = Math.ceil(height / step);
  const n = w * h;
  const map: PixelMap = {
    width: w,
    height: h,
    hue: new Float32Array(n),
    saturation: new Float32Array(n),
    value: new Float32Array(n),
    luma: new Float32Array(n),
    warmth: new Float32Array(n),
  };
  let k = 0;
  for (let y = 0; y < height; y += step) {
    for (let x = 0; x < width; x += step) {
      const i = (y * width + x) * channels;
      const r = data[i]! / 255;
      const g = data[i + 1]! / 255;
      const b = data[i + 2]! / 255;
      const max = Math.max(r, g, b);
      const min = Math.min(r, g, b);
      const d = max - min;
      let hue = 0;
      if (d > 1e-6) {
        if (max === r) hue = 60 * (((g - b) / d) % 6);
        else if (max === g) hue = 60 * ((b - r) / d + 2);
        else hue = 60 * ((r - g) / d + 4);
        if (hue < 0) hue += 360;
      }
      map.hue[k] = hue;
      map.saturation[k] = max === 0 ? 0 : d / max;
      map.value[k] = max;
      map.luma[k] = 0.2126 * r + 0.7152 * g + 0.0722 * b;
      map.warmth[k] = r - b;
      k++;
    }
  }
  return map;
}

/** Whether one pixel counts as the given colour. */
export function matchesColour(map: PixelMap, i: number, colour: ColourInfo): boolean {
  const s = map.saturation[i]!;
  const v = map.value[i]!;
  if (s < colour.minSaturation || s > colour.maxSaturation) return false;
  if (v < colour.value[0] || v > colour.value[1]) return false;
  if (!colour.hue) return true;
  const h = map.hue[i]!;
  const [lo, hi] = colour.hue;
  return (h >= lo && h <= hi) || (h + 360 >= lo && h + 360 <= hi);
}

/** Calls `each` for every pixel index inside a band. */
function forBand(map: PixelMap, band: Band, each: (i: number, x: number, y: number) => void) {
  const y0 = Math.max(0, Math.floor(band.top * map.height));
  const y1 = Math.min(map.height, Math.ceil(band.bottom * map.height));
  for (let y = y0; y < y1; y++) {
    for (let x = 0; x < map.width; x++) each(y * map.width + x, x, y);
  }
}

/** Fraction of pixels in a band that pass a test. */
export function shareWhere(
  map: PixelMap,
  band: Band,
  test: (i: number) => boolean,
): number {
  let hit = 0;
  let all = 0;
  forBand(map, band, (i) => {
    all++;
    if (test(i)) hit++;
  });
  return all === 0 ? 0 : hit / all;
}

/** Fraction of pixels in a band that count as a colour. */
export function colourShare(map: PixelMap, colour: ColourInfo, band: Band = WHOLE): number {
  return shareWhere(map, band, (i) => matchesColour(map, i, colour));
}

/** Mean and standard deviation of one channel over a band. */
export function meanAndDeviation(
  map: PixelMap,
  channel: "luma" | "saturation" | "warmth" | "value",
  band: Band = WHOLE,
): { mean: number; deviation: number } {
  const values = map[channel];
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  forBand(map, band, (i) => {
    const v = values[i]!;
    sum += v;
    sumSq += v * v;
    n++;
  });
  if (n === 0) return { mean: 0, deviation: 0 };
  const mean = sum / n;
  return { mean, deviation: Math.sqrt(Math.max(0, sumSq / n - mean * mean)) };
}

/**
 * The four look properties of a whole image. Saturation is averaged over pixels with some
 * light in them: in near-black pixels HSV saturation is noise, not colour anyone sees.
 */
export function measureLook(map: PixelMap): Record<LookProperty, number> {
  const luma = meanAndDeviation(map, "luma");
  let saturation = 0;
  let lit = 0;
  for (let i = 0; i < map.value.length; i++) {
    if (map.value[i]! < 0.2) continue;
    saturation += map.saturation[i]!;
    lit++;
  }
  return {
    brightness: luma.mean,
    contrast: luma.deviation,
    saturation: lit === 0 ? 0 : saturation / lit,
    warmth: meanAndDeviation(map, "warmth").mean,
  };
}

/** Edge energy of a band: mean absolute horizontal and vertical luma differences. */
export function edgeEnergy(map: PixelMap, band: Band = WHOLE): { dx: number; dy: number } {
  let dx = 0;
  let dy = 0;
  let n = 0;
  const { width, luma } = map;
  forBand(map, band, (i, x, y) => {
    if (x + 1 >= width || y + 1 >= map.height) return;
    dx += Math.abs(luma[i + 1]! - luma[i]!);
    dy += Math.abs(luma[i + width]! - luma[i]!);
    n++;
  });
  return n === 0 ? { dx: 0, dy: 0 } : { dx: dx / n, dy: dy / n };
}

/** Mean absolute 4-neighbour Laplacian of luma: fine detail and crispness. */
export function laplacianEnergy(map: PixelMap, band: Band = WHOLE): number {
  let sum = 0;
  let n = 0;
  const { width, height, luma } = map;
  forBand(map, band, (i, x, y) => {
    if (x === 0 || y === 0 || x === width - 1 || y === height - 1) return;
    sum += Math.abs(
      4 * luma[i]! - luma[i - 1]! - luma[i + 1]! - luma[i - width]! - luma[i + width]!,
    );
    n++;
  });
  return n === 0 ? 0 : sum / n;
}

/**
 * Counts small bright points in a band: pixels brighter than all eight neighbours by at least
 * `lift`, the way stars and snowflakes show up.
 */
export function countBrightPoints(map: PixelMap, band: Band, lift: number): number {
  let count = 0;
  const { width, height, luma } = map;
  forBand(map, band, (i, x, y) => {
    if (x === 0 || y === 0 || x === width - 1 || y === height - 1) return;
    const v = luma[i]!;
    let around = 0;
    for (const o of [-width - 1, -width, -width + 1, -1, 1, width - 1, width, width + 1]) {
      const u = luma[i + o]!;
      if (u >= v) return;
      around += u;
    }
    if (v - around / 8 >= lift) count++;
  });
  return count;
}

/**
 * Row (as a fraction of the height) of the horizon: where the most columns change brightness
 * sharply between the rows above and below. Column agreement keeps diagonal edges such as
 * cliffs and roofs from winning over a level horizon.
 */
export function horizonRow(map: PixelMap, from = 0.15, to = 0.9): number {
  const { width, height, luma } = map;
  const span = Math.max(2, Math.round(height / 30));
  // Prefix sums down each column make every band mean O(1).
  const prefix = new Float32Array((height + 1) * width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      prefix[(y + 1) * width + x] = prefix[y * width + x]! + luma[y * width + x]!;
    }
  }
  let best = 0.5;
  let bestScore = -1;
  const y0 = Math.max(span, Math.floor(from * height));
  const y1 = Math.min(height - span, Math.ceil(to * height));
  for (let y = y0; y < y1; y++) {
    let agree = 0;
    let total = 0;
    for (let x = 0; x < width; x++) {
      const above = (prefix[y * width + x]! - prefix[(y - span) * width + x]!) / span;
      const below = (prefix[(y + span) * width + x]! - prefix[y * width + x]!) / span;
      const diff = Math.abs(above - below);
      total += diff;
      if (diff > 0.04) agree++;
    }
    const score = agree + total / width;
    if (score > bestScore) {
      bestScore = score;
      best = y / height;
    }
  }
  return best;
}

/** Value of a channel at a percentile (0–1) over the whole image. */
export function percentile(values: Float32Array, p: number): number {
  const sorted = Float32Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/** Absolute 4-neighbour Laplacian of luma per pixel (0 on the border). */
export function laplacianMap(map: PixelMap): Float32Array {
  const { width, height, luma } = map;
  const out = new Float32Array(width * height);
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      out[i] = Math.abs(
        4 * luma[i]! - luma[i - 1]! - luma[i + 1]! - luma[i - width]! - luma[i + width]!,
      );
    }
  }
  return out;
}
