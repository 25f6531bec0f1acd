/**
 * Random answers that fit a JSON Schema exactly as sent, and no more: what a service that keeps
 * to the letter of the contract may answer. The stand-ins use it (`answers: { seed }`) to show
 * that retake uses every such answer without paying for it twice.
 *
 * Written here rather than taken from json-schema-faker: the values lean to the edges the
 * schema allows (empty and very long strings, ids no one asked for, the minimum and the maximum,
 * empty and full arrays, optional properties left out, extra properties where the schema does not
 * close the object), which is where a reader stricter than the contract breaks, and the one
 * seeded generator keeps every failure reproducible.
 *
 * @module
 */

/** A generator of numbers in [0, 1), seeded: the project's one PRNG. */
export { mulberry32 as seeded } from "../src/util/hash.ts";

const WORDS = [
  "check_subject_presence",
  "the lighthouse",
  "Is there exactly one red boat in the lower-left third of the frame?",
  "ÉCLAIRAGE",
  "c1",
  "—",
  "7",
  "true",
  "🙂 emoji",
  "",
];

/** A random value that fits `schema` (the keywords retake sends: type, properties, required,
 * items, enum, minimum, maximum, minItems, maxItems, additionalProperties). */
export function randomFromSchema(schema: unknown, random: () => number): unknown {
  if (schema === null || typeof schema !== "object") return null;
  const s = schema as Record<string, unknown>;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  if (Array.isArray(s.enum) && s.enum.length > 0) return pick(s.enum);
  const types = (Array.isArray(s.type) ? s.type : [s.type]).map((t) => String(t).toLowerCase());
  const type = types.length > 1 && types.includes("null") && random() < 0.3 ? "null" : pick(
    types.filter((t) => t !== "null").length > 0 ? types.filter((t) => t !== "null") : types,
  );
  switch (type) {
    case "object": {
      const properties = (s.properties ?? {}) as Record<string, unknown>;
      const required = new Set(Array.isArray(s.required) ? s.required as string[] : []);
      const out: Record<string, unknown> = {};
      for (const [name, sub] of Object.entries(properties)) {
        if (required.has(name) || random() < 0.5) out[name] = randomFromSchema(sub, random);
      }
      if (s.additionalProperties !== false && random() < 0.3) {
        out[`extra_${Math.floor(random() * 1000)}`] = pick(WORDS);
      }
      return out;
    }
    case "array": {
      const min = typeof s.minItems === "number" ? s.minItems : 0;
      const max = typeof s.maxItems === "number" ? s.maxItems : min + 6;
      const roll = random();
      const length = roll < 0.2
        ? min
        : roll < 0.4
        ? max
        : min + Math.floor(random() * (max - min + 1));
      return Array.from({ length }, () => randomFromSchema(s.items, random));
    }
    case "number":
    case "integer": {
      const min = typeof s.minimum === "number" ? s.minimum : -1e6;
      const max = typeof s.maximum === "number" ? s.maximum : 1e6;
      const roll = random();
      const n = roll < 0.15 ? min : roll < 0.3 ? max : min + random() * (max - min);
      return type === "integer" ? Math.round(Math.min(max, Math.max(min, n))) : n;
    }
    case "boolean":
      return random() < 0.5;
    case "string": {
      const roll = random();
      if (roll < 0.6) return pick(WORDS);
      const length = roll < 0.9 ? 1 + Math.floor(random() * 40) : 200 + Math.floor(random() * 1300);
      return Array.from({ length }, () => pick("abcdefghij klmnopq_-.,XYZ".split(""))).join("");
    }
    case "null":
      return null;
  }
  return null;
}
