/**
 * Composes an SVG landscape from scene cues: a sky graded by time of day, sun, moon and stars,
 * mountains, dunes, water with reflections, trees, buildings, figures, boats and weather
 * overlays. Every element is drawn more fully the more strongly the prompt asks for it, and all
 * placement comes from a seeded generator so one seed gives one layout whatever the wording.
 *
 * @module
 */
import { mulberry32 } from "../util/hash.ts";
import {
  COLOURS,
  type Cue,
  dominantTime,
  findCue,
  hashString,
  renderAmount,
  type Rgb,
  type Subject,
  type TimeOfDay,
} from "./scene_cues.ts";

interface Palette {
  top: Rgb;
  horizon: Rgb;
  /** Multiplier for lit surfaces. */
  light: number;
}

const NEUTRAL: Palette = { top: [120, 160, 205], horizon: [205, 215, 220], light: 0.82 };

const PALETTES: Readonly<Record<TimeOfDay, Palette>> = {
  dawn: { top: [70, 86, 140], horizon: [250, 180, 130], light: 0.74 },
  morning: { top: [95, 155, 225], horizon: [250, 230, 185], light: 0.98 },
  noon: { top: [40, 120, 230], horizon: [185, 220, 255], light: 1.08 },
  afternoon: { top: [75, 140, 215], horizon: [245, 215, 170], light: 0.98 },
  sunset: { top: [50, 42, 110], horizon: [255, 130, 60], light: 0.66 },
  dusk: { top: [22, 28, 62], horizon: [120, 80, 120], light: 0.42 },
  night: { top: [3, 6, 16], horizon: [16, 24, 52], light: 0.2 },
};

/** Everything the drawing functions share. */
interface Ctx {
  w: number;
  h: number;
  /** Short side, for sizes that should not stretch with the aspect ratio. */
  s: number;
  horizon: number;
  palette: Palette;
  time: TimeOfDay | undefined;
  cues: readonly Cue[];
  seed: number;
  defs: string[];
  ids: number;
}

/** Composes the SVG for a prompt's cues at the given size and seed. */
export function composeSceneSvg(
  cues: readonly Cue[],
  width: number,
  height: number,
  seed: number,
  fallbackHash = 0,
): string {
  const has = (name: Subject) => amount(cues, "subject", name) > 0;
  const timeCue = dominantTime(cues);
  const time = timeCue?.name as TimeOfDay | undefined;
  let palette = NEUTRAL;
  if (time) {
    palette = mixPalette(NEUTRAL, PALETTES[time], 0.35 + 0.65 * renderAmount(timeCue!.strength));
  } else if (fallbackHash !== 0) {
    // With nothing recognisable to draw, the text still picks the light, so different prompts
    // never give the same picture.
    const t = ["morning", "afternoon", "dawn", "sunset"][fallbackHash % 4] as TimeOfDay;
    palette = mixPalette(NEUTRAL, PALETTES[t], 0.3 + (fallbackHash % 7) / 14);
  }
  const storm = amount(cues, "weather", "storm");
  if (storm > 0) {
    palette = {
      top: mix(palette.top, [38, 40, 48], 0.45 + 0.5 * storm),
      horizon: mix(palette.horizon, [92, 96, 104], 0.35 + 0.5 * storm),
      light: palette.light * (1 - 0.45 * storm),
    };
  }
  const horizonFraction = has("buildings") ? 0.72 : has("water") || has("dunes") ? 0.56 : 0.62;
  const ctx: Ctx = {
    w: width,
    h: height,
    s: Math.min(width, height),
    horizon: Math.round(height * horizonFraction),
    palette,
    time,
    cues,
    seed,
    defs: [],
    ids: 0,
  };

  const above: string[] = [];
  above.push(sky(ctx));
  if (has("stars") || time === "night") above.push(stars(ctx));
  if (has("moon")) above.push(moon(ctx));
  if (has("sun") || has("rays") || time === "dawn" || time === "sunset" || time === "noon") {
    above.push(sun(ctx));
  }
  if (has("clouds") || storm > 0) above.push(clouds(ctx));
  if (has("lightning") || storm > 0) above.push(lightning(ctx));
  if (has("mountains") || has("snowcaps")) above.push(mountains(ctx));
  if (has("hills")) above.push(hills(ctx));

  const body: string[] = [`<g id="above">${above.join("")}</g>`];
  if (has("water")) body.push(water(ctx));
  else if (has("dunes")) body.push(dunes(ctx));
  else body.push(ground(ctx));
  if (has("shimmer")) body.push(shimmer(ctx));
  if (has("buildings")) body.push(city(ctx));
  if (has("rocks") || has("lighthouse")) body.push(rocks(ctx));
  if (has("waves")) body.push(waves(ctx));
  if (has("lighthouse")) body.push(lighthouse(ctx));
  if (has("boats")) body.push(boats(ctx));
  if (has("path")) body.push(path(ctx));
  if (has("trees")) body.push(trees(ctx, "back"));
  if (has("house") || has("windows") && !has("buildings")) body.push(house(ctx));
  if (has("trees")) body.push(trees(ctx, "front"));
  if (has("animal")) body.push(animal(ctx));
  if (has("figure")) body.push(figure(ctx));
  if (has("rays")) body.push(rays(ctx));
  if (amount(cues, "weather", "mist") > 0) body.push(mist(ctx));
  if (amount(cues, "weather", "rain") > 0) body.push(rain(ctx));
  if (amount(cues, "weather", "snow") > 0) body.push(snowfall(ctx));

  return `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><defs>${
    ctx.defs.join("")
  }</defs>${body.join("")}</svg>`;
}

/** How fully a cue is rendered, 0 when the prompt does not ask for it. */
function amount(cues: readonly Cue[], kind: Cue["kind"], name: string): number {
  const cue = findCue(cues, kind, name);
  return cue ? renderAmount(cue.strength) : 0;
}

function words(ctx: Ctx, name: Subject): string[] {
  return findCue(ctx.cues, "subject", name)?.words ?? [];
}

/**
 * The colours asked for on a subject, each mixed into the subject's own colour as far as its
 * strength says; the subject's own colour when none was asked for.
 */
function tint(ctx: Ctx, subject: Subject, own: Rgb): Rgb[] {
  const asked = ctx.cues.filter((c) => c.kind === "colour" && c.subjects.includes(subject));
  if (asked.length === 0) return [own];
  return asked.map((cue) => {
    const info = COLOURS[cue.name]!;
    return mix(own, info.rgb, 0.3 + 0.7 * renderAmount(cue.strength));
  });
}

function rng(ctx: Ctx, layer: string): () => number {
  return mulberry32(ctx.seed ^ hashString(layer));
}

function id(ctx: Ctx, prefix: string): string {
  return `${prefix}${ctx.ids++}`;
}

function mix(a: Rgb, b: Rgb, t: number): Rgb {
  const k = Math.max(0, Math.min(1, t));
  return [a[0] + (b[0] - a[0]) * k, a[1] + (b[1] - a[1]) * k, a[2] + (b[2] - a[2]) * k];
}

function mixPalette(a: Palette, b: Palette, t: number): Palette {
  return {
    top: mix(a.top, b.top, t),
    horizon: mix(a.horizon, b.horizon, t),
    light: a.light + (b.light - a.light) * t,
  };
}

function lit(c: Rgb, light: number): Rgb {
  return [c[0] * light, c[1] * light, c[2] * light];
}

function hex(c: Rgb): string {
  const ch = (v: number) => Math.max(0, Math.min(255, Math.round(v))).toString(16).padStart(2, "0");
  return `#${ch(c[0])}${ch(c[1])}${ch(c[2])}`;
}

function n(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

function linear(ctx: Ctx, stops: [number, Rgb, number?][], vertical = true): string {
  const gid = id(ctx, "g");
  ctx.defs.push(
    `<linearGradient id="${gid}" x1="0" y1="0" x2="${vertical ? 0 : 1}" y2="${vertical ? 1 : 0}">${
      stops.map(([o, c, a]) =>
        `<stop offset="${o}" stop-color="${hex(c)}"${
          a === undefined ? "" : ` stop-opacity="${a}"`
        }/>`
      ).join("")
    }</linearGradient>`,
  );
  return `url(#${gid})`;
}

function radial(ctx: Ctx, stops: [number, Rgb, number][]): string {
  const gid = id(ctx, "r");
  ctx.defs.push(
    `<radialGradient id="${gid}">${
      stops.map(([o, c, a]) => `<stop offset="${o}" stop-color="${hex(c)}" stop-opacity="${a}"/>`)
        .join("")
    }</radialGradient>`,
  );
  return `url(#${gid})`;
}

function sky(ctx: Ctx): string {
  // A second colour asked of the sky goes to the horizon, as in "orange and purple sky".
  const colours = tint(ctx, "sky", ctx.palette.top);
  const top = colours[0]!;
  const low = colours.length > 1 ? mix(ctx.palette.horizon, colours[1]!, 0.6) : ctx.palette.horizon;
  const fill = linear(ctx, [[0, top], [1, low]]);
  return `<rect x="0" y="0" width="${ctx.w}" height="${ctx.horizon + 2}" fill="${fill}"/>`;
}

function sunPosition(ctx: Ctx): [number, number] {
  const r = rng(ctx, "sun");
  const x = ctx.w * (0.55 + 0.25 * r());
  const high = { noon: 0.14, morning: 0.32, afternoon: 0.3, dawn: 0.86, sunset: 0.84 } as const;
  const f = ctx.time && ctx.time in high ? high[ctx.time as keyof typeof high] : 0.35;
  return [x, ctx.horizon * f];
}

function sun(ctx: Ctx): string {
  const a = Math.max(
    amount(ctx.cues, "subject", "sun"),
    0.5 * amount(ctx.cues, "subject", "rays"),
    0.3,
  );
  const [x, y] = sunPosition(ctx);
  const low = ctx.time === "sunset" || ctx.time === "dawn";
  const own: Rgb = low ? [255, 170, 90] : [255, 250, 225];
  const c = tint(ctx, "sun", own)[0]!;
  const radius = ctx.s * 0.035 * (0.7 + 0.9 * a);
  const glow = radial(ctx, [[0, c, 0.85], [0.35, c, 0.35], [1, c, 0]]);
  return `<circle cx="${n(x)}" cy="${n(y)}" r="${n(radius * 5)}" fill="${glow}"/>` +
    `<circle cx="${n(x)}" cy="${n(y)}" r="${n(radius)}" fill="${
      hex(mix(c, [255, 255, 255], 0.6))
    }"/>`;
}

function rays(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "rays");
  const [sx, sy] = sunPosition(ctx);
  const c = tint(ctx, "rays", [255, 226, 150])[0]!;
  const r = rng(ctx, "rays");
  const count = 5 + Math.round(6 * a);
  let out = "";
  for (let i = 0; i < count; i++) {
    const angle = Math.PI * (0.35 + 0.6 * r());
    const spread = 0.03 + 0.05 * r();
    const len = ctx.h * 1.6;
    const x1 = sx + Math.cos(angle - spread) * len;
    const y1 = sy + Math.sin(angle - spread) * len;
    const x2 = sx + Math.cos(angle + spread) * len;
    const y2 = sy + Math.sin(angle + spread) * len;
    out += `<polygon points="${n(sx)},${n(sy)} ${n(x1)},${n(y1)} ${n(x2)},${n(y2)}" fill="${
      hex(c)
    }" opacity="${n(0.08 + 0.22 * a)}"/>`;
  }
  // The light itself colours the air, not only the beams.
  out += `<rect x="0" y="0" width="${ctx.w}" height="${ctx.h}" fill="${hex(c)}" opacity="${
    n(0.06 + 0.2 * a)
  }"/>`;
  return out;
}

function moon(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "moon");
  const r = rng(ctx, "moon");
  const x = ctx.w * (0.18 + 0.2 * r());
  const y = ctx.horizon * (0.22 + 0.15 * r());
  const c = tint(ctx, "moon", [246, 242, 222])[0]!;
  const radius = ctx.s * 0.04 * (0.7 + 0.9 * a);
  const glow = radial(ctx, [[0, c, 0.55], [0.3, c, 0.18], [1, c, 0]]);
  const crater = hex(mix(c, [150, 150, 150], 0.35));
  return `<circle cx="${n(x)}" cy="${n(y)}" r="${n(radius * 4.5)}" fill="${glow}"/>` +
    `<circle cx="${n(x)}" cy="${n(y)}" r="${n(radius)}" fill="${hex(c)}"/>` +
    `<circle cx="${n(x - radius * 0.3)}" cy="${n(y - radius * 0.2)}" r="${
      n(radius * 0.22)
    }" fill="${crater}" opacity="0.5"/>` +
    `<circle cx="${n(x + radius * 0.35)}" cy="${n(y + radius * 0.3)}" r="${
      n(radius * 0.15)
    }" fill="${crater}" opacity="0.5"/>`;
}

function stars(ctx: Ctx): string {
  const a = Math.max(amount(ctx.cues, "subject", "stars"), 0.2);
  const r = rng(ctx, "stars");
  const count = Math.round(30 + 320 * a);
  const c = tint(ctx, "stars", [255, 252, 235])[0]!;
  let out = "";
  for (let i = 0; i < count; i++) {
    const x = r() * ctx.w;
    const y = r() * ctx.horizon * 0.92;
    const radius = Math.max(0.8, ctx.s / 520) * (0.6 + r() * 1.1) * (0.8 + 0.7 * a);
    out += `<circle cx="${n(x)}" cy="${n(y)}" r="${n(radius)}" fill="${hex(c)}" opacity="${
      n(0.55 + 0.45 * r())
    }"/>`;
  }
  return out;
}

function clouds(ctx: Ctx): string {
  const storm = amount(ctx.cues, "weather", "storm");
  const a = Math.max(amount(ctx.cues, "subject", "clouds"), storm);
  const r = rng(ctx, "clouds");
  const own: Rgb = storm > 0
    ? [70, 74, 84]
    : lit([240, 242, 246], Math.min(1, ctx.palette.light + 0.2));
  const c = tint(ctx, "clouds", own)[0]!;
  const count = storm > 0 ? 10 + Math.round(16 * a) : 3 + Math.round(6 * a);
  let out = "";
  if (storm > 0) {
    // A break of pale light under the storm front: the contrast that makes a storm dramatic.
    const band = linear(ctx, [[0, [230, 226, 210], 0], [0.7, [236, 232, 214], 1], [1, [
      236,
      232,
      214,
    ], 0.4]]);
    out += `<rect x="0" y="${n(ctx.horizon * 0.55)}" width="${ctx.w}" height="${
      n(ctx.horizon * 0.45)
    }" fill="${band}" opacity="${n(0.15 + 0.6 * storm)}"/>`;
  }
  for (let i = 0; i < count; i++) {
    const cx = r() * ctx.w;
    const cy = ctx.horizon * (storm > 0 ? 0.05 + 0.5 * r() : 0.1 + 0.35 * r());
    const rx = ctx.w * (0.08 + 0.12 * r()) * (storm > 0 ? 1.4 : 1);
    const ry = rx * (0.3 + 0.15 * r());
    const shade = mix(c, storm > 0 ? [30, 32, 38] : [255, 255, 255], 0.35 * r());
    out += `<ellipse cx="${n(cx)}" cy="${n(cy)}" rx="${n(rx)}" ry="${n(ry)}" fill="${
      hex(shade)
    }" opacity="${n(0.55 + 0.4 * a)}"/>`;
  }
  return out;
}

function lightning(ctx: Ctx): string {
  const a = Math.max(
    amount(ctx.cues, "subject", "lightning"),
    0.5 * amount(ctx.cues, "weather", "storm"),
  );
  const r = rng(ctx, "lightning");
  const bolts = 1 + (a > 0.6 ? 1 : 0) + (a > 0.8 ? 1 : 0);
  let out = "";
  for (let b = 0; b < bolts; b++) {
    let x = ctx.w * (0.25 + 0.5 * r());
    let y = ctx.horizon * 0.08;
    const pts = [`${n(x)},${n(y)}`];
    while (y < ctx.horizon * 0.95) {
      x += (r() - 0.5) * ctx.w * 0.06;
      y += ctx.horizon * (0.05 + 0.07 * r());
      pts.push(`${n(x)},${n(y)}`);
    }
    const line = pts.join(" ");
    out +=
      `<polyline points="${line}" fill="none" stroke="#d8ccff" stroke-width="${
        n(ctx.s / 60 * (0.5 + a))
      }" opacity="${n(0.2 + 0.3 * a)}" stroke-linejoin="round"/>` +
      `<polyline points="${line}" fill="none" stroke="#ffffff" stroke-width="${
        n(ctx.s / 260 * (0.6 + a))
      }" stroke-linejoin="round"/>`;
  }
  return out;
}

function ridge(
  ctx: Ctx,
  r: () => number,
  base: number,
  height: number,
  peaks: number,
): [number, number][] {
  const pts: [number, number][] = [[0, base]];
  const step = ctx.w / peaks;
  for (let i = 0; i <= peaks; i++) {
    const px = i * step + (r() - 0.5) * step * 0.5;
    pts.push([px, base - height * (0.55 + 0.45 * r())]);
    if (i < peaks) pts.push([px + step * 0.5, base - height * (0.2 + 0.25 * r())]);
  }
  pts.push([ctx.w, base]);
  return pts;
}

function mountains(ctx: Ctx): string {
  const a = Math.max(
    amount(ctx.cues, "subject", "mountains"),
    amount(ctx.cues, "subject", "snowcaps"),
  );
  const capA = amount(ctx.cues, "subject", "snowcaps") || 0.6 * amount(ctx.cues, "weather", "snow");
  const r = rng(ctx, "mountains");
  const colours = tint(ctx, "mountains", [92, 100, 122]);
  const light = ctx.palette.light;
  let out = "";
  for (const layer of [0, 1]) {
    const height = ctx.horizon * (layer === 0 ? 0.55 : 0.38) * (0.75 + 0.45 * a);
    const pts = ridge(ctx, r, ctx.horizon + 1, height, layer === 0 ? 4 : 6);
    const haze = layer === 0 ? 0.45 * (1 - a) : 0.2 * (1 - a);
    const top = mix(lit(colours[0]!, Math.min(1.1, light + 0.25)), ctx.palette.horizon, haze);
    const bottom = mix(
      lit(colours[colours.length - 1]!, light * 0.8),
      ctx.palette.horizon,
      haze * 0.5,
    );
    const fill = linear(ctx, [[0, top], [1, bottom]]);
    out += `<polygon points="${pts.map(([x, y]) => `${n(x)},${n(y)}`).join(" ")}" fill="${fill}"/>`;
    if (capA > 0) {
      const cap = hex(mix(lit([248, 250, 255], Math.min(1.15, light + 0.35)), colours[0]!, 0.25));
      for (let i = 1; i < pts.length - 1; i += 2) {
        const [px, py] = pts[i]!;
        const depth = (ctx.horizon - py) * (0.18 + 0.32 * capA);
        const spread = depth * 0.9;
        out += `<polygon points="${n(px)},${n(py)} ${n(px + spread)},${n(py + depth)} ${
          n(px + spread * 0.3)
        },${n(py + depth * 0.8)} ${n(px - spread * 0.2)},${n(py + depth)} ${n(px - spread)},${
          n(py + depth * 0.9)
        }" fill="${cap}"/>`;
      }
    }
  }
  return out;
}

function hills(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "hills");
  const r = rng(ctx, "hills");
  const c = lit(tint(ctx, "hills", [80, 130, 70])[0]!, ctx.palette.light);
  let out = "";
  for (let i = 0; i < 4; i++) {
    const cx = ctx.w * (i / 3) + (r() - 0.5) * ctx.w * 0.2;
    const rx = ctx.w * (0.3 + 0.2 * r());
    const ry = ctx.horizon * (0.1 + 0.15 * a);
    out += `<ellipse cx="${n(cx)}" cy="${n(ctx.horizon + 2)}" rx="${n(rx)}" ry="${n(ry)}" fill="${
      hex(mix(c, [0, 0, 0], 0.1 * i))
    }"/>`;
  }
  return out;
}

function ground(ctx: Ctx): string {
  const snow = amount(ctx.cues, "weather", "snow");
  const light = ctx.palette.light;
  let own: Rgb = has(ctx, "buildings") ? [52, 54, 62] : [78, 112, 64];
  if (snow > 0) {
    own = mix(own, lit([238, 242, 250], Math.min(1.1, light + 0.45) / light), 0.45 + 0.55 * snow);
  }
  const c = tint(ctx, "ground", own)[0]!;
  const near = lit(c, has(ctx, "buildings") ? Math.max(light, 0.5) : light);
  const far = mix(near, ctx.palette.horizon, 0.3);
  const fill = linear(ctx, [[0, far], [1, near]]);
  return `<rect x="0" y="${ctx.horizon}" width="${ctx.w}" height="${
    ctx.h - ctx.horizon
  }" fill="${fill}"/>`;
}

function has(ctx: Ctx, name: Subject): boolean {
  return amount(ctx.cues, "subject", name) > 0;
}

function water(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "water");
  const reflect = amount(ctx.cues, "subject", "reflections");
  const light = ctx.palette.light;
  const own: Rgb = [40, 90, 140];
  const c = tint(ctx, "water", own)[0]!;
  const deep = lit(c, Math.max(light, 0.3));
  const near = mix(lit(c, Math.max(light, 0.3) * 1.1), ctx.palette.horizon, 0.3 * (1 - a));
  const fill = linear(ctx, [[0, mix(near, ctx.palette.horizon, 0.35)], [1, deep]]);
  const clip = id(ctx, "c");
  ctx.defs.push(
    `<clipPath id="${clip}"><rect x="0" y="${ctx.horizon}" width="${ctx.w}" height="${
      ctx.h - ctx.horizon
    }"/></clipPath>`,
  );
  const opacity = 0.22 + 0.5 * reflect + 0.1 * a;
  let out =
    `<rect x="0" y="${ctx.horizon}" width="${ctx.w}" height="${
      ctx.h - ctx.horizon
    }" fill="${fill}"/>` +
    `<g clip-path="url(#${clip})" opacity="${
      n(opacity)
    }"><use xlink:href="#above" transform="translate(0 ${2 * ctx.horizon}) scale(1 -1)"/></g>`;
  const r = rng(ctx, "ripples");
  const ripple = hex(mix(deep, [255, 255, 255], 0.25));
  for (let i = 0; i < 24; i++) {
    const y = ctx.horizon + (ctx.h - ctx.horizon) * Math.pow(r(), 0.8);
    const x = r() * ctx.w;
    out += `<rect x="${n(x)}" y="${n(y)}" width="${n(ctx.w * (0.05 + 0.15 * r()))}" height="${
      n(Math.max(1, ctx.s / 400))
    }" fill="${ripple}" opacity="0.35"/>`;
  }
  return out;
}

function dunes(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "dunes");
  const r = rng(ctx, "dunes");
  const c = tint(ctx, "dunes", [214, 184, 140])[0]!;
  const light = ctx.palette.light;
  let out = `<rect x="0" y="${ctx.horizon}" width="${ctx.w}" height="${
    ctx.h - ctx.horizon
  }" fill="${hex(mix(lit(c, light), ctx.palette.horizon, 0.6 * (1 - a)))}"/>`;
  const layers = 4;
  for (let i = 0; i < layers; i++) {
    // Emphasised dunes rise further up the frame.
    const top = ctx.horizon + (ctx.h - ctx.horizon) * (i / layers) * 0.8 - ctx.h * 0.1 * a;
    const crest = ctx.h * (0.04 + 0.06 * a) * (1 + r());
    const x1 = ctx.w * r();
    // Far dunes fade into the sky unless the prompt insists on them.
    const haze = (1 - i / layers) * 0.6 * (1 - a);
    const sunlit = mix(lit(c, light * (0.95 + 0.05 * i)), ctx.palette.horizon, haze);
    const shade = mix(lit(c, light * 0.72), ctx.palette.horizon, haze);
    const fill = linear(ctx, [[0, sunlit], [0.6, sunlit], [1, shade]], false);
    out += `<path d="M0 ${n(top + crest)} Q ${n(x1)} ${n(top - crest)} ${n(ctx.w * 0.6)} ${
      n(top + crest * 0.3)
    } T ${ctx.w} ${n(top)} L ${ctx.w} ${ctx.h} L 0 ${ctx.h} Z" fill="${fill}"/>`;
  }
  return out;
}

function shimmer(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "shimmer");
  const fill = linear(ctx, [[0, [255, 255, 255], 0], [0.5, [255, 250, 235], 0.8], [1, [
    255,
    255,
    255,
  ], 0]]);
  return `<rect x="0" y="${n(ctx.horizon - ctx.h * 0.04)}" width="${ctx.w}" height="${
    n(ctx.h * 0.08)
  }" fill="${fill}" opacity="${n(0.2 + 0.5 * a)}"/>`;
}

function city(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "buildings");
  const signA = amount(ctx.cues, "subject", "signs");
  const r = rng(ctx, "city");
  const light = ctx.palette.light;
  const wall = lit(tint(ctx, "buildings", [70, 76, 96])[0]!, Math.max(light, 0.35));
  const windowColour = tint(ctx, "windows", [255, 214, 130])[0]!;
  const signColours = tint(ctx, "signs", [255, 60, 90]).concat(
    ctx.cues.some((c) => c.kind === "colour" && c.subjects.includes("signs"))
      ? []
      : [[40, 220, 230]],
  );
  const count = 6 + Math.round(5 * a);
  const slot = ctx.w / count;
  let out = "";
  const signs: string[] = [];
  const glowRefl: string[] = [];
  for (let i = 0; i < count; i++) {
    const bw = slot * (0.8 + 0.35 * r());
    const x = i * slot - bw * 0.1;
    const bh = ctx.horizon * (0.45 + 0.45 * r()) * (0.8 + 0.3 * a);
    const y = ctx.horizon - bh;
    const shade = mix(wall, [0, 0, 0], 0.3 * r());
    out += `<rect x="${n(x)}" y="${n(y)}" width="${n(bw)}" height="${n(bh + 2)}" fill="${
      hex(shade)
    }"/>`;
    const cols = 3 + Math.floor(r() * 3);
    const rows = Math.floor(bh / (ctx.s * 0.05));
    const ww = bw / (cols * 2 + 1);
    for (let row = 0; row < rows; row++) {
      for (let col = 0; col < cols; col++) {
        if (r() > (light < 0.5 ? 0.3 : 0.15)) continue;
        out += `<rect x="${n(x + ww * (1 + col * 2))}" y="${
          n(y + ctx.s * 0.02 + row * ctx.s * 0.05)
        }" width="${n(ww)}" height="${n(ctx.s * 0.025)}" fill="${
          hex(windowColour)
        }" opacity="0.85"/>`;
      }
    }
    if (signA > 0 && r() < 0.35 + 0.6 * signA) {
      const c = signColours[i % signColours.length]!;
      const vertical = r() < 0.5;
      const sw = vertical ? bw * (0.16 + 0.2 * signA) : bw * (0.55 + 0.3 * signA);
      const sh = vertical ? bh * (0.28 + 0.3 * signA) : ctx.s * (0.05 + 0.07 * signA);
      const sx = x + (bw - sw) * r();
      const sy = y + bh * (0.1 + 0.4 * r());
      const pad = ctx.s * 0.02 * (1 + 2 * signA);
      signs.push(
        `<rect x="${n(sx - pad)}" y="${n(sy - pad)}" width="${n(sw + 2 * pad)}" height="${
          n(sh + 2 * pad)
        }" rx="${n(pad)}" fill="${hex(c)}" opacity="${n(0.3 + 0.4 * signA)}"/>` +
          `<rect x="${n(sx)}" y="${n(sy)}" width="${n(sw)}" height="${n(sh)}" fill="${
            hex(mix(c, [255, 255, 255], 0.15))
          }"/>`,
      );
      glowRefl.push(
        `<rect x="${n(sx)}" y="${ctx.horizon}" width="${n(sw)}" height="${
          n((ctx.h - ctx.horizon) * (0.5 + 0.5 * r()))
        }" fill="${hex(c)}" opacity="${
          n(0.15 + 0.3 * amount(ctx.cues, "subject", "reflections"))
        }"/>`,
      );
    }
  }
  return out + signs.join("") + glowRefl.join("");
}

/** Highest point of the cliff on one side; the lighthouse stands on the right one. */
function cliffTop(ctx: Ctx, side: 0 | 1): number {
  const a = Math.max(amount(ctx.cues, "subject", "rocks"), 0.4);
  const raise = side === 1 && has(ctx, "lighthouse") ? ctx.h * 0.08 : 0;
  return ctx.horizon + (ctx.h - ctx.horizon) * (0.15 - 0.35 * a) - raise;
}

function rocks(ctx: Ctx): string {
  const a = Math.max(amount(ctx.cues, "subject", "rocks"), 0.4);
  const r = rng(ctx, "rocks");
  const c = lit(tint(ctx, "rocks", [86, 84, 88])[0]!, Math.max(ctx.palette.light, 0.3));
  let out = "";
  // A cliff on each side, the lighthouse's on the right.
  for (const side of [0, 1] as const) {
    const width = ctx.w * (0.22 + 0.2 * a) * (side === 1 && has(ctx, "lighthouse") ? 1.1 : 0.9);
    const x0 = side === 0 ? 0 : ctx.w - width;
    const top = cliffTop(ctx, side);
    const pts: string[] = [];
    pts.push(`${n(x0)},${ctx.h}`);
    const steps = 7;
    for (let i = 0; i <= steps; i++) {
      const t = i / steps;
      const edge = side === 0 ? t : 1 - t;
      const y = top + (ctx.h - top) * Math.pow(edge, 2.2) * 0.9 + (r() - 0.5) * ctx.h * 0.03;
      pts.push(`${n(x0 + width * t)},${n(y)}`);
    }
    pts.push(`${n(x0 + width)},${ctx.h}`);
    out += `<polygon points="${pts.join(" ")}" fill="${hex(mix(c, [0, 0, 0], 0.15 * side))}"/>`;
  }
  return out;
}

function waves(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "waves");
  const r = rng(ctx, "waves");
  const c = tint(ctx, "waves", [236, 240, 244])[0]!;
  const count = 8 + Math.round(26 * a);
  let out = "";
  for (let i = 0; i < count; i++) {
    const y = ctx.horizon + (ctx.h - ctx.horizon) * (0.2 + 0.75 * r());
    const x = ctx.w * r();
    const len = ctx.w * (0.06 + 0.12 * r()) * (0.7 + 0.6 * a);
    const amp = ctx.h * 0.02 * (0.5 + a);
    out += `<path d="M${n(x - len / 2)} ${n(y)} Q ${n(x)} ${n(y - amp)} ${n(x + len / 2)} ${
      n(y)
    }" stroke="${hex(c)}" stroke-width="${n(ctx.s / 90 * (0.6 + a))}" fill="none" opacity="${
      n(0.6 + 0.35 * a)
    }" stroke-linecap="round"/>`;
  }
  return out;
}

function lighthouse(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "lighthouse");
  const height = ctx.h * (0.2 + 0.12 * a);
  const width = height * 0.16;
  const x = ctx.w * 0.93;
  const base = cliffTop(ctx, 1) + ctx.h * 0.01;
  const light = Math.max(ctx.palette.light, 0.45);
  const white = hex(lit([240, 238, 232], light));
  const red = hex(lit([200, 40, 40], light));
  const beam = ctx.palette.light < 0.6;
  let out = `<polygon points="${n(x - width / 2)},${n(base)} ${n(x + width / 2)},${n(base)} ${
    n(x + width * 0.35)
  },${n(base - height)} ${n(x - width * 0.35)},${n(base - height)}" fill="${white}"/>`;
  for (let i = 1; i < 4; i += 2) {
    const y = base - height * (i / 4);
    out += `<rect x="${n(x - width * 0.45)}" y="${n(y - height / 8)}" width="${
      n(width * 0.9)
    }" height="${n(height / 8)}" fill="${red}"/>`;
  }
  const ly = base - height - width * 0.4;
  out += `<rect x="${n(x - width * 0.4)}" y="${n(ly)}" width="${n(width * 0.8)}" height="${
    n(width * 0.5)
  }" fill="#ffe9a0"/>`;
  if (beam) {
    out += `<polygon points="${n(x)},${n(ly + width * 0.25)} ${n(x - ctx.w * 0.5)},${
      n(ly - ctx.h * 0.08)
    } ${n(x - ctx.w * 0.5)},${n(ly + ctx.h * 0.06)}" fill="#fff1b8" opacity="${
      n(0.12 + 0.15 * a)
    }"/>`;
  }
  return out;
}

function boats(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "boats");
  const r = rng(ctx, "boats");
  const count = 2 + Math.round(3 * a);
  const light = Math.max(ctx.palette.light, 0.3);
  const hull = hex(lit(tint(ctx, "boats", [120, 60, 40])[0]!, light));
  const sail = hex(lit([235, 230, 215], light + 0.1));
  let out = "";
  for (let i = 0; i < count; i++) {
    const x = ctx.w * (0.3 + 0.45 * r());
    const y = ctx.horizon + (ctx.h - ctx.horizon) * (0.15 + 0.55 * r());
    const size = ctx.s * (0.05 + 0.05 * a) *
      (0.6 + 0.8 * (y - ctx.horizon) / (ctx.h - ctx.horizon));
    out +=
      `<polygon points="${n(x - size)},${n(y)} ${n(x + size)},${n(y)} ${n(x + size * 0.7)},${
        n(y + size * 0.35)
      } ${n(x - size * 0.7)},${n(y + size * 0.35)}" fill="${hull}"/>` +
      `<line x1="${n(x)}" y1="${n(y)}" x2="${n(x)}" y2="${
        n(y - size * 1.6)
      }" stroke="${hull}" stroke-width="${n(Math.max(1, size / 12))}"/>` +
      `<polygon points="${n(x + size * 0.05)},${n(y - size * 1.5)} ${n(x + size * 0.8)},${
        n(y - size * 0.15)
      } ${n(x + size * 0.05)},${n(y - size * 0.15)}" fill="${sail}"/>`;
    if (ctx.palette.light < 0.5) {
      out += `<circle cx="${n(x)}" cy="${n(y - size * 1.6)}" r="${
        n(size * 0.12)
      }" fill="#ffd98a"/>`;
    }
  }
  return out;
}

function path(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "path");
  const c = lit(tint(ctx, "path", [176, 150, 110])[0]!, ctx.palette.light);
  const half = ctx.w * (0.12 + 0.1 * a);
  const cx = ctx.w * 0.5;
  return `<polygon points="${n(cx - half)},${ctx.h} ${n(cx + half)},${ctx.h} ${
    n(cx + ctx.w * 0.01)
  },${n(ctx.horizon + 2)} ${n(cx - ctx.w * 0.01)},${n(ctx.horizon + 2)}" fill="${
    hex(c)
  }" opacity="${n(0.6 + 0.4 * a)}"/>`;
}

function trees(ctx: Ctx, layer: "back" | "front"): string {
  const cue = findCue(ctx.cues, "subject", "trees")!;
  const a = renderAmount(cue.strength);
  const pine = cue.words.some((w) => w.startsWith("pine")) ||
    amount(ctx.cues, "weather", "snow") > 0 || has(ctx, "mountains");
  const forest = cue.words.some((w) => w === "forest" || w === "woods" || w === "woodland");
  const r = rng(ctx, `trees-${layer}`);
  const colours = tint(ctx, "trees", [48, 112, 56]);
  const light = ctx.palette.light;
  const gap = has(ctx, "path") || has(ctx, "house") || has(ctx, "figure") ? 0.16 : 0;
  const count = Math.round((forest ? 8 : 4) + (forest ? 12 : 6) * a) / (layer === "back" ? 1 : 2);
  const mist = amount(ctx.cues, "weather", "mist");
  const water = has(ctx, "water");
  let out = "";
  for (let i = 0; i < count; i++) {
    let x = r() * ctx.w;
    if (gap > 0 && Math.abs(x - ctx.w / 2) < ctx.w * gap) {
      x += x < ctx.w / 2 ? -ctx.w * gap : ctx.w * gap;
    }
    if (water && Math.abs(x - ctx.w / 2) < ctx.w * 0.3) {
      x = x < ctx.w / 2 ? x * 0.4 : ctx.w - (ctx.w - x) * 0.4;
    }
    const depth = layer === "back" ? 0.3 + 0.4 * r() : 0.8 + 0.2 * r();
    const base = water
      ? ctx.h * (0.92 + 0.08 * depth)
      : ctx.horizon + (ctx.h - ctx.horizon) * depth;
    const height = ctx.h * (forest ? 0.45 : 0.3) * (0.6 + 0.5 * depth) * (0.75 + 0.45 * a) *
      (0.8 + 0.4 * r());
    const own = colours[i % colours.length]!;
    // Far trees fade into the air, more so in mist and when the prompt barely mentions them.
    const fade = (1 - depth) * (0.25 + 0.5 * mist) * (1.2 - a);
    const leaf = mix(lit(own, light * (0.75 + 0.3 * depth)), ctx.palette.horizon, fade);
    const trunk = mix(lit([84, 58, 40], light * 0.8), ctx.palette.horizon, fade);
    if (pine) {
      const w = height * 0.38;
      out += `<rect x="${n(x - w * 0.06)}" y="${n(base - height * 0.15)}" width="${
        n(w * 0.12)
      }" height="${n(height * 0.15)}" fill="${hex(trunk)}"/>`;
      for (let k = 0; k < 3; k++) {
        const ty = base - height * (0.12 + 0.28 * k);
        const tw = w * (1 - 0.25 * k);
        out += `<polygon points="${n(x - tw / 2)},${n(ty)} ${n(x + tw / 2)},${n(ty)} ${n(x)},${
          n(ty - height * 0.42)
        }" fill="${hex(leaf)}"/>`;
        if (amount(ctx.cues, "weather", "snow") > 0) {
          out += `<polygon points="${n(x - tw * 0.12)},${n(ty - height * 0.32)} ${
            n(x + tw * 0.12)
          },${n(ty - height * 0.32)} ${n(x)},${
            n(ty - height * 0.42)
          }" fill="#e8eef6" opacity="0.8"/>`;
        }
      }
    } else {
      const tw = height * 0.06;
      out += `<rect x="${n(x - tw / 2)}" y="${n(base - height)}" width="${n(tw)}" height="${
        n(height)
      }" fill="${hex(trunk)}"/>`;
      const crown = height * 0.22;
      for (let k = 0; k < 4; k++) {
        const cx = x + (r() - 0.5) * crown * 1.4;
        const cy = base - height * (0.7 + 0.25 * r());
        const shade = mix(leaf, [0, 0, 0], 0.15 * r());
        out += `<circle cx="${n(cx)}" cy="${n(cy)}" r="${n(crown * (0.7 + 0.5 * r()))}" fill="${
          hex(shade)
        }"/>`;
      }
    }
  }
  return out;
}

function house(ctx: Ctx): string {
  const a = Math.max(amount(ctx.cues, "subject", "house"), 0.4);
  const winA = Math.max(amount(ctx.cues, "subject", "windows"), 0.3);
  const light = ctx.palette.light;
  const w = ctx.w * 0.2 * (0.8 + 0.4 * a);
  const h = w * 0.6;
  const x = ctx.w * 0.5 - w / 2;
  const base = ctx.horizon + (ctx.h - ctx.horizon) * 0.45;
  const wall = hex(lit(tint(ctx, "house", [120, 78, 46])[0]!, Math.max(light, 0.3)));
  const snow = amount(ctx.cues, "weather", "snow") > 0;
  const roof = snow
    ? hex(lit([235, 240, 248], Math.min(1, light + 0.45)))
    : hex(lit([70, 44, 36], light));
  const glow = tint(ctx, "windows", [255, 196, 90])[0]!;
  let out =
    `<rect x="${n(x + w * 0.65)}" y="${n(base - h - w * 0.35)}" width="${n(w * 0.08)}" height="${
      n(w * 0.3)
    }" fill="${wall}"/>` +
    `<rect x="${n(x)}" y="${n(base - h)}" width="${n(w)}" height="${n(h)}" fill="${wall}"/>` +
    `<polygon points="${n(x - w * 0.1)},${n(base - h)} ${n(x + w * 1.1)},${n(base - h)} ${
      n(x + w / 2)
    },${n(base - h - w * 0.38)}" fill="${roof}"/>`;
  const ws = w * (0.14 + 0.08 * winA);
  const halo = radial(ctx, [[0, glow, 0.7], [1, glow, 0]]);
  for (const fx of [0.18, 0.62]) {
    const wx = x + w * fx;
    const wy = base - h * 0.7;
    out +=
      `<circle cx="${n(wx + ws / 2)}" cy="${n(wy + ws / 2)}" r="${
        n(ws * (1 + 2.5 * winA))
      }" fill="${halo}"/>` +
      `<rect x="${n(wx)}" y="${n(wy)}" width="${n(ws)}" height="${n(ws)}" fill="${hex(glow)}"/>`;
  }
  out += `<rect x="${n(x + w * 0.42)}" y="${n(base - h * 0.55)}" width="${n(w * 0.14)}" height="${
    n(h * 0.55)
  }" fill="${hex(lit([60, 36, 24], light))}"/>`;
  return out;
}

function animal(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "animal");
  const s = ctx.s * (0.05 + 0.04 * a);
  const x = ctx.w * 0.72;
  const y = ctx.horizon + (ctx.h - ctx.horizon) * 0.2;
  const c = hex(lit(tint(ctx, "animal", [96, 66, 40])[0]!, ctx.palette.light * 0.8));
  const leg = (lx: number) =>
    `<rect x="${n(x + lx * s)}" y="${n(y)}" width="${n(s * 0.08)}" height="${
      n(s * 0.7)
    }" fill="${c}"/>`;
  return `<ellipse cx="${n(x)}" cy="${n(y)}" rx="${n(s * 0.6)}" ry="${n(s * 0.25)}" fill="${c}"/>` +
    `<ellipse cx="${n(x - s * 0.05)}" cy="${n(y - s * 0.25)}" rx="${n(s * 0.25)}" ry="${
      n(s * 0.22)
    }" fill="${c}"/>` +
    `<polygon points="${n(x + s * 0.45)},${n(y - s * 0.1)} ${n(x + s * 0.75)},${n(y - s * 0.65)} ${
      n(x + s * 0.85)
    },${n(y - s * 0.6)} ${n(x + s * 0.6)},${n(y + s * 0.05)}" fill="${c}"/>` +
    `<ellipse cx="${n(x + s * 0.85)}" cy="${n(y - s * 0.65)}" rx="${n(s * 0.14)}" ry="${
      n(s * 0.07)
    }" fill="${c}"/>` +
    leg(-0.45) + leg(-0.3) + leg(0.3) + leg(0.42);
}

function figure(ctx: Ctx): string {
  const a = amount(ctx.cues, "subject", "figure");
  const h = ctx.h * (0.14 + 0.08 * a);
  const x = ctx.w * 0.5;
  const base = ctx.horizon + (ctx.h - ctx.horizon) * 0.75;
  const c = hex(tint(ctx, "figure", [22, 22, 28])[0]!);
  let out = `<circle cx="${n(x)}" cy="${n(base - h * 0.88)}" r="${n(h * 0.08)}" fill="${c}"/>` +
    `<polygon points="${n(x - h * 0.12)},${n(base - h * 0.1)} ${n(x + h * 0.12)},${
      n(base - h * 0.1)
    } ${n(x + h * 0.09)},${n(base - h * 0.78)} ${n(x - h * 0.09)},${
      n(base - h * 0.78)
    }" fill="${c}"/>` +
    `<rect x="${n(x - h * 0.08)}" y="${n(base - h * 0.12)}" width="${n(h * 0.05)}" height="${
      n(h * 0.12)
    }" fill="${c}"/>` +
    `<rect x="${n(x + h * 0.03)}" y="${n(base - h * 0.12)}" width="${n(h * 0.05)}" height="${
      n(h * 0.12)
    }" fill="${c}"/>`;
  if (words(ctx, "figure").includes("umbrella")) {
    out +=
      `<path d="M${n(x - h * 0.32)} ${n(base - h * 0.98)} Q ${n(x)} ${n(base - h * 1.35)} ${
        n(x + h * 0.32)
      } ${n(base - h * 0.98)} Z" fill="${c}"/>` +
      `<line x1="${n(x)}" y1="${n(base - h * 1.0)}" x2="${n(x)}" y2="${
        n(base - h * 0.6)
      }" stroke="${c}" stroke-width="${n(h * 0.02)}"/>`;
  }
  if (has(ctx, "buildings") || amount(ctx.cues, "weather", "rain") > 0) {
    out += `<ellipse cx="${n(x)}" cy="${n(base + h * 0.25)}" rx="${n(h * 0.12)}" ry="${
      n(h * 0.25)
    }" fill="${c}" opacity="0.35"/>`;
  }
  return out;
}

function mist(ctx: Ctx): string {
  const a = amount(ctx.cues, "weather", "mist");
  const r = rng(ctx, "mist");
  const c: Rgb = mix([236, 238, 240], ctx.palette.horizon, 0.35);
  const band = linear(ctx, [[0, c, 0], [0.5, c, 1], [1, c, 0]]);
  let out = `<rect x="0" y="0" width="${ctx.w}" height="${ctx.h}" fill="${hex(c)}" opacity="${
    n(0.12 + 0.3 * a)
  }"/>`;
  for (let i = 0; i < 5; i++) {
    const y = ctx.horizon + (r() - 0.6) * ctx.h * 0.45;
    const bh = ctx.h * (0.1 + 0.12 * r()) * (0.7 + 0.6 * a);
    out += `<rect x="${n(-ctx.w * 0.1)}" y="${n(y - bh / 2)}" width="${n(ctx.w * 1.2)}" height="${
      n(bh)
    }" fill="${band}" opacity="${n(0.3 + 0.5 * a)}"/>`;
  }
  return out;
}

function rain(ctx: Ctx): string {
  const a = amount(ctx.cues, "weather", "rain");
  const r = rng(ctx, "rain");
  const count = Math.round(200 + 900 * a);
  const len = ctx.h / 22;
  const slant = len * 0.18;
  const width = Math.max(1, ctx.s / 700);
  let d = "";
  for (let i = 0; i < count; i++) {
    const x = r() * (ctx.w + slant);
    const y = r() * ctx.h;
    d += `M${n(x)} ${n(y)}l${n(-slant)} ${n(len * (0.6 + 0.6 * r()))}`;
  }
  const veil = `<rect x="0" y="0" width="${ctx.w}" height="${ctx.h}" fill="#8a96a8" opacity="${
    n(0.06 + 0.12 * a)
  }"/>`;
  return veil +
    `<path d="${d}" stroke="#c8d4e6" stroke-width="${n(width)}" opacity="${n(0.35 + 0.4 * a)}"/>`;
}

function snowfall(ctx: Ctx): string {
  const a = amount(ctx.cues, "weather", "snow");
  const r = rng(ctx, "snowfall");
  const count = Math.round(120 + 600 * a);
  let out = "";
  for (let i = 0; i < count; i++) {
    const radius = Math.max(0.8, ctx.s / 500) * (0.7 + 1.6 * r());
    out += `<circle cx="${n(r() * ctx.w)}" cy="${n(r() * ctx.h)}" r="${
      n(radius)
    }" fill="#f4f7fc" opacity="${n(0.55 + 0.45 * r())}"/>`;
  }
  return out;
}
